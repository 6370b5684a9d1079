//! The read cache of a remote data root: byte ranges of immutable objects kept in memory and on
//! local disk, least recently used evicted first.
//!
//! Only objects that never change are cached: files outside `_delta_log/` whose name contains a
//! UUID — data files, deletion vectors and index segments. Such an object is written once under
//! a fresh name and never rewritten, so a cached byte can never be stale, whatever other servers
//! commit. The transaction log is never cached (a table dropped and created again reuses its
//! log's names); it is read under the snapshot rules of `txlog`. Deleting, overwriting or
//! renaming an object through this store forgets what was cached of it.
//!
//! Objects are cached in blocks of [`BLOCK_BYTES`] aligned on multiples of it, so any range is
//! served from the blocks that cover it; a read fetches each run of missing blocks with one
//! request. Blocks are looked up in memory, then on disk (a disk hit is copied into memory), and
//! fetched from the store when neither has them; a fetched block goes into both tiers. The disk
//! tier keeps one file per block in its directory, indexed in memory only: the directory is
//! emptied when the server starts, and one server owns it.
//!
//! Each tier counts its hits, misses and evictions; `sys.cache` and the metrics show them.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::hash::Hash;
use std::ops::{Range, RangeInclusive};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use lru::LruCache;
use object_store::path::Path;
use object_store::{
    Attributes, CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions,
    PutPayload, PutResult, RenameOptions, Result,
};

use crate::metrics::metrics;

/// Objects are cached in blocks of this many bytes, aligned on multiples of it.
pub const BLOCK_BYTES: u64 = 1024 * 1024;

/// Objects whose metadata is remembered (for whole-object reads) before the map starts over.
const REMEMBERED_OBJECTS: usize = 65_536;

/// Extension of the disk tier's block files.
const BLOCK_FILE_EXTENSION: &str = "block";

/// Sizes and place of the read cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// Bytes of blocks kept in memory; 0 turns the memory tier off.
    pub memory_bytes: u64,
    /// Directory of the disk tier; `None` turns the disk tier off.
    pub disk_dir: Option<PathBuf>,
    /// Bytes of blocks kept on disk.
    pub disk_bytes: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            memory_bytes: 256 * 1024 * 1024,
            disk_dir: None,
            disk_bytes: 10 * 1024 * 1024 * 1024,
        }
    }
}

impl CacheSettings {
    /// Whether either tier is on.
    pub fn enabled(&self) -> bool {
        self.memory_bytes > 0 || (self.disk_dir.is_some() && self.disk_bytes > 0)
    }
}

/// Whether the object at `path` is one the cache may keep: outside the transaction log, with a
/// UUID in its name.
pub fn is_immutable(path: &Path) -> bool {
    if path.parts().any(|part| part.as_ref() == "_delta_log") {
        return false;
    }
    path.filename().is_some_and(|name| {
        name.as_bytes()
            .windows(36)
            .any(|window| uuid::Uuid::try_parse_ascii(window).is_ok())
    })
}

/// What one tier holds and has done, for `sys.cache`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierReport {
    /// `memory` or `disk`.
    pub tier: &'static str,
    /// The disk tier's directory.
    pub directory: Option<String>,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub blocks: u64,
    /// Block lookups this tier answered.
    pub hits: u64,
    /// Block lookups this tier could not answer.
    pub misses: u64,
    /// Bytes of the blocks this tier answered with.
    pub hit_bytes: u64,
    /// Blocks dropped to make room.
    pub evictions: u64,
}

type BlockKey = (Path, u64);

/// One tier of a cache: its entries (blocks of objects, decoded chunks, index leaves), least
/// recently used first out, within a byte budget.
pub(crate) struct Tier<K: Hash + Eq, V> {
    name: &'static str,
    /// Each block's value and length.
    blocks: LruCache<K, (V, u64)>,
    used: u64,
    capacity: u64,
    hits: u64,
    misses: u64,
    hit_bytes: u64,
    evictions: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> Tier<K, V> {
    pub(crate) fn new(name: &'static str, capacity: u64) -> Self {
        Self {
            name,
            blocks: LruCache::unbounded(),
            used: 0,
            capacity,
            hits: 0,
            misses: 0,
            hit_bytes: 0,
            evictions: 0,
        }
    }

    /// The block's value, now the most recently used; counts neither hit nor miss.
    pub(crate) fn find(&mut self, key: &K) -> Option<(V, u64)> {
        self.blocks.get(key).cloned()
    }

    /// The block's value, now the most recently used, counted as a hit or a miss.
    pub(crate) fn lookup(&mut self, key: &K) -> Option<V> {
        match self.find(key) {
            Some((value, len)) => {
                self.hit(len);
                Some(value)
            }
            None => {
                self.miss();
                None
            }
        }
    }

    pub(crate) fn hit(&mut self, bytes: u64) {
        self.hits += 1;
        self.hit_bytes += bytes;
        metrics().cache_hit(self.name, bytes);
    }

    pub(crate) fn miss(&mut self) {
        self.misses += 1;
        metrics().cache_miss(self.name);
    }

    /// Adds a block of `len` bytes; returns the values it displaced or evicted, for the caller
    /// to dispose of (the block's own value when it is larger than the whole tier).
    pub(crate) fn insert(&mut self, key: K, value: V, len: u64) -> Vec<V> {
        if len > self.capacity {
            return vec![value];
        }
        let mut dropped = Vec::new();
        if let Some((old, old_len)) = self.blocks.put(key, (value, len)) {
            self.used -= old_len;
            dropped.push(old);
        }
        self.used += len;
        dropped.extend(self.resize(self.capacity));
        dropped
    }

    /// Whether the tier holds the block (not counted as a hit or a miss).
    pub(crate) fn contains(&self, key: &K) -> bool {
        self.blocks.contains(key)
    }

    /// How many blocks the tier holds.
    pub(crate) fn len(&self) -> usize {
        self.blocks.len()
    }

    /// The byte budget.
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Every block with its length, most recently used first.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&K, &V, u64)> {
        self.blocks
            .iter()
            .map(|(key, (value, len))| (key, value, *len))
    }

    /// Changes the byte budget, evicting least recently used blocks down to it; returns them.
    pub(crate) fn resize(&mut self, capacity: u64) -> Vec<V> {
        self.capacity = capacity;
        let mut dropped = Vec::new();
        while self.used > self.capacity {
            let Some((_, (old, old_len))) = self.blocks.pop_lru() else {
                break;
            };
            self.used -= old_len;
            self.evictions += 1;
            metrics().cache_evicted(self.name);
            dropped.push(old);
        }
        metrics().cache_used(self.name, self.used);
        dropped
    }

    /// Forgets every block; returns their values.
    pub(crate) fn clear(&mut self) -> Vec<V> {
        let blocks = std::mem::replace(&mut self.blocks, LruCache::unbounded());
        let dropped = blocks.into_iter().map(|(_, (value, _))| value).collect();
        self.used = 0;
        metrics().cache_used(self.name, self.used);
        dropped
    }

    /// Forgets one block; returns its value.
    pub(crate) fn forget(&mut self, key: &K) -> Option<V> {
        let (value, len) = self.blocks.pop(key)?;
        self.used -= len;
        metrics().cache_used(self.name, self.used);
        Some(value)
    }

    pub(crate) fn report(&self, directory: Option<String>) -> TierReport {
        TierReport {
            tier: self.name,
            directory,
            capacity_bytes: self.capacity,
            used_bytes: self.used,
            blocks: self.blocks.len() as u64,
            hits: self.hits,
            misses: self.misses,
            hit_bytes: self.hit_bytes,
            evictions: self.evictions,
        }
    }
}

impl<V: Clone> Tier<BlockKey, V> {
    /// Forgets every block of the object at `path`; returns their values.
    fn forget_object(&mut self, path: &Path) -> Vec<V> {
        let keys: Vec<BlockKey> = self
            .blocks
            .iter()
            .filter(|((p, _), _)| p == path)
            .map(|(key, _)| key.clone())
            .collect();
        keys.iter().filter_map(|key| self.forget(key)).collect()
    }
}

/// The disk tier: one file per block, named by a number the index maps keys to.
struct DiskTier {
    dir: PathBuf,
    index: Mutex<Tier<BlockKey, u64>>,
    next_file: AtomicU64,
    /// Whether a failed write was already logged (a full disk would log every block).
    write_failed: AtomicBool,
}

impl DiskTier {
    fn file(&self, number: u64) -> PathBuf {
        self.dir.join(format!("{number}.{BLOCK_FILE_EXTENSION}"))
    }

    async fn remove(&self, numbers: Vec<u64>) {
        for number in numbers {
            // Already gone is as good as removed.
            let _ = tokio::fs::remove_file(self.file(number)).await;
        }
    }
}

/// The blocks of both tiers and the metadata of the objects they come from.
pub struct ReadCache {
    memory: Option<Mutex<Tier<BlockKey, Bytes>>>,
    disk: Option<DiskTier>,
    objects: Mutex<HashMap<Path, ObjectMeta>>,
}

impl fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadCache")
            .field("tiers", &self.report())
            .finish()
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a tier cannot leave it inconsistent in a way worth refusing reads.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ReadCache {
    /// A cache with `settings`' tiers; the disk tier's directory is created, and emptied of the
    /// blocks an earlier run left.
    pub fn new(settings: &CacheSettings) -> std::io::Result<Self> {
        let disk = match &settings.disk_dir {
            Some(dir) if settings.disk_bytes > 0 => {
                std::fs::create_dir_all(dir)?;
                for entry in std::fs::read_dir(dir)? {
                    let path = entry?.path();
                    if path.extension().is_some_and(|e| e == BLOCK_FILE_EXTENSION) {
                        std::fs::remove_file(&path)?;
                    }
                }
                Some(DiskTier {
                    dir: dir.clone(),
                    index: Mutex::new(Tier::new("disk", settings.disk_bytes)),
                    next_file: AtomicU64::new(0),
                    write_failed: AtomicBool::new(false),
                })
            }
            _ => None,
        };
        Ok(Self {
            memory: (settings.memory_bytes > 0)
                .then(|| Mutex::new(Tier::new("memory", settings.memory_bytes))),
            disk,
            objects: Mutex::new(HashMap::new()),
        })
    }

    /// Each tier's figures, memory first.
    pub fn report(&self) -> Vec<TierReport> {
        let mut tiers = Vec::new();
        if let Some(memory) = &self.memory {
            tiers.push(lock(memory).report(None));
        }
        if let Some(disk) = &self.disk {
            let directory = Some(disk.dir.display().to_string());
            tiers.push(lock(&disk.index).report(directory));
        }
        tiers
    }

    /// The block, from memory or disk, counted as a hit or miss of each tier asked.
    async fn lookup(&self, key: &BlockKey) -> Option<Bytes> {
        if let Some(memory) = &self.memory
            && let Some(block) = lock(memory).lookup(key)
        {
            return Some(block);
        }
        let disk = self.disk.as_ref()?;
        let found = lock(&disk.index).find(key);
        let Some((number, len)) = found else {
            lock(&disk.index).miss();
            return None;
        };
        match tokio::fs::read(disk.file(number)).await {
            Ok(data) if data.len() as u64 == len => {
                lock(&disk.index).hit(len);
                let block = Bytes::from(data);
                self.keep_in_memory(key.clone(), block.clone());
                Some(block)
            }
            // Evicted while being read, or damaged: fetch it again.
            _ => {
                let mut index = lock(&disk.index);
                index.miss();
                if index.find(key).is_some_and(|(n, _)| n == number) {
                    index.forget(key);
                }
                None
            }
        }
    }

    fn keep_in_memory(&self, key: BlockKey, block: Bytes) {
        if let Some(memory) = &self.memory {
            let len = block.len() as u64;
            lock(memory).insert(key, block, len);
        }
    }

    /// Keeps a block fetched from the store in both tiers.
    async fn store(&self, key: BlockKey, block: Bytes) {
        // Its own allocation: a slice would keep the whole fetched run alive.
        self.keep_in_memory(key.clone(), Bytes::copy_from_slice(&block));
        let Some(disk) = &self.disk else {
            return;
        };
        let number = disk.next_file.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = tokio::fs::write(disk.file(number), &block).await {
            if !disk.write_failed.swap(true, Ordering::Relaxed) {
                tracing::warn!(dir = %disk.dir.display(), "read cache: writing a block failed, blocks that fail are not kept: {e}");
            }
            let _ = tokio::fs::remove_file(disk.file(number)).await;
            return;
        }
        let dropped = lock(&disk.index).insert(key, number, block.len() as u64);
        disk.remove(dropped).await;
    }

    /// Forgets every block and the metadata of the object at `path`.
    async fn forget(&self, path: &Path) {
        lock(&self.objects).remove(path);
        if let Some(memory) = &self.memory {
            lock(memory).forget_object(path);
        }
        if let Some(disk) = &self.disk {
            let dropped = lock(&disk.index).forget_object(path);
            disk.remove(dropped).await;
        }
    }

    fn meta(&self, path: &Path) -> Option<ObjectMeta> {
        lock(&self.objects).get(path).cloned()
    }

    fn remember(&self, meta: &ObjectMeta) {
        let mut objects = lock(&self.objects);
        if objects.len() >= REMEMBERED_OBJECTS && !objects.contains_key(&meta.location) {
            objects.clear();
        }
        objects.insert(meta.location.clone(), meta.clone());
    }
}

/// The blocks covering `range`.
fn block_ids(range: &Range<u64>) -> Range<u64> {
    if range.start >= range.end {
        return 0..0;
    }
    range.start / BLOCK_BYTES..(range.end - 1) / BLOCK_BYTES + 1
}

/// Consecutive block numbers grouped into runs.
fn runs(ids: &[u64]) -> Vec<RangeInclusive<u64>> {
    let mut runs: Vec<RangeInclusive<u64>> = Vec::new();
    for &id in ids {
        match runs.last_mut() {
            Some(run) if *run.end() + 1 == id => *run = *run.start()..=id,
            _ => runs.push(id..=id),
        }
    }
    runs
}

/// `range` of the object at `location`, cut from its blocks.
fn cut(location: &Path, blocks: &HashMap<u64, Bytes>, range: &Range<u64>) -> Result<Bytes> {
    let out_of_range = || object_store::Error::Generic {
        store: "ReadCache",
        source: format!("range {range:?} is beyond the end of {location}").into(),
    };
    let mut parts = Vec::new();
    for id in block_ids(range) {
        let block = blocks.get(&id).ok_or_else(out_of_range)?;
        let block_start = id * BLOCK_BYTES;
        let from = range.start.max(block_start) - block_start;
        let to = range.end.min(block_start + BLOCK_BYTES) - block_start;
        if to > block.len() as u64 {
            return Err(out_of_range());
        }
        parts.push(block.slice(from as usize..to as usize));
    }
    Ok(match parts.len() {
        0 => Bytes::new(),
        1 => parts.remove(0),
        _ => {
            let mut joined = BytesMut::with_capacity((range.end - range.start) as usize);
            for part in parts {
                joined.extend_from_slice(&part);
            }
            joined.freeze()
        }
    })
}

/// An object store whose reads of immutable objects go through a [`ReadCache`].
#[derive(Debug)]
pub struct CachedStore {
    inner: Arc<dyn ObjectStore>,
    cache: Arc<ReadCache>,
}

impl CachedStore {
    pub fn new(inner: Arc<dyn ObjectStore>, cache: Arc<ReadCache>) -> Self {
        Self { inner, cache }
    }

    /// The blocks `ids` of the object at `location`, fetching each run of missing ones with one
    /// request.
    async fn blocks(
        &self,
        location: &Path,
        ids: impl IntoIterator<Item = u64>,
    ) -> Result<HashMap<u64, Bytes>> {
        // Looked up together, so that the disk tier reads its blocks concurrently.
        let lookups = ids
            .into_iter()
            .map(|id| async move { (id, self.cache.lookup(&(location.clone(), id)).await) });
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        for (id, block) in futures::future::join_all(lookups).await {
            match block {
                Some(block) => {
                    found.insert(id, block);
                }
                None => missing.push(id),
            }
        }
        missing.sort_unstable();
        let fetches = runs(&missing)
            .into_iter()
            .map(|run| self.fetch(location, run));
        for fetched in futures::future::try_join_all(fetches).await? {
            found.extend(fetched);
        }
        Ok(found)
    }

    /// Reads the blocks `run` from the store (the last one may be short) and caches them.
    async fn fetch(&self, location: &Path, run: RangeInclusive<u64>) -> Result<Vec<(u64, Bytes)>> {
        let range = run.start() * BLOCK_BYTES..(run.end() + 1) * BLOCK_BYTES;
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        let result = self.inner.get_opts(location, options).await?;
        self.cache.remember(&result.meta);
        let bytes = result.bytes().await?;
        self.split_and_store(location, *run.start(), bytes).await
    }

    /// Cuts `bytes`, which start at block `first`, into blocks and caches them.
    async fn split_and_store(
        &self,
        location: &Path,
        first: u64,
        bytes: Bytes,
    ) -> Result<Vec<(u64, Bytes)>> {
        let mut blocks = Vec::new();
        let mut offset = 0;
        let mut id = first;
        while offset < bytes.len() {
            let end = (offset + BLOCK_BYTES as usize).min(bytes.len());
            let block = bytes.slice(offset..end);
            self.cache
                .store((location.clone(), id), block.clone())
                .await;
            blocks.push((id, block));
            offset = end;
            id += 1;
        }
        Ok(blocks)
    }

    fn result(meta: ObjectMeta, range: Range<u64>, bytes: Bytes) -> GetResult {
        GetResult {
            payload: GetResultPayload::Stream(futures::stream::once(async { Ok(bytes) }).boxed()),
            meta,
            range,
            attributes: Attributes::default(),
        }
    }
}

impl fmt::Display for CachedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cached({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for CachedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.cache.forget(location).await;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.cache.forget(location).await;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let conditional = options.if_match.is_some()
            || options.if_none_match.is_some()
            || options.if_modified_since.is_some()
            || options.if_unmodified_since.is_some()
            || options.version.is_some()
            || options.head;
        if conditional || !is_immutable(location) {
            return self.inner.get_opts(location, options).await;
        }
        let known = self.cache.meta(location);
        let range = match (&options.range, &known) {
            (Some(GetRange::Bounded(range)), _) => range.clone(),
            (Some(range), Some(meta)) => {
                range
                    .as_range(meta.size)
                    .map_err(|e| object_store::Error::Generic {
                        store: "ReadCache",
                        source: Box::new(e),
                    })?
            }
            (None, Some(meta)) => 0..meta.size,
            (_, None) => {
                // Its size is unknown: read it as asked, and cache it when that is all of it.
                let whole = options.range.is_none();
                let result = self.inner.get_opts(location, options).await?;
                self.cache.remember(&result.meta);
                if !whole {
                    return Ok(result);
                }
                let (meta, range) = (result.meta.clone(), result.range.clone());
                let bytes = result.bytes().await?;
                self.split_and_store(location, 0, bytes.clone()).await?;
                return Ok(Self::result(meta, range, bytes));
            }
        };
        let blocks = self.blocks(location, block_ids(&range)).await?;
        let meta = match self.cache.meta(location) {
            Some(meta) => meta,
            None => {
                let meta = self.inner.head(location).await?;
                self.cache.remember(&meta);
                meta
            }
        };
        let range = range.start..range.end.min(meta.size);
        let bytes = cut(location, &blocks, &range)?;
        Ok(Self::result(meta, range, bytes))
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        if !is_immutable(location) {
            return self.inner.get_ranges(location, ranges).await;
        }
        let ids: BTreeSet<u64> = ranges.iter().flat_map(block_ids).collect();
        let blocks = self.blocks(location, ids).await?;
        ranges
            .iter()
            .map(|range| cut(location, &blocks, range))
            .collect()
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let cache = Arc::clone(&self.cache);
        self.inner
            .delete_stream(locations)
            .then(move |deleted| {
                let cache = Arc::clone(&cache);
                async move {
                    if let Ok(path) = &deleted {
                        cache.forget(path).await;
                    }
                    deleted
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.cache.forget(to).await;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.cache.forget(to).await;
        let renamed = self.inner.rename_opts(from, to, options).await;
        self.cache.forget(from).await;
        renamed
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    const DATA: &str = "t/part-00000-0b6f3a5e-8f0c-4a7e-9d55-3f1c2b7a9e10-c000.snappy.parquet";

    /// 2.5 blocks of bytes that differ from block to block.
    fn content() -> Bytes {
        (0..BLOCK_BYTES * 5 / 2)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into()
    }

    async fn store_with(settings: &CacheSettings) -> (CachedStore, Arc<ReadCache>, Bytes) {
        let inner = Arc::new(InMemory::new());
        let bytes = content();
        inner
            .put(&Path::from(DATA), PutPayload::from(bytes.clone()))
            .await
            .unwrap();
        inner
            .put(
                &Path::from("t/_delta_log/00000000000000000000.json"),
                "{}".into(),
            )
            .await
            .unwrap();
        let cache = Arc::new(ReadCache::new(settings).unwrap());
        (CachedStore::new(inner, Arc::clone(&cache)), cache, bytes)
    }

    fn memory_only(bytes: u64) -> CacheSettings {
        CacheSettings {
            memory_bytes: bytes,
            disk_dir: None,
            disk_bytes: 0,
        }
    }

    fn tier(cache: &ReadCache, name: &str) -> TierReport {
        cache.report().into_iter().find(|t| t.tier == name).unwrap()
    }

    #[test]
    fn only_uuid_named_files_outside_the_log_are_cached() {
        assert!(is_immutable(&Path::from(DATA)));
        assert!(is_immutable(&Path::from(
            "t/ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin"
        )));
        assert!(is_immutable(&Path::from(
            "t/_minidb_index/7/d2c639aa-8816-431a-aaf6-d3fe2512ff61.parquet"
        )));
        assert!(!is_immutable(&Path::from(
            "t/_delta_log/00000000000000000010.checkpoint.80a083e8-7026-4e79-81be-64bd76c43a11.parquet"
        )));
        assert!(!is_immutable(&Path::from(
            "t/_delta_log/00000000000000000000.json"
        )));
        assert!(!is_immutable(&Path::from("t/_last_checkpoint")));
        assert!(!is_immutable(&Path::from("db/.minidb_database")));
    }

    #[test]
    fn runs_group_consecutive_blocks() {
        assert_eq!(runs(&[0, 1, 2, 5, 7, 8]), vec![0..=2, 5..=5, 7..=8]);
        assert_eq!(runs(&[]), Vec::<RangeInclusive<u64>>::new());
        assert_eq!(block_ids(&(0..1)), 0..1);
        assert_eq!(block_ids(&(BLOCK_BYTES - 1..BLOCK_BYTES + 1)), 0..2);
        assert!(block_ids(&(5..5)).is_empty());
    }

    #[tokio::test]
    async fn ranges_are_served_from_blocks_after_the_first_read() {
        let (store, cache, bytes) = store_with(&memory_only(64 * BLOCK_BYTES)).await;
        let path = Path::from(DATA);
        let ranges = [
            0..10,
            BLOCK_BYTES - 5..BLOCK_BYTES + 5,
            2 * BLOCK_BYTES..bytes.len() as u64,
            7..7,
        ];
        let first = store.get_ranges(&path, &ranges).await.unwrap();
        let memory = tier(&cache, "memory");
        assert_eq!((memory.hits, memory.misses, memory.blocks), (0, 3, 3));
        let second = store.get_ranges(&path, &ranges).await.unwrap();
        for (range, (a, b)) in ranges.iter().zip(first.iter().zip(&second)) {
            let want = bytes.slice(range.start as usize..range.end as usize);
            assert_eq!((a, b), (&want, &want), "{range:?}");
        }
        let memory = tier(&cache, "memory");
        assert_eq!((memory.hits, memory.misses), (3, 3));
        assert_eq!(memory.used_bytes, bytes.len() as u64);

        let ranged = store
            .get_range(&path, 3..BLOCK_BYTES * 2 + 1)
            .await
            .unwrap();
        assert_eq!(ranged, bytes.slice(3..BLOCK_BYTES as usize * 2 + 1));
        let whole = store.get(&path).await.unwrap();
        assert_eq!(whole.meta.size, bytes.len() as u64);
        assert_eq!(whole.bytes().await.unwrap(), bytes);
        // A range past the end is cut at the end, as the stores do.
        let tail = store
            .get_range(&path, bytes.len() as u64 - 4..bytes.len() as u64 + 100)
            .await
            .unwrap();
        assert_eq!(tail, bytes.slice(bytes.len() - 4..));
        assert_eq!(tier(&cache, "memory").misses, 3, "every later read hit");
    }

    #[tokio::test]
    async fn the_log_and_conditional_reads_bypass_the_cache() {
        let (store, cache, _) = store_with(&memory_only(64 * BLOCK_BYTES)).await;
        let log = Path::from("t/_delta_log/00000000000000000000.json");
        store.get(&log).await.unwrap().bytes().await.unwrap();
        store.head(&Path::from(DATA)).await.unwrap();
        let memory = tier(&cache, "memory");
        assert_eq!((memory.hits, memory.misses, memory.blocks), (0, 0, 0));
    }

    #[tokio::test]
    async fn least_recently_used_blocks_are_evicted_first() {
        let (store, cache, bytes) = store_with(&memory_only(2 * BLOCK_BYTES)).await;
        let path = Path::from(DATA);
        store.get_range(&path, 0..1).await.unwrap();
        store
            .get_range(&path, BLOCK_BYTES..BLOCK_BYTES + 1)
            .await
            .unwrap();
        store.get_range(&path, 0..1).await.unwrap();
        // Block 2 (half a block) fits beside one more: block 1, the least recently used, goes.
        store
            .get_range(&path, 2 * BLOCK_BYTES..2 * BLOCK_BYTES + 1)
            .await
            .unwrap();
        let memory = tier(&cache, "memory");
        assert_eq!((memory.blocks, memory.evictions), (2, 1));
        assert!(memory.used_bytes <= 2 * BLOCK_BYTES);
        store.get_range(&path, 0..1).await.unwrap();
        assert_eq!(tier(&cache, "memory").hits, 2);
        let again = store
            .get_range(&path, BLOCK_BYTES..BLOCK_BYTES + 3)
            .await
            .unwrap();
        assert_eq!(
            again,
            bytes.slice(BLOCK_BYTES as usize..BLOCK_BYTES as usize + 3)
        );
        assert_eq!(tier(&cache, "memory").misses, 4);
    }

    #[tokio::test]
    async fn the_disk_tier_serves_what_memory_let_go_and_is_emptied_at_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("41.block"), b"left by an earlier run").unwrap();
        let settings = CacheSettings {
            memory_bytes: BLOCK_BYTES,
            disk_dir: Some(dir.path().to_path_buf()),
            disk_bytes: 2 * BLOCK_BYTES,
        };
        let (store, cache, bytes) = store_with(&settings).await;
        assert!(!dir.path().join("41.block").exists());
        let path = Path::from(DATA);
        let all = store.get_range(&path, 0..bytes.len() as u64).await.unwrap();
        assert_eq!(all, bytes);
        let disk = tier(&cache, "disk");
        assert_eq!((disk.misses, disk.blocks, disk.evictions), (3, 2, 1));
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 2, "evicted blocks' files are removed");
        // Memory holds block 2 (the last stored), disk blocks 1 and 2: block 0 comes from the
        // store, block 1 from disk, block 2 from memory or — when block 1's disk read finished
        // first and took memory's one place — from disk.
        let again = store.get_range(&path, 0..bytes.len() as u64).await.unwrap();
        assert_eq!(again, bytes);
        let (disk, memory) = (tier(&cache, "disk"), tier(&cache, "memory"));
        assert_eq!(disk.misses, 4, "{disk:?}");
        assert_eq!(disk.hits + memory.hits, 2, "{disk:?} {memory:?}");
        assert!(disk.hit_bytes >= BLOCK_BYTES, "{disk:?}");
    }

    #[tokio::test]
    async fn deleting_an_object_forgets_its_blocks() {
        let (store, cache, _) = store_with(&memory_only(64 * BLOCK_BYTES)).await;
        let path = Path::from(DATA);
        store.get_range(&path, 0..10).await.unwrap();
        assert_eq!(tier(&cache, "memory").blocks, 1);
        store.delete(&path).await.unwrap();
        assert_eq!(tier(&cache, "memory").blocks, 0);
        assert!(matches!(
            store.get_range(&path, 0..10).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }
}
