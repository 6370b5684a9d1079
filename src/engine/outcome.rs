//! What a statement produced, before a protocol encodes it.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::execution::SendableRecordBatchStream;

/// The result of one statement.
pub enum Outcome {
    /// A result set, streamed batch by batch.
    Rows(SendableRecordBatchStream),
    /// A catalog listing (SHOW …, DESCRIBE), small enough to hold in one batch.
    Listing(Listing, RecordBatch),
    DatabaseCreated(String),
    DatabaseDropped(String),
    UsingDatabase(String),
    TableCreated(String),
    /// `CREATE TABLE … AS SELECT` created a table holding `rows` rows.
    TableCreatedAs {
        table: String,
        rows: u64,
    },
    /// `CREATE TABLE … CLONE` created `table` from `source` as of `version`.
    TableCloned {
        table: String,
        source: String,
        version: i64,
    },
    TableDropped(String),
    ViewCreated(String),
    ViewDropped(String),
    IndexCreated(String),
    IndexDropped(String),
    /// ALTER TABLE made `change` ("2 properties", "1 column added").
    TableAltered {
        table: String,
        change: String,
    },
    /// An INSERT committed `rows` rows.
    Inserted {
        table: String,
        rows: u64,
    },
    /// A DELETE removed `rows` rows.
    Deleted {
        table: String,
        rows: u64,
    },
    /// An UPDATE changed `rows` rows.
    Updated {
        table: String,
        rows: u64,
    },
    /// A MERGE inserted, updated and deleted these many rows.
    Merged {
        table: String,
        inserted: u64,
        updated: u64,
        deleted: u64,
    },
    TransactionStarted,
    TransactionCommitted,
    TransactionRolledBack,
    /// An `IF [NOT] EXISTS` statement that had nothing to do.
    NothingToDo(String),
    /// `CANCEL QUERY id` asked statement `id` to stop.
    QueryCancelled(u64),
    /// A session setting changed, shown as `name = value`.
    SettingChanged(String),
}

/// Which catalog listing a [`Outcome::Listing`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    Databases,
    Tables {
        database: String,
    },
    Columns {
        table: String,
    },
    Indexes {
        table: String,
    },
    /// A table MiniDB computes itself: OPTIMIZE's figures, DESCRIBE HISTORY.
    Report,
    /// SQL statements, one per row (SHOW CREATE TABLE).
    Statements,
}

impl Outcome {
    /// Rows changed by a DML statement (0 for DDL and queries).
    pub fn affected_rows(&self) -> u64 {
        match self {
            Outcome::Inserted { rows, .. }
            | Outcome::Deleted { rows, .. }
            | Outcome::Updated { rows, .. }
            | Outcome::TableCreatedAs { rows, .. } => *rows,
            Outcome::Merged {
                inserted,
                updated,
                deleted,
                ..
            } => inserted + updated + deleted,
            _ => 0,
        }
    }

    pub(crate) fn names(listing: Listing, column: &str, names: Vec<String>) -> Self {
        let schema = Arc::new(Schema::new(vec![Field::new(column, DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(names))])
            .expect("one non-null Utf8 column matches its schema");
        Outcome::Listing(listing, batch)
    }

    /// The schema of a DESCRIBE listing: `column_key` is `PRI` for a primary key column, `UNI`
    /// for a column UNIQUE alone, NULL otherwise.
    pub(crate) fn columns_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("column_name", DataType::Utf8, false),
            Field::new("data_type", DataType::Utf8, false),
            Field::new("is_nullable", DataType::Utf8, false),
            Field::new("column_key", DataType::Utf8, true),
            Field::new("column_default", DataType::Utf8, true),
        ]))
    }

    /// The columns of VACUUM's result: one row per file.
    pub(crate) fn vacuum_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("path", DataType::Utf8, false),
            Field::new("size_bytes", DataType::UInt64, false),
            Field::new("action", DataType::Utf8, false),
        ]))
    }

    /// The columns of FSCK REPAIR TABLE's result: one row per damaged file.
    pub(crate) fn fsck_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("path", DataType::Utf8, false),
            Field::new("problem", DataType::Utf8, false),
            Field::new("action", DataType::Utf8, false),
        ]))
    }

    /// The columns of ANALYZE's result: one row per column analyzed.
    pub(crate) fn analyze_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("table_name", DataType::Utf8, false),
            Field::new("column_name", DataType::Utf8, false),
            Field::new("version", DataType::Int64, false),
            Field::new("row_count", DataType::UInt64, false),
            Field::new("null_count", DataType::UInt64, false),
            Field::new("distinct_count", DataType::UInt64, false),
            Field::new("min_value", DataType::Utf8, true),
            Field::new("max_value", DataType::Utf8, true),
        ]))
    }

    /// The columns of OPTIMIZE's one-row result.
    pub(crate) fn optimize_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("table_name", DataType::Utf8, false),
            Field::new("files_removed", DataType::UInt64, false),
            Field::new("files_added", DataType::UInt64, false),
            Field::new("bytes_removed", DataType::UInt64, false),
            Field::new("bytes_added", DataType::UInt64, false),
            Field::new("rows_purged", DataType::UInt64, false),
            Field::new("deletion_vectors_removed", DataType::UInt64, false),
            Field::new("version", DataType::Int64, true),
        ]))
    }

    /// The columns of DESCRIBE HISTORY, named as Delta's own `DESCRIBE HISTORY` names them.
    pub(crate) fn history_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("version", DataType::Int64, false),
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            Field::new("operation", DataType::Utf8, true),
            Field::new("operationParameters", DataType::Utf8, false),
            Field::new("readVersion", DataType::Int64, true),
            Field::new("isolationLevel", DataType::Utf8, true),
            Field::new("isBlindAppend", DataType::Boolean, true),
            Field::new("operationMetrics", DataType::Utf8, false),
            Field::new("engineInfo", DataType::Utf8, true),
        ]))
    }
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Rows(stream) => write!(f, "Rows({:?})", stream.schema()),
            Outcome::Listing(listing, batch) => {
                write!(f, "Listing({listing:?}, {} rows)", batch.num_rows())
            }
            Outcome::DatabaseCreated(n) => write!(f, "DatabaseCreated({n})"),
            Outcome::DatabaseDropped(n) => write!(f, "DatabaseDropped({n})"),
            Outcome::UsingDatabase(n) => write!(f, "UsingDatabase({n})"),
            Outcome::TableCreated(n) => write!(f, "TableCreated({n})"),
            Outcome::TableCreatedAs { table, rows } => write!(f, "TableCreatedAs({table}, {rows})"),
            Outcome::TableCloned {
                table,
                source,
                version,
            } => write!(f, "TableCloned({table}, {source}, {version})"),
            Outcome::TableDropped(n) => write!(f, "TableDropped({n})"),
            Outcome::ViewCreated(n) => write!(f, "ViewCreated({n})"),
            Outcome::ViewDropped(n) => write!(f, "ViewDropped({n})"),
            Outcome::IndexCreated(n) => write!(f, "IndexCreated({n})"),
            Outcome::IndexDropped(n) => write!(f, "IndexDropped({n})"),
            Outcome::TableAltered { table, change } => {
                write!(f, "TableAltered({table}, {change})")
            }
            Outcome::Inserted { table, rows } => write!(f, "Inserted({table}, {rows})"),
            Outcome::Deleted { table, rows } => write!(f, "Deleted({table}, {rows})"),
            Outcome::Updated { table, rows } => write!(f, "Updated({table}, {rows})"),
            Outcome::Merged {
                table,
                inserted,
                updated,
                deleted,
            } => write!(f, "Merged({table}, {inserted}, {updated}, {deleted})"),
            Outcome::TransactionStarted => write!(f, "TransactionStarted"),
            Outcome::TransactionCommitted => write!(f, "TransactionCommitted"),
            Outcome::TransactionRolledBack => write!(f, "TransactionRolledBack"),
            Outcome::NothingToDo(m) => write!(f, "NothingToDo({m})"),
            Outcome::QueryCancelled(id) => write!(f, "QueryCancelled({id})"),
            Outcome::SettingChanged(m) => write!(f, "SettingChanged({m})"),
        }
    }
}
