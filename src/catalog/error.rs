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
    #[error("view '{0}' does not exist")]
    ViewNotFound(String),
    #[error("view '{0}' already exists")]
    ViewExists(String),
    /// A name that belongs to a view used where a table is needed, or the other way round.
    #[error("'{name}' is a {is}, not a {wanted}")]
    WrongKind {
        name: String,
        is: &'static str,
        wanted: &'static str,
    },
    /// A use of a table or view MiniDB does not offer (time travel of a view).
    #[error("not supported: {0}")]
    NotSupported(String),
    /// A statement that would change a table of `sys` or `information_schema`.
    #[error("'{0}' is a system table: it can be read, not changed")]
    SystemTable(String),
    /// Something stored that MiniDB cannot read back.
    #[error("cannot read {what}: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("invalid name '{name}': {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error(transparent)]
    TxLog(#[from] TxLogError),
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
}
