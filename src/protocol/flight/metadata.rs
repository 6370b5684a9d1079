//! The Flight SQL catalog RPCs: GetCatalogs, GetDbSchemas, GetTables, GetTableTypes and
//! GetPrimaryKeys.
//!
//! MiniDB's names map onto Flight SQL's three levels as SQL spells them: one catalog, `minidb`;
//! each database is a schema (`db_schema_name`), with the reserved `sys` schema holding the
//! system tables; tables are tables (type `TABLE`, or `SYSTEM TABLE` in `sys`). So the name a
//! client builds from GetTables, `db.table`, is the one its SQL uses.

use std::sync::Arc;

use arrow::array::{Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::Ticket;
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTableTypes,
    CommandGetTables, ProstMessageExt,
};
use prost::Message;
use tonic::Status;

use super::status::to_status;
use crate::catalog::{CATALOG_NAME, DEFAULT_DATABASE, SYSTEM_DATABASE, system_tables};
use crate::engine::{Engine, EngineError};
use crate::table::PRIMARY_KEY_PROPERTY;

/// Type of the tables users create.
const TABLE: &str = "TABLE";
/// Type of the tables in `sys`.
const SYSTEM_TABLE: &str = "SYSTEM TABLE";

/// One catalog RPC, as its command arrived.
pub enum CatalogCommand {
    Catalogs(CommandGetCatalogs),
    Schemas(CommandGetDbSchemas),
    Tables(CommandGetTables),
    TableTypes(CommandGetTableTypes),
    PrimaryKeys(CommandGetPrimaryKeys),
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
                        for (table, schema) in system_tables() {
                            builder
                                .append(CATALOG_NAME, &database, table, SYSTEM_TABLE, &schema)
                                .map_err(failed)?;
                        }
                        continue;
                    }
                    let tables = engine
                        .catalog()
                        .tables(&database)
                        .await
                        .map_err(|e| to_status(EngineError::from(e)))?;
                    for table in tables {
                        let schema = if include_schema {
                            let handle = engine
                                .catalog()
                                .table(&database, &table)
                                .await
                                .map_err(|e| to_status(EngineError::from(e)))?;
                            handle.cached().schema().as_ref().clone()
                        } else {
                            Schema::empty()
                        };
                        builder
                            .append(CATALOG_NAME, &database, &table, TABLE, &schema)
                            .map_err(failed)?;
                    }
                }
                builder.build().map_err(failed)
            }
            CatalogCommand::TableTypes(command) => {
                let mut builder = command.into_builder();
                builder.append(TABLE);
                builder.append(SYSTEM_TABLE);
                builder.build().map_err(failed)
            }
            CatalogCommand::PrimaryKeys(command) => primary_keys(engine, command).await,
        }
    }
}

fn failed(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

/// Every database, plus the system one.
async fn databases(engine: &Engine) -> Result<Vec<String>, Status> {
    let mut databases = engine
        .catalog()
        .databases()
        .await
        .map_err(|e| to_status(EngineError::from(e)))?;
    databases.push(SYSTEM_DATABASE.to_string());
    Ok(databases)
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
        let handle = engine.catalog().table(&database, &command.table).await;
        if let Ok(handle) = handle {
            let snapshot = handle.cached();
            if let Some(Some(json)) = snapshot.metadata().configuration.get(PRIMARY_KEY_PROPERTY) {
                columns = serde_json::from_str(json)
                    .map_err(|e| Status::internal(format!("{PRIMARY_KEY_PROPERTY}: {e}")))?;
            }
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
