//! [`DeltaTableProvider`]: one table at one snapshot, as a DataFusion `TableProvider`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{
    ColumnStatistics, DFSchema, Result, ScalarValue, Statistics, not_impl_err,
};
use datafusion::datasource::TableType;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use parquet::arrow::RowNumber;

use super::column_scan::column_scan;
use super::constraints::column_defaults;
use super::error::external;
use super::foreign_keys::ReferencedTables;
use super::index::{IndexScan, column_bounds, table_indexes};
use super::partitioning::{Partitioner, partition_of};
use super::pruning::{FilePruningStats, merged_statistics};
use super::scan::{
    DeltaScanExec, FileCounts, IndexUse, ParquetScan, indexed_file, live_file, parquet_scan,
};
use super::statistics::{analyzed, column_statistics};
use super::{DeltaSink, PendingCommit, TableHandle, TxTable, Writer};
use crate::storage::ColumnCache;
use crate::txlog::{Add, FileStats, Snapshot};

/// Hidden column of an UPDATE/DELETE scan: the position of the row's file in the snapshot.
pub const FILE_INDEX_COLUMN: &str = "__minidb_file";
/// Hidden column of an UPDATE/DELETE scan: the row's physical position in its file.
pub const ROW_INDEX_COLUMN: &str = "__minidb_row";

/// Bytes per value assumed for a column of variable width (strings, binaries, nested values)
/// when estimating how much a scan reads; PostgreSQL's planner assumes the same.
const ASSUMED_VALUE_BYTES: u64 = 32;

/// Takes `known`'s figures for the bounds and NULL count `column` lacks.
fn fill_absent(column: &mut ColumnStatistics, known: ColumnStatistics) {
    if column.min_value == Precision::Absent {
        column.min_value = known.min_value;
    }
    if column.max_value == Precision::Absent {
        column.max_value = known.max_value;
    }
    if column.null_count == Precision::Absent {
        column.null_count = known.null_count;
    }
}

/// A Delta table pinned to the snapshot its statement resolved.
#[derive(Debug)]
pub struct DeltaTableProvider {
    name: String,
    handle: Arc<TableHandle>,
    snapshot: Arc<Snapshot>,
    store_url: ObjectStoreUrl,
    /// The table's columns, plus the row-address columns when the scan serves an UPDATE/DELETE.
    schema: TableSchema,
    /// DEFAULT expressions by column, used by INSERTs that leave the column out.
    defaults: HashMap<String, Expr>,
    /// The open transaction this table is read and written in, if any.
    transaction: Option<Arc<TxTable>>,
    /// Where an INSERT's commit waits when the table is not created yet.
    pending: Option<Arc<PendingCommit>>,
    /// Opens the parent tables an INSERT's foreign key checks read.
    references: Option<Arc<dyn ReferencedTables>>,
}

impl DeltaTableProvider {
    pub fn new(
        name: String,
        handle: Arc<TableHandle>,
        snapshot: Arc<Snapshot>,
        store_url: ObjectStoreUrl,
    ) -> Self {
        let schema = TableSchema::from(Arc::clone(snapshot.schema()));
        Self {
            name,
            handle,
            snapshot,
            store_url,
            schema,
            defaults: HashMap::new(),
            transaction: None,
            pending: None,
            references: None,
        }
    }

    /// Lets INSERTs check the table's foreign keys, opening the parents through `references`.
    pub fn with_references(mut self, references: Arc<dyn ReferencedTables>) -> Self {
        self.references = Some(references);
        self
    }

    /// The table as `table`'s transaction sees it: its snapshot, and writes staged into it.
    pub fn in_transaction(table: Arc<TxTable>, name: String, store_url: ObjectStoreUrl) -> Self {
        let mut provider = Self::new(
            name,
            Arc::clone(table.handle()),
            table.snapshot(),
            store_url,
        );
        provider.transaction = Some(table);
        provider
    }

    /// Where this table's changes go.
    pub fn writer(&self) -> Writer {
        match (&self.pending, &self.transaction) {
            (Some(pending), _) => Writer::Pending(Arc::clone(pending)),
            (None, Some(table)) => Writer::Transaction(Arc::clone(table)),
            (None, None) => Writer::Autocommit(Arc::clone(&self.handle)),
        }
    }

    /// The table of a `CREATE TABLE … AS SELECT`, not created yet: an INSERT into it leaves its
    /// commit's actions in `pending` for the commit that creates the table.
    pub fn committing_into(mut self, pending: Arc<PendingCommit>) -> Self {
        self.pending = Some(pending);
        self
    }

    /// Loads the columns' DEFAULT expressions (needed by INSERTs only).
    pub fn with_column_defaults(mut self) -> Result<Self> {
        self.defaults = column_defaults(&self.snapshot)?;
        Ok(self)
    }

    /// The same table with two more columns, [`FILE_INDEX_COLUMN`] and [`ROW_INDEX_COLUMN`],
    /// which address each row for a deletion vector.
    pub fn with_row_addresses(mut self) -> Self {
        let file_index = Arc::new(Field::new(FILE_INDEX_COLUMN, DataType::Int64, false));
        let row_index = Arc::new(
            Field::new(ROW_INDEX_COLUMN, DataType::Int64, false).with_extension_type(RowNumber),
        );
        self.schema = TableSchema::builder(Arc::clone(self.snapshot.schema()))
            .with_table_partition_cols(vec![file_index])
            .with_virtual_columns(vec![row_index])
            .build();
        self
    }

    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    pub fn handle(&self) -> &Arc<TableHandle> {
        &self.handle
    }

    /// The filters that only name the table's own columns (not the row-address columns).
    fn on_data_columns(&self, filters: &[Expr]) -> Option<Expr> {
        let schema = self.snapshot.schema();
        conjunction(
            filters
                .iter()
                .filter(|f| {
                    f.column_refs()
                        .iter()
                        .all(|c| schema.field_with_name(&c.name).is_ok())
                })
                .cloned(),
        )
    }

    /// Every live file, with its position in the snapshot.
    fn all_files(&self) -> Vec<(usize, &Add, &FileStats)> {
        self.snapshot
            .files_with_stats()
            .enumerate()
            .map(|(i, (add, stats))| (i, add, stats))
            .collect()
    }

    /// The files of the partitions `predicate` can match.
    fn partition_files<'a>(
        &self,
        files: Vec<(usize, &'a Add, &'a FileStats)>,
        partitioner: &Partitioner,
        predicate: &Expr,
        state: &dyn Session,
    ) -> Result<Vec<(usize, &'a Add, &'a FileStats)>> {
        let column = partitioner.column_name();
        if partitioner.automatic_ranges().is_some() {
            // Each file is a partition: the range of values its statistics give.
            let on_column = conjunction(
                split_conjunction(predicate)
                    .into_iter()
                    .filter(|e| {
                        let refs = e.column_refs();
                        !refs.is_empty() && refs.iter().all(|c| c.name == column)
                    })
                    .cloned(),
            );
            let Some(on_column) = on_column else {
                return Ok(files);
            };
            let df_schema = DFSchema::try_from(Arc::clone(self.snapshot.schema()))?;
            let physical = state.create_physical_expr(on_column, &df_schema)?;
            return self.skip_by_statistics(files, &physical);
        }
        let bounds = column_bounds(self.snapshot.schema(), std::slice::from_ref(predicate));
        let Some(matching) = bounds
            .get(column)
            .map(|b| partitioner.matching(b))
            .transpose()?
            .flatten()
        else {
            return Ok(files);
        };
        // A file without a partition tag (written by another engine) may hold any row.
        Ok(files
            .into_iter()
            .filter(|(_, add, _)| partition_of(add).is_none_or(|p| matching.contains(&p)))
            .collect())
    }

    /// What DataFusion's planner learns about a scan of `files`: their live rows (or the rows
    /// an index selected), the bytes the projected columns take in memory (fixed-width
    /// columns exactly, others at [`ASSUMED_VALUE_BYTES`] a value), the analyzed figures of
    /// each column and, for the projected ones, the bounds the files' statistics give; all
    /// estimates. Without row counts the bytes are the files' sizes.
    fn scan_statistics(
        &self,
        files: &[(&Add, &FileStats)],
        index: Option<&IndexUse>,
        projection: Option<&Vec<usize>>,
    ) -> Result<Statistics> {
        let rows: Option<u64> = match index {
            Some(used) if used.files_read_whole == 0 => Some(used.rows),
            _ => files
                .iter()
                .map(|(add, stats)| {
                    stats
                        .num_records
                        .map(|n| n.saturating_sub(add.deleted_rows()))
                })
                .sum(),
        };
        let bytes: u64 = files
            .iter()
            .map(|(add, _)| u64::try_from(add.size).unwrap_or_default())
            .sum();
        let estimate = |n: u64| Precision::Inexact(usize::try_from(n).unwrap_or(usize::MAX));
        let schema = self.schema();
        let mut columns = column_statistics(&analyzed(&self.snapshot)?, &schema);
        // Bounds and NULL counts ANALYZE has not recorded come from the files' statistics in the
        // log, for the columns the scan reads.
        let file_stats: Vec<&FileStats> = files.iter().map(|(_, stats)| *stats).collect();
        for (index, field) in schema.fields().iter().enumerate() {
            let read = projection.is_none_or(|p| p.contains(&index));
            let in_files = self.snapshot.schema().field_with_name(field.name());
            if let (true, Ok(field)) = (read, in_files) {
                fill_absent(&mut columns[index], merged_statistics(field, &file_stats));
            }
        }
        if let Some(rows) = rows {
            for (column, field) in columns.iter_mut().zip(schema.fields()) {
                let width = field.data_type().primitive_width();
                column.byte_size =
                    estimate(rows.saturating_mul(width.map_or(ASSUMED_VALUE_BYTES, |w| w as u64)));
            }
        }
        let mut statistics = Statistics {
            num_rows: rows.map_or(Precision::Absent, estimate),
            total_byte_size: estimate(bytes),
            column_statistics: columns,
        }
        .project(projection);
        // Join planning compares the bytes each side reads, so they are those of the projected
        // columns in memory, as DataFusion reckons its own Parquet scans.
        if rows.is_some() {
            statistics.total_byte_size = estimate(
                statistics
                    .column_statistics
                    .iter()
                    .filter_map(|c| c.byte_size.get_value())
                    .map(|&n| n as u64)
                    .sum(),
            );
        }
        Ok(statistics)
    }

    /// The files whose statistics may match `predicate`.
    fn skip_by_statistics<'a>(
        &self,
        files: Vec<(usize, &'a Add, &'a FileStats)>,
        predicate: &Arc<dyn PhysicalExpr>,
    ) -> Result<Vec<(usize, &'a Add, &'a FileStats)>> {
        let schema = Arc::clone(self.snapshot.schema());
        let Some(pruning) = PruningPredicateBuilder::new()
            .with_file_schema(Arc::clone(&schema))
            .build(Arc::clone(predicate))
        else {
            return Ok(files);
        };
        let stats: Vec<&FileStats> = files.iter().map(|(_, _, stats)| *stats).collect();
        let keep = pruning.prune(&FilePruningStats::new(&schema, &stats))?;
        Ok(files
            .into_iter()
            .zip(keep)
            .filter_map(|(file, keep)| keep.then_some(file))
            .collect())
    }
}

#[async_trait]
impl TableProvider for DeltaTableProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(self.schema.table_schema())
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults.get(column)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Statistics only skip whole files; DataFusion still filters the rows it reads.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !self.snapshot.metadata().partition_columns.is_empty() {
            return not_impl_err!("reading partitioned Delta tables is not supported yet");
        }
        let predicate = self.on_data_columns(filters);
        let physical = match &predicate {
            Some(predicate) => {
                let df_schema = DFSchema::try_from(Arc::clone(self.snapshot.schema()))?;
                Some(state.create_physical_expr(predicate.clone(), &df_schema)?)
            }
            None => None,
        };
        let mut selected = self.all_files();
        let mut after_partitions = None;
        if let Some(partitioner) = Partitioner::of(&self.snapshot)? {
            if let Some(predicate) = &predicate {
                selected = self.partition_files(selected, &partitioner, predicate, state)?;
            }
            after_partitions = Some(selected.len());
        }
        if let Some(physical) = &physical {
            selected = self.skip_by_statistics(selected, physical)?;
        }
        let index_scan = match predicate {
            Some(predicate) => IndexScan::choose(
                &table_indexes(self.snapshot()).map_err(external)?,
                self.snapshot.schema(),
                &[predicate],
            )?,
            None => None,
        };
        let mut counts = FileCounts {
            in_snapshot: self.snapshot.files().len(),
            after_partitions,
            after_stats: selected.len(),
            with_deletion_vectors: 0,
            index: index_scan.as_ref().map(|scan| IndexUse {
                name: scan.index.name.clone(),
                rows: 0,
                files_matched: 0,
                files_looked_up: 0,
                files_read_whole: 0,
            }),
        };
        let mut files = Vec::with_capacity(selected.len());
        let read: Vec<(&Add, &FileStats)> = selected.iter().map(|(_, a, s)| (*a, *s)).collect();
        let addressed = !self.schema.table_partition_cols().is_empty();
        for (index, add, stats) in selected {
            let hits = match &index_scan {
                Some(scan) => self.handle.index_lookup(scan, add).await?,
                None => None,
            };
            let file = match (hits, counts.index.as_mut()) {
                (Some(positions), Some(used)) => {
                    used.files_looked_up += 1;
                    match indexed_file(&self.handle, add, stats, positions).await? {
                        Some((file, rows)) => {
                            used.files_matched += 1;
                            used.rows += rows;
                            file
                        }
                        None => continue,
                    }
                }
                (_, used) => {
                    if let Some(used) = used {
                        used.files_read_whole += 1;
                    }
                    live_file(&self.handle, add, stats).await?
                }
            };
            counts.with_deletion_vectors += usize::from(add.deletion_vector.is_some());
            files.push(if addressed {
                file.with_partition_values(vec![ScalarValue::Int64(Some(index as i64))])
            } else {
                file
            });
        }
        let schema = self.schema();
        let input: Arc<dyn ExecutionPlan> = if files.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(schema.project(p)?),
                None => schema,
            };
            Arc::new(EmptyExec::new(projected))
        } else {
            // A scan through an index reads a handful of rows; its row-count estimate keeps
            // DataFusion from splitting the files into ranges read in parallel.
            let index_driven = counts
                .index
                .as_ref()
                .is_some_and(|used| used.files_read_whole == 0);
            let scan = ParquetScan {
                runtime: state.runtime_env().clone(),
                store_url: self.store_url.clone(),
                schema: self.schema.clone(),
                files,
                projection: projection.cloned(),
                // The predicate also makes the reader load the page index, which lets a row
                // selection skip whole pages.
                predicate: physical,
                limit,
                partitions: state.config().target_partitions(),
                rows: counts
                    .index
                    .as_ref()
                    .filter(|_| index_driven)
                    .map(|used| used.rows),
            };
            let cached = match state.config().get_extension::<ColumnCache>() {
                Some(cache) => column_scan(&scan, cache).await?,
                None => None,
            };
            match cached {
                Some(plan) => plan,
                None => parquet_scan(scan)?,
            }
        };
        let statistics = self.scan_statistics(&read, counts.index.as_ref(), projection)?;
        Ok(Arc::new(DeltaScanExec::new(
            self.name.clone(),
            self.snapshot.version(),
            counts,
            statistics,
            input,
        )))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return not_impl_err!("INSERT {insert_op} is not supported; use INSERT INTO");
        }
        let sink = DeltaSink::new(
            self.name.clone(),
            Arc::clone(&self.handle),
            Arc::clone(&self.snapshot),
            self.store_url.clone(),
            self.writer(),
            self.references.clone(),
        );
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}
