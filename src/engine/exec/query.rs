//! Queries and INSERT: planned by DataFusion over a per-statement view of the catalog.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::UInt64Array;
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::execution::context::SQLOptions;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{LogicalPlan, WriteOp};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::{ExecutionPlan, collect, execute_stream};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast;

use super::{Engine, EngineError, Outcome, Session};
use crate::catalog::{
    CatalogError, ReadSet, SYSTEM_DATABASE, Scope, StatementCatalog, check_writable,
};
use crate::engine::insert;
use crate::engine::running::task_context;
use crate::engine::sql::{NAME_MARK, TableName, output_name, table_name};

/// Resolves the tables `statement` names all at once, each kept by the statement's catalog
/// view for the planner, which then finds them instead of resolving them one after another.
/// Resolving a table brings it up to date with its log: one request to an S3 bucket per table,
/// which now overlap. System tables and `information_schema` are left to the planner (they are
/// built, not resolved, and not kept); a name that does not resolve is reported by the planner.
/// Not for statements in a transaction: resolving takes the table's writer lock there, and
/// locks are taken one at a time.
async fn resolve_together(
    state: &SessionState,
    statement: &DFStatement,
    database: &str,
) -> Result<(), EngineError> {
    let mut references = state.resolve_table_references(statement)?;
    references.retain(|reference| {
        let schema = reference.schema().unwrap_or(database);
        schema != SYSTEM_DATABASE && schema != "information_schema"
    });
    references.sort_by_key(|reference| reference.to_string());
    references.dedup();
    if references.len() < 2 {
        return Ok(());
    }
    let resolutions = references.iter().map(|reference| async move {
        if let Ok(schema) = state.schema_for_ref(reference.clone()) {
            // An error here is the planner's to report, with its context.
            let _ = schema.table(reference.table()).await;
        }
    });
    futures::future::join_all(resolutions).await;
    Ok(())
}

impl Engine {
    /// Runs a query: its rows stream back as they are produced.
    pub(super) async fn query(
        &self,
        session: &Session,
        query: DFStatement,
    ) -> Result<Outcome, EngineError> {
        let (plan, _) = self.physical_plan(session, query).await?;
        Ok(Outcome::Rows(execute_stream(
            plan,
            task_context(&self.state)?,
        )?))
    }

    /// Runs an INSERT to its commit.
    pub(super) async fn insert(
        &self,
        session: &Session,
        insert: DFStatement,
    ) -> Result<Outcome, EngineError> {
        let target = insert_target(&insert);
        let table = target.table.clone();
        check_writable(
            &session.database_or_current(target.database.clone()),
            &table,
        )?;
        let (plan, _) = match self.physical_plan(session, insert).await {
            Ok(planned) => planned,
            Err(e) => {
                // DataFusion finds a view as readily as a table; writing one is ours to refuse.
                let database = session.database_or_current(target.database);
                if let Ok(Some(_)) = self.catalog.view(&database, &table).await {
                    return Err(CatalogError::WrongKind {
                        name: format!("{database}.{table}"),
                        is: "view",
                        wanted: "table",
                    }
                    .into());
                }
                return Err(e);
            }
        };
        let batches = collect(plan, task_context(&self.state)?).await?;
        let rows = batches
            .first()
            .and_then(|b| b.column(0).as_any().downcast_ref::<UInt64Array>())
            .map_or(0, |counts| counts.value(0));
        Ok(Outcome::Inserted { table, rows })
    }

    /// Plans a DataFusion statement against a fresh view of the catalog, up to its logical
    /// plan; also returns the state to go on planning with and what the plan reads.
    pub(in crate::engine) async fn logical_plan(
        &self,
        session: &Session,
        parsed: DFStatement,
    ) -> Result<(LogicalPlan, SessionState, ReadSet), EngineError> {
        let view = self.statement_catalog(session, &parsed).await?;
        let reads = view.reads();
        let state = self.statement_state(session, view);
        if session.transaction().is_none() {
            resolve_together(&state, &parsed, session.database()).await?;
        }
        let plan = state.statement_to_plan(parsed).await?;
        Ok((plan, state, reads))
    }

    /// Plans a DataFusion statement against a fresh view of the catalog; also returns what the
    /// plan reads.
    pub(in crate::engine) async fn physical_plan(
        &self,
        session: &Session,
        parsed: DFStatement,
    ) -> Result<(Arc<dyn ExecutionPlan>, ReadSet), EngineError> {
        let (plan, state, reads) = self.logical_plan(session, parsed).await?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|e| EngineError::NotSupported(e.strip_backtrace()))?;
        if let LogicalPlan::Dml(dml) = &plan
            && !matches!(dml.op, WriteOp::Insert(_))
        {
            return Err(EngineError::NotSupported(format!("{}", dml.op)));
        }
        let plan = insert::name_bad_values(plan)?;
        let physical = state.create_physical_plan(&plan).await?;
        Ok((with_output_names(physical)?, reads))
    }

    /// The catalog as one statement sees it: the databases `parsed` names, the tables of the
    /// session's transaction, views planned as they are read.
    pub(in crate::engine) async fn statement_catalog(
        &self,
        session: &Session,
        parsed: &DFStatement,
    ) -> Result<StatementCatalog, EngineError> {
        let view = StatementCatalog::load(
            Arc::clone(&self.catalog),
            self.scope(session, parsed)?,
            session.transaction().cloned(),
        )
        .await?;
        Ok(view.with_views(Arc::clone(&self.view_state)))
    }

    /// DataFusion's state for one statement: the session's database over `view`.
    pub(in crate::engine) fn statement_state(
        &self,
        session: &Session,
        view: StatementCatalog,
    ) -> SessionState {
        // A clone shares the engine's function registry; rebuilding the state through its builder
        // would register every function again, on every statement.
        let mut state = self.state.clone();
        state.config_mut().options_mut().catalog.default_schema = session.database().to_string();
        state.register_catalog_list(Arc::new(view));
        // `now()`, `current_date()`…: one value per statement, fixed when planning starts.
        state.mark_start_execution();
        state
    }

    /// What part of the catalog a statement needs to see.
    pub(in crate::engine) fn scope(
        &self,
        session: &Session,
        parsed: &DFStatement,
    ) -> Result<Scope, EngineError> {
        let mut databases = BTreeSet::new();
        for reference in self.state.resolve_table_references(parsed)? {
            match reference.schema() {
                Some("information_schema") => return Ok(Scope::Everything),
                Some(database) => databases.insert(database.to_string()),
                None => databases.insert(session.database().to_string()),
            };
        }
        Ok(Scope::Databases(databases))
    }
}

/// `plan`, its columns renamed to the names a client sees where the front end named them apart
/// (`SELECT a, a`: DataFusion's projections take no two columns of one name, Arrow's schemas
/// do).
fn with_output_names(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>, EngineError> {
    let schema = plan.schema();
    if !schema.fields().iter().any(|f| f.name().contains(NAME_MARK)) {
        return Ok(plan);
    }
    let columns: Vec<ProjectionExpr> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| ProjectionExpr {
            expr: Arc::new(Column::new(field.name(), i)),
            alias: output_name(field.name()).to_string(),
        })
        .collect();
    Ok(Arc::new(ProjectionExec::try_new(columns, plan)?))
}

/// `schema` with the names a client sees (see [`with_output_names`]).
pub(in crate::engine) fn client_schema(schema: &SchemaRef) -> SchemaRef {
    if !schema.fields().iter().any(|f| f.name().contains(NAME_MARK)) {
        return Arc::clone(schema);
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_name(output_name(f.name())))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The table an INSERT writes to, as written in the statement.
fn insert_target(parsed: &DFStatement) -> TableName {
    let written = match parsed {
        DFStatement::Statement(s) => match s.as_ref() {
            ast::Statement::Insert(insert) => match &insert.table {
                ast::TableObject::TableName(name) => match table_name(name) {
                    Ok(name) => return name,
                    Err(_) => name.to_string(),
                },
                other => other.to_string(),
            },
            other => other.to_string(),
        },
        other => other.to_string(),
    };
    TableName {
        database: None,
        table: written,
    }
}
