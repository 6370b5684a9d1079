//! Correlated subqueries DataFusion's own rules leave in place, unnested by a domain join
//! (Neumann & Kemper, "Unnesting Arbitrary Queries", 2015).
//!
//! DataFusion unnests a scalar subquery only when its correlation is plain equalities with the
//! outer row, and EXISTS and IN only as top-level conjuncts of WHERE; anything else fails to
//! plan (`SELECT a, (SELECT count(*) FROM t AS x WHERE x.b < t.b) FROM t`). This rule takes
//! the shapes those queries have — an aggregate without GROUP BY over rows a predicate on the
//! outer row chooses, or an EXISTS or IN over such rows — in a projection or a filter:
//!
//! ```text
//! (SELECT f(agg(…)) FROM s WHERE p(s, outer))
//!   ⇒  outer ⟕[outer.c IS NOT DISTINCT FROM d.c]
//!        (SELECT d.c, f(agg(…) FILTER (WHERE mark IS NOT NULL))
//!           FROM (SELECT DISTINCT c FROM outer) d ⟕[p(s, d)] (SELECT *, true AS mark FROM s)
//!          GROUP BY d.c)
//! ```
//!
//! The domain `d` holds each distinct combination of the outer columns the subquery reads, so
//! the subquery is evaluated once per combination, whatever its predicate. The left join keeps
//! combinations no row matches, and the `mark` filter makes their aggregates those of an empty
//! set — `count(*)` is 0, not 1 (the "COUNT bug"), `sum` is NULL. `EXISTS (…)` is
//! `count(*) > 0` over the same join; `x IN (…)` counts matches, rows and NULL items to give
//! SQL's three-valued answer. The outer row finds its combination by null-safe equality, so
//! an outer NULL finds the combination whose predicate saw NULL.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, NullEquality, Result, ScalarValue};
use datafusion::logical_expr::expr::{Exists, InSubquery};
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    BinaryExpr, Expr, ExprFunctionExt, Filter, JoinType, LogicalPlan, LogicalPlanBuilder, Operator,
    Projection, Subquery, col, lit, when,
};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::apply::{self, Apply, Reach, reach};
use super::{column_exprs, has_subquery, holds_subquery};

/// The rule; see the module documentation.
#[derive(Debug, Default)]
pub struct DecorrelateByDomain;

impl OptimizerRule for DecorrelateByDomain {
    fn name(&self) -> &str {
        "decorrelate_by_domain"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        rewrite(plan, config, Mode::Unnest)
    }
}

/// What a rewrite does with the subqueries it finds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Unnest the shapes this module knows; apply those that read a row two queries out; leave
    /// the rest (and the conjuncts of WHERE DataFusion unnests) to DataFusion.
    Unnest,
    /// Apply every subquery still in place (after DataFusion's rules).
    Apply,
}

/// The subqueries of a projection or a filter, unnested or applied as `mode` says.
pub(super) fn rewrite(
    plan: LogicalPlan,
    config: &dyn OptimizerConfig,
    mode: Mode,
) -> Result<Transformed<LogicalPlan>> {
    if !holds_subquery(&plan) {
        return Ok(Transformed::no(plan));
    }
    let rewritten = match &plan {
        LogicalPlan::Projection(projection) => rewrite_projection(projection.clone(), config, mode),
        LogicalPlan::Filter(filter) => rewrite_filter(filter.clone(), config, mode),
        _ => return Ok(Transformed::no(plan)),
    };
    // A shape this rule cannot finish is left as it was, for DataFusion to plan or refuse.
    Ok(rewritten.unwrap_or_else(|_| Transformed::no(plan)))
}

fn rewrite_projection(
    projection: Projection,
    config: &dyn OptimizerConfig,
    mode: Mode,
) -> Result<Transformed<LogicalPlan>> {
    let found = candidates(&projection.expr, &[], projection.input.schema(), mode);
    if found.is_empty() {
        return Ok(Transformed::no(LogicalPlan::Projection(projection)));
    }
    let (exprs, input) = unnest(
        projection.expr.clone(),
        Arc::unwrap_or_clone(projection.input),
        found,
        config,
    )?;
    // An expression that changed keeps the name it had, so the output schema does not change.
    let exprs = exprs
        .into_iter()
        .zip(&projection.expr)
        .map(|(new, old)| match (&new, old) {
            _ if &new == old => new,
            (Expr::Alias(_), _) => new,
            _ => new.alias(old.schema_name().to_string()),
        })
        .collect();
    let rewritten = Projection::try_new(exprs, Arc::new(input))?;
    Ok(Transformed::yes(LogicalPlan::Projection(rewritten)))
}

fn rewrite_filter(
    filter: Filter,
    config: &dyn OptimizerConfig,
    mode: Mode,
) -> Result<Transformed<LogicalPlan>> {
    // [NOT] EXISTS and [NOT] IN as conjuncts of their own are DataFusion's (semi or anti joins)
    // until DataFusion has had its turn.
    let own: Vec<&Expr> = split_conjunction(&filter.predicate)
        .into_iter()
        .map(|e| match e {
            Expr::Not(inner) => inner.as_ref(),
            other => other,
        })
        .filter(|e| mode == Mode::Unnest && matches!(e, Expr::Exists(_) | Expr::InSubquery(_)))
        .collect();
    let found = candidates(
        std::slice::from_ref(&filter.predicate),
        &own,
        filter.input.schema(),
        mode,
    );
    if found.is_empty() {
        return Ok(Transformed::no(LogicalPlan::Filter(filter)));
    }
    let columns = column_exprs(filter.input.schema());
    let (mut predicate, input) = unnest(
        vec![filter.predicate.clone()],
        Arc::unwrap_or_clone(filter.input),
        found,
        config,
    )?;
    let predicate = predicate.pop().unwrap_or(filter.predicate);
    let plan = LogicalPlanBuilder::from(input)
        .filter(predicate)?
        .project(columns)?
        .build()?;
    Ok(Transformed::yes(plan))
}

/// A subquery expression this rule unnests, and what it needs of the outer row.
struct Candidate {
    /// The expression as it stands in the outer plan.
    expr: Expr,
    plan: Unnesting,
}

/// How a candidate is unnested.
enum Unnesting {
    /// By a join with its value per domain combination.
    Domain(Box<Shape>),
    /// By an uncorrelated scalar subquery, which DataFusion joins in itself: `EXISTS (q)` is
    /// `(SELECT count(*) > 0 FROM q)`.
    Uncorrelated(Expr),
    /// By evaluating it once per combination of these input columns (see `apply`).
    Apply(Vec<Column>),
}

/// A subquery, taken apart.
struct Shape {
    /// The rows the subquery reads, without the predicate on the outer row.
    source: LogicalPlan,
    /// The predicate that chooses rows for an outer row.
    predicate: Expr,
    kind: Kind,
    /// The outer columns the subquery (and, for IN, the tested value) reads.
    outer: Vec<Column>,
}

/// What the subquery computes over the rows it chooses.
enum Kind {
    /// Aggregates, and the expression over them it returns when not a bare aggregate.
    Scalar {
        aggregates: Vec<Expr>,
        value: Option<Expr>,
    },
    /// `[NOT] EXISTS`.
    Exists { negated: bool },
    /// `tested [NOT] IN (SELECT item …)`.
    In {
        tested: Expr,
        item: Expr,
        negated: bool,
    },
}

/// The subquery expressions in `exprs` this rule unnests or applies (not those in `skip`); the
/// outer columns they read must be columns of `input` (not of a query further out).
fn candidates(exprs: &[Expr], skip: &[&Expr], input: &DFSchema, mode: Mode) -> Vec<Candidate> {
    let mut found: Vec<Candidate> = Vec::new();
    for expr in exprs {
        let _ = expr.apply(|e| {
            let subquery = match e {
                Expr::ScalarSubquery(subquery) => subquery,
                Expr::Exists(Exists { subquery, .. }) => subquery,
                Expr::InSubquery(InSubquery { subquery, .. }) => subquery,
                _ => return Ok(TreeNodeRecursion::Continue),
            };
            // A subquery reading a row further out is left to the query that row is in.
            let Reach { home, through } = reach(subquery, input);
            let applied = mode == Mode::Apply || through;
            // DataFusion runs an uncorrelated scalar subquery itself, once.
            let uncorrelated_scalar =
                matches!(e, Expr::ScalarSubquery(_)) && subquery.outer_ref_columns.is_empty();
            let plan = match e {
                _ if !home => None,
                _ if mode == Mode::Apply && uncorrelated_scalar => None,
                _ if applied => Some(Unnesting::Apply(apply::outer_columns(e, input))),
                _ if skip.contains(&e) => None,
                Expr::ScalarSubquery(subquery) => {
                    scalar_shape(subquery).map(|s| Unnesting::Domain(Box::new(s)))
                }
                Expr::Exists(Exists { subquery, negated }) if !reads_outer(&subquery.subquery) => {
                    counted_exists(subquery, *negated).map(Unnesting::Uncorrelated)
                }
                Expr::Exists(Exists { subquery, negated }) => {
                    exists_shape(subquery, *negated).map(|s| Unnesting::Domain(Box::new(s)))
                }
                Expr::InSubquery(InSubquery {
                    expr,
                    subquery,
                    negated,
                }) => in_shape(expr, subquery, *negated).map(|s| Unnesting::Domain(Box::new(s))),
                _ => None,
            };
            let fits = match &plan {
                Some(Unnesting::Domain(shape)) => shape.outer.iter().all(|c| input.has_column(c)),
                Some(_) => true,
                None => false,
            };
            if let Some(plan) = plan
                && fits
                && !found.iter().any(|c| &c.expr == e)
            {
                found.push(Candidate {
                    expr: e.clone(),
                    plan,
                });
            }
            Ok(TreeNodeRecursion::Jump)
        });
    }
    found
}

/// `[Projection] → Aggregate (no GROUP BY) → Filter → source`, correlated by something other
/// than equalities (DataFusion unnests those itself).
fn scalar_shape(subquery: &Subquery) -> Option<Shape> {
    let (value, below) = match subquery.subquery.as_ref() {
        LogicalPlan::Projection(p) if p.expr.len() == 1 => (Some(p.expr[0].clone()), &*p.input),
        other => (None, other),
    };
    let LogicalPlan::Aggregate(aggregate) = below else {
        return None;
    };
    if !aggregate.group_expr.is_empty() || aggregate.aggr_expr.iter().any(Expr::contains_outer) {
        return None;
    }
    if value.is_none() && aggregate.aggr_expr.len() != 1 {
        return None;
    }
    let (predicate, source) = correlated_filter(&aggregate.input)?;
    if only_equalities(&predicate) {
        return None;
    }
    let mut outer = outer_columns(&predicate);
    if let Some(value) = &value {
        for column in outer_columns(value) {
            if !outer.contains(&column) {
                outer.push(column);
            }
        }
    }
    Some(Shape {
        source,
        predicate,
        kind: Kind::Scalar {
            aggregates: aggregate.aggr_expr.clone(),
            value,
        },
        outer,
    })
}

/// Filters and projections over a source: whatever it returns, EXISTS asks only whether a row
/// is chosen. (DataFusion writes `x > ALL (…)` and `x = ANY (…)` as such an EXISTS.)
fn exists_shape(subquery: &Subquery, negated: bool) -> Option<Shape> {
    let (predicate, source) = chosen_rows(&subquery.subquery)?;
    let outer = outer_columns(&predicate);
    Some(Shape {
        source,
        predicate,
        kind: Kind::Exists { negated },
        outer,
    })
}

/// `Projection [item] → [Filter] → source`: the rows the filter chooses (all rows without one),
/// tested against a value of the outer row.
fn in_shape(tested: &Expr, subquery: &Subquery, negated: bool) -> Option<Shape> {
    let LogicalPlan::Projection(projection) = subquery.subquery.as_ref() else {
        return None;
    };
    let [item] = projection.expr.as_slice() else {
        return None;
    };
    if item.contains_outer() || tested.contains_outer() || has_subquery(tested) {
        return None;
    }
    let (predicate, source) = match correlated_filter(&projection.input) {
        Some(found) => found,
        None if !reads_outer(&projection.input) => (lit(true), projection.input.as_ref().clone()),
        None => return None,
    };
    let mut outer = outer_columns(&predicate);
    for column in tested.column_refs() {
        if !outer.contains(column) {
            outer.push(column.clone());
        }
    }
    Some(Shape {
        source,
        predicate,
        kind: Kind::In {
            tested: tested.clone(),
            item: item.clone().unalias(),
            negated,
        },
        outer,
    })
}

/// Whether any node of `plan` reads an outer row.
fn reads_outer(plan: &LogicalPlan) -> bool {
    plan.exists(|node| Ok(node.contains_outer_reference()))
        .unwrap_or(true)
}

/// `(SELECT count(*) > 0 FROM q)` for `EXISTS (q)`, `= 0` for NOT EXISTS.
fn counted_exists(subquery: &Subquery, negated: bool) -> Option<Expr> {
    let counted = col(Column::from_name("__minidb_exists_count"));
    let value = if negated {
        counted.eq(lit(0i64))
    } else {
        counted.gt(lit(0i64))
    };
    let plan = LogicalPlanBuilder::from(subquery.subquery.as_ref().clone())
        .aggregate(
            Vec::<Expr>::new(),
            vec![
                datafusion::functions_aggregate::count::count(lit(1))
                    .alias("__minidb_exists_count"),
            ],
        )
        .and_then(|b| b.project(vec![value.alias("__minidb_exists")]))
        .and_then(|b| b.build())
        .ok()?;
    Some(Expr::ScalarSubquery(Subquery {
        subquery: Arc::new(plan),
        outer_ref_columns: Vec::new(),
        spans: Default::default(),
    }))
}

/// The rows a chain of filters and projections chooses from the first plan below them that
/// does not read the outer row: one predicate over that source (each filter's predicate
/// rewritten through the projections beneath it), which reads the outer row.
fn chosen_rows(plan: &LogicalPlan) -> Option<(Expr, LogicalPlan)> {
    let mut predicates: Vec<Expr> = Vec::new();
    let mut node = plan;
    while reads_outer(node) {
        match node {
            LogicalPlan::Filter(filter) => {
                predicates.push(filter.predicate.clone());
                node = &filter.input;
            }
            LogicalPlan::Projection(projection) => {
                let outputs: Vec<(Column, Expr)> = projection
                    .schema
                    .columns()
                    .into_iter()
                    .zip(projection.expr.iter().map(|e| e.clone().unalias()))
                    .collect();
                predicates = predicates
                    .into_iter()
                    .map(|predicate| {
                        predicate
                            .transform(|e| match &e {
                                Expr::Column(column) => {
                                    Ok(match outputs.iter().find(|(c, _)| c == column) {
                                        Some((_, expr)) => Transformed::yes(expr.clone()),
                                        None => Transformed::no(e),
                                    })
                                }
                                _ => Ok(Transformed::no(e)),
                            })
                            .map(|t| t.data)
                    })
                    .collect::<Result<_>>()
                    .ok()?;
                node = &projection.input;
            }
            _ => return None,
        }
    }
    let predicate = conjunction(predicates)?;
    predicate
        .contains_outer()
        .then(|| (predicate, node.clone()))
}

/// A filter whose predicate reads the outer row, over a source that does not.
fn correlated_filter(plan: &LogicalPlan) -> Option<(Expr, LogicalPlan)> {
    let LogicalPlan::Filter(filter) = plan else {
        return None;
    };
    (filter.predicate.contains_outer() && !reads_outer(&filter.input))
        .then(|| (filter.predicate.clone(), filter.input.as_ref().clone()))
}

/// Whether every conjunct that reads the outer row is `inner = outer`.
fn only_equalities(predicate: &Expr) -> bool {
    split_conjunction(predicate)
        .into_iter()
        .filter(|e| e.contains_outer())
        .all(|e| match e {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) => left.contains_outer() != right.contains_outer(),
            _ => false,
        })
}

/// The outer columns `expr` reads, in order of appearance.
fn outer_columns(expr: &Expr) -> Vec<Column> {
    let mut columns: Vec<Column> = Vec::new();
    let _ = expr.apply(|e| {
        if let Expr::OuterReferenceColumn(_, column) = e
            && !columns.contains(column)
        {
            columns.push(column.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    columns
}

/// `expr` with each outer column replaced by its domain column.
fn to_domain(expr: Expr, outer: &[Column], domain: &[String]) -> Result<Expr> {
    expr.transform(|e| match &e {
        Expr::OuterReferenceColumn(_, column) => {
            let at = outer.iter().position(|c| c == column);
            Ok(match at {
                Some(i) => Transformed::yes(col(Column::from_name(&domain[i]))),
                None => Transformed::no(e),
            })
        }
        _ => Ok(Transformed::no(e)),
    })
    .map(|t| t.data)
}

/// `expr`, an expression of the outer row, over the domain columns instead.
fn to_domain_columns(expr: Expr, outer: &[Column], domain: &[String]) -> Result<Expr> {
    expr.transform(|e| match &e {
        Expr::Column(column) => Ok(match outer.iter().position(|c| c == column) {
            Some(i) => Transformed::yes(col(Column::from_name(&domain[i]))),
            None => Transformed::no(e),
        }),
        _ => Ok(Transformed::no(e)),
    })
    .map(|t| t.data)
}

/// Joins `input` with the value of each candidate and replaces the candidates in `exprs` by
/// those values.
fn unnest(
    mut exprs: Vec<Expr>,
    mut input: LogicalPlan,
    found: Vec<Candidate>,
    config: &dyn OptimizerConfig,
) -> Result<(Vec<Expr>, LogicalPlan)> {
    for candidate in found {
        let value = match candidate.plan {
            Unnesting::Domain(shape) => {
                let name = config.alias_generator().next("__minidb_subquery");
                let (value, joined) = domain_join(&name, input, *shape)?;
                input = joined;
                value
            }
            Unnesting::Uncorrelated(value) => value,
            Unnesting::Apply(outer) => {
                let name = config.alias_generator().next("__minidb_apply");
                input = Apply::plan(input, candidate.expr.clone(), outer, &name)?;
                col(Column::from_name(name))
            }
        };
        exprs = exprs
            .into_iter()
            .map(|expr| {
                expr.transform(|e| {
                    Ok(if e == candidate.expr {
                        Transformed::yes(value.clone())
                    } else {
                        Transformed::no(e)
                    })
                })
                .map(|t| t.data)
            })
            .collect::<Result<_>>()?;
    }
    Ok((exprs, input))
}

/// `input` left-joined with the subquery's value per domain combination; also the expression
/// that reads the value.
fn domain_join(name: &str, input: LogicalPlan, shape: Shape) -> Result<(Expr, LogicalPlan)> {
    let domain: Vec<String> = (0..shape.outer.len())
        .map(|i| format!("{name}_d{i}"))
        .collect();
    let mark = format!("{name}_mark");
    let value_name = format!("{name}_value");
    let domain_plan = LogicalPlanBuilder::from(input.clone())
        .project(
            shape
                .outer
                .iter()
                .zip(&domain)
                .map(|(c, d)| col(c.clone()).alias(d)),
        )?
        .distinct()?
        .build()?;
    let marked = LogicalPlanBuilder::from(shape.source.clone())
        .project(
            shape
                .source
                .schema()
                .columns()
                .into_iter()
                .map(Expr::Column)
                .chain([lit(true).alias(&mark)]),
        )?
        .build()?;
    let predicate = to_domain(shape.predicate, &shape.outer, &domain)?;
    let joined = LogicalPlanBuilder::from(domain_plan)
        .join_on(marked, JoinType::Left, [predicate])?
        .build()?;
    let chosen = col(Column::from_name(&mark)).is_not_null();
    // `count(*)` of the chosen rows that also meet `condition`, named `{name}_{label}`.
    let count_where = |label: &str, condition: Option<Expr>| -> Result<(Expr, Expr)> {
        let filter = match condition {
            Some(condition) => chosen.clone().and(condition),
            None => chosen.clone(),
        };
        let output = format!("{name}_{label}");
        let count = datafusion::functions_aggregate::count::count(lit(1))
            .filter(filter)
            .build()?
            .alias(&output);
        Ok((count, col(Column::from_name(output))))
    };
    let (aggregates, value) = match shape.kind {
        Kind::Exists { negated } => {
            let (count, counted) = count_where("count", None)?;
            let value = if negated {
                counted.eq(lit(0i64))
            } else {
                counted.gt(lit(0i64))
            };
            (vec![count], value)
        }
        Kind::In {
            tested,
            item,
            negated,
        } => {
            // SQL's IN: true on a match; false when nothing was chosen; otherwise NULL if the
            // tested value or a chosen item is NULL, else false.
            let tested = to_domain_columns(tested, &shape.outer, &domain)?;
            let (matches, matched) = count_where("matches", Some(item.clone().eq(tested.clone())))?;
            let (rows, counted) = count_where("rows", None)?;
            let (nulls, nulled) = count_where("nulls", Some(item.is_null()))?;
            let unknown = tested.is_null().or(nulled.gt(lit(0i64)));
            let value = when(matched.gt(lit(0i64)), lit(true))
                .when(counted.eq(lit(0i64)), lit(false))
                .when(unknown, lit(ScalarValue::Boolean(None)))
                .otherwise(lit(false))?;
            let value = if negated { !value } else { value };
            (vec![matches, rows, nulls], value)
        }
        Kind::Scalar { aggregates, value } => {
            let guarded = aggregates
                .iter()
                .map(|aggregate| only_chosen(aggregate, &chosen))
                .collect::<Result<Vec<_>>>()?;
            let value = match value {
                Some(value) => to_domain(value, &shape.outer, &domain)?,
                None => col(Column::from_name(aggregates[0].schema_name().to_string())),
            };
            (guarded, value)
        }
    };
    let grouped = LogicalPlanBuilder::from(joined)
        .aggregate(domain.iter().map(|d| col(Column::from_name(d))), aggregates)?
        .project(
            domain
                .iter()
                .map(|d| col(Column::from_name(d)))
                .chain([value.alias(&value_name)]),
        )?
        .build()?;
    let outer_keys = shape.outer.clone();
    let domain_keys: Vec<Column> = domain.iter().map(Column::from_name).collect();
    let plan = LogicalPlanBuilder::from(input)
        .join_detailed(
            grouped,
            JoinType::Left,
            (outer_keys, domain_keys),
            None,
            NullEquality::NullEqualsNull,
        )?
        .build()?;
    Ok((col(Column::from_name(value_name)), plan))
}

/// `aggregate` over the rows the predicate chose only (not the row the left join adds for a
/// combination nothing matched), under its own name.
fn only_chosen(aggregate: &Expr, chosen: &Expr) -> Result<Expr> {
    let guarded = aggregate
        .clone()
        .transform(|e| match e {
            Expr::AggregateFunction(mut function) => {
                let condition = match function.params.filter.take() {
                    Some(old) => old.and(chosen.clone()),
                    None => chosen.clone(),
                };
                function.params.filter = Some(Box::new(condition));
                Ok(Transformed::yes(Expr::AggregateFunction(function)))
            }
            other => Ok(Transformed::no(other)),
        })?
        .data;
    Ok(match guarded {
        alias @ Expr::Alias(_) => alias,
        other => other.alias(aggregate.schema_name().to_string()),
    })
}
