//! A shared handle on one table's log and its newest known snapshot.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use object_store::path::Path;
use roaring::RoaringTreemap;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::damage::Damage;
use super::footers::FooterCache;
use super::group_commit::AppendQueue;
use super::index::{IndexCache, IndexDef, IndexScan, KeyCodec, Lookup, Probe, segment_location};
use super::scan::data_file;
use super::vectors::DeletionVectorCache;
use super::{Concurrency, TableError, properties};
use crate::metrics::metrics;
use crate::txlog::{Action, Add, DeltaLog, Operation, Snapshot, TxLogError};

/// A scan reads a file whole instead of through an index when the index lookup would need more
/// than this share of the segment's leaves.
const MAX_INDEX_SHARE: f64 = 0.25;

/// The caches every table of a server shares.
#[derive(Debug, Clone)]
pub struct TableCaches {
    /// Open index segments and their decoded leaves.
    pub indexes: Arc<IndexCache>,
    /// Parsed deletion vectors.
    pub vectors: Arc<DeletionVectorCache>,
    /// Parsed Parquet footers of data files (DataFusion's file metadata cache).
    pub footers: Arc<FooterCache>,
}

/// The budgets of [`TableCaches`], in bytes (0 keeps nothing).
#[derive(Debug, Clone, Copy)]
pub struct CacheBudgets {
    pub indexes: u64,
    pub vectors: u64,
    pub footers: u64,
}

impl TableCaches {
    /// Empty caches within `budgets`.
    pub fn new(budgets: CacheBudgets) -> Self {
        Self {
            indexes: Arc::new(IndexCache::new(budgets.indexes)),
            vectors: Arc::new(DeletionVectorCache::new(budgets.vectors)),
            footers: Arc::new(FooterCache::new(budgets.footers)),
        }
    }
}

/// A table's writer lock, held until dropped.
#[derive(Debug)]
pub struct WriterLock {
    _guard: OwnedMutexGuard<()>,
}

/// One table's log plus the newest snapshot this process has seen.
///
/// Readers take a snapshot and keep it for a whole statement; writers commit on top of the
/// snapshot they read. The cached snapshot only moves forward.
#[derive(Debug)]
pub struct TableHandle {
    log: DeltaLog,
    latest: RwLock<Arc<Snapshot>>,
    /// Held by a writer from reading the rows it changes until its commit (pessimistic
    /// concurrency), so writers in this process take turns instead of conflicting.
    writer: Arc<AsyncMutex<()>>,
    /// How this table's writers coordinate.
    concurrency: Concurrency,
    /// The caches shared by every table of the server.
    caches: TableCaches,
    /// The commit time (milliseconds since the epoch) log retention must pass before a log
    /// cleanup can delete anything (see [`CleanUp`]); unknown (`i64::MIN`) until the first.
    log_cleanup_due: Arc<AtomicI64>,
    /// The newest version this process started a checkpoint of.
    checkpointed: AtomicI64,
    /// Autocommit appends waiting for the next commit (group commit).
    appends: AppendQueue,
}

impl TableHandle {
    pub fn new(
        log: DeltaLog,
        snapshot: Snapshot,
        concurrency: Concurrency,
        caches: TableCaches,
    ) -> Self {
        Self {
            log,
            latest: RwLock::new(Arc::new(snapshot)),
            writer: Arc::new(AsyncMutex::new(())),
            concurrency,
            caches,
            log_cleanup_due: Arc::new(AtomicI64::new(i64::MIN)),
            checkpointed: AtomicI64::new(0),
            appends: AppendQueue::default(),
        }
    }

    pub fn log(&self) -> &DeltaLog {
        &self.log
    }

    /// The newest snapshot seen so far, without touching storage.
    pub fn cached(&self) -> Arc<Snapshot> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc; the value is intact.
        Arc::clone(&self.latest.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Reads commits made since the cached snapshot (by this or any other process).
    pub async fn refresh(&self) -> Result<Arc<Snapshot>, TxLogError> {
        let newest = self.log.update(&self.cached()).await?;
        self.remember(&newest);
        Ok(newest)
    }

    /// Commits `actions` on top of `read`, the snapshot the writer based them on.
    pub async fn commit(
        &self,
        read: &Arc<Snapshot>,
        operation: Operation,
        actions: Vec<Action>,
    ) -> Result<Arc<Snapshot>, TxLogError> {
        let removed = removed_files(&self.log, &actions);
        let committed = self.log.commit(read, operation, actions).await;
        if committed.is_ok() {
            metrics().commit();
        }
        self.committed(committed, &removed)
    }

    /// Commits an autocommit statement's `actions` on top of `read`: a blind append (only
    /// `add` actions) goes into the table's next commit together with the other appends
    /// waiting for it (see [`AppendQueue`]); anything else commits alone.
    pub async fn append(
        &self,
        read: &Arc<Snapshot>,
        operation: Operation,
        actions: Vec<Action>,
    ) -> Result<Arc<Snapshot>, TxLogError> {
        let grouped = operation.blind_append
            && !actions.is_empty()
            && actions.iter().all(|a| matches!(a, Action::Add(_)));
        if !grouped {
            return self.commit(read, operation, actions).await;
        }
        let committed = self
            .appends
            .commit(
                &self.log,
                || self.cached(),
                Arc::clone(read),
                operation,
                actions,
            )
            .await;
        self.committed(committed, &[])
    }

    /// What follows a commit attempt: counting a conflict, or forgetting the footers of the
    /// files it removed, remembering the new snapshot and writing a checkpoint when one is due.
    fn committed(
        &self,
        committed: Result<Arc<Snapshot>, TxLogError>,
        removed: &[Path],
    ) -> Result<Arc<Snapshot>, TxLogError> {
        let committed = committed.inspect_err(|e| {
            if matches!(e, TxLogError::Conflict { .. }) {
                metrics().conflict();
            }
        })?;
        self.caches.footers.forget_files(removed);
        self.remember(&committed);
        self.checkpoint_if_due(&committed);
        Ok(committed)
    }

    /// After every `delta.checkpointInterval`-th commit, writes a checkpoint and cleans up the
    /// log behind it, in the background: the commit is already durable, and a reader does not
    /// need the checkpoint (it replays commits instead), so a failure is only logged. Each
    /// version is checkpointed once, however many statements its commit answered.
    fn checkpoint_if_due(&self, snapshot: &Arc<Snapshot>) {
        let interval = properties::checkpoint_interval(snapshot).unwrap_or_else(|e| {
            tracing::warn!(table = %self.log.root(), "{e}; using the default");
            properties::DEFAULT_CHECKPOINT_INTERVAL
        });
        let version = snapshot.version();
        if version == 0
            || !(version as u64).is_multiple_of(interval)
            || self.checkpointed.fetch_max(version, Ordering::Relaxed) >= version
        {
            return;
        }
        let log = self.log.clone();
        let snapshot = Arc::clone(snapshot);
        let cleanup_due = Arc::clone(&self.log_cleanup_due);
        tokio::spawn(async move {
            if let Err(e) = checkpoint(&log, &snapshot, &cleanup_due).await {
                tracing::warn!(table = %log.root(), version = snapshot.version(), error = %e, "checkpoint failed");
            }
        });
    }

    /// In pessimistic mode, waits for this process's other writers of the table to finish and
    /// returns the lock; in optimistic mode, returns `None` at once.
    pub async fn lock_for_write(&self) -> Result<Option<WriterLock>, TxLogError> {
        match self.concurrency {
            Concurrency::Pessimistic { lock_timeout } => {
                self.lock_writer(lock_timeout).await.map(Some)
            }
            Concurrency::Optimistic => Ok(None),
        }
    }

    /// Waits up to `timeout` for this process's other writers of the table to finish.
    async fn lock_writer(&self, timeout: Duration) -> Result<WriterLock, TxLogError> {
        match tokio::time::timeout(timeout, Arc::clone(&self.writer).lock_owned()).await {
            Ok(guard) => Ok(WriterLock { _guard: guard }),
            Err(_) => {
                metrics().conflict();
                Err(TxLogError::LockTimeout {
                    table: self.log.table_name(),
                    waited: timeout,
                })
            }
        }
    }

    /// The rows `add`'s deletion vector marks deleted; `None` when it has none. A vector that
    /// is missing or does not check out is [`TableError::Damaged`], naming the data file.
    pub async fn deletion_vector(
        &self,
        add: &Add,
    ) -> Result<Option<Arc<RoaringTreemap>>, TableError> {
        let Some(descriptor) = &add.deletion_vector else {
            return Ok(None);
        };
        let root = self.log.root().as_ref();
        let id = descriptor.unique_id();
        if let Some(found) = self.caches.vectors.find(root, &id) {
            return Ok(Some(found));
        }
        let loaded = descriptor.load(&self.log).await;
        let bitmap = match loaded {
            Ok(bitmap) => Arc::new(bitmap),
            Err(TxLogError::DamagedDeletionVector { location, reason }) => {
                let file = data_file(&self.log, add).map_err(|e| {
                    TableError::Corrupt(format!("data file path '{}': {e}", add.path))
                })?;
                return Err(TableError::Damaged(Damage::at(
                    &file.object_meta.location,
                    format!("has a damaged deletion vector {location}: {reason}"),
                )));
            }
            Err(e) => return Err(e.into()),
        };
        self.caches.vectors.keep(root, id, Arc::clone(&bitmap));
        Ok(Some(bitmap))
    }

    /// The positions in `add`'s data file whose keys `scan`'s probes select (deleted rows
    /// included), or `None` when the file has no segment of the index or reading it whole is
    /// cheaper than the lookup.
    pub async fn index_lookup(
        &self,
        scan: &IndexScan,
        add: &Add,
    ) -> datafusion::common::Result<Option<RoaringTreemap>> {
        let Some(segment) = scan.index.segment_of(add) else {
            return Ok(None);
        };
        let location = segment_location(self.log.root(), segment)?;
        let found = self
            .caches
            .indexes
            .lookup(
                self.log.store(),
                &location,
                &scan.codec,
                &scan.probes,
                Some(MAX_INDEX_SHARE),
            )
            .await?;
        Ok(match found {
            Lookup::Positions(positions) => Some(positions),
            Lookup::TooWide => None,
        })
    }

    /// True when `add`'s data file holds a key `probe` selects, among its live rows.
    pub async fn index_contains(
        &self,
        index: &IndexDef,
        codec: &KeyCodec,
        add: &Add,
        probes: &[Probe],
    ) -> datafusion::common::Result<Option<bool>> {
        let Some(segment) = index.segment_of(add) else {
            return Ok(None);
        };
        let location = segment_location(self.log.root(), segment)?;
        let Lookup::Positions(mut positions) = self
            .caches
            .indexes
            .lookup(self.log.store(), &location, codec, probes, None)
            .await?
        else {
            return Ok(None);
        };
        if let Some(deleted) = self.deletion_vector(add).await? {
            positions -= deleted.as_ref();
        }
        Ok(Some(!positions.is_empty()))
    }

    fn remember(&self, snapshot: &Arc<Snapshot>) {
        let mut latest = self.latest.write().unwrap_or_else(|e| e.into_inner());
        if snapshot.version() > latest.version() {
            *latest = Arc::clone(snapshot);
        }
    }
}

/// The data files, relative to the store root, that `actions` take out of the table: those
/// removed and not added again (a new deletion vector removes and re-adds a file).
fn removed_files(log: &DeltaLog, actions: &[Action]) -> Vec<Path> {
    let added: HashSet<&str> = actions
        .iter()
        .filter_map(|action| match action {
            Action::Add(add) => Some(add.path.as_str()),
            _ => None,
        })
        .collect();
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Remove(remove) if !added.contains(remove.path.as_str()) => {
                log.file_path(&remove.path).ok()
            }
            _ => None,
        })
        .collect()
}

/// Writes the checkpoint of `snapshot`, keeping tombstones within file retention, then deletes
/// the commits that log retention lets go — when there can be any: a cleanup lists the whole
/// log, which grows with every commit, so it runs only once the commit it is due at
/// (`cleanup_due`, from the last cleanup) falls behind the retention cutoff.
async fn checkpoint(
    log: &DeltaLog,
    snapshot: &Snapshot,
    cleanup_due: &AtomicI64,
) -> Result<(), TxLogError> {
    let now = chrono::Utc::now().timestamp_millis();
    let before = |retention: Result<Duration, String>, default: Duration| {
        let retention = retention.unwrap_or_else(|e| {
            tracing::warn!(table = %log.root(), "{e}; using the default");
            default
        });
        now.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX))
    };
    log.checkpoint(
        snapshot,
        before(
            properties::retention(snapshot),
            properties::DEFAULT_RETENTION,
        ),
    )
    .await?;
    let cutoff = before(
        properties::log_retention(snapshot),
        properties::DEFAULT_LOG_RETENTION,
    );
    let mut expired_log_files = 0;
    if cleanup_due.load(Ordering::Relaxed) <= cutoff {
        let cleanup = log.clean_up(cutoff).await?;
        cleanup_due.store(cleanup.next_due, Ordering::Relaxed);
        expired_log_files = cleanup.deleted;
    }
    tracing::info!(
        table = %log.root(),
        version = snapshot.version(),
        expired_log_files,
        "checkpoint written"
    );
    Ok(())
}
