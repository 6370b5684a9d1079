//! An analyzer rule that puts subqueries where the unnesting rules take them, before
//! DataFusion's checks would refuse them:
//!
//! - `ORDER BY (SELECT …)`: the subquery is computed by a projection below the sort, and a
//!   projection above the sort drops it again.
//! - a join's `ON … (SELECT …)`: a condition that reads one side is computed by a projection on
//!   that side, for any kind of join; one that reads both sides of an inner join becomes a
//!   filter above the join.
//! - a correlated scalar subquery that is not an aggregate becomes one, which is what every
//!   unnesting handles: `(SELECT y FROM s WHERE …)` is `(SELECT scalar_subquery_value(y) FROM
//!   s WHERE …)` (the one row's value, NULL for none, an error for several), and
//!   `(SELECT y … ORDER BY k LIMIT 1)` is `(SELECT first_value(y ORDER BY k) …)`.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, Result};
use datafusion::functions_aggregate::first_last::first_value;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    Expr, Join, JoinType, LogicalPlan, LogicalPlanBuilder, Projection, Sort, SortExpr, Subquery,
    col,
};
use datafusion::optimizer::AnalyzerRule;

use super::single_value::single_value;
use super::{column_exprs, has_subquery};

/// The rule; see the module documentation.
#[derive(Debug, Default)]
pub struct PlaceSubqueries;

impl AnalyzerRule for PlaceSubqueries {
    fn name(&self) -> &str {
        "place_subqueries"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            node.map_expressions(|e| e.transform(aggregate_scalar_subquery))?
                .transform_data(|node| match node {
                    LogicalPlan::Sort(sort) if sort.expr.iter().any(|s| has_subquery(&s.expr)) => {
                        Ok(Transformed::yes(place_in_sort(sort)?))
                    }
                    LogicalPlan::Join(join) if join.filter.as_ref().is_some_and(has_subquery) => {
                        place_in_join(join)
                    }
                    other => Ok(Transformed::no(other)),
                })
        })
        .map(|t| t.data)
    }
}

/// `Sort[k(subquery)] → input` ⇒ `Projection[input] → Sort[key] → Projection[input, k AS key]`.
fn place_in_sort(sort: Sort) -> Result<LogicalPlan> {
    let columns = column_exprs(sort.input.schema());
    let mut computed = columns.clone();
    let mut order = Vec::with_capacity(sort.expr.len());
    for (i, key) in sort.expr.into_iter().enumerate() {
        if has_subquery(&key.expr) {
            let name = format!("__minidb_order_key_{i}");
            computed.push(key.expr.clone().alias(&name));
            order.push(SortExpr {
                expr: col(Column::from_name(name)),
                ..key
            });
        } else {
            order.push(key);
        }
    }
    LogicalPlanBuilder::from(Arc::unwrap_or_clone(sort.input))
        .project(computed)?
        .sort_with_limit(order, sort.fetch)?
        .project(columns)?
        .build()
}

/// A join whose condition holds subqueries, with each such conjunct moved where the join's
/// meaning allows: one that reads a single side is computed by a projection on that side (the
/// condition then reads its column), for any kind of join; one that reads both sides of an
/// inner join becomes a filter above it. A join with a conjunct that fits neither is left as it
/// was.
fn place_in_join(mut join: Join) -> Result<Transformed<LogicalPlan>> {
    let Some(filter) = join.filter.clone() else {
        return Ok(Transformed::no(LogicalPlan::Join(join)));
    };
    let columns = column_exprs(&join.schema);
    let reads_only = |side: &LogicalPlan, e: &Expr| {
        referenced_columns(e)
            .iter()
            .all(|c| side.schema().has_column(c))
    };
    let mut left_computed: Vec<Expr> = Vec::new();
    let mut right_computed: Vec<Expr> = Vec::new();
    let mut kept: Vec<Expr> = Vec::new();
    let mut above: Vec<Expr> = Vec::new();
    for (i, conjunct) in split_conjunction(&filter).into_iter().cloned().enumerate() {
        if !has_subquery(&conjunct) {
            kept.push(conjunct);
            continue;
        }
        let name = format!("__minidb_on_{i}");
        if reads_only(&join.left, &conjunct) {
            left_computed.push(conjunct.alias(&name));
            kept.push(col(Column::from_name(name)));
        } else if reads_only(&join.right, &conjunct) {
            right_computed.push(conjunct.alias(&name));
            kept.push(col(Column::from_name(name)));
        } else if join.join_type == JoinType::Inner {
            above.push(conjunct);
        } else {
            return Ok(Transformed::no(LogicalPlan::Join(join)));
        }
    }
    let with_computed = |side: Arc<LogicalPlan>, computed: Vec<Expr>| -> Result<Arc<LogicalPlan>> {
        if computed.is_empty() {
            return Ok(side);
        }
        let columns = column_exprs(side.schema());
        let projected = LogicalPlanBuilder::from(Arc::unwrap_or_clone(side))
            .project(columns.into_iter().chain(computed))?
            .build()?;
        Ok(Arc::new(projected))
    };
    join.left = with_computed(join.left, left_computed)?;
    join.right = with_computed(join.right, right_computed)?;
    let joined = Join::try_new(
        join.left,
        join.right,
        join.on,
        conjunction(kept),
        join.join_type,
        join.join_constraint,
        join.null_equality,
        join.null_aware,
    )?;
    let mut plan = LogicalPlanBuilder::from(LogicalPlan::Join(joined));
    if let Some(predicate) = conjunction(above) {
        plan = plan.filter(predicate)?;
    }
    Ok(Transformed::yes(plan.project(columns)?.build()?))
}

/// The columns `expr` reads, those its subqueries read of the row around them included.
fn referenced_columns(expr: &Expr) -> Vec<Column> {
    let mut columns = Vec::new();
    let _ = expr.apply(|e| {
        match e {
            Expr::Column(c) => columns.push(c.clone()),
            Expr::ScalarSubquery(s) => columns.extend(outer_columns(s)),
            Expr::Exists(e) => columns.extend(outer_columns(&e.subquery)),
            Expr::InSubquery(i) => columns.extend(outer_columns(&i.subquery)),
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    columns
}

fn outer_columns(subquery: &Subquery) -> Vec<Column> {
    subquery
        .outer_ref_columns
        .iter()
        .filter_map(|e| match e {
            Expr::OuterReferenceColumn(_, c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// A correlated scalar subquery that may return several rows, as an aggregate.
fn aggregate_scalar_subquery(expr: Expr) -> Result<Transformed<Expr>> {
    let Expr::ScalarSubquery(subquery) = expr else {
        return Ok(Transformed::no(expr));
    };
    if subquery.outer_ref_columns.is_empty() || at_most_one_row(&subquery.subquery) {
        return Ok(Transformed::no(Expr::ScalarSubquery(subquery)));
    }
    let plan = as_aggregate(&subquery.subquery)?;
    Ok(Transformed::yes(Expr::ScalarSubquery(Subquery {
        subquery: Arc::new(plan),
        ..subquery
    })))
}

/// Whether `plan` is an aggregate without GROUP BY (under projections, aliases and a HAVING).
fn at_most_one_row(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Projection(p) => at_most_one_row(&p.input),
        LogicalPlan::SubqueryAlias(a) => at_most_one_row(&a.input),
        LogicalPlan::Filter(f) => at_most_one_row(&f.input),
        LogicalPlan::Aggregate(a) => a.group_expr.is_empty(),
        _ => false,
    }
}

/// `plan`'s one output column as an aggregate over the rows below its projections: the first
/// row's value in the order of a `LIMIT 1` over a sort, else the single row's value.
fn as_aggregate(plan: &LogicalPlan) -> Result<LogicalPlan> {
    let output = plan.schema().field(0).name().clone();
    let mut value = Expr::Column(plan.schema().columns().swap_remove(0));
    let mut order: Option<Vec<SortExpr>> = None;
    let mut first_row = false;
    let mut node = plan;
    loop {
        match node {
            LogicalPlan::Limit(_) if node.skip()?.unwrap_or(0) == 0 && node.fetch()? == Some(1) => {
                first_row = true;
            }
            LogicalPlan::Sort(sort) => {
                if first_row && order.is_none() {
                    order = Some(sort.expr.clone());
                }
                if sort.fetch == Some(1) {
                    first_row = true;
                    order = order.or_else(|| Some(sort.expr.clone()));
                }
            }
            LogicalPlan::Projection(projection) => {
                // A projection computing a subquery stays: aggregates take no subqueries.
                let outputs = outputs_of(projection);
                let below = through(value.clone(), &outputs)?;
                let keys = order
                    .iter()
                    .flatten()
                    .map(|k| {
                        Ok(SortExpr {
                            expr: through(k.expr.clone(), &outputs)?,
                            ..k.clone()
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                if has_subquery(&below) || keys.iter().any(|k| has_subquery(&k.expr)) {
                    break;
                }
                value = below;
                order = order.map(|_| keys);
            }
            _ => break,
        }
        node = node.inputs()[0];
    }
    let aggregate = match (first_row, order) {
        (true, order) => first_value(value, order.unwrap_or_default()),
        (false, _) => single_value(value),
    };
    LogicalPlanBuilder::from(node.clone())
        .aggregate(Vec::<Expr>::new(), vec![aggregate.alias(output)])?
        .build()
}

/// Each output column of `projection` with the expression that computes it.
fn outputs_of(projection: &Projection) -> Vec<(Column, Expr)> {
    projection
        .schema
        .columns()
        .into_iter()
        .zip(projection.expr.iter().map(|e| e.clone().unalias()))
        .collect()
}

/// `expr` over a projection's outputs, as an expression over the projection's input.
fn through(expr: Expr, outputs: &[(Column, Expr)]) -> Result<Expr> {
    expr.transform(|e| match &e {
        Expr::Column(column) => Ok(match outputs.iter().find(|(c, _)| c == column) {
            Some((_, computed)) => Transformed::yes(computed.clone()),
            None => Transformed::no(e),
        }),
        _ => Ok(Transformed::no(e)),
    })
    .map(|t| t.data)
}
