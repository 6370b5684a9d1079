//! A shared handle on one table's log and its newest known snapshot.

use std::sync::{Arc, RwLock};

use crate::txlog::{Action, DeltaLog, Operation, Snapshot, TxLogError};

/// One table's log plus the newest snapshot this process has seen.
///
/// Readers take a snapshot and keep it for a whole statement; writers commit on top of the
/// snapshot they read. The cached snapshot only moves forward.
#[derive(Debug)]
pub struct TableHandle {
    log: DeltaLog,
    latest: RwLock<Arc<Snapshot>>,
}

impl TableHandle {
    pub fn new(log: DeltaLog, snapshot: Snapshot) -> Self {
        Self {
            log,
            latest: RwLock::new(Arc::new(snapshot)),
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
        let committed = self.log.commit(read, operation, actions).await?;
        self.remember(&committed);
        Ok(committed)
    }

    fn remember(&self, snapshot: &Arc<Snapshot>) {
        let mut latest = self.latest.write().unwrap_or_else(|e| e.into_inner());
        if snapshot.version() > latest.version() {
            *latest = Arc::clone(snapshot);
        }
    }
}
