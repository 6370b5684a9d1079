//! [`StatementReferences`]: how one statement opens the tables its foreign keys point at.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::common::{DataFusionError, Result};
use tokio::sync::Mutex as AsyncMutex;

use super::{Catalog, CatalogError};
use crate::table::foreign_keys::{ReferencedTable, ReferencedTables};
use crate::table::{Transaction, Writer};

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

#[async_trait]
impl ReferencedTables for StatementReferences {
    async fn open(&self, qualified: &str) -> Result<Option<Arc<ReferencedTable>>> {
        let external = |e: CatalogError| DataFusionError::External(Box::new(e));
        let mut opened = self.opened.lock().await;
        if let Some(table) = opened.get(qualified).and_then(Weak::upgrade) {
            return Ok(Some(table));
        }
        let Some((database, table)) = qualified.split_once('.') else {
            return Ok(None);
        };
        let handle = match self.catalog.table(database, table).await {
            Ok(handle) => handle,
            Err(CatalogError::TableNotFound(_)) => return Ok(None),
            Err(e) => return Err(external(e)),
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
                let turn = handle
                    .lock_for_write()
                    .await
                    .map_err(|e| external(e.into()))?;
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
        opened.insert(qualified.to_string(), Arc::downgrade(&opening));
        Ok(Some(opening))
    }
}
