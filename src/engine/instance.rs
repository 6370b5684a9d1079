//! [`Engine`]: one catalog and one DataFusion configuration, shared by every session.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::execution::{SendableRecordBatchStream, SessionStateBuilder, TaskContext};
use datafusion::logical_expr::{LogicalPlan, WriteOp};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_plan::{ExecutionPlan, collect, execute_stream};
use datafusion::prelude::SessionConfig;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{self, ColumnOption};

use super::dml::Dml;
use super::insert;
use super::lexing;
use super::parameters;
use super::selectivity::EstimateFilterSelectivity;
use super::statement::{self, Statement, TableName};
use super::types::column_type;
use super::{EngineError, ErrorKind, Listing, Outcome, Session};
use crate::catalog::sql_type_name;
use crate::catalog::{
    CATALOG_NAME, Catalog, CatalogError, DEFAULT_DATABASE, ReadSet, SYSTEM_DATABASE, Scope,
    StatementCatalog,
};
use crate::storage::DataStore;
use crate::table::partitioning::{PARTITIONING_PROPERTY, Partitioner, Partitioning};
use crate::table::{
    Concurrency, DEFAULTS_PROPERTY, INDEXES_PROPERTY, IndexDef, PRIMARY_KEY_PROPERTY, Transaction,
    UNIQUE_PROPERTY, properties,
};

/// The query engine behind every protocol. Cheap to share: all state is in the object store.
#[derive(Debug)]
pub struct Engine {
    pub(super) catalog: Arc<Catalog>,
    pub(super) state: SessionState,
    started: Instant,
}

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

/// A query planned by [`Engine::plan_query`], ready to run.
#[derive(Debug)]
pub struct PlannedQuery {
    plan: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
    reads: ReadSet,
}

impl PlannedQuery {
    /// The schema of the rows the query returns.
    pub fn schema(&self) -> SchemaRef {
        self.plan.schema()
    }

    /// Starts the query; its rows stream as they are produced.
    pub fn execute(self) -> Result<SendableRecordBatchStream, EngineError> {
        Ok(execute_stream(self.plan, self.context)?)
    }
}

/// A statement prepared by [`Engine::prepare`].
#[derive(Debug)]
pub struct Prepared {
    /// The statement, its placeholders numbered `$1`, `$2`, …
    pub sql: String,
    /// The schema of the rows it returns; `None` when it returns none.
    pub schema: Option<SchemaRef>,
    /// The type of each parameter, `$1` first.
    pub parameters: Vec<DataType>,
    /// The plan made to learn the schema of a query without parameters, to run while
    /// [`Engine::is_current`] holds for it instead of planning the query again.
    pub plan: Option<PlannedQuery>,
}

/// How an [`Engine`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// How writers of this server coordinate (pessimistic locks or optimistic commits).
    pub concurrency: Concurrency,
    /// DataFusion configuration settings (`datafusion.execution.batch_size`, `8192`), applied
    /// over MiniDB's defaults in order; an unknown key or a bad value fails the open.
    pub engine_settings: Vec<(String, String)>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            concurrency: Concurrency::Pessimistic {
                lock_timeout: std::time::Duration::from_secs(10),
            },
            engine_settings: Vec::new(),
        }
    }
}

/// Rows per batch in query execution (`datafusion.execution.batch_size`).
const BATCH_ROWS: usize = 64 * 1024;

/// DataFusion's physical optimizer rules, with MiniDB's filter estimates ahead of join
/// selection (which decides each hash join's build side from them).
fn physical_optimizer_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let mut rules = PhysicalOptimizer::new().rules;
    let at = rules
        .iter()
        .position(|rule| rule.name() == "join_selection")
        .unwrap_or(0);
    rules.insert(at, Arc::new(EstimateFilterSelectivity));
    rules
}

impl Engine {
    /// Opens the catalog in `store` with default options.
    pub async fn open(store: DataStore) -> Result<Self, EngineError> {
        Self::open_with(store, EngineOptions::default()).await
    }

    /// Opens the catalog in `store` and prepares DataFusion to read it.
    pub async fn open_with(store: DataStore, options: EngineOptions) -> Result<Self, EngineError> {
        let runtime = RuntimeEnvBuilder::new().build_arc()?;
        let engine_url = url::Url::parse(store.engine_url())
            .map_err(|e| EngineError::InvalidInput(e.to_string()))?;
        runtime.register_object_store(&engine_url, Arc::clone(store.object_store()));
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG_NAME, DEFAULT_DATABASE)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true);
        // Plain Utf8 everywhere: Flight SQL JDBC drivers before 19 cannot read Utf8View.
        config.options_mut().sql_parser.map_string_types_to_utf8view = false;
        config
            .options_mut()
            .execution
            .parquet
            .schema_force_view_types = false;
        // Numbers with a fraction are exact DECIMALs, as in PostgreSQL and DuckDB: `0.1 + 0.2 =
        // 0.3` holds and a DECIMAL(38, s) literal keeps every digit. Exponents make a DOUBLE
        // (see `statement::rewrite_expressions`).
        config.options_mut().sql_parser.parse_float_as_decimal = true;
        // Batches of 64 Ki rows: per-batch costs (in operators, in the Flight encoder, in the
        // client) fall 8× against DataFusion's 8,192, which TPC-H does not feel and which doubles
        // streaming to ADBC (docs/performance.md).
        config = config.with_batch_size(BATCH_ROWS);
        // Parallelism comes from file groups; round-robin batches would shuffle small results.
        config
            .options_mut()
            .optimizer
            .enable_round_robin_repartition = false;
        // Scans estimate the rows they read (an index lookup: a handful); a small estimate keeps
        // DataFusion from splitting such a scan into byte ranges read in parallel.
        config
            .options_mut()
            .execution
            .use_row_number_estimates_to_optimize_partitioning = true;
        for (key, value) in &options.engine_settings {
            config.options_mut().set(key, value).map_err(|e| {
                EngineError::InvalidInput(format!("engine setting {key}: {}", e.strip_backtrace()))
            })?;
        }
        if let Some(cache) = store.column_cache() {
            config = config.with_extension(Arc::clone(cache));
        }
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_physical_optimizer_rules(physical_optimizer_rules())
            .build();
        let catalog = Arc::new(Catalog::open(store, options.concurrency).await?);
        Ok(Self {
            catalog,
            state,
            started: Instant::now(),
        })
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The names of the scalar functions (upper case), by the section of DataFusion's function
    /// reference that documents them ("Math Functions", "String Functions", …).
    pub fn scalar_functions(&self) -> BTreeMap<&'static str, Vec<String>> {
        let mut sections: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for (name, function) in self.state.scalar_functions() {
            if let Some(doc) = function.documentation() {
                sections
                    .entry(doc.doc_section.label)
                    .or_default()
                    .push(name.to_uppercase());
            }
        }
        sections
    }

    /// Time since the engine was opened.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Runs one SQL statement in `session`.
    ///
    /// A conflict inside a transaction rolls the transaction back: its snapshot is stale, so
    /// the only way forward is to run it again.
    pub async fn execute(&self, session: &mut Session, sql: &str) -> Result<Outcome, EngineError> {
        let result = self.execute_statement(session, sql).await;
        match result {
            Err(e) if e.kind() == ErrorKind::Conflict && session.transaction().is_some() => {
                session.end_transaction();
                Err(EngineError::RolledBack(Box::new(e)))
            }
            other => other,
        }
    }

    /// Opens a transaction (for a session to run statements in).
    pub fn begin(&self) -> Arc<Transaction> {
        Arc::new(Transaction::new())
    }

    /// Commits `transaction`: one Delta commit per table it changed.
    pub async fn commit(&self, transaction: &Transaction) -> Result<(), EngineError> {
        transaction
            .commit()
            .await
            .map_err(|e| EngineError::Catalog(CatalogError::from(e)))?;
        Ok(())
    }

    async fn execute_statement(
        &self,
        session: &mut Session,
        sql: &str,
    ) -> Result<Outcome, EngineError> {
        self.run_statement(session, statement::parse(sql)?).await
    }

    async fn run_statement(
        &self,
        session: &mut Session,
        statement: Statement,
    ) -> Result<Outcome, EngineError> {
        // Catalog changes are not transactional. One in a transaction that has not used a table
        // yet runs as if just before it (clients that open a transaction on connect, like
        // ADBC's DBAPI, start with DDL); later ones would change tables under the transaction.
        if statement.changes_catalog() && session.transaction().is_some_and(|t| !t.is_untouched()) {
            return Err(EngineError::NotSupported(
                "changing databases or tables inside a transaction that has used tables; \
                 COMMIT or ROLLBACK first"
                    .into(),
            ));
        }
        match statement {
            Statement::CreateDatabase {
                name,
                if_not_exists,
            } => match self.catalog.create_database(&name).await {
                Ok(()) => Ok(Outcome::DatabaseCreated(name)),
                Err(CatalogError::DatabaseExists(_)) if if_not_exists => Ok(Outcome::NothingToDo(
                    format!("Database {name} already exists"),
                )),
                Err(e) => Err(e.into()),
            },
            Statement::DropDatabase { name, if_exists } => {
                if name == DEFAULT_DATABASE {
                    return Err(EngineError::InvalidInput(
                        "the default database cannot be dropped".into(),
                    ));
                }
                match self.catalog.drop_database(&name).await {
                    Ok(()) => Ok(Outcome::DatabaseDropped(name)),
                    Err(CatalogError::DatabaseNotFound(_)) if if_exists => Ok(
                        Outcome::NothingToDo(format!("Database {name} does not exist")),
                    ),
                    Err(e) => Err(e.into()),
                }
            }
            Statement::Use(name) => {
                if !self.catalog.database_exists(&name).await? {
                    return Err(CatalogError::DatabaseNotFound(name).into());
                }
                session.set_database(name.clone());
                Ok(Outcome::UsingDatabase(name))
            }
            Statement::ShowDatabases => Ok(Outcome::names(
                Listing::Databases,
                "database_name",
                self.catalog.databases().await?,
            )),
            Statement::ShowTables(database) => {
                let database = session.database_or_current(database);
                let tables = self.catalog.tables(&database).await?;
                Ok(Outcome::names(
                    Listing::Tables { database },
                    "table_name",
                    tables,
                ))
            }
            Statement::Describe(name) => self.describe(session, name).await,
            Statement::DropTable { names, if_exists } => {
                self.drop_tables(session, names, if_exists).await
            }
            Statement::CreateIndex {
                name,
                table,
                columns,
                unique,
                if_not_exists,
            } => {
                self.create_index(session, name, table, columns, unique, if_not_exists)
                    .await
            }
            Statement::DropIndex {
                name,
                table,
                if_exists,
            } => self.drop_index(session, name, table, if_exists).await,
            Statement::ShowIndexes(table) => self.show_indexes(session, table).await,
            Statement::Optimize { table, zorder } => self.optimize(session, table, zorder).await,
            Statement::Analyze { table, columns } => self.analyze(session, table, columns).await,
            Statement::DescribeHistory(table) => self.describe_history(session, table).await,
            Statement::Vacuum {
                table,
                retain_hours,
                dry_run,
            } => self.vacuum(session, table, retain_hours, dry_run).await,
            Statement::CreatePartitionedTable {
                create,
                partitioning,
            } => match *create {
                DFStatement::Statement(statement) => match *statement {
                    ast::Statement::CreateTable(create) => {
                        self.create_table(session, &create, Some(partitioning))
                            .await
                    }
                    other => Err(EngineError::InvalidInput(format!(
                        "PARTITION BY belongs to CREATE TABLE, not {other}"
                    ))),
                },
                other => Err(EngineError::InvalidInput(format!(
                    "PARTITION BY belongs to CREATE TABLE, not {other}"
                ))),
            },
            Statement::Parsed(parsed) => self.execute_parsed(session, *parsed).await,
        }
    }

    /// Plans `sql` when it is a query (SELECT, EXPLAIN), without running it; `None` for any
    /// other statement. The plan reads the snapshots current now, whenever it runs.
    ///
    /// A maintenance statement that answers with rows (OPTIMIZE, ANALYZE, DESCRIBE HISTORY) runs now,
    /// and its plan replays the answer: its effect must not wait for a client to fetch rows.
    pub async fn plan_query(
        &self,
        session: &Session,
        sql: &str,
    ) -> Result<Option<PlannedQuery>, EngineError> {
        let (plan, reads) = match statement::parse(sql)? {
            Statement::Parsed(parsed) if returns_rows(&parsed) => {
                self.physical_plan(session, *parsed).await?
            }
            statement @ (Statement::Optimize { .. }
            | Statement::Analyze { .. }
            | Statement::Vacuum { .. }
            | Statement::DescribeHistory(_)) => {
                let Outcome::Listing(_, batch) =
                    self.run_statement(&mut session.clone(), statement).await?
                else {
                    return Ok(None);
                };
                let schema = batch.schema();
                let plan = MemorySourceConfig::try_new_exec(&[vec![batch]], schema, None)?;
                let reads = ReadSet::default();
                reads.unversioned();
                (plan as Arc<dyn ExecutionPlan>, reads)
            }
            _ => return Ok(None),
        };
        Ok(Some(PlannedQuery {
            plan,
            context: self.state.task_ctx(),
            reads,
        }))
    }

    /// Whether `query` still reads what planning it again would: every table it reads is at
    /// the version it was planned against (after catching up with the log), and it reads no
    /// system table and no transaction's view. A plan kept from preparing a statement runs
    /// only while this holds.
    pub async fn is_current(&self, query: &PlannedQuery) -> Result<bool, EngineError> {
        Ok(query.reads.is_current(&self.catalog).await?)
    }

    /// The schema of the rows `sql` returns, without running it; `None` when the statement
    /// returns no rows (DDL, INSERT). Used to prepare statements.
    pub async fn output_schema(
        &self,
        session: &Session,
        sql: &str,
    ) -> Result<Option<SchemaRef>, EngineError> {
        let parsed = match statement::parse(sql)? {
            Statement::ShowDatabases
            | Statement::ShowTables(_)
            | Statement::Describe(_)
            | Statement::ShowIndexes(_) => {
                // Listings only read the catalog: running one is the surest way to its schema.
                return match self.execute(&mut session.clone(), sql).await? {
                    Outcome::Listing(_, batch) => Ok(Some(batch.schema())),
                    _ => Ok(None),
                };
            }
            Statement::Optimize { .. } => return Ok(Some(super::maintenance::optimize_schema())),
            Statement::Analyze { .. } => return Ok(Some(super::maintenance::analyze_schema())),
            Statement::DescribeHistory(_) => return Ok(Some(super::history::history_schema())),
            Statement::Vacuum { .. } => return Ok(Some(super::maintenance::vacuum_schema())),
            Statement::Parsed(parsed) if returns_rows(&parsed) => parsed,
            _ => return Ok(None),
        };
        let (plan, _) = self.physical_plan(session, *parsed).await?;
        Ok(Some(plan.schema()))
    }

    /// Prepares `sql` for a client that will bind parameters to it: the statement with its
    /// placeholders numbered, the schema of its rows and the types of its parameters.
    ///
    /// Parameter types come from DataFusion's inference (a parameter compared with or inserted
    /// into a column takes the column's type); where it cannot tell, a parameter is text.
    pub async fn prepare(&self, session: &Session, sql: &str) -> Result<Prepared, EngineError> {
        let (sql, count) = parameters::number_placeholders(sql)?;
        if count == 0 {
            let parsed = match statement::parse(&sql)? {
                Statement::Parsed(parsed) if returns_rows(&parsed) => Some(parsed),
                _ => None,
            };
            let (schema, plan) = match parsed {
                Some(parsed) => {
                    let (plan, reads) = self.physical_plan(session, *parsed).await?;
                    let query = PlannedQuery {
                        plan,
                        context: self.state.task_ctx(),
                        reads,
                    };
                    (Some(query.schema()), Some(query))
                }
                None => (self.output_schema(session, &sql).await?, None),
            };
            return Ok(Prepared {
                sql,
                schema,
                parameters: Vec::new(),
                plan,
            });
        }
        let mut parameters = vec![parameters::unknown_parameter_type(); count];
        let mut schema = None;
        if let Statement::Parsed(parsed) = statement::parse(&sql)? {
            let rows = returns_rows(&parsed);
            match self.logical_plan(session, *parsed).await {
                Ok((plan, ..)) => {
                    if rows {
                        schema = Some(Arc::clone(plan.schema().inner()));
                    }
                    for (name, data_type) in plan.get_parameter_types()? {
                        let number = name.strip_prefix('$').and_then(|n| n.parse::<usize>().ok());
                        if let (Some(n), Some(data_type)) = (number, data_type)
                            && let Some(slot) = n.checked_sub(1).and_then(|i| parameters.get_mut(i))
                        {
                            *slot = data_type;
                        }
                    }
                }
                Err(e) if rows => return Err(e),
                // A statement DataFusion does not plan (UPDATE, DELETE and MiniDB's own) keeps
                // text parameters; its errors surface when it runs.
                Err(_) => {}
            }
        }
        Ok(Prepared {
            sql,
            schema,
            parameters,
            plan: None,
        })
    }

    async fn describe(&self, session: &Session, name: TableName) -> Result<Outcome, EngineError> {
        let database = session.database_or_current(name.database);
        let handle = self.catalog.table(&database, &name.table).await?;
        let snapshot = handle.cached();
        let fields = snapshot.schema().fields();
        let batch = RecordBatch::try_new(
            Outcome::columns_schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    fields.iter().map(|f| f.name()),
                )),
                Arc::new(StringArray::from_iter_values(
                    fields.iter().map(|f| sql_type_name(f.data_type())),
                )),
                Arc::new(StringArray::from_iter_values(
                    fields
                        .iter()
                        .map(|f| if f.is_nullable() { "YES" } else { "NO" }),
                )),
            ],
        )
        .map_err(|e| EngineError::DataFusion(e.into()))?;
        Ok(Outcome::Listing(
            Listing::Columns {
                table: format!("{database}.{}", name.table),
            },
            batch,
        ))
    }

    async fn drop_tables(
        &self,
        session: &Session,
        names: Vec<TableName>,
        if_exists: bool,
    ) -> Result<Outcome, EngineError> {
        let mut dropped = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            let database = session.database_or_current(name.database);
            match self.catalog.drop_table(&database, &name.table).await {
                Ok(()) => dropped.push(name.table),
                Err(CatalogError::TableNotFound(t)) if if_exists => missing.push(t),
                Err(e) => return Err(e.into()),
            }
        }
        if dropped.is_empty() {
            return Ok(Outcome::NothingToDo(format!(
                "Table {} does not exist",
                missing.join(", ")
            )));
        }
        Ok(Outcome::TableDropped(dropped.join(", ")))
    }

    async fn execute_parsed(
        &self,
        session: &mut Session,
        parsed: DFStatement,
    ) -> Result<Outcome, EngineError> {
        if let DFStatement::Statement(statement) = &parsed {
            match statement.as_ref() {
                ast::Statement::CreateTable(create) => {
                    return self.create_table(session, create, None).await;
                }
                ast::Statement::AlterTable(alter) => {
                    return self.alter_table(session, alter).await;
                }
                ast::Statement::StartTransaction { .. } => {
                    if session.transaction().is_some() {
                        return Err(EngineError::InvalidInput(
                            "a transaction is already open; COMMIT or ROLLBACK it first".into(),
                        ));
                    }
                    session.begin(self.begin());
                    return Ok(Outcome::TransactionStarted);
                }
                ast::Statement::Commit { .. } => {
                    let Some(transaction) = session.end_transaction() else {
                        return Ok(Outcome::NothingToDo("No transaction is open".into()));
                    };
                    self.commit(&transaction)
                        .await
                        .map_err(|e| EngineError::RolledBack(Box::new(e)))?;
                    return Ok(Outcome::TransactionCommitted);
                }
                ast::Statement::Rollback {
                    savepoint: None, ..
                } => {
                    return Ok(match session.end_transaction() {
                        Some(_) => Outcome::TransactionRolledBack,
                        None => Outcome::NothingToDo("No transaction is open".into()),
                    });
                }
                ast::Statement::Update(update) => {
                    return self.execute_dml(session, Dml::update(update)?).await;
                }
                ast::Statement::Delete(delete) => {
                    return self.execute_dml(session, Dml::delete(delete)?).await;
                }
                _ => {}
            }
        }
        if !returns_rows(&parsed) && !is_insert(&parsed) {
            return Err(EngineError::NotSupported(statement_kind(&parsed)));
        }
        let (plan, _) = self.physical_plan(session, parsed.clone()).await?;
        if let Some(table) = insert_target(&parsed) {
            let batches = collect(plan, self.state.task_ctx()).await?;
            let rows = batches
                .first()
                .and_then(|b| b.column(0).as_any().downcast_ref::<UInt64Array>())
                .map_or(0, |counts| counts.value(0));
            return Ok(Outcome::Inserted { table, rows });
        }
        Ok(Outcome::Rows(execute_stream(plan, self.state.task_ctx())?))
    }

    /// Plans a DataFusion statement against a fresh view of the catalog, up to its logical
    /// plan; also returns the state to go on planning with and what the plan reads.
    async fn logical_plan(
        &self,
        session: &Session,
        parsed: DFStatement,
    ) -> Result<(LogicalPlan, SessionState, ReadSet), EngineError> {
        let view = StatementCatalog::load(
            Arc::clone(&self.catalog),
            self.scope(session, &parsed)?,
            session.transaction().cloned(),
        )
        .await?;
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
    async fn physical_plan(
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
        Ok((state.create_physical_plan(&plan).await?, reads))
    }

    /// DataFusion's state for one statement: the session's database over `view`.
    pub(super) fn statement_state(
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
    pub(super) fn scope(
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

    async fn create_table(
        &self,
        session: &Session,
        create: &ast::CreateTable,
        partitioning: Option<Partitioning>,
    ) -> Result<Outcome, EngineError> {
        if create.query.is_some() {
            return Err(EngineError::NotSupported("CREATE TABLE … AS SELECT".into()));
        }
        if let Some(expr) = &create.partition_by {
            return Err(EngineError::InvalidInput(format!(
                "PARTITION BY {expr}: expected PARTITION BY HASH (column) or PARTITION BY RANGE (column)"
            )));
        }
        let mut primary_key: Vec<String> = Vec::new();
        let mut unique: Vec<Vec<String>> = Vec::new();
        for constraint in &create.constraints {
            match constraint {
                ast::TableConstraint::PrimaryKey(pk) if primary_key.is_empty() => {
                    primary_key = index_columns(&pk.columns, "PRIMARY KEY")?;
                }
                ast::TableConstraint::PrimaryKey(_) => {
                    return Err(EngineError::InvalidInput(
                        "a table has at most one PRIMARY KEY".into(),
                    ));
                }
                ast::TableConstraint::Unique(key) => {
                    unique.push(index_columns(&key.columns, "UNIQUE")?);
                }
                other => {
                    return Err(EngineError::NotSupported(format!(
                        "table constraint {other} (MiniDB enforces PRIMARY KEY, UNIQUE, NOT NULL and DEFAULT)"
                    )));
                }
            }
        }
        let mut defaults = serde_json::Map::new();
        if create.columns.is_empty() {
            return Err(EngineError::InvalidInput(
                "a table needs at least one column".into(),
            ));
        }
        let name = statement::table_name(&create.name)?;
        let database = session.database_or_current(name.database);
        let mut fields: Vec<Field> = Vec::with_capacity(create.columns.len());
        for column in &create.columns {
            let column_name = lexing::normalize(&column.name);
            if fields
                .iter()
                .any(|f| f.name().eq_ignore_ascii_case(&column_name))
            {
                return Err(EngineError::InvalidInput(format!(
                    "column '{column_name}' is declared twice"
                )));
            }
            let mut nullable = true;
            for option in &column.options {
                match &option.option {
                    ColumnOption::NotNull => nullable = false,
                    ColumnOption::PrimaryKey(_) if primary_key.is_empty() => {
                        primary_key.push(column_name.clone());
                    }
                    ColumnOption::PrimaryKey(_) => {
                        return Err(EngineError::InvalidInput(
                            "a table has at most one PRIMARY KEY".into(),
                        ));
                    }
                    ColumnOption::Null => nullable = true,
                    ColumnOption::Unique(_) => unique.push(vec![column_name.clone()]),
                    ColumnOption::Default(expr) => {
                        let text = expr.to_string();
                        let parsed = self
                            .state
                            .create_logical_expr(&text, &DFSchema::empty())
                            .map_err(|e| {
                                EngineError::InvalidInput(format!(
                                    "DEFAULT of '{column_name}' must be a constant expression: {}",
                                    e.strip_backtrace()
                                ))
                            })?;
                        if !parsed.column_refs().is_empty() {
                            return Err(EngineError::InvalidInput(format!(
                                "DEFAULT of '{column_name}' cannot name columns"
                            )));
                        }
                        defaults.insert(column_name.clone(), text.into());
                    }
                    other => {
                        return Err(EngineError::NotSupported(format!(
                            "column option {other} on '{column_name}' (MiniDB enforces PRIMARY KEY, UNIQUE, NOT NULL and DEFAULT)"
                        )));
                    }
                }
            }
            fields.push(Field::new(
                column_name,
                column_type(&column.data_type)?,
                nullable,
            ));
        }
        for key in unique.iter().flatten() {
            if !fields.iter().any(|f| f.name() == key) {
                return Err(EngineError::InvalidInput(format!(
                    "UNIQUE column '{key}' is not a column of the table"
                )));
            }
        }
        for key in &primary_key {
            let Some(field) = fields.iter_mut().find(|f| f.name() == key) else {
                return Err(EngineError::InvalidInput(format!(
                    "PRIMARY KEY column '{key}' is not a column of the table"
                )));
            };
            // Key columns are NOT NULL, which the Delta schema itself records.
            *field = field.clone().with_nullable(false);
        }
        let schema = Schema::new(fields);
        let mut properties = Vec::new();
        // Every key gets an index, which answers "does this key exist?" for its checks.
        let mut indexes: Vec<IndexDef> = Vec::new();
        if !primary_key.is_empty() {
            properties.push((PRIMARY_KEY_PROPERTY, serde_json::json!(primary_key)));
            let key = primary_key.clone();
            indexes.push(IndexDef::for_constraint(&name.table, "PRIMARY KEY", key));
        }
        if !unique.is_empty() {
            properties.push((UNIQUE_PROPERTY, serde_json::json!(unique)));
        }
        for columns in &unique {
            if !indexes.iter().any(|i| &i.columns == columns) {
                let key = columns.clone();
                indexes.push(IndexDef::for_constraint(&name.table, "UNIQUE", key));
            }
        }
        if !indexes.is_empty() {
            let json = serde_json::to_value(&indexes)
                .map_err(|e| EngineError::InvalidInput(format!("index definitions: {e}")))?;
            properties.push((INDEXES_PROPERTY, json));
        }
        if !defaults.is_empty() {
            properties.push((DEFAULTS_PROPERTY, serde_json::Value::Object(defaults)));
        }
        if let Some(partitioning) = partitioning {
            Partitioner::new(partitioning.clone(), &schema).map_err(EngineError::InvalidInput)?;
            let json = serde_json::to_value(&partitioning)
                .map_err(|e| EngineError::InvalidInput(format!("partitioning: {e}")))?;
            properties.push((PARTITIONING_PROPERTY, json));
        }
        let mut properties: Vec<(String, String)> = properties
            .into_iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        properties.extend(table_properties(&create.table_options)?);
        match self
            .catalog
            .create_table(&database, &name.table, &schema, properties)
            .await
        {
            Ok(_) => Ok(Outcome::TableCreated(name.table)),
            Err(CatalogError::TableExists(t)) if create.if_not_exists => {
                Ok(Outcome::NothingToDo(format!("Table {t} already exists")))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The plain column names of a PRIMARY KEY or UNIQUE constraint.
fn index_columns(columns: &[ast::IndexColumn], kind: &str) -> Result<Vec<String>, EngineError> {
    columns
        .iter()
        .map(|column| match &column.column.expr {
            ast::Expr::Identifier(ident) => Ok(lexing::normalize(ident)),
            other => Err(EngineError::InvalidInput(format!(
                "{kind} lists columns, not expressions like {other}"
            ))),
        })
        .collect()
}

/// True for statements whose result is a set of rows (queries, EXPLAIN).
fn returns_rows(parsed: &DFStatement) -> bool {
    match parsed {
        DFStatement::Statement(s) => matches!(s.as_ref(), ast::Statement::Query(_)),
        DFStatement::Explain(_) => true,
        _ => false,
    }
}

fn is_insert(parsed: &DFStatement) -> bool {
    insert_target(parsed).is_some()
}

/// The table an INSERT writes to, as written in the statement.
fn insert_target(parsed: &DFStatement) -> Option<String> {
    match parsed {
        DFStatement::Statement(s) => match s.as_ref() {
            ast::Statement::Insert(insert) => Some(match &insert.table {
                ast::TableObject::TableName(name) => statement::table_name(name)
                    .map(|n| n.table)
                    .unwrap_or_else(|_| name.to_string()),
                other => other.to_string(),
            }),
            _ => None,
        },
        _ => None,
    }
}

/// A short description of a statement MiniDB does not run, for the error message.
fn statement_kind(parsed: &DFStatement) -> String {
    let text = parsed.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    format!("{} statements", words.join(" ").to_uppercase())
}

/// The `TBLPROPERTIES ('key' = 'value', …)` of a CREATE TABLE, checked.
fn table_properties(
    options: &ast::CreateTableOptions,
) -> Result<Vec<(String, String)>, EngineError> {
    match options {
        ast::CreateTableOptions::None => Ok(Vec::new()),
        ast::CreateTableOptions::TableProperties(options) => property_list(options),
        other => Err(EngineError::NotSupported(format!(
            "table options {other}; set table properties with TBLPROPERTIES ('key' = 'value', …)"
        ))),
    }
}

/// Key/value pairs of a property list, each checked with [`properties::check`].
pub(super) fn property_list(
    options: &[ast::SqlOption],
) -> Result<Vec<(String, String)>, EngineError> {
    options
        .iter()
        .map(|option| {
            let ast::SqlOption::KeyValue { key, value } = option else {
                return Err(EngineError::InvalidInput(format!(
                    "expected 'key' = 'value' in a property list, found {option}"
                )));
            };
            let value = match value {
                ast::Expr::Value(v) => match &v.value {
                    ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => {
                        s.clone()
                    }
                    ast::Value::Number(n, _) => n.clone(),
                    ast::Value::Boolean(b) => b.to_string(),
                    other => other.to_string(),
                },
                other => other.to_string(),
            };
            properties::check(&key.value, &value).map_err(EngineError::InvalidInput)?;
            Ok((key.value.clone(), value))
        })
        .collect()
}
