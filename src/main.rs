//! The `minidb` command line: `minidb serve` starts the server.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use minidb::engine::{CompactionOptions, EngineOptions};
use minidb::server::{RunningServer, ServerConfig};
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
    Serve {
        /// Data root: a directory or an object-store URL (file:///…, memory://).
        #[arg(long, env = "MINIDB_DATA", default_value = "./minidb_data")]
        data: String,
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
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ConcurrencyArg {
    Pessimistic,
    Optimistic,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let Command::Serve {
        data,
        flight_addr,
        text_addr,
        concurrency,
        lock_timeout_ms,
        compaction_interval_ms,
        compaction_min_small_files,
        compaction_deleted_ratio,
    } = Cli::parse().command;
    let concurrency = match concurrency {
        ConcurrencyArg::Pessimistic => Concurrency::Pessimistic {
            lock_timeout: Duration::from_millis(lock_timeout_ms),
        },
        ConcurrencyArg::Optimistic => Concurrency::Optimistic,
    };
    let config = ServerConfig {
        data,
        flight_addr,
        text_addr,
        engine: EngineOptions { concurrency },
        compaction: CompactionOptions {
            interval: (compaction_interval_ms > 0)
                .then(|| Duration::from_millis(compaction_interval_ms)),
            min_small_files: compaction_min_small_files,
            deleted_ratio: compaction_deleted_ratio,
        },
    };
    // Signal handlers go in before the listeners announce themselves, so a SIGTERM sent as soon
    // as the `listening` lines appear still shuts down gracefully.
    let signal = shutdown_signal()?;
    let server = RunningServer::start(&config)
        .await
        .context("starting minidb")?;
    let shutdown = server.shutdown_token();
    tokio::spawn(async move {
        signal.await;
        tracing::info!("shutdown requested");
        shutdown.cancel();
    });
    server.wait().await.context("running minidb")?;
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
