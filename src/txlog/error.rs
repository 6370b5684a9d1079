//! Errors of the transaction log.

/// A failure reading, replaying or committing a Delta log.
#[derive(Debug, thiserror::Error)]
pub enum TxLogError {
    /// The table has no commits: it does not exist (or was dropped).
    #[error("table not found at '{0}'")]
    TableNotFound(String),
    /// Version 0 exists already: another writer created the table first.
    #[error("table already exists at '{0}'")]
    TableExists(String),
    /// A concurrent commit changed what this transaction read; running it again may succeed.
    #[error("commit conflict on '{table}' at version {version}: {reason}; retry the statement")]
    Conflict {
        table: String,
        version: i64,
        reason: String,
    },
    /// Another writer of this server held the table for too long (an open transaction).
    #[error(
        "conflict: table '{table}' is locked by another transaction (waited {waited:?}); retry"
    )]
    LockTimeout {
        table: String,
        waited: std::time::Duration,
    },
    /// Time travel asked for a version the log does not have.
    #[error("table '{table}' has no {requested}: {available}")]
    VersionNotFound {
        table: String,
        requested: String,
        available: String,
    },
    /// The log is unreadable or breaks the protocol.
    #[error("corrupt Delta log at '{path}': {reason}")]
    Corrupt { path: String, reason: String },
    /// A deletion vector file (or inline bitmap) does not hold what its descriptor says.
    #[error("deletion vector {location} is damaged: {reason}")]
    DamagedDeletionVector { location: String, reason: String },
    /// The table uses a protocol feature MiniDB cannot honour.
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}
