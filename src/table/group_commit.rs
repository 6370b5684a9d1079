//! Group commit: autocommit appends to one table that arrive while another commit of theirs is
//! being written go into the next commit together.
//!
//! A blind append (rows added, nothing read) cannot conflict with another, so appends from
//! different sessions can share one Delta version: its `add` actions are the union of theirs.
//! Each statement still commits atomically (all of its files are in that one version, or none
//! of them), and each is answered only once that version is durable. A statement that fails
//! before its commit — a constraint, a cast, a cancelled query — never reaches the queue, so
//! it cannot take its neighbours with it; only the shared commit itself (a storage error, a
//! concurrent schema change by another server) fails every statement in it.
//!
//! There is no waiting for company: the first append finds the committer free and commits at
//! once, alone, as before. Appends arriving while it writes queue up, and the next one to take
//! the committer's turn commits all of them. So one writer pays nothing, and many writers pay
//! one commit per round instead of one each, plus the commit races they would otherwise lose.
//!
//! The commit is written by a task of its own: a statement whose future is dropped while its
//! group commits cannot leave the other statements without an answer. A statement that goes
//! away before its group is taken (its connection closed) is left out of it, not committed
//! later behind its back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::{Mutex as AsyncMutex, oneshot};

use crate::metrics::metrics;
use crate::txlog::{Action, DeltaLog, Operation, Snapshot, TxLogError, commit_point};

/// The appends waiting for a table's next commit.
#[derive(Debug, Default)]
pub struct AppendQueue {
    waiting: Mutex<Vec<Waiting>>,
    /// Held by the statement whose turn it is to commit what is waiting.
    committer: AsyncMutex<()>,
}

/// One statement's append, waiting to be committed.
#[derive(Debug)]
struct Waiting {
    read: Arc<Snapshot>,
    operation: Operation,
    actions: Vec<Action>,
    answer: oneshot::Sender<Result<Arc<Snapshot>, TxLogError>>,
}

impl AppendQueue {
    /// Commits `actions`, a blind append written on `read`, with whatever other appends are
    /// waiting; `newest` is the newest snapshot of the table this process knows. Returns the
    /// snapshot of the commit that holds them.
    pub async fn commit(
        &self,
        log: &DeltaLog,
        newest: impl Fn() -> Arc<Snapshot>,
        read: Arc<Snapshot>,
        operation: Operation,
        actions: Vec<Action>,
    ) -> Result<Arc<Snapshot>, TxLogError> {
        let (answer, mut answered) = oneshot::channel();
        // Once queued, the append may be committed by another statement's turn: this statement
        // has reached its point of no return.
        commit_point::reached();
        self.lock_waiting().push(Waiting {
            read,
            operation,
            actions,
            answer,
        });
        let _turn = self.committer.lock().await;
        if let Ok(result) = answered.try_recv() {
            return result;
        }
        // Not answered, so still waiting: only the holder of the turn takes appends out.
        let group = std::mem::take(&mut *self.lock_waiting());
        let log = log.clone();
        let base = newest();
        tokio::spawn(async move { commit_group(&log, base, group).await })
            .await
            .map_err(|e| group_failed(format!("its task failed: {e}")))?;
        answered
            .try_recv()
            .unwrap_or_else(|_| Err(group_failed("it left the statement unanswered".into())))
    }

    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        // A poisoned lock only means a panic elsewhere while pushing; the list is intact.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Commits `group` as one version on top of `base` (or the newest snapshot any of them read)
/// and answers each of its statements.
async fn commit_group(log: &DeltaLog, base: Arc<Snapshot>, group: Vec<Waiting>) {
    let base = group.iter().map(|w| &w.read).fold(base, |newest, read| {
        match read.version() > newest.version() {
            true => Arc::clone(read),
            false => newest,
        }
    });
    // A statement that went away while it waited (its connection closed) is not committed
    // behind its back; its files are left for VACUUM.
    let group = group.into_iter().filter(|w| !w.answer.is_closed());
    // An append written before a schema, property or protocol change cannot be laid over it
    // (its files have the old columns): it fails alone, as its own commit would have.
    let (group, stale): (Vec<Waiting>, Vec<Waiting>) =
        group.partition(|w| unchanged_between(&w.read, &base));
    for waiting in stale {
        let _ = waiting.answer.send(Err(TxLogError::Conflict {
            table: log.table_name(),
            version: base.version(),
            reason: "a concurrent transaction changed the table's schema, properties or protocol"
                .into(),
        }));
    }
    let (operation, actions, answers) = match group.len() {
        0 => return,
        1 => {
            let Some(waiting) = group.into_iter().next() else {
                return;
            };
            (waiting.operation, waiting.actions, vec![waiting.answer])
        }
        n => {
            metrics().grouped_appends(n as u64);
            let operation = combined(group.iter().map(|w| &w.operation));
            let mut actions = Vec::new();
            let mut answers = Vec::with_capacity(n);
            for waiting in group {
                actions.extend(waiting.actions);
                answers.push(waiting.answer);
            }
            (operation, actions, answers)
        }
    };
    match log.commit(&base, operation, actions).await {
        Ok(committed) => {
            metrics().commit();
            for answer in answers {
                let _ = answer.send(Ok(Arc::clone(&committed)));
            }
        }
        Err(e) => {
            for answer in answers {
                let _ = answer.send(Err(shared_error(&e)));
            }
        }
    }
}

/// True when no commit between `read` and `base` changed the table's schema, properties
/// (other than its analyzed statistics) or protocol.
fn unchanged_between(read: &Snapshot, base: &Snapshot) -> bool {
    read.version() == base.version()
        || (read.protocol() == base.protocol()
            && read.metadata().same_apart_from_statistics(base.metadata()))
}

/// The operation recorded for several appends committed together: the name they share (else
/// `WRITE`), their numeric metrics summed, and how many statements the commit holds.
fn combined<'a>(operations: impl Iterator<Item = &'a Operation>) -> Operation {
    let mut name: Option<String> = None;
    let mut statements = 0u64;
    let mut totals: HashMap<String, u64> = HashMap::new();
    for operation in operations {
        statements += 1;
        name = match name {
            None => Some(operation.name.clone()),
            Some(name) if name == operation.name => Some(name),
            Some(_) => Some("WRITE".into()),
        };
        for (metric, value) in &operation.metrics {
            if let Some(value) = value.as_u64() {
                *totals.entry(metric.clone()).or_default() += value;
            }
        }
    }
    Operation {
        name: name.unwrap_or_else(|| "WRITE".into()),
        parameters: HashMap::from([
            ("mode".into(), json!("Append")),
            (GROUPED_STATEMENTS.into(), json!(statements)),
        ]),
        metrics: totals
            .into_iter()
            .map(|(metric, total)| (metric, Value::from(total)))
            .collect(),
        blind_append: true,
    }
}

/// The `operationParameters` key of a group commit: the number of statements it holds.
pub const GROUPED_STATEMENTS: &str = "groupedStatements";

/// The same failure for each statement of a group (the log's errors are not `Clone`).
fn shared_error(e: &TxLogError) -> TxLogError {
    match e {
        TxLogError::Conflict {
            table,
            version,
            reason,
        } => TxLogError::Conflict {
            table: table.clone(),
            version: *version,
            reason: reason.clone(),
        },
        TxLogError::TableNotFound(table) => TxLogError::TableNotFound(table.clone()),
        TxLogError::Corrupt { path, reason } => TxLogError::Corrupt {
            path: path.clone(),
            reason: reason.clone(),
        },
        TxLogError::Unsupported(what) => TxLogError::Unsupported(what.clone()),
        other => group_failed(other.to_string()),
    }
}

/// A failure of the group commit itself, reported to each of its statements.
fn group_failed(reason: String) -> TxLogError {
    TxLogError::ObjectStore(object_store::Error::Generic {
        store: "group commit",
        source: reason.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txlog::{Add, CommitInfo, Protocol};
    use object_store::memory::InMemory;
    use object_store::path::Path;

    async fn new_table() -> (DeltaLog, Arc<Snapshot>) {
        let log = DeltaLog::new(Arc::new(InMemory::new()), Path::from("db/t"));
        let created = log
            .create(
                Operation {
                    name: "CREATE TABLE".into(),
                    ..Default::default()
                },
                vec![
                    Action::Protocol(Protocol {
                        min_reader_version: 1,
                        min_writer_version: 2,
                        reader_features: None,
                        writer_features: None,
                    }),
                    Action::Metadata(crate::txlog::test_table_metadata()),
                ],
            )
            .await
            .unwrap();
        (log, Arc::new(created))
    }

    fn add(path: &str) -> Vec<Action> {
        vec![Action::Add(Add {
            path: path.into(),
            partition_values: Default::default(),
            size: 1,
            modification_time: 0,
            data_change: true,
            stats: None,
            tags: None,
            deletion_vector: None,
        })]
    }

    /// The paths of the table's live files, oldest first.
    async fn live_files(log: &DeltaLog) -> Vec<String> {
        let snapshot = log.load().await.unwrap();
        snapshot.files().map(|f| f.path.clone()).collect()
    }

    fn insert(rows: u64) -> Operation {
        Operation {
            name: "WRITE".into(),
            metrics: HashMap::from([("numOutputRows".into(), json!(rows))]),
            blind_append: true,
            ..Default::default()
        }
    }

    fn commit_info(actions: &[Action]) -> &CommitInfo {
        actions
            .iter()
            .find_map(|a| match a {
                Action::CommitInfo(info) => Some(info),
                _ => None,
            })
            .unwrap()
    }

    /// The first append commits alone; the ones that queued while it was written share the
    /// next commit, whose history records them as one grouped write.
    #[tokio::test]
    async fn appends_waiting_for_a_commit_share_the_next_one() {
        let (log, created) = new_table().await;
        let queue = AppendQueue::default();
        let newest = || Arc::clone(&created);
        let results = futures::future::join_all((0..8).map(|i| {
            queue.commit(
                &log,
                newest,
                Arc::clone(&created),
                insert(i + 1),
                add(&format!("part-{i}.parquet")),
            )
        }))
        .await;
        let versions: Vec<i64> = results.into_iter().map(|r| r.unwrap().version()).collect();
        assert_eq!(versions, [1, 2, 2, 2, 2, 2, 2, 2]);
        let newest = log.load().await.unwrap();
        assert_eq!((newest.version(), newest.files().count()), (2, 8));
        let first = log.commit_actions(1).await.unwrap();
        let alone = commit_info(&first).operation_parameters.as_ref().unwrap();
        assert!(!alone.contains_key(GROUPED_STATEMENTS), "{alone:?}");
        let grouped = log.commit_actions(2).await.unwrap();
        let info = commit_info(&grouped);
        let parameters = info.operation_parameters.as_ref().unwrap();
        assert_eq!(parameters[GROUPED_STATEMENTS], json!(7));
        // Rows 2 to 8 of the statements: 2 + 3 + … + 8.
        assert_eq!(
            info.operation_metrics.as_ref().unwrap()["numOutputRows"],
            json!(35)
        );
        assert_eq!(info.is_blind_append, Some(true));
    }

    /// An append written before a schema change fails with a conflict; the appends grouped
    /// with it still commit.
    #[tokio::test]
    async fn an_append_written_before_a_schema_change_fails_alone() {
        let (log, created) = new_table().await;
        let mut metadata = created.metadata().clone();
        metadata.schema_string = metadata.schema_string.replace("\"a\"", "\"b\"");
        assert_ne!(&metadata, created.metadata());
        let changed = log
            .commit(
                &created,
                Operation {
                    name: "ALTER TABLE".into(),
                    ..Default::default()
                },
                vec![Action::Metadata(metadata)],
            )
            .await
            .unwrap();
        let queue = AppendQueue::default();
        let newest = || Arc::clone(&changed);
        let results = futures::future::join_all([
            queue.commit(&log, newest, Arc::clone(&changed), insert(1), add("a")),
            queue.commit(&log, newest, Arc::clone(&created), insert(1), add("b")),
            queue.commit(&log, newest, Arc::clone(&changed), insert(1), add("c")),
        ])
        .await;
        assert_eq!(results[0].as_ref().unwrap().version(), 2);
        let stale = results[1].as_ref().unwrap_err().to_string();
        assert!(stale.contains("changed the table's schema"), "{stale}");
        assert_eq!(results[2].as_ref().unwrap().version(), 3);
        let files = live_files(&log).await;
        assert_eq!(files.len(), 2);
        assert!(!files.contains(&"b".to_string()), "{files:?}");
    }

    /// A statement that went away while it waited for its turn is not committed later behind
    /// its back.
    #[tokio::test]
    async fn an_append_whose_statement_went_away_is_not_committed() {
        let (log, created) = new_table().await;
        let queue = AppendQueue::default();
        let newest = || Arc::clone(&created);
        let first = queue.commit(&log, newest, Arc::clone(&created), insert(1), add("a"));
        tokio::pin!(first);
        assert!(futures::poll!(&mut first).is_pending());
        {
            let gone = queue.commit(&log, newest, Arc::clone(&created), insert(1), add("b"));
            tokio::pin!(gone);
            assert!(futures::poll!(&mut gone).is_pending());
        }
        let last = queue.commit(&log, newest, Arc::clone(&created), insert(1), add("c"));
        let (first, last) = tokio::join!(first, last);
        assert_eq!((first.unwrap().version(), last.unwrap().version()), (1, 2));
        let files = live_files(&log).await;
        assert_eq!(files, ["a", "c"]);
    }
}
