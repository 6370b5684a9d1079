//! `OPTIMIZE`: rewriting small files into bigger ones and purging deletion vectors.
//!
//! Files smaller than three quarters of the table's target size (table property
//! `delta.targetFileSize`, default 128 MiB), and every file with a deletion vector, are candidates. Candidates are
//! packed in log order into bins of up to the target size; a bin holding one file without a
//! deletion vector is left alone. Each bin's live rows are read (deletion vectors applied) and
//! written to new files of up to the target size, with segments for every index, and the
//! commit removes the old files and adds the new ones, all with `dataChange:false`.
//!
//! In a partitioned table a bin never mixes partitions, and rows are written back to files of
//! their own partition (a file another engine appended, without a partition, is split). A
//! table with automatic range partitions (`PARTITION BY RANGE (c)` without bounds) is instead
//! rewritten whole, sorted by `c`, whenever it has files worth compacting.
//!
//! The rewrite reads a snapshot without blocking writers. Only the commit takes the table's
//! writer lock: it checks that the table's metadata is unchanged, then rebases every bin whose
//! files a concurrent statement changed meanwhile (a new deletion vector, a removal) onto the
//! newest snapshot: the rows that statement deleted are marked deleted in the bin's new files
//! too, by deletion vectors of their own, so a table under steady DELETE and UPDATE traffic
//! still gets compacted. A bin that cannot be rebased (Z-ordered or split by partition, so its
//! rows were reordered; a table without deletion vectors) is dropped, its new files orphans
//! for VACUUM, and the other bins still commit; when no bin is left the statement fails with a
//! retryable conflict. The log lets such a commit pass concurrent appends, and lets other
//! writers pass it unless they remove a file it removed.

use std::collections::{BTreeMap, HashMap, HashSet};
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
use roaring::RoaringTreemap;
use serde_json::json;

use super::TableHandle;
use super::damage::execute_naming_damage;
use super::datafile::DataFilesWriter;
use super::error::external;
use super::mutation::{deletion_vectors_enabled, loose_stats};
use super::partitioning::{Partitioner, partition_of};
use super::properties;
use super::scan::{ParquetScan, live_file, parquet_scan};
use super::zorder::{MAX_COLUMNS, SAMPLE_ROWS, ZOrder};
use crate::table::TableError;
use crate::txlog::{
    Action, Add, FileStats, Operation, Remove, Snapshot, TxLogError, write_deletion_vector,
};

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

/// Files to rewrite together.
type Bin<'a> = Vec<(&'a Add, &'a FileStats)>;

/// Groups the files worth rewriting into bins of up to `target` bytes and `max_files` files;
/// a bin never mixes partitions. With `split_untagged`, files without a partition (appended by
/// another engine to a partitioned table) are always rewritten.
fn plan_bins(
    snapshot: &Snapshot,
    target: u64,
    max_files: usize,
    split_untagged: bool,
) -> Vec<Bin<'_>> {
    let small = target / 4 * 3;
    let must_rewrite = |add: &Add| {
        add.deletion_vector.is_some() || (split_untagged && partition_of(add).is_none())
    };
    let mut bins: Vec<Bin> = Vec::new();
    // Per partition, the bin being filled and its size.
    let mut filling: BTreeMap<Option<u32>, (Bin, u64)> = BTreeMap::new();
    for (add, stats) in snapshot.files_with_stats() {
        let size = u64::try_from(add.size).unwrap_or_default();
        if size >= small && !must_rewrite(add) {
            continue;
        }
        let (current, current_size) = filling.entry(partition_of(add)).or_default();
        if !current.is_empty() && (*current_size + size > target || current.len() >= max_files) {
            bins.push(std::mem::take(current));
            *current_size = 0;
        }
        current.push((add, stats));
        *current_size += size;
    }
    bins.extend(filling.into_values().map(|(bin, _)| bin));
    bins.retain(|bin| bin.len() > 1 || bin.iter().any(|(add, _)| must_rewrite(add)));
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
    let target = properties::target_file_size(&snapshot).map_err(TableError::Corrupt)?;
    // A table with automatic range partitions is sorted by its partition column as a whole,
    // when there is anything to compact, so that its files cover disjoint ranges.
    let partitioner = Partitioner::of(&snapshot)?;
    let automatic_ranges = partitioner
        .as_ref()
        .and_then(Partitioner::automatic_ranges)
        .filter(|_| zorder.is_empty());
    let split_untagged = partitioner.is_some_and(|p| p.automatic_ranges().is_none());
    let zorder_columns = match automatic_ranges {
        Some(column) => Some(vec![column]),
        None => zorder_columns(&snapshot, zorder)?,
    };
    let bins = match (&zorder_columns, automatic_ranges) {
        (None, _) => plan_bins(
            &snapshot,
            target,
            max_bin_files.unwrap_or(usize::MAX).max(2),
            split_untagged,
        ),
        (Some(_), Some(_)) if plan_bins(&snapshot, target, usize::MAX, false).is_empty() => {
            Vec::new()
        }
        (Some(_), _) => vec![snapshot.files_with_stats().collect::<Vec<_>>()],
    };
    if bins.iter().all(Vec::is_empty) {
        return Ok(OptimizeReport::default());
    }
    let now = chrono::Utc::now().timestamp_millis();
    let mut rewrites: Vec<Rewrite> = Vec::with_capacity(bins.len());
    for bin in &bins {
        let mut files = Vec::with_capacity(bin.len());
        let mut bin_bytes = 0u64;
        let mut removes = Vec::with_capacity(bin.len());
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
        let Some(columns) = &zorder_columns else {
            // File by file, so that the rows each file gave are known.
            let mut output = Output::try_new(handle, &snapshot, target)?;
            let mut read = Vec::with_capacity(files.len());
            for file in files {
                let before = output.files.rows();
                let mut rows =
                    execute_naming_damage(&scan(vec![file], None)?, 0, Arc::clone(&context))?;
                while let Some(batch) = rows.try_next().await? {
                    output.write(&batch).await?;
                }
                read.push(output.files.rows() - before);
            }
            let in_order = output.files.in_order();
            rewrites.push(Rewrite {
                removes,
                adds: output.finish().await?,
                read: in_order.then_some(read),
            });
            continue;
        };
        // A prefix holding far more than its share (skewed data) is still cut.
        let mut output = Output::try_new(handle, &snapshot, 2 * target)?;
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
                    output.files.flush(handle).await?;
                    output.prefix = Some(prefix);
                }
                output.write(&batch.slice(start, end - start)).await?;
                start = end;
            }
        }
        rewrites.push(Rewrite {
            removes,
            adds: output.finish().await?,
            read: None,
        });
    }
    for add in rewrites.iter_mut().flat_map(|r| &mut r.adds) {
        add.data_change = false;
    }
    let _turn = handle.lock_for_write().await.map_err(external)?;
    let newest = handle.refresh().await.map_err(external)?;
    // New ANALYZE figures change nothing OPTIMIZE relies on.
    if !newest
        .metadata()
        .same_apart_from_statistics(snapshot.metadata())
        || newest.protocol() != snapshot.protocol()
    {
        return Err(conflict(
            handle,
            &newest,
            "the table's schema, properties or protocol changed during OPTIMIZE".into(),
        ));
    }
    // A bin whose files a concurrent statement changed carries those changes over to its new
    // files, or when it cannot, is dropped (its new files stay orphans for VACUUM); the other
    // bins still commit.
    let mut removes = Vec::new();
    let mut adds = Vec::new();
    let mut rows_purged = 0u64;
    let mut first_change = None;
    for (bin, rewrite) in bins.iter().zip(rewrites) {
        let changed = rewrite.removes.iter().find(|r| !still_live(&newest, r));
        let (bin_removes, bin_adds) = match changed {
            None => (rewrite.removes, rewrite.adds),
            Some(remove) => {
                first_change.get_or_insert_with(|| remove.path.clone());
                match rebase(handle, &newest, bin, rewrite, now).await? {
                    Some(rebased) => rebased,
                    None => continue,
                }
            }
        };
        // The rows a file's deletion vector marked when OPTIMIZE read it are gone for good,
        // unless a concurrent statement removed the file first.
        let removed: HashSet<&str> = bin_removes.iter().map(|r| r.path.as_str()).collect();
        rows_purged += bin
            .iter()
            .filter(|(add, _)| removed.contains(add.path.as_str()))
            .map(|(add, _)| add.deleted_rows())
            .sum::<u64>();
        removes.extend(bin_removes);
        adds.extend(bin_adds);
    }
    if removes.is_empty() {
        let path = first_change.unwrap_or_default();
        return Err(conflict(
            handle,
            &newest,
            format!("a concurrent statement changed file {path} while OPTIMIZE rewrote it"),
        ));
    }
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
        rows_purged,
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

/// One bin, rewritten: the removes of its files and the adds of its new files.
struct Rewrite {
    removes: Vec<Remove>,
    adds: Vec<Add>,
    /// Per file of the bin, the live rows read from it, when the new files hold those rows in
    /// the bin's order (a Z-order sort or a split by partition does not keep it).
    read: Option<Vec<u64>>,
}

/// Carries over to a bin's new files what statements committed since OPTIMIZE read the bin did
/// to its files: rows a new deletion vector marks, or every row of a file removed since, are
/// marked deleted in the new files (by deletion vectors of their own; a new file left with no
/// row is not added), and the bin removes its files as they are now. `None` when that cannot
/// be done, and the bin is dropped: the new files' row order is unknown, the table does not
/// take deletion vectors, or a file's new deletion vector lacks rows its old one marked.
async fn rebase(
    handle: &TableHandle,
    newest: &Snapshot,
    bin: &Bin<'_>,
    rewrite: Rewrite,
    now: i64,
) -> Result<Option<(Vec<Remove>, Vec<Add>)>> {
    let Some(read) = rewrite.read else {
        return Ok(None);
    };
    if !deletion_vectors_enabled(newest).is_empty() {
        return Ok(None);
    }
    // Positions in the bin's output: the live rows of its files, one file after the other.
    let mut gone = RoaringTreemap::new();
    let mut removes = Vec::with_capacity(bin.len());
    let mut start = 0u64;
    for (((add, _), remove), rows) in bin.iter().zip(rewrite.removes).zip(read) {
        match newest.file(&add.path) {
            Some(_) if still_live(newest, &remove) => removes.push(remove),
            Some(current) => {
                let before = handle.deletion_vector(add).await?.unwrap_or_default();
                let Some(after) = handle.deletion_vector(current).await? else {
                    return Ok(None);
                };
                let Some(positions) = newly_deleted(&before, &after, rows) else {
                    return Ok(None);
                };
                gone.extend(positions.iter().map(|p| start + p));
                removes.push(Remove {
                    data_change: false,
                    ..Remove::of(current, now)
                });
            }
            None => {
                gone.insert_range(start..start + rows);
            }
        }
        start += rows;
    }
    let Some(file_rows) = rewrite
        .adds
        .iter()
        .map(|add| FileStats::of(add).num_records)
        .collect::<Option<Vec<u64>>>()
        .filter(|rows| rows.iter().sum::<u64>() == start)
    else {
        return Ok(None);
    };
    let store = handle.log().store();
    let mut adds = Vec::with_capacity(rewrite.adds.len());
    for ((add, rows), deleted) in rewrite
        .adds
        .into_iter()
        .zip(&file_rows)
        .zip(split_positions(&gone, &file_rows))
    {
        if deleted.is_empty() {
            adds.push(add);
        } else if deleted.len() < *rows {
            let (descriptor, _) =
                write_deletion_vector(store.as_ref(), handle.log().root(), &deleted)
                    .await
                    .map_err(external)?;
            adds.push(Add {
                stats: Some(loose_stats(add.stats.as_deref(), *rows)),
                deletion_vector: Some(descriptor),
                ..add
            });
        }
    }
    Ok(Some((removes, adds)))
}

/// The rows `after` marks deleted that `before` did not, numbered among the `rows` rows that
/// `before` left live (their positions in a rewrite of the file); `None` when `after` lacks a
/// row of `before` or names a row past the file.
fn newly_deleted(
    before: &RoaringTreemap,
    after: &RoaringTreemap,
    rows: u64,
) -> Option<RoaringTreemap> {
    if !after.is_superset(before) {
        return None;
    }
    let mut positions = RoaringTreemap::new();
    for row in after.iter().filter(|row| !before.contains(*row)) {
        // `row` is not in `before`, so `rank` counts the deleted rows ahead of it.
        let live = row - before.rank(row);
        if live >= rows {
            return None;
        }
        positions.insert(live);
    }
    Some(positions)
}

/// `positions` in a sequence of files of `file_rows` rows each, split into each file's own.
fn split_positions(positions: &RoaringTreemap, file_rows: &[u64]) -> Vec<RoaringTreemap> {
    let mut start = 0u64;
    file_rows
        .iter()
        .map(|rows| {
            let end = start + rows;
            let mine = positions
                .iter()
                .skip_while(|p| *p < start)
                .take_while(|p| *p < end)
                .map(|p| p - start)
                .collect();
            start = end;
            mine
        })
        .collect()
}

/// The files being written by one OPTIMIZE bin.
struct Output<'a> {
    handle: &'a TableHandle,
    snapshot: &'a Arc<Snapshot>,
    files: DataFilesWriter,
    /// The Z-order key prefix of the rows being written.
    prefix: Option<u64>,
}

impl<'a> Output<'a> {
    /// Files of up to `limit` bytes.
    fn try_new(handle: &'a TableHandle, snapshot: &'a Arc<Snapshot>, limit: u64) -> Result<Self> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(Self {
            handle,
            snapshot,
            files: DataFilesWriter::try_new(Arc::clone(snapshot), limit)?,
            prefix: None,
        })
    }

    async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        // Re-labelled with the table schema (a sort's output fields may differ in nullability
        // only).
        let batch =
            RecordBatch::try_new(Arc::clone(self.snapshot.schema()), batch.columns().to_vec())?;
        self.files.write(self.handle, &batch).await
    }

    /// Stores the files still open; the `add` actions of every file written.
    async fn finish(self) -> Result<Vec<Add>> {
        self.files.finish(self.handle).await
    }
}

/// The positions of the ZORDER BY columns, checked; `None` without ZORDER BY.
fn zorder_columns(snapshot: &Snapshot, names: &[String]) -> Result<Option<Vec<usize>>> {
    if names.is_empty() {
        return Ok(None);
    }
    if names.len() > MAX_COLUMNS {
        return Err(
            TableError::Invalid(format!("ZORDER BY takes at most {MAX_COLUMNS} columns")).into(),
        );
    }
    let schema = snapshot.schema();
    let mut columns = Vec::with_capacity(names.len());
    for name in names {
        let index = schema.index_of(name).map_err(|_| {
            TableError::Invalid(format!(
                "ZORDER BY column '{name}' is not a column of the table"
            ))
        })?;
        if columns.contains(&index) {
            return Err(
                TableError::Invalid(format!("ZORDER BY names column '{name}' twice")).into(),
            );
        }
        if schema.field(index).data_type().is_nested() {
            return Err(TableError::Invalid(format!(
                "ZORDER BY column '{name}' holds lists, structs or maps; Z-order clusters \
                 single values (file statistics, which skipping reads, cover those only)"
            ))
            .into());
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
    let mut batches = execute_naming_damage(&plan, 0, Arc::clone(context))?;
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
        table: handle.log().table_name(),
        version: newest.version() + 1,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(values: &[u64]) -> RoaringTreemap {
        values.iter().copied().collect()
    }

    #[test]
    fn newly_deleted_rows_are_numbered_among_the_rows_left_live() {
        // Rows 1 and 4 of 8 were deleted when the file was read: rows 0, 2, 3, 5, 6, 7 went
        // out as positions 0..6.
        let before = rows(&[1, 4]);
        let after = rows(&[1, 2, 4, 7]);
        assert_eq!(newly_deleted(&before, &after, 6), Some(rows(&[1, 5])));
        assert_eq!(newly_deleted(&before, &before, 6), Some(rows(&[])));
        assert_eq!(
            newly_deleted(&rows(&[]), &rows(&[0, 3]), 8),
            Some(rows(&[0, 3]))
        );
    }

    #[test]
    fn a_vector_that_forgot_rows_or_names_rows_past_the_file_is_refused() {
        assert_eq!(newly_deleted(&rows(&[1, 4]), &rows(&[1, 5]), 6), None);
        assert_eq!(newly_deleted(&rows(&[1]), &rows(&[1, 9]), 6), None);
    }

    #[test]
    fn positions_split_by_file() {
        let split = split_positions(&rows(&[0, 2, 3, 9, 10, 14]), &[3, 7, 5]);
        assert_eq!(split, vec![rows(&[0, 2]), rows(&[0, 6]), rows(&[0, 4])]);
        assert_eq!(
            split_positions(&rows(&[]), &[2, 2]),
            vec![rows(&[]), rows(&[])]
        );
    }
}
