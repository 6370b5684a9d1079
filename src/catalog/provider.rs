//! The catalog as DataFusion sees it during one statement.
//!
//! DataFusion resolves names synchronously except for `SchemaProvider::table`, so the databases
//! a statement names (or, for statements that read `information_schema`, every database and
//! table) are checked before planning. Every table resolves once per statement to the snapshot current at that moment,
//! so a statement that names a table twice sees one version of it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result, plan_err};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};
use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::dialect::GenericDialect;

use super::{
    AsOf, Catalog, CatalogError, SYSTEM_DATABASE, StatementReferences, SystemTables, ViewDef,
    split_as_of,
};
use crate::table::{DeltaTableProvider, TableHandle, Transaction};

/// What a statement needs to see of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Only these databases (the ones its table names mention); tables resolve on demand.
    Databases(BTreeSet<String>),
    /// Every database and table, listed up front (for `information_schema`).
    Everything,
}

/// The single Flight SQL / DataFusion catalog name; MiniDB databases are its schemas.
pub const CATALOG_NAME: &str = "minidb";

type Resolved = Mutex<HashMap<(String, String), Arc<dyn TableProvider>>>;

/// What a statement read: each table at the newest version it resolved to, and whether it
/// read anything a table version does not describe (system tables, a transaction's view).
#[derive(Debug, Default)]
struct Reads {
    tables: Vec<(String, String, Arc<TableHandle>, i64)>,
    unversioned: bool,
}

/// The tables a planned statement read, to tell later whether its plan still reads what
/// planning it again would.
#[derive(Debug, Clone, Default)]
pub struct ReadSet(Arc<Mutex<Reads>>);

impl ReadSet {
    fn reads(&self) -> std::sync::MutexGuard<'_, Reads> {
        // Entries are pushed whole; a panic elsewhere cannot leave one half-written.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, database: &str, table: &str, handle: &Arc<TableHandle>, version: i64) {
        self.reads().tables.push((
            database.to_string(),
            table.to_string(),
            Arc::clone(handle),
            version,
        ));
    }

    /// Marks the statement as reading something no table version describes.
    pub fn unversioned(&self) {
        self.reads().unversioned = true;
    }

    /// Whether every table read is still at the version it was read at (each is brought up
    /// to date with its log, which may be another server's commit) and nothing unversioned was
    /// read.
    pub async fn is_current(&self, catalog: &Catalog) -> Result<bool, CatalogError> {
        let tables = {
            let reads = self.reads();
            if reads.unversioned {
                return Ok(false);
            }
            reads.tables.clone()
        };
        for (database, table, handle, version) in tables {
            let now = match catalog.table(&database, &table).await {
                Ok(now) => now,
                Err(CatalogError::TableNotFound(_)) => return Ok(false),
                Err(e) => return Err(e),
            };
            if !Arc::ptr_eq(&now, &handle) || now.cached().version() != version {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// How deep views may nest (a view reading a view …); deeper is taken for a view that reads
/// itself.
const MAX_VIEW_DEPTH: usize = 16;

/// Plans the views a statement reads: DataFusion's state without a catalog of its own, to plan
/// each view's query over the statement's tables.
#[derive(Debug, Clone)]
struct ViewPlanner {
    state: Arc<SessionState>,
    depth: usize,
}

/// One statement's view of the catalog.
#[derive(Debug)]
pub struct StatementCatalog {
    catalog: Arc<Catalog>,
    store_url: ObjectStoreUrl,
    /// Databases, each with its tables when they were listed up front.
    databases: BTreeMap<String, Option<Vec<String>>>,
    resolved: Arc<Resolved>,
    transaction: Option<Arc<Transaction>>,
    reads: ReadSet,
    views: Option<ViewPlanner>,
}

impl StatementCatalog {
    /// Reads the part of the catalog `scope` names, for one statement.
    pub async fn load(
        catalog: Arc<Catalog>,
        scope: Scope,
        transaction: Option<Arc<Transaction>>,
    ) -> Result<Self, CatalogError> {
        let mut databases = BTreeMap::new();
        match scope {
            Scope::Databases(names) => {
                for db in names {
                    if catalog.database_exists(&db).await? {
                        databases.insert(db, None);
                    }
                }
            }
            Scope::Everything => {
                for db in catalog.databases().await? {
                    let mut tables = catalog.tables(&db).await?;
                    tables.extend(catalog.views(&db).await?);
                    databases.insert(db, Some(tables));
                }
            }
        }
        let store_url = ObjectStoreUrl::parse(catalog.store().engine_url())
            .expect("the engine store URL is a constant scheme://authority/");
        Ok(Self {
            catalog,
            store_url,
            databases,
            resolved: Arc::default(),
            transaction,
            reads: ReadSet::default(),
            views: None,
        })
    }

    /// Makes the statement's views resolve, each planned with `state` (the engine's, which
    /// knows the functions and settings) over the statement's tables.
    pub fn with_views(mut self, state: Arc<SessionState>) -> Self {
        self.views = Some(ViewPlanner { state, depth: 0 });
        self
    }

    /// What the statement has read so far (filled in as planning resolves its tables).
    pub fn reads(&self) -> ReadSet {
        self.reads.clone()
    }
}

impl StatementCatalog {
    /// Makes `database.table` resolve to `provider` for this statement (e.g. the target of an
    /// UPDATE, read at the snapshot its writer lock protects).
    pub fn pin(&self, database: &str, table: &str, provider: Arc<dyn TableProvider>) {
        self.reads.unversioned();
        self.resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((database.to_string(), table.to_string()), provider);
    }

    /// The URL under which the statement's tables are registered with DataFusion.
    pub fn store_url(&self) -> &ObjectStoreUrl {
        &self.store_url
    }
}

impl CatalogProviderList for StatementCatalog {
    fn register_catalog(
        &self,
        _name: String,
        _catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        vec![CATALOG_NAME.to_string()]
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        (name == CATALOG_NAME).then(|| {
            Arc::new(DatabaseList {
                catalog: Arc::clone(&self.catalog),
                store_url: self.store_url.clone(),
                databases: self.databases.clone(),
                resolved: Arc::clone(&self.resolved),
                transaction: self.transaction.clone(),
                reads: self.reads.clone(),
                views: self.views.clone(),
            }) as Arc<dyn CatalogProvider>
        })
    }
}

#[derive(Debug)]
struct DatabaseList {
    catalog: Arc<Catalog>,
    store_url: ObjectStoreUrl,
    databases: BTreeMap<String, Option<Vec<String>>>,
    resolved: Arc<Resolved>,
    transaction: Option<Arc<Transaction>>,
    reads: ReadSet,
    views: Option<ViewPlanner>,
}

impl CatalogProvider for DatabaseList {
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.databases.keys().cloned().collect();
        names.push(SYSTEM_DATABASE.to_string());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == SYSTEM_DATABASE {
            self.reads.unversioned();
            return Some(Arc::new(SystemTables::new(Arc::clone(&self.catalog))));
        }
        let tables = self.databases.get(name)?;
        Some(Arc::new(Database {
            catalog: Arc::clone(&self.catalog),
            store_url: self.store_url.clone(),
            name: name.to_string(),
            tables: tables.clone().unwrap_or_default(),
            resolved: Arc::clone(&self.resolved),
            transaction: self.transaction.clone(),
            reads: self.reads.clone(),
            views: self.views.clone(),
        }))
    }
}

#[derive(Debug)]
struct Database {
    catalog: Arc<Catalog>,
    store_url: ObjectStoreUrl,
    name: String,
    tables: Vec<String>,
    resolved: Arc<Resolved>,
    transaction: Option<Arc<Transaction>>,
    reads: ReadSet,
    views: Option<ViewPlanner>,
}

impl Database {
    fn resolved(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<dyn TableProvider>>> {
        // Entries are inserted whole; a panic elsewhere cannot leave one half-written.
        self.resolved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The view `name` of this database, planned now over the statement's tables; `None` when
    /// there is no such view (or views are not planned in this statement).
    async fn view(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(planner) = &self.views else {
            return Ok(None);
        };
        let external = |e| DataFusionError::External(Box::new(e));
        let Some(view) = self
            .catalog
            .view(&self.name, name)
            .await
            .map_err(external)?
        else {
            return Ok(None);
        };
        let qualified = format!("{}.{name}", self.name);
        if planner.depth >= MAX_VIEW_DEPTH {
            return plan_err!(
                "views nest more than {MAX_VIEW_DEPTH} deep at {qualified}; does a view read itself?"
            );
        }
        // A view's definition is not a table version: a plan that reads one is not kept.
        self.reads.unversioned();
        let plan = self.plan_view(planner, &view).await.map_err(|e| {
            DataFusionError::Plan(format!("view {qualified}: {}", e.strip_backtrace()))
        })?;
        Ok(Some(Arc::new(ViewTable::new(plan, Some(view.query)))))
    }

    /// The logical plan of `view`'s query: names in it resolve from this database, its tables
    /// to the snapshots this statement reads.
    async fn plan_view(
        &self,
        planner: &ViewPlanner,
        view: &ViewDef,
    ) -> Result<datafusion::logical_expr::LogicalPlan> {
        let mut statements = DFParser::parse_sql_with_dialect(&view.query, &GenericDialect {})?;
        let Some(statement) = statements.pop_front() else {
            return plan_err!("the stored query is empty");
        };
        let mut state = planner.state.as_ref().clone();
        state.config_mut().options_mut().catalog.default_schema = self.name.clone();
        let mut databases = BTreeSet::new();
        for reference in state.resolve_table_references(&statement)? {
            databases.insert(reference.schema().unwrap_or(&self.name).to_string());
        }
        let scope = if databases.contains("information_schema") {
            Scope::Everything
        } else {
            Scope::Databases(databases)
        };
        let mut catalog =
            StatementCatalog::load(Arc::clone(&self.catalog), scope, self.transaction.clone())
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
        catalog.resolved = Arc::clone(&self.resolved);
        catalog.reads = self.reads.clone();
        catalog.views = Some(ViewPlanner {
            state: Arc::clone(&planner.state),
            depth: planner.depth + 1,
        });
        state.register_catalog_list(Arc::new(catalog));
        let plan = state.statement_to_plan(statement).await?;
        if view.columns.is_empty() {
            return Ok(plan);
        }
        if view.columns.len() != plan.schema().fields().len() {
            return plan_err!(
                "the view names {} columns but its query returns {}",
                view.columns.len(),
                plan.schema().fields().len()
            );
        }
        let renamed: Vec<Expr> = plan
            .schema()
            .columns()
            .into_iter()
            .zip(&view.columns)
            .map(|(column, name)| Expr::Column(column).alias(name))
            .collect();
        LogicalPlanBuilder::from(plan).project(renamed)?.build()
    }
}

#[async_trait]
impl SchemaProvider for Database {
    fn table_names(&self) -> Vec<String> {
        self.tables.clone()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let key = (self.name.clone(), name.to_string());
        if let Some(found) = self.resolved().get(&key) {
            return Ok(Some(Arc::clone(found)));
        }
        let as_of = split_as_of(name);
        let table = as_of.map_or(name, |(table, _)| table);
        let handle = match self.catalog.table(&self.name, table).await {
            Ok(handle) => handle,
            Err(CatalogError::TableNotFound(_)) if as_of.is_none() => {
                let view = self.view(name).await?;
                if let Some(view) = &view {
                    self.resolved().insert(key, Arc::clone(view));
                }
                return Ok(view);
            }
            Err(CatalogError::TableNotFound(_)) => {
                if self.view(table).await?.is_none() {
                    return Ok(None);
                }
                return Err(DataFusionError::External(Box::new(
                    CatalogError::NotSupported(format!(
                        "time travel of a view ('{}.{table}' is a view and keeps no history: \
                         time travel the tables it reads)",
                        self.name
                    )),
                )));
            }
            Err(e) => return Err(DataFusionError::External(Box::new(e))),
        };
        let qualified = format!("{}.{table}", self.name);
        let provider = match (as_of, &self.transaction) {
            // Time travel reads the past, inside a transaction too.
            (Some((_, as_of)), _) => {
                let external = |e| DataFusionError::External(Box::new(e));
                let version = match as_of {
                    AsOf::Version(version) => version,
                    AsOf::Timestamp(millis) => {
                        handle.log().version_at(millis).await.map_err(external)?
                    }
                };
                let snapshot = handle.log().load_version(version).await.map_err(external)?;
                DeltaTableProvider::new(
                    qualified,
                    handle,
                    Arc::new(snapshot),
                    self.store_url.clone(),
                )
            }
            // Inside a transaction: the table as pinned at its first use, plus its own writes.
            (None, Some(transaction)) => {
                self.reads.unversioned();
                let table = transaction
                    .table(&qualified, &handle)
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                DeltaTableProvider::in_transaction(table, qualified, self.store_url.clone())
            }
            (None, None) => {
                let snapshot = handle.cached();
                self.reads
                    .record(&self.name, table, &handle, snapshot.version());
                DeltaTableProvider::new(qualified, handle, snapshot, self.store_url.clone())
            }
        };
        let references =
            StatementReferences::new(Arc::clone(&self.catalog), self.transaction.clone());
        let provider: Arc<dyn TableProvider> = Arc::new(
            provider
                .with_column_defaults()?
                .with_references(Arc::new(references)),
        );
        Ok(Some(Arc::clone(
            self.resolved().entry(key).or_insert(provider),
        )))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.iter().any(|t| t == name)
    }
}
