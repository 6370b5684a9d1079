//! `ANALYZE TABLE t [(c1, …)]`: per-column statistics, stored with the table version and
//! handed to DataFusion's planner.
//!
//! ANALYZE reads the table's live rows once and computes, per column, the non-NULL count, the
//! NULL count, a distinct-count estimate (HyperLogLog, `approx_distinct`; exact for types it
//! does not take) and the minimum and maximum. They are committed in the table configuration
//! ([`STATISTICS_PROPERTY`], JSON), so they travel with the table version: time travel sees
//! the statistics of its version, checkpoints keep them, and other engines ignore the key. The
//! log lets such a commit and a concurrent data commit pass each other (the figures are
//! estimates anyway), so ANALYZE never makes a writer retry.
//! Analyzing some columns keeps the others' earlier figures; each column records the version
//! it was computed at.
//!
//! Every scan reports statistics to DataFusion: the row count and size of the files it reads
//! (from the log), and the analyzed column figures, all as estimates since rows may have
//! changed since. DataFusion uses them to choose join sides and to estimate how many rows a
//! filter keeps.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{DataType, Schema};
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, Result, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::functions_aggregate::expr_fn::{approx_distinct, count, count_distinct, max, min};
use datafusion::prelude::{Expr, SessionContext, ident, lit};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::external;
use super::{DeltaTableProvider, TableHandle};
use crate::table::TableError;
use crate::txlog::{Action, Operation, STATISTICS_PROPERTY, Snapshot, TxLogError};

/// Commit attempts of one ANALYZE when concurrent writers keep committing first.
const COMMIT_ATTEMPTS: usize = 5;

/// What ANALYZE found for one column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnStats {
    /// The table version the figures describe.
    pub version: i64,
    /// When ANALYZE ran, in milliseconds since the epoch.
    pub analyzed_at: i64,
    pub rows: u64,
    pub nulls: u64,
    pub distinct: u64,
    /// Minimum and maximum as text (the column's values cast to strings); `None` when the
    /// column holds only NULLs.
    pub min: Option<String>,
    pub max: Option<String>,
}

impl ColumnStats {
    /// The figures as DataFusion column statistics of a column of type `data_type`.
    pub fn to_datafusion(&self, data_type: &DataType) -> ColumnStatistics {
        let count = |n: u64| Precision::Inexact(usize::try_from(n).unwrap_or(usize::MAX));
        let value = |text: &Option<String>| {
            text.as_ref()
                .and_then(|t| ScalarValue::Utf8(Some(t.clone())).cast_to(data_type).ok())
                .map_or(Precision::Absent, Precision::Inexact)
        };
        ColumnStatistics::new_unknown()
            .with_null_count(count(self.nulls))
            .with_distinct_count(count(self.distinct))
            .with_min_value(value(&self.min))
            .with_max_value(value(&self.max))
    }
}

/// The analyzed statistics of `snapshot`'s table, by column (empty if never analyzed).
pub fn analyzed(snapshot: &Snapshot) -> Result<BTreeMap<String, ColumnStats>> {
    match snapshot
        .metadata()
        .configuration
        .get(STATISTICS_PROPERTY)
        .and_then(Option::as_deref)
    {
        Some(json) => serde_json::from_str(json).map_err(|e| {
            TableError::Corrupt(format!("table property {STATISTICS_PROPERTY}: {e}")).into()
        }),
        None => Ok(BTreeMap::new()),
    }
}

/// DataFusion column statistics for every column of `schema` (unknown where not analyzed).
pub fn column_statistics(
    analyzed: &BTreeMap<String, ColumnStats>,
    schema: &Schema,
) -> Vec<ColumnStatistics> {
    schema
        .fields()
        .iter()
        .map(|field| {
            analyzed
                .get(field.name())
                .map_or_else(ColumnStatistics::new_unknown, |s| {
                    s.to_datafusion(field.data_type())
                })
        })
        .collect()
}

/// Runs ANALYZE on `columns` (every column when empty) of the table behind `handle`, commits
/// the figures and returns them in column order.
pub async fn analyze(
    handle: &Arc<TableHandle>,
    name: &str,
    columns: &[String],
    store_url: ObjectStoreUrl,
    state: &SessionState,
) -> Result<Vec<(String, ColumnStats)>> {
    let snapshot = handle.refresh().await.map_err(external)?;
    let schema = Arc::clone(snapshot.schema());
    let mut chosen: Vec<usize> = Vec::new();
    for column in columns {
        let index = schema.index_of(column).map_err(|_| {
            TableError::Invalid(format!(
                "ANALYZE: '{column}' is not a column of table {name}"
            ))
        })?;
        if !chosen.contains(&index) {
            chosen.push(index);
        }
    }
    if columns.is_empty() {
        chosen = (0..schema.fields().len()).collect();
    }
    let mut aggregates: Vec<Expr> = vec![count(lit(1)).alias("rows")];
    for (i, index) in chosen.iter().enumerate() {
        let field = schema.field(*index);
        let column = ident(field.name());
        let distinct = if hll_counts(field.data_type()) {
            approx_distinct(column.clone())
        } else {
            count_distinct(column.clone())
        };
        aggregates.extend([
            count(column.clone()).alias(format!("values{i}")),
            distinct.alias(format!("distinct{i}")),
            min(column.clone()).alias(format!("min{i}")),
            max(column).alias(format!("max{i}")),
        ]);
    }
    let provider = DeltaTableProvider::new(
        name.to_string(),
        Arc::clone(handle),
        Arc::clone(&snapshot),
        store_url,
    );
    let batches = SessionContext::new_with_state(state.clone())
        .read_table(Arc::new(provider))?
        .aggregate(vec![], aggregates)?
        .collect()
        .await?;
    let batch = batches
        .first()
        .filter(|b| b.num_rows() == 1)
        .ok_or_else(|| TableError::Internal("ANALYZE got no aggregate row".into()))?;
    let now = chrono::Utc::now().timestamp_millis();
    let rows = integer(batch, "rows")?;
    let mut figures = Vec::with_capacity(chosen.len());
    for (i, index) in chosen.iter().enumerate() {
        let values = integer(batch, &format!("values{i}"))?;
        figures.push((
            schema.field(*index).name().clone(),
            ColumnStats {
                version: snapshot.version(),
                analyzed_at: now,
                rows,
                nulls: rows - values,
                distinct: integer(batch, &format!("distinct{i}"))?,
                min: text(batch, &format!("min{i}"))?,
                max: text(batch, &format!("max{i}"))?,
            },
        ));
    }
    commit(handle, &snapshot, &figures).await?;
    Ok(figures)
}

/// Types `approx_distinct` estimates; others are counted exactly.
fn hll_counts(data_type: &DataType) -> bool {
    data_type.is_integer()
        || matches!(
            data_type,
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Binary
                | DataType::Date32
                | DataType::Date64
                | DataType::Timestamp(..)
                | DataType::Decimal128(..)
        )
}

/// Merges `figures` into the newest version's statistics and commits them, retrying when a
/// concurrent statement commits first.
async fn commit(
    handle: &Arc<TableHandle>,
    analyzed_at: &Snapshot,
    figures: &[(String, ColumnStats)],
) -> Result<()> {
    for attempt in 1..=COMMIT_ATTEMPTS {
        let _turn = handle.lock_for_write().await.map_err(external)?;
        let newest = handle.refresh().await.map_err(external)?;
        // The figures name columns as the analyzed version did: a rename or a dropped and
        // re-added column since would pin them on another column.
        if newest.metadata().schema_string != analyzed_at.metadata().schema_string {
            return Err(TableError::Invalid(
                "the table's columns changed while ANALYZE ran; run it again".into(),
            )
            .into());
        }
        let mut all = analyzed(&newest)?;
        all.extend(figures.iter().cloned());
        let mut metadata = newest.metadata().clone();
        let json = serde_json::to_string(&all).map_err(|e| TableError::Internal(e.to_string()))?;
        metadata
            .configuration
            .insert(STATISTICS_PROPERTY.into(), Some(json));
        let operation = Operation {
            name: "ANALYZE".into(),
            parameters: HashMap::from([(
                "columns".into(),
                json!(figures.iter().map(|(c, _)| c).collect::<Vec<_>>()),
            )]),
            metrics: HashMap::new(),
            blind_append: false,
        };
        match handle
            .commit(&newest, operation, vec![Action::Metadata(metadata)])
            .await
        {
            Ok(_) => return Ok(()),
            Err(TxLogError::Conflict { .. }) if attempt < COMMIT_ATTEMPTS => continue,
            Err(e) => return Err(external(e)),
        }
    }
    Ok(())
}

/// The integer in column `name` of a one-row batch (NULL counts as 0).
fn integer(batch: &RecordBatch, name: &str) -> Result<u64> {
    let value = ScalarValue::try_from_array(column(batch, name)?, 0)?;
    match value.cast_to(&DataType::UInt64)? {
        ScalarValue::UInt64(n) => Ok(n.unwrap_or(0)),
        other => Err(TableError::Internal(format!("ANALYZE: {name} is {other}")).into()),
    }
}

/// The value in column `name` of a one-row batch, as text; `None` for NULL.
fn text(batch: &RecordBatch, name: &str) -> Result<Option<String>> {
    let value = ScalarValue::try_from_array(column(batch, name)?, 0)?;
    if value.is_null() {
        return Ok(None);
    }
    match value.cast_to(&DataType::Utf8)? {
        ScalarValue::Utf8(text) => Ok(text),
        other => Err(TableError::Internal(format!("ANALYZE: {name} is {other}")).into()),
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| TableError::Internal(format!("ANALYZE: no column {name}")).into())
}
