//! Index segments: writing one per data file, and looking keys up in them through a cache.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array, UInt64Array};
use arrow::compute::{concat_batches, take};
use arrow::datatypes::{DataType, Field, Schema, UInt64Type};
use arrow::row::{OwnedRow, Rows};
use bytes::Bytes;
use datafusion::common::Result;
use futures::TryStreamExt;
use futures::future::BoxFuture;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::properties::WriterProperties;
use roaring::RoaringTreemap;

use super::{IndexDef, KeyCodec, LEAF_ROWS, Probe};
use crate::storage::parquet::read_footer;
use crate::storage::{Tier, TierReport, lock};
use crate::table::TableError;
use crate::table::error::external;

/// Folder, under the table root, holding the segments of every index.
const INDEX_FOLDER: &str = "_minidb_index";

/// Name of the segment column holding each entry's row position in the data file.
const POSITION_COLUMN: &str = "__minidb_row";

/// Where a new segment of `index` goes, relative to the table root.
pub fn segment_path(index: &IndexDef) -> String {
    format!(
        "{INDEX_FOLDER}/{}/{}.parquet",
        index.id,
        uuid::Uuid::new_v4()
    )
}

/// Where the segment a tag names (`segment`, relative to the table) is in the store.
pub fn segment_location(table_root: &Path, segment: &str) -> Result<Path> {
    Path::parse(format!("{table_root}/{segment}"))
        .map_err(|e| TableError::Corrupt(format!("index segment path: {e}")).into())
}

/// Encodes the segment of a data file whose key columns (all rows, in file order) are `keys`:
/// every entry's key and position, sorted by key and then position.
pub fn build_segment(index: &IndexDef, codec: &KeyCodec, keys: &[ArrayRef]) -> Result<Bytes> {
    let rows = codec.keys().convert_columns(keys)?;
    let count = u32::try_from(rows.num_rows()).map_err(|_| {
        TableError::NotSupported("indexing a data file of more than 2^32 rows".into())
    })?;
    let mut order: Vec<u32> = (0..count).collect();
    // A stable sort keeps equal keys in position order.
    order.sort_by(|a, b| rows.row(*a as usize).cmp(&rows.row(*b as usize)));
    let order = UInt32Array::from(order);
    let mut fields: Vec<Field> = index
        .columns
        .iter()
        .zip(keys)
        .map(|(name, array)| Field::new(name, array.data_type().clone(), true))
        .collect();
    fields.push(Field::new(POSITION_COLUMN, DataType::UInt64, false));
    let mut columns = keys
        .iter()
        .map(|array| take(array.as_ref(), &order, None))
        .collect::<Result<Vec<_>, _>>()?;
    columns.push(Arc::new(UInt64Array::from_iter_values(
        order.values().iter().map(|p| u64::from(*p)),
    )));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(LEAF_ROWS))
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties))?;
    writer.write(&batch)?;
    Ok(Bytes::from(writer.into_inner()?))
}

/// An open segment: where it is, its footer, and each leaf's smallest first-column value.
#[derive(Debug)]
struct Segment {
    path: Path,
    metadata: ArrowReaderMetadata,
    /// Row format of each leaf's smallest first key column value; `None` when unknown. Leaves
    /// are in key order, so leaf `g` holds values between its fence and the next one.
    fences: Vec<Option<OwnedRow>>,
}

impl Segment {
    /// Memory the segment holds: its footer and fences.
    fn bytes(&self) -> usize {
        let fences: usize = self
            .fences
            .iter()
            .map(|f| {
                size_of::<Option<OwnedRow>>() + f.as_ref().map_or(0, |r| r.row().as_ref().len())
            })
            .sum();
        self.metadata.metadata().memory_size() + fences
    }

    /// The leaves that may hold keys of `probe`.
    fn leaves_for<'a>(&'a self, probe: &'a Probe) -> impl Iterator<Item = usize> + 'a {
        let fence = |g: usize| self.fences.get(g).and_then(|f| f.as_ref().map(|r| r.row()));
        (0..self.fences.len()).filter(move |g| {
            let low = fence(*g);
            let high = fence(*g + 1);
            probe.may_overlap(
                low.as_ref().map(|r| r.as_ref()),
                high.as_ref().map(|r| r.as_ref()),
            )
        })
    }
}

/// Byte ranges of one object, for Parquet's async reader (the footer is already decoded).
struct ObjectRanges {
    store: Arc<dyn ObjectStore>,
    path: Path,
    footer: Arc<ParquetMetaData>,
}

impl AsyncFileReader for ObjectRanges {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        Box::pin(async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        })
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        let footer = Arc::clone(&self.footer);
        Box::pin(async move { Ok(footer) })
    }
}

/// One decoded leaf: sorted keys in row format, and their row positions.
#[derive(Debug)]
struct Leaf {
    keys: Rows,
    positions: Vec<u64>,
}

impl Leaf {
    fn bytes(&self) -> usize {
        self.keys.size() + self.positions.len() * 8
    }
}

/// What a lookup found in one segment.
#[derive(Debug)]
pub enum Lookup {
    /// The row positions whose keys match (deleted rows included).
    Positions(RoaringTreemap),
    /// The probes cover too much of the segment for a lookup to beat reading the file.
    TooWide,
}

/// Names a cached segment footer, or one decoded leaf (row group) of a segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum EntryKey {
    Segment(Path),
    Leaf(Path, usize),
}

#[derive(Debug, Clone)]
enum Entry {
    Segment(Arc<Segment>),
    Leaf(Arc<Leaf>),
}

/// Open segments and decoded leaves of every table's indexes, within one byte budget for the
/// whole server, least recently used evicted first. Segments never change once written (each
/// has a fresh name), so an entry cannot be stale; those of segments a commit removed are never
/// asked for again and age out.
///
/// `sys.cache` shows it as the tier `index`.
pub struct IndexCache {
    entries: Mutex<Tier<EntryKey, Entry>>,
}

impl fmt::Debug for IndexCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexCache")
            .field("tier", &self.report())
            .finish()
    }
}

impl IndexCache {
    /// A cache holding at most `capacity` bytes of footers and leaves (none when 0).
    pub fn new(capacity: u64) -> Self {
        Self {
            entries: Mutex::new(Tier::new("index", capacity)),
        }
    }

    /// The cache's figures, for `sys.cache`.
    pub fn report(&self) -> TierReport {
        lock(&self.entries).report(None)
    }

    fn find(&self, key: &EntryKey) -> Option<Entry> {
        lock(&self.entries).lookup(key)
    }

    fn keep(&self, key: EntryKey, entry: Entry, bytes: usize) {
        // Dropped entries are freed after the lock is released.
        let _dropped = lock(&self.entries).insert(key, entry, bytes as u64);
    }

    /// Looks `probes` up in the segment at `path` (relative to the store root). With
    /// `max_share` set, gives up ([`Lookup::TooWide`]) when the probes need more than that
    /// share of the segment's leaves (and more than a handful).
    pub async fn lookup(
        &self,
        store: &Arc<dyn ObjectStore>,
        path: &Path,
        codec: &KeyCodec,
        probes: &[Probe],
        max_share: Option<f64>,
    ) -> Result<Lookup> {
        let segment = self.segment(store, path, codec).await?;
        let leaves: BTreeSet<usize> = probes.iter().flat_map(|p| segment.leaves_for(p)).collect();
        if let Some(share) = max_share
            && leaves.len() > 4
            && leaves.len() as f64 > share * segment.fences.len() as f64
        {
            return Ok(Lookup::TooWide);
        }
        let mut positions = RoaringTreemap::new();
        for g in leaves {
            let leaf = self.leaf(store, &segment, g, codec).await?;
            for probe in probes {
                let (start, end) = probe.select(|i| leaf.keys.row(i).data(), leaf.positions.len());
                positions.extend(leaf.positions[start..end].iter().copied());
            }
        }
        Ok(Lookup::Positions(positions))
    }

    async fn segment(
        &self,
        store: &Arc<dyn ObjectStore>,
        path: &Path,
        codec: &KeyCodec,
    ) -> Result<Arc<Segment>> {
        let key = EntryKey::Segment(path.clone());
        if let Some(Entry::Segment(found)) = self.find(&key) {
            return Ok(found);
        }
        let size = store.head(path).await?.size;
        let footer = read_footer(store.as_ref(), path, size)
            .await
            .map_err(external)?;
        let metadata = ArrowReaderMetadata::try_new(Arc::new(footer), ArrowReaderOptions::new())?;
        let groups = metadata.metadata().row_groups();
        let first = metadata.schema().field(0).name().clone();
        let fences =
            StatisticsConverter::try_new(&first, metadata.schema(), metadata.parquet_schema())
                .and_then(|converter| converter.row_group_mins(groups.iter()))
                .ok()
                .and_then(|mins| {
                    Some((
                        codec.first().convert_columns(&[Arc::clone(&mins)]).ok()?,
                        mins,
                    ))
                });
        let fences = match fences {
            Some((rows, mins)) => (0..groups.len())
                .map(|g| (!mins.is_null(g)).then(|| rows.row(g).owned()))
                .collect(),
            None => vec![None; groups.len()],
        };
        let segment = Arc::new(Segment {
            path: path.clone(),
            metadata,
            fences,
        });
        self.keep(key, Entry::Segment(Arc::clone(&segment)), segment.bytes());
        Ok(segment)
    }

    async fn leaf(
        &self,
        store: &Arc<dyn ObjectStore>,
        segment: &Segment,
        group: usize,
        codec: &KeyCodec,
    ) -> Result<Arc<Leaf>> {
        let key = EntryKey::Leaf(segment.path.clone(), group);
        if let Some(Entry::Leaf(found)) = self.find(&key) {
            return Ok(found);
        }
        let reader = ObjectRanges {
            store: Arc::clone(store),
            path: segment.path.clone(),
            footer: Arc::clone(segment.metadata.metadata()),
        };
        let batches: Vec<RecordBatch> =
            ParquetRecordBatchStreamBuilder::new_with_metadata(reader, segment.metadata.clone())
                .with_row_groups(vec![group])
                .with_batch_size(LEAF_ROWS)
                .build()?
                .try_collect()
                .await?;
        let batch = concat_batches(segment.metadata.schema(), &batches)?;
        let width = batch.num_columns() - 1;
        let keys = codec.keys().convert_columns(&batch.columns()[..width])?;
        let positions = batch
            .column(width)
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| TableError::Corrupt(format!("{}: not an index segment", segment.path)))?
            .values()
            .to_vec();
        let leaf = Arc::new(Leaf { keys, positions });
        self.keep(key, Entry::Leaf(Arc::clone(&leaf)), leaf.bytes());
        Ok(leaf)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;
    use object_store::PutPayload;
    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn lookups_read_only_the_leaves_that_can_match() {
        let index = IndexDef::new("by_k".into(), vec!["k".into()], false);
        let codec = KeyCodec::new(&[DataType::Int64]).unwrap();
        // 20,000 rows, key = (position * 7919) mod 20000: a permutation, so each key once.
        let keys: ArrayRef = Arc::new(Int64Array::from_iter_values(
            (0..20_000i64).map(|p| (p * 7919) % 20_000),
        ));
        let bytes = build_segment(&index, &codec, &[keys]).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from(segment_path(&index));
        store.put(&path, PutPayload::from(bytes)).await.unwrap();
        let cache = IndexCache::new(1 << 20);
        let probe = |k: i64| {
            let rows = codec
                .keys()
                .convert_columns(&[Arc::new(Int64Array::from(vec![k])) as ArrayRef])
                .unwrap();
            Probe::equal(rows.row(0).data(), rows.row(0).data())
        };
        let found = cache
            .lookup(
                &store,
                &path,
                &codec,
                &[probe(7919 * 3 % 20_000)],
                Some(0.5),
            )
            .await
            .unwrap();
        let Lookup::Positions(positions) = found else {
            panic!("a point lookup is never too wide")
        };
        assert_eq!(positions.iter().collect::<Vec<_>>(), vec![3]);
        // Only the one leaf holding the key was decoded (three leaves of 8192 entries): the
        // cache holds the footer and that leaf.
        assert_eq!(cache.report().blocks, 2);
        let missing = cache
            .lookup(&store, &path, &codec, &[probe(20_000)], None)
            .await
            .unwrap();
        assert!(matches!(missing, Lookup::Positions(p) if p.is_empty()));
    }
}
