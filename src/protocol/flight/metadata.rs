//! The Flight SQL catalog RPCs: GetCatalogs, GetDbSchemas, GetTables, GetTableTypes,
//! GetPrimaryKeys, GetExportedKeys, GetImportedKeys, GetCrossReference and GetXdbcTypeInfo.
//!
//! MiniDB's names map onto Flight SQL's three levels as SQL spells them: one catalog, `minidb`;
//! each database is a schema (`db_schema_name`), with the reserved `sys` schema holding the
//! system tables; tables are tables (type `TABLE`, or `SYSTEM TABLE` in `sys`) and views views
//! (type `VIEW`). So the name a
//! client builds from GetTables, `db.table`, is the one its SQL uses.
//!
//! GetImportedKeys lists a table's foreign keys, GetExportedKeys the foreign keys of other
//! tables that reference it, and GetCrossReference those of one table that reference another:
//! one row per column of a key.

use std::sync::Arc;

use arrow::array::{Int32Array, RecordBatch, StringArray, UInt8Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_flight::Ticket;
use arrow_flight::sql::metadata::{XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys,
    CommandGetImportedKeys, CommandGetPrimaryKeys, CommandGetTableTypes, CommandGetTables,
    CommandGetXdbcTypeInfo, Nullable, ProstMessageExt, Searchable, XdbcDataType,
    XdbcDatetimeSubcode,
};
use prost::Message;
use tonic::Status;

use super::status::to_status;
use crate::engine::{
    CATALOG_NAME, DEFAULT_DATABASE, Engine, EngineError, ErrorKind, ForeignKeyInfo, SYSTEM_DATABASE,
};

/// Type of the tables users create.
const TABLE: &str = "TABLE";
const VIEW: &str = "VIEW";
/// Type of the tables in `sys`.
const SYSTEM_TABLE: &str = "SYSTEM TABLE";

/// One catalog RPC, as its command arrived.
pub enum CatalogCommand {
    Catalogs(CommandGetCatalogs),
    Schemas(CommandGetDbSchemas),
    Tables(CommandGetTables),
    TableTypes(CommandGetTableTypes),
    PrimaryKeys(CommandGetPrimaryKeys),
    ExportedKeys(CommandGetExportedKeys),
    ImportedKeys(CommandGetImportedKeys),
    CrossReference(CommandGetCrossReference),
    TypeInfo(CommandGetXdbcTypeInfo),
}

impl CatalogCommand {
    /// The ticket whose DoGet answers this command: the command itself.
    pub fn ticket(&self) -> Ticket {
        let any = match self {
            CatalogCommand::Catalogs(c) => c.as_any(),
            CatalogCommand::Schemas(c) => c.as_any(),
            CatalogCommand::Tables(c) => c.as_any(),
            CatalogCommand::TableTypes(c) => c.as_any(),
            CatalogCommand::PrimaryKeys(c) => c.as_any(),
            CatalogCommand::ExportedKeys(c) => c.as_any(),
            CatalogCommand::ImportedKeys(c) => c.as_any(),
            CatalogCommand::CrossReference(c) => c.as_any(),
            CatalogCommand::TypeInfo(c) => c.as_any(),
        };
        Ticket::new(any.encode_to_vec())
    }

    /// The answer, in the schema the Flight SQL specification gives for the command.
    pub async fn answer(self, engine: &Engine) -> Result<RecordBatch, Status> {
        match self {
            CatalogCommand::Catalogs(command) => {
                let mut builder = command.into_builder();
                builder.append(CATALOG_NAME);
                builder.build().map_err(failed)
            }
            CatalogCommand::Schemas(command) => {
                let mut builder = command.into_builder();
                for database in databases(engine).await? {
                    builder.append(CATALOG_NAME, database);
                }
                builder.build().map_err(failed)
            }
            CatalogCommand::Tables(command) => {
                let include_schema = command.include_schema;
                let mut builder = command.into_builder();
                for database in databases(engine).await? {
                    if database == SYSTEM_DATABASE {
                        for (table, schema) in engine.system_tables() {
                            builder
                                .append(CATALOG_NAME, &database, table, SYSTEM_TABLE, &schema)
                                .map_err(failed)?;
                        }
                        continue;
                    }
                    let tables = engine.tables(&database).await.map_err(to_status)?;
                    for table in tables {
                        // A table whose log does not read (corrupt) is still listed, with no
                        // columns; reading it says why it fails.
                        let schema = if include_schema {
                            match engine.table_schema(&database, &table).await {
                                Ok(schema) => schema,
                                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                                Err(_) => Schema::empty(),
                            }
                        } else {
                            Schema::empty()
                        };
                        builder
                            .append(CATALOG_NAME, &database, &table, TABLE, &schema)
                            .map_err(failed)?;
                    }
                    for view in engine.views(&database).await.map_err(to_status)? {
                        // A view that no longer plans (its table was dropped) is still listed;
                        // reading it says why it fails.
                        let schema = match include_schema {
                            true => engine
                                .view_schema(&database, &view)
                                .await
                                .unwrap_or_else(|_| Schema::empty()),
                            false => Schema::empty(),
                        };
                        builder
                            .append(CATALOG_NAME, &database, &view, VIEW, &schema)
                            .map_err(failed)?;
                    }
                }
                builder.build().map_err(failed)
            }
            CatalogCommand::TableTypes(command) => {
                let mut builder = command.into_builder();
                builder.append(TABLE);
                builder.append(VIEW);
                builder.append(SYSTEM_TABLE);
                builder.build().map_err(failed)
            }
            CatalogCommand::PrimaryKeys(command) => primary_keys(engine, command).await,
            CatalogCommand::ImportedKeys(command) => {
                let keys = match table_in(command.catalog.as_deref(), command.db_schema.as_deref())
                {
                    Some(database) => {
                        keys_of(engine.foreign_keys(&database, &command.table).await)?
                    }
                    None => Vec::new(),
                };
                foreign_key_rows(keys)
            }
            CatalogCommand::ExportedKeys(command) => {
                let keys = match table_in(command.catalog.as_deref(), command.db_schema.as_deref())
                {
                    Some(database) => keys_of(
                        engine
                            .referencing_foreign_keys(&database, &command.table)
                            .await,
                    )?,
                    None => Vec::new(),
                };
                foreign_key_rows(keys)
            }
            CatalogCommand::CrossReference(command) => {
                let parent = table_in(
                    command.pk_catalog.as_deref(),
                    command.pk_db_schema.as_deref(),
                );
                let child = table_in(
                    command.fk_catalog.as_deref(),
                    command.fk_db_schema.as_deref(),
                );
                let keys = match (parent, child) {
                    (Some(parent), Some(child)) => {
                        keys_of(engine.foreign_keys(&child, &command.fk_table).await)?
                            .into_iter()
                            .filter(|k| {
                                k.parent_database == parent && k.parent_table == command.pk_table
                            })
                            .collect()
                    }
                    _ => Vec::new(),
                };
                foreign_key_rows(keys)
            }
            CatalogCommand::TypeInfo(command) => {
                command.into_builder(&type_info()).build().map_err(failed)
            }
        }
    }
}

fn failed(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

/// Every database, plus the system one.
async fn databases(engine: &Engine) -> Result<Vec<String>, Status> {
    let mut databases = engine.databases().await.map_err(to_status)?;
    databases.push(SYSTEM_DATABASE.to_string());
    Ok(databases)
}

/// The database a key RPC's table is in (the default one when the command names none); `None`
/// for another catalog or the system database, which hold no keys.
fn table_in(catalog: Option<&str>, db_schema: Option<&str>) -> Option<String> {
    let database = db_schema.unwrap_or(DEFAULT_DATABASE);
    let other_catalog = catalog.is_some_and(|c| c != CATALOG_NAME);
    (!other_catalog && database != SYSTEM_DATABASE).then(|| database.to_string())
}

/// The keys found, or none for a table that does not exist.
fn keys_of(found: Result<Vec<ForeignKeyInfo>, EngineError>) -> Result<Vec<ForeignKeyInfo>, Status> {
    match found {
        Ok(keys) => Ok(keys),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(to_status(e)),
    }
}

/// The Flight SQL code of a referential action.
fn rule(action: &str) -> u8 {
    match action {
        "CASCADE" => 0,
        "RESTRICT" => 1,
        "SET NULL" => 2,
        "SET DEFAULT" => 4,
        _ => 3,
    }
}

/// `keys` as rows of a key RPC's answer, one per key column, ordered by the parent table, the
/// child table, the key and the column's place in it.
fn foreign_key_rows(mut keys: Vec<ForeignKeyInfo>) -> Result<RecordBatch, Status> {
    keys.sort_by(|a, b| {
        (
            &a.parent_database,
            &a.parent_table,
            &a.database,
            &a.table,
            &a.name,
        )
            .cmp(&(
                &b.parent_database,
                &b.parent_table,
                &b.database,
                &b.table,
                &b.name,
            ))
    });
    let rows: Vec<(&ForeignKeyInfo, usize)> = keys
        .iter()
        .flat_map(|key| (0..key.columns.len()).map(move |i| (key, i)))
        .collect();
    let text = |f: &dyn Fn(&ForeignKeyInfo, usize) -> String| -> arrow::array::ArrayRef {
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(k, i)| f(k, *i)),
        ))
    };
    let code = |f: &dyn Fn(&ForeignKeyInfo) -> u8| -> arrow::array::ArrayRef {
        Arc::new(UInt8Array::from_iter_values(rows.iter().map(|(k, _)| f(k))))
    };
    RecordBatch::try_new(
        foreign_keys_schema(),
        vec![
            text(&|_, _| CATALOG_NAME.to_string()),
            text(&|k, _| k.parent_database.clone()),
            text(&|k, _| k.parent_table.clone()),
            text(&|k, i| k.parent_columns[i].clone()),
            text(&|_, _| CATALOG_NAME.to_string()),
            text(&|k, _| k.database.clone()),
            text(&|k, _| k.table.clone()),
            text(&|k, i| k.columns[i].clone()),
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|(_, i)| *i as i32 + 1),
            )),
            text(&|k, _| k.name.clone()),
            text(&|k, _| k.parent_key.clone()),
            code(&|_| rule("NO ACTION")),
            code(&|k| rule(k.on_delete)),
        ],
    )
    .map_err(failed)
}

/// The schema of GetExportedKeys, GetImportedKeys and GetCrossReference answers.
fn foreign_keys_schema() -> SchemaRef {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        text("pk_catalog_name", true),
        text("pk_db_schema_name", true),
        text("pk_table_name", false),
        text("pk_column_name", false),
        text("fk_catalog_name", true),
        text("fk_db_schema_name", true),
        text("fk_table_name", false),
        text("fk_column_name", false),
        Field::new("key_sequence", DataType::Int32, false),
        text("fk_key_name", true),
        text("pk_key_name", true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
}

/// The column types `CREATE TABLE` accepts, described for GetXdbcTypeInfo.
fn type_info() -> XdbcTypeInfoData {
    struct Type {
        name: &'static str,
        xdbc: XdbcDataType,
        size: Option<i32>,
        quote: Option<(&'static str, &'static str)>,
        radix: Option<i32>,
        datetime: Option<XdbcDatetimeSubcode>,
    }
    let number = |name, xdbc, size, radix| Type {
        name,
        xdbc,
        size: Some(size),
        quote: None,
        radix: Some(radix),
        datetime: None,
    };
    let quoted = |name, xdbc, size, quote, datetime| Type {
        name,
        xdbc,
        size,
        quote: Some(quote),
        radix: None,
        datetime,
    };
    let types = [
        Type {
            name: "BOOLEAN",
            xdbc: XdbcDataType::XdbcBit,
            size: Some(1),
            quote: None,
            radix: None,
            datetime: None,
        },
        number("TINYINT", XdbcDataType::XdbcTinyint, 3, 10),
        number("SMALLINT", XdbcDataType::XdbcSmallint, 5, 10),
        number("INTEGER", XdbcDataType::XdbcInteger, 10, 10),
        number("BIGINT", XdbcDataType::XdbcBigint, 19, 10),
        number("REAL", XdbcDataType::XdbcReal, 24, 2),
        number("DOUBLE", XdbcDataType::XdbcDouble, 53, 2),
        number("DECIMAL", XdbcDataType::XdbcDecimal, 38, 10),
        quoted("VARCHAR", XdbcDataType::XdbcVarchar, None, ("'", "'"), None),
        quoted(
            "VARBINARY",
            XdbcDataType::XdbcVarbinary,
            None,
            ("X'", "'"),
            None,
        ),
        quoted(
            "DATE",
            XdbcDataType::XdbcDate,
            Some(10),
            ("DATE '", "'"),
            // SQL_CODE_DATE.
            Some(XdbcDatetimeSubcode::XdbcSubcodeYear),
        ),
        quoted(
            "DATETIME",
            XdbcDataType::XdbcTimestamp,
            Some(26),
            ("TIMESTAMP '", "'"),
            Some(XdbcDatetimeSubcode::XdbcSubcodeTimestamp),
        ),
        quoted(
            "TIMESTAMP",
            XdbcDataType::XdbcTimestamp,
            Some(32),
            ("TIMESTAMP '", "'"),
            Some(XdbcDatetimeSubcode::XdbcSubcodeTimestampWithTimezone),
        ),
    ];
    let mut builder = XdbcTypeInfoDataBuilder::new();
    for t in types {
        let decimal = t.xdbc == XdbcDataType::XdbcDecimal;
        let is_text = t.xdbc == XdbcDataType::XdbcVarchar;
        builder.append(XdbcTypeInfo {
            type_name: t.name.to_string(),
            data_type: t.xdbc,
            column_size: t.size,
            literal_prefix: t.quote.map(|(prefix, _)| prefix.to_string()),
            literal_suffix: t.quote.map(|(_, suffix)| suffix.to_string()),
            create_params: decimal.then(|| vec!["precision".to_string(), "scale".to_string()]),
            nullable: Nullable::NullabilityNullable,
            case_sensitive: is_text,
            searchable: Searchable::Full,
            unsigned_attribute: t.radix.map(|_| false),
            fixed_prec_scale: decimal,
            auto_increment: t.radix.map(|_| false),
            local_type_name: Some(t.name.to_string()),
            minimum_scale: decimal.then_some(0),
            maximum_scale: decimal.then_some(38),
            // ODBC's SQL_DATA_TYPE: SQL_DATETIME for dates and times, else the type itself.
            sql_data_type: if t.datetime.is_some() {
                XdbcDataType::XdbcDatetime
            } else {
                t.xdbc
            },
            datetime_subcode: t.datetime,
            num_prec_radix: t.radix,
            interval_precision: None,
        });
    }
    builder
        .build()
        .expect("a fixed list of well-formed type descriptions always builds")
}

/// The columns of a table's PRIMARY KEY, in key order (none without one).
async fn primary_keys(
    engine: &Engine,
    command: CommandGetPrimaryKeys,
) -> Result<RecordBatch, Status> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]));
    let database = command
        .db_schema
        .clone()
        .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
    let other_catalog = command
        .catalog
        .as_deref()
        .is_some_and(|c| c != CATALOG_NAME);
    let mut columns: Vec<String> = Vec::new();
    if !other_catalog && database != SYSTEM_DATABASE {
        match engine.primary_key(&database, &command.table).await {
            Ok(key) => columns = key,
            // A table that does not exist has no key columns to list.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(to_status(e)),
        }
    }
    let n = columns.len();
    let repeat = |value: &str| StringArray::from_iter_values(std::iter::repeat_n(value, n));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(repeat(CATALOG_NAME)),
            Arc::new(repeat(&database)),
            Arc::new(repeat(&command.table)),
            Arc::new(StringArray::from_iter_values(&columns)),
            Arc::new(repeat(&format!("{}_pkey", command.table))),
            Arc::new(Int32Array::from_iter_values(1..=n as i32)),
        ],
    )
    .map_err(|e| Status::internal(e.to_string()))
}
