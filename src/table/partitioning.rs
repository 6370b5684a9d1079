//! Partitioned tables: `PARTITION BY HASH (c) [PARTITIONS n]` and `PARTITION BY RANGE (c) […]`.
//!
//! A partition is a set of data files, not a column: every data file holds rows of one
//! partition, and its `add` action names that partition in the tag [`PARTITION_TAG`]. The
//! declaration lives in the table configuration ([`PARTITIONING_PROPERTY`]); the Delta schema
//! and `partitionColumns` are untouched, so other engines read exactly the declared columns
//! and ignore the tag. Every writer (INSERT, an UPDATE's new rows, OPTIMIZE) splits its rows
//! by partition, and a scan reads only the files of the partitions its filters can match.
//! Files without the tag (appended by another engine) may hold any partition's rows: they are
//! always read, and OPTIMIZE moves their rows into partitioned files.
//!
//! - **HASH**: a row's partition is the CRC-32 of a canonical encoding of its value, modulo the
//!   number of partitions (integers of every width encode alike, so do strings of every kind);
//!   NULL goes to partition 0. Equality and `IN` filters prune.
//! - **RANGE with bounds**: `(PARTITION p0 VALUES LESS THAN (100), …, PARTITION pn VALUES LESS
//!   THAN (MAXVALUE))` as in MySQL; a value at or above the last bound is an error unless the
//!   last partition is `MAXVALUE`; NULL goes to the first partition. Equality, `IN` and range
//!   filters prune.
//! - **RANGE without bounds**: automatic ranges. Each file is its own partition, covering the
//!   range of values it holds (from its statistics); OPTIMIZE sorts by the column, so files
//!   cover disjoint ranges, and range filters prune the files whose range they miss.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, Scalar, UInt32Array, new_empty_array};
use arrow::compute::cast;
use arrow::compute::kernels::cmp::gt_eq;
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float64Type, Int64Type, Schema, TimeUnit,
    TimestampMicrosecondType, UInt64Type,
};
use datafusion::common::{Result, ScalarValue};
use serde::{Deserialize, Serialize};

use super::index::ColumnBounds;
use crate::table::TableError;
use crate::txlog::{Add, Snapshot};

/// Table property holding the table's partitioning: a JSON [`Partitioning`].
pub const PARTITIONING_PROPERTY: &str = "minidb.partitioning";

/// The `add` tag naming the partition (its number) whose rows a data file holds.
pub const PARTITION_TAG: &str = "minidb.partition";

/// Partitions of `PARTITION BY HASH` without `PARTITIONS n`.
pub const DEFAULT_HASH_PARTITIONS: u32 = 4;

/// Most partitions a table may declare.
pub const MAX_PARTITIONS: u32 = 1024;

/// A table's partitioning, as declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Partitioning {
    Hash {
        column: String,
        partitions: u32,
    },
    /// Without partitions: automatic ranges, one per file.
    Range {
        column: String,
        #[serde(default)]
        partitions: Vec<RangePartition>,
    },
}

/// One partition of `PARTITION BY RANGE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangePartition {
    pub name: String,
    /// Exclusive upper bound, as literal text converted to the column's type; `None` is
    /// `MAXVALUE`.
    pub less_than: Option<String>,
}

impl Partitioning {
    pub fn column(&self) -> &str {
        match self {
            Partitioning::Hash { column, .. } | Partitioning::Range { column, .. } => column,
        }
    }
}

/// Assigns rows to partitions and decides which partitions a filter can match.
#[derive(Debug, Clone)]
pub struct Partitioner {
    declared: Partitioning,
    /// Position of the partition column in the table schema.
    column: usize,
    scheme: Scheme,
}

#[derive(Debug, Clone)]
enum Scheme {
    Hash(u32),
    /// Partition `i` holds values below `bounds[i]` (and at or above `bounds[i - 1]`); with
    /// `max_value`, one more partition holds the rest.
    Range {
        bounds: Vec<ScalarValue>,
        names: Vec<String>,
        max_value: bool,
    },
    /// Range partitioning without bounds: each file is a partition.
    Automatic,
}

impl Partitioner {
    /// Checks `declared` against the table's columns.
    pub fn new(declared: Partitioning, schema: &Schema) -> Result<Self, String> {
        let name = declared.column();
        let column = schema
            .index_of(name)
            .map_err(|_| format!("partition column '{name}' is not a column of the table"))?;
        let data_type = schema.field(column).data_type();
        let scheme = match &declared {
            Partitioning::Hash { partitions, .. } => {
                if !(1..=MAX_PARTITIONS).contains(partitions) {
                    return Err(format!(
                        "PARTITIONS must be between 1 and {MAX_PARTITIONS}, not {partitions}"
                    ));
                }
                canonical(&new_empty_array(data_type)).map_err(|_| {
                    format!(
                        "PARTITION BY HASH does not support column '{name}' of type {data_type}"
                    )
                })?;
                Scheme::Hash(*partitions)
            }
            Partitioning::Range { partitions, .. } => {
                if !orderable(data_type) {
                    return Err(format!(
                        "PARTITION BY RANGE does not support column '{name}' of type {data_type}"
                    ));
                }
                if partitions.is_empty() {
                    Scheme::Automatic
                } else {
                    range_scheme(partitions, data_type)?
                }
            }
        };
        Ok(Self {
            declared,
            column,
            scheme,
        })
    }

    /// The partitioning `snapshot`'s table declares, if any.
    pub fn of(snapshot: &Snapshot) -> Result<Option<Self>> {
        let Some(json) = snapshot
            .metadata()
            .configuration
            .get(PARTITIONING_PROPERTY)
            .and_then(Option::as_deref)
        else {
            return Ok(None);
        };
        let declared: Partitioning = serde_json::from_str(json).map_err(|e| {
            TableError::Corrupt(format!("table property {PARTITIONING_PROPERTY}: {e}"))
        })?;
        Self::new(declared, snapshot.schema())
            .map(Some)
            .map_err(|e| TableError::Corrupt(e).into())
    }

    pub fn column_name(&self) -> &str {
        self.declared.column()
    }

    /// The column OPTIMIZE sorts by when the table has automatic ranges.
    pub fn automatic_ranges(&self) -> Option<usize> {
        matches!(self.scheme, Scheme::Automatic).then_some(self.column)
    }

    /// The partition of each row of `batch` (in the table schema); `None` with automatic
    /// ranges, where rows are not assigned.
    pub fn assign(&self, batch: &RecordBatch) -> Result<Option<UInt32Array>> {
        let values = batch.column(self.column);
        match &self.scheme {
            Scheme::Hash(partitions) => Ok(Some(
                hash_values(values)?
                    .into_iter()
                    .map(|hash| Some(hash.map_or(0, |h| h % partitions)))
                    .collect(),
            )),
            Scheme::Range {
                bounds, max_value, ..
            } => {
                let partitions = range_partitions(values, bounds)?;
                if !max_value
                    && let Some(row) = partitions.iter().position(|p| *p as usize == bounds.len())
                {
                    let value = ScalarValue::try_from_array(values, row)?;
                    return Err(TableError::Invalid(format!(
                        "no partition for value {value} of '{}': the last partition holds values below {}",
                        self.column_name(),
                        bounds[bounds.len() - 1]
                    )).into());
                }
                Ok(Some(UInt32Array::from(partitions)))
            }
            Scheme::Automatic => Ok(None),
        }
    }

    /// The partitions a filter with `bounds` on the partition column can match; `None` when it
    /// can match any (or the table has automatic ranges, pruned by file statistics instead).
    pub fn matching(&self, bounds: &ColumnBounds) -> Result<Option<BTreeSet<u32>>> {
        match &self.scheme {
            Scheme::Hash(partitions) => {
                let Some(values) = &bounds.equal else {
                    return Ok(None);
                };
                let mut matched = BTreeSet::new();
                for value in values {
                    for hash in hash_values(&value.to_array()?)?.into_iter().flatten() {
                        matched.insert(hash % partitions);
                    }
                }
                Ok(Some(matched))
            }
            Scheme::Range {
                bounds: upper_bounds,
                max_value,
                ..
            } => {
                let count = upper_bounds.len() + usize::from(*max_value);
                let below = |value: &ScalarValue, strict: bool| {
                    upper_bounds
                        .iter()
                        .filter(|b| match b.partial_cmp(&value) {
                            Some(Ordering::Less) => true,
                            Some(Ordering::Equal) => !strict,
                            _ => false,
                        })
                        .count()
                };
                if let Some(values) = &bounds.equal {
                    return Ok(Some(
                        values
                            .iter()
                            .map(|v| below(v, false))
                            .filter(|p| *p < count)
                            .map(|p| p as u32)
                            .collect(),
                    ));
                }
                let low = match &bounds.lower {
                    Bound::Included(v) | Bound::Excluded(v) => below(v, false),
                    Bound::Unbounded => 0,
                };
                let high = match &bounds.upper {
                    Bound::Included(v) => below(v, false),
                    Bound::Excluded(v) => below(v, true),
                    Bound::Unbounded => count,
                }
                .min(count.saturating_sub(1));
                Ok(Some((low..=high).map(|p| p as u32).collect()))
            }
            Scheme::Automatic => Ok(None),
        }
    }

    /// How sys tables and EXPLAIN name partition `id`.
    pub fn name(&self, id: u32) -> String {
        match &self.scheme {
            Scheme::Range { names, .. } => names
                .get(id as usize)
                .cloned()
                .unwrap_or_else(|| format!("p{id}")),
            _ => format!("p{id}"),
        }
    }

    /// The declaration as SQL, e.g. `HASH (id) PARTITIONS 4`.
    pub fn describe(&self) -> String {
        match &self.declared {
            Partitioning::Hash { column, partitions } => {
                format!("HASH ({column}) PARTITIONS {partitions}")
            }
            Partitioning::Range { column, partitions } if partitions.is_empty() => {
                format!("RANGE ({column})")
            }
            Partitioning::Range { column, partitions } => {
                let list: Vec<String> = partitions
                    .iter()
                    .map(|p| {
                        let bound = match &p.less_than {
                            None => "MAXVALUE".to_string(),
                            Some(n) if n.parse::<f64>().is_ok() => n.clone(),
                            Some(text) => format!("'{}'", text.replace('\'', "''")),
                        };
                        format!("PARTITION {} VALUES LESS THAN ({bound})", p.name)
                    })
                    .collect();
                format!("RANGE ({column}) ({})", list.join(", "))
            }
        }
    }
}

/// The partition a data file's rows belong to, when a MiniDB writer recorded it.
pub fn partition_of(add: &Add) -> Option<u32> {
    tagged_partition(add.tags.as_ref())
}

/// The partition recorded in an `add`'s (or a tombstone's) tags.
pub fn tagged_partition(tags: Option<&HashMap<String, Option<String>>>) -> Option<u32> {
    tags?.get(PARTITION_TAG)?.as_deref()?.parse().ok()
}

/// Records in `add` that its rows belong to partition `id`.
pub fn tag_partition(add: &mut Add, id: u32) {
    add.tags
        .get_or_insert_with(HashMap::new)
        .insert(PARTITION_TAG.into(), Some(id.to_string()));
}

fn range_scheme(partitions: &[RangePartition], data_type: &DataType) -> Result<Scheme, String> {
    if partitions.len() > MAX_PARTITIONS as usize {
        return Err(format!("at most {MAX_PARTITIONS} partitions"));
    }
    let mut bounds: Vec<ScalarValue> = Vec::with_capacity(partitions.len());
    let mut names: Vec<String> = Vec::with_capacity(partitions.len());
    let mut max_value = false;
    for (i, partition) in partitions.iter().enumerate() {
        if names.contains(&partition.name) {
            return Err(format!("partition '{}' is declared twice", partition.name));
        }
        names.push(partition.name.clone());
        let Some(text) = &partition.less_than else {
            if i + 1 != partitions.len() {
                return Err("only the last partition can be VALUES LESS THAN (MAXVALUE)".into());
            }
            max_value = true;
            continue;
        };
        let bound = ScalarValue::Utf8(Some(text.clone()))
            .cast_to(data_type)
            .ok()
            .filter(|b| !b.is_null())
            .ok_or_else(|| {
                format!(
                    "partition '{}': bound {text} is not a value of type {data_type}",
                    partition.name
                )
            })?;
        if let Some(previous) = bounds.last()
            && previous.partial_cmp(&bound) != Some(Ordering::Less)
        {
            return Err(format!(
                "partition '{}': VALUES LESS THAN must increase from one partition to the next",
                partition.name
            ));
        }
        bounds.push(bound);
    }
    Ok(Scheme::Range {
        bounds,
        names,
        max_value,
    })
}

/// Types with an order that RANGE bounds can split.
fn orderable(data_type: &DataType) -> bool {
    data_type.is_numeric()
        || matches!(
            data_type,
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Date32
                | DataType::Date64
                | DataType::Timestamp(..)
        )
}

/// Per value, the number of `bounds` at or below it (its range partition); NULL is 0.
fn range_partitions(values: &ArrayRef, bounds: &[ScalarValue]) -> Result<Vec<u32>> {
    let mut partitions = vec![0u32; values.len()];
    for bound in bounds {
        let at_or_above = gt_eq(values, &Scalar::new(bound.to_array()?))?;
        for (partition, above) in partitions.iter_mut().zip(at_or_above.iter()) {
            *partition += u32::from(above == Some(true));
        }
    }
    Ok(partitions)
}

/// `values` cast to the type whose bytes they hash as: values equal in SQL across widths and
/// kinds (an INT and a BIGINT, a VARCHAR and a TEXT) hash alike.
fn canonical(values: &ArrayRef) -> Result<ArrayRef> {
    let target = match values.data_type() {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => DataType::Int64,
        DataType::Float16 | DataType::Float32 | DataType::Float64 => DataType::Float64,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::Date32 | DataType::Date64 => DataType::Date32,
        DataType::Timestamp(_, zone) => DataType::Timestamp(TimeUnit::Microsecond, zone.clone()),
        DataType::UInt64 | DataType::Decimal128(..) | DataType::Boolean => {
            return Ok(Arc::clone(values));
        }
        other => {
            return Err(TableError::NotSupported(format!("hashing values of type {other}")).into());
        }
    };
    Ok(cast(values, &target)?)
}

/// The CRC-32 of each value's canonical encoding; `None` for NULL.
fn hash_values(values: &ArrayRef) -> Result<Vec<Option<u32>>> {
    let values = canonical(values)?;
    let hash = |bytes: &[u8]| crc32fast::hash(bytes);
    let hashes = (0..values.len()).map(|i| {
        if values.is_null(i) {
            return None;
        }
        Some(match values.data_type() {
            DataType::Int64 => hash(&values.as_primitive::<Int64Type>().value(i).to_le_bytes()),
            DataType::UInt64 => hash(&values.as_primitive::<UInt64Type>().value(i).to_le_bytes()),
            DataType::Float64 => {
                // -0.0 equals 0.0 in SQL.
                let value = values.as_primitive::<Float64Type>().value(i) + 0.0;
                hash(&value.to_bits().to_le_bytes())
            }
            DataType::Utf8 => hash(values.as_string::<i32>().value(i).as_bytes()),
            DataType::Date32 => hash(&values.as_primitive::<Date32Type>().value(i).to_le_bytes()),
            DataType::Timestamp(..) => hash(
                &values
                    .as_primitive::<TimestampMicrosecondType>()
                    .value(i)
                    .to_le_bytes(),
            ),
            DataType::Decimal128(..) => hash(
                &values
                    .as_primitive::<Decimal128Type>()
                    .value(i)
                    .to_le_bytes(),
            ),
            _ => hash(&[u8::from(values.as_boolean().value(i))]),
        })
    });
    Ok(hashes.collect())
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int32Array, Int64Array, StringArray};
    use arrow::datatypes::Field;

    use super::*;

    fn schema(data_type: DataType) -> Arc<Schema> {
        Arc::new(Schema::new(vec![Field::new("k", data_type, true)]))
    }

    fn range(bounds: &[Option<&str>]) -> Partitioning {
        Partitioning::Range {
            column: "k".into(),
            partitions: bounds
                .iter()
                .enumerate()
                .map(|(i, b)| RangePartition {
                    name: format!("r{i}"),
                    less_than: b.map(str::to_string),
                })
                .collect(),
        }
    }

    fn equal(values: &[i64]) -> ColumnBounds {
        ColumnBounds {
            equal: Some(
                values
                    .iter()
                    .map(|v| ScalarValue::Int64(Some(*v)))
                    .collect(),
            ),
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
        }
    }

    #[test]
    fn hash_partitions_agree_across_integer_widths_and_with_pruning() {
        let declared = Partitioning::Hash {
            column: "k".into(),
            partitions: 8,
        };
        let wide = Partitioner::new(declared.clone(), &schema(DataType::Int64)).unwrap();
        let narrow = Partitioner::new(declared, &schema(DataType::Int32)).unwrap();
        let keys: Vec<i64> = (0..1000).collect();
        let batch = |s: Arc<Schema>, a: ArrayRef| RecordBatch::try_new(s, vec![a]).unwrap();
        let by_wide = wide
            .assign(&batch(
                schema(DataType::Int64),
                Arc::new(Int64Array::from(keys.clone())),
            ))
            .unwrap()
            .unwrap();
        let by_narrow = narrow
            .assign(&batch(
                schema(DataType::Int32),
                Arc::new(Int32Array::from_iter_values(keys.iter().map(|k| *k as i32))),
            ))
            .unwrap()
            .unwrap();
        assert_eq!(by_wide, by_narrow);
        let used: BTreeSet<u32> = by_wide.values().iter().copied().collect();
        assert_eq!(used.len(), 8, "1000 keys spread over every partition");
        for key in [0i64, 17, 999] {
            let matched = wide.matching(&equal(&[key])).unwrap().unwrap();
            assert_eq!(matched, BTreeSet::from([by_wide.value(key as usize)]));
        }
    }

    #[test]
    fn range_partitions_follow_the_bounds() {
        let p = Partitioner::new(
            range(&[Some("10"), Some("20"), None]),
            &schema(DataType::Int64),
        )
        .unwrap();
        let batch = RecordBatch::try_new(
            schema(DataType::Int64),
            vec![Arc::new(Int64Array::from(vec![
                Some(-5),
                Some(10),
                Some(19),
                Some(20),
                Some(1000),
                None,
            ]))],
        )
        .unwrap();
        let assigned = p.assign(&batch).unwrap().unwrap();
        assert_eq!(assigned.values().to_vec(), vec![0, 1, 1, 2, 2, 0]);
        let between = |lower, upper| ColumnBounds {
            equal: None,
            lower,
            upper,
        };
        let v = |n: i64| ScalarValue::Int64(Some(n));
        let cases = [
            (Bound::Included(v(12)), Bound::Included(v(15)), vec![1]),
            (Bound::Unbounded, Bound::Excluded(v(10)), vec![0]),
            (Bound::Unbounded, Bound::Included(v(10)), vec![0, 1]),
            (Bound::Included(v(20)), Bound::Unbounded, vec![2]),
            (Bound::Excluded(v(5)), Bound::Excluded(v(25)), vec![0, 1, 2]),
        ];
        for (lower, upper, expected) in cases {
            let matched = p.matching(&between(lower, upper)).unwrap().unwrap();
            assert_eq!(matched.into_iter().collect::<Vec<_>>(), expected);
        }
        assert_eq!(
            p.matching(&equal(&[3, 25])).unwrap().unwrap(),
            BTreeSet::from([0, 2])
        );
    }

    #[test]
    fn values_beyond_the_last_bound_are_refused_without_maxvalue() {
        let p = Partitioner::new(range(&[Some("b"), Some("m")]), &schema(DataType::Utf8)).unwrap();
        let batch = RecordBatch::try_new(
            schema(DataType::Utf8),
            vec![Arc::new(StringArray::from(vec!["a", "zebra"]))],
        )
        .unwrap();
        let error = p.assign(&batch).unwrap_err().to_string();
        assert!(error.contains("no partition for value zebra"), "{error}");
    }

    #[test]
    fn declarations_are_checked() {
        let int = schema(DataType::Int64);
        let error = |declared| Partitioner::new(declared, &int).unwrap_err();
        assert!(error(range(&[Some("20"), Some("10")])).contains("must increase"));
        assert!(error(range(&[None, Some("10")])).contains("only the last"));
        assert!(error(range(&[Some("ten")])).contains("not a value of type Int64"));
        assert!(
            error(Partitioning::Hash {
                column: "k".into(),
                partitions: 0
            })
            .contains("between 1 and")
        );
        assert!(
            error(Partitioning::Hash {
                column: "nope".into(),
                partitions: 2
            })
            .contains("not a column")
        );
    }
}
