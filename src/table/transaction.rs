//! Transactions: each table's changes staged over a pinned snapshot, committed together.
//!
//! A [`Transaction`] pins each table at its first use (the snapshot all its reads see) and
//! stages every statement's actions on a private copy of that snapshot, so later statements see
//! the transaction's own writes and nobody else does. Data and deletion-vector files are written
//! as statements run (invisible until referenced by a commit); COMMIT turns each table's staged
//! state into ONE Delta commit on top of the pinned snapshot ([`Snapshot::changes_since`]).
//! ROLLBACK, or dropping the transaction (a client that disconnects), discards the staged state;
//! the files it wrote stay unreferenced until VACUUM.
//!
//! Concurrency, per [`Concurrency`] mode:
//! - *pessimistic*: the transaction's first use of a table (read or write) takes the table's
//!   writer lock and holds it until the transaction ends, so transactions of this server using
//!   the same table take turns and never conflict with each other (two transactions locking two
//!   tables in opposite orders wait for the lock timeout, then one fails with a retryable
//!   conflict). Autocommit reads never wait: they read the newest committed snapshot.
//! - *optimistic*: no locks; the commit applies Delta's conflict rules (a concurrent blind append
//!   is fine, anything else touching the table fails with a retryable conflict).
//!
//! Several tables are committed in name order; a conflict on the first table leaves nothing
//! behind. See `docs/architecture.md` for what "all-or-nothing" covers across tables.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::TableHandle;
use super::handle::WriterLock;
use crate::txlog::{Action, Operation, Snapshot, TxLogError};

/// How writers of one server coordinate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// Per-table writer locks inside the server; waiting longer than `lock_timeout` fails with a
    /// retryable conflict.
    Pessimistic { lock_timeout: Duration },
    /// Conditional-put commits and Delta's conflict rules only.
    Optimistic,
}

/// An open transaction over any number of tables.
#[derive(Debug)]
pub struct Transaction {
    id: String,
    tables: Mutex<BTreeMap<String, Arc<TxTable>>>,
}

impl Default for Transaction {
    fn default() -> Self {
        Self::new()
    }
}

impl Transaction {
    pub fn new() -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            tables: Mutex::default(),
        }
    }

    /// A unique id (Flight SQL's transaction id).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether no statement has used a table in this transaction yet.
    pub fn is_untouched(&self) -> bool {
        self.tables().is_empty()
    }

    /// The transaction's view of the table `name`, pinned at its first use — after taking the
    /// table's writer lock in pessimistic mode, so the pinned snapshot is the newest one.
    pub async fn table(
        &self,
        name: &str,
        handle: &Arc<TableHandle>,
    ) -> Result<Arc<TxTable>, TxLogError> {
        let existing = self.tables().get(name).cloned();
        let table = match existing {
            Some(table) => table,
            None => {
                let lock = handle.lock_for_write().await?;
                let base = handle.refresh().await?;
                let table = Arc::new(TxTable {
                    name: name.to_string(),
                    handle: Arc::clone(handle),
                    current: Mutex::new(Arc::clone(&base)),
                    base,
                    staged: Mutex::default(),
                    _lock: lock,
                });
                Arc::clone(self.tables().entry(name.to_string()).or_insert(table))
            }
        };
        Ok(table)
    }

    /// Commits every table's staged changes, one Delta commit per table, in name order; returns
    /// the names of the tables changed.
    pub async fn commit(&self) -> Result<Vec<String>, TxLogError> {
        let tables: Vec<Arc<TxTable>> = self.tables().values().cloned().collect();
        let changed: Vec<Arc<TxTable>> = tables.into_iter().filter(|t| t.has_changes()).collect();
        let mut committed = Vec::new();
        for table in &changed {
            table.commit().await.map_err(|e| match e {
                TxLogError::Conflict {
                    table: t,
                    version,
                    reason,
                } if !committed.is_empty() => TxLogError::Conflict {
                    table: t,
                    version,
                    reason: format!(
                        "{reason} (tables already committed by this transaction: {})",
                        committed.join(", ")
                    ),
                },
                other => other,
            })?;
            committed.push(table.name.clone());
        }
        Ok(committed)
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<TxTable>>> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What statements staged on one table.
#[derive(Debug, Default)]
struct Staged {
    /// Operation names, in order.
    operations: Vec<String>,
    /// True once any staged change read the table (anything but a blind append).
    read_table: bool,
}

/// One table inside a transaction: the pinned snapshot and the changes staged over it.
#[derive(Debug)]
pub struct TxTable {
    name: String,
    handle: Arc<TableHandle>,
    base: Arc<Snapshot>,
    current: Mutex<Arc<Snapshot>>,
    staged: Mutex<Staged>,
    /// The table's writer lock (pessimistic mode), released when the transaction ends.
    _lock: Option<WriterLock>,
}

impl TxTable {
    /// What the transaction sees: the pinned snapshot plus its own changes.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn handle(&self) -> &Arc<TableHandle> {
        &self.handle
    }

    /// Records one statement's actions, which later statements of the transaction see.
    pub fn stage(&self, operation: &Operation, actions: Vec<Action>) -> Result<(), TxLogError> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let next = current.advance(current.version(), actions)?;
        *current = Arc::new(next);
        let mut staged = self.staged.lock().unwrap_or_else(|e| e.into_inner());
        staged.operations.push(operation.name.clone());
        staged.read_table |= !operation.blind_append;
        Ok(())
    }

    fn has_changes(&self) -> bool {
        !self
            .staged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .operations
            .is_empty()
    }

    async fn commit(&self) -> Result<(), TxLogError> {
        let current = self.snapshot();
        let actions = current.changes_since(&self.base, chrono::Utc::now().timestamp_millis());
        let (operations, read_table) = {
            let staged = self.staged.lock().unwrap_or_else(|e| e.into_inner());
            (staged.operations.clone(), staged.read_table)
        };
        if actions.is_empty() {
            return Ok(());
        }
        let count = |f: fn(&Action) -> bool| actions.iter().filter(|a| f(a)).count();
        let operation = Operation {
            name: match operations.as_slice() {
                [only] => only.clone(),
                _ => "TRANSACTION".into(),
            },
            parameters: HashMap::from([("statements".into(), json!(operations))]),
            metrics: HashMap::from([
                (
                    "numAddedFiles".into(),
                    json!(count(|a| matches!(a, Action::Add(_)))),
                ),
                (
                    "numRemovedFiles".into(),
                    json!(count(|a| matches!(a, Action::Remove(_)))),
                ),
            ]),
            blind_append: !read_table,
        };
        self.handle.commit(&self.base, operation, actions).await?;
        Ok(())
    }
}

/// Where a statement's changes to one table go.
#[derive(Debug, Clone)]
pub enum Writer {
    /// Straight to the log, as the statement's own commit.
    Autocommit(Arc<TableHandle>),
    /// Into an open transaction.
    Transaction(Arc<TxTable>),
    /// Into the first commit of a table that does not exist yet (`CREATE TABLE … AS SELECT`):
    /// the actions wait until the commit that creates the table takes them.
    Pending(Arc<PendingCommit>),
}

/// Actions waiting for the commit that creates their table.
#[derive(Debug, Default)]
pub struct PendingCommit {
    actions: Mutex<Vec<Action>>,
}

impl PendingCommit {
    /// The actions staged so far, leaving none.
    pub fn take(&self) -> Vec<Action> {
        std::mem::take(&mut *self.actions.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Writer {
    /// Commits or stages `actions`, written on top of `read`.
    pub async fn apply(
        &self,
        read: &Arc<Snapshot>,
        operation: Operation,
        actions: Vec<Action>,
    ) -> Result<(), TxLogError> {
        match self {
            Writer::Autocommit(handle) => handle.append(read, operation, actions).await.map(|_| ()),
            Writer::Transaction(table) => table.stage(&operation, actions),
            Writer::Pending(pending) => {
                pending
                    .actions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(actions);
                Ok(())
            }
        }
    }
}
