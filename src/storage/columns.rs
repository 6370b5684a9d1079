//! The column cache: decoded column chunks of data files kept in memory, so that scans of hot
//! data neither read nor decode Parquet.
//!
//! An entry is one column of one row group of one data file, decoded to the Arrow type the
//! table declares. Only immutable files are cached (see [`is_immutable`]: written once under a
//! fresh name, never changed), and the key carries the file's size too, so an entry cannot be
//! stale: commits add and remove whole files, and which files a statement reads, and which rows
//! of them (deletion vectors), comes from its snapshot, never from the cache. Entries of files a
//! commit removed are never asked for again and age out. Least recently used entries are
//! evicted first, within a byte budget counted as the arrays' memory.
//!
//! `sys.cache` shows the cache as the tier `columns`, beside the read cache's tiers.

use std::fmt;
use std::sync::Mutex;

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::DataType;
use object_store::path::Path;

use super::cache::{Tier, TierReport, is_immutable, lock};

/// Names the decoded chunk of one column of one row group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChunkKey {
    pub file: Path,
    /// The file's size, as its `add` action records it.
    pub size: u64,
    pub row_group: usize,
    pub column: String,
    /// The type the chunk was decoded to.
    pub data_type: DataType,
}

/// Decoded column chunks within a byte budget.
pub struct ColumnCache {
    capacity: u64,
    chunks: Mutex<Tier<ChunkKey, ArrayRef>>,
}

impl fmt::Debug for ColumnCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ColumnCache")
            .field("tier", &self.report())
            .finish()
    }
}

impl ColumnCache {
    /// A cache holding at most `capacity` bytes of arrays.
    pub fn new(capacity: u64) -> Self {
        Self {
            capacity,
            chunks: Mutex::new(Tier::new("columns", capacity)),
        }
    }

    /// Whether chunks of the file at `path` may be kept.
    pub fn caches(&self, path: &Path) -> bool {
        self.capacity > 0 && is_immutable(path)
    }

    /// The chunk, if the cache holds it (counted as a hit or a miss).
    pub fn get(&self, key: &ChunkKey) -> Option<ArrayRef> {
        lock(&self.chunks).lookup(key)
    }

    /// Keeps a decoded chunk, evicting the least recently used ones to make room; a chunk
    /// larger than the whole cache is not kept.
    pub fn insert(&self, key: ChunkKey, array: ArrayRef) {
        let len = array.get_array_memory_size() as u64;
        // Dropped arrays are freed after the lock is released.
        let _dropped = lock(&self.chunks).insert(key, array, len);
    }

    /// The cache's figures, for `sys.cache`.
    pub fn report(&self) -> TierReport {
        lock(&self.chunks).report(None)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;

    use super::*;

    fn key(file: &str, row_group: usize) -> ChunkKey {
        ChunkKey {
            file: Path::from(file),
            size: 100,
            row_group,
            column: "a".into(),
            data_type: DataType::Int64,
        }
    }

    fn chunk(rows: i64) -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(0..rows))
    }

    const FILE: &str = "db/t/part-00000-0f0e9c3a-4b7e-4c7e-9f6c-6c9b8a1d2e3f.parquet";

    #[test]
    fn least_recently_used_chunks_leave_first() {
        let size = chunk(1000).get_array_memory_size() as u64;
        let cache = ColumnCache::new(2 * size + size / 2);
        cache.insert(key(FILE, 0), chunk(1000));
        cache.insert(key(FILE, 1), chunk(1000));
        assert!(cache.get(&key(FILE, 0)).is_some());
        cache.insert(key(FILE, 2), chunk(1000));
        assert!(
            cache.get(&key(FILE, 1)).is_none(),
            "the least recently used left"
        );
        assert!(cache.get(&key(FILE, 0)).is_some());
        assert!(cache.get(&key(FILE, 2)).is_some());
        let report = cache.report();
        assert_eq!(report.tier, "columns");
        assert_eq!((report.blocks, report.hits, report.misses), (2, 3, 1));
        assert_eq!(report.evictions, 1);
        assert_eq!(report.used_bytes, 2 * size);
    }

    #[test]
    fn a_chunk_larger_than_the_cache_is_not_kept() {
        let cache = ColumnCache::new(64);
        cache.insert(key(FILE, 0), chunk(1000));
        assert!(cache.get(&key(FILE, 0)).is_none());
        assert_eq!(cache.report().used_bytes, 0);
    }

    #[test]
    fn only_immutable_files_are_cached() {
        let cache = ColumnCache::new(1 << 20);
        assert!(cache.caches(&Path::from(FILE)));
        assert!(!cache.caches(&Path::from("db/t/data.parquet")));
        assert!(!ColumnCache::new(0).caches(&Path::from(FILE)));
    }
}
