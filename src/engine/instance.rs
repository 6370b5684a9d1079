//! [`Engine`]: one catalog and one DataFusion configuration, shared by every session.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::cache::cache_manager::{CacheManagerConfig, FileMetadataCache};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::execution::{
    FunctionRegistry, SendableRecordBatchStream, SessionStateBuilder, TaskContext,
};
use datafusion::optimizer::Optimizer;
use datafusion::optimizer::{Analyzer, AnalyzerRule};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::SessionConfig;

use super::checked::CheckedArithmetic;
use super::decorrelate::{self, SubqueryPlanner};
use super::exec::query::client_schema;
use super::functions;
use super::running::{Admission, AdmissionLimits, Watch, counted};
use super::selectivity::EstimateFilterSelectivity;
use super::sql::{self, Answer, Statement, parameters};
use super::{EngineError, ErrorKind, Outcome, Session};
use crate::catalog::{
    CATALOG_NAME, Catalog, CatalogError, DEFAULT_DATABASE, ReadSet, RunningStatements,
    StatementOrigin,
};
use crate::storage::DataStore;
use crate::table::{CacheBudgets, Concurrency, TableCaches, Transaction};

/// The query engine behind every protocol. Cheap to share: all state is in the object store.
#[derive(Debug)]
pub struct Engine {
    pub(super) catalog: Arc<Catalog>,
    pub(super) state: SessionState,
    /// The same state, shared with each statement's catalog to plan the views it reads.
    pub(super) view_state: Arc<SessionState>,
    started: Instant,
    /// `--statement-timeout-ms`: how long a statement may run unless its session says
    /// otherwise.
    pub(super) default_statement_timeout: Option<Duration>,
    /// Slots for running statements (`--max-concurrent-queries`); `None` for no limit.
    pub(super) admission: Option<Arc<Admission>>,
}

/// A query planned by [`Engine::plan_query`], ready to run.
#[derive(Debug)]
pub struct PlannedQuery {
    plan: Arc<dyn ExecutionPlan>,
    context: TaskContext,
    reads: ReadSet,
    /// Registers the query among the running statements when it starts.
    watch: WatchPlan,
}

/// What a [`PlannedQuery`] needs to register and watch itself once it runs.
#[derive(Debug)]
struct WatchPlan {
    registry: Arc<RunningStatements>,
    admission: Option<Arc<Admission>>,
    origin: StatementOrigin,
    text: String,
    timeout: Option<Duration>,
}

impl PlannedQuery {
    /// The schema of the rows the query returns.
    pub fn schema(&self) -> SchemaRef {
        self.plan.schema()
    }

    /// Starts the query; its rows stream as they are produced. It is listed by `sys.queries`
    /// until the stream ends or is dropped, and stopped by `CANCEL QUERY` or its timeout.
    pub fn execute(self) -> Result<SendableRecordBatchStream, EngineError> {
        let WatchPlan {
            registry,
            admission,
            origin,
            text,
            timeout,
        } = self.watch;
        let watch = Watch::start(&registry, origin, &text, timeout);
        let context = Arc::new(counted(self.context, watch.reserved())?);
        let plan = self.plan;
        let schema = plan.schema();
        Ok(watch.stream_when_admitted(schema, admission, move || {
            Ok(execute_stream(plan, context)?)
        }))
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
    /// Bytes all running statements may hold together in their operators (hash tables, sort
    /// buffers, aggregates); `None` sets no limit. Sorts, aggregations and joins that can spill
    /// to disk do so when they reach their share; others fail with "resources exhausted".
    pub memory_limit: Option<usize>,
    /// Directory for spill files; `None` uses the system's temporary directory.
    pub spill_dir: Option<std::path::PathBuf>,
    /// How long a statement may run before it is stopped, unless its session sets its own
    /// (`SET statement_timeout`); `None` for no limit.
    pub statement_timeout: Option<Duration>,
    /// How many statements run at once and how many wait for a turn.
    pub admission: AdmissionLimits,
    /// Bytes of index segment footers and decoded leaves kept in memory, for all tables
    /// together (0 keeps none).
    pub index_cache_bytes: u64,
    /// Bytes of parsed deletion vectors kept in memory, for all tables together (0 keeps none).
    pub deletion_vector_cache_bytes: u64,
    /// Bytes of parsed Parquet footers of data files kept in memory, for all tables together
    /// (0 keeps none).
    pub footer_cache_bytes: u64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            concurrency: Concurrency::Pessimistic {
                lock_timeout: std::time::Duration::from_secs(10),
            },
            engine_settings: Vec::new(),
            memory_limit: None,
            spill_dir: None,
            statement_timeout: None,
            admission: AdmissionLimits {
                running: 0,
                queued: 0,
                wait: Duration::ZERO,
            },
            index_cache_bytes: 64 * 1024 * 1024,
            deletion_vector_cache_bytes: 16 * 1024 * 1024,
            footer_cache_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Rows per batch in query execution (`datafusion.execution.batch_size`).
const BATCH_ROWS: usize = 64 * 1024;

/// DataFusion's analyzer rules, with subquery placement ahead of type coercion and checked
/// integer arithmetic after everything.
fn analyzer_rules() -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
    let mut rules = decorrelate::analyzer_rules(Analyzer::new().rules);
    rules.push(Arc::new(CheckedArithmetic::new()));
    rules
}

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
        let caches = TableCaches::new(CacheBudgets {
            indexes: options.index_cache_bytes,
            vectors: options.deletion_vector_cache_bytes,
            footers: options.footer_cache_bytes,
        });
        let footers: Arc<FileMetadataCache> = Arc::clone(&caches.footers) as _;
        let mut runtime = RuntimeEnvBuilder::new().with_cache_manager(
            CacheManagerConfig::default()
                .with_file_metadata_cache(Some(footers))
                .with_metadata_cache_limit(
                    usize::try_from(options.footer_cache_bytes).unwrap_or(usize::MAX),
                ),
        );
        if let Some(limit) = options.memory_limit {
            // Fair shares among the operators that can spill; the error names the largest
            // holders when a statement cannot get what it asks for.
            let pool = TrackConsumersPool::new(
                FairSpillPool::new(limit),
                NonZeroUsize::new(3).expect("nonzero"),
            );
            runtime = runtime.with_memory_pool(Arc::new(pool));
        }
        if let Some(dir) = &options.spill_dir {
            runtime = runtime.with_disk_manager_builder(
                DiskManagerBuilder::default()
                    .with_mode(DiskManagerMode::Directories(vec![dir.clone()])),
            );
        }
        let runtime = runtime.build_arc()?;
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
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_analyzer_rules(analyzer_rules())
            .with_optimizer_rules(decorrelate::optimizer_rules(Optimizer::new().rules))
            .with_query_planner(Arc::new(SubqueryPlanner))
            .with_physical_optimizer_rules(physical_optimizer_rules())
            .build();
        for function in functions::replacements() {
            state.register_udf(function)?;
        }
        let catalog = Arc::new(Catalog::open(store, options.concurrency, caches).await?);
        Ok(Self {
            catalog,
            view_state: Arc::new(state.clone()),
            state,
            started: Instant::now(),
            default_statement_timeout: options.statement_timeout.filter(|t| !t.is_zero()),
            admission: (options.admission.running > 0)
                .then(|| Arc::new(Admission::new(options.admission))),
        })
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
    ///
    /// The statement is listed by `sys.queries` while it runs (a query until its rows are read
    /// or dropped) and stops with an error when `CANCEL QUERY` or its statement timeout asks.
    pub async fn execute(&self, session: &mut Session, sql: &str) -> Result<Outcome, EngineError> {
        let statement = sql::parse(sql);
        // Statements that end transactions, change the session or stop others never wait for
        // a slot: a full server must still let a session cancel, commit or roll back.
        let admission = match &statement {
            Ok(statement) if statement.skips_admission() => None,
            _ => self.admission.as_deref(),
        };
        let watch = self.watch(session, sql).admitted(admission).await?;
        let result = watch
            .run(async {
                match statement {
                    Ok(statement) => self.run(session, statement).await,
                    Err(e) => Err(e),
                }
            })
            .await;
        let result = match result {
            Ok(Outcome::Rows(rows)) => Ok(Outcome::Rows(watch.stream(rows))),
            other => other,
        };
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

    /// Plans `sql` when it is a query (SELECT, EXPLAIN), without running it; `None` for any
    /// other statement. The plan reads the snapshots current now, whenever it runs.
    ///
    /// A maintenance statement that answers with a report (OPTIMIZE, ANALYZE, VACUUM, DESCRIBE
    /// HISTORY) runs now, and its plan replays the report: its effect must not wait for a client
    /// to fetch rows.
    pub async fn plan_query(
        &self,
        session: &Session,
        sql: &str,
    ) -> Result<Option<PlannedQuery>, EngineError> {
        let statement = sql::parse(sql)?;
        let admitted_freely = statement.skips_admission();
        let (plan, reads) = match (statement.answer(), statement) {
            (_, Statement::Query(query)) => self.physical_plan(session, *query).await?,
            (Answer::Report(_), statement) => {
                let watch = self
                    .watch(session, sql)
                    .admitted(self.admission.as_deref())
                    .await?;
                let mut own = session.clone();
                let Outcome::Listing(_, batch) = watch.run(self.run(&mut own, statement)).await?
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
        Ok(Some(self.planned(
            session,
            sql,
            (plan, reads),
            admitted_freely,
        )))
    }

    /// `plan` ready to run: it will wait for a slot unless `admitted_freely`.
    fn planned(
        &self,
        session: &Session,
        sql: &str,
        (plan, reads): (Arc<dyn ExecutionPlan>, ReadSet),
        admitted_freely: bool,
    ) -> PlannedQuery {
        PlannedQuery {
            plan,
            context: TaskContext::from(&self.state),
            reads,
            watch: WatchPlan {
                registry: Arc::clone(self.catalog.statements()),
                admission: self.admission.clone().filter(|_| !admitted_freely),
                origin: session.origin(),
                text: sql.to_string(),
                timeout: self.statement_timeout(session),
            },
        }
    }

    /// Registers `sql` as running in `session`, under the session's statement timeout.
    pub(super) fn watch(&self, session: &Session, sql: &str) -> Watch {
        Watch::start(
            self.catalog.statements(),
            session.origin(),
            sql,
            self.statement_timeout(session),
        )
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
        let statement = sql::parse(sql)?;
        match (statement.answer(), statement) {
            (_, Statement::Query(query)) => {
                let (plan, _) = self.physical_plan(session, *query).await?;
                Ok(Some(plan.schema()))
            }
            // Listings only read the catalog: running one is the surest way to its schema.
            (Answer::Listing, statement) => {
                match self.run(&mut session.clone(), statement).await? {
                    Outcome::Listing(_, batch) => Ok(Some(batch.schema())),
                    _ => Ok(None),
                }
            }
            (Answer::Report(schema), _) => Ok(Some(schema)),
            _ => Ok(None),
        }
    }

    /// Prepares `sql` for a client that will bind parameters to it: the statement with its
    /// placeholders numbered, the schema of its rows and the types of its parameters.
    ///
    /// Parameter types come from DataFusion's inference (a parameter compared with or inserted
    /// into a column takes the column's type); where it cannot tell, a parameter is text.
    pub async fn prepare(&self, session: &Session, sql: &str) -> Result<Prepared, EngineError> {
        let (sql, count) = parameters::number_placeholders(sql)?;
        if count == 0 {
            let statement = sql::parse(&sql)?;
            let admitted_freely = statement.skips_admission();
            let (schema, plan) = match statement {
                Statement::Query(query) => {
                    let (plan, reads) = self.physical_plan(session, *query).await?;
                    let query = self.planned(session, &sql, (plan, reads), admitted_freely);
                    (Some(query.schema()), Some(query))
                }
                _ => (self.output_schema(session, &sql).await?, None),
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
        let statement = sql::parse(&sql)?;
        let rows = matches!(statement.answer(), Answer::Rows);
        if let Some(planned) = statement.for_planning() {
            match self.logical_plan(session, planned).await {
                Ok((plan, ..)) => {
                    if rows {
                        schema = Some(client_schema(plan.schema().inner()));
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
                // A statement DataFusion plans only in part (UPDATE, DELETE) keeps text
                // parameters where planning fails; its errors surface when it runs.
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
}
