//! Engine errors as gRPC statuses: one exhaustive mapping, so every new kind gets a decision.

use tonic::Status;
use tracing::error;

use crate::engine::{EngineError, ErrorKind};

pub fn to_status(e: EngineError) -> Status {
    let message = e.to_string();
    match e.kind() {
        ErrorKind::InvalidInput => Status::invalid_argument(message),
        ErrorKind::NotFound => Status::not_found(message),
        ErrorKind::AlreadyExists => Status::already_exists(message),
        ErrorKind::Conflict => Status::aborted(message),
        ErrorKind::NotSupported => Status::unimplemented(message),
        ErrorKind::Internal => {
            error!(error = %message, "statement failed with an internal error");
            Status::internal(message)
        }
    }
}
