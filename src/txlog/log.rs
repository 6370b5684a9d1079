//! Reading and writing one table's `_delta_log/`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde_json::Value;
use url::Url;

use super::checkpoint::{self, LastCheckpoint, LogFile};
use super::{Action, CommitInfo, Remove, Snapshot, TxLogError};

/// The file in `_delta_log/` naming the newest checkpoint.
const LAST_CHECKPOINT: &str = "_last_checkpoint";

/// How many losing attempts a blind append retries before giving up.
const MAX_COMMIT_ATTEMPTS: usize = 1000;

/// The folder inside a table's folder where FSCK keeps a damaged commit it set aside: VACUUM
/// keeps it, and Delta readers ignore folders whose names start with `_`.
pub const SET_ASIDE_DIR: &str = "_fsck";

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

/// A damaged file of the log itself that [`DeltaLog::repair`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRepair {
    /// Its path inside the table folder.
    pub file: String,
    pub problem: String,
    /// What the repair did (or would do, or why it cannot).
    pub action: &'static str,
}

/// One commit object of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitFile {
    pub version: i64,
    /// When it was written, in milliseconds since the epoch.
    pub timestamp: i64,
}

/// Path parts joined with `/`, each URL-encoded as Delta's paths are.
fn url_encoded<'a>(parts: impl Iterator<Item = object_store::path::PathPart<'a>>) -> String {
    parts
        .map(|part| {
            url::form_urlencoded::byte_serialize(part.as_ref().as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The transaction log of the table rooted at `root` (relative to the store root).
#[derive(Debug, Clone)]
pub struct DeltaLog {
    store: Arc<dyn ObjectStore>,
    root: Path,
    /// The URL of the store root (ending in `/`), which absolute file URIs in the log (a
    /// shallow clone's) are resolved against.
    base: Option<Url>,
}

impl DeltaLog {
    pub fn new(store: Arc<dyn ObjectStore>, root: Path) -> Self {
        Self {
            store,
            root,
            base: None,
        }
    }

    /// This log with `base` as the URL of its store root.
    pub fn with_base(mut self, mut base: Url) -> Self {
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        self.base = Some(base);
        self
    }

    /// The store path of a file the log names: a path relative to the table root (URL-encoded,
    /// as Delta writes it), or an absolute URI under the store root.
    pub fn file_path(&self, path: &str) -> Result<Path, TxLogError> {
        let invalid = |reason: String| TxLogError::Corrupt {
            path: path.to_string(),
            reason,
        };
        let absolute = Url::parse(path)
            .ok()
            .filter(|url| url.has_host() || url.scheme() == "file");
        match absolute {
            Some(url) => {
                let inside = self
                    .base
                    .as_ref()
                    .and_then(|base| url.as_str().strip_prefix(base.as_str()));
                // Another engine may name a file of this table under another scheme or mount
                // (`s3a://`, a mounted path): it is found by the table's folder in its path.
                let folder = format!("/{}/", self.root);
                let relative = inside.or_else(|| {
                    let at = url.path().find(&folder)?;
                    Some(&url.path()[at + 1..])
                });
                let Some(relative) = relative else {
                    return Err(TxLogError::Unsupported(format!(
                        "file '{path}' outside this server's data root"
                    )));
                };
                Path::from_url_path(relative).map_err(|e| invalid(e.to_string()))
            }
            None => Path::from_url_path(format!("{}/{path}", self.root))
                .map_err(|e| invalid(e.to_string())),
        }
    }

    /// The absolute URI of `path` (relative to the store root), for a log that names files
    /// of another table; `None` when the store root's URL is unknown.
    pub fn absolute_uri(&self, path: &Path) -> Option<String> {
        let base = self.base.as_ref()?;
        base.join(&url_encoded(path.parts())).ok().map(String::from)
    }

    /// `path` (relative to the store root) as the log names a file of this table: relative to
    /// the table root, URL-encoded; `None` for a path outside the table's folder.
    pub fn relative_path(&self, path: &Path) -> Option<String> {
        path.prefix_match(&self.root).map(url_encoded)
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The table root, relative to the store root.
    /// The table as users name it in messages: `database.table`.
    pub fn table_name(&self) -> String {
        self.root.as_ref().replace('/', ".")
    }

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
        let Some(bytes) = self.commit_bytes(version).await? else {
            return Ok(None);
        };
        // A commit is the only record of its change: nothing can rebuild a damaged one.
        decode_commit(&bytes)
            .map(Some)
            .map_err(|reason| TxLogError::Corrupt {
                path: path.to_string(),
                reason: format!(
                    "{reason} (FSCK REPAIR TABLE sets a damaged newest commit aside, losing its \
                 changes; an earlier one must be restored from a copy of the table)"
                ),
            })
    }

    async fn commit_bytes(&self, version: i64) -> Result<Option<Bytes>, TxLogError> {
        match self.store.get(&self.commit_path(version)).await {
            Ok(result) => Ok(Some(result.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The commits in the log, oldest first, with the time each was written (the commit
    /// object's modification time, made strictly increasing as Delta readers do). After log
    /// cleanup the oldest ones are gone and a checkpoint stands in for them.
    pub async fn commits(&self) -> Result<Vec<CommitFile>, TxLogError> {
        Ok(self.list(None).await?.commits)
    }

    /// Lists `_delta_log/` (from version `from` on, when given) and checks that the newest
    /// unbroken run of commits, with a checkpoint where it does not start at 0, rebuilds the
    /// table.
    ///
    /// A local directory read while commits land may return a new commit and miss the one
    /// before it (`readdir` promises nothing of entries made during it). So when the newest run
    /// cannot be replayed, the listing is read as of the end of its longest replayable run
    /// instead — an older version, as if listed a moment earlier — if the commit after that run
    /// does exist; only when it does not is the log corrupt.
    async fn list(&self, from: Option<i64>) -> Result<Listing, TxLogError> {
        let dir = self.log_dir();
        let entries: Vec<ObjectMeta> = match from {
            Some(version) => {
                let offset = dir.clone().join(format!("{version:020}").as_str());
                self.store
                    .list_with_offset(Some(&dir), &offset)
                    .try_collect()
                    .await?
            }
            None => self.store.list(Some(&dir)).try_collect().await?,
        };
        let listing = Listing::new(&entries);
        let prefix = listing.replayable_prefix();
        match listing.validated(&dir) {
            Err(corrupt @ TxLogError::Corrupt { .. }) => match prefix {
                Some(prefix) => match self
                    .store
                    .head(&self.commit_path(prefix.latest() + 1))
                    .await
                {
                    Ok(_) => Ok(prefix),
                    Err(object_store::Error::NotFound { .. }) => Err(corrupt),
                    Err(e) => Err(e.into()),
                },
                None => Err(corrupt),
            },
            result => result,
        }
    }

    /// The newest checkpoint `_last_checkpoint` names, if it names one that can be read.
    async fn last_checkpoint(&self) -> Option<LastCheckpoint> {
        let path = self.log_dir().join(LAST_CHECKPOINT);
        let bytes = match self.store.get(&path).await {
            Ok(result) => result.bytes().await.ok()?,
            Err(object_store::Error::NotFound { .. }) => return None,
            Err(e) => {
                tracing::warn!(path = %path, error = %e, "cannot read _last_checkpoint; listing the whole log");
                return None;
            }
        };
        serde_json::from_slice(&bytes)
            .inspect_err(|e| {
                tracing::warn!(path = %path, error = %e, "malformed _last_checkpoint; listing the whole log");
            })
            .ok()
    }

    /// A listing that can replay `version` (the newest when `None`): from the newest
    /// checkpoint on when `_last_checkpoint` names one at or before it, else the whole log.
    async fn list_for(&self, version: Option<i64>) -> Result<Listing, TxLogError> {
        if let Some(hint) = self.last_checkpoint().await
            && version.is_none_or(|v| hint.version <= v)
            && let Ok(listing) = self.list(Some(hint.version)).await
            && listing.checkpoints.contains_key(&hint.version)
            && version.is_none_or(|v| v <= listing.latest())
        {
            return Ok(listing);
        }
        self.list(None).await
    }

    /// Loads the latest snapshot: the newest checkpoint plus the commits after it.
    ///
    /// When `_last_checkpoint` names a checkpoint that reads, nothing is listed: the commits
    /// after it are read by name, a few at a time, until one is missing (as [`Self::update`]
    /// probes). A listing decides only where that does not hold: no `_last_checkpoint`, a
    /// missing or damaged checkpoint, or a gap among the commits after it.
    pub async fn load(&self) -> Result<Snapshot, TxLogError> {
        if let Some(hint) = self.last_checkpoint().await
            && let Some(snapshot) = self.load_after(&hint).await?
        {
            return Ok(snapshot);
        }
        let listing = self.list_for(None).await?;
        self.replay(&listing, listing.latest()).await
    }

    /// The newest snapshot replayed from the checkpoint `hint` names and the commits after it,
    /// read by name; `None` when that checkpoint cannot be read or the commits after it have a
    /// gap, which a listing must judge.
    async fn load_after(&self, hint: &LastCheckpoint) -> Result<Option<Snapshot>, TxLogError> {
        const WINDOW: i64 = 8;
        let checkpoint = match self
            .checkpoint_parts(hint.version, hint.part_count(), checkpoint::Read::State)
            .await
        {
            Ok(actions) => actions,
            Err(TxLogError::Corrupt { .. })
            | Err(TxLogError::ObjectStore(object_store::Error::NotFound { .. })) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let mut state = vec![(hint.version, checkpoint)];
        let mut next = hint.version + 1;
        loop {
            let window: Vec<Option<Vec<Action>>> = futures::stream::iter(next..next + WINDOW)
                .map(|v| self.read_commit(v))
                .buffered(WINDOW as usize)
                .try_collect()
                .await?;
            let found = window.iter().take_while(|c| c.is_some()).count();
            if window[found..].iter().any(Option::is_some) {
                return Ok(None);
            }
            for actions in window.into_iter().flatten() {
                state.push((next, actions));
                next += 1;
            }
            if found < WINDOW as usize {
                break;
            }
        }
        Snapshot::replay(self.root.as_ref(), state).map(Some)
    }

    /// Loads the snapshot as of `version` (time travel).
    pub async fn load_version(&self, version: i64) -> Result<Snapshot, TxLogError> {
        let listing = self.list(None).await?;
        let latest = listing.latest();
        if !(0..=latest).contains(&version) {
            return Err(TxLogError::VersionNotFound {
                table: self.table_name(),
                requested: format!("version {version}"),
                available: format!("versions 0 to {latest}"),
            });
        }
        if listing.start_for(version).is_none() {
            let first = listing.first_readable();
            return Err(TxLogError::VersionNotFound {
                table: self.table_name(),
                requested: format!("version {version}"),
                available: format!(
                    "log cleanup removed the commits before version {first} (delta.logRetentionDuration); versions {first} to {latest} remain"
                ),
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
                table: self.table_name(),
                requested: format!("version {version}"),
                available: format!(
                    "VACUUM removed the files of versions before {horizon}; versions {horizon} to {latest} remain"
                ),
            });
        }
        self.replay(&listing, version).await
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
                table: self.table_name(),
                requested: format!("timestamp {asked}"),
                available: format!("the oldest version still in the log was committed at {first}"),
            });
        }
        Ok(commits[before - 1].version)
    }

    /// The `commitInfo` of each commit still in the log, oldest first (`None` for a commit
    /// without one).
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

    /// A state the log can rebuild from which every version committed after `cutoff`
    /// (milliseconds since the epoch) replays, as its version and the actions that rebuild it,
    /// with the commits from that version on: the newest checkpoint at or before the newest
    /// version committed at or before `cutoff` (so VACUUM reads the commits of its retention
    /// window, not the whole log), else commit 0 or the oldest usable checkpoint.
    pub async fn replayable_since(
        &self,
        cutoff: i64,
    ) -> Result<(i64, Vec<Action>, Vec<CommitFile>), TxLogError> {
        let listing = self.list(None).await?;
        let oldest = listing.first_readable();
        let readable_at_cutoff = listing
            .commits
            .iter()
            .take_while(|c| c.timestamp <= cutoff)
            .last()
            .map_or(oldest, |c| c.version);
        let first = listing
            .checkpoints
            .range(oldest..=readable_at_cutoff)
            .next_back()
            .map_or(oldest, |(v, _)| *v);
        let base = match listing.start_for(first) {
            Some(Some(checkpoint)) => {
                self.checkpoint_actions(&listing, checkpoint, checkpoint::Read::All)
                    .await?
            }
            _ => self.commit_actions(first).await?,
        };
        let later = listing
            .commits
            .into_iter()
            .filter(|c| c.version >= first)
            .collect();
        Ok((first, base, later))
    }

    /// Replays the listing's newest checkpoint at or before `version`, or commit 0, and the
    /// commits after it up to `version`.
    async fn replay(&self, listing: &Listing, version: i64) -> Result<Snapshot, TxLogError> {
        let Some(start) = listing.start_for(version) else {
            return Err(TxLogError::VersionNotFound {
                table: self.table_name(),
                requested: format!("version {version}"),
                available: format!(
                    "versions {} to {}",
                    listing.first_readable(),
                    listing.latest()
                ),
            });
        };
        let mut state = Vec::new();
        let first_commit = match start {
            Some(checkpoint) => {
                // A checkpoint is a state, not a sequence: its tombstones may name a path that
                // is live again (with another deletion vector) and must not remove it.
                let actions = match self
                    .checkpoint_actions(listing, checkpoint, checkpoint::Read::State)
                    .await
                {
                    Ok(actions) => actions,
                    Err(e @ TxLogError::Corrupt { .. }) => {
                        return self.replay_around(checkpoint, version, e).await;
                    }
                    Err(e) => return Err(e),
                };
                state.push((checkpoint, actions));
                checkpoint + 1
            }
            None => 0,
        };
        let commits: Vec<(i64, Vec<Action>)> = futures::stream::iter(first_commit..=version)
            .map(|v| async move { Ok::<_, TxLogError>((v, self.commit_actions(v).await?)) })
            .buffered(16)
            .try_collect()
            .await?;
        state.extend(commits);
        Snapshot::replay(self.root.as_ref(), state)
    }

    /// Replays `version` without the damaged checkpoint of version `damaged`: from an older
    /// checkpoint or commit 0 when the log still holds the commits in between (a checkpoint only
    /// summarises them), else fails with `error`, which names the checkpoint.
    fn replay_around(
        &self,
        damaged: i64,
        version: i64,
        error: TxLogError,
    ) -> BoxFuture<'_, Result<Snapshot, TxLogError>> {
        async move {
            let mut listing = self.list(None).await?;
            listing.checkpoints.remove(&damaged);
            if listing.start_for(version).is_none() {
                return Err(error);
            }
            tracing::warn!(table = %self.root, error = %error, "damaged checkpoint; replaying the commits it summarises instead");
            self.replay(&listing, version).await
        }
        .boxed()
    }

    /// Finds damaged files of the log and, unless `dry_run`, repairs what can be repaired:
    ///
    /// - a damaged checkpoint is deleted when the commits it summarises are still in the log
    ///   (readers replay those instead);
    /// - `_last_checkpoint` that does not parse or names a checkpoint that is not there is
    ///   pointed at the newest good checkpoint (or deleted when there is none);
    /// - a damaged commit that reads replay (one after the newest good checkpoint) is moved to
    ///   [`SET_ASIDE_DIR`] when it is the newest commit, so the table reads as of the version
    ///   before it and the commit's changes are lost; an earlier one is kept (later commits
    ///   build on it), as is commit 0 (it creates the table).
    pub async fn repair(&self, dry_run: bool) -> Result<Vec<LogRepair>, TxLogError> {
        let listing = self.list(None).await?;
        let mut repairs = Vec::new();
        let mut good: BTreeMap<i64, (u32, usize, usize)> = BTreeMap::new();
        let mut damaged = Vec::new();
        for (&version, &parts) in &listing.checkpoints {
            match self
                .checkpoint_actions(&listing, version, checkpoint::Read::All)
                .await
            {
                Ok(actions) => {
                    let adds = actions
                        .iter()
                        .filter(|a| matches!(a, Action::Add(_)))
                        .count();
                    good.insert(version, (parts, actions.len(), adds));
                }
                Err(TxLogError::Corrupt { reason, .. }) => damaged.push((version, parts, reason)),
                Err(e) => return Err(e),
            }
        }
        let without = Listing {
            commits: listing.commits.clone(),
            checkpoints: good.iter().map(|(v, (parts, ..))| (*v, *parts)).collect(),
        };
        for (version, parts, reason) in damaged {
            let paths: Vec<String> = (1..=parts)
                .map(|part| checkpoint::checkpoint_part_name(version, part, parts))
                .collect();
            let replaceable = without.start_for(version).is_some();
            for name in &paths {
                repairs.push(LogRepair {
                    file: format!("_delta_log/{name}"),
                    problem: format!("is a damaged checkpoint: {reason}"),
                    action: match (replaceable, dry_run) {
                        (true, true) => "would delete",
                        (true, false) => "deleted",
                        (false, _) => {
                            "kept: the commits it summarises were cleaned up; restore it from a copy"
                        }
                    },
                });
            }
            if replaceable && !dry_run {
                for name in &paths {
                    delete_if_present(&self.store, &self.log_dir().join(name.as_str())).await?;
                }
            }
        }
        let path = self.log_dir().join(LAST_CHECKPOINT);
        let hint = match self.store.get(&path).await {
            Ok(result) => Some(result.bytes().await?),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let problem =
            hint.and_then(
                |bytes| match serde_json::from_slice::<LastCheckpoint>(&bytes) {
                    Err(e) => Some(format!("does not parse: {e}")),
                    Ok(last) if !good.contains_key(&last.version) => Some(format!(
                        "names checkpoint {} which is missing or damaged",
                        last.version
                    )),
                    Ok(_) => None,
                },
            );
        if let Some(problem) = problem {
            let newest = good.last_key_value();
            repairs.push(LogRepair {
                file: format!("_delta_log/{LAST_CHECKPOINT}"),
                problem,
                action: match (newest.is_some(), dry_run) {
                    (true, true) => "would rewrite",
                    (true, false) => "rewrote",
                    (false, true) => "would delete",
                    (false, false) => "deleted",
                },
            });
            if !dry_run {
                match newest {
                    Some((&version, &(parts, size, adds))) => {
                        let last = LastCheckpoint {
                            version,
                            size: size as i64,
                            size_in_bytes: None,
                            num_of_add_files: Some(adds as i64),
                            parts: (parts > 1).then_some(i64::from(parts)),
                        };
                        self.store
                            .put(&path, PutPayload::from(serde_json::to_vec(&last)?))
                            .await?;
                    }
                    None => delete_if_present(&self.store, &path).await?,
                }
            }
        }
        let replayed = good.last_key_value().map_or(0, |(version, _)| version + 1);
        let latest = listing.latest();
        for version in replayed.max(listing.commits.first().map_or(0, |c| c.version))..=latest {
            let Some(bytes) = self.commit_bytes(version).await? else {
                continue;
            };
            let Err(reason) = decode_commit(&bytes) else {
                continue;
            };
            let name = format!("{version:020}.json");
            let aside = version == latest && version > 0;
            repairs.push(LogRepair {
                file: format!("_delta_log/{name}"),
                problem: format!("is a damaged commit: {reason}"),
                action: match (aside, dry_run) {
                    (true, true) => {
                        "would set aside in _fsck/: the table would read as of the version before, without this commit's changes"
                    }
                    (true, false) => {
                        "set aside in _fsck/: the table reads as of the version before, without this commit's changes"
                    }
                    (false, _) if version == 0 => {
                        "kept: it creates the table; restore it from a copy of the table, or drop and re-create the table"
                    }
                    (false, _) => {
                        "kept: later commits build on it; restore it from a copy of the table"
                    }
                },
            });
            if aside && !dry_run {
                let kept = self.root.clone().join(SET_ASIDE_DIR).join(name.as_str());
                self.store.put(&kept, PutPayload::from(bytes)).await?;
                self.store.delete(&self.commit_path(version)).await?;
            }
        }
        Ok(repairs)
    }

    /// The actions of the listing's checkpoint at `version`, all parts in order.
    async fn checkpoint_actions(
        &self,
        listing: &Listing,
        version: i64,
        read: checkpoint::Read,
    ) -> Result<Vec<Action>, TxLogError> {
        let parts = listing.checkpoints.get(&version).copied().unwrap_or(1);
        self.checkpoint_parts(version, parts, read).await
    }

    /// The actions of the `parts`-part checkpoint at `version`, all parts in order.
    async fn checkpoint_parts(
        &self,
        version: i64,
        parts: u32,
        read: checkpoint::Read,
    ) -> Result<Vec<Action>, TxLogError> {
        let mut actions = Vec::new();
        for part in 1..=parts {
            let path = self
                .log_dir()
                .join(checkpoint::checkpoint_part_name(version, part, parts).as_str());
            let bytes = self.store.get(&path).await?.bytes().await?;
            actions.extend(checkpoint::decode(bytes, read).map_err(|reason| {
                TxLogError::Corrupt {
                    path: path.to_string(),
                    reason,
                }
            })?);
        }
        Ok(actions)
    }

    /// Writes the checkpoint of `snapshot`, a committed version, keeping the tombstones of
    /// files removed at or after `tombstone_cutoff` (milliseconds since the epoch), and points
    /// `_last_checkpoint` at it unless it already names a newer one.
    pub async fn checkpoint(
        &self,
        snapshot: &Snapshot,
        tombstone_cutoff: i64,
    ) -> Result<(), TxLogError> {
        let version = snapshot.version();
        let mut actions = vec![
            Action::Protocol(snapshot.protocol().clone()),
            Action::Metadata(snapshot.metadata().clone()),
        ];
        actions.extend(snapshot.files().cloned().map(Action::Add));
        let adds = snapshot.files().len();
        actions.extend(
            self.tombstones(snapshot, tombstone_cutoff)
                .await?
                .into_iter()
                .map(Action::Remove),
        );
        let path = self
            .log_dir()
            .join(checkpoint::checkpoint_name(version).as_str());
        let body = checkpoint::encode(&actions).map_err(|reason| TxLogError::Corrupt {
            path: path.to_string(),
            reason: format!("cannot encode the checkpoint: {reason}"),
        })?;
        let size_in_bytes = body.len();
        // A checkpoint describes its version completely: rewriting it (a second writer, a
        // retry) replaces it with the same state, atomically.
        self.store.put(&path, PutPayload::from(body)).await?;
        if self
            .last_checkpoint()
            .await
            .is_some_and(|last| last.version >= version)
        {
            return Ok(());
        }
        let last = LastCheckpoint {
            version,
            size: actions.len() as i64,
            size_in_bytes: Some(size_in_bytes as i64),
            num_of_add_files: Some(adds as i64),
            parts: None,
        };
        self.store
            .put(
                &self.log_dir().join(LAST_CHECKPOINT),
                PutPayload::from(serde_json::to_vec(&last)?),
            )
            .await?;
        Ok(())
    }

    /// The tombstones of `snapshot`: files removed at or after `cutoff` (milliseconds since the
    /// epoch) that it does not reference any more, each with the deletion vector it had.
    pub async fn tombstones(
        &self,
        snapshot: &Snapshot,
        cutoff: i64,
    ) -> Result<Vec<Remove>, TxLogError> {
        let version = snapshot.version();
        let removed = match self.removed_since_last_checkpoint(version).await? {
            Some(removed) => removed,
            None => self.removed_as_listed(version).await?,
        };
        let mut tombstones: Vec<Remove> = removed
            .into_values()
            .filter(|r| r.deletion_timestamp.unwrap_or_default() >= cutoff)
            .filter(|r| {
                snapshot
                    .file(&r.path)
                    .is_none_or(|live| live.deletion_vector != r.deletion_vector)
            })
            .collect();
        tombstones.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(tombstones)
    }

    /// The files removed up to `version`, read from the checkpoint `_last_checkpoint` names
    /// and the commits after it, each by its name: no listing of the log, whose cost grows
    /// with every commit until log cleanup. `None` when there is no such checkpoint at or
    /// before `version`, it cannot be read, or a commit after it is missing.
    async fn removed_since_last_checkpoint(
        &self,
        version: i64,
    ) -> Result<Option<Removed>, TxLogError> {
        let Some(last) = self
            .last_checkpoint()
            .await
            .filter(|l| l.version <= version)
        else {
            return Ok(None);
        };
        // A checkpoint that cannot be read leaves it to the listing, which finds one that can.
        let Ok(checkpoint) = self
            .checkpoint_parts(last.version, last.part_count(), checkpoint::Read::All)
            .await
        else {
            return Ok(None);
        };
        let mut removed = Removed::default();
        removed.apply(checkpoint, 0);
        for v in last.version + 1..=version {
            let Some(actions) = self.read_commit(v).await? else {
                return Ok(None);
            };
            // A remove without its own time takes its commit's (the listing's object time is
            // not known here; MiniDB's removes always carry theirs).
            let timestamp = actions
                .iter()
                .find_map(|a| match a {
                    Action::CommitInfo(info) => info.timestamp,
                    _ => None,
                })
                .unwrap_or_default();
            removed.apply(actions, timestamp);
        }
        Ok(Some(removed))
    }

    /// The files removed up to `version`, from a listing of the log.
    async fn removed_as_listed(&self, version: i64) -> Result<Removed, TxLogError> {
        let listing = self.list_for(Some(version)).await?;
        let mut removed = Removed::default();
        let Some(start) = listing.start_for(version) else {
            return Ok(removed);
        };
        let first_commit = match start {
            Some(checkpoint) => {
                let actions = self
                    .checkpoint_actions(&listing, checkpoint, checkpoint::Read::All)
                    .await?;
                removed.apply(actions, 0);
                checkpoint + 1
            }
            None => 0,
        };
        for commit in listing
            .commits
            .iter()
            .filter(|c| (first_commit..=version).contains(&c.version))
        {
            removed.apply(self.commit_actions(commit.version).await?, commit.timestamp);
        }
        Ok(removed)
    }

    /// Deletes the log files that reading no longer needs once commits older than `cutoff`
    /// (milliseconds since the epoch) expire: everything before the newest checkpoint whose
    /// commit is older than the cutoff. Versions before that checkpoint can no longer be read.
    ///
    /// It lists the whole log, so it says when running it again can next delete anything.
    pub async fn clean_up(&self, cutoff: i64) -> Result<CleanUp, TxLogError> {
        let dir = self.log_dir();
        let entries: Vec<ObjectMeta> = self.store.list(Some(&dir)).try_collect().await?;
        let listing = Listing::new(&entries);
        let committed_at: HashMap<i64, i64> = listing
            .commits
            .iter()
            .map(|c| (c.version, c.timestamp))
            .collect();
        let keep_from = listing
            .checkpoints
            .keys()
            .rev()
            .find(|v| committed_at.get(v).is_some_and(|t| *t <= cutoff))
            .copied();
        // The next cleanup needs a checkpoint after the oldest version kept to expire: the
        // oldest one there is, or one not written yet (committed from now on).
        let oldest_kept =
            keep_from.unwrap_or_else(|| listing.commits.first().map_or(0, |c| c.version));
        let next_due = listing
            .checkpoints
            .range(oldest_kept + 1..)
            .find_map(|(v, _)| committed_at.get(v).copied())
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let Some(keep_from) = keep_from else {
            return Ok(CleanUp {
                deleted: 0,
                next_due,
            });
        };
        let mut doomed: Vec<(i64, Path)> = entries
            .into_iter()
            .filter_map(|entry| {
                let version = entry
                    .location
                    .filename()?
                    .split('.')
                    .next()?
                    .parse::<i64>()
                    .ok()?;
                (version < keep_from).then_some((version, entry.location))
            })
            .collect();
        // Oldest first: an interrupted cleanup leaves an unbroken run of commits.
        doomed.sort();
        for (_, path) in &doomed {
            delete_if_present(&self.store, path).await?;
        }
        Ok(CleanUp {
            deleted: doomed.len(),
            next_due,
        })
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
                return Err(TxLogError::TableExists(self.table_name()));
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
        let ours_statistics_only = statistics_only(&actions, snapshot);
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
            let winner_statistics_only = statistics_only(&winner, &base);
            let reason = if winner_statistics_only && !ours_changes_table {
                // Advisory figures changed: nothing anyone read or writes depends on them.
                None
            } else if ours_statistics_only && !changes_table(&winner) {
                None
            } else if changes_table(&winner) {
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
                    table: self.table_name(),
                    version,
                    reason: reason.into(),
                });
            }
            base = Arc::new(base.advance(version, winner)?);
        }
        Err(TxLogError::Conflict {
            table: self.table_name(),
            version: base.version() + 1,
            reason: format!("lost {MAX_COMMIT_ATTEMPTS} commit races in a row"),
        })
    }

    async fn put_if_absent(&self, version: i64, body: PutPayload) -> Result<(), TxLogError> {
        super::commit_point::reached();
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.store
            .put_opts(&self.commit_path(version), body, options)
            .await?;
        Ok(())
    }

    /// Deletes every object of the table, log first so the table disappears at once:
    /// checkpoints, then commits from 0 on, so an interrupted drop leaves a log that no longer
    /// rebuilds (reported as such) rather than an older state of the table.
    pub async fn delete_table(&self) -> Result<(), TxLogError> {
        let mut log: Vec<Path> = self
            .store
            .list(Some(&self.log_dir()))
            .map_ok(|m| m.location)
            .try_collect()
            .await?;
        log.sort_by_key(|path| {
            let commit = path
                .filename()
                .is_some_and(|name| matches!(LogFile::parse(name), LogFile::Commit(_)));
            (commit, path.clone())
        });
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

/// The actions of a commit, or why its bytes are not a commit.
fn decode_commit(bytes: &[u8]) -> Result<Vec<Action>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(Action::from_json_line)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

async fn delete_if_present(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<(), TxLogError> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// What a listing of `_delta_log/` found.
#[derive(Debug, Default)]
struct Listing {
    /// Commits, oldest first, with their modification times made strictly increasing.
    commits: Vec<CommitFile>,
    /// Versions with a complete checkpoint, and its number of parts.
    checkpoints: BTreeMap<i64, u32>,
}

impl Listing {
    fn new(entries: &[ObjectMeta]) -> Self {
        let mut commits = Vec::new();
        let mut parts: HashMap<(i64, u32), HashSet<u32>> = HashMap::new();
        for entry in entries {
            match entry.location.filename().map(LogFile::parse) {
                Some(LogFile::Commit(version)) => commits.push(CommitFile {
                    version,
                    timestamp: entry.last_modified.timestamp_millis(),
                }),
                Some(LogFile::Checkpoint {
                    version,
                    part,
                    parts: count,
                }) => {
                    parts.entry((version, count)).or_default().insert(part);
                }
                _ => {}
            }
        }
        commits.sort_unstable_by_key(|c| c.version);
        for i in 1..commits.len() {
            commits[i].timestamp = commits[i].timestamp.max(commits[i - 1].timestamp + 1);
        }
        let checkpoints = parts
            .into_iter()
            .filter(|((_, count), seen)| seen.len() == *count as usize)
            .map(|((version, count), _)| (version, count))
            .collect();
        Self {
            commits,
            checkpoints,
        }
    }

    /// Keeps the newest unbroken run of commits and checks that it rebuilds the table.
    fn validated(mut self, dir: &Path) -> Result<Self, TxLogError> {
        let corrupt = |reason: String| TxLogError::Corrupt {
            path: dir.to_string(),
            reason,
        };
        let Some(latest) = self.commits.last().map(|c| c.version) else {
            return Err(if self.checkpoints.is_empty() {
                TxLogError::TableNotFound(dir.as_ref().trim_end_matches("/_delta_log").to_string())
            } else {
                corrupt("it has checkpoints but no commits".into())
            });
        };
        let run_start = self
            .commits
            .windows(2)
            .rposition(|w| w[1].version != w[0].version + 1)
            .map_or(0, |i| i + 1);
        let gap = (run_start > 0).then(|| {
            (
                self.commits[run_start - 1].version,
                self.commits[run_start].version,
            )
        });
        self.commits.drain(..run_start);
        self.checkpoints.retain(|v, _| *v <= latest);
        if self.start_for(latest).is_none() {
            return Err(corrupt(match gap {
                Some((from, to)) => format!("commits jump from {from} to {to}"),
                None if self.checkpoints.is_empty() && self.commits[0].version > 0 => {
                    "commit 0 is missing (an interrupted DROP TABLE? drop it again)".into()
                }
                None => format!(
                    "the commits before {} are missing and no checkpoint replaces them (an interrupted DROP TABLE? drop it again)",
                    self.commits[0].version
                ),
            }));
        }
        Ok(self)
    }

    fn latest(&self) -> i64 {
        self.commits.last().map_or(-1, |c| c.version)
    }

    /// The listing cut to its replayable run that reaches furthest: commits that follow each
    /// other from commit 0, or from a complete checkpoint within or just before them; `None`
    /// when no run is replayable.
    fn replayable_prefix(&self) -> Option<Self> {
        let mut best: Option<(usize, usize)> = None;
        let mut start = 0;
        for end in 0..self.commits.len() {
            let run_ends = self
                .commits
                .get(end + 1)
                .is_none_or(|next| next.version != self.commits[end].version + 1);
            if !run_ends {
                continue;
            }
            let (first, last) = (self.commits[start].version, self.commits[end].version);
            if first == 0 || self.checkpoints.range(first - 1..=last).next().is_some() {
                best = Some((start, end));
            }
            start = end + 1;
        }
        let (start, end) = best?;
        let last = self.commits[end].version;
        Some(Self {
            commits: self.commits[start..=end].to_vec(),
            checkpoints: self
                .checkpoints
                .range(..=last)
                .map(|(v, parts)| (*v, *parts))
                .collect(),
        })
    }

    /// Where a replay up to `version` starts: `Some(Some(c))` from the checkpoint of version
    /// `c`, `Some(None)` from commit 0, `None` when the log no longer reaches back to it.
    fn start_for(&self, version: i64) -> Option<Option<i64>> {
        let first = self.commits.first()?.version;
        if version < first - 1 || version > self.latest() {
            return None;
        }
        let checkpoint = self
            .checkpoints
            .range(first - 1..=version)
            .next_back()
            .map(|(v, _)| *v);
        match checkpoint {
            Some(c) => Some(Some(c)),
            None if first == 0 => Some(None),
            None => None,
        }
    }

    /// The oldest version a replay can reach.
    fn first_readable(&self) -> i64 {
        let first = self.commits.first().map_or(0, |c| c.version);
        if first == 0 {
            return 0;
        }
        self.checkpoints
            .range(first - 1..)
            .next()
            .map_or(first, |(v, _)| *v)
    }
}

/// What a log cleanup did, and when another can next delete anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanUp {
    /// Log files deleted.
    pub deleted: usize,
    /// A cleanup deletes nothing until its cutoff passes this commit time (milliseconds since
    /// the epoch).
    pub next_due: i64,
}

/// Files removed and not added back, each with the `remove` that took it out.
#[derive(Default)]
struct Removed(HashMap<(String, Option<String>), Remove>);

impl Removed {
    /// Applies a commit's (or checkpoint's) actions; `timestamp` stands in for a remove's
    /// missing deletion time.
    fn apply(&mut self, actions: Vec<Action>, timestamp: i64) {
        for action in actions {
            match action {
                Action::Remove(mut remove) => {
                    remove.deletion_timestamp.get_or_insert(timestamp);
                    self.0
                        .insert(file_key(&remove.path, &remove.deletion_vector), remove);
                }
                Action::Add(add) => {
                    self.0.remove(&file_key(&add.path, &add.deletion_vector));
                }
                _ => {}
            }
        }
    }

    fn into_values(self) -> impl Iterator<Item = Remove> {
        self.0.into_values()
    }
}

/// A data file with one deletion vector: what an `add` or a `remove` names.
fn file_key(
    path: &str,
    deletion_vector: &Option<super::DeletionVectorDescriptor>,
) -> (String, Option<String>) {
    (
        path.to_string(),
        deletion_vector.as_ref().map(|d| d.unique_id()),
    )
}

/// True for a commit that changes the table's schema, properties or protocol.
fn changes_table(actions: &[Action]) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::Protocol(_) | Action::Metadata(_)))
}

/// True for a commit that only replaces the table's analyzed statistics
/// ([`STATISTICS_PROPERTY`](super::STATISTICS_PROPERTY)) in `base`'s metadata: the figures are estimates, so such a commit
/// and a concurrent data commit pass each other.
fn statistics_only(actions: &[Action], base: &Snapshot) -> bool {
    let [Action::Metadata(metadata)] = actions
        .iter()
        .filter(|a| !matches!(a, Action::CommitInfo(_)))
        .collect::<Vec<_>>()[..]
    else {
        return false;
    };
    metadata.same_apart_from_statistics(base.metadata())
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
    use crate::txlog::{Add, Protocol, Remove, STATISTICS_PROPERTY};
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

    /// A file named relative to the table, or by absolute URI under the data root (a shallow
    /// clone), resolves to its store path; a URI under another scheme or mount is found by the
    /// table's folder; anything else is refused.
    #[test]
    fn file_paths_resolve_relative_and_absolute_names() {
        let log = DeltaLog::new(Arc::new(InMemory::new()), Path::from("db/clone"))
            .with_base(url::Url::parse("s3://bucket/prefix").unwrap());
        let resolve = |path: &str| log.file_path(path).map(|p| p.to_string());
        assert_eq!(
            resolve("part-0.parquet").unwrap(),
            "db/clone/part-0.parquet"
        );
        assert_eq!(
            resolve("a%20b/part.parquet").unwrap(),
            "db/clone/a b/part.parquet"
        );
        assert_eq!(
            resolve("s3://bucket/prefix/db/source/part-1.parquet").unwrap(),
            "db/source/part-1.parquet"
        );
        let uri = log
            .absolute_uri(&Path::from("db/source/a b.parquet"))
            .unwrap();
        assert_eq!(uri, "s3://bucket/prefix/db/source/a%20b.parquet");
        assert_eq!(resolve(&uri).unwrap(), "db/source/a b.parquet");
        assert_eq!(
            resolve("s3a://bucket/prefix/db/clone/part-2.parquet").unwrap(),
            "db/clone/part-2.parquet"
        );
        assert_eq!(
            log.relative_path(&Path::from("db/clone/x y.parquet"))
                .as_deref(),
            Some("x%20y.parquet")
        );
        assert_eq!(log.relative_path(&Path::from("db/source/x.parquet")), None);
        let outside = resolve("s3://elsewhere/other/part.parquet").unwrap_err();
        assert!(
            outside
                .to_string()
                .contains("outside this server's data root"),
            "{outside}"
        );
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

    fn listing(versions: &[i64], checkpoints: &[i64]) -> Listing {
        Listing {
            commits: versions
                .iter()
                .map(|&version| CommitFile {
                    version,
                    timestamp: version,
                })
                .collect(),
            checkpoints: checkpoints.iter().map(|&v| (v, 1)).collect(),
        }
    }

    #[test]
    fn the_replayable_prefix_reaches_as_far_as_a_start_allows() {
        let versions =
            |l: Option<Listing>| l.map(|l| l.commits.iter().map(|c| c.version).collect());
        // A listing that missed commit 6: up to 5, from commit 0.
        let raced = listing(&[0, 1, 2, 3, 4, 5, 7, 8], &[]);
        assert_eq!(
            versions(raced.replayable_prefix()),
            Some(vec![0, 1, 2, 3, 4, 5])
        );
        // From the checkpoint of 10 (commits before it cleaned up) to the gap at 13.
        let cleaned = listing(&[3, 4, 10, 11, 12, 14], &[10]);
        let prefix = cleaned.replayable_prefix().unwrap();
        assert_eq!(prefix.latest(), 12);
        assert_eq!(prefix.start_for(12), Some(Some(10)));
        // A checkpoint just before a run starts it too.
        assert_eq!(
            listing(&[6, 7], &[5]).replayable_prefix().unwrap().latest(),
            7
        );
        assert!(listing(&[3, 4], &[]).replayable_prefix().is_none());
    }

    #[tokio::test]
    async fn a_commit_missing_from_storage_is_a_gap_and_one_missing_from_a_listing_is_not() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let log = DeltaLog::new(Arc::clone(&store), Path::from("db/t"));
        let v0 = Arc::new(log.create(append(), table_actions()).await.unwrap());
        for name in ["a", "b", "c"] {
            log.commit(&v0, append(), vec![add(name)]).await.unwrap();
        }
        // Commit 2 gone from storage: the log is corrupt.
        let two = log.commit_path(2);
        let kept = store.get(&two).await.unwrap().bytes().await.unwrap();
        store.delete(&two).await.unwrap();
        let err = log.load().await.unwrap_err();
        assert!(
            err.to_string().contains("commits jump from 1 to 3"),
            "{err}"
        );
        // Back in storage, a listing that does not show it reads up to version 1; the next one
        // sees everything.
        store.put(&two, kept.into()).await.unwrap();
        let raced = listing(&[0, 1, 3], &[]);
        let prefix = raced.replayable_prefix().unwrap();
        assert_eq!(prefix.latest(), 1);
        assert!(
            store
                .head(&log.commit_path(prefix.latest() + 1))
                .await
                .is_ok()
        );
        assert_eq!(log.load().await.unwrap().version(), 3);
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
            tags: None,
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
                    tags: None,
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

    fn analyze(snapshot: &Snapshot, figures: &str) -> (Operation, Vec<Action>) {
        let mut metadata = snapshot.metadata().clone();
        metadata
            .configuration
            .insert(STATISTICS_PROPERTY.into(), Some(figures.into()));
        let operation = Operation {
            name: "ANALYZE".into(),
            ..Default::default()
        };
        (operation, vec![Action::Metadata(metadata)])
    }

    #[tokio::test]
    async fn statistics_and_data_commits_pass_each_other() {
        let log = DeltaLog::new(Arc::new(InMemory::new()), Path::from("db/t"));
        let v0 = Arc::new(log.create(append(), table_actions()).await.unwrap());
        let v1 = log.commit(&v0, append(), vec![add("a")]).await.unwrap();
        // ANALYZE commits first: a DELETE that read v1 still commits.
        let (operation, actions) = analyze(&v1, "{}");
        log.commit(&v1, operation, actions).await.unwrap();
        let (operation, actions) = delete("a");
        let v3 = log.commit(&v1, operation, actions).await.unwrap();
        assert_eq!(v3.version(), 3);
        assert_eq!(
            v3.metadata().configuration[STATISTICS_PROPERTY].as_deref(),
            Some("{}")
        );
        // A DELETE commits first: an ANALYZE that read before it still commits.
        let v4 = log.commit(&v3, append(), vec![add("b")]).await.unwrap();
        let (operation, actions) = delete("b");
        log.commit(&v4, operation, actions).await.unwrap();
        let (operation, actions) = analyze(&v4, "{\"x\":1}");
        assert_eq!(
            log.commit(&v4, operation, actions).await.unwrap().version(),
            6
        );
        // A property change is not statistics: it still conflicts with a racing ANALYZE.
        let v6 = Arc::new(log.load().await.unwrap());
        let mut changed = v6.metadata().clone();
        changed
            .configuration
            .insert("delta.targetFileSize".into(), Some("1".into()));
        log.commit(&v6, Operation::default(), vec![Action::Metadata(changed)])
            .await
            .unwrap();
        let (operation, actions) = analyze(&v6, "{}");
        let err = log.commit(&v6, operation, actions).await.unwrap_err();
        assert!(matches!(err, TxLogError::Conflict { .. }), "{err}");
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

    #[tokio::test]
    async fn vacuum_replays_from_the_newest_checkpoint_before_its_cutoff() {
        let log = DeltaLog::new(Arc::new(InMemory::new()), Path::from("db/t"));
        let mut v = Arc::new(log.create(append(), table_actions()).await.unwrap());
        for path in ["a", "b", "c", "d", "e"] {
            v = log.commit(&v, append(), vec![add(path)]).await.unwrap();
            if v.version() % 2 == 0 {
                log.checkpoint(&v, 0).await.unwrap();
            }
        }
        let commits = log.commits().await.unwrap();
        let at = |version: i64| commits[version as usize].timestamp;
        // Version 3 is the newest at the cutoff: checkpoint 2 replays it and everything after.
        let (first, base, later) = log.replayable_since(at(3)).await.unwrap();
        assert_eq!(first, 2);
        assert_eq!(
            base.iter().filter(|a| matches!(a, Action::Add(_))).count(),
            2
        );
        assert_eq!(
            later.iter().map(|c| c.version).collect::<Vec<_>>(),
            [2, 3, 4, 5]
        );
        // A cutoff before the first checkpoint replays from commit 0; after the last, from it.
        assert_eq!(log.replayable_since(at(1)).await.unwrap().0, 0);
        assert_eq!(log.replayable_since(i64::MAX).await.unwrap().0, 4);
    }

    #[tokio::test]
    async fn a_checkpoint_replaces_the_commits_cleanup_deletes() {
        let log = DeltaLog::new(Arc::new(InMemory::new()), Path::from("db/t"));
        let mut v = Arc::new(log.create(append(), table_actions()).await.unwrap());
        for path in ["a", "b", "c"] {
            v = log.commit(&v, append(), vec![add(path)]).await.unwrap();
        }
        let (operation, actions) = delete("a");
        let v4 = log.commit(&v, operation, actions).await.unwrap();
        log.checkpoint(&v4, 0).await.unwrap();
        let v5 = log.commit(&v4, append(), vec![add("d")]).await.unwrap();
        // The tombstones read without a listing (checkpoint 4 and commit 5 by name) are the
        // ones a listing finds.
        let by_name = log.removed_since_last_checkpoint(5).await.unwrap().unwrap();
        let listed = log.removed_as_listed(5).await.unwrap();
        assert_eq!(by_name.0, listed.0);
        assert_eq!(by_name.0.len(), 1);
        // A cutoff before every commit deletes nothing, until checkpoint 4's commit expires.
        let checkpoint_committed = log.commits().await.unwrap()[4].timestamp;
        let none = log.clean_up(0).await.unwrap();
        assert_eq!(
            none,
            CleanUp {
                deleted: 0,
                next_due: checkpoint_committed
            }
        );
        // Every commit is older than the cutoff: all before the checkpoint go. The next
        // cleanup waits for a checkpoint not written yet.
        let before = chrono::Utc::now().timestamp_millis();
        let done = log.clean_up(i64::MAX).await.unwrap();
        assert_eq!(done.deleted, 4);
        assert!(done.next_due >= before);
        let commits: Vec<i64> = log
            .commits()
            .await
            .unwrap()
            .iter()
            .map(|c| c.version)
            .collect();
        assert_eq!(commits, [4, 5]);
        let loaded = log.load().await.unwrap();
        assert_eq!(loaded.version(), 5);
        let mut paths: Vec<&str> = loaded.files().map(|f| f.path.as_str()).collect();
        paths.sort();
        assert_eq!(paths, ["b", "c", "d"]);
        assert_eq!(log.load_version(4).await.unwrap().files().count(), 2);
        let err = log.load_version(3).await.unwrap_err();
        assert!(err.to_string().contains("log cleanup"), "{err}");
        // The tombstone of `a` came through the checkpoint.
        let tombstones = log.tombstones(&v5, 0).await.unwrap();
        assert_eq!(
            tombstones
                .iter()
                .map(|r| r.path.as_str())
                .collect::<Vec<_>>(),
            ["a"]
        );
        assert!(log.tombstones(&v5, i64::MAX).await.unwrap().is_empty());
        let (first, base, later) = log.replayable_since(i64::MIN).await.unwrap();
        assert_eq!(first, 4);
        assert!(
            base.iter()
                .any(|a| matches!(a, Action::Remove(r) if r.path == "a"))
        );
        assert_eq!(later.len(), 2);
        // Dropping removes checkpoints first; the table is then gone.
        log.delete_table().await.unwrap();
        assert!(matches!(
            log.load().await,
            Err(TxLogError::TableNotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_load_reads_the_commits_after_the_checkpoint_by_name() {
        let log = DeltaLog::new(Arc::new(InMemory::new()), Path::from("db/t"));
        let mut v = Arc::new(log.create(append(), table_actions()).await.unwrap());
        for i in 0..5 {
            v = log
                .commit(&v, append(), vec![add(&format!("f{i}"))])
                .await
                .unwrap();
        }
        log.checkpoint(&v, 0).await.unwrap();
        // More commits after the checkpoint than one window of reads.
        for i in 5..25 {
            v = log
                .commit(&v, append(), vec![add(&format!("f{i}"))])
                .await
                .unwrap();
        }
        let (operation, actions) = delete("f3");
        let v = log.commit(&v, operation, actions).await.unwrap();
        let loaded = log.load().await.unwrap();
        let listed = log.list(None).await.unwrap();
        let replayed = log.replay(&listed, listed.latest()).await.unwrap();
        assert_eq!(loaded.version(), v.version());
        let paths = |s: &Snapshot| s.files().map(|f| f.path.clone()).collect::<Vec<_>>();
        assert_eq!(paths(&loaded), paths(&replayed));
        assert_eq!(loaded.files().count(), 24);
        // A commit missing after the checkpoint is a gap the listing reports, not the end of
        // the log.
        log.store.delete(&log.commit_path(12)).await.unwrap();
        let err = log.load().await.unwrap_err();
        assert!(matches!(err, TxLogError::Corrupt { .. }), "{err}");
    }
}
