//! Background compaction: OPTIMIZE run by the server itself on tables that need it.
//!
//! Every `interval` a pass visits each table, one at a time. A table qualifies when it has at
//! least `min_small_files` files below three quarters of its target size, or when its deletion
//! vectors mark at least `deleted_ratio` of its rows deleted; the pass then runs the same
//! bin-packing OPTIMIZE a user would, in bins of at most 16 files, so the guarantees are
//! OPTIMIZE's: the rewrite reads a snapshot without locks, the commit (`dataChange:false`)
//! passes concurrent appends and drops any bin whose files a concurrent UPDATE or DELETE
//! changed meanwhile. User work wins every race: a pass left with nothing to commit records
//! the conflict and tries again next time.
//! `delta.autoOptimize.autoCompact = false` (Delta's property) takes a table out.
//!
//! Every run is logged, kept in `sys.compactions`, and reported by the admin service, which can
//! also start a pass at once. On shutdown the pass in progress is abandoned: a commit is one
//! atomic object write, so the table is either compacted or untouched, and files written for a
//! commit that never happened are orphans for VACUUM.

use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::object_store::ObjectStoreUrl;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Engine;
use crate::catalog::{CatalogError, CompactionRun};
use crate::metrics::metrics;
use crate::table::{TableHandle, optimize, properties};

/// When the background compactor runs and what makes a table worth compacting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompactionOptions {
    /// Time between passes; `None` turns the schedule off (the admin trigger still works).
    pub interval: Option<Duration>,
    /// Files below three quarters of the target size that make a table qualify.
    pub min_small_files: usize,
    /// Share of deleted rows (through deletion vectors) that makes a table qualify.
    pub deleted_ratio: f64,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        Self {
            interval: Some(Duration::from_secs(60)),
            min_small_files: 10,
            deleted_ratio: 0.1,
        }
    }
}

/// Files per rewrite bin: a concurrent UPDATE or DELETE of one file costs only its bin, so
/// compaction makes progress on a table under constant writes.
const BIN_FILES: usize = 16;

/// The table property that takes a table out of background compaction (Delta's name).
const AUTO_COMPACT: &str = "delta.autoOptimize.autoCompact";

/// The background compactor of one engine.
#[derive(Debug)]
pub struct Compactor {
    engine: Arc<Engine>,
    options: CompactionOptions,
    /// One pass at a time, whether scheduled or triggered.
    pass: Mutex<()>,
}

impl Compactor {
    pub fn new(engine: Arc<Engine>, options: CompactionOptions) -> Arc<Self> {
        Arc::new(Self {
            engine,
            options,
            pass: Mutex::new(()),
        })
    }

    pub fn options(&self) -> &CompactionOptions {
        &self.options
    }

    /// Runs passes on the schedule until `shutdown` fires; a pass in progress is abandoned.
    pub fn spawn(self: &Arc<Self>, shutdown: CancellationToken) -> JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let Some(interval) = this.options.interval else {
                return;
            };
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(interval) => {}
                }
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        tracing::info!("background compaction stopped during a pass");
                        break;
                    }
                    _ = this.run_pass("interval") => {}
                }
            }
        })
    }

    /// Visits every table once and compacts those that qualify; returns what it did.
    pub async fn run_pass(&self, trigger: &'static str) -> Vec<CompactionRun> {
        let _pass = self.pass.lock().await;
        let catalog = &self.engine.catalog;
        let mut runs = Vec::new();
        let databases = match catalog.databases().await {
            Ok(databases) => databases,
            Err(e) => {
                tracing::warn!(error = %e, "background compaction cannot list databases");
                return runs;
            }
        };
        for database in databases {
            let tables = match catalog.tables(&database).await {
                Ok(tables) => tables,
                Err(e) => {
                    tracing::warn!(database, error = %e, "background compaction cannot list tables");
                    continue;
                }
            };
            for table in tables {
                let handle = match catalog.table(&database, &table).await {
                    Ok(handle) => handle,
                    Err(CatalogError::TableNotFound(_)) => continue,
                    Err(e) => {
                        tracing::warn!(database, table, error = %e, "background compaction skips an unreadable table");
                        continue;
                    }
                };
                let Some(reason) = self.qualifies(&handle) else {
                    continue;
                };
                let run = self
                    .compact(&database, &table, &handle, trigger, reason)
                    .await;
                metrics().compaction(run.outcome.is_ok());
                match &run.outcome {
                    Ok(report) => tracing::info!(
                        database,
                        table,
                        reason = run.reason,
                        files_removed = report.files_removed,
                        files_added = report.files_added,
                        rows_purged = report.rows_purged,
                        version = report.version,
                        "background compaction"
                    ),
                    Err(e) => {
                        tracing::warn!(database, table, error = %e, "background compaction failed; retrying next pass")
                    }
                }
                catalog.maintenance().record(run.clone());
                runs.push(run);
                // Between tables, let waiting user work run first.
                tokio::task::yield_now().await;
            }
        }
        catalog
            .maintenance()
            .pass_finished(chrono::Utc::now().timestamp_millis());
        runs
    }

    /// Why the table needs compacting, if it does.
    fn qualifies(&self, handle: &TableHandle) -> Option<String> {
        let snapshot = handle.cached();
        let disabled = snapshot
            .metadata()
            .configuration
            .get(AUTO_COMPACT)
            .and_then(|v| v.as_deref())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
        if disabled {
            return None;
        }
        let target =
            properties::target_file_size(&snapshot).unwrap_or(properties::DEFAULT_TARGET_FILE_SIZE);
        let small = target / 4 * 3;
        let (mut small_files, mut rows, mut deleted) = (0usize, 0u64, 0u64);
        for (add, stats) in snapshot.files_with_stats() {
            if u64::try_from(add.size).unwrap_or_default() < small && add.deletion_vector.is_none()
            {
                small_files += 1;
            }
            rows += stats.num_records.unwrap_or_default();
            deleted += add.deleted_rows();
        }
        if small_files >= self.options.min_small_files.max(2) {
            return Some(format!("{small_files} small files"));
        }
        if deleted > 0 && deleted as f64 >= self.options.deleted_ratio * rows as f64 {
            return Some(format!("{deleted} of {rows} rows deleted"));
        }
        None
    }

    async fn compact(
        &self,
        database: &str,
        table: &str,
        handle: &Arc<TableHandle>,
        trigger: &'static str,
        reason: String,
    ) -> CompactionRun {
        let started_at_ms = chrono::Utc::now().timestamp_millis();
        let outcome = match ObjectStoreUrl::parse(self.engine.catalog.store().engine_url()) {
            Ok(store_url) => optimize(
                handle,
                &[],
                Some(BIN_FILES),
                store_url,
                self.engine.state.task_ctx(),
            )
            .await
            .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        CompactionRun {
            database: database.to_string(),
            table: table.to_string(),
            trigger,
            reason,
            started_at_ms,
            finished_at_ms: chrono::Utc::now().timestamp_millis(),
            outcome,
        }
    }
}
