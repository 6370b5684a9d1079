//! [`FlightRpc`]: the gRPC `FlightService` MiniDB serves.
//!
//! arrow-flight dispatches Flight SQL commands for any `FlightSqlService`, but its dispatcher
//! answers `GetSchema` and `PollFlightInfo` with Unimplemented and offers no hook for them.
//! This service passes every call to that dispatcher except those two:
//!
//! - `GetSchema` plans a statement (or reads a catalog command's FlightInfo) and answers with
//!   the schema its results will have, running nothing.
//! - `PollFlightInfo` answers with the complete FlightInfo at once: GetFlightInfo already
//!   returns as soon as a query is planned (its rows stream at DoGet), so there is never a
//!   partial result to poll for. The reply has progress 1.0 and no descriptor to poll again.
//!
//! A command, ticket or action body that does not decode is the client's mistake: the
//! dispatcher calls it an internal error (`ParseError(…)`), this service `InvalidArgument`
//! (see [`malformed_as_invalid`]).

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::service::FlightSqlServer;
use super::wire::FlightOptions;
use crate::auth::Authenticator;
use crate::engine::Engine;

/// `status` as the client should read it: the dispatcher's decode failures (an internal error
/// whose message is `ParseError("…")`) become `InvalidArgument` naming the problem.
fn malformed_as_invalid(status: Status) -> Status {
    let inner = status
        .message()
        .strip_prefix("ParseError(\"")
        .and_then(|m| m.strip_suffix("\")"));
    match (status.code(), inner) {
        (tonic::Code::Internal, Some(problem)) => Status::invalid_argument(format!(
            "not a valid Flight SQL message: {}",
            problem.replace("\\\"", "\"")
        )),
        _ => status,
    }
}

type ServerStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Flight and Flight SQL over one engine.
pub struct FlightRpc {
    sql: FlightSqlServer,
}

impl FlightRpc {
    /// The service over `engine`; with `auth`, Handshake logs users in.
    pub fn new(
        engine: Arc<Engine>,
        auth: Option<Arc<Authenticator>>,
        options: FlightOptions,
    ) -> Self {
        Self {
            sql: FlightSqlServer::new(engine, auth, options),
        }
    }
}

#[tonic::async_trait]
impl FlightService for FlightRpc {
    type HandshakeStream = ServerStream<HandshakeResponse>;
    type ListFlightsStream = ServerStream<FlightInfo>;
    type DoGetStream = ServerStream<FlightData>;
    type DoPutStream = ServerStream<PutResult>;
    type DoExchangeStream = ServerStream<FlightData>;
    type DoActionStream = ServerStream<arrow_flight::Result>;
    type ListActionsStream = ServerStream<ActionType>;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        FlightService::handshake(&self.sql, request).await
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        FlightService::list_flights(&self.sql, request).await
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        FlightService::get_flight_info(&self.sql, request)
            .await
            .map_err(malformed_as_invalid)
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        let (metadata, info, extensions) = self.get_flight_info(request).await?.into_parts();
        let poll = PollInfo {
            info: Some(info),
            flight_descriptor: None,
            progress: Some(1.0),
            expiration_time: None,
        };
        Ok(Response::from_parts(metadata, poll, extensions))
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        self.sql
            .get_schema(request)
            .await
            .map_err(malformed_as_invalid)
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        FlightService::do_get(&self.sql, request)
            .await
            .map_err(malformed_as_invalid)
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        FlightService::do_put(&self.sql, request)
            .await
            .map_err(malformed_as_invalid)
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        FlightService::do_exchange(&self.sql, request).await
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        FlightService::do_action(&self.sql, request)
            .await
            .map_err(malformed_as_invalid)
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        FlightService::list_actions(&self.sql, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_failures_become_invalid_argument_and_other_errors_stay() {
        let decode = Status::internal(
            "ParseError(\"Unable to decode Any value: failed to decode Protobuf message: \\\"x\\\"\")",
        );
        let status = malformed_as_invalid(decode);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "not a valid Flight SQL message: Unable to decode Any value: failed to decode \
             Protobuf message: \"x\""
        );
        let other = malformed_as_invalid(Status::internal("disk on fire"));
        assert_eq!(other.code(), tonic::Code::Internal);
    }
}
