//! Admitting and stopping statements: each statement runs registered among the server's
//! running statements (`sys.queries`) under a [`Watch`], which first waits for one of the
//! [`Admission`] slots (`--max-concurrent-queries`, with a bounded queue), then ends the
//! statement with a clear error when `CANCEL QUERY` or its statement timeout asks — dropping its work frees its memory and its spilled files — and
//! keeps watching the rows it streams. A statement stopped before its first commit leaves
//! nothing; one that reached it runs to its end (see `txlog::commit_point`), so an error never
//! hides a commit that landed.
//!
//! The plans a statement runs take their memory from the server's pool through a
//! [`StatementPool`] of their own (see [`task_context`]), which counts what the statement holds
//! for `sys.queries`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use futures::{FutureExt, Stream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::EngineError;
use crate::catalog::{RunningStatement, RunningStatements, StatementOrigin, StopReason};
use crate::metrics::{SessionGuard, metrics};
use crate::txlog::commit_point;

tokio::task_local! {
    /// The memory count of the statement the current task runs (see [`Watch::run`]).
    static RESERVED: Arc<AtomicUsize>;
}

/// A context to run a plan in: inside a statement's [`Watch::run`], one whose memory pool
/// counts toward that statement (see [`counted`]); elsewhere (background compaction) the
/// server's own.
pub(super) fn task_context(state: &SessionState) -> Result<Arc<TaskContext>, EngineError> {
    let context = TaskContext::from(state);
    Ok(Arc::new(match RESERVED.try_with(Arc::clone) {
        Ok(reserved) => counted(context, reserved)?,
        Err(_) => context,
    }))
}

/// `context` taking its memory from the server's pool through a [`StatementPool`] counting
/// into `reserved`.
pub(super) fn counted(
    context: TaskContext,
    reserved: Arc<AtomicUsize>,
) -> Result<TaskContext, EngineError> {
    let runtime = context.runtime_env();
    let pool = StatementPool {
        server: Arc::clone(&runtime.memory_pool),
        reserved,
    };
    let runtime = RuntimeEnvBuilder::from_runtime_env(&runtime)
        .with_memory_pool(Arc::new(pool))
        .build_arc()?;
    Ok(context.with_runtime(runtime))
}

/// One statement's view of the server's memory pool: every reservation is made in the server's
/// pool (its limit and fair shares hold for all statements together) and also counted as the
/// statement's.
#[derive(Debug)]
struct StatementPool {
    server: Arc<dyn MemoryPool>,
    reserved: Arc<AtomicUsize>,
}

impl std::fmt::Display for StatementPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.server.fmt(f)
    }
}

impl MemoryPool for StatementPool {
    fn name(&self) -> &str {
        self.server.name()
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.server.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.server.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.server.grow(reservation, additional);
        self.reserved.fetch_add(additional, Ordering::Relaxed);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.server.shrink(reservation, shrink);
        self.reserved.fetch_sub(shrink, Ordering::Relaxed);
    }

    fn try_grow(
        &self,
        reservation: &MemoryReservation,
        additional: usize,
    ) -> datafusion::error::Result<()> {
        self.server.try_grow(reservation, additional)?;
        self.reserved.fetch_add(additional, Ordering::Relaxed);
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.server.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.server.memory_limit()
    }
}

/// How many statements run at once, and how many may wait for a turn and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Statements running at once (`--max-concurrent-queries`); 0 for no limit.
    pub running: usize,
    /// Statements waiting for a turn (`--max-queued-queries`); one more is refused.
    pub queued: usize,
    /// How long a statement waits for a turn before it is refused (`--queue-timeout-ms`).
    pub wait: Duration,
}

/// The server's slots for running statements and its queue for them.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    slots: Option<Arc<Semaphore>>,
    waiting: AtomicUsize,
}

/// A statement's slot; dropping it lets the next one in.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    _counted: SessionGuard,
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Self {
        Self {
            limits,
            slots: (limits.running > 0).then(|| Arc::new(Semaphore::new(limits.running))),
            waiting: AtomicUsize::new(0),
        }
    }

    /// A slot for one statement: at once when one is free, else after waiting in the queue;
    /// `None` without a limit. Refused when the queue is full or the wait too long.
    async fn admit(&self) -> Result<Option<Slot>, EngineError> {
        let Some(slots) = &self.slots else {
            return Ok(None);
        };
        let slot = |permit| Slot {
            _permit: permit,
            _counted: metrics().statement_running(),
        };
        if let Ok(permit) = Arc::clone(slots).try_acquire_owned() {
            return Ok(Some(slot(permit)));
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.limits.queued {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(self.busy("the queue is full"));
        }
        let queued = metrics().statement_queued();
        let waited =
            tokio::time::timeout(self.limits.wait, Arc::clone(slots).acquire_owned()).await;
        drop(queued);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        match waited {
            Ok(Ok(permit)) => Ok(Some(slot(permit))),
            _ => Err(self.busy(&format!(
                "no slot came free within {}",
                show_duration(self.limits.wait)
            ))),
        }
    }

    fn busy(&self, why: &str) -> EngineError {
        metrics().statement_refused();
        EngineError::Busy(format!(
            "server busy: {} statements running (--max-concurrent-queries) and {why} \
             (--max-queued-queries {}); try again shortly",
            self.limits.running, self.limits.queued
        ))
    }
}

/// One statement's registration, slot and stop conditions; it leaves `sys.queries` (and frees
/// its slot) when dropped.
#[derive(Debug)]
pub struct Watch {
    statement: Arc<RunningStatement>,
    registry: Arc<RunningStatements>,
    timeout: Option<Duration>,
    deadline: Option<tokio::time::Instant>,
    slot: Option<Slot>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.registry.finish(self.statement.id);
    }
}

impl Watch {
    /// Registers `text` as running from now, to be stopped after `timeout` if it has one. It
    /// has no slot yet: see [`Watch::admitted`].
    pub fn start(
        registry: &Arc<RunningStatements>,
        origin: StatementOrigin,
        text: &str,
        timeout: Option<Duration>,
    ) -> Self {
        Self {
            statement: registry.start(origin, text),
            registry: Arc::clone(registry),
            timeout,
            deadline: timeout.map(|t| tokio::time::Instant::now() + t),
            slot: None,
        }
    }

    /// The statement's memory count (see [`counted`]).
    pub fn reserved(&self) -> Arc<AtomicUsize> {
        Arc::clone(self.statement.reserved())
    }

    /// Waits for a slot of `admission` (if any), as long as the statement is not stopped; the
    /// statement then runs.
    pub async fn admitted(mut self, admission: Option<&Admission>) -> Result<Self, EngineError> {
        if let Some(admission) = admission {
            tokio::select! {
                biased;
                reason = stop_signal(Arc::clone(&self.statement), self.deadline) => {
                    return Err(self.error(reason));
                }
                slot = admission.admit() => self.slot = slot?,
            }
        }
        self.statement.admit();
        Ok(self)
    }

    /// Runs `work` until it ends or the statement is stopped; a stop after the statement's
    /// first commit waits for `work` instead.
    pub async fn run<T>(
        &self,
        work: impl Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        let work = RESERVED.scope(
            Arc::clone(self.statement.reserved()),
            commit_point::watch(Arc::clone(self.statement.committing()), work),
        );
        tokio::pin!(work);
        // The stop is polled first: work that yields only when its cooperative budget runs
        // out would otherwise leave none for the timer.
        tokio::select! {
            biased;
            reason = stop_signal(Arc::clone(&self.statement), self.deadline) => {
                if self.statement.is_committing() {
                    work.await
                } else {
                    Err(self.error(reason))
                }
            }
            result = &mut work => result,
        }
    }

    /// `rows`, ended with the stop's error when the statement is stopped while they stream;
    /// the statement stays registered until the stream is dropped.
    pub fn stream(self, rows: SendableRecordBatchStream) -> SendableRecordBatchStream {
        let schema = rows.schema();
        self.watched(schema, Rows::Streaming(rows))
    }

    /// The rows `start` streams once the statement has a slot of `admission` (at once
    /// without one), watched as in [`Watch::stream`].
    pub fn stream_when_admitted(
        self,
        schema: SchemaRef,
        admission: Option<Arc<Admission>>,
        start: impl FnOnce() -> Result<SendableRecordBatchStream, EngineError> + Send + 'static,
    ) -> SendableRecordBatchStream {
        let admit = async move {
            match &admission {
                Some(admission) => admission.admit().await,
                None => Ok(None),
            }
        }
        .boxed();
        self.watched(
            schema,
            Rows::Waiting {
                admit,
                start: Box::new(start),
            },
        )
    }

    fn watched(self, schema: SchemaRef, rows: Rows) -> SendableRecordBatchStream {
        let signal = stop_signal(Arc::clone(&self.statement), self.deadline).boxed();
        Box::pin(WatchedRows {
            schema,
            rows,
            signal,
            watch: self,
        })
    }

    fn error(&self, reason: StopReason) -> EngineError {
        let message = match reason {
            StopReason::Cancelled => format!(
                "canceling statement due to user request (CANCEL QUERY {})",
                self.statement.id
            ),
            StopReason::TimedOut => format!(
                "canceling statement due to statement timeout ({}; SET statement_timeout to \
                 change it)",
                show_duration(self.timeout.unwrap_or_default())
            ),
        };
        EngineError::Stopped(reason, message)
    }
}

/// A duration as `SET statement_timeout` takes it: `5s`, `1500ms`.
pub fn show_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A statement timeout as PostgreSQL's `SET statement_timeout` takes it: a whole number of
/// milliseconds, or a number with a unit (`ms`, `s`, `min`, `h`, `d`); `0` turns it off.
pub fn parse_duration(text: &str) -> Result<Duration, EngineError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || {
        EngineError::InvalidInput(format!(
            "invalid statement_timeout '{text}': use milliseconds or a number with ms, s, min, h \
             or d ('5s')"
        ))
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    let ms_per_unit = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" => 1,
        "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    number
        .checked_mul(ms_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(bad)
}

/// Resolves with the reason once `statement` is cancelled or its deadline passes.
async fn stop_signal(
    statement: Arc<RunningStatement>,
    deadline: Option<tokio::time::Instant>,
) -> StopReason {
    let expired = async move {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = statement.stopped() => {}
        () = expired => statement.stop(StopReason::TimedOut),
    }
    statement.stop_reason().unwrap_or(StopReason::Cancelled)
}

/// A starter of a statement's rows.
type Start = Box<dyn FnOnce() -> Result<SendableRecordBatchStream, EngineError> + Send>;

/// Where a watched statement's rows are.
enum Rows {
    /// Waiting for a slot, then started.
    Waiting {
        admit: Pin<Box<dyn Future<Output = Result<Option<Slot>, EngineError>> + Send>>,
        start: Start,
    },
    Streaming(SendableRecordBatchStream),
    Done,
}

/// A statement's rows under its [`Watch`].
struct WatchedRows {
    schema: SchemaRef,
    rows: Rows,
    signal: Pin<Box<dyn Future<Output = StopReason> + Send>>,
    watch: Watch,
}

impl WatchedRows {
    /// Ends the rows with `error`; dropping the plan's stream stops its tasks and frees what
    /// they hold.
    fn fail(&mut self, error: EngineError) -> Poll<Option<datafusion::error::Result<RecordBatch>>> {
        self.rows = Rows::Done;
        Poll::Ready(Some(Err(DataFusionError::External(Box::new(error)))))
    }
}

impl Stream for WatchedRows {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if matches!(self.rows, Rows::Done) {
            return Poll::Ready(None);
        }
        // The stop first, as in `Watch::run`.
        if let Poll::Ready(reason) = self.signal.as_mut().poll(cx) {
            let error = self.watch.error(reason);
            return self.fail(error);
        }
        if let Rows::Waiting { admit, .. } = &mut self.rows {
            let slot = match admit.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return self.fail(e),
                Poll::Ready(Ok(slot)) => slot,
            };
            self.watch.slot = slot;
            self.watch.statement.admit();
            let Rows::Waiting { start, .. } = std::mem::replace(&mut self.rows, Rows::Done) else {
                unreachable!("the rows were waiting")
            };
            match start() {
                Ok(rows) => self.rows = Rows::Streaming(rows),
                Err(e) => return self.fail(e),
            }
        }
        let Rows::Streaming(rows) = &mut self.rows else {
            return Poll::Ready(None);
        };
        let next = rows.as_mut().poll_next(cx);
        if matches!(next, Poll::Ready(None)) {
            self.rows = Rows::Done;
        }
        next
    }
}

impl RecordBatchStream for WatchedRows {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_and_print_as_postgresql_writes_them() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("1500").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration(" 2 min").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1").is_err());
        assert_eq!(show_duration(Duration::from_secs(5)), "5s");
        assert_eq!(show_duration(Duration::from_millis(1500)), "1500ms");
    }
}
