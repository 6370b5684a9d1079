//! [`DataFileWriter`]: one new data file of a table, with a segment for each of its indexes.
//!
//! Rows are encoded into an in-memory Parquet file while the key columns of every index are
//! kept aside; [`DataFileWriter::upload`] stores the data file, then one segment per index, and
//! returns the `add` action that names them all. Nothing is visible until a commit references
//! that action, so a failure part-way leaves only unreferenced objects.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::concat;
use datafusion::common::{DataFusionError, Result};
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::json;

use super::TableHandle;
use super::index::{
    IndexDef, KeyCodec, build_segment, segment_location, segment_path, table_indexes,
};
use crate::storage::parquet::{EncodedFile, ParquetFileWriter};
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
                let types = index.key_types(schema).map_err(DataFusionError::Plan)?;
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
        Ok(Self {
            parquet: ParquetFileWriter::try_new(Arc::clone(schema)).map_err(external)?,
            segments,
        })
    }

    /// Appends rows (already in the table's schema).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.parquet.write(batch).map_err(external)?;
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

pub(super) fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}
