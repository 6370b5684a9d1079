//! `ColumnScanExec`: a scan of a Delta snapshot's data files, row group by row group, through
//! the column cache — what the cache holds is sliced into batches, the rest is decoded from
//! Parquet once and kept.
//!
//! Planning reads each file's footer (from the metadata cache) and keeps the row groups the
//! predicate's statistics cannot rule out and the file's deletion vector leaves rows in. The
//! kept row groups are split into contiguous runs of about equal rows, one per partition, so
//! small scans (one partition) keep insertion order as the Parquet scan does. A row group is the
//! unit of caching and of reading: a missing column is decoded for the whole row group at once,
//! converted to the table's type, and kept; deleted rows are filtered out after.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{ArrayRef, BooleanArray, BooleanBufferBuilder, RecordBatch, RecordBatchOptions};
use arrow::compute::{cast, concat_batches, filter_record_batch};
use arrow::datatypes::{Field, SchemaRef};
use datafusion::common::cast::as_boolean_array;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, ParquetAccessPlan, ParquetFileMetrics,
    ParquetFileReaderFactory, ParquetRowSelection, RowGroupAccess, RowGroupAccessPlanFilter,
};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::physical_plan::coop::make_cooperative;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType, SchedulingType};
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterPushdownPhase, FilterPushdownPropagation,
};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::{StreamExt, TryStreamExt, stream};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, RowSelection};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::file::metadata::ParquetMetaData;

use super::damage::{DamageChecking, guarded, undecodable};
use super::scan::{ParquetScan, SINGLE_PARTITION_BYTES, WithPageIndex};
use crate::storage::{ChunkKey, ColumnCache};
use crate::table::TableError;
use crate::txlog::physical_name;

/// Footers read at once while planning.
const CONCURRENT_FOOTERS: usize = 16;

/// One row group to read.
#[derive(Debug, Clone)]
struct Unit {
    file: Arc<FileToRead>,
    row_group: usize,
    rows: usize,
    /// The rows to keep (those the deletion vector does not list); `None` keeps all.
    selection: Option<RowSelection>,
}

/// A data file and its footer.
#[derive(Debug)]
struct FileToRead {
    file: PartitionedFile,
    metadata: Arc<ParquetMetaData>,
}

/// Reads row groups through the column cache.
#[derive(Debug)]
pub struct ColumnScanExec {
    /// The projected columns, in output order.
    schema: SchemaRef,
    /// The row groups each partition reads, in order.
    partitions: Vec<Vec<Unit>>,
    files: usize,
    row_groups_pruned: usize,
    cache: Arc<ColumnCache>,
    readers: Arc<dyn ParquetFileReaderFactory>,
    /// Filters the plan above pushed down once planned (a hash join's build-side keys, a
    /// top-k's threshold), applied to each row group read; the operators that made them apply
    /// them again, so rows they keep out early change nothing but the work.
    runtime_filters: Vec<Arc<dyn PhysicalExpr>>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

/// Plans `scan` to read through `cache`; `None` when the scan needs what only DataFusion's
/// Parquet scan offers (row-address columns, a row-count estimate from an index).
pub async fn column_scan(
    scan: &ParquetScan,
    cache: Arc<ColumnCache>,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let table_schema = &scan.schema;
    if !table_schema.table_partition_cols().is_empty()
        || !table_schema.virtual_columns().is_empty()
        || scan.rows.is_some()
    {
        return Ok(None);
    }
    let file_schema = Arc::clone(table_schema.file_schema());
    let schema = match &scan.projection {
        Some(projection) => Arc::new(file_schema.project(projection)?),
        None => Arc::clone(&file_schema),
    };
    let store = scan.runtime.object_store(&scan.store_url)?;
    let metadata_cache = scan.runtime.cache_manager.get_file_metadata_cache();
    let readers: Arc<dyn ParquetFileReaderFactory> = Arc::new(DamageChecking::new(
        Arc::new(CachedParquetFileReaderFactory::new(
            Arc::clone(&store),
            metadata_cache,
        )),
        store,
    ));
    let metrics = ExecutionPlanMetricsSet::new();
    let footers: Vec<FileToRead> = stream::iter(scan.files.iter().cloned())
        .map(|file| {
            let readers = Arc::clone(&readers);
            let metrics = metrics.clone();
            async move {
                let mut reader = readers.create_reader(0, file.clone(), None, &metrics)?;
                let metadata = reader.get_metadata(None).await?;
                Ok::<_, DataFusionError>(FileToRead { file, metadata })
            }
        })
        .buffered(CONCURRENT_FOOTERS)
        .try_collect()
        .await?;
    let pruning = match &scan.predicate {
        Some(predicate) => PruningPredicateBuilder::new()
            .with_file_schema(Arc::clone(&file_schema))
            .build(Arc::clone(predicate)),
        None => None,
    };
    let mut units = Vec::new();
    let mut row_groups_pruned = 0;
    for read in footers {
        let read = Arc::new(read);
        let groups = read.metadata.row_groups();
        let plan = match read.file.extensions.get::<ParquetRowSelection>() {
            Some(selection) => ParquetAccessPlan::try_new_from_overall_row_selection(
                selection.selection().clone(),
                groups,
            )?,
            None => ParquetAccessPlan::new_all(groups.len()),
        };
        let mut filter = RowGroupAccessPlanFilter::new(plan);
        if let Some(pruning) = &pruning {
            let arrow_schema = parquet::arrow::parquet_to_arrow_schema(
                read.metadata.file_metadata().schema_descr(),
                read.metadata.file_metadata().key_value_metadata(),
            )?;
            // The predicate is built on the table's columns; a file written before a column
            // was added or renamed (or by an engine that orders columns otherwise) is read
            // whole instead.
            let same_columns =
                file_schema.fields().len() == arrow_schema.fields().len()
                    && file_schema.fields().iter().zip(arrow_schema.fields()).all(
                        |(table, file)| {
                            table.name() == file.name() && physical_name(table) == file.name()
                        },
                    );
            if same_columns {
                let file_metrics =
                    ParquetFileMetrics::new(0, read.file.object_meta.location.as_ref(), &metrics);
                let before = filter.remaining_row_group_count();
                filter.prune_by_statistics(
                    &arrow_schema,
                    read.metadata.file_metadata().schema_descr(),
                    groups,
                    pruning,
                    &file_metrics,
                );
                row_groups_pruned += before - filter.remaining_row_group_count();
            }
        }
        for (row_group, access) in filter.build().into_inner().into_iter().enumerate() {
            let rows = groups[row_group].num_rows() as usize;
            let selection = match access {
                RowGroupAccess::Skip => continue,
                _ if rows == 0 => continue,
                RowGroupAccess::Scan => None,
                RowGroupAccess::Selection(selection) => Some(selection),
            };
            units.push(Unit {
                file: Arc::clone(&read),
                row_group,
                rows,
                selection,
            });
        }
    }
    if let Some(limit) = scan.limit {
        let mut rows = 0;
        let keep = units
            .iter()
            .position(|unit| {
                rows += unit.live_rows();
                rows >= limit
            })
            .map_or(units.len(), |last| last + 1);
        units.truncate(keep);
    }
    let bytes: u64 = scan.files.iter().map(|f| f.object_meta.size).sum();
    let n = if bytes <= SINGLE_PARTITION_BYTES {
        1
    } else {
        scan.partitions.clamp(1, units.len().max(1))
    };
    let partitions = split(units, n);
    let properties = PlanProperties::new(
        EquivalenceProperties::new(Arc::clone(&schema)),
        Partitioning::UnknownPartitioning(partitions.len()),
        EmissionType::Incremental,
        Boundedness::Bounded,
    )
    .with_scheduling_type(SchedulingType::Cooperative);
    Ok(Some(Arc::new(ColumnScanExec {
        schema,
        partitions,
        files: scan.files.len(),
        row_groups_pruned,
        cache,
        readers,
        runtime_filters: Vec::new(),
        properties: Arc::new(properties),
        metrics,
    })))
}

impl Unit {
    fn live_rows(&self) -> usize {
        self.selection
            .as_ref()
            .map_or(self.rows, RowSelection::row_count)
    }
}

/// Splits `units` into `n` contiguous runs of about equal rows (at least one run).
fn split(units: Vec<Unit>, n: usize) -> Vec<Vec<Unit>> {
    let total: usize = units.iter().map(|u| u.rows).sum::<usize>().max(1);
    let mut partitions: Vec<Vec<Unit>> = vec![Vec::new(); n.max(1)];
    let mut before = 0;
    for unit in units {
        let at = (before * n / total).min(n - 1);
        before += unit.rows;
        partitions[at].push(unit);
    }
    partitions.retain(|p| !p.is_empty());
    if partitions.is_empty() {
        partitions.push(Vec::new());
    }
    partitions
}

impl DisplayAs for ColumnScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let row_groups: usize = self.partitions.iter().map(Vec::len).sum();
        write!(
            f,
            "ColumnScanExec: files={}, row_groups={row_groups} ({} skipped by statistics), \
             partitions={}",
            self.files,
            self.row_groups_pruned,
            self.partitions.len()
        )?;
        if !self.runtime_filters.is_empty() {
            let filters: Vec<String> = self.runtime_filters.iter().map(|f| f.to_string()).collect();
            write!(f, ", runtime_filters=[{}]", filters.join(", "))?;
        }
        Ok(())
    }
}

/// What one partition's stream needs.
struct Reading {
    schema: SchemaRef,
    cache: Arc<ColumnCache>,
    readers: Arc<dyn ParquetFileReaderFactory>,
    metrics: ExecutionPlanMetricsSet,
    partition: usize,
    batch_size: usize,
    runtime_filters: Vec<Arc<dyn PhysicalExpr>>,
    filter_figures: Vec<FilterFigures>,
    chunks_cached: Count,
    chunks_decoded: Count,
    rows_filtered: Count,
}

impl ExecutionPlan for ColumnScanExec {
    fn name(&self) -> &str {
        "ColumnScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    /// Visits the runtime filters (a hash join computes its filter only when it finds it
    /// below itself).
    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for filter in &self.runtime_filters {
            if f(filter)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(TableError::Internal("ColumnScanExec has no children".into()).into())
        }
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    /// Takes the filters offered after planning (dynamic ones, whose value is set while the
    /// query runs) to apply while reading, and reports none as pushed down.
    fn handle_child_pushdown_result(
        &self,
        phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        let offered: Vec<Arc<dyn PhysicalExpr>> = child_pushdown_result
            .parent_filters
            .iter()
            .map(|f| Arc::clone(&f.filter))
            .collect();
        let unsupported = FilterPushdownPropagation::all_unsupported(child_pushdown_result);
        if phase != FilterPushdownPhase::Post || offered.is_empty() {
            return Ok(unsupported);
        }
        let mut runtime_filters = self.runtime_filters.clone();
        runtime_filters.extend(offered);
        let node = Self {
            schema: Arc::clone(&self.schema),
            partitions: self.partitions.clone(),
            files: self.files,
            row_groups_pruned: self.row_groups_pruned,
            cache: Arc::clone(&self.cache),
            readers: Arc::clone(&self.readers),
            runtime_filters,
            properties: Arc::clone(&self.properties),
            metrics: self.metrics.clone(),
        };
        Ok(unsupported.with_updated_node(Arc::new(node) as Arc<dyn ExecutionPlan>))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let units = self.partitions.get(partition).cloned().ok_or_else(|| {
            TableError::Internal(format!("ColumnScanExec has no partition {partition}"))
        })?;
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let reading = Arc::new(Reading {
            schema: Arc::clone(&self.schema),
            cache: Arc::clone(&self.cache),
            readers: Arc::clone(&self.readers),
            metrics: self.metrics.clone(),
            partition,
            batch_size: context.session_config().batch_size().max(1),
            runtime_filters: self.runtime_filters.clone(),
            filter_figures: self
                .runtime_filters
                .iter()
                .map(|_| FilterFigures::default())
                .collect(),
            chunks_cached: MetricBuilder::new(&self.metrics).counter("chunks_cached", partition),
            chunks_decoded: MetricBuilder::new(&self.metrics).counter("chunks_decoded", partition),
            rows_filtered: MetricBuilder::new(&self.metrics)
                .counter("rows_removed_by_runtime_filters", partition),
        });
        let batches = stream::iter(units)
            .then(move |unit| {
                let reading = Arc::clone(&reading);
                async move {
                    let batch = reading.filter(reading.read(&unit).await?)?;
                    let slices = slices(&batch, reading.batch_size);
                    Ok::<_, DataFusionError>(stream::iter(slices.into_iter().map(Ok)))
                }
            })
            .try_flatten()
            .inspect_ok(move |batch| baseline.record_output(batch.num_rows()));
        Ok(make_cooperative(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            batches,
        ))))
    }
}

/// What one runtime filter did in one partition.
#[derive(Default)]
struct FilterFigures {
    seen: AtomicUsize,
    kept: AtomicUsize,
}

impl FilterFigures {
    /// Rows a filter sees before it may be judged useless.
    const TRIAL_ROWS: usize = 100_000;

    fn record(&self, seen: usize, kept: usize) {
        self.seen.fetch_add(seen, Ordering::Relaxed);
        self.kept.fetch_add(kept, Ordering::Relaxed);
    }

    /// Whether the filter kept more than 90% of at least [`Self::TRIAL_ROWS`] rows.
    fn useless(&self) -> bool {
        let seen = self.seen.load(Ordering::Relaxed);
        seen >= Self::TRIAL_ROWS && self.kept.load(Ordering::Relaxed) * 10 > seen * 9
    }
}

/// `batch` cut into batches of at most `size` rows (views of it, nothing copied).
fn slices(batch: &RecordBatch, size: usize) -> Vec<RecordBatch> {
    (0..batch.num_rows())
        .step_by(size)
        .map(|offset| batch.slice(offset, size.min(batch.num_rows() - offset)))
        .collect()
}

impl Reading {
    /// `batch` without the rows a runtime filter rules out. A filter that has kept nearly
    /// every row it saw is dropped for the rest of the partition: its work would buy nothing
    /// (a hash join over a key every row has, say).
    fn filter(&self, mut batch: RecordBatch) -> Result<RecordBatch> {
        for (filter, figures) in self.runtime_filters.iter().zip(&self.filter_figures) {
            if batch.num_rows() == 0 {
                break;
            }
            if figures.useless() {
                continue;
            }
            let keep = match filter.evaluate(&batch)? {
                ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))) => continue,
                value => value.into_array(batch.num_rows())?,
            };
            let rows = batch.num_rows();
            batch = filter_record_batch(&batch, as_boolean_array(&keep)?)?;
            figures.record(rows, batch.num_rows());
            self.rows_filtered.add(rows - batch.num_rows());
        }
        Ok(batch)
    }

    /// The live rows of one row group, in the scan's columns.
    async fn read(&self, unit: &Unit) -> Result<RecordBatch> {
        let location = &unit.file.file.object_meta.location;
        let cacheable = self.cache.caches(location);
        let key = |field: &Field| ChunkKey {
            file: location.clone(),
            size: unit.file.file.object_meta.size,
            row_group: unit.row_group,
            column: physical_name(field).to_string(),
            data_type: field.data_type().clone(),
        };
        let mut columns: Vec<Option<ArrayRef>> = self
            .schema
            .fields()
            .iter()
            .map(|field| cacheable.then(|| self.cache.get(&key(field))).flatten())
            .collect();
        let missing: Vec<usize> = (0..columns.len())
            .filter(|&i| columns[i].is_none())
            .collect();
        self.chunks_cached.add(columns.len() - missing.len());
        if !missing.is_empty() {
            self.chunks_decoded.add(missing.len());
            let decoded = self.decode(unit, &missing).await?;
            for (i, array) in missing.into_iter().zip(decoded) {
                if cacheable {
                    self.cache
                        .insert(key(self.schema.field(i)), Arc::clone(&array));
                }
                columns[i] = Some(array);
            }
        }
        let columns: Vec<ArrayRef> = columns.into_iter().flatten().collect();
        let options = RecordBatchOptions::new().with_row_count(Some(unit.rows));
        let batch = RecordBatch::try_new_with_options(Arc::clone(&self.schema), columns, &options)?;
        match &unit.selection {
            Some(selection) => Ok(filter_record_batch(&batch, &mask(selection, unit.rows))?),
            None => Ok(batch),
        }
    }

    /// Decodes the scan's columns at `indices` for the whole row group, in the table's types;
    /// a column the file lacks (added to the table after the file was written) is all nulls.
    async fn decode(&self, unit: &Unit, indices: &[usize]) -> Result<Vec<ArrayRef>> {
        let location = &unit.file.file.object_meta.location;
        // Reading the footer's embedded Arrow schema panics on some damage.
        let metadata = guarded(async {
            ArrowReaderMetadata::try_new(Arc::clone(&unit.file.metadata), ArrowReaderOptions::new())
        })
        .await
        .map_err(|e| undecodable(location, unit.row_group, e))?;
        let file_schema = Arc::clone(metadata.schema());
        let roots: Vec<usize> = indices
            .iter()
            .filter_map(|&i| {
                file_schema
                    .index_of(physical_name(self.schema.field(i)))
                    .ok()
            })
            .collect();
        let decoded = if roots.is_empty() {
            None
        } else {
            // The stream builder takes the footer given here; it asks the reader for bytes only.
            let reader = WithPageIndex(self.readers.create_reader(
                self.partition,
                unit.file.file.clone(),
                None,
                &self.metrics,
            )?);
            let mask = ProjectionMask::roots(metadata.parquet_schema(), roots);
            let batches: Vec<RecordBatch> = guarded(async {
                ParquetRecordBatchStreamBuilder::new_with_metadata(reader, metadata)
                    .with_projection(mask)
                    .with_row_groups(vec![unit.row_group])
                    .with_batch_size(unit.rows.max(1))
                    .build()?
                    .try_collect()
                    .await
            })
            .await
            .map_err(|e| undecodable(location, unit.row_group, e))?;
            Some(match batches.as_slice() {
                [] => {
                    return Err(TableError::Corrupt(format!(
                        "row group {} of {} decoded to nothing",
                        unit.row_group, unit.file.file.object_meta.location
                    ))
                    .into());
                }
                [one] => one.clone(),
                [first, ..] => concat_batches(&first.schema(), &batches)?,
            })
        };
        indices
            .iter()
            .map(|&i| {
                let field = self.schema.field(i);
                match decoded
                    .as_ref()
                    .and_then(|b| b.column_by_name(physical_name(field)))
                {
                    Some(array) if array.data_type() == field.data_type() => Ok(Arc::clone(array)),
                    Some(array) => Ok(cast(array, field.data_type())?),
                    None if field.is_nullable() => {
                        Ok(arrow::array::new_null_array(field.data_type(), unit.rows))
                    }
                    None => Err(TableError::Corrupt(format!(
                        "data file {} has no column {} (NOT NULL)",
                        unit.file.file.object_meta.location,
                        field.name()
                    ))
                    .into()),
                }
            })
            .collect()
    }
}

/// A filter mask of `rows` rows with `selection`'s selected rows set.
fn mask(selection: &RowSelection, rows: usize) -> BooleanArray {
    let mut bits = BooleanBufferBuilder::new(rows);
    for selector in selection.iter() {
        bits.append_n(selector.row_count, !selector.skip);
    }
    if bits.len() < rows {
        bits.append_n(rows - bits.len(), false);
    }
    BooleanArray::new(bits.finish(), None)
}
