//! [`FlightSqlServer`]: the Flight SQL service over the engine.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema};
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::SqlInfoData;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionBeginTransactionRequest, ActionBeginTransactionResult,
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, ActionEndTransactionRequest, CommandGetCatalogs,
    CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandGetXdbcTypeInfo, CommandPreparedStatementQuery, CommandPreparedStatementUpdate,
    CommandStatementIngest, CommandStatementQuery, CommandStatementUpdate,
    DoPutPreparedStatementResult, EndTransaction, ProstMessageExt, SqlInfo, TableDefinitionOptions,
    TableExistsOption, TableNotExistOption, TicketStatementQuery,
};
use arrow_flight::sql::{ActionCancelQueryRequest, ActionCancelQueryResult, Any, Command};
use arrow_flight::{
    ActionType, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightDescriptor,
    FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc,
    SchemaResult, Ticket,
};
use bytes::Bytes;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use super::handle::StatementHandle;
use super::metadata::CatalogCommand;
use super::queries::{self, Cancelled, Queries, Running};
use super::session;
use super::sql_info;
use super::status::{stream_error, to_status, with_sqlstate};
use super::wire::FlightOptions;
use crate::auth::Authenticator;
use crate::engine::{
    CATALOG_NAME, Engine, EngineError, IfExists, IfMissing, NO_ACTIVE_TRANSACTION, Outcome,
    PlannedQuery, Session, Transaction, parameters,
};
use crate::metrics::{Protocol, metrics};

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

/// Flight SQL transactions idle for longer than this are rolled back (a client that vanished
/// must not hold table locks forever).
const TRANSACTION_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Flight SQL over one shared [`Engine`].
pub struct FlightSqlServer {
    engine: Arc<Engine>,
    /// Logins for Handshake; `None` when authentication is off.
    auth: Option<Arc<Authenticator>>,
    sql_info: SqlInfoData,
    transactions: Arc<Transactions>,
    queries: Arc<Queries>,
    bound: BoundParameters,
    options: FlightOptions,
}

/// Core Flight actions MiniDB runs besides Flight SQL's own.
const CANCEL_FLIGHT_INFO: &str = "CancelFlightInfo";
const SET_SESSION_OPTIONS: &str = "SetSessionOptions";
const GET_SESSION_OPTIONS: &str = "GetSessionOptions";
const CLOSE_SESSION: &str = "CloseSession";

/// Open Flight SQL transactions by id, with the time each was last used.
#[derive(Default)]
struct Transactions(Mutex<HashMap<String, (Arc<Transaction>, Instant)>>);

impl Transactions {
    /// An empty registry, plus a task that rolls back idle transactions even when no Flight SQL
    /// call arrives (their table locks would otherwise hold up other writers). The task ends
    /// with the registry.
    fn with_sweeper() -> Arc<Self> {
        let registry = Arc::new(Self::default());
        let weak = Arc::downgrade(&registry);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TRANSACTION_IDLE_TIMEOUT / 10);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(registry) => drop(registry.entries()),
                    None => return,
                }
            }
        });
        registry
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<Transaction>, Instant)>> {
        let mut entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (_, used)| used.elapsed() < TRANSACTION_IDLE_TIMEOUT);
        entries
    }

    fn insert(&self, transaction: Arc<Transaction>) {
        let id = transaction.id().to_string();
        self.entries().insert(id, (transaction, Instant::now()));
    }

    fn get(&self, id: &str) -> Result<Arc<Transaction>, Status> {
        match self.entries().get_mut(id) {
            Some((transaction, used)) => {
                *used = Instant::now();
                Ok(Arc::clone(transaction))
            }
            None => Err(with_sqlstate(
                Status::not_found(format!(
                    "transaction '{id}' is not open (committed, rolled back, or idle for over {} \
                     s)",
                    TRANSACTION_IDLE_TIMEOUT.as_secs()
                )),
                NO_ACTIVE_TRANSACTION,
            )),
        }
    }

    fn remove(&self, id: &str) -> Result<Arc<Transaction>, Status> {
        let transaction = self.get(id)?;
        self.entries().remove(id);
        Ok(transaction)
    }
}

/// Parameters bound through DoPut, by prepared-statement id. A client may keep using the
/// handle it got from CreatePreparedStatement after binding (flightsql-dbapi does), so the
/// values are kept here too, not only in the handle DoPut answers with.
#[derive(Default)]
struct BoundParameters(Mutex<HashMap<String, (ParameterRows, Instant)>>);

/// Rows of parameter values as SQL literals, one row per execution.
type ParameterRows = Vec<Vec<String>>;

/// How long bound parameters wait for their statement to run.
const BOUND_PARAMETERS_TTL: Duration = Duration::from_secs(3600);

/// Most prepared statements with parameters kept at once; beyond, the oldest are let go.
const MAX_BOUND_STATEMENTS: usize = 10_000;

impl BoundParameters {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, (ParameterRows, Instant)>> {
        let mut entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (_, bound)| bound.elapsed() < BOUND_PARAMETERS_TTL);
        entries
    }

    fn remember(&self, id: &str, rows: ParameterRows) {
        let mut entries = self.entries();
        if entries.len() >= MAX_BOUND_STATEMENTS
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, (_, bound))| *bound)
                .map(|(id, _)| id.clone())
        {
            entries.remove(&oldest);
        }
        entries.insert(id.to_string(), (rows, Instant::now()));
    }

    fn get(&self, id: &str) -> Option<ParameterRows> {
        self.entries().get(id).map(|(rows, _)| rows.clone())
    }

    fn forget(&self, id: &str) {
        self.entries().remove(id);
    }
}

/// Most parameter rows one call may bind (their Arrow size): they are held until the statement
/// runs once per row.
const MAX_PARAMETER_BYTES: usize = 64 << 20;

/// The parameter rows a DoPut carries, as SQL literals; batches without columns (JDBC sends
/// one for a statement without parameters) carry none.
async fn parameter_rows(input: PeekableFlightDataStream) -> Result<ParameterRows, Status> {
    let mut batches =
        FlightRecordBatchStream::new_from_flight_data(input.map_err(FlightError::from));
    let mut rows = Vec::new();
    let mut bytes = 0;
    while let Some(batch) = batches.next().await {
        let batch = batch.map_err(|e| Status::invalid_argument(format!("parameters: {e}")))?;
        bytes += batch.get_array_memory_size();
        if bytes > MAX_PARAMETER_BYTES {
            return Err(Status::resource_exhausted(format!(
                "parameters: more than {} MiB of parameter rows in one call; bind them in parts, \
                 or load rows with a bulk ingest (ADBC adbc_ingest)",
                MAX_PARAMETER_BYTES >> 20
            )));
        }
        if parameters::has_values(&batch) {
            rows.extend(parameters::literal_rows(&batch).map_err(to_status)?);
        }
    }
    Ok(rows)
}

/// What an ingest does when its table is missing or exists; without options, it creates a
/// missing table and fails on an existing one (ADBC's default mode).
fn ingest_modes(options: Option<TableDefinitionOptions>) -> Result<(IfMissing, IfExists), Status> {
    let Some(options) = options else {
        return Ok((IfMissing::Create, IfExists::Fail));
    };
    let if_missing = match TableNotExistOption::try_from(options.if_not_exist) {
        Ok(TableNotExistOption::Create) => IfMissing::Create,
        Ok(TableNotExistOption::Fail) => IfMissing::Fail,
        _ => {
            return Err(Status::invalid_argument(
                "ingest: if_not_exist must be CREATE or FAIL",
            ));
        }
    };
    let if_exists = match TableExistsOption::try_from(options.if_exists) {
        Ok(TableExistsOption::Fail) => IfExists::Fail,
        Ok(TableExistsOption::Append) => IfExists::Append,
        Ok(TableExistsOption::Replace) => IfExists::Replace,
        _ => {
            return Err(Status::invalid_argument(
                "ingest: if_exists must be FAIL, APPEND or REPLACE",
            ));
        }
    };
    Ok((if_missing, if_exists))
}

/// The record batches of an ingest's DoPut as a stream, decoded as they arrive; the schema
/// comes from the stream's first message.
async fn ingest_rows(input: PeekableFlightDataStream) -> Result<SendableRecordBatchStream, Status> {
    let mut batches =
        FlightRecordBatchStream::new_from_flight_data(input.map_err(FlightError::from));
    let first =
        batches.next().await.transpose().map_err(|e| {
            Status::invalid_argument(format!("ingest: the rows do not decode: {e}"))
        })?;
    let schema = batches
        .schema()
        .cloned()
        .ok_or_else(|| Status::invalid_argument("ingest: the stream carries no schema"))?;
    let rest = batches.map_err(|e| DataFusionError::External(Box::new(e)));
    let rows = futures::stream::iter(first.map(Ok)).chain(rest);
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, rows)))
}

/// `schema` as the IPC message Flight SQL carries in prepared-statement results.
fn ipc_schema(schema: &Schema) -> Result<Bytes, Status> {
    let options = arrow::ipc::writer::IpcWriteOptions::default();
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &options)
        .try_into()
        .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(bytes)
}

/// One batch as a DoGet stream.
fn batch_stream(batch: RecordBatch) -> DoGetStream {
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(batch.schema())
        .build(futures::stream::once(async { Ok(batch) }))
        .map_err(Status::from);
    Box::pin(stream)
}

/// Why a query bound to `rows` parameter rows does not run: a query answers one row set.
fn several_rows_on_a_query(rows: usize) -> String {
    format!(
        "a query runs with one row of parameters; {rows} rows were bound (execute it once per \
         row, or pass the values in an IN (…) list or a VALUES table)"
    )
}

/// The handle of `sql` sent with `metadata`: in the request's session (database, statement
/// timeout) and transaction.
fn statement_handle(
    sql: String,
    transaction: Option<&[u8]>,
    metadata: &MetadataMap,
) -> Result<StatementHandle, Status> {
    let session = session::from_metadata(metadata);
    let transaction = transaction.map(transaction_id).transpose()?;
    Ok(
        StatementHandle::new(sql, session.database().to_string(), transaction)
            .in_session_of(&session),
    )
}

/// A transaction id as Flight SQL sends it (opaque bytes; MiniDB's are UUID text).
fn transaction_id(bytes: &[u8]) -> Result<String, Status> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Status::invalid_argument("not a MiniDB transaction id"))
}

impl FlightSqlServer {
    /// A Flight SQL service over `engine`; with `auth`, Handshake logs users in (every other
    /// call is checked by the server's [`RequireTokenLayer`](crate::protocol::grpc_auth)).
    pub fn new(
        engine: Arc<Engine>,
        auth: Option<Arc<Authenticator>>,
        options: FlightOptions,
    ) -> Self {
        let sql_info = sql_info::sql_info(&engine);
        Self {
            engine,
            auth,
            sql_info,
            transactions: Transactions::with_sweeper(),
            queries: Arc::default(),
            bound: BoundParameters::default(),
            options,
        }
    }

    /// The FlightInfo of a catalog RPC: the answer's schema and a ticket naming the command.
    async fn catalog_info(
        &self,
        command: CatalogCommand,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = command.ticket();
        let batch = command.answer(&self.engine).await?;
        let info = FlightInfo::new()
            .try_with_schema(batch.schema().as_ref())
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
            .with_descriptor(descriptor)
            .with_total_records(batch.num_rows() as i64);
        Ok(Response::new(info))
    }

    /// The DoGet answer of a catalog RPC.
    async fn catalog_answer(
        &self,
        command: CatalogCommand,
    ) -> Result<Response<DoGetStream>, Status> {
        let batch = command.answer(&self.engine).await?;
        Ok(Response::new(batch_stream(batch)))
    }

    /// The session a statement handle runs for `user`: its database and, if any, its
    /// transaction.
    fn session(&self, handle: &StatementHandle, user: Option<String>) -> Result<Session, Status> {
        let mut session = Session::in_database(handle.database.clone()).with_origin("flight", user);
        if let Some(ms) = handle.timeout_ms {
            session.set_statement_timeout(Some(Duration::from_millis(ms)));
        }
        let Some(id) = &handle.transaction else {
            return Ok(session);
        };
        match self.transactions.get(id) {
            Ok(transaction) => Ok(session.with_transaction(transaction)),
            // A prepared statement belongs to the transaction it was prepared in (ADBC's DBAPI
            // reuses the handle of an unchanged query across COMMIT).
            Err(status) if handle.id.is_some() => Err(Status::new(
                status.code(),
                format!(
                    "{}; the prepared statement belonged to it: prepare it again",
                    status.message()
                ),
            )),
            Err(status) => Err(status),
        }
    }

    /// The statements `handle` runs: its SQL, or for a prepared statement its SQL with each
    /// row of bound parameters (those in the handle, else those bound on this server).
    fn statements(&self, handle: &mut StatementHandle) -> Result<Vec<String>, Status> {
        let Some(id) = &handle.id else {
            return Ok(vec![handle.sql.clone()]);
        };
        if handle.parameters.is_none() {
            handle.parameters = self.bound.get(id);
        }
        match &handle.parameters {
            Some(rows) => parameters::bind_rows(&handle.sql, rows),
            None => parameters::bind(&handle.sql, &[]).map(|sql| vec![sql]),
        }
        .map_err(to_status)
    }

    /// The one statement of a handle that must run once (a query).
    fn statement(&self, handle: &mut StatementHandle) -> Result<String, Status> {
        let mut statements = self.statements(handle)?;
        match statements.len() {
            1 => Ok(statements.remove(0)),
            n => Err(Status::invalid_argument(several_rows_on_a_query(n))),
        }
    }

    /// Runs `statements` (a prepared statement over several parameter rows) as one atomic
    /// execution: inside the session's transaction, or a transaction of their own.
    async fn execute_all(
        &self,
        session: &mut Session,
        statements: &[String],
    ) -> Result<i64, Status> {
        let own = session.transaction().is_none() && statements.len() > 1;
        if own {
            session.begin(self.engine.begin());
        }
        let mut affected = 0u64;
        for sql in statements {
            let outcome = self.execute(session, sql).await?;
            if matches!(outcome, Outcome::Rows(_) | Outcome::Listing(..)) {
                return Err(Status::invalid_argument(if statements.len() > 1 {
                    several_rows_on_a_query(statements.len())
                } else {
                    "a statement that returns rows cannot run as an update".into()
                }));
            }
            affected += outcome.affected_rows();
        }
        if own && let Some(transaction) = session.end_transaction() {
            self.engine.commit(&transaction).await.map_err(to_status)?;
        }
        Ok(i64::try_from(affected).unwrap_or(i64::MAX))
    }

    /// Runs one statement; a conflict that rolled the session's transaction back also closes it
    /// for Flight SQL.
    async fn execute(&self, session: &mut Session, sql: &str) -> Result<Outcome, Status> {
        let transaction = session.transaction().map(|t| t.id().to_string());
        let started = Instant::now();
        let mut result = self.engine.execute(session, sql).await;
        if matches!(result, Ok(Outcome::TransactionStarted)) {
            // Each Flight SQL call runs in a session of its own: a transaction begun by a
            // statement would end with this call, and the statements after it would not run in
            // it. Flight SQL's own transactions carry their id from call to call.
            session.end_transaction();
            result = Err(EngineError::NotSupported(
                "BEGIN as a statement over Flight SQL: use the client's transactions (ADBC: \
                 autocommit off; JDBC: setAutoCommit(false); minidb-cli: BEGIN)"
                    .into(),
            ));
        }
        metrics().statement(Protocol::Flight, result.is_ok(), started.elapsed());
        if let Some(id) = transaction
            && session.transaction().is_none()
        {
            let _ = self.transactions.remove(&id);
        }
        result.map_err(to_status)
    }

    /// FlightInfo for `handle`: a query gets its schema and a ticket; any other statement runs
    /// now and answers with an empty schema and no endpoints. A query starts now and waits on
    /// this server for the ticket's DoGet (the ticket carries the handle `ticket` is given).
    async fn flight_info(
        &self,
        mut handle: StatementHandle,
        prepared: Option<PlannedQuery>,
        ticket: impl FnOnce(&StatementHandle) -> Ticket,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let mut session = self.session(&handle, session::caller(&request))?;
        let descriptor = request.into_inner();
        let statements = self.statements(&mut handle)?;
        let (sql, schema) = match statements.as_slice() {
            [sql] => {
                let planned = match prepared {
                    Some(query) => Some(query),
                    None => self
                        .engine
                        .plan_query(&session, sql)
                        .await
                        .map_err(to_status)?,
                };
                let schema = match planned {
                    Some(query) => {
                        let schema = query.schema();
                        let id = Queries::new_id();
                        self.queries.park(&id, query)?;
                        handle.plan = Some(id);
                        Some(schema)
                    }
                    None => self
                        .engine
                        .output_schema(&session, sql)
                        .await
                        .map_err(to_status)?,
                };
                (Some(sql), schema)
            }
            _ => (None, None),
        };
        let Some(schema) = schema else {
            let (affected, remember) = match sql {
                Some(sql) => {
                    let outcome = self.execute(&mut session, sql).await?;
                    let affected = i64::try_from(outcome.affected_rows()).unwrap_or(i64::MAX);
                    let changes_session = matches!(
                        outcome,
                        Outcome::UsingDatabase(_) | Outcome::SettingChanged(_)
                    );
                    (affected, changes_session)
                }
                None => (self.execute_all(&mut session, &statements).await?, false),
            };
            // One endpoint whose DoGet answers with no rows: some clients (flightsql-dbapi)
            // fetch endpoint 0 of every statement they run.
            handle.executed = true;
            let info = FlightInfo::new()
                .try_with_schema(&Schema::empty())
                .map_err(|e| Status::internal(e.to_string()))?
                .with_endpoint(FlightEndpoint::new().with_ticket(ticket(&handle)))
                .with_descriptor(descriptor)
                .with_total_records(affected);
            let mut response = Response::new(info);
            if remember {
                session::remember(response.metadata_mut(), &session);
            }
            return Ok(response);
        };
        let info = FlightInfo::new()
            .try_with_schema(&self.options.wire_schema(&schema))
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket(&handle)))
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }

    /// Runs a query and streams its batches; a query GetFlightInfo started continues, and
    /// stays cancellable until its last batch is sent.
    async fn stream(
        &self,
        mut handle: StatementHandle,
        user: Option<String>,
    ) -> Result<Response<DoGetStream>, Status> {
        if handle.executed {
            return Ok(Response::new(batch_stream(RecordBatch::new_empty(
                Arc::new(Schema::empty()),
            ))));
        }
        let mut running = handle
            .plan
            .as_deref()
            .map(|id| self.queries.run(id))
            .transpose()?;
        let (schema, batches) = match running.as_mut().and_then(Running::take_started) {
            Some(started) => started,
            None => {
                let mut session = self.session(&handle, user)?;
                let sql = self.statement(&mut handle)?;
                match self.execute(&mut session, &sql).await? {
                    Outcome::Rows(stream) => {
                        (stream.schema(), stream.map_err(stream_error).boxed())
                    }
                    Outcome::Listing(_, batch) => (
                        batch.schema(),
                        futures::stream::once(async move { Ok(batch) }).boxed(),
                    ),
                    _ => (Arc::new(Schema::empty()), futures::stream::empty().boxed()),
                }
            }
        };
        let batches = match running {
            Some(running) => running.until_cancelled(batches),
            None => batches,
        };
        let batches = queries::measured(batches);
        let options = self.options;
        let wire = options.wire_schema(&schema);
        let sent = Arc::clone(&wire);
        let batches = batches.map(move |batch| Ok(options.wire_batch(batch?, &sent)?));
        let flight = FlightDataEncoderBuilder::new()
            .with_schema(wire)
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(flight)))
    }

    /// GetSchema: the schema of a command's results, running nothing. Statements are planned;
    /// a catalog command's FlightInfo carries its schema; updates have no results.
    pub async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        let command = Any::decode(&*request.get_ref().cmd)
            .map_err(|e| Status::invalid_argument(format!("not a Flight SQL command: {e}")))
            .and_then(|any| {
                Command::try_from(any).map_err(|e| Status::invalid_argument(e.to_string()))
            })?;
        let handle = match command {
            Command::CommandStatementQuery(query) => statement_handle(
                query.query,
                query.transaction_id.as_deref(),
                request.metadata(),
            )?,
            Command::CommandPreparedStatementQuery(query) => {
                StatementHandle::decode(&query.prepared_statement_handle)?
            }
            Command::CommandStatementUpdate(_)
            | Command::CommandPreparedStatementUpdate(_)
            | Command::CommandStatementIngest(_) => {
                return Ok(Response::new(SchemaResult {
                    schema: ipc_schema(&Schema::empty())?,
                }));
            }
            Command::CommandStatementSubstraitPlan(_) => {
                return Err(Status::unimplemented("not supported: Substrait plans"));
            }
            _ => {
                let info = FlightService::get_flight_info(self, request).await?;
                return Ok(Response::new(SchemaResult {
                    schema: info.into_inner().schema,
                }));
            }
        };
        let session = self.session(&handle, session::caller(&request))?;
        let prepared = self
            .engine
            .prepare(&session, &handle.sql)
            .await
            .map_err(to_status)?;
        let schema = match prepared.schema {
            Some(schema) => self.options.wire_schema(&schema),
            None => Arc::new(Schema::empty()),
        };
        Ok(Response::new(SchemaResult {
            schema: ipc_schema(&schema)?,
        }))
    }

    /// Cancels the query whose FlightInfo is `info`. Statements that ran at GetFlightInfo
    /// (DDL, DML) and catalog answers are done by the time anyone can cancel them.
    fn cancel(&self, info: &FlightInfo) -> Result<CancelStatus, Status> {
        let ticket = info
            .endpoint
            .iter()
            .find_map(|endpoint| endpoint.ticket.as_ref())
            .ok_or_else(|| Status::invalid_argument("the FlightInfo has no ticket to cancel"))?;
        let command = Any::decode(&*ticket.ticket)
            .map_err(|e| Status::invalid_argument(format!("not a MiniDB ticket: {e}")))
            .and_then(|any| {
                Command::try_from(any).map_err(|e| Status::invalid_argument(e.to_string()))
            })?;
        let handle = match command {
            Command::TicketStatementQuery(ticket) => {
                StatementHandle::decode(&ticket.statement_handle)?
            }
            Command::CommandPreparedStatementQuery(query) => {
                StatementHandle::decode(&query.prepared_statement_handle)?
            }
            _ => return Ok(CancelStatus::NotCancellable),
        };
        let Some(id) = handle.plan.filter(|_| !handle.executed) else {
            return Ok(CancelStatus::NotCancellable);
        };
        match self.queries.cancel(&id) {
            Cancelled::Stopped => Ok(CancelStatus::Cancelled),
            Cancelled::Unknown => Err(Status::not_found(
                "no such query is running on this server: it finished, or another server runs it",
            )),
        }
    }

    /// Runs a statement that returns no rows and reports the affected row count.
    async fn update(
        &self,
        mut handle: StatementHandle,
        user: Option<String>,
    ) -> Result<i64, Status> {
        let mut session = self.session(&handle, user)?;
        let statements = self.statements(&mut handle)?;
        self.execute_all(&mut session, &statements).await
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlServer {
    type FlightService = FlightSqlServer;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        // The request stream is not read: Go and C++ clients send no message, Java one empty.
        let token = match &self.auth {
            None => String::new(),
            Some(auth) => {
                let header = request
                    .metadata()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        Status::unauthenticated("Handshake needs 'authorization: Basic …'")
                    })?;
                if header
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("bearer ")
                {
                    // JDBC with token= hands its token to the Handshake too.
                    auth.verify_bearer(Some(header))
                        .map_err(|e| Status::unauthenticated(e.to_string()))?;
                    header.trim()[7..].trim().to_string()
                } else {
                    auth.login_basic(header)
                        .map_err(|e| Status::unauthenticated(e.to_string()))?
                        .1
                }
            }
        };
        let response = HandshakeResponse {
            protocol_version: 0,
            payload: Bytes::from(token.clone().into_bytes()),
        };
        let mut response = Response::new(Box::pin(futures::stream::once(async { Ok(response) }))
            as Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>);
        if !token.is_empty() {
            // Clients read the token from this header (Rust and Java from the headers only).
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| Status::internal("token is not a valid header value"))?;
            response.metadata_mut().insert("authorization", value);
        }
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let handle = statement_handle(
            query.query,
            query.transaction_id.as_deref(),
            request.metadata(),
        )?;
        let ticket = |h: &StatementHandle| {
            let statement = TicketStatementQuery {
                statement_handle: h.encode(),
            };
            Ticket::new(statement.as_any().encode_to_vec())
        };
        self.flight_info(handle, None, ticket, request).await
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let handle = StatementHandle::decode(&query.prepared_statement_handle)?;
        // The plan made when the statement was prepared runs if nothing it reads has moved.
        let mut prepared = match (&handle.id, &handle.parameters, &handle.transaction) {
            (Some(id), None, None) => self.queries.take_prepared(id),
            _ => None,
        };
        if let Some(query) = &prepared
            && !self.engine.is_current(query).await.map_err(to_status)?
        {
            prepared = None;
        }
        // The ticket names the handle with its parked plan, like a statement's ticket.
        let ticket = |h: &StatementHandle| {
            let query = CommandPreparedStatementQuery {
                prepared_statement_handle: h.encode(),
            };
            Ticket::new(query.as_any().encode_to_vec())
        };
        self.flight_info(handle, prepared, ticket, request).await
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.sql_info).schema();
        let info = FlightInfo::new()
            .try_with_schema(schema.as_ref())
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(
                FlightEndpoint::new().with_ticket(Ticket::new(query.as_any().encode_to_vec())),
            )
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.stream(
            StatementHandle::decode(&ticket.statement_handle)?,
            session::caller(&request),
        )
        .await
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.stream(
            StatementHandle::decode(&query.prepared_statement_handle)?,
            session::caller(&request),
        )
        .await
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = if query.info.is_empty() {
            self.sql_info
                .record_batch(sql_info::UNREQUESTED_ANSWERS.iter().copied())
        } else {
            query.into_builder(&self.sql_info).build()
        }
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(batch_stream(batch)))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.catalog_info(CatalogCommand::Catalogs(query), request.into_inner())
            .await
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.catalog_info(CatalogCommand::Schemas(query), request.into_inner())
            .await
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.catalog_info(CatalogCommand::Tables(query), request.into_inner())
            .await
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.catalog_info(CatalogCommand::TableTypes(query), request.into_inner())
            .await
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.catalog_info(CatalogCommand::PrimaryKeys(query), request.into_inner())
            .await
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.catalog_info(CatalogCommand::ExportedKeys(query), request.into_inner())
            .await
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.catalog_info(CatalogCommand::ImportedKeys(query), request.into_inner())
            .await
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.catalog_info(CatalogCommand::CrossReference(query), request.into_inner())
            .await
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.catalog_info(CatalogCommand::TypeInfo(query), request.into_inner())
            .await
    }

    async fn do_get_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.catalog_answer(CatalogCommand::ExportedKeys(query))
            .await
    }

    async fn do_get_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.catalog_answer(CatalogCommand::ImportedKeys(query))
            .await
    }

    async fn do_get_cross_reference(
        &self,
        query: CommandGetCrossReference,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.catalog_answer(CatalogCommand::CrossReference(query))
            .await
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.catalog_answer(CatalogCommand::TypeInfo(query)).await
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.catalog_answer(CatalogCommand::Catalogs(query)).await
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.catalog_answer(CatalogCommand::Schemas(query)).await
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.catalog_answer(CatalogCommand::Tables(query)).await
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.catalog_answer(CatalogCommand::TableTypes(query)).await
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.catalog_answer(CatalogCommand::PrimaryKeys(query))
            .await
    }

    async fn do_put_statement_update(
        &self,
        ticket: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        // The input stream is not drained: clients may wait for this answer before closing it.
        let handle = statement_handle(
            ticket.query,
            ticket.transaction_id.as_deref(),
            request.metadata(),
        )?;
        self.update(handle, session::caller(&request)).await
    }

    async fn do_put_statement_ingest(
        &self,
        command: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let mut session = session::from_request(&request);
        if let Some(id) = command.transaction_id.as_deref() {
            session = session.with_transaction(self.transactions.get(&transaction_id(id)?)?);
        }
        if command.temporary {
            return Err(to_status(EngineError::NotSupported(
                "temporary tables".into(),
            )));
        }
        if let Some(catalog) = command.catalog.as_deref()
            && catalog != CATALOG_NAME
        {
            return Err(Status::not_found(format!(
                "catalog '{catalog}' does not exist; MiniDB's catalog is '{CATALOG_NAME}'"
            )));
        }
        let modes = ingest_modes(command.table_definition_options)?;
        let rows = ingest_rows(request.into_inner()).await?;
        let written = self
            .engine
            .ingest(&mut session, command.schema, &command.table, modes, rows)
            .await
            .map_err(to_status)?;
        Ok(i64::try_from(written).unwrap_or(i64::MAX))
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let mut handle = StatementHandle::decode(&query.prepared_statement_handle)?;
        let user = session::caller(&request);
        // Rows sent with the update are its parameters (executemany); without any, the ones
        // bound before apply.
        let rows = parameter_rows(request.into_inner()).await?;
        if !rows.is_empty() {
            handle.parameters = Some(rows);
        }
        self.update(handle, user).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let caller = session::from_request(&request);
        let transaction = query
            .transaction_id
            .as_deref()
            .map(transaction_id)
            .transpose()?;
        let mut handle =
            StatementHandle::new(query.query, caller.database().to_string(), transaction)
                .in_session_of(&caller);
        let session = self.session(&handle, session::caller(&request))?;
        let prepared = self
            .engine
            .prepare(&session, &handle.sql)
            .await
            .map_err(to_status)?;
        handle.sql = prepared.sql;
        let id = uuid::Uuid::new_v4().simple().to_string();
        if let (Some(plan), None) = (prepared.plan, &handle.transaction) {
            self.queries.keep_prepared(&id, plan);
        }
        handle.id = Some(id);
        let schema = prepared
            .schema
            .map(|schema| self.options.wire_schema(&schema))
            .unwrap_or_else(|| Arc::new(Schema::empty()));
        // Parameters are nullable: JDBC refuses to bind NULL to a non-nullable one.
        let parameters = Schema::new(
            prepared
                .parameters
                .into_iter()
                .enumerate()
                .map(|(i, data_type)| Field::new(format!("${}", i + 1), data_type, true))
                .collect::<Vec<_>>(),
        );
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.encode(),
            dataset_schema: ipc_schema(&schema)?,
            parameter_schema: ipc_schema(&parameters)?,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let mut handle = StatementHandle::decode(&query.prepared_statement_handle)?;
        let rows = parameter_rows(request.into_inner()).await?;
        if let Some(id) = &handle.id {
            self.bound.remember(id, rows.clone());
        }
        handle.parameters = Some(rows);
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle.encode()),
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        _request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        // Handles are self-contained; only parameters bound on this server are let go.
        let handle = StatementHandle::decode(&query.prepared_statement_handle)?;
        if let Some(id) = &handle.id {
            self.bound.forget(id);
            self.queries.take_prepared(id);
        }
        Ok(())
    }

    async fn do_action_begin_transaction(
        &self,
        _query: ActionBeginTransactionRequest,
        _request: Request<arrow_flight::Action>,
    ) -> Result<ActionBeginTransactionResult, Status> {
        let transaction = self.engine.begin();
        let transaction_id = Bytes::from(transaction.id().as_bytes().to_vec());
        self.transactions.insert(transaction);
        Ok(ActionBeginTransactionResult { transaction_id })
    }

    async fn do_action_end_transaction(
        &self,
        query: ActionEndTransactionRequest,
        _request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        let id = transaction_id(&query.transaction_id)?;
        let action = EndTransaction::try_from(query.action)
            .map_err(|_| Status::invalid_argument("unknown EndTransaction action"))?;
        match action {
            EndTransaction::Commit => {
                let transaction = self.transactions.remove(&id)?;
                self.engine.commit(&transaction).await.map_err(to_status)
            }
            // Rolling back a transaction a conflict already rolled back is not an error.
            EndTransaction::Rollback => {
                let _ = self.transactions.remove(&id);
                Ok(())
            }
            EndTransaction::Unspecified => Err(Status::invalid_argument(
                "EndTransaction needs COMMIT or ROLLBACK",
            )),
        }
    }

    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        _request: Request<arrow_flight::Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        let info = FlightInfo::decode(query.info)
            .map_err(|e| Status::invalid_argument(format!("not a FlightInfo: {e}")))?;
        // The older action's CancelResult numbers its answers as CancelStatus does.
        Ok(ActionCancelQueryResult {
            result: self.cancel(&info)? as i32,
        })
    }

    /// The core Flight actions: CancelFlightInfo and the session options.
    async fn do_action_fallback(
        &self,
        request: Request<arrow_flight::Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let mut session = session::from_request(&request);
        let action = request.into_inner();
        let mut metadata = MetadataMap::new();
        let body = match action.r#type.as_str() {
            CANCEL_FLIGHT_INFO => {
                let info = CancelFlightInfoRequest::decode(action.body)
                    .map_err(|e| Status::invalid_argument(format!("bad CancelFlightInfo: {e}")))?
                    .info
                    .ok_or_else(|| {
                        Status::invalid_argument("CancelFlightInfo without a FlightInfo")
                    })?;
                CancelFlightInfoResult {
                    status: self.cancel(&info)? as i32,
                }
                .encode_to_vec()
            }
            SET_SESSION_OPTIONS => {
                let options = session::SetSessionOptionsRequest::decode(action.body)
                    .map_err(|e| Status::invalid_argument(format!("bad SetSessionOptions: {e}")))?;
                let result = session::set_options(&self.engine, &mut session, options).await?;
                session::remember(&mut metadata, &session);
                result.encode_to_vec()
            }
            GET_SESSION_OPTIONS => session::options(&session).encode_to_vec(),
            CLOSE_SESSION => {
                session::forget(&mut metadata);
                session::CloseSessionResult {
                    status: session::CloseSessionStatus::Closed as i32,
                }
                .encode_to_vec()
            }
            other => {
                return Err(Status::invalid_argument(format!(
                    "unknown action '{other}' (ListActions names those MiniDB runs)"
                )));
            }
        };
        let result = arrow_flight::Result {
            body: Bytes::from(body),
        };
        let stream: <Self as FlightService>::DoActionStream =
            Box::pin(futures::stream::once(async { Ok(result) }));
        let mut response = Response::new(stream);
        *response.metadata_mut() = metadata;
        Ok(response)
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<ActionType, Status>>> {
        let action = |name: &str, description: &str| {
            Ok(ActionType {
                r#type: name.to_string(),
                description: description.to_string(),
            })
        };
        Some(vec![
            action(
                CANCEL_FLIGHT_INFO,
                "Stops the query of a FlightInfo and refuses its ticket from then on.\n\
                 Request: CancelFlightInfoRequest. Result: CancelFlightInfoResult.",
            ),
            action(
                SET_SESSION_OPTIONS,
                "Sets 'schema' (the current database; kept by the session cookie) or \
                 'catalog' (always 'minidb').\n\
                 Request: SetSessionOptionsRequest. Result: SetSessionOptionsResult.",
            ),
            action(
                GET_SESSION_OPTIONS,
                "Reports 'catalog' and 'schema' (the current database).\n\
                 Request: GetSessionOptionsRequest. Result: GetSessionOptionsResult.",
            ),
            action(
                CLOSE_SESSION,
                "Ends the session: the client is back in database 'default'.\n\
                 Request: CloseSessionRequest. Result: CloseSessionResult.",
            ),
        ])
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
