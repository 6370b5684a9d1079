//! Queries of this server from their GetFlightInfo to the end of their DoGet, by id: a query
//! is planned once and starts producing while the client turns the FlightInfo into a DoGet,
//! and CancelFlightInfo (or the older CancelQuery action) can stop it at any point.
//!
//! A query's id travels in its ticket. Ids are local to the server that planned the query;
//! a ticket whose id this server does not know still runs (planned again from its SQL).
//!
//! The plan CreatePreparedStatement makes to learn a query's schema is kept too, for the
//! prepared statement's first GetFlightInfo, which runs it if the tables it reads have not
//! moved since (ADBC and JDBC prepare every statement, so a query is planned once, not twice).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::error::FlightError;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::status::{stream_error, to_status};
use crate::engine::PlannedQuery;
use crate::metrics::{Protocol, SessionGuard, metrics};

/// How long a query started by GetFlightInfo waits for its DoGet.
const PARKED_TTL: Duration = Duration::from_secs(60);

/// Most started queries waiting for their DoGet; beyond that, DoGet plans again.
const MAX_PARKED: usize = 1024;

/// Batches a started query produces before its DoGet reads them.
const PREFETCHED_BATCHES: usize = 2;

/// How long a cancelled query's ticket is refused.
const CANCELLED_TTL: Duration = Duration::from_secs(3600);

/// Most cancelled ids remembered; the oldest are forgotten first.
const MAX_CANCELLED: usize = 10_000;

/// Batches of a query as its DoGet sends them.
pub type Batches = BoxStream<'static, Result<RecordBatch, FlightError>>;

/// What a cancellation request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// The query was waiting or running and is now stopped, or was cancelled before.
    Stopped,
    /// This server has no such query: it finished, or another server planned it.
    Unknown,
}

/// The queries of one server.
#[derive(Default)]
pub struct Queries(Mutex<State>);

#[derive(Default)]
struct State {
    /// Plans made by CreatePreparedStatement, for the prepared statement's next GetFlightInfo.
    prepared: HashMap<String, (PlannedQuery, Instant)>,
    parked: HashMap<String, (StartedQuery, Instant)>,
    running: HashMap<String, CancellationToken>,
    cancelled: HashMap<String, Instant>,
}

/// A query started by GetFlightInfo, its first batches waiting in a small buffer.
struct StartedQuery {
    schema: SchemaRef,
    batches: mpsc::Receiver<datafusion::common::Result<RecordBatch>>,
    task: AbortOnDrop,
}

/// Stops the task producing a query's batches when whoever reads them goes away, even while
/// the task is busy computing its next batch.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Queries {
    fn state(&self) -> MutexGuard<'_, State> {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Dropping an expired entry stops its query.
        state
            .parked
            .retain(|_, (_, parked)| parked.elapsed() < PARKED_TTL);
        state
            .prepared
            .retain(|_, (_, kept)| kept.elapsed() < PARKED_TTL);
        state
            .cancelled
            .retain(|_, cancelled| cancelled.elapsed() < CANCELLED_TTL);
        state
    }

    /// A new query id.
    pub fn new_id() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    /// Starts `query` under `id` for the DoGet to come, unless too many queries are waiting
    /// (then it is dropped unstarted and DoGet plans it again).
    pub fn park(&self, id: &str, query: PlannedQuery) -> Result<(), Status> {
        let mut state = self.state();
        if state.parked.len() >= MAX_PARKED {
            return Ok(());
        }
        let schema = query.schema();
        let mut stream = query.execute().map_err(to_status)?;
        let (sender, batches) = mpsc::channel(PREFETCHED_BATCHES);
        let task = tokio::spawn(async move {
            while let Some(batch) = stream.next().await {
                if sender.send(batch).await.is_err() {
                    return;
                }
            }
        });
        let query = StartedQuery {
            schema,
            batches,
            task: AbortOnDrop(task.abort_handle()),
        };
        state.parked.insert(id.to_string(), (query, Instant::now()));
        Ok(())
    }

    /// Keeps the plan prepared statement `id` was prepared with, for its next GetFlightInfo
    /// (unless too many are kept; that one plans again).
    pub fn keep_prepared(&self, id: &str, query: PlannedQuery) {
        let mut state = self.state();
        if state.prepared.len() < MAX_PARKED {
            state
                .prepared
                .insert(id.to_string(), (query, Instant::now()));
        }
    }

    /// The plan kept for prepared statement `id`, once.
    pub fn take_prepared(&self, id: &str) -> Option<PlannedQuery> {
        self.state().prepared.remove(id).map(|(query, _)| query)
    }

    /// Marks query `id` running for its DoGet: its started batches if it still waits here,
    /// and the guard that keeps it cancellable until dropped. Fails for a cancelled query.
    pub fn run(self: &Arc<Self>, id: &str) -> Result<Running, Status> {
        let mut state = self.state();
        if state.cancelled.contains_key(id) {
            return Err(cancelled_status());
        }
        let started = state.parked.remove(id).map(|(query, _)| query);
        let token = CancellationToken::new();
        state.running.insert(id.to_string(), token.clone());
        Ok(Running {
            queries: Arc::clone(self),
            id: id.to_string(),
            token,
            started,
            _task: None,
        })
    }

    /// Cancels query `id`: stops it wherever it is and refuses its ticket from now on.
    pub fn cancel(&self, id: &str) -> Cancelled {
        let mut state = self.state();
        // The parked query's task is aborted as it drops.
        let parked = state.parked.remove(id).is_some();
        let running = state.running.remove(id);
        if let Some(token) = &running {
            token.cancel();
        }
        if !parked && running.is_none() && !state.cancelled.contains_key(id) {
            return Cancelled::Unknown;
        }
        if state.cancelled.len() >= MAX_CANCELLED
            && let Some(oldest) = state
                .cancelled
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(id, _)| id.clone())
        {
            state.cancelled.remove(&oldest);
        }
        state.cancelled.insert(id.to_string(), Instant::now());
        Cancelled::Stopped
    }
}

/// A query being sent by a DoGet; dropping it (the stream ended or the client went away)
/// forgets the query.
pub struct Running {
    queries: Arc<Queries>,
    id: String,
    token: CancellationToken,
    started: Option<StartedQuery>,
    /// Held only to be dropped with the guard.
    _task: Option<AbortOnDrop>,
}

impl Running {
    /// The schema and batches of the query GetFlightInfo started, if it was still waiting.
    /// Its task stays with this guard, so it stops when the DoGet's stream goes away.
    pub fn take_started(&mut self) -> Option<(SchemaRef, Batches)> {
        let StartedQuery {
            schema,
            batches,
            task,
        } = self.started.take()?;
        self._task = Some(task);
        let stream = ReceiverStream::new(batches)
            .map(|batch| batch.map_err(stream_error))
            .boxed();
        Some((schema, stream))
    }

    /// `batches`, ending with a `Cancelled` status as soon as the query is cancelled.
    pub fn until_cancelled(self, batches: Batches) -> Batches {
        futures::stream::unfold(Some((batches, self)), |state| async move {
            let (mut batches, running) = state?;
            tokio::select! {
                biased;
                () = running.token.cancelled() => Some((
                    Err(FlightError::Tonic(Box::new(cancelled_status()))),
                    None,
                )),
                next = batches.next() => next.map(|item| (item, Some((batches, running)))),
            }
        })
        .boxed()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut state = self.queries.state();
        if state
            .running
            .get(&self.id)
            .is_some_and(|token| *token == self.token)
        {
            state.running.remove(&self.id);
        }
    }
}

/// `batches`, counted in the metrics as one Flight statement (from now to the end of the
/// stream, failed unless it ended without an error) and as an active session meanwhile.
pub fn measured(batches: Batches) -> Batches {
    let record = Record {
        started: Instant::now(),
        ok: true,
        finished: false,
        _active: metrics().session(Protocol::Flight),
    };
    futures::stream::unfold(Some((batches, record)), |state| async move {
        let (mut batches, mut record) = state?;
        match batches.next().await {
            Some(item) => {
                record.ok &= item.is_ok();
                Some((item, Some((batches, record))))
            }
            None => {
                record.finished = true;
                None
            }
        }
    })
    .boxed()
}

/// One streamed query's figures, recorded when it is dropped.
struct Record {
    started: Instant,
    ok: bool,
    finished: bool,
    _active: SessionGuard,
}

impl Drop for Record {
    fn drop(&mut self) {
        metrics().statement(
            Protocol::Flight,
            self.ok && self.finished,
            self.started.elapsed(),
        );
    }
}

fn cancelled_status() -> Status {
    Status::cancelled("the query was cancelled")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cancelling_stops_a_running_stream_and_refuses_its_ticket() {
        let queries = Arc::new(Queries::default());
        let id = Queries::new_id();
        assert_eq!(queries.cancel(&id), Cancelled::Unknown);

        let running = queries.run(&id).unwrap();
        let endless: Batches = futures::stream::pending().boxed();
        let mut stream = running.until_cancelled(endless);
        assert_eq!(queries.cancel(&id), Cancelled::Stopped);
        let Some(Err(FlightError::Tonic(status))) = stream.next().await else {
            panic!("a cancelled stream ends with an error");
        };
        assert_eq!(status.code(), tonic::Code::Cancelled);
        assert!(stream.next().await.is_none());

        assert_eq!(
            queries.run(&id).err().unwrap().code(),
            tonic::Code::Cancelled
        );
        assert_eq!(queries.cancel(&id), Cancelled::Stopped);
    }

    #[tokio::test]
    async fn a_finished_query_is_forgotten() {
        let queries = Arc::new(Queries::default());
        let id = Queries::new_id();
        let running = queries.run(&id).unwrap();
        let stream = running.until_cancelled(futures::stream::empty().boxed());
        assert_eq!(stream.count().await, 0);
        assert_eq!(queries.cancel(&id), Cancelled::Unknown);
    }
}
