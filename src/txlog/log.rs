//! Reading and writing one table's `_delta_log/`.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde_json::Value;

use super::{Action, CommitInfo, Snapshot, TxLogError};

/// How many losing attempts a blind append retries before giving up.
const MAX_COMMIT_ATTEMPTS: usize = 1000;

/// What a commit does, recorded in its `commitInfo`.
#[derive(Debug, Clone, Default)]
pub struct Operation {
    /// Delta operation name, e.g. `WRITE` or `CREATE TABLE`.
    pub name: String,
    pub parameters: HashMap<String, Value>,
    pub metrics: HashMap<String, Value>,
    /// True when the commit only adds files and read nothing: it cannot conflict with appends.
    pub blind_append: bool,
}

/// The operation name of VACUUM's commit (which holds only its `commitInfo`).
pub const VACUUM_OPERATION: &str = "VACUUM END";

/// The `operationParameters` key of a VACUUM commit naming the oldest version still readable.
pub const MIN_READABLE_VERSION: &str = "minReadableVersion";

/// One commit object of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitFile {
    pub version: i64,
    /// When it was written, in milliseconds since the epoch.
    pub timestamp: i64,
}

/// The transaction log of the table rooted at `root` (relative to the store root).
#[derive(Debug, Clone)]
pub struct DeltaLog {
    store: Arc<dyn ObjectStore>,
    root: Path,
}

impl DeltaLog {
    pub fn new(store: Arc<dyn ObjectStore>, root: Path) -> Self {
        Self { store, root }
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The table root, relative to the store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn log_dir(&self) -> Path {
        self.root.clone().join("_delta_log")
    }

    fn commit_path(&self, version: i64) -> Path {
        self.log_dir().join(format!("{version:020}.json").as_str())
    }

    /// True when the table has at least one log entry.
    pub async fn exists(&self) -> Result<bool, TxLogError> {
        // Commit 0 answers in one request; a log whose early commits were cleaned up is listed.
        match self.store.head(&self.commit_path(0)).await {
            Ok(_) => return Ok(true),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let first = self.store.list(Some(&self.log_dir())).next().await;
        Ok(first.transpose()?.is_some())
    }

    async fn read_commit(&self, version: i64) -> Result<Option<Vec<Action>>, TxLogError> {
        let path = self.commit_path(version);
        let bytes = match self.store.get(&path).await {
            Ok(result) => result.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let text = std::str::from_utf8(&bytes).map_err(|e| TxLogError::Corrupt {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        let actions = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(Action::from_json_line)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TxLogError::Corrupt {
                path: path.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Some(actions))
    }

    /// The commits in the log, oldest first, with the time each was written (the commit
    /// object's modification time, made strictly increasing as Delta readers do).
    pub async fn commits(&self) -> Result<Vec<CommitFile>, TxLogError> {
        let entries: Vec<_> = self.store.list(Some(&self.log_dir())).try_collect().await?;
        let mut commits = Vec::new();
        let mut has_checkpoint = false;
        for entry in &entries {
            let Some(name) = entry.location.filename() else {
                continue;
            };
            if let Some(version) = name
                .strip_suffix(".json")
                .and_then(|v| v.parse::<i64>().ok())
            {
                commits.push(CommitFile {
                    version,
                    timestamp: entry.last_modified.timestamp_millis(),
                });
            } else if name.contains(".checkpoint") {
                has_checkpoint = true;
            }
        }
        commits.sort_unstable_by_key(|c| c.version);
        if commits.first().map(|c| c.version) != Some(0) {
            return Err(if has_checkpoint {
                TxLogError::Unsupported(
                    "tables whose early commits were replaced by a checkpoint".into(),
                )
            } else if commits.is_empty() {
                TxLogError::TableNotFound(self.root.to_string())
            } else {
                TxLogError::Corrupt {
                    path: self.log_dir().to_string(),
                    reason: "commit 0 is missing (an interrupted DROP TABLE? drop it again)".into(),
                }
            });
        }
        if let Some(gap) = commits
            .windows(2)
            .find(|w| w[1].version != w[0].version + 1)
        {
            return Err(TxLogError::Corrupt {
                path: self.log_dir().to_string(),
                reason: format!("commits jump from {} to {}", gap[0].version, gap[1].version),
            });
        }
        for i in 1..commits.len() {
            commits[i].timestamp = commits[i].timestamp.max(commits[i - 1].timestamp + 1);
        }
        Ok(commits)
    }

    /// Loads the latest snapshot by listing the log and replaying every commit.
    pub async fn load(&self) -> Result<Snapshot, TxLogError> {
        let commits = self.commits().await?;
        self.replay(commits.len() as i64 - 1).await
    }

    /// Loads the snapshot as of `version` (time travel).
    pub async fn load_version(&self, version: i64) -> Result<Snapshot, TxLogError> {
        let commits = self.commits().await?;
        let latest = commits.len() as i64 - 1;
        if !(0..=latest).contains(&version) {
            return Err(TxLogError::VersionNotFound {
                table: self.root.to_string(),
                requested: format!("version {version}"),
                available: format!("versions 0 to {latest}"),
            });
        }
        // VACUUM records the oldest version whose files it kept.
        let later: Vec<Vec<Action>> = futures::stream::iter(version + 1..=latest)
            .map(|v| self.commit_actions(v))
            .buffered(16)
            .try_collect()
            .await?;
        let horizon = later
            .iter()
            .flatten()
            .filter_map(|action| match action {
                Action::CommitInfo(info) if info.operation.as_deref() == Some(VACUUM_OPERATION) => {
                    info.operation_parameters
                        .as_ref()?
                        .get(MIN_READABLE_VERSION)?
                        .as_i64()
                }
                _ => None,
            })
            .max();
        if let Some(horizon) = horizon.filter(|h| version < *h) {
            return Err(TxLogError::VersionNotFound {
                table: self.root.to_string(),
                requested: format!("version {version}"),
                available: format!(
                    "VACUUM removed the files of versions before {horizon}; versions {horizon} to {latest} remain"
                ),
            });
        }
        self.replay(version).await
    }

    /// The newest version committed at or before `timestamp` (milliseconds since the epoch).
    pub async fn version_at(&self, timestamp: i64) -> Result<i64, TxLogError> {
        let commits = self.commits().await?;
        let before = commits.partition_point(|c| c.timestamp <= timestamp);
        if before == 0 {
            let first = chrono::DateTime::from_timestamp_millis(commits[0].timestamp)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
                .unwrap_or_default();
            let asked = chrono::DateTime::from_timestamp_millis(timestamp)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
                .unwrap_or_default();
            return Err(TxLogError::VersionNotFound {
                table: self.root.to_string(),
                requested: format!("timestamp {asked}"),
                available: format!("the table's first version was committed at {first}"),
            });
        }
        Ok(commits[before - 1].version)
    }

    /// The `commitInfo` of each commit, oldest first (`None` for a commit without one).
    pub async fn history(&self) -> Result<Vec<(CommitFile, Option<CommitInfo>)>, TxLogError> {
        let commits = self.commits().await?;
        futures::stream::iter(commits)
            .map(|commit| async move {
                let actions = self.commit_actions(commit.version).await?;
                let info = actions.into_iter().find_map(|a| match a {
                    Action::CommitInfo(info) => Some(info),
                    _ => None,
                });
                Ok::<_, TxLogError>((commit, info))
            })
            .buffered(16)
            .try_collect()
            .await
    }

    /// Replays commits 0 to `version`.
    async fn replay(&self, version: i64) -> Result<Snapshot, TxLogError> {
        let commits: Vec<(i64, Vec<Action>)> = futures::stream::iter(0..=version)
            .map(|v| async move { Ok::<_, TxLogError>((v, self.commit_actions(v).await?)) })
            .buffered(16)
            .try_collect()
            .await?;
        Snapshot::replay(self.root.as_ref(), commits)
    }

    /// The actions of a commit the listing showed.
    pub async fn commit_actions(&self, version: i64) -> Result<Vec<Action>, TxLogError> {
        self.read_commit(version)
            .await?
            .ok_or_else(|| TxLogError::Corrupt {
                path: self.commit_path(version).to_string(),
                reason: "commit vanished while loading".into(),
            })
    }

    /// Brings `snapshot` up to date by reading the commits after it, if any.
    ///
    /// Commits are contiguous, so probing `version + 1` costs one request when nothing changed.
    pub async fn update(&self, snapshot: &Arc<Snapshot>) -> Result<Arc<Snapshot>, TxLogError> {
        let mut current = Arc::clone(snapshot);
        while let Some(actions) = self.read_commit(current.version() + 1).await? {
            current = Arc::new(current.advance(current.version() + 1, actions)?);
        }
        Ok(current)
    }

    /// Creates the table: writes commit 0 if, and only if, it does not exist yet.
    pub async fn create(
        &self,
        operation: Operation,
        actions: Vec<Action>,
    ) -> Result<Snapshot, TxLogError> {
        let body = commit_body(&operation, None, &actions)?;
        match self.put_if_absent(0, body).await {
            Ok(()) => {}
            Err(TxLogError::ObjectStore(object_store::Error::AlreadyExists { .. })) => {
                return Err(TxLogError::TableExists(self.root.to_string()));
            }
            Err(e) => return Err(e),
        }
        Snapshot::replay(self.root.as_ref(), [(0, actions)])
    }

    /// Commits `actions` on top of `snapshot` and returns the new snapshot.
    ///
    /// When another writer took the next version first, a blind append moves on to the next
    /// free version (appends never conflict with each other), and so does a commit that only
    /// rearranges data (`dataChange:false`, e.g. OPTIMIZE) or follows one, unless both remove
    /// the same file; any commit after a schema or protocol change, and any other non-blind
    /// commit, fails with a retryable conflict.
    pub async fn commit(
        &self,
        snapshot: &Arc<Snapshot>,
        operation: Operation,
        actions: Vec<Action>,
    ) -> Result<Arc<Snapshot>, TxLogError> {
        let body = commit_body(&operation, Some(snapshot.version()), &actions)?;
        // A schema, property or protocol change was decided on `snapshot` and must not be laid
        // over commits it did not see (an index over files it never indexed, say).
        let ours_changes_table = changes_table(&actions);
        let ours_rearranges = rearranges_only(&actions);
        let mut base = Arc::clone(snapshot);
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            let version = base.version() + 1;
            match self.put_if_absent(version, body.clone()).await {
                Ok(()) => return Ok(Arc::new(base.advance(version, actions)?)),
                Err(TxLogError::ObjectStore(object_store::Error::AlreadyExists { .. })) => {}
                Err(e) => return Err(e),
            }
            let winner = self.read_commit(version).await?.unwrap_or_default();
            // Write-serializable: new rows appended by a blind append were not there when we
            // read, as if that append had committed after us; anything else may have changed
            // what we read (a removed file, rows added by an UPDATE).
            let reason = if changes_table(&winner) {
                Some("a concurrent transaction changed the table's schema, properties or protocol")
            } else if ours_changes_table {
                Some(
                    "this transaction changes the table's properties and another one committed first",
                )
            } else if operation.blind_append || is_blind_append(&winner) {
                None
            } else if ours_rearranges || rearranges_only(&winner) {
                // A rewrite that changes no data (OPTIMIZE) invalidates nothing anyone read;
                // only two commits removing the same file cannot both stand.
                removes_same_file(&winner, &actions).then_some(
                    "a concurrent transaction rewrote or changed a file this one changes",
                )
            } else {
                Some("a concurrent transaction changed the rows this one read")
            };
            if let Some(reason) = reason {
                return Err(TxLogError::Conflict {
                    table: self.root.to_string(),
                    version,
                    reason: reason.into(),
                });
            }
            base = Arc::new(base.advance(version, winner)?);
        }
        Err(TxLogError::Conflict {
            table: self.root.to_string(),
            version: base.version() + 1,
            reason: format!("lost {MAX_COMMIT_ATTEMPTS} commit races in a row"),
        })
    }

    async fn put_if_absent(&self, version: i64, body: PutPayload) -> Result<(), TxLogError> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.store
            .put_opts(&self.commit_path(version), body, options)
            .await?;
        Ok(())
    }

    /// Deletes every object of the table, log first so the table disappears at once.
    pub async fn delete_table(&self) -> Result<(), TxLogError> {
        let mut log: Vec<Path> = self
            .store
            .list(Some(&self.log_dir()))
            .map_ok(|m| m.location)
            .try_collect()
            .await?;
        log.sort();
        for path in log {
            delete_if_present(&self.store, &path).await?;
        }
        let rest: Vec<Path> = self
            .store
            .list(Some(&self.root))
            .map_ok(|m| m.location)
            .try_collect()
            .await?;
        for path in rest {
            delete_if_present(&self.store, &path).await?;
        }
        Ok(())
    }
}

async fn delete_if_present(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<(), TxLogError> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// True for a commit that changes the table's schema, properties or protocol.
fn changes_table(actions: &[Action]) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::Protocol(_) | Action::Metadata(_)))
}

/// True for a commit whose file actions all have `dataChange:false`: it moves rows between
/// files without changing what the table holds.
fn rearranges_only(actions: &[Action]) -> bool {
    let mut files = actions.iter().filter_map(|a| match a {
        Action::Add(add) => Some(add.data_change),
        Action::Remove(remove) => Some(remove.data_change),
        _ => None,
    });
    !changes_table(actions) && files.clone().next().is_some() && files.all(|change| !change)
}

/// True when both commits remove the same data file.
fn removes_same_file(theirs: &[Action], ours: &[Action]) -> bool {
    let removed: std::collections::HashSet<&str> = theirs
        .iter()
        .filter_map(|a| match a {
            Action::Remove(remove) => Some(remove.path.as_str()),
            _ => None,
        })
        .collect();
    ours.iter()
        .any(|a| matches!(a, Action::Remove(remove) if removed.contains(remove.path.as_str())))
}

/// True for a commit that only appended files without reading the table.
fn is_blind_append(actions: &[Action]) -> bool {
    let declared = actions
        .iter()
        .any(|a| matches!(a, Action::CommitInfo(info) if info.is_blind_append == Some(true)));
    declared
        && actions
            .iter()
            .all(|a| matches!(a, Action::CommitInfo(_) | Action::Add(_)))
}

fn commit_body(
    operation: &Operation,
    read_version: Option<i64>,
    actions: &[Action],
) -> Result<PutPayload, TxLogError> {
    let info = Action::CommitInfo(CommitInfo {
        timestamp: Some(chrono::Utc::now().timestamp_millis()),
        operation: Some(operation.name.clone()),
        operation_parameters: Some(operation.parameters.clone()),
        read_version,
        isolation_level: Some(
            if operation.blind_append {
                "Serializable"
            } else {
                "WriteSerializable"
            }
            .into(),
        ),
        is_blind_append: Some(operation.blind_append),
        operation_metrics: Some(operation.metrics.clone()),
        engine_info: Some(format!("MiniDB/{}", env!("CARGO_PKG_VERSION"))),
    });
    let mut text = String::new();
    for action in std::iter::once(&info).chain(actions) {
        text.push_str(&action.to_json_line()?);
        text.push('\n');
    }
    Ok(PutPayload::from(text.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txlog::{Add, Protocol, Remove};
    use object_store::memory::InMemory;

    fn table_actions() -> Vec<Action> {
        vec![
            Action::Protocol(Protocol {
                min_reader_version: 1,
                min_writer_version: 2,
                reader_features: None,
                writer_features: None,
            }),
            Action::Metadata(crate::txlog::actions::test_table_metadata()),
        ]
    }

    fn add(path: &str) -> Action {
        Action::Add(Add {
            path: path.into(),
            partition_values: Default::default(),
            size: 1,
            modification_time: 0,
            data_change: true,
            stats: None,
            tags: None,
            deletion_vector: None,
        })
    }

    fn append() -> Operation {
        Operation {
            name: "WRITE".into(),
            blind_append: true,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn second_create_reports_table_exists() {
        let log = DeltaLog::new(Arc::new(InMemory::new()), Path::from("db/t"));
        log.create(append(), table_actions()).await.unwrap();
        let err = log.create(append(), table_actions()).await.unwrap_err();
        assert!(matches!(err, TxLogError::TableExists(_)), "{err}");
    }

    #[tokio::test]
    async fn losing_blind_append_moves_to_next_version() {
        let log = DeltaLog::new(Arc::new(InMemory::new()), Path::from("db/t"));
        let v0 = Arc::new(log.create(append(), table_actions()).await.unwrap());
        let first = log.commit(&v0, append(), vec![add("a")]).await.unwrap();
        let second = log.commit(&v0, append(), vec![add("b")]).await.unwrap();
        assert_eq!(first.version(), 1);
        assert_eq!(second.version(), 2);
        let loaded = log.load().await.unwrap();
        assert_eq!(loaded.files().count(), 2);
        let refreshed = log.update(&v0).await.unwrap();
        assert_eq!(refreshed.version(), 2);
    }

    fn delete(path: &str) -> (Operation, Vec<Action>) {
        let operation = Operation {
            name: "DELETE".into(),
            ..Default::default()
        };
        let remove = Action::Remove(Remove {
            path: path.into(),
            deletion_timestamp: Some(1),
            data_change: true,
            extended_file_metadata: None,
            partition_values: None,
            size: None,
            deletion_vector: None,
        });
        (operation, vec![remove])
    }

    #[tokio::test]
    async fn rewrite_moves_past_a_concurrent_blind_append() {
        let log = DeltaLog::new(Arc::new(InMemory::new()), Path::from("db/t"));
        let v0 = Arc::new(log.create(append(), table_actions()).await.unwrap());
        let v1 = log.commit(&v0, append(), vec![add("a")]).await.unwrap();
        log.commit(&v1, append(), vec![add("b")]).await.unwrap();
        let (operation, actions) = delete("a");
        let v3 = log.commit(&v1, operation, actions).await.unwrap();
        assert_eq!(v3.version(), 3);
        assert_eq!(
            v3.files().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
    }

    #[tokio::test]
    async fn rewrite_conflicts_with_a_concurrent_rewrite() {
        let log = DeltaLog::new(Arc::new(InMemory::new()), Path::from("db/t"));
        let v0 = Arc::new(log.create(append(), table_actions()).await.unwrap());
        let v1 = log.commit(&v0, append(), vec![add("a")]).await.unwrap();
        let (operation, actions) = delete("a");
        log.commit(&v1, operation.clone(), actions.clone())
            .await
            .unwrap();
        let err = log.commit(&v1, operation, actions).await.unwrap_err();
        assert!(matches!(err, TxLogError::Conflict { .. }), "{err}");
        assert!(err.to_string().contains("retry"), "{err}");
    }

    /// OPTIMIZE's commit: `remove` and `add` with `dataChange:false`.
    fn compaction(removed: &[&str], added: &str) -> (Operation, Vec<Action>) {
        let mut actions: Vec<Action> = removed
            .iter()
            .map(|path| {
                Action::Remove(Remove {
                    path: (*path).into(),
                    deletion_timestamp: Some(1),
                    data_change: false,
                    extended_file_metadata: None,
                    partition_values: None,
                    size: None,
                    deletion_vector: None,
                })
            })
            .collect();
        let Action::Add(mut add) = add(added) else {
            unreachable!()
        };
        add.data_change = false;
        actions.push(Action::Add(add));
        let operation = Operation {
            name: "OPTIMIZE".into(),
            ..Default::default()
        };
        (operation, actions)
    }

    #[tokio::test]
    async fn compaction_and_a_delete_of_other_files_both_commit() {
        let log = DeltaLog::new(Arc::new(InMemory::new()), Path::from("db/t"));
        let v0 = Arc::new(log.create(append(), table_actions()).await.unwrap());
        let mut v = v0;
        for path in ["a", "b", "c"] {
            v = log.commit(&v, append(), vec![add(path)]).await.unwrap();
        }
        let (operation, actions) = compaction(&["a", "b"], "ab");
        log.commit(&v, operation, actions).await.unwrap();
        // A DELETE planned before the compaction, of a file the compaction left alone.
        let (operation, actions) = delete("c");
        let after = log.commit(&v, operation, actions).await.unwrap();
        assert_eq!(
            after.files().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            ["ab"]
        );
        // And the other way round: a compaction planned before a DELETE of another file.
        let v = log.commit(&after, append(), vec![add("d")]).await.unwrap();
        let v = log.commit(&v, append(), vec![add("e")]).await.unwrap();
        let (operation, actions) = delete("e");
        log.commit(&v, operation, actions).await.unwrap();
        let (operation, actions) = compaction(&["ab", "d"], "abd");
        let last = log.commit(&v, operation, actions).await.unwrap();
        assert_eq!(
            last.files().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            ["abd"]
        );
    }

    #[tokio::test]
    async fn compaction_conflicts_with_a_delete_of_its_files() {
        let log = DeltaLog::new(Arc::new(InMemory::new()), Path::from("db/t"));
        let v0 = Arc::new(log.create(append(), table_actions()).await.unwrap());
        let v1 = log.commit(&v0, append(), vec![add("a")]).await.unwrap();
        let v2 = log.commit(&v1, append(), vec![add("b")]).await.unwrap();
        let (operation, actions) = delete("a");
        log.commit(&v2, operation, actions).await.unwrap();
        let (operation, actions) = compaction(&["a", "b"], "ab");
        let err = log.commit(&v2, operation, actions).await.unwrap_err();
        assert!(matches!(err, TxLogError::Conflict { .. }), "{err}");
    }
}
