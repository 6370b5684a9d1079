//! Per-file statistics from the Delta log, presented to DataFusion's `PruningPredicate`.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, UInt64Array};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::{Column, ScalarValue};
use serde_json::Value;

use crate::txlog::FileStats;

/// Statistics of a list of files (the pruning "containers").
pub(crate) struct FilePruningStats<'a> {
    schema: &'a SchemaRef,
    stats: &'a [&'a FileStats],
}

impl<'a> FilePruningStats<'a> {
    pub(crate) fn new(schema: &'a SchemaRef, stats: &'a [&'a FileStats]) -> Self {
        Self { schema, stats }
    }

    fn bounds(&self, column: &Column, max: bool) -> Option<ArrayRef> {
        let field = self.schema.field_with_name(&column.name).ok()?;
        let data_type = field.data_type();
        let values = self.stats.iter().map(|s| {
            let map = if max { &s.max_values } else { &s.min_values };
            map.get(&column.name)
                .and_then(|v| scalar_from_json(v, data_type, max))
                .unwrap_or_else(|| {
                    ScalarValue::try_new_null(data_type).unwrap_or(ScalarValue::Null)
                })
        });
        ScalarValue::iter_to_array(values).ok()
    }
}

/// Parses a stats bound back into the column's type. Timestamp maxima are widened by 999µs
/// because Delta writers truncate them to milliseconds.
pub(crate) fn scalar_from_json(
    value: &Value,
    data_type: &DataType,
    max: bool,
) -> Option<ScalarValue> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    let scalar = ScalarValue::try_from_string(text, data_type).ok()?;
    match (scalar, data_type) {
        (
            ScalarValue::TimestampMicrosecond(Some(v), tz),
            DataType::Timestamp(TimeUnit::Microsecond, _),
        ) if max => Some(ScalarValue::TimestampMicrosecond(
            Some(v.saturating_add(999)),
            tz,
        )),
        (scalar, _) => Some(scalar),
    }
}

impl PruningStatistics for FilePruningStats<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bounds(column, false)
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bounds(column, true)
    }

    fn num_containers(&self) -> usize {
        self.stats.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        let counts: UInt64Array = self
            .stats
            .iter()
            .map(|s| s.null_count.get(&column.name).and_then(Value::as_u64))
            .collect();
        Some(Arc::new(counts))
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        let counts: UInt64Array = self.stats.iter().map(|s| s.num_records).collect();
        Some(Arc::new(counts))
    }

    fn contained(&self, _column: &Column, _values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}
