//! `CREATE TABLE … DEEP CLONE`: the objects one version of a table is made of, copied into
//! another table's folder.
//!
//! A version is its live files: each data file, its deletion vector and its index segments.
//! They are copied under the same relative names (a server-side copy on S3), so the source's
//! `add` actions describe the copies as they are, and the new table's first commit holds them.
//! The source's log, history and files of other versions stay behind.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::Result;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::TableError;
use super::error::external;
use super::index::{segment_location, segments_of};
use crate::txlog::{Add, Snapshot};

/// Copies at once; each copy is one request to an S3 bucket.
const CONCURRENT_COPIES: usize = 8;

/// The objects of `add` (data file, deletion vector, index segments) relative to `root`.
fn objects_of(root: &Path, add: &Add) -> Result<Vec<Path>> {
    let mut objects = vec![Path::from_url_path(format!("{root}/{}", add.path))?];
    if let Some(descriptor) = &add.deletion_vector
        && let Some(path) = descriptor.file_path(root).map_err(external)?
    {
        objects.push(path);
    }
    for segment in segments_of(add) {
        objects.push(segment_location(root, segment)?);
    }
    Ok(objects)
}

/// Copies the objects of `snapshot`'s live files from the table at `source` to the table at
/// `target`, and returns the `add` actions that describe the copies (the source's, marked as
/// data changes). On failure the copies made so far are deleted again.
pub async fn copy_files(
    store: &Arc<dyn ObjectStore>,
    source: &Path,
    target: &Path,
    snapshot: &Snapshot,
) -> Result<Vec<Add>> {
    let mut copies: Vec<(Path, Path)> = Vec::new();
    let mut seen = HashSet::new();
    for add in snapshot.files() {
        for from in objects_of(source, add)? {
            let relative = from
                .prefix_match(source)
                .map(Path::from_iter)
                .ok_or_else(|| TableError::Internal(format!("{from} is not under {source}")))?;
            let to = Path::from_iter(target.parts().chain(relative.parts()));
            if seen.insert(to.clone()) {
                copies.push((from, to));
            }
        }
    }
    let copied = futures::stream::iter(copies)
        .map(|(from, to)| {
            let store = Arc::clone(store);
            async move { store.copy(&from, &to).await.map(|_| to) }
        })
        .buffer_unordered(CONCURRENT_COPIES)
        .collect::<Vec<_>>()
        .await;
    let (made, failed): (Vec<_>, Vec<_>) = copied.into_iter().partition(Result::is_ok);
    if let Some(Err(error)) = failed.into_iter().next() {
        delete(store, made.into_iter().filter_map(Result::ok).collect()).await;
        return Err(error.into());
    }
    Ok(snapshot
        .files()
        .map(|add| Add {
            data_change: true,
            ..add.clone()
        })
        .collect())
}

/// Deletes the copies [`copy_files`] made under `root` for `adds` (when the commit that was to
/// add them failed).
pub async fn delete_files(store: &Arc<dyn ObjectStore>, root: &Path, adds: &[Add]) {
    let mut objects = Vec::new();
    for add in adds {
        objects.extend(objects_of(root, add).unwrap_or_default());
    }
    delete(store, objects).await;
}

/// Deletes `objects`, as far as it can.
async fn delete(store: &Arc<dyn ObjectStore>, objects: Vec<Path>) {
    let _ = futures::stream::iter(objects)
        .map(|path| {
            let store = Arc::clone(store);
            async move { store.delete(&path).await }
        })
        .buffer_unordered(CONCURRENT_COPIES)
        .try_collect::<Vec<_>>()
        .await;
}
