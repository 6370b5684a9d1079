//! Prometheus metrics of the process, served as text on `GET /metrics` of the metrics listener.
//!
//! One set per process ([`metrics`]): the layers that do the work count it where it happens
//! (statements in the protocols, commits in the table handle, bytes in the object store,
//! files in the scan, runs in the compactor, blocks in the read cache), and the listener encodes the lot on request.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The content type of Prometheus' text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which protocol a statement or session came in by.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Protocol {
    Flight,
    Text,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Self::Flight => "flight",
            Self::Text => "text",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatementLabels {
    protocol: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    tier: &'static str,
}

/// Every metric MiniDB exports.
pub struct Metrics {
    registry: Registry,
    statements: Family<StatementLabels, Counter>,
    statement_seconds: Family<ProtocolLabels, Histogram>,
    sessions: Family<ProtocolLabels, Gauge>,
    commits: Counter,
    grouped_appends: Counter,
    conflicts: Counter,
    bytes_read: Counter,
    bytes_written: Counter,
    files_scanned: Counter,
    files_skipped: Counter,
    compactions: Family<OutcomeLabels, Counter>,
    cache_hits: Family<TierLabels, Counter>,
    cache_hit_bytes: Family<TierLabels, Counter>,
    cache_misses: Family<TierLabels, Counter>,
    cache_evictions: Family<TierLabels, Counter>,
    cache_used: Family<TierLabels, Gauge>,
    statements_running: Gauge,
    statements_queued: Gauge,
    statements_refused: Counter,
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("minidb");
        let statements = Family::<StatementLabels, Counter>::default();
        let statement_seconds = Family::<ProtocolLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let sessions = Family::<ProtocolLabels, Gauge>::default();
        let compactions = Family::<OutcomeLabels, Counter>::default();
        let [
            commits,
            grouped_appends,
            conflicts,
            bytes_read,
            bytes_written,
            files_scanned,
            files_skipped,
        ] = std::array::from_fn(|_| Counter::default());
        registry.register(
            "statements",
            "SQL statements run, by protocol and outcome (ok or error)",
            statements.clone(),
        );
        registry.register(
            "statement_duration_seconds",
            "Time from receiving a statement to its last result row, by protocol",
            statement_seconds.clone(),
        );
        registry.register(
            "sessions_active",
            "Open text sessions and Flight SQL queries being streamed, by protocol",
            sessions.clone(),
        );
        registry.register(
            "compaction_runs",
            "Background and triggered compactions of one table, by outcome",
            compactions.clone(),
        );
        let [cache_hits, cache_hit_bytes, cache_misses, cache_evictions] =
            std::array::from_fn(|_| Family::<TierLabels, Counter>::default());
        let cache_used = Family::<TierLabels, Gauge>::default();
        for (name, help, family) in [
            (
                "cache_hits",
                "Read-cache block lookups answered, by tier",
                &cache_hits,
            ),
            (
                "cache_hit_bytes",
                "Bytes of the read-cache blocks that answered lookups, by tier",
                &cache_hit_bytes,
            ),
            (
                "cache_misses",
                "Read-cache block lookups not answered, by tier",
                &cache_misses,
            ),
            (
                "cache_evictions",
                "Read-cache blocks dropped to make room, by tier",
                &cache_evictions,
            ),
        ] {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "cache_used_bytes",
            "Bytes of blocks the read cache holds, by tier",
            cache_used.clone(),
        );
        let statements_running = Gauge::default();
        let statements_queued = Gauge::default();
        let statements_refused = Counter::default();
        registry.register(
            "statements_running",
            "Statements holding one of --max-concurrent-queries' slots",
            statements_running.clone(),
        );
        registry.register(
            "statements_queued",
            "Statements waiting for a slot of --max-concurrent-queries",
            statements_queued.clone(),
        );
        for (name, help, counter) in [
            (
                "statements_refused",
                "Statements refused because every slot was taken and the queue was full or \
                 the wait too long",
                &statements_refused,
            ),
            ("commits", "Delta log commits written", &commits),
            (
                "grouped_appends",
                "Autocommit appends committed together with others in one Delta commit \
                 (group commit)",
                &grouped_appends,
            ),
            (
                "commit_conflicts",
                "Statements refused with a retryable commit conflict",
                &conflicts,
            ),
            (
                "storage_read_bytes",
                "Bytes read from the object store",
                &bytes_read,
            ),
            (
                "storage_written_bytes",
                "Bytes written to the object store",
                &bytes_written,
            ),
            ("scan_files", "Data files scans read", &files_scanned),
            (
                "scan_files_skipped",
                "Data files scans skipped by partition values, statistics or indexes",
                &files_skipped,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
        Self {
            registry,
            statements,
            statement_seconds,
            sessions,
            commits,
            grouped_appends,
            conflicts,
            bytes_read,
            bytes_written,
            files_scanned,
            files_skipped,
            compactions,
            cache_hits,
            cache_hit_bytes,
            cache_misses,
            cache_evictions,
            cache_used,
            statements_running,
            statements_queued,
            statements_refused,
        }
    }

    /// Counts a statement holding a slot until the guard drops.
    pub fn statement_running(&self) -> SessionGuard {
        self.statements_running.inc();
        SessionGuard(self.statements_running.clone())
    }

    /// Counts a statement waiting for a slot until the guard drops.
    pub fn statement_queued(&self) -> SessionGuard {
        self.statements_queued.inc();
        SessionGuard(self.statements_queued.clone())
    }

    pub fn statement_refused(&self) {
        self.statements_refused.inc();
    }

    /// A statement finished after `elapsed`.
    pub fn statement(&self, protocol: Protocol, ok: bool, elapsed: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.statements
            .get_or_create(&StatementLabels {
                protocol: protocol.name(),
                outcome,
            })
            .inc();
        self.statement_seconds
            .get_or_create(&ProtocolLabels {
                protocol: protocol.name(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts an open session until the returned guard drops.
    pub fn session(&self, protocol: Protocol) -> SessionGuard {
        let gauge = self
            .sessions
            .get_or_create(&ProtocolLabels {
                protocol: protocol.name(),
            })
            .clone();
        gauge.inc();
        SessionGuard(gauge)
    }

    pub fn commit(&self) {
        self.commits.inc();
    }

    /// `statements` appends were committed together in one commit.
    pub fn grouped_appends(&self, statements: u64) {
        self.grouped_appends.inc_by(statements);
    }

    pub fn conflict(&self) {
        self.conflicts.inc();
    }

    pub fn read(&self, bytes: u64) {
        self.bytes_read.inc_by(bytes);
    }

    pub fn written(&self, bytes: u64) {
        self.bytes_written.inc_by(bytes);
    }

    /// A scan read `scanned` files and skipped `skipped`.
    pub fn scan(&self, scanned: u64, skipped: u64) {
        self.files_scanned.inc_by(scanned);
        self.files_skipped.inc_by(skipped);
    }

    pub fn compaction(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.compactions
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// A read-cache tier answered a block lookup with `bytes`.
    pub fn cache_hit(&self, tier: &'static str, bytes: u64) {
        let labels = TierLabels { tier };
        self.cache_hits.get_or_create(&labels).inc();
        self.cache_hit_bytes.get_or_create(&labels).inc_by(bytes);
    }

    pub fn cache_miss(&self, tier: &'static str) {
        self.cache_misses.get_or_create(&TierLabels { tier }).inc();
    }

    pub fn cache_evicted(&self, tier: &'static str) {
        self.cache_evictions
            .get_or_create(&TierLabels { tier })
            .inc();
    }

    /// A read-cache tier now holds `bytes`.
    pub fn cache_used(&self, tier: &'static str, bytes: u64) {
        self.cache_used
            .get_or_create(&TierLabels { tier })
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// The metrics in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Keeps a session (or a running or queued statement) counted while it lives.
#[derive(Debug)]
pub struct SessionGuard(Gauge);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` fires.
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
    let app = Router::new().route(
        "/metrics",
        get(|| async { ([(CONTENT_TYPE, TEXT_FORMAT)], metrics().encode()) }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_appear_in_the_text_format() {
        let metrics = Metrics::new();
        metrics.statement(Protocol::Text, true, Duration::from_millis(3));
        metrics.statement(Protocol::Text, false, Duration::from_millis(3));
        metrics.commit();
        metrics.read(10);
        metrics.scan(2, 5);
        metrics.cache_hit("disk", 4096);
        metrics.cache_used("memory", 10);
        let session = metrics.session(Protocol::Flight);
        let text = metrics.encode();
        assert!(
            text.contains("minidb_statements_total{protocol=\"text\",outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains("minidb_commits_total 1"), "{text}");
        assert!(
            text.contains("minidb_storage_read_bytes_total 10"),
            "{text}"
        );
        assert!(text.contains("minidb_scan_files_skipped_total 5"), "{text}");
        assert!(
            text.contains("minidb_cache_hit_bytes_total{tier=\"disk\"} 4096"),
            "{text}"
        );
        assert!(
            text.contains("minidb_cache_used_bytes{tier=\"memory\"} 10"),
            "{text}"
        );
        assert!(
            text.contains("minidb_sessions_active{protocol=\"flight\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("minidb_statement_duration_seconds_bucket"),
            "{text}"
        );
        drop(session);
        assert!(
            metrics
                .encode()
                .contains("minidb_sessions_active{protocol=\"flight\"} 0")
        );
    }
}
