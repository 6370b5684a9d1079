//! Errors of the catalog layer.

use crate::txlog::TxLogError;

/// A catalog operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("database '{0}' does not exist")]
    DatabaseNotFound(String),
    #[error("database '{0}' already exists")]
    DatabaseExists(String),
    #[error("table '{0}' does not exist")]
    TableNotFound(String),
    #[error("table '{0}' already exists")]
    TableExists(String),
    #[error("invalid name '{name}': {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error(transparent)]
    TxLog(#[from] TxLogError),
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
}
