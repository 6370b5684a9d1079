//! Turning a scan's filters into index probes: key ranges in Arrow's row format.
//!
//! A filter can use an index when it pins a prefix of the index's columns with `=` or `IN`,
//! optionally followed by a range (`<`, `<=`, `>`, `>=`, `BETWEEN`) on the next column. Each
//! combination of pinned values becomes one [`Probe`]: a lower and upper bound on the key prefix.
//! Probes may select more rows than the filter (a NULL in a later column, say); the filter is
//! still applied to the rows read, so an index only ever narrows what is read, never the answer.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::ops::Bound;

use arrow::datatypes::{DataType, Schema};
use arrow::row::{RowConverter, SortField};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::utils::{split_binary, split_conjunction};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, expr::InList};

use super::IndexDef;

/// Most probes one scan sends to an index (the product of the `IN` list sizes).
const MAX_PROBES: usize = 1024;

/// Encodes keys, and prefixes of keys, of one index in Arrow's byte-comparable row format.
#[derive(Debug)]
pub struct KeyCodec {
    /// `prefixes[k]` encodes the first `k + 1` key columns; the row format of a prefix is a
    /// prefix of the row format of the whole key.
    prefixes: Vec<RowConverter>,
}

impl KeyCodec {
    pub fn new(types: &[DataType]) -> Result<Self> {
        let prefixes = (1..=types.len())
            .map(|k| {
                RowConverter::new(types[..k].iter().cloned().map(SortField::new).collect())
                    .map_err(Into::into)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { prefixes })
    }

    /// Encodes whole keys (one array per key column).
    pub fn keys(&self) -> &RowConverter {
        self.prefixes
            .last()
            .expect("an index has at least one column")
    }

    /// Encodes the first key column alone.
    pub fn first(&self) -> &RowConverter {
        &self.prefixes[0]
    }

    /// The row format of the key prefix `values`.
    fn encode(&self, values: &[ScalarValue]) -> Result<Box<[u8]>> {
        let columns = values
            .iter()
            .map(|v| v.to_array())
            .collect::<Result<Vec<_>>>()?;
        let rows = self.prefixes[values.len() - 1].convert_columns(&columns)?;
        Ok(rows.row(0).as_ref().into())
    }
}

/// One key range to look up: bounds on a key prefix, and on the first key column alone (which
/// choose the leaves to read).
#[derive(Debug, Clone)]
pub struct Probe {
    lower: Bound<Box<[u8]>>,
    upper: Bound<Box<[u8]>>,
    first_lower: Bound<Box<[u8]>>,
    first_upper: Bound<Box<[u8]>>,
}

impl Probe {
    /// Exactly the key `key` (row format of all key columns) whose first column is `first`.
    pub fn equal(key: &[u8], first: &[u8]) -> Self {
        Self {
            lower: Bound::Included(key.into()),
            upper: Bound::Included(key.into()),
            first_lower: Bound::Included(first.into()),
            first_upper: Bound::Included(first.into()),
        }
    }

    /// Keys starting with `pinned`, whose next column lies in `range` (if given).
    fn new(
        codec: &KeyCodec,
        pinned: &[ScalarValue],
        range: Option<&(Bound<ScalarValue>, Bound<ScalarValue>)>,
    ) -> Result<Self> {
        let with = |value: &ScalarValue| -> Result<Box<[u8]>> {
            let mut key = pinned.to_vec();
            key.push(value.clone());
            codec.encode(&key)
        };
        let prefix = if pinned.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Included(codec.encode(pinned)?)
        };
        let (lower, upper) = match range {
            None => (prefix.clone(), prefix),
            Some((low, high)) => (
                match low {
                    Bound::Included(v) => Bound::Included(with(v)?),
                    Bound::Excluded(v) => Bound::Excluded(with(v)?),
                    Bound::Unbounded => prefix.clone(),
                },
                match high {
                    Bound::Included(v) => Bound::Included(with(v)?),
                    Bound::Excluded(v) => Bound::Excluded(with(v)?),
                    Bound::Unbounded => prefix,
                },
            ),
        };
        let first = |bound: Bound<&ScalarValue>| -> Result<Bound<Box<[u8]>>> {
            Ok(match bound {
                Bound::Included(v) | Bound::Excluded(v) => {
                    Bound::Included(codec.encode(std::slice::from_ref(v))?)
                }
                Bound::Unbounded => Bound::Unbounded,
            })
        };
        let (first_lower, first_upper) = match (pinned.first(), range) {
            (Some(v), _) => (first(Bound::Included(v))?, first(Bound::Included(v))?),
            (None, Some((low, high))) => (first(low.as_ref())?, first(high.as_ref())?),
            (None, None) => (Bound::Unbounded, Bound::Unbounded),
        };
        Ok(Self {
            lower,
            upper,
            first_lower,
            first_upper,
        })
    }

    /// True when a leaf whose first-column values lie between `low` and `high` (row format of
    /// the first column; `None` = unknown) may hold keys of this probe.
    pub fn may_overlap(&self, low: Option<&[u8]>, high: Option<&[u8]>) -> bool {
        let above_lower = match (&self.first_lower, high) {
            (Bound::Included(lo) | Bound::Excluded(lo), Some(high)) => high >= lo.as_ref(),
            _ => true,
        };
        let below_upper = match (&self.first_upper, low) {
            (Bound::Included(hi) | Bound::Excluded(hi), Some(low)) => low <= hi.as_ref(),
            _ => true,
        };
        above_lower && below_upper
    }

    /// The range of `keys` (sorted, row format of whole keys) this probe selects.
    pub fn select<'a>(&self, keys: impl Fn(usize) -> &'a [u8], len: usize) -> (usize, usize) {
        let point = |pred: &dyn Fn(&[u8]) -> bool| partition_point(len, |i| pred(keys(i)));
        let start = match &self.lower {
            Bound::Included(p) => point(&|k| compare_prefix(k, p) == Ordering::Less),
            Bound::Excluded(p) => point(&|k| compare_prefix(k, p) != Ordering::Greater),
            Bound::Unbounded => 0,
        };
        let end = match &self.upper {
            Bound::Included(p) => point(&|k| compare_prefix(k, p) != Ordering::Greater),
            Bound::Excluded(p) => point(&|k| compare_prefix(k, p) == Ordering::Less),
            Bound::Unbounded => len,
        };
        (start, end.max(start))
    }
}

/// The first index in `0..len` where `pred` turns false (`pred` must be true, then false).
fn partition_point(len: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Orders a whole key against a key prefix: equal when the key starts with the prefix. Row
/// format encodings of values are self-delimiting, so this is the order of the prefix columns.
fn compare_prefix(key: &[u8], prefix: &[u8]) -> Ordering {
    if key.starts_with(prefix) {
        Ordering::Equal
    } else {
        key.cmp(prefix)
    }
}

/// An index a scan will use, and the probes to send it.
#[derive(Debug)]
pub struct IndexScan {
    pub index: IndexDef,
    pub codec: KeyCodec,
    pub probes: Vec<Probe>,
}

impl IndexScan {
    /// The index that narrows a scan with `filters` the most, if any can.
    pub fn choose(indexes: &[IndexDef], schema: &Schema, filters: &[Expr]) -> Result<Option<Self>> {
        let bounds = column_bounds(schema, filters);
        if bounds.is_empty() {
            return Ok(None);
        }
        let mut best: Option<(usize, usize, &IndexDef)> = None;
        for index in indexes {
            let (pinned, range) = usable_prefix(index, &bounds);
            if pinned == 0 && !range {
                continue;
            }
            let score = (pinned, usize::from(range));
            if best.is_none_or(|(p, r, _)| score > (p, r)) {
                best = Some((score.0, score.1, index));
            }
        }
        let Some((pinned, range, index)) = best else {
            return Ok(None);
        };
        let Ok(types) = index.key_types(schema) else {
            return Ok(None);
        };
        let codec = KeyCodec::new(&types)?;
        let mut combinations: Vec<Vec<ScalarValue>> = vec![Vec::new()];
        for column in &index.columns[..pinned] {
            let values = bounds[column.as_str()].equal.as_deref().unwrap_or_default();
            combinations = combinations
                .into_iter()
                .flat_map(|prefix| {
                    values.iter().map(move |v| {
                        let mut key = prefix.clone();
                        key.push(v.clone());
                        key
                    })
                })
                .collect();
        }
        let range = (range == 1).then(|| {
            let b = &bounds[index.columns[pinned].as_str()];
            (b.lower.clone(), b.upper.clone())
        });
        let probes = combinations
            .iter()
            .map(|pinned| Probe::new(&codec, pinned, range.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Self {
            index: index.clone(),
            codec,
            probes,
        }))
    }
}

/// How many leading columns of `index` the bounds pin to values (keeping the number of
/// combinations under [`MAX_PROBES`]), and whether the next one has a range.
fn usable_prefix(index: &IndexDef, bounds: &HashMap<&str, ColumnBounds>) -> (usize, bool) {
    let mut pinned = 0;
    let mut combinations = 1usize;
    for column in &index.columns {
        match bounds.get(column.as_str()).and_then(|b| b.equal.as_ref()) {
            Some(values) if combinations.saturating_mul(values.len()) <= MAX_PROBES => {
                combinations *= values.len();
                pinned += 1;
            }
            _ => break,
        }
    }
    let range = index
        .columns
        .get(pinned)
        .and_then(|c| bounds.get(c.as_str()))
        .is_some_and(|b| b.equal.is_none() && b.is_range());
    (pinned, range)
}

/// What the filters say about one column's values.
#[derive(Debug, Clone)]
pub struct ColumnBounds {
    /// The column equals one of these.
    pub equal: Option<Vec<ScalarValue>>,
    pub lower: Bound<ScalarValue>,
    pub upper: Bound<ScalarValue>,
}

impl Default for ColumnBounds {
    fn default() -> Self {
        Self {
            equal: None,
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
        }
    }
}

impl ColumnBounds {
    fn is_range(&self) -> bool {
        !matches!(
            (&self.lower, &self.upper),
            (Bound::Unbounded, Bound::Unbounded)
        )
    }

    fn restrict_lower(&mut self, bound: Bound<ScalarValue>) {
        if tighter(&bound, &self.lower, Ordering::Greater) {
            self.lower = bound;
        }
    }

    fn restrict_upper(&mut self, bound: Bound<ScalarValue>) {
        if tighter(&bound, &self.upper, Ordering::Less) {
            self.upper = bound;
        }
    }
}

/// True when `new` restricts more than `old`; `direction` is the order of a tighter value.
fn tighter(new: &Bound<ScalarValue>, old: &Bound<ScalarValue>, direction: Ordering) -> bool {
    let value = |b: &Bound<ScalarValue>| match b {
        Bound::Included(v) | Bound::Excluded(v) => Some(v.clone()),
        Bound::Unbounded => None,
    };
    match (value(new), value(old)) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(n), Some(o)) => match n.partial_cmp(&o) {
            Some(Ordering::Equal) => matches!(new, Bound::Excluded(_)),
            Some(order) => order == direction,
            None => false,
        },
    }
}

/// The bounds `filters` (a conjunction) put on single columns of `schema`.
pub fn column_bounds<'a>(schema: &'a Schema, filters: &[Expr]) -> HashMap<&'a str, ColumnBounds> {
    let mut bounds: HashMap<&str, ColumnBounds> = HashMap::new();
    let column = |expr: &Expr| match expr {
        Expr::Column(c) => schema
            .field_with_name(&c.name)
            .ok()
            .map(|f| (f.name().as_str(), f.data_type())),
        _ => None,
    };
    for conjunct in filters.iter().flat_map(split_conjunction) {
        match conjunct {
            // `c = 1 OR c = 2`, which is also what DataFusion makes of a short `c IN (1, 2)`.
            Expr::BinaryExpr(BinaryExpr {
                op: Operator::Or, ..
            }) => {
                let mut alternatives = split_binary(conjunct, Operator::Or).into_iter().map(|e| {
                    let Expr::BinaryExpr(BinaryExpr {
                        left,
                        op: Operator::Eq,
                        right,
                    }) = e
                    else {
                        return None;
                    };
                    let (name, data_type, literal) = match (column(left), column(right)) {
                        (Some((name, t)), None) => (name, t, right.as_ref()),
                        (None, Some((name, t))) => (name, t, left.as_ref()),
                        _ => return None,
                    };
                    Some((name, literal_of(literal, data_type)?))
                });
                let Some(Some((name, first))) = alternatives.next() else {
                    continue;
                };
                let mut values = vec![first];
                for alternative in alternatives {
                    match alternative {
                        Some((other, value)) if other == name => values.push(value),
                        _ => {
                            values.clear();
                            break;
                        }
                    }
                }
                if !values.is_empty() {
                    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
                    values.dedup();
                    restrict_equal(bounds.entry(name).or_default(), values);
                }
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (name, data_type, literal, op) = match (column(left), column(right)) {
                    (Some((name, t)), None) => (name, t, right.as_ref(), *op),
                    (None, Some((name, t))) => match op.swap() {
                        Some(swapped) => (name, t, left.as_ref(), swapped),
                        None => continue,
                    },
                    _ => continue,
                };
                let Some(value) = literal_of(literal, data_type) else {
                    continue;
                };
                let entry = bounds.entry(name).or_default();
                match op {
                    Operator::Eq => restrict_equal(entry, vec![value]),
                    Operator::Lt => entry.restrict_upper(Bound::Excluded(value)),
                    Operator::LtEq => entry.restrict_upper(Bound::Included(value)),
                    Operator::Gt => entry.restrict_lower(Bound::Excluded(value)),
                    Operator::GtEq => entry.restrict_lower(Bound::Included(value)),
                    _ => {}
                }
            }
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) => {
                let Some((name, data_type)) = column(expr) else {
                    continue;
                };
                let (Some(low), Some(high)) =
                    (literal_of(low, data_type), literal_of(high, data_type))
                else {
                    continue;
                };
                let entry = bounds.entry(name).or_default();
                entry.restrict_lower(Bound::Included(low));
                entry.restrict_upper(Bound::Included(high));
            }
            Expr::InList(InList {
                expr,
                list,
                negated: false,
            }) => {
                let Some((name, data_type)) = column(expr) else {
                    continue;
                };
                let values: Option<Vec<ScalarValue>> =
                    list.iter().map(|e| literal_of(e, data_type)).collect();
                if let Some(mut values) = values {
                    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
                    values.dedup();
                    restrict_equal(bounds.entry(name).or_default(), values);
                }
            }
            _ => {}
        }
    }
    bounds
}

/// Keeps the shorter of two lists of allowed values (either one is a superset of the answer).
fn restrict_equal(bounds: &mut ColumnBounds, values: Vec<ScalarValue>) {
    if bounds
        .equal
        .as_ref()
        .is_none_or(|old| values.len() < old.len())
    {
        bounds.equal = Some(values);
    }
}

/// A non-NULL literal as a value of the column's type, if it converts without loss.
fn literal_of(expr: &Expr, data_type: &DataType) -> Option<ScalarValue> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    if value.is_null() {
        return None;
    }
    let cast = value.cast_to(data_type).ok()?;
    let back = cast.cast_to(&value.data_type()).ok()?;
    (&back == value).then_some(cast)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::datatypes::Field;
    use datafusion::prelude::{col, lit};

    use super::*;

    fn sorted_keys(codec: &KeyCodec, columns: &[ArrayRef]) -> Vec<Vec<u8>> {
        let rows = codec.keys().convert_columns(columns).unwrap();
        let mut keys: Vec<Vec<u8>> = rows.iter().map(|r| r.as_ref().to_vec()).collect();
        keys.sort();
        keys
    }

    fn selected(probe: &Probe, keys: &[Vec<u8>]) -> (usize, usize) {
        probe.select(|i| keys[i].as_slice(), keys.len())
    }

    #[test]
    fn prefix_probes_find_runs_of_composite_keys() {
        let types = [DataType::Utf8, DataType::Int64];
        let codec = KeyCodec::new(&types).unwrap();
        let names: ArrayRef = Arc::new(StringArray::from(vec!["b", "a", "ab", "b", "a", "b"]));
        let numbers: ArrayRef = Arc::new(Int64Array::from(vec![3, 1, 7, 1, 2, 2]));
        // Sorted: (a,1) (a,2) (ab,7) (b,1) (b,2) (b,3)
        let keys = sorted_keys(&codec, &[names, numbers]);
        let a = [ScalarValue::from("a")];
        assert_eq!(
            selected(&Probe::new(&codec, &a, None).unwrap(), &keys),
            (0, 2)
        );
        let b = [ScalarValue::from("b")];
        let from_two = (Bound::Included(ScalarValue::from(2i64)), Bound::Unbounded);
        let probe = Probe::new(&codec, &b, Some(&from_two)).unwrap();
        assert_eq!(selected(&probe, &keys), (4, 6));
        let below_two = (Bound::Unbounded, Bound::Excluded(ScalarValue::from(2i64)));
        let probe = Probe::new(&codec, &b, Some(&below_two)).unwrap();
        assert_eq!(selected(&probe, &keys), (3, 4));
        let strings = (
            Bound::Excluded(ScalarValue::from("a")),
            Bound::Included(ScalarValue::from("b")),
        );
        let probe = Probe::new(&codec, &[], Some(&strings)).unwrap();
        assert_eq!(selected(&probe, &keys), (2, 6));
        let missing = [ScalarValue::from("c")];
        let probe = Probe::new(&codec, &missing, None).unwrap();
        assert_eq!(selected(&probe, &keys), (6, 6));
    }

    #[test]
    fn filters_choose_the_index_with_the_longest_pinned_prefix() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
            Field::new("c", DataType::Utf8, true),
        ]);
        let on_a = IndexDef::new("on_a".into(), vec!["a".into()], false);
        let on_ab = IndexDef::new("on_ab".into(), vec!["a".into(), "b".into()], false);
        let on_c = IndexDef::new("on_c".into(), vec!["c".into()], false);
        let indexes = [on_a, on_ab, on_c];
        let choose = |filters: Vec<Expr>| {
            IndexScan::choose(&indexes, &schema, &filters)
                .unwrap()
                .map(|scan| (scan.index.name, scan.probes.len()))
        };
        // Int32 literals are converted to the column's Int64.
        assert_eq!(
            choose(vec![col("a").eq(lit(1i32)).and(col("b").gt(lit(5i64)))]),
            Some(("on_ab".into(), 1))
        );
        assert_eq!(
            choose(vec![
                col("a").in_list(vec![lit(1i64), lit(2i64), lit(1i64)], false)
            ]),
            Some(("on_a".into(), 2))
        );
        assert_eq!(
            choose(vec![lit("x").eq(col("c"))]),
            Some(("on_c".into(), 1))
        );
        assert_eq!(choose(vec![col("b").eq(lit(1i64))]), None);
        assert_eq!(choose(vec![col("a").not_eq(lit(1i64))]), None);
        // 2.5 is no Int64: the filter cannot use an index on an integer column.
        assert_eq!(choose(vec![col("a").eq(lit(2.5f64))]), None);
    }
}
