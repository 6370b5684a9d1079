//! [`TableError`]: how an operation on a Delta table fails, classed by whose fault it is.
//!
//! The table layer runs inside DataFusion (scans, sinks, plans), so its functions return
//! DataFusion's `Result`; a `TableError` enters it through the one conversion below, as an
//! external error the engine recognises again when it classes the failure for the client.

use datafusion::common::DataFusionError;

use super::damage::Damage;
use crate::storage::StorageError;
use crate::txlog::TxLogError;

/// An operation on a table failed.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The statement asks for what the table's rules or the SQL forbid: a duplicate key, a
    /// NULL in a NOT NULL column, a value no partition holds, an unknown column.
    #[error("{0}")]
    Invalid(String),
    /// Valid, but MiniDB does not do it.
    #[error("not supported: {0}")]
    NotSupported(String),
    /// What is stored is not what MiniDB wrote: a table property that does not parse, a data
    /// file or index segment that does not match the log.
    #[error("corrupt table data: {0}")]
    Corrupt(String),
    /// A data file the log lists cannot be read as the log describes it.
    #[error("{0}")]
    Damaged(Damage),
    /// A broken invariant of MiniDB itself.
    #[error("internal error: {0}")]
    Internal(String),
    /// Reading or writing the transaction log failed.
    #[error(transparent)]
    Log(#[from] TxLogError),
    /// Writing a data file failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<TableError> for DataFusionError {
    fn from(e: TableError) -> Self {
        DataFusionError::External(Box::new(e))
    }
}

/// An error of a layer below (the log, the object store, Parquet) as DataFusion's, by way of
/// [`TableError`].
pub(super) fn external(e: impl Into<TableError>) -> DataFusionError {
    e.into().into()
}
