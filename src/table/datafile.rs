//! Writing new data files: [`DataFileWriter`] writes one file of a table, with a segment for
//! each of its indexes; [`DataFilesWriter`] splits rows by partition and rolls over to a new
//! file at a size limit.
//!
//! Rows are encoded into an in-memory Parquet file while the key columns of every index are
//! kept aside; [`DataFileWriter::upload`] stores the data file, then one segment per index, and
//! returns the `add` action that names them all. Nothing is visible until a commit references
//! that action, so a failure part-way leaves only unreferenced objects.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{concat, take_record_batch};
use arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::json;

use super::TableHandle;
use super::error::external;
use super::index::{
    IndexDef, KeyCodec, build_segment, segment_location, segment_path, table_indexes,
};
use super::partitioning::{Partitioner, tag_partition};
use crate::storage::parquet::{EncodedFile, ParquetFileWriter};
use crate::table::TableError;
use crate::txlog::{Add, Snapshot};

/// The key columns of one index, collected while the data file is written.
struct PendingSegment {
    index: IndexDef,
    codec: KeyCodec,
    /// Positions of the key columns in the table schema.
    columns: Vec<usize>,
    /// Per batch written, its key columns.
    keys: Vec<Vec<ArrayRef>>,
}

/// Writes one data file of a table and its index segments.
pub struct DataFileWriter {
    parquet: ParquetFileWriter,
    /// The columns under their physical names, when column mapping names them otherwise.
    file_schema: Option<SchemaRef>,
    segments: Vec<PendingSegment>,
}

impl DataFileWriter {
    /// A writer for a new data file of `snapshot`'s table, indexed by every index it declares.
    pub fn try_new(snapshot: &Snapshot) -> Result<Self> {
        let schema = snapshot.schema();
        let segments = table_indexes(snapshot)
            .map_err(external)?
            .into_iter()
            .map(|index| {
                let types = index.key_types(schema).map_err(TableError::Corrupt)?;
                let columns = index
                    .columns
                    .iter()
                    .map(|c| schema.index_of(c))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(PendingSegment {
                    codec: KeyCodec::new(&types)?,
                    index,
                    columns,
                    keys: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let file_schema = snapshot.file_schema();
        Ok(Self {
            parquet: ParquetFileWriter::try_new(Arc::clone(file_schema)).map_err(external)?,
            file_schema: (!Arc::ptr_eq(file_schema, schema)).then(|| Arc::clone(file_schema)),
            segments,
        })
    }

    /// Appends rows (already in the table's schema).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match &self.file_schema {
            Some(physical) => {
                let renamed = RecordBatch::try_new(Arc::clone(physical), batch.columns().to_vec())?;
                self.parquet.write(&renamed).map_err(external)?;
            }
            None => self.parquet.write(batch).map_err(external)?,
        }
        for segment in &mut self.segments {
            segment.keys.push(
                segment
                    .columns
                    .iter()
                    .map(|i| Arc::clone(batch.column(*i)))
                    .collect(),
            );
        }
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.parquet.rows()
    }

    /// Approximate encoded size so far, for rolling over to a new file.
    pub fn encoded_size(&self) -> usize {
        self.parquet.encoded_size()
    }

    /// Stores the data file and its segments; returns the `add` action naming them.
    pub async fn upload(self, handle: &TableHandle) -> Result<Add> {
        let mut add = upload_data_file(handle, self.parquet.finish().map_err(external)?).await?;
        for segment in self.segments {
            let width = segment.columns.len();
            let keys = (0..width)
                .map(|c| {
                    let parts: Vec<&dyn arrow::array::Array> =
                        segment.keys.iter().map(|batch| batch[c].as_ref()).collect();
                    concat(&parts)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let path = upload_segment(handle, &segment.index, &segment.codec, &keys).await?;
            segment.index.tag_segment(&mut add, &path);
        }
        Ok(add)
    }
}

/// Rows handed to a file writer at a time: the granularity at which files are cut.
const WRITE_SLICE_ROWS: usize = 1024;

/// Writes rows of a table into new data files: one open file per partition the rows fall in
/// (one in all for an unpartitioned table), each stored once it reaches the size limit.
pub struct DataFilesWriter {
    snapshot: Arc<Snapshot>,
    partitioner: Option<Partitioner>,
    /// Encoded bytes at which a file is stored and the next one started.
    limit: usize,
    /// The file being written per partition (`None`: the table is not partitioned).
    open: BTreeMap<Option<u32>, DataFileWriter>,
    stored: Vec<Add>,
    rows: u64,
    /// Whether two files were ever open at once, so that stored files hold rows out of the
    /// order they were written in.
    interleaved: bool,
}

impl DataFilesWriter {
    pub fn try_new(snapshot: Arc<Snapshot>, limit: usize) -> Result<Self> {
        Ok(Self {
            partitioner: Partitioner::of(&snapshot)?,
            snapshot,
            limit,
            open: BTreeMap::new(),
            stored: Vec::new(),
            rows: 0,
            interleaved: false,
        })
    }

    /// Appends rows (already in the table's schema), storing every file that fills up.
    pub async fn write(&mut self, handle: &TableHandle, batch: &RecordBatch) -> Result<()> {
        let assigned = match &self.partitioner {
            Some(partitioner) => partitioner.assign(batch)?,
            None => None,
        };
        self.rows += batch.num_rows() as u64;
        let Some(partitions) = assigned else {
            return self.write_to(handle, None, batch).await;
        };
        let mut rows: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (row, partition) in partitions.values().iter().enumerate() {
            rows.entry(*partition).or_default().push(row as u32);
        }
        if rows.len() == 1 {
            let partition = *partitions.values().first().unwrap_or(&0);
            return self.write_to(handle, Some(partition), batch).await;
        }
        for (partition, rows) in rows {
            let part = take_record_batch(batch, &UInt32Array::from(rows))?;
            self.write_to(handle, Some(partition), &part).await?;
        }
        Ok(())
    }

    async fn write_to(
        &mut self,
        handle: &TableHandle,
        partition: Option<u32>,
        batch: &RecordBatch,
    ) -> Result<()> {
        for start in (0..batch.num_rows()).step_by(WRITE_SLICE_ROWS) {
            let length = WRITE_SLICE_ROWS.min(batch.num_rows() - start);
            let writer = match self.open.get_mut(&partition) {
                Some(writer) => writer,
                None => {
                    self.interleaved |= !self.open.is_empty();
                    self.open
                        .entry(partition)
                        .or_insert(DataFileWriter::try_new(&self.snapshot)?)
                }
            };
            writer.write(&batch.slice(start, length))?;
            if writer.encoded_size() >= self.limit {
                self.store(handle, partition).await?;
            }
        }
        Ok(())
    }

    async fn store(&mut self, handle: &TableHandle, partition: Option<u32>) -> Result<()> {
        let Some(writer) = self.open.remove(&partition) else {
            return Ok(());
        };
        if writer.rows() == 0 {
            return Ok(());
        }
        let mut add = writer.upload(handle).await?;
        if let Some(id) = partition {
            tag_partition(&mut add, id);
        }
        self.stored.push(add);
        Ok(())
    }

    /// Stores every file being written, so that later rows start new files.
    pub async fn flush(&mut self, handle: &TableHandle) -> Result<()> {
        let open: Vec<Option<u32>> = self.open.keys().copied().collect();
        for partition in open {
            self.store(handle, partition).await?;
        }
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// True when the files stored, in the order of [`DataFilesWriter::finish`]'s result, hold
    /// the rows in the order they were written: no two files were ever open at once.
    pub fn in_order(&self) -> bool {
        !self.interleaved
    }

    /// Stores the files still open; returns the `add` actions of every file written.
    pub async fn finish(mut self, handle: &TableHandle) -> Result<Vec<Add>> {
        self.flush(handle).await?;
        Ok(self.stored)
    }
}

/// Builds and stores the segment of `index` for a data file with key columns `keys`; returns
/// its path relative to the table root.
pub async fn upload_segment(
    handle: &TableHandle,
    index: &IndexDef,
    codec: &KeyCodec,
    keys: &[ArrayRef],
) -> Result<String> {
    let bytes = build_segment(index, codec, keys)?;
    let path = segment_path(index);
    let location = segment_location(handle.log().root(), &path)?;
    handle
        .log()
        .store()
        .put(&location, PutPayload::from(bytes))
        .await?;
    Ok(path)
}

/// Stores an encoded data file in the table folder and describes it as an `add` action.
async fn upload_data_file(handle: &TableHandle, file: EncodedFile) -> Result<Add> {
    let name = format!("part-00000-{}-c000.snappy.parquet", uuid::Uuid::new_v4());
    let path = handle.log().root().clone().join(name.as_str());
    let size = file.bytes.len() as i64;
    handle
        .log()
        .store()
        .put(&path, PutPayload::from(file.bytes))
        .await?;
    let stats = json!({
        "numRecords": file.stats.num_records,
        "minValues": file.stats.min_values,
        "maxValues": file.stats.max_values,
        "nullCount": file.stats.null_count,
    });
    Ok(Add {
        path: name,
        partition_values: HashMap::new(),
        size,
        modification_time: chrono::Utc::now().timestamp_millis(),
        data_change: true,
        stats: Some(stats.to_string()),
        tags: None,
        deletion_vector: None,
    })
}
