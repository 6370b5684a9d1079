//! Table maintenance statements: `OPTIMIZE`, `VACUUM`, `ANALYZE TABLE` and `FSCK REPAIR TABLE`.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, UInt64Array};
use datafusion::execution::object_store::ObjectStoreUrl;

use super::{Engine, EngineError, Outcome, Session};
use crate::engine::Listing;
use crate::engine::running::task_context;
use crate::engine::sql::TableName;
use crate::table::statistics::analyze;
use crate::table::{Finding, OptimizeReport, fsck, optimize, vacuum};

impl Engine {
    /// `OPTIMIZE [TABLE] t [ZORDER BY (c1, …)]`: bin-packs small files and purges deletion
    /// vectors, or rewrites the table in Z-order; returns one row of figures.
    pub(super) async fn optimize(
        &self,
        session: &Session,
        table: TableName,
        zorder: Vec<String>,
    ) -> Result<Outcome, EngineError> {
        let (database, handle) = self.named_table(session, &table).await?;
        let store_url = ObjectStoreUrl::parse(self.catalog.store().engine_url())?;
        let report = optimize(
            &handle,
            &zorder,
            None,
            store_url,
            task_context(&self.state)?,
        )
        .await?;
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
        let (database, handle) = self.named_table(session, &table).await?;
        let store_url = ObjectStoreUrl::parse(self.catalog.store().engine_url())?;
        let name = format!("{database}.{}", table.table);
        let figures = analyze(&handle, &name, &columns, store_url, &self.state).await?;
        let batch = RecordBatch::try_new(
            Outcome::analyze_schema(),
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
        let (_, handle) = self.named_table(session, &table).await?;
        let retain = retain_hours.map(|h| Duration::from_secs(h.saturating_mul(3600)));
        let report = vacuum(&handle, retain, dry_run).await?;
        let action = if dry_run { "would delete" } else { "deleted" };
        let batch = RecordBatch::try_new(
            Outcome::vacuum_schema(),
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

    /// `FSCK REPAIR TABLE t [DRY RUN]`: one row per damaged file of the table — a log
    /// checkpoint deleted or rewritten, a newest commit set aside, a data file removed — or that
    /// would be, for a dry run. The log is repaired first: the data files are checked in the
    /// snapshot it then reads.
    pub(super) async fn fsck(
        &self,
        session: &Session,
        table: TableName,
        dry_run: bool,
    ) -> Result<Outcome, EngineError> {
        let database = session.database_or_current(table.database.clone());
        let mut findings: Vec<Finding> = self
            .catalog
            .repair_log(&database, &table.table, dry_run)
            .await?
            .into_iter()
            .map(Finding::from)
            .collect();
        match self.named_table(session, &table).await {
            Ok((_, handle)) => findings.extend(fsck(&handle, dry_run).await?),
            // The log's findings say why it still does not read (or would read after repair).
            Err(_) if !findings.is_empty() => {}
            Err(e) => return Err(e),
        }
        let column = |value: fn(&Finding) -> &str| {
            Arc::new(StringArray::from_iter_values(findings.iter().map(value))) as ArrayRef
        };
        let batch = RecordBatch::try_new(
            Outcome::fsck_schema(),
            vec![
                column(|f| &f.file),
                column(|f| &f.problem),
                column(|f| &f.action),
            ],
        )
        .map_err(|e| EngineError::DataFusion(e.into()))?;
        Ok(Outcome::Listing(Listing::Report, batch))
    }
}

fn optimize_report(
    table: &str,
    report: &OptimizeReport,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let count = |n: u64| Arc::new(UInt64Array::from(vec![n]));
    RecordBatch::try_new(
        Outcome::optimize_schema(),
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
