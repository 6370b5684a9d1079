//! `VACUUM t [RETAIN n HOURS] [DRY RUN]`: deleting files the table no longer needs.
//!
//! A file is needed when the current snapshot references it, or when a snapshot still inside
//! the retention window does: the log is replayed from the newest checkpoint at or before the
//! window's oldest version (commit 0 or the oldest checkpoint without one), and every file
//! removed at or after the retention cutoff stays protected, with everything it names — its
//! deletion vector and its index segments. Everything else under the table folder (outside `_delta_log/`, and the
//! commits FSCK set aside in `_fsck/`) is garbage once it is older than the cutoff: files of
//! rewritten or deleted data, old deletion vectors, segments of removed files, and orphans of
//! writes that never committed. The age test also protects files a concurrent writer is
//! uploading for a commit it has not made yet.
//!
//! Retention defaults to the table property `delta.deletedFileRetentionDuration` (Delta's
//! name, default 7 days); `RETAIN` may lengthen it but not shorten it, so going below it means
//! changing the property first. VACUUM then commits a `commitInfo`-only commit (`VACUUM END`)
//! that records the oldest version whose files it kept, so time travel to an older version
//! fails with a clear error instead of a missing file.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use datafusion::common::Result;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde_json::json;

use super::TableHandle;
use super::error::external;
use super::index::{segment_location, segments_of};
use super::properties;
use crate::table::TableError;
use crate::txlog::{
    Action, Add, DeltaLog, MIN_READABLE_VERSION, Operation, Remove, SET_ASIDE_DIR, VACUUM_OPERATION,
};

/// What a VACUUM deleted (or, for a dry run, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VacuumReport {
    /// Paths relative to the table folder, sorted, with their sizes in bytes.
    pub files: Vec<(String, u64)>,
    pub retention: Duration,
    pub dry_run: bool,
}

/// Runs VACUUM on the table behind `handle`.
pub async fn vacuum(
    handle: &Arc<TableHandle>,
    retain: Option<Duration>,
    dry_run: bool,
) -> Result<VacuumReport> {
    let snapshot = handle.refresh().await.map_err(external)?;
    let minimum = properties::retention(&snapshot).map_err(TableError::Corrupt)?;
    let retention = retain.unwrap_or(minimum);
    if retention < minimum {
        return Err(TableError::Invalid(format!(
            "VACUUM RETAIN {} HOURS is shorter than the table's retention of {} hours \
             ({}): time travel and running queries need those files; lower the property first \
             if you mean it",
            retention.as_secs() / 3600,
            minimum.as_secs() / 3600,
            properties::RETENTION
        ))
        .into());
    }
    let now = chrono::Utc::now().timestamp_millis();
    let cutoff = now - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let log = handle.log();
    let root = log.root();
    // From the newest checkpoint no newer than the oldest version still to be readable (else
    // commit 0, or the oldest checkpoint once log cleanup removed the commits before it): its
    // tombstones stand for the removes of the commits before it.
    let (first, base, commits) = log.replayable_since(cutoff).await.map_err(external)?;
    let mut protected: HashSet<Path> = HashSet::new();
    let base_time = commits
        .first()
        .filter(|c| c.version == first)
        .map_or(i64::MIN, |c| c.timestamp);
    // A checkpoint is a state: its tombstones are protected or not, and never remove a live
    // file (a path live again with another deletion vector).
    let (tombstones, base): (Vec<Action>, Vec<Action>) = base
        .into_iter()
        .partition(|a| matches!(a, Action::Remove(_)) && first > 0);
    for tombstone in &tombstones {
        if let Action::Remove(remove) = tombstone
            && remove.deletion_timestamp.unwrap_or(base_time) >= cutoff
        {
            protect_tombstone(&mut protected, log, remove)?;
        }
    }
    let replay = std::iter::once((first, base_time, Some(base))).chain(
        commits
            .iter()
            .filter(|c| c.version > first)
            .map(|c| (c.version, c.timestamp, None)),
    );
    let mut live: HashMap<String, Add> = HashMap::new();
    // The oldest version whose snapshot may still be read: the newest one at the cutoff.
    let mut min_readable = first;
    for (version, timestamp, actions) in replay {
        if timestamp <= cutoff {
            min_readable = version;
        }
        let actions = match actions {
            Some(actions) => actions,
            None => log.commit_actions(version).await.map_err(external)?,
        };
        for action in actions {
            match action {
                Action::Add(add) => {
                    // Re-adding a path (a new deletion vector) replaces its old entry.
                    if let Some(old) = live.insert(add.path.clone(), add)
                        && timestamp >= cutoff
                    {
                        protect(&mut protected, log, &old)?;
                    }
                }
                Action::Remove(remove) => {
                    let removed_at = remove.deletion_timestamp.unwrap_or(timestamp);
                    if let Some(old) = live.remove(&remove.path)
                        && removed_at.max(timestamp) >= cutoff
                    {
                        protect(&mut protected, log, &old)?;
                    }
                }
                _ => {}
            }
        }
    }
    for add in live.values() {
        protect(&mut protected, log, add)?;
    }
    let log_dir = root.clone().join("_delta_log");
    let set_aside = root.clone().join(SET_ASIDE_DIR);
    let mut garbage: Vec<(Path, u64)> = log
        .store()
        .list(Some(root))
        .try_filter(|meta| {
            let keep = meta.location.prefix_matches(&log_dir)
                || meta.location.prefix_matches(&set_aside)
                || protected.contains(&meta.location)
                || meta.last_modified.timestamp_millis() >= cutoff;
            futures::future::ready(!keep)
        })
        .map_ok(|meta| (meta.location, meta.size))
        .try_collect()
        .await?;
    garbage.sort();
    let report = VacuumReport {
        files: garbage
            .iter()
            .map(|(path, size)| {
                let relative = path
                    .prefix_match(root)
                    .map(|parts| {
                        parts
                            .map(|p| p.as_ref().to_string())
                            .collect::<Vec<_>>()
                            .join("/")
                    })
                    .unwrap_or_else(|| path.to_string());
                (relative, *size)
            })
            .collect(),
        retention,
        dry_run,
    };
    if dry_run {
        return Ok(report);
    }
    for (path, _) in &garbage {
        match log.store().delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let operation = Operation {
        name: VACUUM_OPERATION.into(),
        parameters: HashMap::from([
            (
                "specifiedRetentionMillis".into(),
                json!(retention.as_millis() as u64),
            ),
            (
                "defaultRetentionMillis".into(),
                json!(minimum.as_millis() as u64),
            ),
            (MIN_READABLE_VERSION.into(), json!(min_readable)),
        ]),
        metrics: HashMap::from([
            ("numDeletedFiles".into(), json!(report.files.len())),
            (
                "sizeOfDeletedFiles".into(),
                json!(report.files.iter().map(|(_, size)| size).sum::<u64>()),
            ),
        ]),
        blind_append: true,
    };
    handle
        .commit(&snapshot, operation, Vec::new())
        .await
        .map_err(external)?;
    Ok(report)
}

/// Marks a checkpoint tombstone's data file, deletion vector and index segments as needed.
fn protect_tombstone(protected: &mut HashSet<Path>, log: &DeltaLog, remove: &Remove) -> Result<()> {
    protect(
        protected,
        log,
        &Add {
            path: remove.path.clone(),
            partition_values: Default::default(),
            size: remove.size.unwrap_or_default(),
            modification_time: 0,
            data_change: false,
            stats: None,
            tags: remove.tags.clone(),
            deletion_vector: remove.deletion_vector.clone(),
        },
    )
}

/// Marks `add`'s data file, deletion vector and index segments as needed.
fn protect(protected: &mut HashSet<Path>, log: &DeltaLog, add: &Add) -> Result<()> {
    protected.insert(log.file_path(&add.path).map_err(external)?);
    if let Some(descriptor) = &add.deletion_vector
        && let Some(path) = descriptor.file_path(log).map_err(external)?
    {
        protected.insert(path);
    }
    for segment in segments_of(add) {
        protected.insert(segment_location(log.root(), segment)?);
    }
    Ok(())
}
