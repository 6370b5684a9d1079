//! Row estimates for filters DataFusion cannot analyse, so that joins build on the side that is
//! really smaller.
//!
//! DataFusion estimates a filter's output by interval analysis of its whole predicate; one
//! conjunct it cannot analyse (an `OR`, a string comparison, a `LIKE`) makes it fall back to a
//! fixed 20% for the whole filter, however selective the rest is. A join then often builds its
//! hash table on the larger side. [`EstimateFilterSelectivity`] runs before DataFusion's join
//! selection and gives such filters an estimate made conjunct by conjunct: interval analysis
//! where it applies, `1/3` for an inequality between two columns (PostgreSQL's default; the
//! columns' ranges say nothing about how their values pair up), `1 - Π(1 - sᵢ)` for an `OR`,
//! and the configured default for the rest. Estimates steer plans only, never answers.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::common::Statistics;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::analysis::{AnalysisContext, analyze};
use datafusion::physical_expr::expressions::{BinaryExpr, CastExpr, Column};
use datafusion::physical_expr::intervals::utils::check_support;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};

/// The selectivity of an inequality between two columns.
const COLUMN_INEQUALITY: f64 = 1.0 / 3.0;

/// Sets the fallback selectivity of every filter DataFusion cannot analyse as a whole.
#[derive(Debug, Default)]
pub struct EstimateFilterSelectivity;

impl PhysicalOptimizerRule for EstimateFilterSelectivity {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let default = f64::from(config.optimizer.default_filter_selectivity) / 100.0;
        plan.transform_up(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else {
                return Ok(Transformed::no(node));
            };
            let schema = filter.input().schema();
            if check_support(filter.predicate(), &schema) {
                return Ok(Transformed::no(node));
            }
            let statistics = StatisticsContext::new()
                .compute(filter.input().as_ref(), &StatisticsArgs::new())?;
            let estimate = Estimator {
                schema: &schema,
                statistics: &statistics,
                default,
            }
            .selectivity(filter.predicate());
            let percent = (estimate * 100.0).round().clamp(1.0, 100.0) as u8;
            if percent == filter.default_selectivity() {
                return Ok(Transformed::no(node));
            }
            let rebuilt = FilterExecBuilder::from(filter)
                .with_default_selectivity(percent)
                .build()?;
            Ok(Transformed::yes(Arc::new(rebuilt) as Arc<dyn ExecutionPlan>))
        })
        .data()
    }

    fn name(&self) -> &str {
        "estimate_filter_selectivity"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Estimates the fraction of rows a predicate keeps.
struct Estimator<'a> {
    schema: &'a SchemaRef,
    statistics: &'a Statistics,
    default: f64,
}

impl Estimator<'_> {
    fn selectivity(&self, expr: &Arc<dyn PhysicalExpr>) -> f64 {
        if let Some(binary) = expr.downcast_ref::<BinaryExpr>() {
            match binary.op() {
                Operator::And => {
                    return self.selectivity(binary.left()) * self.selectivity(binary.right());
                }
                Operator::Or => {
                    let keep_left = self.selectivity(binary.left());
                    let keep_right = self.selectivity(binary.right());
                    return 1.0 - (1.0 - keep_left) * (1.0 - keep_right);
                }
                Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
                    if is_column(binary.left()) && is_column(binary.right()) =>
                {
                    return COLUMN_INEQUALITY;
                }
                _ => {}
            }
        }
        if check_support(expr, self.schema) {
            return self.analysed(expr).unwrap_or(self.default);
        }
        self.default
    }

    /// The selectivity interval analysis finds from the input's column statistics.
    fn analysed(&self, expr: &Arc<dyn PhysicalExpr>) -> Option<f64> {
        let context =
            AnalysisContext::try_from_statistics(self.schema, &self.statistics.column_statistics)
                .ok()?;
        analyze(expr, context, self.schema).ok()?.selectivity
    }
}

/// Whether `expr` is a column, or a cast of one.
fn is_column(expr: &Arc<dyn PhysicalExpr>) -> bool {
    match expr.downcast_ref::<CastExpr>() {
        Some(cast) => is_column(cast.expr()),
        None => expr.downcast_ref::<Column>().is_some(),
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::ScalarValue;
    use datafusion::common::stats::{ColumnStatistics, Precision};
    use datafusion::physical_expr::expressions::{binary, col, lit};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Int64, false),
            Field::new("s", DataType::Utf8, false),
        ]))
    }

    fn statistics() -> Statistics {
        let range = |min: i64, max: i64| ColumnStatistics {
            min_value: Precision::Inexact(ScalarValue::Int64(Some(min))),
            max_value: Precision::Inexact(ScalarValue::Int64(Some(max))),
            null_count: Precision::Inexact(0),
            ..ColumnStatistics::new_unknown()
        };
        Statistics {
            num_rows: Precision::Inexact(1000),
            total_byte_size: Precision::Absent,
            column_statistics: vec![
                range(0, 999),
                range(0, 999),
                ColumnStatistics::new_unknown(),
            ],
        }
    }

    fn estimate(expr: &Arc<dyn PhysicalExpr>) -> f64 {
        Estimator {
            schema: &schema(),
            statistics: &statistics(),
            default: 0.2,
        }
        .selectivity(expr)
    }

    fn op(
        left: Arc<dyn PhysicalExpr>,
        op: Operator,
        right: Arc<dyn PhysicalExpr>,
    ) -> Arc<dyn PhysicalExpr> {
        binary(left, op, right, &schema()).unwrap()
    }

    #[test]
    fn conjuncts_multiply_and_disjuncts_combine() {
        let s = schema();
        let range = op(col("a", &s).unwrap(), Operator::Lt, lit(100i64));
        assert!(
            (estimate(&range) - 0.1).abs() < 0.01,
            "{}",
            estimate(&range)
        );
        let columns = op(col("a", &s).unwrap(), Operator::Lt, col("b", &s).unwrap());
        assert!((estimate(&columns) - COLUMN_INEQUALITY).abs() < 1e-9);
        let text = op(col("s", &s).unwrap(), Operator::Eq, lit("x"));
        assert!((estimate(&text) - 0.2).abs() < 1e-9);
        let either = op(Arc::clone(&text), Operator::Or, Arc::clone(&text));
        assert!((estimate(&either) - 0.36).abs() < 1e-9);
        let all = op(op(range, Operator::And, columns), Operator::And, either);
        assert!((estimate(&all) - 0.1 * COLUMN_INEQUALITY * 0.36).abs() < 0.005);
    }

    #[test]
    fn the_rule_sets_the_estimate_of_filters_datafusion_cannot_analyse() {
        use datafusion::physical_plan::empty::EmptyExec;
        let s = schema();
        let predicate = op(
            op(col("a", &s).unwrap(), Operator::Lt, col("b", &s).unwrap()),
            Operator::And,
            op(col("s", &s).unwrap(), Operator::Eq, lit("x")),
        );
        let filter =
            FilterExec::try_new(predicate, Arc::new(EmptyExec::new(Arc::clone(&s)))).unwrap();
        let plan = EstimateFilterSelectivity
            .optimize(Arc::new(filter), &ConfigOptions::default())
            .unwrap();
        let filter = plan.downcast_ref::<FilterExec>().unwrap();
        assert_eq!(filter.default_selectivity(), 7); // 1/3 × 20%
    }
}
