//! Integer arithmetic that fails on overflow, as SQL requires.
//!
//! DataFusion adds, subtracts and multiplies integers with wrapping arithmetic, so
//! `SELECT 9223372036854775807 + 1` answered -9223372036854775808 and an `INT` column times
//! another silently wrapped past two billion. [`CheckedArithmetic`], an analyzer rule run after
//! type coercion, replaces `+`, `-` and `*` between two integers of the same type with
//! [`Checked`] functions, which compute with Arrow's checked kernels and fail with
//! "BIGINT out of range: 9223372036854775807 + 1". A replaced expression names its result
//! column as the operator did (`a + b`), so result names and the plans that refer to them are
//! unchanged; constant folding leaves an expression that overflows to execution, which
//! reports it. Decimal, floating-point, date and interval arithmetic keep DataFusion's rules.

use std::sync::Arc;

use arrow::compute::kernels::numeric;
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, DataFusionError, Result};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr_common::datum::apply;

use crate::catalog::sql_type_name;

/// Replaces integer `+`, `-` and `*` with [`Checked`] functions, in every plan and subquery.
#[derive(Debug)]
pub(crate) struct CheckedArithmetic {
    add: Arc<ScalarUDF>,
    subtract: Arc<ScalarUDF>,
    multiply: Arc<ScalarUDF>,
}

impl CheckedArithmetic {
    pub(crate) fn new() -> Self {
        let function = |op| Arc::new(ScalarUDF::from(Checked::new(op)));
        CheckedArithmetic {
            add: function(Operator::Plus),
            subtract: function(Operator::Minus),
            multiply: function(Operator::Multiply),
        }
    }

    fn function(&self, op: Operator) -> Option<&Arc<ScalarUDF>> {
        match op {
            Operator::Plus => Some(&self.add),
            Operator::Minus => Some(&self.subtract),
            Operator::Multiply => Some(&self.multiply),
            _ => None,
        }
    }

    /// `expr` with its integer operators checked; `schema` holds the columns it may refer to.
    fn checked(&self, expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        expr.transform_up(|expr| {
            let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &expr else {
                return Ok(Transformed::no(expr));
            };
            let Some(function) = self.function(*op) else {
                return Ok(Transformed::no(expr));
            };
            let integers = match (left.get_type(schema), right.get_type(schema)) {
                (Ok(l), Ok(r)) => l == r && l.is_integer(),
                _ => false,
            };
            if !integers {
                return Ok(Transformed::no(expr));
            }
            let args = vec![left.as_ref().clone(), right.as_ref().clone()];
            Ok(Transformed::yes(Expr::ScalarFunction(
                ScalarFunction::new_udf(Arc::clone(function), args),
            )))
        })
    }
}

impl AnalyzerRule for CheckedArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let schema = merge_schema(&plan.inputs());
            let transformed = plan.map_expressions(|expr| self.checked(expr, &schema))?;
            if transformed.transformed {
                transformed.map_data(|plan| plan.recompute_schema())
            } else {
                Ok(transformed)
            }
        })
        .map(|transformed| transformed.data)
    }

    fn name(&self) -> &str {
        "checked_arithmetic"
    }
}

/// `left op right` for two integers of one type, failing where the result does not fit it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Checked {
    op: Operator,
    signature: Signature,
}

impl Checked {
    fn new(op: Operator) -> Self {
        Checked {
            op,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Checked {
    fn name(&self) -> &str {
        match self.op {
            Operator::Plus => "checked_add",
            Operator::Minus => "checked_subtract",
            _ => "checked_multiply",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    /// The operator's own column name (`a + b`), so that replacing it renames nothing.
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(format!(
            "{} {} {}",
            args[0].schema_name(),
            self.op,
            args[1].schema_name()
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [left, right] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(format!(
                "{} takes two arguments",
                self.name()
            )));
        };
        let kernel = match self.op {
            Operator::Plus => numeric::add,
            Operator::Minus => numeric::sub,
            _ => numeric::mul,
        };
        apply(left, right, kernel).map_err(|e| match e {
            DataFusionError::ArrowError(overflow, _)
                if matches!(*overflow, ArrowError::ArithmeticOverflow(_)) =>
            {
                out_of_range(args.return_field.data_type(), &overflow)
            }
            other => other,
        })
    }
}

/// "BIGINT out of range: 9223372036854775807 + 1", from Arrow's overflow error.
fn out_of_range(data_type: &DataType, overflow: &ArrowError) -> DataFusionError {
    let detail = match overflow {
        ArrowError::ArithmeticOverflow(message) => message
            .strip_prefix("Overflow happened on: ")
            .unwrap_or(message),
        _ => "",
    };
    DataFusionError::Execution(format!(
        "{} out of range: {detail}",
        sql_type_name(data_type)
    ))
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::*;

    fn context() -> SessionContext {
        let context = SessionContext::new();
        context.add_analyzer_rule(Arc::new(CheckedArithmetic::new()));
        context
    }

    async fn first_value(sql: &str) -> Result<String> {
        let batches = context().sql(sql).await?.collect().await?;
        Ok(arrow::util::display::ArrayFormatter::try_new(
            batches[0].column(0).as_ref(),
            &Default::default(),
        )?
        .value(0)
        .to_string())
    }

    #[tokio::test]
    async fn integer_overflow_fails_and_names_the_type_and_the_operation() {
        let e = first_value("SELECT 9223372036854775807 + 1")
            .await
            .unwrap_err();
        assert_eq!(
            e.strip_backtrace(),
            "Execution error: BIGINT out of range: 9223372036854775807 + 1"
        );
        let e = first_value("SELECT CAST(x AS INT) * CAST(x AS INT) FROM (VALUES (100000)) t(x)")
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("INT out of range: 100000 * 100000"),
            "{e}"
        );
        let e = first_value("SELECT CAST(-2 AS SMALLINT) - CAST(32767 AS SMALLINT)").await;
        assert!(e.unwrap_err().to_string().contains("SMALLINT out of range"));
    }

    #[tokio::test]
    async fn arithmetic_that_fits_is_unchanged_and_keeps_its_column_name() {
        let sql = "SELECT x + 1, x - 2 * x FROM (VALUES (CAST(5 AS BIGINT))) t(x)";
        let names = |frame: &datafusion::dataframe::DataFrame| -> Vec<String> {
            frame
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        };
        let plain = SessionContext::new().sql(sql).await.unwrap();
        let frame = context().sql(sql).await.unwrap();
        assert_eq!(names(&frame), names(&plain));
        let plan = frame.clone().into_optimized_plan().unwrap().to_string();
        assert!(
            plan.contains("checked_subtract") && plan.contains("checked_multiply"),
            "{plan}"
        );
        let batches = frame.collect().await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(text.contains("| 6 ") && text.contains("| -5 "), "{text}");
        assert_eq!(first_value("SELECT 1.5 * 2").await.unwrap(), "3.0");
        assert_eq!(
            first_value("SELECT DATE '2024-01-31' + INTERVAL '1 month'")
                .await
                .unwrap(),
            "2024-02-29"
        );
    }
}
