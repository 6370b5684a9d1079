//! The footer cache: parsed Parquet footers (metadata and page indexes) of the data files of
//! every table of a server, least recently used evicted first, within one byte budget
//! (`--footer-cache`). DataFusion's scans find footers here instead of reading them again.
//!
//! A data file is written once and never changed, so an entry cannot be stale. When a commit
//! of this server removes files (compaction, OPTIMIZE, a rewrite), their footers are dropped at
//! once rather than left to age out: under steady small writes and compaction, dead footers
//! would otherwise fill the budget and crowd out live ones. `sys.cache` shows it as the tier
//! `footers`.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use datafusion::common::{HashMap, TableReference};
use datafusion::execution::cache::cache_manager::CachedFileMetadataEntry;
use datafusion::execution::cache::{Cache, CacheEntryInfo, CacheKey, CacheValue};
use object_store::path::Path;

use crate::storage::{Tier, TierReport, lock};

/// Parsed Parquet footers, shared by every table of a server.
pub struct FooterCache {
    entries: Mutex<Tier<Path, CachedFileMetadataEntry>>,
}

impl fmt::Debug for FooterCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FooterCache")
            .field("tier", &self.report())
            .finish()
    }
}

impl FooterCache {
    /// A cache holding at most `capacity` bytes of footers (none when 0).
    pub fn new(capacity: u64) -> Self {
        Self {
            entries: Mutex::new(Tier::new("footers", capacity)),
        }
    }

    /// The cache's figures, for `sys.cache`.
    pub fn report(&self) -> TierReport {
        lock(&self.entries).report(None)
    }

    /// Drops the footers of files that left their table.
    pub(super) fn forget_files(&self, paths: &[Path]) {
        let dropped: Vec<_> = {
            let mut entries = lock(&self.entries);
            paths
                .iter()
                .filter_map(|path| entries.forget(path))
                .collect()
        };
        drop(dropped);
    }
}

impl Cache<Path, CachedFileMetadataEntry> for FooterCache {
    fn get(&self, key: &Path) -> Option<CachedFileMetadataEntry> {
        lock(&self.entries).lookup(key)
    }

    fn put(&self, key: &Path, value: CachedFileMetadataEntry) -> Option<CachedFileMetadataEntry> {
        let bytes = (key.size() + value.size()) as u64;
        let (previous, _dropped) = {
            let mut entries = lock(&self.entries);
            let previous = entries.forget(key);
            (previous, entries.insert(key.clone(), value, bytes))
        };
        previous
    }

    fn remove(&self, key: &Path) -> Option<CachedFileMetadataEntry> {
        lock(&self.entries).forget(key)
    }

    fn contains_key(&self, key: &Path) -> bool {
        lock(&self.entries).contains(key)
    }

    fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    fn clear(&self) {
        let _dropped = lock(&self.entries).clear();
    }

    fn name(&self) -> String {
        "footers".to_string()
    }

    fn cache_limit(&self) -> usize {
        usize::try_from(lock(&self.entries).capacity()).unwrap_or(usize::MAX)
    }

    fn update_cache_limit(&self, limit: usize) {
        let _dropped = lock(&self.entries).resize(limit as u64);
    }

    fn cache_ttl(&self) -> Option<Duration> {
        None
    }

    /// Entries never expire: a data file does not change.
    fn update_cache_ttl(&self, _ttl: Option<Duration>) {}

    /// Keys are object paths, which name no table.
    fn drop_table_entries(&self, _table: &TableReference) -> datafusion::common::Result<()> {
        Ok(())
    }

    /// Every entry with its size; hits are counted for the cache as a whole, not per entry.
    fn list_entries(&self) -> HashMap<Path, CacheEntryInfo<CachedFileMetadataEntry>> {
        lock(&self.entries)
            .entries()
            .map(|(path, value, bytes)| {
                let info = CacheEntryInfo {
                    value: value.clone(),
                    size_bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
                    hits: 0,
                    expires: None,
                };
                (path.clone(), info)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::any::Any;
    use std::sync::Arc;

    use datafusion::execution::cache::cache_manager::FileMetadata;
    use object_store::ObjectMeta;

    use super::*;

    /// A footer of a fixed size.
    struct Footer(usize);

    impl FileMetadata for Footer {
        fn as_any(&self) -> &dyn Any {
            self
        }

        fn memory_size(&self) -> usize {
            self.0
        }

        fn extra_info(&self) -> HashMap<String, String> {
            Default::default()
        }
    }

    fn entry(path: &Path, bytes: usize) -> CachedFileMetadataEntry {
        let meta = ObjectMeta {
            location: path.clone(),
            last_modified: Default::default(),
            size: 100,
            e_tag: None,
            version: None,
        };
        CachedFileMetadataEntry::new(meta, Arc::new(Footer(bytes)))
    }

    #[test]
    fn footers_are_kept_within_the_budget_and_forgotten_with_their_files() {
        let cache = FooterCache::new(1000);
        let [a, b, c] = ["d/t/a.parquet", "d/t/b.parquet", "d/t/c.parquet"].map(Path::from);
        assert!(cache.get(&a).is_none());
        assert!(cache.put(&a, entry(&a, 400)).is_none());
        assert!(cache.put(&b, entry(&b, 400)).is_none());
        assert!(cache.get(&a).is_some(), "a is now the most recently used");
        assert!(cache.put(&c, entry(&c, 400)).is_none());
        assert!(
            !cache.contains_key(&b),
            "the least recently used footer made room"
        );
        assert_eq!(cache.len(), 2);
        let report = cache.report();
        assert_eq!((report.hits, report.misses, report.evictions), (1, 1, 1));
        assert!(report.used_bytes <= 1000, "{report:?}");

        assert!(
            cache.put(&a, entry(&a, 300)).is_some(),
            "a replaces its old entry"
        );
        assert_eq!(cache.list_entries().len(), 2);
        cache.forget_files(&[a.clone(), b.clone()]);
        assert!(!cache.contains_key(&a) && cache.contains_key(&c));

        cache.update_cache_limit(100);
        assert_eq!((cache.len(), cache.cache_limit()), (0, 100));
        assert!(cache.put(&a, entry(&a, 400)).is_none());
        assert!(
            cache.is_empty(),
            "a footer larger than the budget is not kept"
        );
    }
}
