//! Engine errors as gRPC statuses: one exhaustive mapping, so every new kind gets a decision.

use arrow_flight::error::FlightError;
use datafusion::error::DataFusionError;
use tonic::Status;
use tonic::metadata::MetadataValue;
use tracing::error;

use crate::engine::{EngineError, ErrorKind};

/// The status of a failed statement, with its SQLSTATE code in the `sqlstate` metadata.
pub fn to_status(e: EngineError) -> Status {
    with_sqlstate(status_of(&e), e.sqlstate())
}

/// The metadata key a failed call's SQLSTATE code travels under.
pub const SQLSTATE_KEY: &str = "sqlstate";

/// `status` with the SQLSTATE code `code`, for errors the protocol layer finds itself.
pub fn with_sqlstate(mut status: Status, code: &'static str) -> Status {
    status
        .metadata_mut()
        .insert(SQLSTATE_KEY, MetadataValue::from_static(code));
    status
}

fn status_of(e: &EngineError) -> Status {
    let message = e.to_string();
    match e.kind() {
        ErrorKind::InvalidInput => Status::invalid_argument(message),
        ErrorKind::NotFound => Status::not_found(message),
        ErrorKind::AlreadyExists => Status::already_exists(message),
        ErrorKind::Conflict => Status::aborted(message),
        ErrorKind::NotSupported => Status::unimplemented(message),
        ErrorKind::ResourcesExhausted => Status::resource_exhausted(message),
        ErrorKind::Cancelled => Status::cancelled(message),
        ErrorKind::TimedOut => Status::deadline_exceeded(message),
        ErrorKind::DataLoss => {
            error!(error = %message, "statement found damaged table data");
            Status::data_loss(message)
        }
        ErrorKind::Internal => {
            error!(error = %message, "statement failed with an internal error");
            Status::internal(message)
        }
    }
}

/// An error a query's stream of rows ends with, as the status DoGet ends with: the same
/// mapping as a statement's error.
pub fn stream_error(e: DataFusionError) -> FlightError {
    FlightError::Tonic(Box::new(to_status(EngineError::DataFusion(e))))
}
