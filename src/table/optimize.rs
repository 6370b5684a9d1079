//! `OPTIMIZE`: rewriting small files into bigger ones and purging deletion vectors.
//!
//! Files smaller than three quarters of the table's target size (table property
//! `delta.targetFileSize`, default 128 MiB), and every file with a deletion vector, are candidates. Candidates are
//! packed in log order into bins of up to the target size; a bin holding one file without a
//! deletion vector is left alone. Each bin's live rows are read (deletion vectors applied) and
//! written to new files of up to the target size, with segments for every index, and the
//! commit removes the old files and adds the new ones, all with `dataChange:false`.
//!
//! The rewrite reads a snapshot without blocking writers. Only the commit takes the table's
//! writer lock: it checks that the table's metadata is unchanged and drops every bin whose
//! files a concurrent statement changed meanwhile (a new deletion vector, a removal), then
//! commits the other bins on top of the newest snapshot; when no bin is left the statement
//! fails with a retryable conflict. Files written for dropped bins are orphans for VACUUM. The
//! log lets such a commit pass concurrent appends, and lets other writers pass it unless they
//! remove a file it removed.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::DataType;
use arrow::datatypes::UInt64Type;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;
use serde_json::json;

use super::TableHandle;
use super::datafile::{DataFileWriter, external};
use super::properties;
use super::scan::{ParquetScan, live_file, parquet_scan};
use super::zorder::{MAX_COLUMNS, SAMPLE_ROWS, ZOrder};
use crate::txlog::{Action, Add, FileStats, Operation, Remove, Snapshot, TxLogError};

/// Rows handed to a file writer at a time: the granularity at which files are cut.
const WRITE_SLICE_ROWS: usize = 1024;

/// What an OPTIMIZE did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptimizeReport {
    pub files_removed: usize,
    pub files_added: usize,
    pub bytes_removed: u64,
    pub bytes_added: u64,
    /// Rows dropped for good because a deletion vector marked them deleted.
    pub rows_purged: u64,
    /// Deletion vectors no longer referenced by the table.
    pub deletion_vectors_removed: usize,
    /// The version committed, if anything was rewritten.
    pub version: Option<i64>,
}

/// Groups the files worth rewriting into bins of up to `target` bytes and `max_files` files.
fn plan_bins(snapshot: &Snapshot, target: u64, max_files: usize) -> Vec<Vec<(&Add, &FileStats)>> {
    let small = target / 4 * 3;
    let mut bins: Vec<Vec<(&Add, &FileStats)>> = Vec::new();
    let mut current: Vec<(&Add, &FileStats)> = Vec::new();
    let mut current_size = 0u64;
    for (add, stats) in snapshot.files_with_stats() {
        let size = u64::try_from(add.size).unwrap_or_default();
        if size >= small && add.deletion_vector.is_none() {
            continue;
        }
        if !current.is_empty() && (current_size + size > target || current.len() >= max_files) {
            bins.push(std::mem::take(&mut current));
            current_size = 0;
        }
        current.push((add, stats));
        current_size += size;
    }
    bins.push(current);
    bins.retain(|bin| bin.len() > 1 || bin.iter().any(|(add, _)| add.deletion_vector.is_some()));
    bins
}

/// Runs OPTIMIZE on the table behind `handle`: bin-packing (bins of at most `max_bin_files`
/// files, when given), or with `zorder` columns, a rewrite of every live file in Z-order of
/// those columns.
pub async fn optimize(
    handle: &Arc<TableHandle>,
    zorder: &[String],
    max_bin_files: Option<usize>,
    store_url: ObjectStoreUrl,
    context: Arc<TaskContext>,
) -> Result<OptimizeReport> {
    let snapshot = handle.refresh().await.map_err(external)?;
    let target = properties::target_file_size(&snapshot).map_err(DataFusionError::Plan)?;
    let zorder_columns = zorder_columns(&snapshot, zorder)?;
    let bins = match zorder_columns {
        Some(_) => {
            let all: Vec<_> = snapshot.files_with_stats().collect();
            if all.is_empty() {
                Vec::new()
            } else {
                vec![all]
            }
        }
        None => plan_bins(
            &snapshot,
            target,
            max_bin_files.unwrap_or(usize::MAX).max(2),
        ),
    };
    if bins.is_empty() {
        return Ok(OptimizeReport::default());
    }
    let now = chrono::Utc::now().timestamp_millis();
    let mut removes = Vec::new();
    let mut adds = Vec::new();
    // Where each bin's removes and adds start.
    let mut starts: Vec<(usize, usize)> = Vec::with_capacity(bins.len());
    for bin in &bins {
        starts.push((removes.len(), adds.len()));
        let mut files = Vec::with_capacity(bin.len());
        let mut bin_bytes = 0u64;
        for (add, stats) in bin {
            files.push(live_file(handle, add, stats).await?);
            bin_bytes += u64::try_from(add.size).unwrap_or_default();
            removes.push(Remove {
                data_change: false,
                ..Remove::of(add, now)
            });
        }
        let scan = |files, projection| {
            parquet_scan(ParquetScan {
                runtime: context.runtime_env(),
                store_url: store_url.clone(),
                schema: Arc::clone(snapshot.schema()).into(),
                files,
                projection,
                predicate: None,
                limit: None,
                partitions: 1,
                rows: None,
            })
        };
        let mut output = Output {
            handle,
            snapshot: &snapshot,
            writer: DataFileWriter::try_new(&snapshot)?,
            prefix: None,
            adds: &mut adds,
        };
        let Some(columns) = &zorder_columns else {
            let mut rows = scan(files, None)?.execute(0, Arc::clone(&context))?;
            while let Some(batch) = rows.try_next().await? {
                output.write(&batch, target).await?;
            }
            output.close().await?;
            continue;
        };
        let live_rows: u64 = bin
            .iter()
            .map(|(add, stats)| {
                let records = stats.num_records.unwrap_or_default();
                records.saturating_sub(add.deleted_rows())
            })
            .sum();
        let live_bytes = bin_bytes as f64 * live_rows as f64
            / bin
                .iter()
                .map(|(_, stats)| stats.num_records.unwrap_or_default())
                .sum::<u64>()
                .max(1) as f64;
        let sample = sample_columns(
            scan(files.clone(), Some(columns.clone()))?,
            live_rows as usize,
            &context,
        )
        .await?;
        let types: Vec<DataType> = columns
            .iter()
            .map(|i| snapshot.schema().field(*i).data_type().clone())
            .collect();
        let zorder = Arc::new(ZOrder::from_samples(&types, &sample)?);
        // One file per Z-order key prefix, with as many prefix bits as it takes for files of
        // about the target size: files then cover aligned blocks of the curve, which keeps
        // every column's range per file narrow.
        let files_wanted = (live_bytes / target as f64).max(1.0);
        let prefix_bits = (files_wanted.log2().round() as u32).min(zorder.key_bits());
        let shift = zorder.key_bits() - prefix_bits;
        let mut rows = Arc::clone(&zorder)
            .sort(scan(files, None)?, columns)?
            .execute(0, Arc::clone(&context))?;
        while let Some(batch) = rows.try_next().await? {
            let width = batch.num_columns() - 1;
            let keys = batch.column(width).as_primitive::<UInt64Type>().clone();
            let batch = batch.project(&(0..width).collect::<Vec<_>>())?;
            let mut start = 0;
            while start < batch.num_rows() {
                let prefix = keys.value(start).checked_shr(shift).unwrap_or(0);
                let end = (start..batch.num_rows())
                    .find(|i| keys.value(*i).checked_shr(shift).unwrap_or(0) != prefix)
                    .unwrap_or(batch.num_rows());
                if output.prefix != Some(prefix) {
                    output.close().await?;
                    output.prefix = Some(prefix);
                }
                // A prefix holding far more than its share (skewed data) is still cut.
                output
                    .write(&batch.slice(start, end - start), 2 * target)
                    .await?;
                start = end;
            }
        }
        output.close().await?;
    }
    for add in &mut adds {
        add.data_change = false;
    }
    let _turn = handle.lock_for_write().await.map_err(external)?;
    let newest = handle.refresh().await.map_err(external)?;
    if newest.metadata() != snapshot.metadata() || newest.protocol() != snapshot.protocol() {
        return Err(conflict(
            handle,
            &newest,
            "the table's schema, properties or protocol changed during OPTIMIZE".into(),
        ));
    }
    // A bin whose files a concurrent statement changed is dropped (its new files stay orphans
    // for VACUUM); the other bins still commit.
    let bin_of = |index: usize, start: fn(&(usize, usize)) -> usize| {
        starts.partition_point(|s| start(s) <= index) - 1
    };
    let mut changed = vec![false; bins.len()];
    let mut first_change = None;
    for (i, remove) in removes.iter().enumerate() {
        if !still_live(&newest, remove) {
            changed[bin_of(i, |s| s.0)] = true;
            first_change.get_or_insert_with(|| remove.path.clone());
        }
    }
    if let Some(path) = first_change.filter(|_| changed.iter().all(|c| *c)) {
        return Err(conflict(
            handle,
            &newest,
            format!("a concurrent statement changed file {path} while OPTIMIZE rewrote it"),
        ));
    }
    let removes: Vec<Remove> = removes
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !changed[bin_of(*i, |s| s.0)])
        .map(|(_, r)| r)
        .collect();
    let adds: Vec<Add> = adds
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !changed[bin_of(*i, |s| s.1)])
        .map(|(_, a)| a)
        .collect();
    let report = OptimizeReport {
        files_removed: removes.len(),
        files_added: adds.len(),
        bytes_removed: removes
            .iter()
            .map(|r| u64::try_from(r.size.unwrap_or_default()).unwrap_or_default())
            .sum(),
        bytes_added: adds
            .iter()
            .map(|a| u64::try_from(a.size).unwrap_or_default())
            .sum(),
        rows_purged: removes
            .iter()
            .filter_map(|r| r.deletion_vector.as_ref())
            .map(|d| u64::try_from(d.cardinality).unwrap_or_default())
            .sum(),
        deletion_vectors_removed: removes
            .iter()
            .filter(|r| r.deletion_vector.is_some())
            .count(),
        version: None,
    };
    let operation = Operation {
        name: "OPTIMIZE".into(),
        parameters: HashMap::from([
            ("predicate".into(), json!([])),
            ("zOrderBy".into(), json!(zorder)),
        ]),
        metrics: HashMap::from([
            ("numRemovedFiles".into(), json!(report.files_removed)),
            ("numAddedFiles".into(), json!(report.files_added)),
            ("numRemovedBytes".into(), json!(report.bytes_removed)),
            ("numAddedBytes".into(), json!(report.bytes_added)),
            (
                "numDeletionVectorsRemoved".into(),
                json!(report.deletion_vectors_removed),
            ),
        ]),
        blind_append: false,
    };
    let actions: Vec<Action> = removes
        .into_iter()
        .map(Action::Remove)
        .chain(adds.into_iter().map(Action::Add))
        .collect();
    let committed = handle
        .commit(&newest, operation, actions)
        .await
        .map_err(external)?;
    Ok(OptimizeReport {
        version: Some(committed.version()),
        ..report
    })
}

/// The files being written by one OPTIMIZE bin.
struct Output<'a> {
    handle: &'a TableHandle,
    snapshot: &'a Snapshot,
    writer: DataFileWriter,
    /// The Z-order key prefix of the rows in `writer`.
    prefix: Option<u64>,
    adds: &'a mut Vec<Add>,
}

impl Output<'_> {
    /// Writes rows, starting a new file whenever the current one reaches `limit` bytes.
    async fn write(&mut self, batch: &RecordBatch, limit: u64) -> Result<()> {
        // Re-labelled with the table schema (a sort's output fields may differ in
        // nullability only); written in slices, so that a file closes near the limit.
        let batch =
            RecordBatch::try_new(Arc::clone(self.snapshot.schema()), batch.columns().to_vec())?;
        for start in (0..batch.num_rows()).step_by(WRITE_SLICE_ROWS) {
            let length = WRITE_SLICE_ROWS.min(batch.num_rows() - start);
            self.writer.write(&batch.slice(start, length))?;
            if self.writer.encoded_size() as u64 >= limit {
                self.close().await?;
            }
        }
        Ok(())
    }

    /// Stores the file being written, if it has rows.
    async fn close(&mut self) -> Result<()> {
        if self.writer.rows() > 0 {
            let full = std::mem::replace(&mut self.writer, DataFileWriter::try_new(self.snapshot)?);
            self.adds.push(full.upload(self.handle).await?);
        }
        Ok(())
    }
}

/// The positions of the ZORDER BY columns, checked; `None` without ZORDER BY.
fn zorder_columns(snapshot: &Snapshot, names: &[String]) -> Result<Option<Vec<usize>>> {
    if names.is_empty() {
        return Ok(None);
    }
    if names.len() > MAX_COLUMNS {
        return Err(DataFusionError::Plan(format!(
            "ZORDER BY takes at most {MAX_COLUMNS} columns"
        )));
    }
    let schema = snapshot.schema();
    let mut columns = Vec::with_capacity(names.len());
    for name in names {
        let index = schema.index_of(name).map_err(|_| {
            DataFusionError::Plan(format!(
                "ZORDER BY column '{name}' is not a column of the table"
            ))
        })?;
        if columns.contains(&index) {
            return Err(DataFusionError::Plan(format!(
                "ZORDER BY names column '{name}' twice"
            )));
        }
        columns.push(index);
    }
    Ok(Some(columns))
}

/// Up to about [`SAMPLE_ROWS`] of the `rows` rows of `plan`'s output, evenly spaced, as
/// arrays per column.
async fn sample_columns(
    plan: Arc<dyn ExecutionPlan>,
    rows: usize,
    context: &Arc<TaskContext>,
) -> Result<Vec<Vec<ArrayRef>>> {
    let stride = rows.div_ceil(SAMPLE_ROWS).max(1);
    let mut sample: Vec<Vec<ArrayRef>> = vec![Vec::new(); plan.schema().fields().len()];
    let mut seen = 0usize;
    let mut batches = plan.execute(0, Arc::clone(context))?;
    while let Some(batch) = batches.try_next().await? {
        let first = (stride - seen % stride) % stride;
        let picked = UInt32Array::from_iter_values(
            (first..batch.num_rows()).step_by(stride).map(|i| i as u32),
        );
        seen += batch.num_rows();
        for (column, values) in batch.columns().iter().zip(&mut sample) {
            values.push(take(column.as_ref(), &picked, None)?);
        }
    }
    Ok(sample)
}

/// True when `remove`'s file is still live in `newest` with the same deletion vector.
fn still_live(newest: &Snapshot, remove: &Remove) -> bool {
    newest.file(&remove.path).is_some_and(|live| {
        live.deletion_vector.as_ref().map(|d| d.unique_id())
            == remove.deletion_vector.as_ref().map(|d| d.unique_id())
    })
}

fn conflict(handle: &TableHandle, newest: &Snapshot, reason: String) -> DataFusionError {
    external(TxLogError::Conflict {
        table: handle.log().root().to_string(),
        version: newest.version() + 1,
        reason,
    })
}
