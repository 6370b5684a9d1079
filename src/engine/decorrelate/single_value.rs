//! The value of a scalar subquery that is not an aggregate: its one row's value, NULL when it
//! chose no row, and an error when it chose more than one — SQL's rule for a subquery used as an
//! expression. As an aggregate, such a subquery takes the shape every unnesting handles.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, UInt64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Expr, Signature, Volatility,
};

/// What a scalar subquery that returns several rows fails with (DataFusion's words for the
/// uncorrelated case).
const MANY_ROWS: &str = "Scalar subquery returned more than one row";

/// `scalar_subquery_value(expr)`: the value of a scalar subquery over the rows it chose.
pub(super) fn single_value(expr: Expr) -> Expr {
    AggregateUDF::from(SingleValue::default()).call(vec![expr])
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SingleValue {
    signature: Signature,
}

impl Default for SingleValue {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for SingleValue {
    fn name(&self) -> &str {
        "scalar_subquery_value"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SingleValueAccumulator {
            value: ScalarValue::try_from(args.return_field.data_type())?,
            rows: 0,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(
                args.return_field
                    .as_ref()
                    .clone()
                    .with_name(format_state_name(args.name, "value"))
                    .with_nullable(true),
            ),
            Arc::new(Field::new(
                format_state_name(args.name, "rows"),
                DataType::UInt64,
                false,
            )),
        ])
    }
}

#[derive(Debug)]
struct SingleValueAccumulator {
    value: ScalarValue,
    rows: u64,
}

impl SingleValueAccumulator {
    /// Counts `rows` more rows, the first of which (if any) is at `values[0]`.
    fn take(&mut self, values: &ArrayRef, rows: u64) -> Result<()> {
        if rows == 0 {
            return Ok(());
        }
        self.rows += rows;
        if self.rows > 1 {
            return exec_err!("{MANY_ROWS}");
        }
        self.value = ScalarValue::try_from_array(values, 0)?;
        Ok(())
    }
}

impl Accumulator for SingleValueAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.take(&values[0], values[0].len() as u64)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let rows = states[1].as_primitive::<UInt64Type>();
        for i in 0..rows.len() {
            let counted = rows.value(i);
            if counted > 0 {
                self.take(&states[0].slice(i, 1), counted)?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            self.value.clone(),
            ScalarValue::UInt64(Some(self.rows)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.value.clone())
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.value.size() - size_of_val(&self.value)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int32Array;

    use super::*;

    fn accumulator() -> SingleValueAccumulator {
        SingleValueAccumulator {
            value: ScalarValue::Int32(None),
            rows: 0,
        }
    }

    fn states(accumulator: &mut SingleValueAccumulator) -> Vec<ArrayRef> {
        accumulator
            .state()
            .unwrap()
            .into_iter()
            .map(|v| v.to_array().unwrap())
            .collect()
    }

    #[test]
    fn one_row_is_the_value_and_none_is_null() {
        let mut empty = accumulator();
        empty
            .update_batch(&[Arc::new(Int32Array::from(Vec::<i32>::new()))])
            .unwrap();
        assert_eq!(empty.evaluate().unwrap(), ScalarValue::Int32(None));
        let mut one = accumulator();
        one.update_batch(&[Arc::new(Int32Array::from(vec![7]))])
            .unwrap();
        assert_eq!(one.evaluate().unwrap(), ScalarValue::Int32(Some(7)));
    }

    #[test]
    fn partial_states_merge_to_one_row_or_fail_on_two() {
        let mut empty = accumulator();
        let mut one = accumulator();
        one.update_batch(&[Arc::new(Int32Array::from(vec![7]))])
            .unwrap();
        let mut merged = accumulator();
        merged.merge_batch(&states(&mut empty)).unwrap();
        merged.merge_batch(&states(&mut one)).unwrap();
        assert_eq!(merged.evaluate().unwrap(), ScalarValue::Int32(Some(7)));
        let error = merged.merge_batch(&states(&mut one)).unwrap_err();
        assert!(error.to_string().contains(MANY_ROWS), "{error}");
    }

    #[test]
    fn two_rows_in_one_batch_fail() {
        let mut two = accumulator();
        let error = two
            .update_batch(&[Arc::new(Int32Array::from(vec![1, 2]))])
            .unwrap_err();
        assert!(error.to_string().contains(MANY_ROWS), "{error}");
    }
}
