//! `DeltaScanExec`: the Parquet scan of a Delta snapshot, with the file-skipping figures that
//! `EXPLAIN` shows.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, Statistics};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, ParquetFileReaderFactory, ParquetRowSelection,
};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::filter_pushdown::{FilterDescription, FilterPushdownPhase};
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, StatisticsArgs,
};
use futures::future::BoxFuture;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, RowSelection, RowSelector};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use roaring::RoaringTreemap;

use super::TableHandle;
use super::damage::{DamageChecking, execute_naming_damage};
use super::error::external;
use super::mapping::ColumnMappingAdapterFactory;
use crate::metrics::metrics;
use crate::storage::parquet::read_footer;
use crate::table::TableError;
use crate::txlog::{Add, DeltaLog, FileStats, is_mapped};

/// How many files of a snapshot a scan reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCounts {
    /// Live files in the snapshot.
    pub in_snapshot: usize,
    /// Files left after partition pruning, for a partitioned table.
    pub after_partitions: Option<usize>,
    /// Files left after skipping by per-file statistics.
    pub after_stats: usize,
    /// Files read whose deletion vector the scan applies.
    pub with_deletion_vectors: usize,
    /// How the scan used an index, if it did.
    pub index: Option<IndexUse>,
}

/// What an index contributed to a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexUse {
    pub name: String,
    /// Rows the index lookups selected (live ones only).
    pub rows: u64,
    /// Files with at least one selected row.
    pub files_matched: usize,
    /// Files answered by the index.
    pub files_looked_up: usize,
    /// Files read whole: without a segment of the index, or where a lookup would cost more.
    pub files_read_whole: usize,
}

/// Reads the files chosen for a scan (its only child does the Parquet work).
#[derive(Debug)]
pub struct DeltaScanExec {
    table: String,
    version: i64,
    counts: FileCounts,
    /// Estimates for the whole scan: rows and bytes of its files, analyzed column figures.
    statistics: Arc<Statistics>,
    input: Arc<dyn ExecutionPlan>,
}

impl DeltaScanExec {
    pub fn new(
        table: String,
        version: i64,
        counts: FileCounts,
        statistics: Statistics,
        input: Arc<dyn ExecutionPlan>,
    ) -> Self {
        Self {
            table,
            version,
            counts,
            statistics: Arc::new(statistics),
            input,
        }
    }

    pub fn counts(&self) -> &FileCounts {
        &self.counts
    }
}

impl DisplayAs for DeltaScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let FileCounts {
            in_snapshot,
            after_partitions,
            after_stats,
            with_deletion_vectors,
            index,
        } = &self.counts;
        write!(
            f,
            "DeltaScanExec: table={}, version={}, files={after_stats}/{in_snapshot} (",
            self.table, self.version,
        )?;
        if let Some(after_partitions) = after_partitions {
            write!(
                f,
                "{} pruned by partition, ",
                in_snapshot - after_partitions
            )?;
        }
        write!(
            f,
            "{} skipped by statistics)",
            after_partitions.unwrap_or(*in_snapshot) - after_stats
        )?;
        if let Some(used) = index {
            write!(
                f,
                ", index {}: {} rows in {} of {} files",
                used.name, used.rows, used.files_matched, used.files_looked_up
            )?;
            if used.files_read_whole > 0 {
                write!(f, ", {} files read whole", used.files_read_whole)?;
            }
        }
        if *with_deletion_vectors > 0 {
            write!(
                f,
                ", deletion vectors applied in {with_deletion_vectors} files"
            )?;
        }
        Ok(())
    }
}

impl ExecutionPlan for DeltaScanExec {
    fn name(&self) -> &str {
        "DeltaScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children
            .pop()
            .ok_or_else(|| TableError::Internal("DeltaScanExec needs one child".into()))?;
        Ok(Arc::new(Self {
            input,
            table: self.table.clone(),
            version: self.version,
            counts: self.counts.clone(),
            statistics: Arc::clone(&self.statistics),
        }))
    }

    /// Filters pass through to the scan below, which reads the same rows.
    fn gather_filters_for_pushdown(
        &self,
        _phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> Result<FilterDescription> {
        FilterDescription::from_children(parent_filters, &self.children())
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        match (args.partition(), input_stats.first()) {
            (Some(_), Some(input)) => Ok(Arc::clone(input)),
            _ => Ok(Arc::clone(&self.statistics)),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition == 0 {
            let counts = &self.counts;
            metrics().scan(
                counts.after_stats as u64,
                (counts.in_snapshot - counts.after_stats) as u64,
            );
        }
        execute_naming_damage(&self.input, partition, context)
    }
}

/// Scans of at most this many bytes run as one partition.
pub(super) const SINGLE_PARTITION_BYTES: u64 = 32 * 1024 * 1024;

/// What to read with DataFusion's Parquet reader.
pub struct ParquetScan {
    /// The runtime whose object store and Parquet metadata cache the scan uses.
    pub runtime: Arc<RuntimeEnv>,
    pub store_url: ObjectStoreUrl,
    /// File columns, plus any per-file (partition) and reader-made (row number) columns.
    pub schema: TableSchema,
    pub files: Vec<PartitionedFile>,
    pub projection: Option<Vec<usize>>,
    /// Used to skip row groups and pages inside the files.
    pub predicate: Option<Arc<dyn PhysicalExpr>>,
    pub limit: Option<usize>,
    /// Files are split into at most this many partitions (in order, contiguous runs).
    pub partitions: usize,
    /// How many rows the scan will read, when known beforehand (an index lookup).
    pub rows: Option<u64>,
}

/// A Parquet scan over the given files.
pub fn parquet_scan(scan: ParquetScan) -> Result<Arc<dyn ExecutionPlan>> {
    // Data files are immutable, so their footers can be cached across statements.
    let store = scan.runtime.object_store(&scan.store_url)?;
    let table_schema = Arc::clone(scan.schema.table_schema());
    let metadata_cache = scan.runtime.cache_manager.get_file_metadata_cache();
    let cached = CachedParquetFileReaderFactory::new(Arc::clone(&store), metadata_cache);
    let readers: Arc<dyn ParquetFileReaderFactory> = match &scan.predicate {
        Some(_) => Arc::new(PageIndexCaching(cached)),
        None => Arc::new(cached),
    };
    let readers = Arc::new(DamageChecking::new(readers, store));
    let mut source = ParquetSource::new(scan.schema).with_parquet_file_reader_factory(readers);
    if let Some(predicate) = scan.predicate {
        source = source.with_predicate(predicate);
    }
    // Small scans read in one partition, which keeps rows in insertion order.
    let bytes: u64 = scan.files.iter().map(|f| f.object_meta.size).sum();
    let n = if bytes <= SINGLE_PARTITION_BYTES {
        1
    } else {
        scan.partitions.clamp(1, scan.files.len().max(1))
    };
    let per_group = scan.files.len().div_ceil(n).max(1);
    let mut groups: Vec<Vec<PartitionedFile>> = Vec::with_capacity(n);
    let mut files = scan.files.into_iter().peekable();
    while files.peek().is_some() {
        groups.push(files.by_ref().take(per_group).collect());
    }
    let mut config = FileScanConfigBuilder::new(scan.store_url, Arc::new(source))
        .with_file_groups(groups.into_iter().map(FileGroup::from).collect())
        .with_projection_indices(scan.projection)?
        .with_limit(scan.limit);
    if is_mapped(&table_schema) {
        config = config.with_expr_adapter(Some(Arc::new(ColumnMappingAdapterFactory)));
    }
    if let Some(rows) = scan.rows {
        let rows = usize::try_from(rows).unwrap_or(usize::MAX);
        config = config.with_statistics(
            Statistics::new_unknown(&table_schema).with_num_rows(Precision::Inexact(rows)),
        );
    }
    let config = config.build();
    Ok(DataSourceExec::from_data_source(config))
}

/// Reads footers together with their page indexes, so that the cache keeps both.
///
/// DataFusion asks for the footer alone and loads the page index afterwards, when a predicate
/// can use it; that second load bypasses the metadata cache and would re-read and re-parse the
/// index on every statement. Used for scans with a predicate, which use the page index.
#[derive(Debug)]
struct PageIndexCaching(CachedParquetFileReaderFactory);

impl ParquetFileReaderFactory for PageIndexCaching {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let reader = self
            .0
            .create_reader(partition_index, file, metadata_size_hint, metrics)?;
        Ok(Box::new(WithPageIndex(reader)))
    }
}

/// A file reader whose metadata always includes the page index.
pub(super) struct WithPageIndex(pub(super) Box<dyn AsyncFileReader + Send>);

impl AsyncFileReader for WithPageIndex {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.0.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        self.0.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        let options = options
            .cloned()
            .unwrap_or_default()
            .with_page_index_policy(PageIndexPolicy::Optional);
        Box::pin(async move { self.0.get_metadata(Some(&options)).await })
    }
}

/// A live data file to scan: its path, and for a file with a deletion vector, a row selection
/// that leaves out the deleted rows (positions count across all row groups, so DataFusion can
/// still prune row groups and pages).
pub async fn live_file(
    handle: &TableHandle,
    add: &Add,
    stats: &FileStats,
) -> Result<PartitionedFile> {
    let file = data_file(handle.log(), add)?;
    let Some(deleted) = handle.deletion_vector(add).await? else {
        return Ok(file);
    };
    let rows = match stats.num_records {
        Some(rows) => rows,
        None => row_count(handle, &file).await?,
    };
    Ok(file.with_extension(ParquetRowSelection::new(live_rows(&deleted, rows))))
}

/// The rows at `positions` of a live data file, without those its deletion vector lists;
/// `None` when no such row remains.
pub async fn indexed_file(
    handle: &TableHandle,
    add: &Add,
    stats: &FileStats,
    mut positions: RoaringTreemap,
) -> Result<Option<(PartitionedFile, u64)>> {
    if let Some(deleted) = handle.deletion_vector(add).await? {
        positions -= deleted.as_ref();
    }
    if positions.is_empty() {
        return Ok(None);
    }
    let file = data_file(handle.log(), add)?;
    let rows = match stats.num_records {
        Some(rows) => rows,
        None => row_count(handle, &file).await?,
    };
    Ok(Some((
        file.with_extension(ParquetRowSelection::new(rows_at(&positions, rows))),
        positions.len(),
    )))
}

/// Selects the rows at `positions` of a `rows`-row file.
fn rows_at(positions: &RoaringTreemap, rows: u64) -> RowSelection {
    let mut selectors: Vec<RowSelector> = Vec::new();
    let mut next = 0u64;
    for position in positions.iter().take_while(|p| *p < rows) {
        if position > next {
            selectors.push(RowSelector::skip((position - next) as usize));
        }
        match selectors.last_mut() {
            Some(run) if !run.skip && position == next => run.row_count += 1,
            _ => selectors.push(RowSelector::select(1)),
        }
        next = position + 1;
    }
    if next < rows {
        selectors.push(RowSelector::skip((rows - next) as usize));
    }
    RowSelection::from(selectors)
}

/// Selects the rows of a `rows`-row file that `deleted` does not list.
pub fn live_rows(deleted: &RoaringTreemap, rows: u64) -> RowSelection {
    let mut selectors = Vec::new();
    let mut next = 0u64;
    for position in deleted.iter().take_while(|p| *p < rows) {
        if position > next {
            selectors.push(RowSelector::select((position - next) as usize));
        }
        selectors.push(RowSelector::skip(1));
        next = position + 1;
    }
    if next < rows {
        selectors.push(RowSelector::select((rows - next) as usize));
    }
    RowSelection::from(selectors)
}

/// The number of physical rows in a live file: from its statistics, else from its footer.
pub async fn row_count_of(handle: &TableHandle, add: &Add) -> Result<u64> {
    match FileStats::of(add).num_records {
        Some(rows) => Ok(rows),
        None => row_count(handle, &data_file(handle.log(), add)?).await,
    }
}

/// The number of rows in a data file, from its Parquet footer.
async fn row_count(handle: &TableHandle, file: &PartitionedFile) -> Result<u64> {
    let metadata = read_footer(
        handle.log().store().as_ref(),
        &file.object_meta.location,
        file.object_meta.size,
    )
    .await
    .map_err(external)?;
    Ok(u64::try_from(metadata.file_metadata().num_rows()).unwrap_or_default())
}

/// The data file an `add` action names, relative to the store root (its path is URL-encoded,
/// relative to the table root or, in a shallow clone, an absolute URI).
pub fn data_file(log: &DeltaLog, add: &Add) -> Result<PartitionedFile> {
    let path = log.file_path(&add.path).map_err(external)?;
    let size = u64::try_from(add.size).unwrap_or_default();
    Ok(PartitionedFile::new(path.to_string(), size))
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{binary, col, lit};
    use datafusion::physical_plan::collect;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStoreExt, PutPayload};
    use url::Url;

    use super::*;
    use crate::storage::parquet::encode_batches;

    /// A scan with a predicate leaves the file's footer and page index in the metadata cache,
    /// so the next statement reads neither again.
    #[tokio::test]
    async fn predicate_scans_cache_the_page_index() {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from_iter_values(0..10_000))],
        )
        .unwrap();
        let file = encode_batches(Arc::clone(&schema), &[batch]).unwrap();
        let store = Arc::new(InMemory::new());
        let size = file.bytes.len() as u64;
        store
            .put(&Path::from("t/part.parquet"), PutPayload::from(file.bytes))
            .await
            .unwrap();
        let runtime = Arc::new(RuntimeEnv::default());
        runtime.register_object_store(&Url::parse("memory://").unwrap(), store);
        let predicate = binary(
            col("k", &schema).unwrap(),
            Operator::Eq,
            lit(4_321i64),
            &schema,
        )
        .unwrap();
        let plan = parquet_scan(ParquetScan {
            runtime: Arc::clone(&runtime),
            store_url: ObjectStoreUrl::parse("memory://").unwrap(),
            schema: TableSchema::from(Arc::clone(&schema)),
            files: vec![PartitionedFile::new("t/part.parquet", size)],
            projection: None,
            predicate: Some(predicate),
            limit: None,
            partitions: 1,
            rows: None,
        })
        .unwrap();
        let context = Arc::new(TaskContext::default().with_runtime(Arc::clone(&runtime)));
        let batches = collect(plan, context).await.unwrap();
        assert!(batches.iter().map(|b| b.num_rows()).sum::<usize>() >= 1);
        let cached = runtime
            .cache_manager
            .get_file_metadata_cache()
            .list_entries();
        let entry = cached
            .get(&Path::from("t/part.parquet"))
            .expect("the footer is cached");
        assert_eq!(
            entry.value.file_metadata.extra_info().get("page_index"),
            Some(&"true".to_string())
        );
    }
}
