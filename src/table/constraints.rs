//! PRIMARY KEY enforcement for appends.
//!
//! The key columns are listed in the table configuration under [`PRIMARY_KEY_PROPERTY`] (a JSON
//! array of column names; the columns themselves are `nullable:false`), which other Delta
//! readers ignore. An append checks its keys against each other and against the rows of every
//! live file whose statistics overlap the range of new keys — for ordered keys that is one file
//! or none — before its commit. Such an append is not blind: it read the table, so a concurrent
//! commit makes it conflict (and retry) instead of letting a duplicate in.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::execution::TaskContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use futures::StreamExt;

use super::TableHandle;
use super::pruning::scalar_from_json;
use super::scan::{ParquetScan, live_file, parquet_scan};
use crate::txlog::Snapshot;

/// Table property holding the primary key columns.
pub const PRIMARY_KEY_PROPERTY: &str = "minidb.primaryKey";

/// The primary key of a table and the keys an append has seen so far.
pub struct KeyChecker {
    columns: Vec<String>,
    indices: Vec<usize>,
    converter: RowConverter,
    seen: HashSet<Box<[u8]>>,
    /// Smallest and largest new value of the first key column.
    range: Option<(ScalarValue, ScalarValue)>,
}

impl KeyChecker {
    /// The checker for `snapshot`'s primary key, or `None` when the table has none.
    pub fn for_table(snapshot: &Snapshot) -> Result<Option<Self>> {
        let Some(Some(json)) = snapshot.metadata().configuration.get(PRIMARY_KEY_PROPERTY) else {
            return Ok(None);
        };
        let columns: Vec<String> = serde_json::from_str(json)
            .map_err(|e| DataFusionError::Internal(format!("bad {PRIMARY_KEY_PROPERTY}: {e}")))?;
        let schema = snapshot.schema();
        let indices = columns
            .iter()
            .map(|c| schema.index_of(c))
            .collect::<Result<Vec<_>, _>>()?;
        let fields = indices
            .iter()
            .map(|i| SortField::new(schema.field(*i).data_type().clone()))
            .collect();
        Ok(Some(Self {
            columns,
            indices,
            converter: RowConverter::new(fields)?,
            seen: HashSet::new(),
            range: None,
        }))
    }

    /// The key's column names.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    fn key_columns(&self, batch: &RecordBatch) -> Vec<ArrayRef> {
        self.indices
            .iter()
            .map(|i| Arc::clone(batch.column(*i)))
            .collect()
    }

    /// Records the keys of new rows; fails on a key repeated within the statement.
    pub fn add_new(&mut self, batch: &RecordBatch) -> Result<()> {
        let columns = self.key_columns(batch);
        let rows = self.converter.convert_columns(&columns)?;
        for (i, row) in rows.iter().enumerate() {
            if !self.seen.insert(row.as_ref().into()) {
                return Err(self.violation(&columns, i));
            }
            let value = ScalarValue::try_from_array(&columns[0], i)?;
            self.range = Some(match self.range.take() {
                None => (value.clone(), value),
                Some((lo, hi)) => (
                    if value < lo { value.clone() } else { lo },
                    if value > hi { value } else { hi },
                ),
            });
        }
        Ok(())
    }

    /// Fails if a live row of `snapshot` already has one of the new keys.
    pub async fn check_existing(
        &self,
        snapshot: &Snapshot,
        handle: &TableHandle,
        store_url: ObjectStoreUrl,
        context: Arc<TaskContext>,
    ) -> Result<()> {
        let Some((lo, hi)) = &self.range else {
            return Ok(());
        };
        let schema: &SchemaRef = snapshot.schema();
        let first = &self.columns[0];
        let data_type = schema.field(self.indices[0]).data_type();
        let mut files = Vec::new();
        for (add, stats) in snapshot.files_with_stats() {
            let min = stats
                .min_values
                .get(first)
                .and_then(|v| scalar_from_json(v, data_type, false));
            let max = stats
                .max_values
                .get(first)
                .and_then(|v| scalar_from_json(v, data_type, true));
            let disjoint = max.is_some_and(|max| &max < lo) || min.is_some_and(|min| &min > hi);
            if !disjoint {
                files.push(live_file(handle, add, stats).await?);
            }
        }
        if files.is_empty() {
            return Ok(());
        }
        let plan = parquet_scan(ParquetScan {
            runtime: context.runtime_env(),
            store_url,
            schema: Arc::clone(schema).into(),
            files,
            projection: Some(self.indices.clone()),
            predicate: None,
            limit: None,
            partitions: 1,
        })?;
        let mut stream = plan.execute(0, context)?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let columns = batch.columns().to_vec();
            let rows = self.converter.convert_columns(&columns)?;
            if let Some(i) = rows.iter().position(|row| self.seen.contains(row.as_ref())) {
                return Err(self.violation(&columns, i));
            }
        }
        Ok(())
    }

    fn violation(&self, columns: &[ArrayRef], row: usize) -> DataFusionError {
        let options = FormatOptions::default().with_null("NULL");
        let values: Vec<String> = columns
            .iter()
            .map(|c| {
                ArrayFormatter::try_new(c.as_ref(), &options)
                    .map(|f| f.value(row).to_string())
                    .unwrap_or_else(|_| "?".into())
            })
            .collect();
        DataFusionError::Execution(format!(
            "duplicate key violates PRIMARY KEY ({}): ({}) already exists",
            self.columns.join(", "),
            values.join(", ")
        ))
    }
}
