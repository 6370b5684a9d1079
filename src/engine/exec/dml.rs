//! UPDATE and DELETE, Merge-on-Read.
//!
//! Life of an UPDATE/DELETE:
//!
//! 1. The statement is checked and reduced to a [`Dml`]: target table, assignments, WHERE.
//! 2. In pessimistic mode the target's writer lock is taken (writers of this server take turns),
//!    and the newest snapshot is read — or, inside a transaction, the transaction's snapshot.
//! 3. A query is planned over a view of the target that adds two row-address columns, file index
//!    and physical row position: `SELECT __minidb_file, __minidb_row [, new values] FROM t WHERE …`.
//!    DataFusion does the rest (file skipping, filters, subqueries, expressions); new values are
//!    converted to the column types with the same checks as INSERT.
//! 4. The addresses and new rows stream into a [`Mutation`], which writes deletion vectors (and
//!    the new rows) and commits them as one Delta commit.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::DataFusionError;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::execute_stream;
use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use futures::StreamExt;

use super::{Engine, EngineError, Outcome, Session};
use crate::catalog::{CatalogError, StatementReferences, check_writable};
use crate::engine::insert::store;
use crate::engine::running::task_context;
use crate::engine::sql::{TableName, normalize, table_name};
use crate::table::foreign_keys::{ReferencedTable, ReferencedTables, foreign_keys, lock_order};
use crate::table::{
    DeltaTableProvider, FILE_INDEX_COLUMN, Mutation, ROW_INDEX_COLUMN, TableHandle, Writer,
    WriterLock,
};
use crate::txlog::Snapshot;

/// Which statement a [`Dml`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DmlKind {
    Delete,
    Update,
}

/// An UPDATE or DELETE reduced to what MiniDB runs.
#[derive(Debug)]
struct Dml {
    kind: DmlKind,
    table: TableName,
    /// The target as written, with its alias (`users`, `shop.items AS i`).
    relation: String,
    /// Column and new value, in the order written.
    assignments: Vec<(String, ast::Expr)>,
    selection: Option<ast::Expr>,
}

impl Dml {
    fn delete(delete: &ast::Delete) -> Result<Self, EngineError> {
        let from = match &delete.from {
            ast::FromTable::WithFromKeyword(from) | ast::FromTable::WithoutKeyword(from) => from,
        };
        if !delete.tables.is_empty() || from.len() != 1 {
            return Err(unsupported("DELETE from several tables"));
        }
        if delete.using.is_some() {
            return Err(unsupported("DELETE … USING"));
        }
        if delete.returning.is_some() || delete.output.is_some() {
            return Err(unsupported("DELETE … RETURNING"));
        }
        if !delete.order_by.is_empty() || delete.limit.is_some() {
            return Err(unsupported("DELETE … ORDER BY/LIMIT"));
        }
        Ok(Self {
            kind: DmlKind::Delete,
            table: single_table(&from[0])?,
            relation: from[0].to_string(),
            assignments: Vec::new(),
            selection: delete.selection.clone(),
        })
    }

    fn update(update: &ast::Update) -> Result<Self, EngineError> {
        if update.from.is_some() {
            return Err(unsupported("UPDATE … FROM"));
        }
        if update.returning.is_some() || update.output.is_some() {
            return Err(unsupported("UPDATE … RETURNING"));
        }
        if update.or.is_some() {
            return Err(unsupported("UPDATE OR …"));
        }
        if !update.order_by.is_empty() || update.limit.is_some() {
            return Err(unsupported("UPDATE … ORDER BY/LIMIT"));
        }
        let assignments = assignments(&update.assignments)?;
        Ok(Self {
            kind: DmlKind::Update,
            table: single_table(&update.table)?,
            relation: update.table.to_string(),
            assignments,
            selection: update.selection.clone(),
        })
    }

    /// The query that finds the rows to change: their addresses, and for an UPDATE every
    /// column's new value (in table order).
    fn query(&self, columns: &[String]) -> String {
        let mut items = vec![quote(FILE_INDEX_COLUMN), quote(ROW_INDEX_COLUMN)];
        if self.kind == DmlKind::Update {
            for column in columns {
                items.push(match self.assignments.iter().find(|(c, _)| c == column) {
                    Some((_, value)) => format!("({value}) AS {}", quote(column)),
                    None => quote(column),
                });
            }
        }
        let mut sql = format!("SELECT {} FROM {}", items.join(", "), self.relation);
        if let Some(selection) = &self.selection {
            sql.push_str(&format!(" WHERE {selection}"));
        }
        sql
    }
}

/// The table a writing statement changes, ready to be changed: the newest snapshot (or the
/// transaction's), the way its commit is made, and, in pessimistic mode outside a transaction,
/// the writer lock held until the statement ends.
pub(super) struct WriteTarget {
    pub database: String,
    pub table: String,
    pub handle: Arc<TableHandle>,
    pub snapshot: Arc<Snapshot>,
    pub writer: Writer,
    /// Opens the tables the statement's foreign key checks and actions need; it knows the
    /// target as already open.
    pub references: Arc<StatementReferences>,
    /// The target as [`StatementReferences`] hands it out, held for the statement.
    _own: Arc<ReferencedTable>,
    /// The parents of the target's foreign keys, opened (and locked) before the target when the
    /// statement may assign key columns: parents before children is every writer's lock order.
    _parents: Vec<Arc<ReferencedTable>>,
    /// Until the commit (or the transaction's end), no other writer of this server changes the
    /// table, so the snapshot stays the newest.
    pub _turn: Option<WriterLock>,
}

impl Engine {
    /// Opens `name` for a writing statement of `session` (see [`WriteTarget`]), inside the
    /// session's transaction if it has one.
    pub(super) async fn write_target(
        &self,
        session: &Session,
        name: &TableName,
    ) -> Result<WriteTarget, EngineError> {
        self.open_for_write(session, name, true, true).await
    }

    /// [`Engine::write_target`] for a DELETE, which assigns no foreign key column.
    async fn delete_target(
        &self,
        session: &Session,
        name: &TableName,
    ) -> Result<WriteTarget, EngineError> {
        self.open_for_write(session, name, true, false).await
    }

    /// Opens `name` for a statement that commits on its own even in a transaction (a change of
    /// the table's definition, which runs as if just before the transaction).
    pub(super) async fn autocommit_target(
        &self,
        session: &Session,
        name: &TableName,
    ) -> Result<WriteTarget, EngineError> {
        self.open_for_write(session, name, false, false).await
    }

    async fn open_for_write(
        &self,
        session: &Session,
        name: &TableName,
        in_transaction: bool,
        assigns_keys: bool,
    ) -> Result<WriteTarget, EngineError> {
        let database = session.database_or_current(name.database.clone());
        let table = name.table.clone();
        check_writable(&database, &table)?;
        let handle = match self.catalog.table(&database, &table).await {
            Ok(handle) => handle,
            Err(e) => return Err(self.table_error(&database, &table, e).await),
        };
        let qualified = format!("{database}.{table}");
        let transaction = session.transaction().filter(|_| in_transaction);
        let references = Arc::new(StatementReferences::new(
            Arc::clone(&self.catalog),
            transaction.cloned(),
        ));
        let mut parents = Vec::new();
        if assigns_keys {
            let mut names: Vec<String> = foreign_keys(&handle.cached())?
                .into_iter()
                .map(|key| key.parent)
                .collect();
            lock_order(references.as_ref(), &mut names).await?;
            for parent in names {
                parents.extend(references.open(&parent).await?);
            }
        }
        let (snapshot, writer, turn) = match transaction {
            Some(transaction) => {
                let part = transaction
                    .table(&qualified, &handle)
                    .await
                    .map_err(CatalogError::from)?;
                (part.snapshot(), Writer::Transaction(part), None)
            }
            None => {
                let turn = handle.lock_for_write().await.map_err(CatalogError::from)?;
                let snapshot = handle.refresh().await.map_err(CatalogError::from)?;
                (snapshot, Writer::Autocommit(Arc::clone(&handle)), turn)
            }
        };
        let own = Arc::new(ReferencedTable {
            handle: Arc::clone(&handle),
            snapshot: Arc::clone(&snapshot),
            writer: writer.clone(),
            _turn: None,
        });
        references.hold(&qualified, &own).await;
        Ok(WriteTarget {
            database,
            table,
            handle,
            snapshot,
            writer,
            references,
            _own: own,
            _parents: parents,
            _turn: turn,
        })
    }

    /// Plans `sql`, a query that reads `target` through a view of it with the row-address
    /// columns (file index, row position) and may read other tables as any query does; returns
    /// the plan, the state to go on with, and the store the table's files are in.
    pub(super) async fn plan_on_target(
        &self,
        session: &Session,
        target: &WriteTarget,
        sql: &str,
    ) -> Result<(LogicalPlan, SessionState, ObjectStoreUrl), EngineError> {
        let mut parsed = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
            .map_err(|e| EngineError::InvalidInput(format!("syntax error: {e}")))?;
        let parsed = parsed
            .pop_front()
            .ok_or_else(|| EngineError::InvalidInput("empty statement".into()))?;
        let view = self.statement_catalog(session, &parsed).await?;
        let store_url = view.store_url().clone();
        let provider = DeltaTableProvider::new(
            format!("{}.{}", target.database, target.table),
            Arc::clone(&target.handle),
            Arc::clone(&target.snapshot),
            store_url.clone(),
        )
        .with_row_addresses();
        view.pin(&target.database, &target.table, Arc::new(provider));
        let state = self.statement_state(session, view);
        let plan = state.statement_to_plan(parsed).await?;
        Ok((plan, state, store_url))
    }

    pub(super) async fn update(
        &self,
        session: &Session,
        update: &ast::Update,
    ) -> Result<Outcome, EngineError> {
        self.execute_dml(session, Dml::update(update)?).await
    }

    pub(super) async fn delete(
        &self,
        session: &Session,
        delete: &ast::Delete,
    ) -> Result<Outcome, EngineError> {
        self.execute_dml(session, Dml::delete(delete)?).await
    }

    async fn execute_dml(&self, session: &Session, dml: Dml) -> Result<Outcome, EngineError> {
        let target = match dml.kind {
            DmlKind::Delete => self.delete_target(session, &dml.table).await?,
            DmlKind::Update => self.write_target(session, &dml.table).await?,
        };
        let schema = Arc::clone(target.snapshot.schema());
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        for (column, _) in &dml.assignments {
            if !columns.contains(column) {
                return Err(EngineError::InvalidInput(format!(
                    "column '{column}' does not exist in table {}",
                    target.table
                )));
            }
        }

        let (mut plan, state, store_url) = self
            .plan_on_target(session, &target, &dml.query(&columns))
            .await?;
        if dml.kind == DmlKind::Update {
            // New values are converted like INSERT values: the column's type, NOT NULL, and an
            // error naming the column and the value that does not fit.
            let outputs = plan.schema().columns();
            let mut exprs: Vec<Expr> = outputs[..2].iter().cloned().map(Expr::Column).collect();
            for (output, field) in outputs[2..].iter().zip(schema.fields()) {
                exprs.push(store(Expr::Column(output.clone()), field).alias(field.name()));
            }
            plan = LogicalPlanBuilder::from(plan).project(exprs)?.build()?;
        }
        let physical = state.create_physical_plan(&plan).await?;

        let changed: HashSet<&str> = dml.assignments.iter().map(|(c, _)| c.as_str()).collect();
        let mut mutation = Mutation::new(
            Arc::clone(&target.handle),
            target.writer.clone(),
            Arc::clone(&target.snapshot),
            store_url.clone(),
            &changed,
            Arc::clone(&target.references) as Arc<dyn ReferencedTables>,
        )?;
        let mut stream = execute_stream(physical, task_context(&state)?)?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            mutation.delete(batch.column(0), batch.column(1))?;
            if dml.kind == DmlKind::Update {
                let values: Vec<usize> = (2..batch.num_columns()).collect();
                mutation
                    .insert(batch.project(&values).map_err(DataFusionError::from)?)
                    .await?;
            }
        }
        let predicate = dml.selection.as_ref().map(ToString::to_string);
        let (operation, outcome): (&str, fn(String, u64) -> Outcome) = match dml.kind {
            DmlKind::Delete => ("DELETE", |table, rows| Outcome::Deleted { table, rows }),
            DmlKind::Update => ("UPDATE", |table, rows| Outcome::Updated { table, rows }),
        };
        let context = task_context(&state)?;
        let cascades = self
            .referencing_changes(
                &state,
                &target,
                &mutation,
                &changed,
                dml.kind == DmlKind::Update,
                &store_url,
            )
            .await?;
        cascades.commit(&context).await?;
        let rows = mutation.commit(operation, predicate, context).await?;
        Ok(outcome(target.table, rows))
    }
}

/// `SET column = value, …` of an UPDATE (or of MERGE's and ON CONFLICT's): column names
/// normalized, each assigned once.
pub(super) fn assignments(
    list: &[ast::Assignment],
) -> Result<Vec<(String, ast::Expr)>, EngineError> {
    let mut assignments: Vec<(String, ast::Expr)> = Vec::new();
    for assignment in list {
        let ast::AssignmentTarget::ColumnName(name) = &assignment.target else {
            return Err(unsupported("assigning a tuple of columns"));
        };
        let Some(ast::ObjectNamePart::Identifier(column)) = name.0.last() else {
            return Err(EngineError::InvalidInput(format!("bad column name {name}")));
        };
        let column = normalize(column);
        if assignments.iter().any(|(c, _)| *c == column) {
            return Err(EngineError::InvalidInput(format!(
                "column '{column}' is assigned twice"
            )));
        }
        assignments.push((column, assignment.value.clone()));
    }
    Ok(assignments)
}

/// The one plain table an UPDATE/DELETE names.
fn single_table(relation: &ast::TableWithJoins) -> Result<TableName, EngineError> {
    if !relation.joins.is_empty() {
        return Err(unsupported("UPDATE/DELETE over a join"));
    }
    match &relation.relation {
        ast::TableFactor::Table {
            name, args: None, ..
        } => table_name(name),
        other => Err(unsupported(&format!("UPDATE/DELETE of {other}"))),
    }
}

pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn unsupported(what: &str) -> EngineError {
    EngineError::NotSupported(what.to_string())
}
