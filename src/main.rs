//! The `minidb` command line: `minidb serve` starts the server; `minidb hash-password` makes a
//! users-file line.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use minidb::auth::Authenticator;
use minidb::engine::{AdmissionLimits, CompactionOptions, EngineOptions};
use minidb::protocol::flight::FlightOptions;
use minidb::server::{RunningServer, ServerConfig, TlsFiles};
use minidb::storage::{CacheSettings, S3Settings};
use minidb::table::Concurrency;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "minidb", version, about = "MiniDB lakehouse database server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve Flight SQL and the text protocol over the data root.
    Serve(Box<ServeArgs>),
    /// Read a password from stdin and print the line to put in the users file.
    HashPassword {
        /// The user the line is for.
        user: String,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML file of settings, keyed by these flags' long names (`flight-addr = "0.0.0.0:50051"`);
    /// the command line wins over the environment, which wins over the file.
    #[arg(long, env = "MINIDB_CONFIG")]
    config: Option<PathBuf>,
    /// Data root: a directory or an object-store URL (file:///…, s3://bucket/prefix,
    /// memory://).
    #[arg(long, env = "MINIDB_DATA", default_value = "./minidb_data")]
    data: String,
    /// S3 endpoint URL, for S3-compatible services (MinIO, SeaweedFS…); AWS when unset.
    /// Unset S3 settings fall back to the standard AWS_* environment variables.
    #[arg(long, env = "MINIDB_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, env = "MINIDB_S3_REGION")]
    s3_region: Option<String>,
    /// S3 access key id.
    #[arg(long, env = "MINIDB_S3_ACCESS_KEY_ID")]
    s3_access_key_id: Option<String>,
    /// S3 secret access key (prefer the environment or the config file to the command line).
    #[arg(long, env = "MINIDB_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    s3_secret_access_key: Option<String>,
    /// Allow a plain-HTTP S3 endpoint.
    #[arg(long, env = "MINIDB_S3_ALLOW_HTTP", default_value_t = false, action = clap::ArgAction::Set)]
    s3_allow_http: bool,
    /// How many times a failed S3 request is retried, with exponential backoff, where retrying
    /// is safe (reads, idempotent and conditional writes); 0 turns retries off.
    #[arg(long, env = "MINIDB_S3_MAX_RETRIES", default_value_t = 10)]
    s3_max_retries: usize,
    /// Milliseconds after a failed S3 request's first attempt during which it is retried; a
    /// statement meeting an unreachable store fails after about this long.
    #[arg(long, env = "MINIDB_S3_RETRY_TIMEOUT_MS", default_value_t = 30_000)]
    s3_retry_timeout_ms: u64,
    /// Address of the gRPC listener (Flight SQL and the admin service).
    #[arg(long, env = "MINIDB_FLIGHT_ADDR", default_value = "127.0.0.1:50051")]
    flight_addr: String,
    /// Address of the plain-text protocol listener.
    #[arg(long, env = "MINIDB_TEXT_ADDR", default_value = "127.0.0.1:7205")]
    text_addr: String,
    /// How concurrent writers coordinate: `pessimistic` (per-table writer locks inside this
    /// server) or `optimistic` (conditional-put commits and Delta's conflict rules only).
    #[arg(long, env = "MINIDB_CONCURRENCY", value_enum, default_value_t = ConcurrencyArg::Pessimistic)]
    concurrency: ConcurrencyArg,
    /// Pessimistic mode: how long a writer waits for a table held by another transaction
    /// before failing with a retryable conflict.
    #[arg(long, env = "MINIDB_LOCK_TIMEOUT_MS", default_value_t = 10_000)]
    lock_timeout_ms: u64,
    /// Milliseconds between background compaction passes; 0 turns the schedule off.
    #[arg(long, env = "MINIDB_COMPACTION_INTERVAL_MS", default_value_t = 60_000)]
    compaction_interval_ms: u64,
    /// Small files (below 3/4 of the target file size) that make a table worth compacting.
    #[arg(long, env = "MINIDB_COMPACTION_MIN_SMALL_FILES", default_value_t = 10)]
    compaction_min_small_files: usize,
    /// Share of rows deleted through deletion vectors that makes a table worth compacting.
    #[arg(long, env = "MINIDB_COMPACTION_DELETED_RATIO", default_value_t = 0.1)]
    compaction_deleted_ratio: f64,
    /// Users file (`name:<hash>` lines, see `minidb hash-password`); when set, every gRPC
    /// call needs a bearer token from Handshake and text sessions must LOGIN first.
    #[arg(long, env = "MINIDB_USERS_FILE")]
    users_file: Option<PathBuf>,
    /// Secret that signs login tokens; servers sharing it accept each other's tokens.
    /// Without it each process uses a random one.
    #[arg(long, env = "MINIDB_AUTH_TOKEN_SECRET", hide_env_values = true)]
    auth_token_secret: Option<String>,
    /// PEM certificate chain for gRPC over TLS (needs --tls-key).
    #[arg(long, env = "MINIDB_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for gRPC over TLS (needs --tls-cert).
    #[arg(long, env = "MINIDB_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Send string and binary views (Utf8View, BinaryView) to Flight SQL clients as plain
    /// Utf8 and Binary; Flight SQL JDBC drivers before 19 cannot read views.
    #[arg(long, env = "MINIDB_FLIGHT_PLAIN_STRINGS", default_value_t = true, action = clap::ArgAction::Set)]
    flight_plain_strings: bool,
    /// DataFusion settings over MiniDB's defaults, as KEY=VALUE
    /// (`datafusion.execution.target_partitions=4`); repeat the flag or separate with commas.
    /// The keys are those of DataFusion's configuration reference.
    #[arg(
        long = "engine-setting",
        env = "MINIDB_ENGINE_SETTINGS",
        value_name = "KEY=VALUE",
        value_delimiter = ',',
        value_parser = key_value
    )]
    engine_settings: Vec<(String, String)>,
    /// Address of the Prometheus metrics listener (GET /metrics); unset serves no metrics.
    #[arg(long, env = "MINIDB_METRICS_ADDR")]
    metrics_addr: Option<String>,
    /// Memory tier of the read cache of an S3 data root (`256MiB`, `1GiB`…; `0` turns it off).
    /// It keeps data files, deletion vectors and index segments, which never change.
    #[arg(long, env = "MINIDB_CACHE_MEMORY", default_value = "256MiB", value_parser = byte_size)]
    cache_memory: u64,
    /// Directory of the read cache's disk tier (emptied at start, one server per directory);
    /// without it the cache keeps nothing on disk.
    #[arg(long, env = "MINIDB_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Size of the read cache's disk tier.
    #[arg(long, env = "MINIDB_CACHE_SIZE", default_value = "10GiB", value_parser = byte_size)]
    cache_size: u64,
    /// Memory for decoded column chunks of data files, which scans of hot data read instead of
    /// Parquet (`4GiB`…; `0` turns it off). Default: a quarter of the memory the server may use.
    #[arg(long, env = "MINIDB_COLUMN_CACHE", value_parser = byte_size)]
    column_cache: Option<u64>,
    /// Memory for the footers and decoded leaves of index segments, which index lookups read
    /// instead of storage, shared by all tables (`512MiB`…; `0` turns it off). Default: a
    /// sixteenth of the memory the server may use.
    #[arg(long, env = "MINIDB_INDEX_CACHE", value_parser = byte_size)]
    index_cache: Option<u64>,
    /// Memory for parsed deletion vectors, which scans, lookups and DELETEs of files with
    /// deleted rows read instead of storage, shared by all tables (`64MiB`…; `0` turns it
    /// off). Default: a sixty-fourth of the memory the server may use.
    #[arg(long, env = "MINIDB_DELETION_VECTOR_CACHE", value_parser = byte_size)]
    deletion_vector_cache: Option<u64>,
    /// Memory for the parsed Parquet footers (metadata and page indexes) of data files, which
    /// scans read instead of storage, shared by all tables (`64MiB`…; `0` turns it off).
    /// Default: a sixty-fourth of the memory the server may use.
    #[arg(long, env = "MINIDB_FOOTER_CACHE", value_parser = byte_size)]
    footer_cache: Option<u64>,
    /// Memory all running statements may hold together in their operators (`8GiB`…). Sorts,
    /// aggregations and joins spill to --spill-dir at their share; a statement that cannot fit
    /// fails with "resources exhausted" and the others go on. Default: half of the memory the
    /// server may use.
    #[arg(long, env = "MINIDB_MEMORY_LIMIT", value_parser = byte_size)]
    memory_limit: Option<u64>,
    /// Directory for the spill files of statements over their memory share. Default: the
    /// system's temporary directory.
    #[arg(long, env = "MINIDB_SPILL_DIR")]
    spill_dir: Option<PathBuf>,
    /// Milliseconds a statement may run (a query until its rows are read) before it is stopped
    /// with "canceling statement due to statement timeout"; 0 for no limit. A session changes
    /// its own with `SET statement_timeout`.
    #[arg(long, env = "MINIDB_STATEMENT_TIMEOUT_MS", default_value_t = 0)]
    statement_timeout_ms: u64,
    /// Statements that run at once, over both protocols (a query until its rows are read);
    /// more wait in a queue. 0 for no limit.
    #[arg(long, env = "MINIDB_MAX_CONCURRENT_QUERIES", default_value_t = 64)]
    max_concurrent_queries: usize,
    /// Statements that may wait for a turn; one more is refused with "server busy".
    #[arg(long, env = "MINIDB_MAX_QUEUED_QUERIES", default_value_t = 256)]
    max_queued_queries: usize,
    /// Milliseconds a statement waits for a turn before it is refused with "server busy".
    #[arg(long, env = "MINIDB_QUEUE_TIMEOUT_MS", default_value_t = 60_000)]
    queue_timeout_ms: u64,
    /// Open :7205 sessions at once; one more is told so and closed. 0 for no limit.
    #[arg(long, env = "MINIDB_MAX_SESSIONS", default_value_t = 1024)]
    max_sessions: usize,
}

/// A size in bytes: a number, optionally with a unit (`KiB`, `MiB`, `GiB`, `KB`, `MB`…).
fn byte_size(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
}

/// `KEY=VALUE`, split at the first `=`.
fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, found '{text}'")),
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ConcurrencyArg {
    Pessimistic,
    Optimistic,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minidb: {}", causes(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each cause once (a message that already quotes its
/// cause is not followed by it again).
fn causes(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = match cli()?.command {
        Command::HashPassword { user } => return hash_password(&user),
        Command::Serve(args) => server_config(*args)?,
    };
    // Signal handlers go in before the listeners announce themselves, so a SIGTERM sent as soon
    // as the `listening` lines appear still shuts down gracefully.
    let signal = shutdown_signal()?;
    let server = RunningServer::start(&config)
        .await
        .context("cannot start")?;
    let shutdown = server.shutdown_token();
    tokio::spawn(async move {
        signal.await;
        tracing::info!("shutdown requested");
        shutdown.cancel();
    });
    server.wait().await.context("running minidb")?;
    Ok(())
}

/// The command line, completed by the configuration file when `serve --config` names one.
fn cli() -> anyhow::Result<Cli> {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let command = Cli::command();
    let matches = command.clone().get_matches_from(&argv);
    let Some(("serve", serve)) = matches.subcommand() else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let Some(path) = serve.get_one::<PathBuf>("config") else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the configuration file {}", path.display()))?;
    let serve_command = command
        .find_subcommand("serve")
        .context("the serve command")?;
    let extra = minidb::config_file::file_arguments(serve_command, serve, &text)
        .with_context(|| format!("in the configuration file {}", path.display()))?;
    Ok(Cli::parse_from(
        argv.into_iter()
            .chain(extra.into_iter().map(OsString::from)),
    ))
}

/// The server configuration the flags and environment give.
fn server_config(args: ServeArgs) -> anyhow::Result<ServerConfig> {
    let concurrency = match args.concurrency {
        ConcurrencyArg::Pessimistic => Concurrency::Pessimistic {
            lock_timeout: Duration::from_millis(args.lock_timeout_ms),
        },
        ConcurrencyArg::Optimistic => Concurrency::Optimistic,
    };
    let auth = args
        .users_file
        .map(|path| Authenticator::from_file(&path, args.auth_token_secret.as_deref()))
        .transpose()
        .context("loading users")?
        .map(Arc::new);
    Ok(ServerConfig {
        data: args.data,
        s3: S3Settings {
            endpoint: args.s3_endpoint,
            region: args.s3_region,
            access_key_id: args.s3_access_key_id,
            secret_access_key: args.s3_secret_access_key,
            allow_http: args.s3_allow_http,
            max_retries: Some(args.s3_max_retries),
            retry_timeout: Some(Duration::from_millis(args.s3_retry_timeout_ms)),
        },
        flight_addr: args.flight_addr,
        text_addr: args.text_addr,
        engine: EngineOptions {
            concurrency,
            engine_settings: args.engine_settings,
            memory_limit: Some(
                args.memory_limit
                    .unwrap_or_else(minidb::server::default_memory_limit)
                    .try_into()
                    .unwrap_or(usize::MAX),
            ),
            spill_dir: args.spill_dir,
            statement_timeout: Some(Duration::from_millis(args.statement_timeout_ms)),
            admission: AdmissionLimits {
                running: args.max_concurrent_queries,
                queued: args.max_queued_queries,
                wait: Duration::from_millis(args.queue_timeout_ms),
            },
            index_cache_bytes: args
                .index_cache
                .unwrap_or_else(minidb::server::default_index_cache_bytes),
            deletion_vector_cache_bytes: args
                .deletion_vector_cache
                .unwrap_or_else(minidb::server::default_deletion_vector_cache_bytes),
            footer_cache_bytes: args
                .footer_cache
                .unwrap_or_else(minidb::server::default_footer_cache_bytes),
        },
        compaction: CompactionOptions {
            interval: (args.compaction_interval_ms > 0)
                .then(|| Duration::from_millis(args.compaction_interval_ms)),
            min_small_files: args.compaction_min_small_files,
            deleted_ratio: args.compaction_deleted_ratio,
        },
        auth,
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| TlsFiles { cert, key }),
        flight: FlightOptions {
            plain_strings: args.flight_plain_strings,
        },
        metrics_addr: args.metrics_addr,
        cache: CacheSettings {
            memory_bytes: args.cache_memory,
            disk_dir: args.cache_dir,
            disk_bytes: args.cache_size,
        },
        column_cache_bytes: args
            .column_cache
            .unwrap_or_else(minidb::server::default_column_cache_bytes),
        max_sessions: args.max_sessions,
    })
}

/// `minidb hash-password <user>`: reads one line (the password) from stdin and prints
/// `user:<hash>`.
fn hash_password(user: &str) -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("reading the password from stdin")?;
    let password = password.trim_end_matches(['\n', '\r']);
    anyhow::ensure!(!password.is_empty(), "empty password");
    println!("{user}:{}", minidb::auth::hash_password(password));
    Ok(())
}

/// Installs SIGINT and SIGTERM handlers; the returned future resolves on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        let mut terminate =
            signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
