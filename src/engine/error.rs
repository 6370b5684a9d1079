//! Errors of the engine, classified by what the caller should do about them.

use datafusion::common::DataFusionError;

use super::wording;
use crate::catalog::{CatalogError, StopReason};
use crate::table::TableError;
use crate::txlog::TxLogError;

/// What kind of failure an error is; protocols map it to a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The statement is wrong: bad syntax, unknown column, value that does not fit.
    InvalidInput,
    /// A named database or table does not exist.
    NotFound,
    /// A database or table being created exists already, or rows appended to an existing
    /// table do not match its schema (ADBC's code for an ingest whose schema differs).
    AlreadyExists,
    /// A concurrent commit won; running the statement again may succeed.
    Conflict,
    /// Valid SQL that MiniDB does not implement.
    NotSupported,
    /// The statement needed more memory than the server's limit leaves it.
    ResourcesExhausted,
    /// `CANCEL QUERY` stopped the statement.
    Cancelled,
    /// The statement ran past its statement timeout.
    TimedOut,
    /// What storage holds is not what the table's log describes: a corrupt commit, a
    /// missing or damaged data file or deletion vector.
    DataLoss,
    /// A fault of the server or its storage.
    Internal,
}

/// A statement failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    InvalidInput(String),
    /// The statement does not parse (see `sql::syntax`).
    #[error("{0}")]
    Syntax(String),
    #[error("not supported: {0}")]
    NotSupported(String),
    /// Rows appended to an existing table do not match its columns.
    #[error("{0}")]
    SchemaMismatch(String),
    /// The statement was stopped before its commit, and left nothing behind.
    #[error("{1}")]
    Stopped(StopReason, String),
    /// Every slot for running statements was taken and the statement could not wait for one.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("{}", describe_datafusion(.0))]
    DataFusion(#[from] DataFusionError),
    /// A conflict ended the session's transaction.
    #[error("{0}; the transaction was rolled back")]
    RolledBack(Box<EngineError>),
}

impl EngineError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::InvalidInput(_) | EngineError::Syntax(_) => ErrorKind::InvalidInput,
            EngineError::NotSupported(_) => ErrorKind::NotSupported,
            EngineError::SchemaMismatch(_) => ErrorKind::AlreadyExists,
            EngineError::Stopped(StopReason::Cancelled, _) => ErrorKind::Cancelled,
            EngineError::Stopped(StopReason::TimedOut, _) => ErrorKind::TimedOut,
            EngineError::Busy(_) => ErrorKind::ResourcesExhausted,
            EngineError::Catalog(e) => catalog_kind(e),
            EngineError::DataFusion(e) => datafusion_kind(e),
            EngineError::RolledBack(e) => e.kind(),
        }
    }
}

fn catalog_kind(e: &CatalogError) -> ErrorKind {
    match e {
        CatalogError::DatabaseNotFound(_)
        | CatalogError::TableNotFound(_)
        | CatalogError::ViewNotFound(_) => ErrorKind::NotFound,
        CatalogError::DatabaseExists(_)
        | CatalogError::TableExists(_)
        | CatalogError::ViewExists(_) => ErrorKind::AlreadyExists,
        CatalogError::InvalidName { .. }
        | CatalogError::WrongKind { .. }
        | CatalogError::SystemTable(_) => ErrorKind::InvalidInput,
        CatalogError::Corrupt { .. } => ErrorKind::DataLoss,
        CatalogError::NotSupported(_) => ErrorKind::NotSupported,
        CatalogError::TxLog(e) => txlog_kind(e),
        CatalogError::ObjectStore(_) => ErrorKind::Internal,
    }
}

fn txlog_kind(e: &TxLogError) -> ErrorKind {
    match e {
        TxLogError::TableNotFound(_) | TxLogError::VersionNotFound { .. } => ErrorKind::NotFound,
        TxLogError::TableExists(_) => ErrorKind::AlreadyExists,
        TxLogError::Conflict { .. } | TxLogError::LockTimeout { .. } => ErrorKind::Conflict,
        TxLogError::Unsupported(_) => ErrorKind::NotSupported,
        TxLogError::Corrupt { .. } | TxLogError::DamagedDeletionVector { .. } => {
            ErrorKind::DataLoss
        }
        TxLogError::ObjectStore(_) | TxLogError::Json(_) => ErrorKind::Internal,
    }
}

fn table_kind(e: &TableError) -> ErrorKind {
    match e {
        TableError::Invalid(_) => ErrorKind::InvalidInput,
        TableError::NotSupported(_) => ErrorKind::NotSupported,
        TableError::Corrupt(_) | TableError::Damaged(_) => ErrorKind::DataLoss,
        TableError::Internal(_) | TableError::Storage(_) => ErrorKind::Internal,
        TableError::Log(e) => txlog_kind(e),
    }
}

fn datafusion_kind(e: &DataFusionError) -> ErrorKind {
    if let Some(damage) = damage_in(e) {
        return table_kind(damage);
    }
    match e {
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            datafusion_kind(inner)
        }
        DataFusionError::Shared(inner) => datafusion_kind(inner),
        DataFusionError::External(inner) => {
            if let Some(e) = inner.downcast_ref::<CatalogError>() {
                catalog_kind(e)
            } else if let Some(e) = inner.downcast_ref::<TableError>() {
                table_kind(e)
            } else if let Some(e) = inner.downcast_ref::<TxLogError>() {
                txlog_kind(e)
            } else if let Some(e) = inner.downcast_ref::<DataFusionError>() {
                datafusion_kind(e)
            } else if let Some(e) = inner.downcast_ref::<EngineError>() {
                e.kind()
            } else {
                ErrorKind::Internal
            }
        }
        DataFusionError::NotImplemented(_) => ErrorKind::NotSupported,
        e if wording::is_unknown_table(e) => ErrorKind::NotFound,
        e if wording::is_unsupported(e) => ErrorKind::NotSupported,
        DataFusionError::ResourcesExhausted(_) => ErrorKind::ResourcesExhausted,
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::ArrowError(..)
        | DataFusionError::Execution(_)
        | DataFusionError::Configuration(_) => ErrorKind::InvalidInput,
        DataFusionError::Collection(errors) => {
            errors.first().map_or(ErrorKind::Internal, datafusion_kind)
        }
        _ => ErrorKind::Internal,
    }
}

/// The damaged file behind `e`, however deep the layers that read it (Parquet, Arrow,
/// DataFusion) wrapped the error.
fn damage_in(e: &DataFusionError) -> Option<&TableError> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = source {
        if let Some(found) = error.downcast_ref::<TableError>()
            && matches!(found, TableError::Damaged(_))
        {
            return Some(found);
        }
        source = error.source();
    }
    None
}

/// DataFusion's message in MiniDB's words (see `wording`), without backtraces and nested
/// "External error:" wrappers.
fn describe_datafusion(e: &DataFusionError) -> String {
    if let Some(damage) = damage_in(e) {
        return damage.to_string();
    }
    match e {
        DataFusionError::External(inner) => match inner.downcast_ref::<DataFusionError>() {
            Some(e) => describe_datafusion(e),
            None => inner.to_string(),
        },
        DataFusionError::NotImplemented(msg) => format!("not supported: {msg}"),
        DataFusionError::ResourcesExhausted(msg) => format!(
            "resources exhausted: {msg} (the server's memory limit is shared by the statements \
             running; raise --memory-limit or narrow the query)"
        ),
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            describe_datafusion(inner)
        }
        DataFusionError::Shared(inner) => describe_datafusion(inner),
        other => wording::reworded(other).unwrap_or_else(|| other.strip_backtrace()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_errors_are_classed_by_whose_fault_they_are() {
        let kind = |e: TableError| EngineError::DataFusion(e.into()).kind();
        assert_eq!(
            kind(TableError::Invalid("duplicate key".into())),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(TableError::NotSupported("hashing".into())),
            ErrorKind::NotSupported
        );
        assert_eq!(
            kind(TableError::Corrupt("bad property".into())),
            ErrorKind::DataLoss
        );
        assert_eq!(
            kind(TableError::Internal("broken invariant".into())),
            ErrorKind::Internal
        );
        let wrapped = DataFusionError::Context(
            "scan".into(),
            Box::new(TableError::Corrupt("no column".into()).into()),
        );
        assert_eq!(EngineError::DataFusion(wrapped).kind(), ErrorKind::DataLoss);
    }

    /// A damaged file found by a Parquet reader reaches the client as itself, whatever layers
    /// wrapped it on the way.
    #[test]
    fn damage_is_found_inside_parquet_and_arrow_errors() {
        let damage = crate::table::Damage::at(
            &object_store::path::Path::from("db/t/part-0.parquet"),
            "is missing: gone".into(),
        );
        let parquet =
            parquet::errors::ParquetError::External(Box::new(TableError::Damaged(damage)));
        let arrow = arrow::error::ArrowError::ExternalError(Box::new(parquet));
        let e = EngineError::DataFusion(DataFusionError::ArrowError(Box::new(arrow), None));
        assert_eq!(e.kind(), ErrorKind::DataLoss);
        assert_eq!(
            e.to_string(),
            "data file 'part-0.parquet' of table db.t is missing: gone; FSCK REPAIR TABLE db.t \
             removes it (and its rows) from the table"
        );
    }
}
