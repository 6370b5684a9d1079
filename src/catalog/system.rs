//! The `sys` database: the catalog and the Delta logs as SQL tables.
//!
//! Each table is built when a statement resolves it, from the newest snapshot of every table
//! (and, for `sys.delta_log`, from every commit), so it always agrees with the catalog at query
//! time: there is no second copy to drift. Queries use them like any table (WHERE, JOIN,
//! GROUP BY…). `sys` is a reserved name; no user database can take it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt32Array, new_empty_array,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::MemTable;

use super::{Catalog, CatalogError, is_reserved};
use crate::table::foreign_keys::foreign_keys;
use crate::table::partitioning::{Partitioner, partition_of, tagged_partition};
use crate::table::properties::declared;
use crate::table::statistics::{ColumnStats, analyzed};
use crate::table::{
    DEFAULTS_PROPERTY, PRIMARY_KEY_PROPERTY, TableHandle, UNIQUE_PROPERTY, primary_key,
    table_indexes,
};
use crate::txlog::{Action, FileStats, Snapshot, declared_length};

/// The system database's name.
pub const SYSTEM_DATABASE: &str = "sys";

const TABLES: [&str; 10] = [
    "db_metadata",
    "table_metadata",
    "columns_metadata",
    "index_metadata",
    "constraints",
    "delta_log",
    "table_files",
    "compactions",
    "cache",
    "queries",
];

/// Refuses a statement that would write table `database.table` of `sys` or
/// `information_schema`, naming it (or, for a name `sys` lacks, saying it does not exist).
pub fn check_writable(database: &str, table: &str) -> Result<(), CatalogError> {
    if !is_reserved(database) {
        return Ok(());
    }
    let name = format!("{database}.{table}");
    if database.eq_ignore_ascii_case(SYSTEM_DATABASE) && !TABLES.contains(&table) {
        return Err(CatalogError::TableNotFound(name));
    }
    Err(CatalogError::SystemTable(name))
}

/// The system tables with their columns.
pub fn system_tables() -> impl Iterator<Item = (&'static str, Schema)> {
    TABLES.into_iter().map(|name| (name, table_schema(name)))
}

/// How a column's type is shown by DESCRIBE and `sys.columns_metadata`: its declared
/// `VARCHAR(n)` / `CHAR(n)`, else its stored type.
pub fn column_type_name(field: &Field) -> String {
    match declared_length(field) {
        Some(length) => length.sql_name(),
        None => sql_type_name(field.data_type()),
    }
}

/// How a stored type is shown.
pub fn sql_type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "UTINYINT".into(),
        DataType::UInt16 => "USMALLINT".into(),
        DataType::UInt32 => "UINTEGER".into(),
        DataType::UInt64 => "UBIGINT".into(),
        DataType::Float16 => "HALF".into(),
        DataType::Float32 => "REAL".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMP WITH TIME ZONE".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BINARY".into(),
        DataType::List(element) | DataType::LargeList(element) => {
            format!("{}[]", sql_type_name(element.data_type()))
        }
        DataType::Struct(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|f| format!("{} {}", f.name(), sql_type_name(f.data_type())))
                .collect();
            format!("STRUCT<{}>", fields.join(", "))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "MAP({}, {})",
                sql_type_name(kv[0].data_type()),
                sql_type_name(kv[1].data_type())
            ),
            other => other.to_string(),
        },
        other => other.to_string(),
    }
}

/// A table that reads: database, name, handle, newest snapshot.
type Readable = (String, String, Arc<TableHandle>, Arc<Snapshot>);
/// A table that does not: database, name, why.
type Unreadable = (String, String, String);

/// The `sys` schema of one statement.
#[derive(Debug)]
pub struct SystemTables {
    catalog: Arc<Catalog>,
}

impl SystemTables {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog }
    }

    /// Every readable table with its newest snapshot, by database.
    async fn tables(&self) -> Result<Vec<(String, String, Arc<TableHandle>, Arc<Snapshot>)>> {
        Ok(self.listed().await?.0)
    }

    /// Every table: those that read, with their newest snapshots, and those that do not (a
    /// corrupt or unreadable log), with why. One broken table must not take the system tables
    /// down with it: `sys.table_metadata` lists it with its error, the others leave it out.
    async fn listed(&self) -> Result<(Vec<Readable>, Vec<Unreadable>)> {
        let (mut readable, mut unreadable) = (Vec::new(), Vec::new());
        for db in self.catalog.databases().await.map_err(external)? {
            for table in self.catalog.tables(&db).await.map_err(external)? {
                let handle = match self.catalog.table(&db, &table).await {
                    Ok(handle) => handle,
                    // Dropped since it was listed.
                    Err(CatalogError::TableNotFound(_)) => continue,
                    Err(e) => {
                        unreadable.push((db.clone(), table, e.to_string()));
                        continue;
                    }
                };
                match handle.refresh().await {
                    Ok(snapshot) => readable.push((db.clone(), table, handle, snapshot)),
                    Err(e) => unreadable.push((db.clone(), table, e.to_string())),
                }
            }
        }
        Ok((readable, unreadable))
    }

    async fn build(&self, name: &str) -> Result<Option<Columns>> {
        let mut out = Columns::default();
        match name {
            "db_metadata" => {
                let (readable, unreadable) = self.listed().await?;
                for db in self.catalog.databases().await.map_err(external)? {
                    let count = readable.iter().filter(|(d, ..)| *d == db).count()
                        + unreadable.iter().filter(|(d, ..)| *d == db).count();
                    out.text("db_name", Some(db));
                    out.int("table_count", Some(count as i64));
                }
            }
            "table_metadata" => {
                let (readable, unreadable) = self.listed().await?;
                for (db, table, _, snapshot) in readable {
                    let metadata = snapshot.metadata();
                    let (mut rows, mut bytes) = (Some(0i64), 0i64);
                    for (add, stats) in snapshot.files_with_stats() {
                        bytes += add.size;
                        rows = rows.zip(live_rows(add, stats)).map(|(a, b)| a + b);
                    }
                    let configuration: BTreeMap<_, _> = metadata.configuration.iter().collect();
                    out.text("db_name", Some(db));
                    out.text("table_name", Some(table));
                    out.text("table_type", Some("TABLE".into()));
                    out.text("table_id", Some(metadata.id.clone()));
                    out.int("version", Some(snapshot.version()));
                    out.text("schema_json", Some(metadata.schema_string.clone()));
                    out.text("partition_columns", Some(json(&metadata.partition_columns)));
                    out.text(
                        "partitioning",
                        Partitioner::of(&snapshot)?.map(|p| p.describe()),
                    );
                    out.int("num_files", Some(snapshot.files().len() as i64));
                    out.int("num_rows", rows);
                    out.int("size_bytes", Some(bytes));
                    out.time("created_time", metadata.created_time);
                    out.text("properties", Some(json(&configuration)));
                    out.text("view_definition", None);
                    out.text("error", None);
                }
                for (db, table, error) in unreadable {
                    out.text("db_name", Some(db));
                    out.text("table_name", Some(table));
                    out.text("table_type", Some("TABLE".into()));
                    out.no_table_figures();
                    out.time("created_time", None);
                    out.text("properties", None);
                    out.text("view_definition", None);
                    out.text("error", Some(error));
                }
                for db in self.catalog.databases().await.map_err(external)? {
                    for name in self.catalog.views(&db).await.map_err(external)? {
                        let Some(view) = self.catalog.view(&db, &name).await.map_err(external)?
                        else {
                            continue;
                        };
                        out.text("db_name", Some(db.clone()));
                        out.text("table_name", Some(name));
                        out.text("table_type", Some("VIEW".into()));
                        out.no_table_figures();
                        out.time("created_time", Some(view.created_time));
                        out.text("properties", None);
                        out.text("view_definition", Some(view.query));
                        out.text("error", None);
                    }
                }
            }
            "columns_metadata" => {
                for (db, table, _, snapshot) in self.tables().await? {
                    let configuration = &snapshot.metadata().configuration;
                    let property = |key: &str| -> serde_json::Value {
                        configuration
                            .get(key)
                            .and_then(|v| v.as_deref())
                            .and_then(|v| serde_json::from_str(v).ok())
                            .unwrap_or_default()
                    };
                    let defaults = property(DEFAULTS_PROPERTY);
                    let key = property(PRIMARY_KEY_PROPERTY);
                    let analyzed = analyzed(&snapshot)?;
                    for (i, field) in snapshot.schema().fields().iter().enumerate() {
                        let name = field.name();
                        out.text("db_name", Some(db.clone()));
                        out.text("table_name", Some(table.clone()));
                        out.text("column_name", Some(name.clone()));
                        out.int32("ordinal_position", Some(i as i32 + 1));
                        out.text("data_type", Some(column_type_name(field)));
                        out.boolean("is_nullable", Some(field.is_nullable()));
                        out.text(
                            "column_default",
                            defaults
                                .get(name)
                                .and_then(|d| d.as_str())
                                .map(String::from),
                        );
                        out.boolean(
                            "is_primary_key",
                            Some(key.as_array().is_some_and(|k| {
                                k.iter().any(|c| c.as_str() == Some(name.as_str()))
                            })),
                        );
                        let stats = analyzed.get(name);
                        let figure = |f: fn(&ColumnStats) -> u64| {
                            stats.map(|s| i64::try_from(f(s)).unwrap_or(i64::MAX))
                        };
                        out.int("null_count", figure(|s| s.nulls));
                        out.int("distinct_count", figure(|s| s.distinct));
                        out.text("min_value", stats.and_then(|s| s.min.clone()));
                        out.text("max_value", stats.and_then(|s| s.max.clone()));
                        out.int("analyzed_version", stats.map(|s| s.version));
                        out.time("analyzed_time", stats.map(|s| s.analyzed_at));
                    }
                }
            }
            "constraints" => {
                for (db, table, _, snapshot) in self.tables().await? {
                    let mut keys: Vec<(String, &str, Vec<String>)> = Vec::new();
                    if let Some(columns) = primary_key(&snapshot)? {
                        keys.push((format!("{table}_pkey"), "PRIMARY KEY", columns));
                    }
                    let unique: Vec<Vec<String>> =
                        declared(&snapshot, UNIQUE_PROPERTY)?.unwrap_or_default();
                    for columns in unique {
                        let name = format!("{table}_{}_key", columns.join("_"));
                        keys.push((name, "UNIQUE", columns));
                    }
                    for (name, kind, columns) in keys {
                        for (i, column) in columns.into_iter().enumerate() {
                            out.text("db_name", Some(db.clone()));
                            out.text("table_name", Some(table.clone()));
                            out.text("constraint_name", Some(name.clone()));
                            out.text("constraint_type", Some(kind.into()));
                            out.text("column_name", Some(column));
                            out.int32("ordinal_position", Some(i as i32 + 1));
                            out.text("referenced_db_name", None);
                            out.text("referenced_table_name", None);
                            out.text("referenced_column_name", None);
                            out.text("on_delete", None);
                        }
                    }
                    for key in foreign_keys(&snapshot)? {
                        let (parent_db, parent_table) =
                            key.parent.split_once('.').unwrap_or(("", &key.parent));
                        for (i, (column, parent_column)) in
                            key.columns.iter().zip(&key.parent_columns).enumerate()
                        {
                            out.text("db_name", Some(db.clone()));
                            out.text("table_name", Some(table.clone()));
                            out.text("constraint_name", Some(key.name.clone()));
                            out.text("constraint_type", Some("FOREIGN KEY".into()));
                            out.text("column_name", Some(column.clone()));
                            out.int32("ordinal_position", Some(i as i32 + 1));
                            out.text("referenced_db_name", Some(parent_db.into()));
                            out.text("referenced_table_name", Some(parent_table.into()));
                            out.text("referenced_column_name", Some(parent_column.clone()));
                            out.text("on_delete", Some(key.on_delete.sql().into()));
                        }
                    }
                }
            }
            "index_metadata" => {
                for (db, table, _, snapshot) in self.tables().await? {
                    for index in table_indexes(&snapshot).map_err(external)? {
                        for (i, column) in index.columns.iter().enumerate() {
                            out.text("db_name", Some(db.clone()));
                            out.text("table_name", Some(table.clone()));
                            out.text("index_name", Some(index.name.clone()));
                            out.text("column_name", Some(column.clone()));
                            out.uint32("seq_in_index", i as u32 + 1);
                            out.boolean("is_unique", Some(index.unique));
                            out.text("index_type", Some("BTREE".into()));
                            out.text("constraint_type", index.constraint.clone());
                        }
                    }
                }
            }
            "delta_log" => {
                for (db, table, handle, _) in self.tables().await? {
                    for (commit, info) in handle.log().history().await.map_err(external)? {
                        let operation = info.and_then(|i| i.operation);
                        for action in handle
                            .log()
                            .commit_actions(commit.version)
                            .await
                            .map_err(external)?
                        {
                            let (kind, path, rows, size, change, dv) = match &action {
                                Action::Add(add) => {
                                    let stats = FileStats::of(add);
                                    let rows = stats.num_records.map(|r| r as i64);
                                    let dv = add.deletion_vector.is_some();
                                    (
                                        "add",
                                        Some(add.path.clone()),
                                        rows,
                                        Some(add.size),
                                        Some(add.data_change),
                                        Some(dv),
                                    )
                                }
                                Action::Remove(remove) => {
                                    let dv = remove.deletion_vector.is_some();
                                    (
                                        "remove",
                                        Some(remove.path.clone()),
                                        None,
                                        remove.size,
                                        Some(remove.data_change),
                                        Some(dv),
                                    )
                                }
                                Action::Metadata(_) => ("metaData", None, None, None, None, None),
                                Action::Protocol(_) => ("protocol", None, None, None, None, None),
                                _ => continue,
                            };
                            out.text("table_id", Some(format!("{db}.{table}")));
                            out.text("db_name", Some(db.clone()));
                            out.text("table_name", Some(table.clone()));
                            out.int("version", Some(commit.version));
                            out.time("timestamp", Some(commit.timestamp));
                            out.text("operation", operation.clone());
                            out.text("action", Some(kind.into()));
                            out.text("file_path", path);
                            out.int("row_count", rows);
                            out.int("size_bytes", size);
                            out.boolean("data_change", change);
                            out.boolean("has_deletion_vector", dv);
                        }
                    }
                }
            }
            "table_files" => {
                for (db, table, handle, snapshot) in self.tables().await? {
                    let partitioner = Partitioner::of(&snapshot)?;
                    for (add, stats) in snapshot.files_with_stats() {
                        let partition = partition_label(
                            partitioner.as_ref(),
                            partition_of(add),
                            add.partition_values.iter().collect(),
                        );
                        out.text("db_name", Some(db.clone()));
                        out.text("table_name", Some(table.clone()));
                        out.text("file_path", Some(add.path.clone()));
                        out.int("file_size", Some(add.size));
                        out.int("row_count", stats.num_records.map(|r| r as i64));
                        out.int("deleted_rows", Some(add.deleted_rows() as i64));
                        out.text("partition", partition);
                        out.text("status", Some("active".into()));
                        out.boolean("has_deletion_vector", Some(add.deletion_vector.is_some()));
                        out.time("modification_time", Some(add.modification_time));
                        out.time("deletion_time", None);
                    }
                    // Removed files VACUUM must keep (within file retention): what time travel
                    // still reads.
                    let retention = crate::table::file_retention(&snapshot);
                    let cutoff = chrono::Utc::now().timestamp_millis()
                        - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
                    let log = handle.log();
                    for remove in log.tombstones(&snapshot, cutoff).await.map_err(external)? {
                        let partition = partition_label(
                            partitioner.as_ref(),
                            tagged_partition(remove.tags.as_ref()),
                            remove.partition_values.iter().flatten().collect(),
                        );
                        out.text("db_name", Some(db.clone()));
                        out.text("table_name", Some(table.clone()));
                        out.text("file_path", Some(remove.path.clone()));
                        out.int("file_size", remove.size);
                        out.int("row_count", None);
                        out.int(
                            "deleted_rows",
                            remove.deletion_vector.as_ref().map(|d| d.cardinality),
                        );
                        out.text("partition", partition);
                        out.text("status", Some("removed".into()));
                        out.boolean(
                            "has_deletion_vector",
                            Some(remove.deletion_vector.is_some()),
                        );
                        out.time("modification_time", None);
                        out.time("deletion_time", remove.deletion_timestamp);
                    }
                }
            }
            "compactions" => {
                for run in self.catalog.maintenance().runs() {
                    let report = run.outcome.as_ref().ok();
                    let count = |f: fn(&crate::table::OptimizeReport) -> u64| {
                        report.map(|r| i64::try_from(f(r)).unwrap_or(i64::MAX))
                    };
                    out.text("db_name", Some(run.database.clone()));
                    out.text("table_name", Some(run.table.clone()));
                    out.text("trigger", Some(run.trigger.into()));
                    out.text("reason", Some(run.reason.clone()));
                    out.time("started_at", Some(run.started_at_ms));
                    out.time("finished_at", Some(run.finished_at_ms));
                    out.int("files_removed", count(|r| r.files_removed as u64));
                    out.int("files_added", count(|r| r.files_added as u64));
                    out.int("bytes_removed", count(|r| r.bytes_removed));
                    out.int("bytes_added", count(|r| r.bytes_added));
                    out.int("rows_purged", count(|r| r.rows_purged));
                    out.int("version", report.and_then(|r| r.version));
                    out.text("error", run.outcome.as_ref().err().cloned());
                }
            }
            "cache" => {
                let store = self.catalog.store();
                let mut tiers = store.read_cache().map(|c| c.report()).unwrap_or_default();
                tiers.extend(store.column_cache().map(|c| c.report()));
                let caches = self.catalog.caches();
                tiers.extend([
                    caches.indexes.report(),
                    caches.vectors.report(),
                    caches.footers.report(),
                ]);
                for tier in tiers {
                    let int = |n: u64| Some(i64::try_from(n).unwrap_or(i64::MAX));
                    out.text("tier", Some(tier.tier.to_string()));
                    out.text("directory", tier.directory);
                    out.int("capacity_bytes", int(tier.capacity_bytes));
                    out.int("used_bytes", int(tier.used_bytes));
                    out.int("blocks", int(tier.blocks));
                    out.int("hits", int(tier.hits));
                    out.int("misses", int(tier.misses));
                    out.int("hit_bytes", int(tier.hit_bytes));
                    out.int("evictions", int(tier.evictions));
                }
            }
            "queries" => {
                for statement in self.catalog.statements().list() {
                    let state = match (statement.is_committing(), statement.stop_reason()) {
                        (true, _) => "committing",
                        (false, Some(_)) => "stopping",
                        (false, None) if !statement.is_admitted() => "queued",
                        (false, None) => "running",
                    };
                    out.int("query_id", Some(statement.id as i64));
                    out.text("protocol", Some(statement.protocol.into()));
                    out.text("user_name", statement.user.clone());
                    out.text("db_name", Some(statement.database.clone()));
                    out.time("started_at", Some(statement.started_at_ms));
                    out.int("elapsed_ms", Some(statement.elapsed_ms()));
                    out.text("state", Some(state.into()));
                    out.int(
                        "reserved_bytes",
                        Some(i64::try_from(statement.reserved_bytes()).unwrap_or(i64::MAX)),
                    );
                    out.text("query_text", Some(statement.text.clone()));
                }
            }
            _ => return Ok(None),
        }
        Ok(Some(out))
    }
}

#[async_trait]
impl SchemaProvider for SystemTables {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(columns) = self.build(name).await? else {
            return Ok(None);
        };
        let batch = columns.finish(name)?;
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        Ok(Some(Arc::new(table)))
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.contains(&name)
    }
}

/// The live rows of a file: its records minus its deleted rows, when its records are known.
fn live_rows(add: &crate::txlog::Add, stats: &FileStats) -> Option<i64> {
    stats
        .num_records
        .map(|r| r.saturating_sub(add.deleted_rows()) as i64)
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Column values collected row by row, by column name.
#[derive(Default)]
struct Columns {
    values: HashMap<&'static str, Values>,
}

enum Values {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Int32(Vec<Option<i32>>),
    UInt32(Vec<u32>),
    Boolean(Vec<Option<bool>>),
    /// Milliseconds since the epoch.
    Time(Vec<Option<i64>>),
}

impl Values {
    fn into_array(self) -> ArrayRef {
        match self {
            Values::Text(v) => Arc::new(StringArray::from(v)),
            Values::Int(v) => Arc::new(Int64Array::from(v)),
            Values::Int32(v) => Arc::new(Int32Array::from(v)),
            Values::UInt32(v) => Arc::new(UInt32Array::from(v)),
            Values::Boolean(v) => Arc::new(BooleanArray::from(v)),
            Values::Time(v) => Arc::new(TimestampMillisecondArray::from(v)),
        }
    }
}

impl Columns {
    /// NULLs in the `sys.table_metadata` columns only a readable table has (a view, a
    /// corrupt table).
    fn no_table_figures(&mut self) {
        for column in [
            "table_id",
            "schema_json",
            "partition_columns",
            "partitioning",
        ] {
            self.text(column, None);
        }
        for column in ["version", "num_files", "num_rows", "size_bytes"] {
            self.int(column, None);
        }
    }

    fn text(&mut self, name: &'static str, value: Option<String>) {
        if let Values::Text(v) = self.values.entry(name).or_insert(Values::Text(Vec::new())) {
            v.push(value);
        }
    }

    fn int(&mut self, name: &'static str, value: Option<i64>) {
        if let Values::Int(v) = self.values.entry(name).or_insert(Values::Int(Vec::new())) {
            v.push(value);
        }
    }

    fn int32(&mut self, name: &'static str, value: Option<i32>) {
        if let Values::Int32(v) = self.values.entry(name).or_insert(Values::Int32(Vec::new())) {
            v.push(value);
        }
    }

    fn uint32(&mut self, name: &'static str, value: u32) {
        if let Values::UInt32(v) = self
            .values
            .entry(name)
            .or_insert(Values::UInt32(Vec::new()))
        {
            v.push(value);
        }
    }

    fn boolean(&mut self, name: &'static str, value: Option<bool>) {
        if let Values::Boolean(v) = self
            .values
            .entry(name)
            .or_insert(Values::Boolean(Vec::new()))
        {
            v.push(value);
        }
    }

    /// Milliseconds since the epoch, shown as a timestamp (UTC).
    fn time(&mut self, name: &'static str, value: Option<i64>) {
        if let Values::Time(v) = self.values.entry(name).or_insert(Values::Time(Vec::new())) {
            v.push(value);
        }
    }

    /// The rows as a batch of `table`'s declared schema.
    fn finish(mut self, table: &str) -> Result<RecordBatch> {
        let schema = Arc::new(table_schema(table));
        let arrays = schema
            .fields()
            .iter()
            .map(|field| match self.values.remove(field.name().as_str()) {
                Some(values) => values.into_array(),
                None => new_empty_array(field.data_type()),
            })
            .collect();
        Ok(RecordBatch::try_new(schema, arrays)?)
    }
}

/// A file's partition as MiniDB names it, or its Delta partition values as JSON.
fn partition_label(
    partitioner: Option<&Partitioner>,
    tagged: Option<u32>,
    values: BTreeMap<&String, &Option<String>>,
) -> Option<String> {
    match (partitioner, tagged) {
        (Some(p), Some(id)) => Some(p.name(id)),
        _ => (!values.is_empty()).then(|| json(&values)),
    }
}

/// The columns of each system table.
fn table_schema(table: &str) -> Schema {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let int = |n: &str| Field::new(n, DataType::Int64, true);
    let flag = |n: &str| Field::new(n, DataType::Boolean, true);
    let time = |n: &str| Field::new(n, DataType::Timestamp(TimeUnit::Millisecond, None), true);
    Schema::new(match table {
        "db_metadata" => vec![text("db_name"), int("table_count")],
        "table_metadata" => vec![
            text("db_name"),
            text("table_name"),
            text("table_type"),
            text("table_id"),
            int("version"),
            text("schema_json"),
            text("partition_columns"),
            text("partitioning"),
            int("num_files"),
            int("num_rows"),
            int("size_bytes"),
            time("created_time"),
            text("properties"),
            text("view_definition"),
            text("error"),
        ],
        "columns_metadata" => vec![
            text("db_name"),
            text("table_name"),
            text("column_name"),
            Field::new("ordinal_position", DataType::Int32, true),
            text("data_type"),
            flag("is_nullable"),
            text("column_default"),
            flag("is_primary_key"),
            int("null_count"),
            int("distinct_count"),
            text("min_value"),
            text("max_value"),
            int("analyzed_version"),
            time("analyzed_time"),
        ],
        "constraints" => vec![
            text("db_name"),
            text("table_name"),
            text("constraint_name"),
            text("constraint_type"),
            text("column_name"),
            Field::new("ordinal_position", DataType::Int32, true),
            text("referenced_db_name"),
            text("referenced_table_name"),
            text("referenced_column_name"),
            text("on_delete"),
        ],
        "index_metadata" => vec![
            text("db_name"),
            text("table_name"),
            text("index_name"),
            text("column_name"),
            Field::new("seq_in_index", DataType::UInt32, true),
            flag("is_unique"),
            text("index_type"),
            text("constraint_type"),
        ],
        "delta_log" => vec![
            text("table_id"),
            text("db_name"),
            text("table_name"),
            int("version"),
            time("timestamp"),
            text("operation"),
            text("action"),
            text("file_path"),
            int("row_count"),
            int("size_bytes"),
            flag("data_change"),
            flag("has_deletion_vector"),
        ],
        "cache" => vec![
            text("tier"),
            text("directory"),
            int("capacity_bytes"),
            int("used_bytes"),
            int("blocks"),
            int("hits"),
            int("misses"),
            int("hit_bytes"),
            int("evictions"),
        ],
        "queries" => vec![
            int("query_id"),
            text("protocol"),
            text("user_name"),
            text("db_name"),
            time("started_at"),
            int("elapsed_ms"),
            text("state"),
            int("reserved_bytes"),
            text("query_text"),
        ],
        "compactions" => vec![
            text("db_name"),
            text("table_name"),
            text("trigger"),
            text("reason"),
            time("started_at"),
            time("finished_at"),
            int("files_removed"),
            int("files_added"),
            int("bytes_removed"),
            int("bytes_added"),
            int("rows_purged"),
            int("version"),
            text("error"),
        ],
        _ => vec![
            text("db_name"),
            text("table_name"),
            text("file_path"),
            int("file_size"),
            int("row_count"),
            int("deleted_rows"),
            text("partition"),
            text("status"),
            flag("has_deletion_vector"),
            time("modification_time"),
            time("deletion_time"),
        ],
    })
}
