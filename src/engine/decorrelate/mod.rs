//! Subqueries of every shape, in every place SQL allows them.
//!
//! DataFusion unnests the common shapes itself: `EXISTS`/`IN` as conjuncts of WHERE, and
//! aggregate scalar subqueries correlated by equalities. MiniDB adds, in the order they run:
//!
//! 1. [`placement`], an analyzer rule: subqueries in ORDER BY and join conditions move into
//!    projections and filters, and a correlated scalar subquery that is not an aggregate
//!    becomes one (its single row's value, or the first row's for `ORDER BY … LIMIT 1`).
//! 2. [`domain`], an optimizer rule ahead of DataFusion's: the shapes DataFusion refuses —
//!    non-equality correlation, EXISTS/IN/ALL/ANY outside WHERE's conjuncts — unnested by a join
//!    with the outer row's distinct values (Neumann & Kemper's domain).
//! 3. DataFusion's own rules.
//! 4. [`ApplyRemaining`], an optimizer rule after those: whatever subquery is still in place is
//!    evaluated per distinct outer combination by the [`apply`] operator, which is correct for
//!    any shape. Subqueries that read a row two queries out go there at step 2 already.

mod apply;
mod domain;
mod placement;
mod single_value;

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{AnalyzerRule, OptimizerConfig, OptimizerRule};

pub(crate) use apply::SubqueryPlanner;
use domain::{DecorrelateByDomain, Mode};
use placement::PlaceSubqueries;

/// DataFusion's analyzer rules with [`placement`]'s ahead of type coercion.
pub(crate) fn analyzer_rules(
    mut rules: Vec<Arc<dyn AnalyzerRule + Send + Sync>>,
) -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
    let at = rules
        .iter()
        .position(|rule| rule.name() == "type_coercion")
        .unwrap_or(0);
    rules.insert(at, Arc::new(PlaceSubqueries));
    rules
}

/// DataFusion's optimizer rules with the domain unnesting just ahead of DataFusion's subquery
/// rules, those made [`Tolerant`], and [`ApplyRemaining`] just after them.
pub(crate) fn optimizer_rules(
    rules: Vec<Arc<dyn OptimizerRule + Send + Sync>>,
) -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let mut rules: Vec<Arc<dyn OptimizerRule + Send + Sync>> = rules
        .into_iter()
        .map(|rule| match rule.name() {
            "decorrelate_predicate_subquery" | "scalar_subquery_to_join" => {
                Arc::new(Tolerant(rule)) as Arc<dyn OptimizerRule + Send + Sync>
            }
            _ => rule,
        })
        .collect();
    let at = |rules: &[Arc<dyn OptimizerRule + Send + Sync>], name: &str| {
        rules.iter().position(|rule| rule.name() == name)
    };
    let first = at(&rules, "decorrelate_predicate_subquery").unwrap_or(0);
    rules.insert(first, Arc::new(DecorrelateByDomain));
    let last = at(&rules, "decorrelate_lateral_join")
        .or_else(|| at(&rules, "scalar_subquery_to_join"))
        .map_or(rules.len(), |i| i + 1);
    rules.insert(last, Arc::new(ApplyRemaining));
    rules
}

/// Every subquery still in a projection or a filter after DataFusion's unnesting, evaluated by
/// [`apply`].
#[derive(Debug, Default)]
struct ApplyRemaining;

impl OptimizerRule for ApplyRemaining {
    fn name(&self) -> &str {
        "apply_remaining_subqueries"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        domain::rewrite(plan, config, Mode::Apply)
    }
}

/// One of DataFusion's subquery rules, leaving a node it fails on as it was (for
/// [`ApplyRemaining`]) instead of failing the statement.
#[derive(Debug)]
struct Tolerant(Arc<dyn OptimizerRule + Send + Sync>);

impl OptimizerRule for Tolerant {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        self.0.apply_order()
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        if !holds_subquery(&plan) {
            return self.0.rewrite(plan, config);
        }
        Ok(self
            .0
            .rewrite(plan.clone(), config)
            .unwrap_or_else(|_| Transformed::no(plan)))
    }
}

/// Whether an expression of the node `plan` (not of its inputs) holds a subquery.
fn holds_subquery(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_expressions(|e| {
        found = has_subquery(e);
        Ok(match found {
            true => TreeNodeRecursion::Stop,
            false => TreeNodeRecursion::Continue,
        })
    });
    found
}

/// The columns of `schema`, as expressions.
fn column_exprs(schema: &DFSchema) -> Vec<Expr> {
    schema.columns().into_iter().map(Expr::Column).collect()
}

fn has_subquery(expr: &Expr) -> bool {
    expr.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
        ))
    })
    .unwrap_or(true)
}
