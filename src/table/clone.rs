//! `CREATE TABLE … DEEP | SHALLOW CLONE`: the files one version of a table is made of, as the
//! first commit of another table.
//!
//! A version is its live files: each data file, its deletion vector and its index segments.
//! A deep clone copies them into the new table's folder under the same relative names (a
//! server-side copy on S3), so the source's `add` actions describe the copies as they are; a
//! file the source itself names by absolute URI (it is a shallow clone) is copied under its
//! file name. A shallow clone copies nothing: its `add` actions name the source's data files
//! and deletion vectors by absolute URI (Delta's shallow clone), and leave out the index
//! segments, which name files relative to the source (an index reads a file without a segment
//! whole). The source's log, history and files of other versions stay behind.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::Result;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::TableError;
use super::error::external;
use super::index::{segment_location, segments_of, without_segments};
use crate::txlog::{Add, DeltaLog, Snapshot};

/// Copies at once; each copy is one request to an S3 bucket.
const CONCURRENT_COPIES: usize = 8;

/// The objects of `add` (data file, deletion vector, index segments) in the store.
fn objects_of(log: &DeltaLog, add: &Add) -> Result<Vec<Path>> {
    let mut objects = vec![log.file_path(&add.path).map_err(external)?];
    if let Some(descriptor) = &add.deletion_vector
        && let Some(path) = descriptor.file_path(log).map_err(external)?
    {
        objects.push(path);
    }
    for segment in segments_of(add) {
        objects.push(segment_location(log.root(), segment)?);
    }
    Ok(objects)
}

/// Where the copy of `from`, an object of the table at `source`, goes in the table at
/// `target`: the same relative name, or its file name for an object outside `source`.
fn copy_location(from: &Path, source: &Path, target: &Path) -> Result<Path> {
    match from.prefix_match(source) {
        Some(relative) => Ok(Path::from_iter(target.parts().chain(relative))),
        None => {
            let name = from
                .filename()
                .ok_or_else(|| TableError::Internal(format!("{from} has no file name")))?;
            Ok(target.clone().join(name))
        }
    }
}

/// Copies the objects of `snapshot`'s live files from the table of `source` to the table of
/// `target`, and returns the `add` actions that describe the copies (the source's, marked as
/// data changes). On failure the copies made so far are deleted again.
pub async fn copy_files(
    source: &DeltaLog,
    target: &DeltaLog,
    snapshot: &Snapshot,
) -> Result<Vec<Add>> {
    let store = source.store();
    let mut copies: Vec<(Path, Path)> = Vec::new();
    let mut seen: HashMap<Path, Path> = HashMap::new();
    let mut adds = Vec::with_capacity(snapshot.files().len());
    for add in snapshot.files() {
        let mut copy = Add {
            data_change: true,
            ..add.clone()
        };
        for from in objects_of(source, add)? {
            let to = copy_location(&from, source.root(), target.root())?;
            point_at_copy(&mut copy, &from, &to, source, target)?;
            match seen.get(&to) {
                None => {
                    seen.insert(to.clone(), from.clone());
                    copies.push((from, to));
                }
                Some(earlier) if *earlier == from => {}
                Some(earlier) => {
                    return Err(TableError::NotSupported(format!(
                        "DEEP CLONE: files {earlier} and {from} would both be copied to {to}"
                    ))
                    .into());
                }
            }
        }
        adds.push(copy);
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
    Ok(adds)
}

/// Makes `add`, copied from the source, name `to` (the copy of its object `from`) where its
/// own path would not lead there: a file the source named by absolute URI, or found outside
/// the source's folder.
fn point_at_copy(
    add: &mut Add,
    from: &Path,
    to: &Path,
    source: &DeltaLog,
    target: &DeltaLog,
) -> Result<()> {
    let unreachable = || TableError::Internal(format!("{to} is not in the clone's folder"));
    if source.file_path(&add.path).map_err(external)? == *from {
        if target.file_path(&add.path).ok().as_ref() != Some(to) {
            add.path = target.relative_path(to).ok_or_else(unreachable)?;
        }
    } else if let Some(descriptor) = &mut add.deletion_vector
        && descriptor.file_path(source).map_err(external)?.as_ref() == Some(from)
        && descriptor.file_path(target).ok().flatten().as_ref() != Some(to)
    {
        descriptor.storage_type = "p".into();
        descriptor.path_or_inline_dv = target.absolute_uri(to).ok_or_else(unreachable)?;
    }
    Ok(())
}

/// The `add` actions of a shallow clone of `snapshot`'s table (at `source`): each names the
/// source's data file and deletion vector by absolute URI, without index segments.
pub fn reference_files(source: &DeltaLog, snapshot: &Snapshot) -> Result<Vec<Add>> {
    let absolute = |path: &Path| {
        source
            .absolute_uri(path)
            .ok_or_else(|| TableError::Internal("the data root has no URL".into()))
    };
    snapshot
        .files()
        .map(|add| {
            let mut reference = without_segments(add.clone());
            reference.data_change = true;
            reference.path = absolute(&source.file_path(&add.path).map_err(external)?)?;
            if let Some(descriptor) = &mut reference.deletion_vector
                && let Some(path) = descriptor.file_path(source).map_err(external)?
            {
                descriptor.storage_type = "p".into();
                descriptor.path_or_inline_dv = absolute(&path)?;
            }
            Ok(reference)
        })
        .collect()
}

/// Deletes the copies [`copy_files`] made for `adds` in the table of `log` (when the commit
/// that was to add them failed).
pub async fn delete_files(log: &DeltaLog, adds: &[Add]) {
    let mut objects = Vec::new();
    for add in adds {
        objects.extend(objects_of(log, add).unwrap_or_default());
    }
    delete(log.store(), objects).await;
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
