//! The deletion-vector cache: parsed deletion vectors of every table of a server, least
//! recently used evicted first, within one byte budget (`--deletion-vector-cache`).
//!
//! A deletion vector is written once under a fresh name and never changed (a DELETE writes a
//! new one and points the file at it), so an entry cannot be stale; those of files a commit
//! removed are never asked for again and age out. `sys.cache` shows it as the tier
//! `deletion_vectors`.

use std::fmt;
use std::sync::{Arc, Mutex};

use roaring::RoaringTreemap;

use crate::storage::{Tier, TierReport, lock};

/// A table's root and a deletion vector's unique id in it.
type VectorKey = (String, String);

/// Parsed deletion vectors, shared by every table of a server.
pub struct DeletionVectorCache {
    entries: Mutex<Tier<VectorKey, Arc<RoaringTreemap>>>,
}

impl fmt::Debug for DeletionVectorCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeletionVectorCache")
            .field("tier", &self.report())
            .finish()
    }
}

impl DeletionVectorCache {
    /// A cache holding at most `capacity` bytes of deletion vectors (none when 0).
    pub fn new(capacity: u64) -> Self {
        Self {
            entries: Mutex::new(Tier::new("deletion_vectors", capacity)),
        }
    }

    /// The cache's figures, for `sys.cache`.
    pub fn report(&self) -> TierReport {
        lock(&self.entries).report(None)
    }

    /// The vector `id` of the table at `root`, if cached; counts a hit or a miss.
    pub(super) fn find(&self, root: &str, id: &str) -> Option<Arc<RoaringTreemap>> {
        lock(&self.entries).lookup(&(root.to_string(), id.to_string()))
    }

    /// Keeps the vector `id` of the table at `root`.
    pub(super) fn keep(&self, root: &str, id: String, bitmap: Arc<RoaringTreemap>) {
        let bytes = bitmap.serialized_size() as u64;
        // Evicted vectors are freed after the lock is released.
        let _dropped = lock(&self.entries).insert((root.to_string(), id), bitmap, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(rows: std::ops::Range<u64>) -> Arc<RoaringTreemap> {
        Arc::new(rows.collect())
    }

    #[test]
    fn vectors_are_kept_per_table_within_the_budget() {
        let one = vector(0..1000);
        let cache = DeletionVectorCache::new(one.serialized_size() as u64 * 2);
        assert!(cache.find("a", "v1").is_none());
        cache.keep("a", "v1".into(), Arc::clone(&one));
        assert_eq!(cache.find("a", "v1").as_deref(), Some(one.as_ref()));
        assert!(
            cache.find("b", "v1").is_none(),
            "another table's vector of the same id"
        );
        cache.keep("b", "v1".into(), vector(0..1000));
        cache.keep("c", "v1".into(), vector(0..1000));
        let report = cache.report();
        assert_eq!((report.blocks, report.evictions), (2, 1));
        assert!(report.used_bytes <= report.capacity_bytes);
        assert_eq!((report.hits, report.misses), (1, 2));
        assert!(
            cache.find("a", "v1").is_none(),
            "the least recently used went first"
        );
    }
}
