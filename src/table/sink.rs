//! [`DeltaSink`]: writes an INSERT's rows as Parquet files and commits them in one Delta commit.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::common::Result;
use datafusion::datasource::sink::DataSink;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::StreamExt;
use serde_json::json;

use super::constraints::KeyChecker;
use super::datafile::DataFilesWriter;
use super::error::external;
use super::foreign_keys::{ChildKeys, ReferencedTables};
use super::{TableHandle, Writer};
use crate::table::TableError;
use crate::txlog::{Action, Operation, Snapshot, TxLogError};
use datafusion::execution::object_store::ObjectStoreUrl;

/// Encoded size at which the writer starts a new data file.
const TARGET_FILE_BYTES: usize = 128 * 1024 * 1024;

/// Appends rows to a Delta table: data files first, then one commit referencing them all.
///
/// Nothing is visible until the commit exists; a failure before it leaves only unreferenced
/// files, which VACUUM removes.
#[derive(Debug)]
pub struct DeltaSink {
    table: String,
    handle: Arc<TableHandle>,
    snapshot: Arc<Snapshot>,
    store_url: ObjectStoreUrl,
    writer: Writer,
    /// Opens the parent tables of the table's foreign keys.
    references: Option<Arc<dyn ReferencedTables>>,
}

impl DeltaSink {
    pub fn new(
        table: String,
        handle: Arc<TableHandle>,
        snapshot: Arc<Snapshot>,
        store_url: ObjectStoreUrl,
        writer: Writer,
        references: Option<Arc<dyn ReferencedTables>>,
    ) -> Self {
        Self {
            table,
            handle,
            snapshot,
            store_url,
            writer,
            references,
        }
    }
}

impl DisplayAs for DeltaSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "DeltaSink: table={}", self.table)
    }
}

#[async_trait]
impl DataSink for DeltaSink {
    fn schema(&self) -> &SchemaRef {
        self.snapshot.schema()
    }

    async fn write_all(
        &self,
        mut data: SendableRecordBatchStream,
        context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let schema = Arc::clone(self.snapshot.schema());
        let mut keys = KeyChecker::for_table(&self.snapshot)?;
        let mut child_keys = ChildKeys::for_table(&self.table, &self.snapshot, None)?;
        let mut rows = 0u64;
        let mut files = DataFilesWriter::try_new(Arc::clone(&self.snapshot), TARGET_FILE_BYTES)?;
        while let Some(batch) = data.next().await {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            // Re-label the columns with the table schema, which checks NOT NULL columns.
            let batch = RecordBatch::try_new(Arc::clone(&schema), batch.columns().to_vec())
                .map_err(|e| TableError::Invalid(format!("{}: {e}", self.table)))?;
            for key in keys.iter_mut() {
                key.add_new(&batch)?;
            }
            child_keys.add_new(&batch)?;
            rows += batch.num_rows() as u64;
            files.write(&self.handle, &batch).await?;
        }
        let adds = files.finish(&self.handle).await?;
        if adds.is_empty() {
            return Ok(0);
        }
        // The parents are opened (and locked) before the table itself, and stay so until the
        // commit: parents before children is the order every writer takes locks in.
        let _parents = match (&self.references, child_keys.is_empty()) {
            (_, true) => Vec::new(),
            (Some(references), false) => {
                child_keys
                    .check(references.as_ref(), &self.store_url, context)
                    .await?
            }
            (None, false) => {
                return Err(TableError::Internal(format!(
                    "an append to {} cannot check its foreign keys",
                    self.table
                ))
                .into());
            }
        };
        // A keyed append read the table: in pessimistic mode it checks and commits under the
        // table's writer lock, on the newest snapshot, so racing keyed appends take turns
        // instead of conflicting.
        let mut base = Arc::clone(&self.snapshot);
        let _turn = match (&self.writer, keys.is_empty()) {
            (Writer::Autocommit(handle), false) => {
                let turn = handle.lock_for_write().await.map_err(external)?;
                if turn.is_some() {
                    base = handle.refresh().await.map_err(external)?;
                    // The rows were written and their keys found by the statement's columns.
                    if base.metadata().schema_string != self.snapshot.metadata().schema_string {
                        return Err(external(TxLogError::Conflict {
                            table: self.table.clone(),
                            version: base.version(),
                            reason: "the table's columns changed while the rows were written"
                                .into(),
                        }));
                    }
                }
                turn
            }
            _ => None,
        };
        for key in &keys {
            key.check_existing(
                &base,
                &self.handle,
                self.store_url.clone(),
                Arc::clone(context),
            )
            .await?;
        }
        let operation = Operation {
            name: "WRITE".into(),
            parameters: HashMap::from([("mode".into(), json!("Append"))]),
            metrics: HashMap::from([
                ("numFiles".into(), json!(adds.len())),
                ("numOutputRows".into(), json!(rows)),
            ]),
            // A key check read the table: a concurrent append must make this commit conflict.
            blind_append: keys.is_empty(),
        };
        let actions = adds.into_iter().map(Action::Add).collect();
        self.writer
            .apply(&base, operation, actions)
            .await
            .map_err(external)?;
        Ok(rows)
    }
}
