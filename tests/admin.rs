//! The admin gRPC service answers on the Flight SQL port with the server's status.

use minidb::protocol::admin::proto::GetStatusRequest;
use minidb::protocol::admin::proto::admin_service_client::AdminServiceClient;
use minidb::server::{RunningServer, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn get_status_reports_version_storage_and_catalog_size() {
    let data = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        data: data.path().to_string_lossy().to_string(),
        flight_addr: "127.0.0.1:0".into(),
        text_addr: "127.0.0.1:0".into(),
        engine: Default::default(),
    };
    let server = RunningServer::start(&config).await.unwrap();
    let mut client = AdminServiceClient::connect(format!("http://{}", server.flight_addr))
        .await
        .unwrap();

    let status = client
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(status.database_count, 1, "only `default` exists at first");
    assert_eq!(status.table_count, 0);
    let root = std::fs::canonicalize(data.path()).unwrap();
    assert!(
        status.storage_root.contains(root.to_str().unwrap()),
        "{} should name {}",
        status.storage_root,
        root.display()
    );

    // Create a database and a table over the text protocol, then ask again.
    let mut socket = tokio::net::TcpStream::connect(server.text_addr)
        .await
        .unwrap();
    socket
        .write_all(b"CREATE DATABASE shop; CREATE TABLE shop.items (id INT);\n")
        .await
        .unwrap();
    let mut seen = String::new();
    while !seen.contains("Table created: items") {
        let mut buf = [0u8; 1024];
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "server closed the session: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let status = client
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status.database_count, status.table_count), (2, 1));

    let shutdown = server.shutdown_token();
    shutdown.cancel();
    server.wait().await.unwrap();
}
