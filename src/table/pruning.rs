//! Per-file statistics from the Delta log, presented to DataFusion's `PruningPredicate`, and
//! merged over a scan's files for its planner.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, UInt64Array};
use arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::stats::Precision;
use datafusion::common::{Column, ColumnStatistics, ScalarValue};
use serde_json::Value;

use crate::txlog::{FileStats, physical_name};

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
        let key = physical_name(field);
        let values = self.stats.iter().map(|s| {
            let map = if max { &s.max_values } else { &s.min_values };
            map.get(key)
                .and_then(|v| scalar_from_json(v, data_type, max))
                .unwrap_or_else(|| {
                    ScalarValue::try_new_null(data_type).unwrap_or(ScalarValue::Null)
                })
        });
        ScalarValue::iter_to_array(values).ok()
    }
}

/// What the files' statistics together say of `field`'s column: the least minimum, the
/// greatest maximum and the sum of NULL counts, each only when every file records it; all
/// inexact (deleted rows only narrow them).
pub(crate) fn merged_statistics(field: &Field, stats: &[&FileStats]) -> ColumnStatistics {
    let name = physical_name(field);
    let data_type = field.data_type();
    let bound = |max: bool| {
        let mut merged: Option<ScalarValue> = None;
        for file in stats {
            let map = if max {
                &file.max_values
            } else {
                &file.min_values
            };
            let value = map
                .get(name)
                .and_then(|v| scalar_from_json(v, data_type, max))
                .filter(|v| !v.is_null())?;
            let wider = match &merged {
                None => true,
                Some(current) => {
                    let order = value.partial_cmp(current)?;
                    if max { order.is_gt() } else { order.is_lt() }
                }
            };
            if wider {
                merged = Some(value);
            }
        }
        merged
    };
    let nulls: Option<u64> = stats
        .iter()
        .map(|s| s.null_count.get(name).and_then(Value::as_u64))
        .sum();
    let inexact = |v: Option<ScalarValue>| v.map_or(Precision::Absent, Precision::Inexact);
    ColumnStatistics::new_unknown()
        .with_min_value(inexact(bound(false)))
        .with_max_value(inexact(bound(true)))
        .with_null_count(nulls.map_or(Precision::Absent, |n| {
            Precision::Inexact(usize::try_from(n).unwrap_or(usize::MAX))
        }))
}

/// Parses a stats bound back into the column's type. Timestamp maxima are widened by 999µs
/// because Delta writers truncate them to milliseconds.
pub(crate) fn scalar_from_json(
    value: &Value,
    data_type: &DataType,
    max: bool,
) -> Option<ScalarValue> {
    // The common types directly, without a round trip through text.
    let direct = match (value, data_type) {
        (Value::Number(n), DataType::Int64) => n.as_i64().map(|v| ScalarValue::Int64(Some(v))),
        (Value::Number(n), DataType::Int32) => n
            .as_i64()
            .and_then(|v| i32::try_from(v).ok())
            .map(|v| ScalarValue::Int32(Some(v))),
        (Value::Number(n), DataType::Float64) => n.as_f64().map(|v| ScalarValue::Float64(Some(v))),
        (Value::String(s), DataType::Utf8) => Some(ScalarValue::Utf8(Some(s.clone()))),
        (Value::Bool(b), DataType::Boolean) => Some(ScalarValue::Boolean(Some(*b))),
        _ => None,
    };
    if direct.is_some() {
        return direct;
    }
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
        let key = match self.schema.field_with_name(&column.name) {
            Ok(field) => physical_name(field),
            Err(_) => column.name.as_str(),
        };
        let counts: UInt64Array = self
            .stats
            .iter()
            .map(|s| s.null_count.get(key).and_then(Value::as_u64))
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stats(value: Value) -> FileStats {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn merged_statistics_span_every_file_or_say_nothing() {
        let field = Field::new("k", DataType::Int64, true);
        let a = stats(
            json!({"numRecords": 3, "minValues": {"k": 5}, "maxValues": {"k": 9},
                             "nullCount": {"k": 1}}),
        );
        let b = stats(
            json!({"numRecords": 2, "minValues": {"k": -2}, "maxValues": {"k": 7},
                             "nullCount": {"k": 0}}),
        );
        let merged = merged_statistics(&field, &[&a, &b]);
        assert_eq!(
            merged.min_value,
            Precision::Inexact(ScalarValue::Int64(Some(-2)))
        );
        assert_eq!(
            merged.max_value,
            Precision::Inexact(ScalarValue::Int64(Some(9)))
        );
        assert_eq!(merged.null_count, Precision::Inexact(1));

        // A file without a maximum (a long string, another writer) leaves the maximum unknown.
        let c = stats(json!({"numRecords": 1, "minValues": {"k": 0}}));
        let merged = merged_statistics(&field, &[&a, &b, &c]);
        assert_eq!(
            merged.min_value,
            Precision::Inexact(ScalarValue::Int64(Some(-2)))
        );
        assert_eq!(merged.max_value, Precision::Absent);
        assert_eq!(merged.null_count, Precision::Absent);
    }
}
