//! The running server: binds the listeners, serves both protocols over one engine, and shuts
//! down gracefully.
//!
//! The gRPC port also serves the standard health checking protocol (`grpc.health.v1.Health`),
//! open to every caller even when logins are required, since orchestrators' probes carry no
//! tokens: the whole server (service `""`), Flight SQL and the admin service report
//! `SERVING` until shutdown begins, then `NOT_SERVING`.
//!
//! Shutdown: the token stops both listeners from accepting; text sessions finish the statement
//! they are running and close; gRPC drains in-flight calls; background compaction abandons its
//! pass. A commit is a single atomic object create, so stopping at any point never leaves a
//! partial commit.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::transport::{Identity, ServerTlsConfig};
use tonic_health::ServingStatus;
use tracing::info;

use crate::auth::Authenticator;
use crate::engine::{CompactionOptions, Compactor, Engine, EngineError, EngineOptions};
use crate::protocol::admin::{Admin, AdminServiceServer};
use crate::protocol::flight::{FlightOptions, FlightRpc};
use crate::protocol::grpc_auth::RequireTokenLayer;
use crate::protocol::text;
use crate::storage::{CacheSettings, DataStore, S3Settings, StorageError};

/// Largest gRPC message accepted or sent (ADBC sends up to 16 MiB by default).
const MAX_GRPC_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Where the server keeps its data and listens.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// A directory, or an object-store URL (`file:///…`, `s3://bucket/prefix`, `memory://`).
    pub data: String,
    /// How to reach the bucket when `data` is an `s3://` URL.
    pub s3: S3Settings,
    pub flight_addr: String,
    pub text_addr: String,
    /// How writers coordinate (pessimistic table locks by default).
    pub engine: EngineOptions,
    /// When background compaction runs.
    pub compaction: CompactionOptions,
    /// Users who may log in; `None` leaves both ports open to anyone who can reach them.
    pub auth: Option<Arc<Authenticator>>,
    /// Certificate and key (PEM) for gRPC over TLS; `None` serves plaintext gRPC.
    pub tls: Option<TlsFiles>,
    /// How Flight SQL sends results.
    pub flight: FlightOptions,
    /// Address of the Prometheus metrics listener (`GET /metrics`); `None` serves no metrics.
    pub metrics_addr: Option<String>,
    /// The read cache of an S3 data root (a local directory is cached by the operating system).
    pub cache: CacheSettings,
    /// Bytes of decoded column chunks kept in memory for scans (0 keeps none).
    pub column_cache_bytes: u64,
    /// Open :7205 sessions at once; 0 for no limit.
    pub max_sessions: usize,
}

/// The memory this process may use: the machine's, or its control group's limit when lower;
/// `None` where neither can be read.
fn memory_available() -> Option<u64> {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
    // cgroup v2, then v1; "max" (no limit) does not parse.
    let group = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|path| std::fs::read_to_string(path).ok())
    .and_then(|text| text.trim().parse::<u64>().ok());
    machine.into_iter().chain(group).min()
}

/// The column cache's default size: a quarter of the memory this process may use, or 1 GiB
/// where that cannot be read.
pub fn default_column_cache_bytes() -> u64 {
    memory_available().map_or(1 << 30, |bytes| bytes / 4)
}

/// The index cache's default size: a sixteenth of the memory this process may use, or 256 MiB
/// where that cannot be read.
pub fn default_index_cache_bytes() -> u64 {
    memory_available().map_or(256 << 20, |bytes| bytes / 16)
}

/// The deletion-vector cache's default size: a sixty-fourth of the memory this process may use,
/// or 64 MiB where that cannot be read.
pub fn default_deletion_vector_cache_bytes() -> u64 {
    memory_available().map_or(64 << 20, |bytes| bytes / 64)
}

/// The footer cache's default size: a sixty-fourth of the memory this process may use, or
/// 64 MiB where that cannot be read.
pub fn default_footer_cache_bytes() -> u64 {
    memory_available().map_or(64 << 20, |bytes| bytes / 64)
}

/// The default memory limit of running statements: half of the memory this process may use
/// (the column cache takes a quarter, the index cache a sixteenth, the deletion-vector and
/// footer caches a sixty-fourth each; the rest is left to buffers, Arrow batches in flight and
/// the system), or 4 GiB where that cannot be read.
pub fn default_memory_limit() -> u64 {
    memory_available().map_or(4 << 30, |bytes| bytes / 2)
}

/// PEM files of the gRPC listener's TLS identity.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Starting or running the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("opening the catalog failed: {0}")]
    Engine(#[from] EngineError),
    #[error("cannot listen on {addr}: {source}{}", bind_hint(.source))]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("metrics listener failed: {source}")]
    Metrics { source: std::io::Error },
    #[error("a server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("reading TLS file {path}: {source}")]
    TlsFile {
        path: String,
        source: std::io::Error,
    },
}

/// A started server; dropping it does not stop it, [`RunningServer::shutdown`] does.
pub struct RunningServer {
    pub flight_addr: SocketAddr,
    pub text_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    flight: JoinHandle<Result<(), tonic::transport::Error>>,
    text: JoinHandle<()>,
    compactor: JoinHandle<()>,
    metrics: Option<JoinHandle<std::io::Result<()>>>,
}

/// How old a staged, unfinished file must be before start-up deletes it.
const STAGED_FILE_GRACE: Duration = Duration::from_secs(15 * 60);

impl RunningServer {
    /// Opens the store, binds both listeners and starts serving.
    pub async fn start(config: &ServerConfig) -> Result<Self, ServerError> {
        let store = open_store(config)?;
        // Staged files of puts a killed process never finished; young ones may be a put of
        // another server on the same directory, still in progress.
        store.remove_stale_staged_files(STAGED_FILE_GRACE).await?;
        let engine = Arc::new(Engine::open_with(store, config.engine.clone()).await?);
        let flight_listener = bind(&config.flight_addr).await?;
        let text_listener = bind(&config.text_addr).await?;
        let flight_addr = local_addr(&flight_listener, &config.flight_addr)?;
        let text_addr = local_addr(&text_listener, &config.text_addr)?;
        let metrics_listener = match &config.metrics_addr {
            Some(addr) => Some((bind(addr).await?, addr)),
            None => None,
        };
        let shutdown = CancellationToken::new();

        let flight_service = FlightServiceServer::new(FlightRpc::new(
            Arc::clone(&engine),
            config.auth.clone(),
            config.flight,
        ))
        .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES);
        let compactor = Compactor::new(Arc::clone(&engine), config.compaction);
        let admin_service =
            AdminServiceServer::new(Admin::new(Arc::clone(&engine), Arc::clone(&compactor)));
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<FlightServiceServer<FlightRpc>>().await;
        health.set_serving::<AdminServiceServer<Admin>>().await;
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            stopping.cancelled().await;
            for service in [
                "",
                <FlightServiceServer<FlightRpc> as NamedService>::NAME,
                <AdminServiceServer<Admin> as NamedService>::NAME,
            ] {
                health
                    .set_service_status(service, ServingStatus::NotServing)
                    .await;
            }
        });
        let stop = shutdown.clone();
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &config.tls {
            let read = |path: &PathBuf| {
                std::fs::read(path).map_err(|source| ServerError::TlsFile {
                    path: path.display().to_string(),
                    source,
                })
            };
            let identity = Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
            builder = builder.tls_config(ServerTlsConfig::new().identity(identity))?;
        }
        let auth_layer = config.auth.clone().map(RequireTokenLayer::new);
        let flight = tokio::spawn(
            builder
                .layer(tower::util::option_layer(auth_layer))
                .add_service(health_service)
                .add_service(flight_service)
                .add_service(admin_service)
                .serve_with_incoming_shutdown(
                    // Small request/response messages: no Nagle delay (tonic only sets NODELAY on
                    // listeners it binds itself).
                    TcpListenerStream::new(flight_listener).map(|stream| {
                        stream.and_then(|s| {
                            s.set_nodelay(true)?;
                            Ok(s)
                        })
                    }),
                    async move { stop.cancelled().await },
                ),
        );
        let text = tokio::spawn(text::serve(
            text_listener,
            engine,
            config.auth.clone(),
            config.max_sessions,
            shutdown.clone(),
        ));
        let compactor = compactor.spawn(shutdown.clone());
        let mut metrics_addr = None;
        let metrics = match metrics_listener {
            Some((listener, addr)) => {
                let bound = local_addr(&listener, addr)?;
                println!("minidb metrics listening on http://{bound}/metrics");
                metrics_addr = Some(bound);
                Some(tokio::spawn(crate::metrics::serve(
                    listener,
                    shutdown.clone(),
                )))
            }
            None => None,
        };

        let scheme = if config.tls.is_some() {
            "tls"
        } else {
            "plaintext"
        };
        println!("minidb flight sql listening on {flight_addr} ({scheme})");
        println!("minidb text protocol listening on {text_addr}");
        info!(%flight_addr, %text_addr, data = %config.data, "minidb started");
        Ok(Self {
            flight_addr,
            text_addr,
            metrics_addr,
            shutdown,
            flight,
            text,
            compactor,
            metrics,
        })
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the server has stopped (after the shutdown token fired).
    pub async fn wait(self) -> Result<(), ServerError> {
        self.text.await?;
        self.flight.await??;
        self.compactor.await?;
        if let Some(metrics) = self.metrics {
            metrics
                .await?
                .map_err(|source| ServerError::Metrics { source })?;
        }
        info!("minidb stopped");
        Ok(())
    }
}

/// The data root, with its column cache, and a read cache when it is an S3 bucket.
fn open_store(config: &ServerConfig) -> Result<DataStore, ServerError> {
    let store = DataStore::open_with(&config.data, &config.s3)?
        .with_column_cache(config.column_cache_bytes);
    let cache = &config.cache;
    if !store.is_remote() {
        if cache.disk_dir.is_some() {
            tracing::warn!(
                "the read cache serves S3 data roots; --cache-dir is ignored for a local directory"
            );
        }
        return Ok(store);
    }
    if !cache.enabled() {
        return Ok(store);
    }
    let store = store.with_read_cache(cache)?;
    tracing::info!(
        memory_bytes = cache.memory_bytes,
        disk_dir = ?cache.disk_dir,
        disk_bytes = cache.disk_bytes,
        "read cache on"
    );
    Ok(store)
}

/// What to do about a listener that could not bind.
fn bind_hint(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another process listens there: stop it, or choose another address with \
             --flight-addr, --text-addr or --metrics-addr)"
        }
        std::io::ErrorKind::PermissionDenied => {
            " (ports below 1024 need privileges: choose a higher port)"
        }
        _ => " (addresses are HOST:PORT, such as 127.0.0.1:7205 or 0.0.0.0:50051)",
    }
}

async fn bind(addr: &str) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: addr.to_string(),
            source,
        })
}

fn local_addr(listener: &TcpListener, addr: &str) -> Result<SocketAddr, ServerError> {
    listener.local_addr().map_err(|source| ServerError::Bind {
        addr: addr.to_string(),
        source,
    })
}
