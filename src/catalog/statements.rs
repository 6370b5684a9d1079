//! The statements running on this server, for `sys.queries` and `CANCEL QUERY`: who runs what,
//! since when, how much memory it holds, and the token that stops it. The engine registers each
//! statement as it starts, counts its memory and enforces the stop (see `engine/running.rs`); an
//! entry leaves when its statement ends.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

/// Why a statement was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `CANCEL QUERY` (or an admin) asked for it.
    Cancelled,
    /// It ran past its statement timeout.
    TimedOut,
}

/// One running statement.
#[derive(Debug)]
pub struct RunningStatement {
    pub id: u64,
    /// `text` (:7205), `flight` (Flight SQL) or `engine` (in process).
    pub protocol: &'static str,
    pub user: Option<String>,
    pub database: String,
    pub text: String,
    pub started_at_ms: i64,
    began: Instant,
    stop: CancellationToken,
    reason: OnceLock<StopReason>,
    committing: Arc<AtomicBool>,
    admitted: AtomicBool,
    reserved: Arc<AtomicUsize>,
}

impl RunningStatement {
    pub fn elapsed_ms(&self) -> i64 {
        i64::try_from(self.began.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Asks the statement to stop for `reason` (the first reason given wins).
    pub fn stop(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.stop.cancel();
    }

    /// Resolves once the statement has been asked to stop.
    pub fn stopped(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.stop.clone().cancelled_owned()
    }

    pub fn stop_reason(&self) -> Option<StopReason> {
        self.reason.get().copied()
    }

    /// The flag the statement's commit raises (see `txlog::commit_point`): from then on it
    /// runs to its end whatever stops it, so an answered stop never hides a landed commit.
    pub fn committing(&self) -> &Arc<AtomicBool> {
        &self.committing
    }

    /// Marks the statement as past the admission queue, running.
    pub fn admit(&self) {
        self.admitted.store(true, Ordering::SeqCst);
    }

    /// Whether it runs (rather than waits for a slot of `--max-concurrent-queries`).
    pub fn is_admitted(&self) -> bool {
        self.admitted.load(Ordering::SeqCst)
    }

    pub fn is_committing(&self) -> bool {
        self.committing.load(Ordering::SeqCst)
    }

    /// The count of bytes the statement's operators hold in the server's memory pool (hash
    /// tables, sort buffers, aggregates), which the engine keeps current.
    pub fn reserved(&self) -> &Arc<AtomicUsize> {
        &self.reserved
    }

    pub fn reserved_bytes(&self) -> usize {
        self.reserved.load(Ordering::Relaxed)
    }
}

/// Who runs a statement, as `sys.queries` shows it.
#[derive(Debug, Clone)]
pub struct StatementOrigin {
    pub protocol: &'static str,
    pub user: Option<String>,
    pub database: String,
    /// The connection's own stop: when it fires (the client went away), the statement stops
    /// as if cancelled.
    pub hangup: Option<CancellationToken>,
}

/// The running statements of this server.
#[derive(Debug, Default)]
pub struct RunningStatements {
    next_id: AtomicU64,
    statements: Mutex<BTreeMap<u64, Arc<RunningStatement>>>,
}

impl RunningStatements {
    fn statements(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<RunningStatement>>> {
        self.statements.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a statement starting now; it is listed until [`RunningStatements::finish`].
    pub fn start(&self, origin: StatementOrigin, text: &str) -> Arc<RunningStatement> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let started_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let statement = Arc::new(RunningStatement {
            id,
            protocol: origin.protocol,
            user: origin.user,
            database: origin.database,
            text: text.trim().to_string(),
            started_at_ms,
            began: Instant::now(),
            stop: origin
                .hangup
                .map_or_else(CancellationToken::new, |hangup| hangup.child_token()),
            reason: OnceLock::new(),
            committing: Arc::default(),
            admitted: AtomicBool::new(false),
            reserved: Arc::default(),
        });
        self.statements().insert(id, Arc::clone(&statement));
        statement
    }

    pub fn finish(&self, id: u64) {
        self.statements().remove(&id);
    }

    /// The statements running now, oldest first.
    pub fn list(&self) -> Vec<Arc<RunningStatement>> {
        self.statements().values().cloned().collect()
    }

    /// Asks statement `id` to stop; false when no such statement is running.
    pub fn cancel(&self, id: u64) -> bool {
        match self.statements().get(&id) {
            Some(statement) => {
                statement.stop(StopReason::Cancelled);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_listed_until_they_finish_and_cancel_finds_them() {
        let running = RunningStatements::default();
        let origin = StatementOrigin {
            protocol: "text",
            user: None,
            database: "default".into(),
            hangup: None,
        };
        let a = running.start(origin.clone(), " SELECT 1 ");
        let b = running.start(origin, "SELECT 2");
        assert_eq!(a.text, "SELECT 1");
        assert!(b.id > a.id);
        assert_eq!(running.list().len(), 2);
        assert!(running.cancel(a.id));
        assert_eq!(a.stop_reason(), Some(StopReason::Cancelled));
        a.stop(StopReason::TimedOut);
        assert_eq!(a.stop_reason(), Some(StopReason::Cancelled));
        running.finish(a.id);
        assert!(!running.cancel(a.id));
        assert_eq!(running.list().len(), 1);
    }

    #[test]
    fn a_hangup_stops_the_statements_of_its_connection_only() {
        let running = RunningStatements::default();
        let hangup = CancellationToken::new();
        let origin = |hangup: Option<CancellationToken>| StatementOrigin {
            protocol: "text",
            user: None,
            database: "default".into(),
            hangup,
        };
        let mine = running.start(origin(Some(hangup.clone())), "SELECT 1");
        let other = running.start(origin(None), "SELECT 2");
        hangup.cancel();
        assert!(mine.stop.is_cancelled());
        assert!(!other.stop.is_cancelled());
    }
}
