//! [`StatementReferences`]: how one statement opens the tables its foreign keys point at.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::common::{DataFusionError, Result};
use futures::future::BoxFuture;
use tokio::sync::Mutex as AsyncMutex;

use super::{Catalog, CatalogError};
use crate::table::foreign_keys::{ReferencedTable, ReferencedTables, foreign_keys};
use crate::table::{TableHandle, Transaction, Writer};

/// Opens a statement's parent and child tables for its foreign key checks and actions: inside a
/// transaction, as the transaction sees them (pinned, and locked in pessimistic mode, until it
/// ends); otherwise at the newest commit, under the table's writer lock in pessimistic mode.
///
/// A table opened twice while the first opening is still held is the same opening (its lock is
/// taken once); once every holder lets it go, its lock is released.
#[derive(Debug)]
pub struct StatementReferences {
    catalog: Arc<Catalog>,
    transaction: Option<Arc<Transaction>>,
    opened: AsyncMutex<HashMap<String, Weak<ReferencedTable>>>,
}

impl StatementReferences {
    pub fn new(catalog: Arc<Catalog>, transaction: Option<Arc<Transaction>>) -> Self {
        Self {
            catalog,
            transaction,
            opened: AsyncMutex::default(),
        }
    }

    /// Records `table` as the opening of `qualified` for as long as the caller holds it: the
    /// statement's own target, already locked, which its checks must not lock again.
    pub async fn hold(&self, qualified: &str, table: &Arc<ReferencedTable>) {
        self.opened
            .lock()
            .await
            .insert(qualified.to_string(), Arc::downgrade(table));
    }
}

impl StatementReferences {
    /// Opens `qualified`, locking it outside a transaction only when `lock`.
    async fn opening(&self, qualified: &str, lock: bool) -> Result<Option<Arc<ReferencedTable>>> {
        let mut opened = self.opened.lock().await;
        if let Some(table) = opened.get(qualified).and_then(Weak::upgrade) {
            return Ok(Some(table));
        }
        let Some(handle) = self.handle(qualified).await? else {
            return Ok(None);
        };
        let opening = match &self.transaction {
            Some(transaction) => {
                let part = transaction
                    .table(qualified, &handle)
                    .await
                    .map_err(|e| external(e.into()))?;
                ReferencedTable {
                    snapshot: part.snapshot(),
                    handle,
                    writer: Writer::Transaction(part),
                    _turn: None,
                }
            }
            None => {
                let turn = match lock {
                    true => handle
                        .lock_for_write()
                        .await
                        .map_err(|e| external(e.into()))?,
                    false => None,
                };
                let snapshot = handle.refresh().await.map_err(|e| external(e.into()))?;
                ReferencedTable {
                    snapshot,
                    writer: Writer::Autocommit(Arc::clone(&handle)),
                    handle,
                    _turn: turn,
                }
            }
        };
        let opening = Arc::new(opening);
        // An unlocked reading is not handed out as an opening: a later open() must lock.
        if lock || self.transaction.is_some() {
            opened.insert(qualified.to_string(), Arc::downgrade(&opening));
        }
        Ok(Some(opening))
    }

    /// The handle of `qualified`; `None` when there is no such table.
    async fn handle(&self, qualified: &str) -> Result<Option<Arc<TableHandle>>> {
        let Some((database, table)) = qualified.split_once('.') else {
            return Ok(None);
        };
        match self.catalog.table(database, table).await {
            Ok(handle) => Ok(Some(handle)),
            Err(CatalogError::TableNotFound(_)) => Ok(None),
            Err(e) => Err(external(e)),
        }
    }

    /// [`ReferencedTables::depth`], remembering the depths found on the way in `known`.
    fn depth_of<'a>(
        &'a self,
        qualified: &'a str,
        known: &'a mut HashMap<String, usize>,
        steps: usize,
    ) -> BoxFuture<'a, Result<usize>> {
        Box::pin(async move {
            if let Some(depth) = known.get(qualified) {
                return Ok(*depth);
            }
            // Foreign keys form no cycle (a table references only tables that existed before
            // it); the bound only keeps a damaged configuration from recursing forever.
            let Some(handle) = self.handle(qualified).await?.filter(|_| steps < MAX_DEPTH) else {
                return Ok(0);
            };
            let mut depth = 0;
            for key in foreign_keys(&handle.cached())? {
                if key.parent != qualified {
                    depth = depth.max(1 + self.depth_of(&key.parent, known, steps + 1).await?);
                }
            }
            known.insert(qualified.to_string(), depth);
            Ok(depth)
        })
    }
}

/// Deepest chain of foreign keys followed when ordering locks.
const MAX_DEPTH: usize = 64;

fn external(e: CatalogError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[async_trait]
impl ReferencedTables for StatementReferences {
    async fn open(&self, qualified: &str) -> Result<Option<Arc<ReferencedTable>>> {
        self.opening(qualified, true).await
    }

    async fn read(&self, qualified: &str) -> Result<Option<Arc<ReferencedTable>>> {
        self.opening(qualified, false).await
    }

    async fn depth(&self, qualified: &str) -> Result<usize> {
        self.depth_of(qualified, &mut HashMap::new(), 0).await
    }
}
