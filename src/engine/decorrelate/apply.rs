//! Nested-loop evaluation ("apply") of a correlated subquery no unnesting takes: a subquery
//! that reads a row two or more queries out, one with GROUP BY, LIMIT or a window inside,
//! anything DataFusion's rules leave in place.
//!
//! The logical node [`Apply`] adds to each input row the subquery's value for that row. Its
//! operator evaluates the subquery once per distinct combination of the outer columns it reads,
//! as an ordinary query with those columns bound to literals (at every depth, so a subquery
//! further in that read them becomes one correlated only with its own surroundings, which the
//! unnesting rules take), and remembers each combination's value. That is correct for every
//! shape and costs one planned query per combination; the unnesting rules run first and leave
//! only what they cannot take.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, new_empty_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, DFSchemaRef, Result, ScalarValue, exec_err};
use datafusion::execution::context::{QueryPlanner, SessionState};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::functions_aggregate::count::count;
use datafusion::logical_expr::expr::{Exists, InSubquery};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, ExprSchemable, Extension, LogicalPlan, LogicalPlanBuilder, Subquery,
    UserDefinedLogicalNode, UserDefinedLogicalNodeCore, lit,
};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::ExecutionPlanProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, collect,
};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use futures::TryStreamExt;

/// Input rows, each with the value of `subquery` for it in a column `name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Apply {
    input: LogicalPlan,
    /// A scalar subquery, `[NOT] EXISTS (…)` or `x [NOT] IN (…)`.
    subquery: Expr,
    /// The input columns the subquery reads, at any depth, and the tested value of IN reads.
    outer: Vec<Column>,
    name: String,
    schema: DFSchemaRef,
}

impl Apply {
    /// The plan of `input` with the value of `subquery` added as `name`.
    pub(super) fn plan(
        input: LogicalPlan,
        subquery: Expr,
        outer: Vec<Column>,
        name: &str,
    ) -> Result<LogicalPlan> {
        Ok(LogicalPlan::Extension(Extension {
            node: Arc::new(Self::try_new(input, subquery, outer, name.to_string())?),
        }))
    }

    fn try_new(
        input: LogicalPlan,
        subquery: Expr,
        outer: Vec<Column>,
        name: String,
    ) -> Result<Self> {
        let data_type = subquery.to_field(input.schema())?.1.data_type().clone();
        let value = DFSchema::from_unqualified_fields(
            vec![Field::new(&name, data_type, true)].into(),
            Default::default(),
        )?;
        let mut schema = input.schema().as_ref().clone();
        schema.merge(&value);
        Ok(Self {
            input,
            subquery,
            outer,
            name,
            schema: Arc::new(schema),
        })
    }
}

impl PartialOrd for Apply {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.name.partial_cmp(&other.name) {
            Some(Ordering::Equal) => self.input.partial_cmp(&other.input),
            unequal => unequal,
        }
    }
}

impl UserDefinedLogicalNodeCore for Apply {
    fn name(&self) -> &str {
        "Apply"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    /// The input columns read (the subquery itself stays out of the optimizer's reach).
    fn expressions(&self) -> Vec<Expr> {
        self.outer.iter().cloned().map(Expr::Column).collect()
    }

    /// A filter on the value cannot move below the node that computes it.
    fn prevent_predicate_push_down_columns(&self) -> HashSet<String> {
        HashSet::from([self.name.clone()])
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let outer: Vec<String> = self.outer.iter().map(|c| c.flat_name()).collect();
        write!(
            f,
            "Apply: {} := {} for each ({})",
            self.name,
            self.subquery,
            outer.join(", ")
        )
    }

    fn with_exprs_and_inputs(
        &self,
        exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        let outer = exprs
            .into_iter()
            .map(|e| match e {
                Expr::Column(c) => Ok(c),
                other => exec_err!("Apply reads columns, not {other}"),
            })
            .collect::<Result<_>>()?;
        Self::try_new(
            inputs.swap_remove(0),
            self.subquery.clone(),
            outer,
            self.name.clone(),
        )
    }

    /// The input columns asked for, and those the subquery reads.
    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        let input = self.input.schema();
        let mut needed: Vec<usize> = output_columns
            .iter()
            .copied()
            .filter(|&i| i < input.fields().len())
            .chain(
                self.outer
                    .iter()
                    .filter_map(|c| input.index_of_column(c).ok()),
            )
            .collect();
        needed.sort_unstable();
        needed.dedup();
        Some(vec![needed])
    }
}

/// The columns of `input` that `subquery` reads: its outer columns at every depth, and those of
/// an IN's tested value.
pub(super) fn outer_columns(subquery: &Expr, input: &DFSchema) -> Vec<Column> {
    let mut columns: Vec<Column> = Vec::new();
    let mut add = |column: &Column| {
        if input.has_column(column) && !columns.contains(column) {
            columns.push(column.clone());
        }
    };
    let _ = subquery.apply(|e| {
        match e {
            Expr::Column(column) => add(column),
            Expr::ScalarSubquery(s) => deep_outer_references(&s.subquery, &mut add),
            Expr::Exists(e) => deep_outer_references(&e.subquery.subquery, &mut add),
            Expr::InSubquery(i) => deep_outer_references(&i.subquery.subquery, &mut add),
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    columns
}

/// Calls `found` with every outer column `plan` reads, in subqueries at any depth too.
fn deep_outer_references(plan: &LogicalPlan, found: &mut dyn FnMut(&Column)) {
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::OuterReferenceColumn(_, column) = e {
                    found(column);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
}

/// Where the outer columns a subquery reads come from, seen from the plan it is in.
pub(super) struct Reach {
    /// Every column it reads from outside itself, at any depth, is a column of that plan.
    pub home: bool,
    /// A subquery nested inside it reads a column of that plan: two queries out, which no
    /// unnesting of one level at a time can take.
    pub through: bool,
}

/// Where the outer columns `subquery` reads come from, seen from a plan whose rows are `input`.
pub(super) fn reach(subquery: &Subquery, input: &DFSchema) -> Reach {
    let mut reach = Reach {
        home: true,
        through: false,
    };
    let mut scopes = Vec::new();
    escaping(&subquery.subquery, &mut scopes, &mut |column, depth| {
        let here = input.has_column(column);
        reach.home &= here;
        reach.through |= here && depth > 0;
    });
    reach
}

/// Calls `found` with each outer column `plan` reads that no scope in `scopes` (the rows of the
/// queries around it, inside the subquery being looked at) has, and the depth of the subquery
/// that reads it (0: `plan` itself).
fn escaping(
    plan: &LogicalPlan,
    scopes: &mut Vec<DFSchemaRef>,
    found: &mut dyn FnMut(&Column, usize),
) {
    let depth = scopes.len();
    let _ = plan.apply(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                let nested = match e {
                    Expr::OuterReferenceColumn(_, column) => {
                        if !scopes.iter().any(|s| s.has_column(column)) {
                            found(column, depth);
                        }
                        return Ok(TreeNodeRecursion::Continue);
                    }
                    Expr::ScalarSubquery(s) => s,
                    Expr::Exists(e) => &e.subquery,
                    Expr::InSubquery(i) => &i.subquery,
                    _ => return Ok(TreeNodeRecursion::Continue),
                };
                // The nested subquery sees the rows of this node's inputs.
                let pushed = node.inputs().len();
                for input in node.inputs() {
                    scopes.push(Arc::clone(input.schema()));
                }
                escaping(&nested.subquery, scopes, found);
                scopes.truncate(scopes.len() - pushed);
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
}

/// Plans [`Apply`] nodes, and everything else as DataFusion does.
#[derive(Debug)]
pub(crate) struct SubqueryPlanner;

#[async_trait]
impl QueryPlanner for SubqueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(ApplyPlanner)])
            .create_physical_plan(logical_plan, session_state)
            .await
    }
}

struct ApplyPlanner;

#[async_trait]
impl ExtensionPlanner for ApplyPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        _planning: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(apply) = node.as_any().downcast_ref::<Apply>() else {
            return Ok(None);
        };
        let Some(state) = session.as_any().downcast_ref::<SessionState>() else {
            return exec_err!("subqueries are evaluated in a SessionState");
        };
        let input = Arc::clone(&physical_inputs[0]);
        let positions = apply
            .outer
            .iter()
            .map(|c| apply.input.schema().index_of_column(c))
            .collect::<Result<Vec<_>>>()?;
        let schema: SchemaRef = Arc::new(apply.schema.as_arrow().clone());
        let subquery = Arc::new(Evaluator {
            subquery: apply.subquery.clone(),
            outer: apply.outer.clone(),
            positions,
            data_type: schema.fields().last().expect("value").data_type().clone(),
            state: state.clone(),
            values: Mutex::new(HashMap::new()),
        });
        Ok(Some(Arc::new(ApplyExec::new(input, subquery, schema))))
    }
}

/// The operator of [`Apply`].
struct ApplyExec {
    input: Arc<dyn ExecutionPlan>,
    subquery: Arc<Evaluator>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl ApplyExec {
    fn new(input: Arc<dyn ExecutionPlan>, subquery: Arc<Evaluator>, schema: SchemaRef) -> Self {
        // The input's partitions, each extended row by row.
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            input.output_partitioning().clone(),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            input,
            subquery,
            schema,
            properties: Arc::new(properties),
        }
    }
}

impl fmt::Debug for ApplyExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplyExec")
            .field("subquery", &self.subquery.subquery)
            .field("outer", &self.subquery.outer)
            .finish()
    }
}

impl DisplayAs for ApplyExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let outer: Vec<String> = self.subquery.outer.iter().map(|c| c.flat_name()).collect();
        write!(
            f,
            "ApplyExec: {} for each ({})",
            self.subquery.subquery,
            outer.join(", ")
        )
    }
}

impl ExecutionPlan for ApplyExec {
    fn name(&self) -> &str {
        "ApplyExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(ApplyExec::new(
            children.swap_remove(0),
            Arc::clone(&self.subquery),
            Arc::clone(&self.schema),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, Arc::clone(&context))?;
        let subquery = Arc::clone(&self.subquery);
        let schema = Arc::clone(&self.schema);
        let batches = input.and_then(move |batch| {
            let subquery = Arc::clone(&subquery);
            let schema = Arc::clone(&schema);
            let context = Arc::clone(&context);
            async move {
                let values = subquery.values_for(&batch, &context).await?;
                let mut columns = batch.columns().to_vec();
                columns.push(values);
                Ok(RecordBatch::try_new(schema, columns)?)
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            batches,
        )))
    }
}

/// A subquery's value per combination of the outer columns it reads.
struct Evaluator {
    subquery: Expr,
    outer: Vec<Column>,
    /// Where each of `outer` is in the input.
    positions: Vec<usize>,
    data_type: DataType,
    /// The statement's session, which plans each evaluation.
    state: SessionState,
    /// The values found so far (all partitions share them).
    values: Mutex<HashMap<Key, ScalarValue>>,
}

/// A combination of outer values.
#[derive(PartialEq, Eq, Hash)]
struct Key(Vec<ScalarValue>);

impl Evaluator {
    /// The subquery's value for each row of `batch`, evaluated in `context` (the statement's).
    async fn values_for(
        &self,
        batch: &RecordBatch,
        context: &Arc<TaskContext>,
    ) -> Result<ArrayRef> {
        let mut values = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let key = Key(self
                .positions
                .iter()
                .map(|&i| ScalarValue::try_from_array(batch.column(i), row))
                .collect::<Result<_>>()?);
            let known = self.values.lock().expect("values").get(&key).cloned();
            let value = match known {
                Some(value) => value,
                None => {
                    let value = self.evaluate(&key, context).await?;
                    let mut known = self.values.lock().expect("values");
                    known.insert(key, value.clone());
                    value
                }
            };
            values.push(value);
        }
        if values.is_empty() {
            return Ok(new_empty_array(&self.data_type));
        }
        let array = ScalarValue::iter_to_array(values)?;
        Ok(cast(&array, &self.data_type)?)
    }

    /// The subquery's value with the outer columns bound to `key`.
    async fn evaluate(&self, key: &Key, context: &Arc<TaskContext>) -> Result<ScalarValue> {
        let bound = |plan: &Subquery| bind_plan(plan.subquery.as_ref().clone(), &self.outer, key);
        match &self.subquery {
            Expr::ScalarSubquery(subquery) => {
                let rows = self.run(bound(subquery)?, context).await?;
                match rows.as_slice() {
                    [] => ScalarValue::try_from(&self.data_type),
                    [row] => Ok(row[0].clone()),
                    _ => exec_err!("Scalar subquery returned more than one row"),
                }
            }
            Expr::Exists(Exists { subquery, negated }) => {
                let plan = LogicalPlanBuilder::from(bound(subquery)?)
                    .limit(0, Some(1))?
                    .build()?;
                let found = !self.run(plan, context).await?.is_empty();
                Ok(ScalarValue::Boolean(Some(found != *negated)))
            }
            Expr::InSubquery(InSubquery {
                expr,
                subquery,
                negated,
            }) => {
                // Matches, rows, NULL items, and whether the tested value is not NULL (then
                // it counts every row).
                let tested = bind_expr(expr.as_ref().clone(), &self.outer, key, true)?.data;
                let plan = bound(subquery)?;
                let item = Expr::Column(plan.schema().columns().swap_remove(0));
                let counted = |condition: Option<Expr>| -> Result<Expr> {
                    match condition {
                        Some(condition) => count(lit(1)).filter(condition).build(),
                        None => Ok(count(lit(1))),
                    }
                };
                let aggregates = vec![
                    counted(Some(item.clone().eq(tested.clone())))?.alias("matches"),
                    counted(None)?.alias("rows"),
                    counted(Some(item.is_null()))?.alias("nulls"),
                    count(tested).alias("tested"),
                ];
                let plan = LogicalPlanBuilder::from(plan)
                    .aggregate(Vec::<Expr>::new(), aggregates)?
                    .build()?;
                let counts: Vec<i64> = match self.run(plan, context).await?.pop() {
                    Some(row) => row
                        .into_iter()
                        .map(|v| match v {
                            ScalarValue::Int64(Some(n)) => n,
                            _ => 0,
                        })
                        .collect(),
                    None => vec![0; 4],
                };
                let found = match counts.as_slice() {
                    [matches, ..] if *matches > 0 => Some(true),
                    [_, 0, ..] => Some(false),
                    [_, rows, nulls, tested] if *nulls > 0 || tested < rows => None,
                    _ => Some(false),
                };
                Ok(ScalarValue::Boolean(found.map(|f| f != *negated)))
            }
            other => exec_err!("Apply evaluates subqueries, not {other}"),
        }
    }

    /// The rows of `plan`, each as its values.
    async fn run(
        &self,
        plan: LogicalPlan,
        context: &Arc<TaskContext>,
    ) -> Result<Vec<Vec<ScalarValue>>> {
        let physical = self.state.create_physical_plan(&plan).await?;
        let batches = collect(physical, Arc::clone(context)).await?;
        let mut rows = Vec::new();
        for batch in &batches {
            for row in 0..batch.num_rows() {
                rows.push(
                    batch
                        .columns()
                        .iter()
                        .map(|c| ScalarValue::try_from_array(c, row))
                        .collect::<Result<_>>()?,
                );
            }
        }
        Ok(rows)
    }
}

/// `plan` with each outer reference to one of `outer` replaced by its value in `key`, at every
/// depth; each expression keeps its name, so schemas do not change.
fn bind_plan(plan: LogicalPlan, outer: &[Column], key: &Key) -> Result<LogicalPlan> {
    plan.transform_up(|node| {
        let names = NamePreserver::new(&node);
        node.map_expressions(|e| {
            let saved = names.save(&e);
            Ok(bind_expr(e, outer, key, false)?.update_data(|e| saved.restore(e)))
        })
    })
    .map(|t| t.data)
}

/// `expr` with `outer`'s values from `key`: outer references, and plain columns too when
/// `columns` (an expression of the outer row itself).
fn bind_expr(expr: Expr, outer: &[Column], key: &Key, columns: bool) -> Result<Transformed<Expr>> {
    let value = |column: &Column| {
        outer
            .iter()
            .position(|c| c == column)
            .map(|i| Expr::Literal(key.0[i].clone(), None))
    };
    expr.transform_up(|e| match e {
        Expr::OuterReferenceColumn(_, ref column) => Ok(match value(column) {
            Some(literal) => Transformed::yes(literal),
            None => Transformed::no(e),
        }),
        Expr::Column(ref column) if columns => Ok(match value(column) {
            Some(literal) => Transformed::yes(literal),
            None => Transformed::no(e),
        }),
        Expr::ScalarSubquery(subquery) => Ok(Transformed::yes(Expr::ScalarSubquery(
            bind_subquery(subquery, outer, key)?,
        ))),
        Expr::Exists(Exists { subquery, negated }) => Ok(Transformed::yes(Expr::Exists(Exists {
            subquery: bind_subquery(subquery, outer, key)?,
            negated,
        }))),
        Expr::InSubquery(InSubquery {
            expr,
            subquery,
            negated,
        }) => Ok(Transformed::yes(Expr::InSubquery(InSubquery {
            expr,
            subquery: bind_subquery(subquery, outer, key)?,
            negated,
        }))),
        other => Ok(Transformed::no(other)),
    })
}

/// A nested subquery with `outer`'s values bound, reading outer columns only where it still does.
fn bind_subquery(subquery: Subquery, outer: &[Column], key: &Key) -> Result<Subquery> {
    let plan = bind_plan(Arc::unwrap_or_clone(subquery.subquery), outer, key)?;
    Ok(Subquery {
        outer_ref_columns: plan.all_out_ref_exprs(),
        subquery: Arc::new(plan),
        spans: subquery.spans,
    })
}
