//! [`Catalog`]: databases and tables read from, and written to, the object store layout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, Schema};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde_json::json;

use super::{CatalogError, DEFAULT_DATABASE, MaintenanceLog, RunningStatements, validate_name};
use crate::storage::DataStore;
use crate::table::{Concurrency, TableCaches, TableHandle};
use crate::txlog::commit_point;
use crate::txlog::{
    Action, DeltaLog, ENABLE_DELETION_VECTORS, Format, LogRepair, Metadata, Operation, Protocol,
    Snapshot, TxLogError, delta_schema_string, unmapped,
};

/// Object marking a folder of the data root as a database.
const DATABASE_MARKER: &str = ".minidb_database";

/// Databases and tables of one data root, with a cache of open table logs.
#[derive(Debug)]
pub struct Catalog {
    pub(super) store: DataStore,
    concurrency: Concurrency,
    caches: TableCaches,
    tables: Mutex<HashMap<(String, String), Arc<TableHandle>>>,
    maintenance: MaintenanceLog,
    statements: Arc<RunningStatements>,
}

impl Catalog {
    /// Opens the catalog of `store`, creating the `default` database on first use; its tables'
    /// writers coordinate by `concurrency` and share `caches`.
    pub async fn open(
        store: DataStore,
        concurrency: Concurrency,
        caches: TableCaches,
    ) -> Result<Self, CatalogError> {
        let catalog = Self {
            store,
            concurrency,
            caches,
            tables: Mutex::new(HashMap::new()),
            maintenance: MaintenanceLog::default(),
            statements: Arc::default(),
        };
        match catalog.create_database(DEFAULT_DATABASE).await {
            Ok(()) | Err(CatalogError::DatabaseExists(_)) => Ok(catalog),
            Err(e) => Err(e),
        }
    }

    pub fn store(&self) -> &DataStore {
        &self.store
    }

    /// The caches every table of this catalog shares.
    pub fn caches(&self) -> &TableCaches {
        &self.caches
    }

    /// All databases, sorted by name.
    pub async fn databases(&self) -> Result<Vec<String>, CatalogError> {
        let listing = self.store.object_store().list_with_delimiter(None).await?;
        let mut names = Vec::new();
        for prefix in &listing.common_prefixes {
            let Some(name) = prefix.filename().filter(|n| validate_name(n).is_ok()) else {
                continue;
            };
            // A dropped database can leave empty folders behind on a local disk.
            let first = self.store.object_store().list(Some(prefix)).next().await;
            if first.transpose()?.is_some() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    pub async fn database_exists(&self, db: &str) -> Result<bool, CatalogError> {
        if validate_name(db).is_err() {
            return Ok(false);
        }
        // The marker answers in one request; only folders made by other tools need a listing.
        let marker = Path::from(db).join(DATABASE_MARKER);
        match self.store.object_store().head(&marker).await {
            Ok(_) => return Ok(true),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let first = self
            .store
            .object_store()
            .list(Some(&Path::from(db)))
            .next()
            .await;
        Ok(first.transpose()?.is_some())
    }

    pub(super) async fn require_database(&self, db: &str) -> Result<(), CatalogError> {
        if self.database_exists(db).await? {
            Ok(())
        } else {
            Err(CatalogError::DatabaseNotFound(db.to_string()))
        }
    }

    /// Creates a database; fails with [`CatalogError::DatabaseExists`] if it is there already.
    pub async fn create_database(&self, db: &str) -> Result<(), CatalogError> {
        validate_name(db)?;
        if self.database_exists(db).await? {
            return Err(CatalogError::DatabaseExists(db.to_string()));
        }
        let marker = Path::from(db).join(DATABASE_MARKER);
        let body = json!({"name": db, "createdTime": chrono::Utc::now().timestamp_millis()});
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        commit_point::reached();
        match self
            .store
            .object_store()
            .put_opts(&marker, PutPayload::from(body.to_string()), options)
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => {
                Err(CatalogError::DatabaseExists(db.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Drops a database with all its tables.
    pub async fn drop_database(&self, db: &str) -> Result<(), CatalogError> {
        validate_name(db)?;
        self.require_database(db).await?;
        for table in self.tables(db).await? {
            self.drop_table(db, &table).await?;
        }
        let store = self.store.object_store();
        let rest: Vec<Path> = store
            .list(Some(&Path::from(db)))
            .map_ok(|m| m.location)
            .try_collect()
            .await?;
        // The marker goes last, so an interrupted drop leaves a database that can be dropped again.
        let (markers, others): (Vec<_>, Vec<_>) = rest
            .into_iter()
            .partition(|p| p.filename() == Some(DATABASE_MARKER));
        for path in others.iter().chain(&markers) {
            match store.delete(path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Tables of a database, sorted by name.
    pub async fn tables(&self, db: &str) -> Result<Vec<String>, CatalogError> {
        validate_name(db)?;
        self.require_database(db).await?;
        let listing = self
            .store
            .object_store()
            .list_with_delimiter(Some(&Path::from(db)))
            .await?;
        let mut names = Vec::new();
        for prefix in &listing.common_prefixes {
            let Some(name) = prefix.filename() else {
                continue;
            };
            if validate_name(name).is_ok() && self.log(db, name).exists().await? {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    pub(super) fn log(&self, db: &str, table: &str) -> DeltaLog {
        DeltaLog::new(
            Arc::clone(self.store.object_store()),
            Path::from(db).join(table),
        )
        .with_base(self.store.root_url().clone())
    }

    /// Creates an empty table with extra table `properties`; exactly one of several concurrent
    /// creators succeeds.
    pub async fn create_table(
        &self,
        db: &str,
        table: &str,
        schema: &Schema,
        properties: Vec<(String, String)>,
    ) -> Result<Arc<TableHandle>, CatalogError> {
        let actions = new_table(table, schema, properties)?;
        let operation = Operation {
            name: "CREATE TABLE".into(),
            parameters: HashMap::from([("mode".into(), json!("ErrorIfExists"))]),
            ..Default::default()
        };
        self.create_table_with(db, table, operation, actions).await
    }

    /// A table `db.table` that does not exist yet, as it would be after a first commit of
    /// `actions` (from [`new_table`]): files can be written for it, to be added by the commit
    /// that creates it ([`Catalog::create_table_with`]).
    pub fn pending_table(
        &self,
        db: &str,
        table: &str,
        actions: Vec<Action>,
    ) -> Result<Arc<TableHandle>, CatalogError> {
        let log = self.log(db, table);
        let snapshot = Snapshot::replay(log.root().as_ref(), [(0, actions)])?;
        Ok(Arc::new(TableHandle::new(
            log,
            snapshot,
            self.concurrency,
            self.caches.clone(),
        )))
    }

    /// The log of table `db.table`, whether it exists or not (where its files go).
    pub fn table_log(&self, db: &str, table: &str) -> DeltaLog {
        self.log(db, table)
    }

    /// Creates `db.table` with a first commit of `actions` (protocol, metadata, and any files
    /// already written under [`Catalog::table_root`]); the table exists from that commit on.
    pub async fn create_table_with(
        &self,
        db: &str,
        table: &str,
        operation: Operation,
        actions: Vec<Action>,
    ) -> Result<Arc<TableHandle>, CatalogError> {
        validate_name(table)?;
        self.require_database(db).await?;
        let log = self.log(db, table);
        if log.exists().await? {
            return Err(CatalogError::TableExists(format!("{db}.{table}")));
        }
        if self.view(db, table).await?.is_some() {
            return Err(CatalogError::ViewExists(format!("{db}.{table}")));
        }
        let snapshot = match log.create(operation, actions).await {
            Ok(snapshot) => snapshot,
            Err(TxLogError::TableExists(_)) => {
                return Err(CatalogError::TableExists(format!("{db}.{table}")));
            }
            Err(e) => return Err(e.into()),
        };
        let handle = Arc::new(TableHandle::new(
            log,
            snapshot,
            self.concurrency,
            self.caches.clone(),
        ));
        self.cache()
            .insert((db.to_string(), table.to_string()), Arc::clone(&handle));
        Ok(handle)
    }

    /// Drops a table: its log disappears first, then its files.
    pub async fn drop_table(&self, db: &str, table: &str) -> Result<(), CatalogError> {
        validate_name(table)?;
        self.require_database(db).await?;
        let log = self.log(db, table);
        if !log.exists().await? {
            return Err(CatalogError::TableNotFound(format!("{db}.{table}")));
        }
        let key = (db.to_string(), table.to_string());
        self.cache().remove(&key);
        log.delete_table().await?;
        // A statement that looked the table up while its log was being deleted may have
        // cached it again; refreshing only probes the next version, so forget it once more.
        self.cache().remove(&key);
        Ok(())
    }

    /// Repairs the log of table `db.table` as [`DeltaLog::repair`] does (or, with `dry_run`,
    /// reports what it would do), before anything reads it: its handle is loaded afresh after.
    pub async fn repair_log(
        &self,
        db: &str,
        table: &str,
        dry_run: bool,
    ) -> Result<Vec<LogRepair>, CatalogError> {
        let missing = || CatalogError::TableNotFound(format!("{db}.{table}"));
        if validate_name(db).is_err() || validate_name(table).is_err() {
            return Err(missing());
        }
        let log = self.log(db, table);
        if !log.exists().await? {
            return Err(missing());
        }
        let repairs = log.repair(dry_run).await?;
        if !repairs.is_empty() && !dry_run {
            self.cache().remove(&(db.to_string(), table.to_string()));
        }
        Ok(repairs)
    }

    /// The table's handle, brought up to date with the log.
    pub async fn table(&self, db: &str, table: &str) -> Result<Arc<TableHandle>, CatalogError> {
        let key = (db.to_string(), table.to_string());
        let cached = self.cache().get(&key).cloned();
        let handle = match cached {
            Some(handle) => handle,
            None => {
                if validate_name(db).is_err() || validate_name(table).is_err() {
                    return Err(CatalogError::TableNotFound(format!("{db}.{table}")));
                }
                let log = self.log(db, table);
                let snapshot = match log.load().await {
                    Ok(snapshot) => snapshot,
                    Err(TxLogError::TableNotFound(_)) => {
                        return Err(CatalogError::TableNotFound(format!("{db}.{table}")));
                    }
                    Err(e) => return Err(e.into()),
                };
                let handle = Arc::new(TableHandle::new(
                    log,
                    snapshot,
                    self.concurrency,
                    self.caches.clone(),
                ));
                self.cache().entry(key.clone()).or_insert(handle).clone()
            }
        };
        match handle.refresh().await {
            Ok(_) => Ok(handle),
            Err(e) => {
                // A table dropped behind our back: forget it so a re-created one loads fresh.
                self.cache().remove(&key);
                if handle.log().exists().await? {
                    Err(e.into())
                } else {
                    Err(CatalogError::TableNotFound(format!("{db}.{table}")))
                }
            }
        }
    }

    /// The statements running on this server.
    pub fn statements(&self) -> &Arc<RunningStatements> {
        &self.statements
    }

    /// What background maintenance did recently.
    pub fn maintenance(&self) -> &MaintenanceLog {
        &self.maintenance
    }

    /// Number of tables in all databases.
    pub async fn table_count(&self) -> Result<usize, CatalogError> {
        let mut count = 0;
        for db in self.databases().await? {
            count += self.tables(&db).await?.len();
        }
        Ok(count)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<TableHandle>>> {
        // The map stays consistent even if a holder panicked: every update is a single insert/remove.
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The protocol MiniDB writes: reader 3 / writer 7 with deletion vectors, so UPDATE and DELETE
/// never need a protocol upgrade; plus `timestampNtz` when a column needs it.
/// The protocol and metadata of a new MiniDB table: `schema`, extra table `properties`, and
/// deletion vectors enabled.
pub fn new_table(
    table: &str,
    schema: &Schema,
    properties: Vec<(String, String)>,
) -> Result<Vec<Action>, CatalogError> {
    Ok(vec![
        Action::Protocol(protocol_for(schema)),
        Action::Metadata(Metadata {
            id: uuid::Uuid::new_v4().to_string(),
            name: Some(table.to_string()),
            description: None,
            format: Format::default(),
            schema_string: delta_schema_string(&Schema::new(
                schema
                    .fields()
                    .iter()
                    .map(|f| unmapped(f))
                    .collect::<Vec<_>>(),
            ))?,
            partition_columns: vec![],
            configuration: properties
                .into_iter()
                .chain([(ENABLE_DELETION_VECTORS.to_string(), "true".to_string())])
                .map(|(k, v)| (k, Some(v)))
                .collect(),
            created_time: Some(chrono::Utc::now().timestamp_millis()),
        }),
    ])
}

fn protocol_for(schema: &Schema) -> Protocol {
    let mut features = vec!["deletionVectors".to_string()];
    if schema
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Timestamp(_, None)))
    {
        features.push("timestampNtz".to_string());
    }
    Protocol {
        min_reader_version: 3,
        min_writer_version: 7,
        reader_features: Some(features.clone()),
        writer_features: Some(features),
    }
}
