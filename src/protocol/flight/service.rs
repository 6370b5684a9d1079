//! [`FlightSqlServer`]: the Flight SQL service over the engine.

use std::pin::Pin;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetSqlInfo, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementQuery, CommandStatementUpdate, ProstMessageExt,
    SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::handle::StatementHandle;
use super::session;
use super::status::to_status;
use crate::engine::{Engine, Outcome, Session};

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

/// Flight SQL over one shared [`Engine`].
pub struct FlightSqlServer {
    engine: Arc<Engine>,
    sql_info: SqlInfoData,
}

impl FlightSqlServer {
    pub fn new(engine: Arc<Engine>) -> Self {
        let mut info = SqlInfoDataBuilder::new();
        info.append(SqlInfo::FlightSqlServerName, "MiniDB");
        info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        info.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
        info.append(SqlInfo::FlightSqlServerReadOnly, false);
        info.append(SqlInfo::FlightSqlServerSql, true);
        info.append(SqlInfo::FlightSqlServerSubstrait, false);
        // 0 = no transactions (yet): ADBC then stays in autocommit.
        info.append(SqlInfo::FlightSqlServerTransaction, 0i32);
        info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
        let sql_info = info
            .build()
            .expect("a fixed list of well-typed SqlInfo values always builds");
        Self { engine, sql_info }
    }

    /// FlightInfo for `handle`: a query gets its schema and a ticket; any other statement runs
    /// now and answers with an empty schema and no endpoints.
    async fn flight_info(
        &self,
        handle: StatementHandle,
        ticket: impl FnOnce(&StatementHandle) -> Ticket,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let mut session = Session::in_database(handle.database.clone());
        let schema = self
            .engine
            .output_schema(&session, &handle.sql)
            .await
            .map_err(to_status)?;
        let Some(schema) = schema else {
            let outcome = self
                .engine
                .execute(&mut session, &handle.sql)
                .await
                .map_err(to_status)?;
            let info = FlightInfo::new()
                .try_with_schema(&Schema::empty())
                .map_err(|e| Status::internal(e.to_string()))?
                .with_descriptor(descriptor)
                .with_total_records(i64::try_from(outcome.affected_rows()).unwrap_or(i64::MAX));
            let mut response = Response::new(info);
            if matches!(outcome, Outcome::UsingDatabase(_)) {
                session::remember(response.metadata_mut(), &session);
            }
            return Ok(response);
        };
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket(&handle)))
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }

    /// Runs a query and streams its batches.
    async fn stream(&self, handle: StatementHandle) -> Result<Response<DoGetStream>, Status> {
        let mut session = Session::in_database(handle.database);
        let outcome = self
            .engine
            .execute(&mut session, &handle.sql)
            .await
            .map_err(to_status)?;
        let (schema, batches): (SchemaRef, _) = match outcome {
            Outcome::Rows(stream) => (
                stream.schema(),
                stream
                    .map_err(|e| FlightError::ExternalError(Box::new(e)))
                    .boxed(),
            ),
            Outcome::Listing(_, batch) => (
                batch.schema(),
                futures::stream::once(async move { Ok(batch) }).boxed(),
            ),
            _ => (Arc::new(Schema::empty()), futures::stream::empty().boxed()),
        };
        let flight = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(flight)))
    }

    /// Runs a statement that returns no rows and reports the affected row count.
    async fn update(&self, session: Session, sql: &str) -> Result<i64, Status> {
        let mut session = session;
        let outcome = self
            .engine
            .execute(&mut session, sql)
            .await
            .map_err(to_status)?;
        Ok(i64::try_from(outcome.affected_rows()).unwrap_or(i64::MAX))
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlServer {
    type FlightService = FlightSqlServer;

    async fn do_handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        // No authentication is configured: the handshake succeeds without reading the request.
        let response = HandshakeResponse {
            protocol_version: 0,
            payload: Default::default(),
        };
        Ok(Response::new(Box::pin(futures::stream::once(async {
            Ok(response)
        }))))
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let session = session::from_metadata(request.metadata());
        let handle = StatementHandle {
            sql: query.query,
            database: session.database().to_string(),
        };
        let ticket = |h: &StatementHandle| {
            let statement = TicketStatementQuery {
                statement_handle: h.encode(),
            };
            Ticket::new(statement.as_any().encode_to_vec())
        };
        self.flight_info(handle, ticket, request.into_inner()).await
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let handle = StatementHandle::decode(&query.prepared_statement_handle)?;
        let ticket = move |_: &StatementHandle| Ticket::new(query.as_any().encode_to_vec());
        self.flight_info(handle, ticket, request.into_inner()).await
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
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.stream(StatementHandle::decode(&ticket.statement_handle)?)
            .await
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.stream(StatementHandle::decode(&query.prepared_statement_handle)?)
            .await
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let builder = query.into_builder(&self.sql_info);
        let schema = builder.schema();
        let batch = builder.build().map_err(|e| Status::internal(e.to_string()));
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::once(async {
                batch.map_err(FlightError::from)
            }))
            .map_err(Status::from);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn do_put_statement_update(
        &self,
        ticket: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        // The input stream is not drained: clients may wait for this answer before closing it.
        self.update(session::from_metadata(request.metadata()), &ticket.query)
            .await
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let handle = StatementHandle::decode(&query.prepared_statement_handle)?;
        self.update(Session::in_database(handle.database), &handle.sql)
            .await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let session = session::from_metadata(request.metadata());
        let schema = self
            .engine
            .output_schema(&session, &query.query)
            .await
            .map_err(to_status)?
            .unwrap_or_else(|| Arc::new(Schema::empty()));
        let handle = StatementHandle {
            sql: query.query,
            database: session.database().to_string(),
        };
        let options = arrow::ipc::writer::IpcWriteOptions::default();
        let IpcMessage(dataset_schema) = SchemaAsIpc::new(&schema, &options)
            .try_into()
            .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
        let IpcMessage(parameter_schema) = SchemaAsIpc::new(&Schema::empty(), &options)
            .try_into()
            .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.encode(),
            dataset_schema,
            parameter_schema,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        _request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        // Handles are self-contained: there is no server state to release.
        Ok(())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
