//! The admin gRPC service answers on the Flight SQL port with the server's status and controls
//! background compaction; the gRPC health service answers there too.

use minidb::engine::CompactionOptions;
use minidb::protocol::admin::proto::admin_service_client::AdminServiceClient;
use minidb::protocol::admin::proto::{
    GetCompactionStatusRequest, GetStatusRequest, TriggerCompactionRequest,
};
use std::sync::Arc;

use minidb::auth::{Authenticator, hash_password};
use minidb::server::{RunningServer, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A server on loopback over `data`, everything else default.
fn local_config(data: &tempfile::TempDir) -> ServerConfig {
    ServerConfig {
        data: data.path().to_string_lossy().to_string(),
        flight_addr: "127.0.0.1:0".into(),
        text_addr: "127.0.0.1:0".into(),
        engine: Default::default(),
        compaction: Default::default(),
        auth: None,
        tls: None,
        flight: Default::default(),
        s3: Default::default(),
        metrics_addr: None,
        cache: Default::default(),
        column_cache_bytes: 1 << 30,
        max_sessions: 0,
    }
}

#[tokio::test]
async fn get_status_reports_version_storage_and_catalog_size() {
    let data = tempfile::tempdir().unwrap();
    let config = local_config(&data);
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

/// Sends one statement over the text protocol and returns the answer before the next prompt
/// (`None` sends nothing and reads the greeting).
async fn text(socket: &mut tokio::net::TcpStream, sql: Option<&str>) -> String {
    if let Some(sql) = sql {
        socket
            .write_all(format!("{sql}\n").as_bytes())
            .await
            .unwrap();
    }
    let mut seen = String::new();
    let read = async {
        while !seen.ends_with("SQL> ") {
            let mut buf = [0u8; 4096];
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "server closed the session: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), read)
        .await
        .expect("no prompt within 30 s");
    seen
}

#[tokio::test]
async fn trigger_compaction_compacts_qualifying_tables_and_reports_runs() {
    let data = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        compaction: CompactionOptions {
            interval: None,
            min_small_files: 4,
            deleted_ratio: 0.5,
        },
        ..local_config(&data)
    };
    let server = RunningServer::start(&config).await.unwrap();
    let mut client = AdminServiceClient::connect(format!("http://{}", server.flight_addr))
        .await
        .unwrap();
    let mut socket = tokio::net::TcpStream::connect(server.text_addr)
        .await
        .unwrap();
    text(&mut socket, None).await;
    text(&mut socket, Some("CREATE TABLE small (id INT);")).await;
    text(&mut socket, Some("CREATE TABLE few (id INT);")).await;
    for i in 0..5 {
        let answer = text(
            &mut socket,
            Some(&format!("INSERT INTO small VALUES ({i});")),
        )
        .await;
        assert!(answer.starts_with("Inserted"), "{answer}");
    }
    for i in 0..3 {
        text(&mut socket, Some(&format!("INSERT INTO few VALUES ({i});"))).await;
    }

    let status = client
        .get_compaction_status(GetCompactionStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!status.scheduled);
    assert_eq!((status.passes, status.recent_runs.len()), (0, 0));

    // `small` has 5 small files (>= 4) and qualifies; `few` has 3 and does not.
    let runs = client
        .trigger_compaction(TriggerCompactionRequest {})
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert_eq!(
        (run.table.as_str(), run.trigger.as_str()),
        ("small", "manual")
    );
    assert_eq!((run.files_removed, run.files_added, run.version), (5, 1, 6));
    assert!(
        run.error.is_empty() && run.reason.contains("5 small files"),
        "{run:?}"
    );

    let status = client
        .get_compaction_status(GetCompactionStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status.passes, status.recent_runs.len()), (1, 1));
    assert!(status.last_pass_at_ms > 0);

    // Deleting 3 of 5 rows (60% >= 50%) makes it qualify again, by its deletion vector.
    let answer = text(&mut socket, Some("DELETE FROM small WHERE id < 3;")).await;
    assert!(answer.starts_with("Deleted 3 row(s)"), "{answer}");
    let runs = client
        .trigger_compaction(TriggerCompactionRequest {})
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        (runs[0].rows_purged, runs[0].deletion_vectors_removed),
        (3, 1)
    );

    let answer = text(
        &mut socket,
        Some("SELECT table_name, files_removed, rows_purged FROM sys.compactions ORDER BY started_at;"),
    )
    .await;
    assert!(
        answer.contains("| small      | 5             | 0           |"),
        "{answer}"
    );
    assert!(
        answer.contains("| small      | 1             | 3           |"),
        "{answer}"
    );
    let answer = text(&mut socket, Some("SELECT count(*) AS n FROM small;")).await;
    assert!(answer.contains("| 2 |"), "{answer}");

    server.shutdown_token().cancel();
    server.wait().await.unwrap();
}

#[tokio::test]
async fn with_users_the_admin_service_wants_a_token_too() {
    let data = tempfile::tempdir().unwrap();
    let users = format!("admin:{}", hash_password("hunter22"));
    let auth = Arc::new(Authenticator::from_lines(&users, Some("secret")).unwrap());
    let config = ServerConfig {
        auth: Some(Arc::clone(&auth)),
        ..local_config(&data)
    };
    let server = RunningServer::start(&config).await.unwrap();
    let mut client = AdminServiceClient::connect(format!("http://{}", server.flight_addr))
        .await
        .unwrap();
    let refused = client.get_status(GetStatusRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    let token = auth.login("admin", "hunter22").unwrap();
    let mut request = tonic::Request::new(GetStatusRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let status = client.get_status(request).await.unwrap().into_inner();
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    server.shutdown_token().cancel();
    server.wait().await.unwrap();
}

#[tokio::test]
async fn health_checks_answer_without_a_token() {
    let data = tempfile::tempdir().unwrap();
    let users = format!("admin:{}", hash_password("hunter22"));
    let auth = Arc::new(Authenticator::from_lines(&users, Some("secret")).unwrap());
    let config = ServerConfig {
        auth: Some(auth),
        ..local_config(&data)
    };
    let server = RunningServer::start(&config).await.unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.flight_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in [
        "",
        "arrow.flight.protocol.FlightService",
        "minidb.v1.AdminService",
    ] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("health of '{service}': {e}"))
            .into_inner();
        assert_eq!(
            answer.status(),
            ServingStatus::Serving,
            "health of '{service}'"
        );
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    // Everything else still wants a token.
    let mut admin = AdminServiceClient::connect(format!("http://{}", server.flight_addr))
        .await
        .unwrap();
    let refused = admin.get_status(GetStatusRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    server.shutdown_token().cancel();
    server.wait().await.unwrap();
}
