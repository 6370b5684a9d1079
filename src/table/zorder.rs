//! Z-order keys for `OPTIMIZE … ZORDER BY (c1, c2, …)`.
//!
//! Sorting a table by one column clusters that column only; sorting by a Z-order key keeps
//! each of several columns clustered, so per-file min/max statistics skip files for a
//! predicate on any one of them. Each column is first rank-transformed, as Delta does on
//! Spark: a sample of its values gives up to 1024 quantile bounds, and a value's rank is the
//! number of bounds at or below it (values are compared in Arrow's byte-comparable row
//! format, so every type and NULL work alike). The ranks' bits are then interleaved, most
//! significant first, into one `UInt64` key. Ranks rather than raw bits keep skewed columns
//! (all values sharing a prefix, say) from dominating the key.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::table::TableError;
use arrow::array::{ArrayRef, UInt64Array};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalExpr, PhysicalSortExpr, ScalarFunctionExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;

/// Rows sampled per column to find its quantile bounds.
pub const SAMPLE_ROWS: usize = 100_000;

/// Bits of rank per column when there are few columns (1024 ranges).
const MAX_BITS: u32 = 10;

/// Most columns a Z-order may interleave.
pub const MAX_COLUMNS: usize = 8;

/// Name of the key column added for the sort.
const KEY_COLUMN: &str = "__minidb_zorder";

/// The rank bounds of each Z-order column, computed from a sample.
#[derive(Debug)]
pub struct ZOrder {
    columns: Vec<ColumnRanks>,
    bits: u32,
}

#[derive(Debug)]
struct ColumnRanks {
    converter: RowConverter,
    /// Ascending, distinct.
    bounds: Vec<OwnedRow>,
}

impl ZOrder {
    /// Z-order over columns of `types`, with bounds from `samples` (per column, its sampled
    /// values as arrays).
    pub fn from_samples(types: &[DataType], samples: &[Vec<ArrayRef>]) -> Result<Self> {
        let bits = (64 / types.len().max(1) as u32).min(MAX_BITS);
        let ranges = 1usize << bits;
        let columns = types
            .iter()
            .zip(samples)
            .map(|(data_type, arrays)| {
                let converter = RowConverter::new(vec![SortField::new(data_type.clone())])?;
                let mut values: Vec<OwnedRow> = Vec::new();
                for array in arrays {
                    let rows = converter.convert_columns(std::slice::from_ref(array))?;
                    values.extend(rows.iter().map(|r| r.owned()));
                }
                values.sort_unstable();
                let mut bounds: Vec<OwnedRow> = (1..ranges)
                    .filter_map(|i| values.get(i * values.len() / ranges).cloned())
                    .collect();
                bounds.dedup();
                Ok(ColumnRanks { converter, bounds })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { columns, bits })
    }

    /// How many low bits of a key are used.
    pub fn key_bits(&self) -> u32 {
        self.bits * self.columns.len() as u32
    }

    /// The Z-order key of each row of `columns` (one array per Z-order column).
    pub fn keys(&self, columns: &[ArrayRef]) -> Result<UInt64Array> {
        let rows = columns.first().map_or(0, |c| c.len());
        let mut ranks: Vec<Vec<u64>> = Vec::with_capacity(self.columns.len());
        for (ranking, array) in self.columns.iter().zip(columns) {
            let converted = ranking
                .converter
                .convert_columns(std::slice::from_ref(array))?;
            ranks.push(
                converted
                    .iter()
                    .map(|row| ranking.bounds.partition_point(|b| b.row() <= row) as u64)
                    .collect(),
            );
        }
        Ok((0..rows)
            .map(|row| {
                let mut key = 0u64;
                for bit in (0..self.bits).rev() {
                    for column in &ranks {
                        key = (key << 1) | ((column[row] >> bit) & 1);
                    }
                }
                key
            })
            .collect())
    }

    /// `input` sorted by the Z-order key of the columns at `columns`, with the key (`UInt64`)
    /// as an extra last column.
    pub fn sort(
        self: Arc<Self>,
        input: Arc<dyn ExecutionPlan>,
        columns: &[usize],
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema: SchemaRef = input.schema();
        let column = |i: usize| -> Arc<dyn PhysicalExpr> {
            Arc::new(Column::new(schema.field(i).name(), i))
        };
        let key = ScalarFunctionExpr::try_new(
            Arc::new(ScalarUDF::from(ZOrderKey(self))),
            columns.iter().map(|i| column(*i)).collect(),
            &schema,
            Arc::new(ConfigOptions::default()),
        )?;
        let width = schema.fields().len();
        let mut with_key: Vec<(Arc<dyn PhysicalExpr>, String)> = (0..width)
            .map(|i| (column(i), schema.field(i).name().clone()))
            .collect();
        with_key.push((Arc::new(key), KEY_COLUMN.into()));
        let keyed: Arc<dyn ExecutionPlan> = Arc::new(ProjectionExec::try_new(with_key, input)?);
        let order = LexOrdering::new([PhysicalSortExpr::new_default(Arc::new(Column::new(
            KEY_COLUMN, width,
        )))])
        .ok_or_else(|| TableError::Internal("empty Z-order sort".into()))?;
        Ok(Arc::new(SortExec::new(order, keyed)))
    }
}

/// The Z-order key as a scalar function, so DataFusion's sort (which spills) can order by it.
#[derive(Debug)]
struct ZOrderKey(Arc<ZOrder>);

impl PartialEq for ZOrderKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ZOrderKey {}

impl Hash for ZOrderKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.0).hash(state);
    }
}

/// The one signature every Z-order key function has.
fn signature() -> &'static Signature {
    static SIGNATURE: std::sync::OnceLock<Signature> = std::sync::OnceLock::new();
    SIGNATURE.get_or_init(|| Signature::variadic_any(Volatility::Immutable))
}

impl ScalarUDFImpl for ZOrderKey {
    fn name(&self) -> &str {
        "minidb_zorder_key"
    }

    fn signature(&self) -> &Signature {
        signature()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        Ok(ColumnarValue::Array(Arc::new(self.0.keys(&arrays)?)))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;

    use super::*;

    #[test]
    fn keys_interleave_the_ranks_of_each_column() {
        // Two columns sampled over 0..1024: each value is its own rank.
        let sample: ArrayRef = Arc::new(Int64Array::from_iter_values(0..1024));
        let zorder = ZOrder::from_samples(
            &[DataType::Int64, DataType::Int64],
            &[vec![Arc::clone(&sample)], vec![sample]],
        )
        .unwrap();
        let a: ArrayRef = Arc::new(Int64Array::from(vec![0, 1, 0, 1, 3, 1023]));
        let b: ArrayRef = Arc::new(Int64Array::from(vec![0, 0, 1, 1, 0, 1023]));
        let keys = zorder.keys(&[a, b]).unwrap();
        // Column a supplies the higher bit of each pair: a=1,b=0 → 0b10; a=3,b=0 → 0b1010.
        assert_eq!(keys.values().to_vec(), vec![0, 2, 1, 3, 10, (1 << 20) - 1]);
    }
}
