//! Table maintenance statements: `OPTIMIZE`, `VACUUM`, `ANALYZE TABLE`, and `ALTER TABLE … SET
//! TBLPROPERTIES`.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::execution::object_store::ObjectStoreUrl;

use datafusion::sql::sqlparser::ast;

use super::instance::property_list;
use super::statement::{self, TableName};
use super::{Engine, EngineError, Listing, Outcome, Session};
use crate::table::statistics::analyze;
use crate::table::{OptimizeReport, optimize, set_properties, vacuum};

impl Engine {
    /// `OPTIMIZE [TABLE] t [ZORDER BY (c1, …)]`: bin-packs small files and purges deletion
    /// vectors, or rewrites the table in Z-order; returns one row of figures.
    pub(super) async fn optimize(
        &self,
        session: &Session,
        table: TableName,
        zorder: Vec<String>,
    ) -> Result<Outcome, EngineError> {
        let database = session.database_or_current(table.database);
        let handle = self.catalog.table(&database, &table.table).await?;
        let store_url = ObjectStoreUrl::parse(self.catalog.store().engine_url())?;
        let report = optimize(&handle, &zorder, None, store_url, self.state.task_ctx()).await?;
        let name = format!("{database}.{}", table.table);
        let batch =
            optimize_report(&name, &report).map_err(|e| EngineError::DataFusion(e.into()))?;
        Ok(Outcome::Listing(Listing::Report, batch))
    }

    /// `ANALYZE TABLE t [(c1, …)]`: computes and stores column statistics; one row per column
    /// analyzed.
    pub(super) async fn analyze(
        &self,
        session: &Session,
        table: TableName,
        columns: Vec<String>,
    ) -> Result<Outcome, EngineError> {
        let database = session.database_or_current(table.database);
        let handle = self.catalog.table(&database, &table.table).await?;
        let store_url = ObjectStoreUrl::parse(self.catalog.store().engine_url())?;
        let name = format!("{database}.{}", table.table);
        let figures = analyze(&handle, &name, &columns, store_url, &self.state).await?;
        let batch = RecordBatch::try_new(
            analyze_schema(),
            vec![
                Arc::new(StringArray::from_iter_values(figures.iter().map(|_| &name))),
                Arc::new(StringArray::from_iter_values(
                    figures.iter().map(|(c, _)| c),
                )),
                Arc::new(Int64Array::from_iter_values(
                    figures.iter().map(|(_, f)| f.version),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    figures.iter().map(|(_, f)| f.rows),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    figures.iter().map(|(_, f)| f.nulls),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    figures.iter().map(|(_, f)| f.distinct),
                )),
                Arc::new(StringArray::from_iter(
                    figures.iter().map(|(_, f)| f.min.as_deref()),
                )),
                Arc::new(StringArray::from_iter(
                    figures.iter().map(|(_, f)| f.max.as_deref()),
                )),
            ],
        )
        .map_err(|e| EngineError::DataFusion(e.into()))?;
        Ok(Outcome::Listing(Listing::Report, batch))
    }

    /// `VACUUM [TABLE] t [RETAIN n HOURS] [DRY RUN]`: one row per file deleted (or that would
    /// be, for a dry run).
    pub(super) async fn vacuum(
        &self,
        session: &Session,
        table: TableName,
        retain_hours: Option<u64>,
        dry_run: bool,
    ) -> Result<Outcome, EngineError> {
        let database = session.database_or_current(table.database);
        let handle = self.catalog.table(&database, &table.table).await?;
        let retain = retain_hours.map(|h| Duration::from_secs(h.saturating_mul(3600)));
        let report = vacuum(&handle, retain, dry_run).await?;
        let action = if dry_run { "would delete" } else { "deleted" };
        let batch = RecordBatch::try_new(
            vacuum_schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    report.files.iter().map(|(path, _)| path),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    report.files.iter().map(|(_, size)| *size),
                )),
                Arc::new(StringArray::from_iter_values(
                    report.files.iter().map(|_| action),
                )),
            ],
        )
        .map_err(|e| EngineError::DataFusion(e.into()))?;
        Ok(Outcome::Listing(Listing::Report, batch))
    }

    /// `ALTER TABLE t SET TBLPROPERTIES ('key' = 'value', …)`, the only ALTER TABLE so far.
    pub(super) async fn alter_table(
        &self,
        session: &Session,
        alter: &ast::AlterTable,
    ) -> Result<Outcome, EngineError> {
        let [ast::AlterTableOperation::SetTblProperties { table_properties }] =
            alter.operations.as_slice()
        else {
            return Err(EngineError::NotSupported(format!(
                "{alter} (ALTER TABLE supports SET TBLPROPERTIES only)"
            )));
        };
        let name = statement::table_name(&alter.name)?;
        let database = session.database_or_current(name.database);
        let handle = self.catalog.table(&database, &name.table).await?;
        let set = property_list(table_properties)?;
        let count = set.len();
        set_properties(&handle, set).await?;
        Ok(Outcome::TableAltered {
            table: name.table,
            properties: count,
        })
    }
}

/// The columns of VACUUM's result: one row per file.
pub(super) fn vacuum_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("size_bytes", DataType::UInt64, false),
        Field::new("action", DataType::Utf8, false),
    ]))
}

/// The columns of OPTIMIZE's one-row result.
pub(super) fn analyze_schema() -> SchemaRef {
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

pub(super) fn optimize_schema() -> SchemaRef {
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

fn optimize_report(
    table: &str,
    report: &OptimizeReport,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let count = |n: u64| Arc::new(UInt64Array::from(vec![n]));
    RecordBatch::try_new(
        optimize_schema(),
        vec![
            Arc::new(StringArray::from(vec![table])),
            count(report.files_removed as u64),
            count(report.files_added as u64),
            count(report.bytes_removed),
            count(report.bytes_added),
            count(report.rows_purged),
            count(report.deletion_vectors_removed as u64),
            Arc::new(Int64Array::from(vec![report.version])),
        ],
    )
}
