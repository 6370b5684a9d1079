//! A local directory whose writes are on disk before they are acknowledged.
//!
//! `object_store`'s `LocalFileSystem` makes each put atomic (a staged file moved or hard-linked
//! into place) but leaves the data in the OS page cache. That survives a crashed process, not a
//! crashed machine. [`SyncedLocalStore`] adds an fsync of the new file and of its directory after
//! every put, so an acknowledged commit — and the data files written before it — survive power
//! loss too. Everything else is passed through unchanged.
//!
//! A process killed in the middle of a put leaves its staged file behind (`name#123`, a name
//! `LocalFileSystem`'s listings hide, so neither readers nor VACUUM ever see it);
//! [`remove_stale_staged_files`] clears those.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// `LocalFileSystem` with durable puts.
#[derive(Debug)]
pub struct SyncedLocalStore {
    inner: Arc<LocalFileSystem>,
}

impl SyncedLocalStore {
    pub fn new(inner: LocalFileSystem) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    async fn sync(&self, location: &Path) -> Result<()> {
        let file = self.inner.path_to_filesystem(location)?;
        tokio::task::spawn_blocking(move || sync_file_and_dir(file))
            .await
            .map_err(|e| generic(e.to_string()))?
            .map_err(|e| generic(e.to_string()))
    }
}

fn sync_file_and_dir(file: PathBuf) -> std::io::Result<()> {
    std::fs::File::open(&file)?.sync_all()?;
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Deletes, in the tables under `root`, the files a put staged (`name#<digits>`) and never
/// moved into place, last written more than `older_than` ago (younger ones may belong to a put
/// in progress, of this process or another on the same directory). Returns the files deleted.
///
/// Only table directories are searched — `<root>/<database>/<table>/` with its `_delta_log` —
/// so a data root pointed at a directory that also holds other files never loses them.
pub fn remove_stale_staged_files(
    root: &std::path::Path,
    older_than: Duration,
) -> std::io::Result<Vec<PathBuf>> {
    let cutoff = SystemTime::now()
        .checked_sub(older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut removed = Vec::new();
    for database in subdirectories(root)? {
        for table in subdirectories(&database)? {
            if table.join("_delta_log").is_dir() {
                remove_staged_below(&table, cutoff, &mut removed)?;
            }
        }
    }
    Ok(removed)
}

/// The directories in `directory` (none if it cannot be read: not MiniDB's).
fn subdirectories(directory: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            found.push(entry.path());
        }
    }
    Ok(found)
}

/// Deletes the staged files last written before `cutoff` in `table` and its subdirectories.
fn remove_staged_below(
    table: &std::path::Path,
    cutoff: SystemTime,
    removed: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let mut directories = vec![table.to_path_buf()];
    while let Some(directory) = directories.pop() {
        for entry in std::fs::read_dir(&directory)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                directories.push(entry.path());
                continue;
            }
            let name = entry.file_name();
            let staged = name
                .to_str()
                .and_then(|name| name.rsplit_once('#'))
                .is_some_and(|(_, suffix)| {
                    !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit())
                });
            if kind.is_file() && staged && entry.metadata()?.modified()? < cutoff {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed.push(entry.path()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

fn generic(message: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "SyncedLocalStore",
        source: message.into(),
    }
}

impl fmt::Display for SyncedLocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Synced({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for SyncedLocalStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let result = self.inner.put_opts(location, payload, opts).await?;
        self.sync(location).await?;
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
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
        self.inner.copy_opts(from, to, options).await?;
        self.sync(to).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await?;
        self.sync(to).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::{ObjectStoreExt, PutMode};

    #[tokio::test]
    async fn put_if_absent_still_refuses_an_existing_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = SyncedLocalStore::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let path = Path::from("t/_delta_log/00000000000000000000.json");
        let create = || PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        store.put_opts(&path, "a".into(), create()).await.unwrap();
        let second = store.put_opts(&path, "b".into(), create()).await;
        assert!(matches!(
            second,
            Err(object_store::Error::AlreadyExists { .. })
        ));
        let body = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(body.as_ref(), b"a");
    }

    #[test]
    fn staged_files_are_removed_from_tables_only() {
        let root = tempfile::tempdir().unwrap();
        let table = root.path().join("shop/orders");
        std::fs::create_dir_all(table.join("_delta_log")).unwrap();
        std::fs::create_dir_all(table.join("day=1")).unwrap();
        std::fs::create_dir_all(root.path().join("shop/notes")).unwrap();
        let staged = [
            table.join("_delta_log/00000000000000000001.json#3"),
            table.join("day=1/part-0.parquet#1"),
        ];
        let kept = [
            table.join("notes#draft"),
            root.path().join("backup.tar#2"),
            root.path().join("shop/notes/draft#4"),
        ];
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        for path in staged.iter().chain(&kept) {
            std::fs::write(path, b"x").unwrap();
            let file = std::fs::File::options().write(true).open(path).unwrap();
            file.set_modified(an_hour_ago).unwrap();
        }
        let removed = remove_stale_staged_files(root.path(), Duration::from_secs(60)).unwrap();
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(staged.iter().all(|p| !p.exists()));
        assert!(kept.iter().all(|p| p.exists()));
    }
}
