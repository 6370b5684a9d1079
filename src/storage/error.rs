//! Errors of the storage layer.

/// A failure reading or writing the object store or encoding a data file.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The `--data` location could not be understood or opened.
    #[error("invalid data location '{location}': {reason}")]
    InvalidLocation { location: String, reason: String },
    /// The object store reported an error.
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
    /// Encoding or decoding Parquet failed.
    #[error(transparent)]
    Parquet(#[from] ::parquet::errors::ParquetError),
    /// An Arrow kernel failed while computing file statistics.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// A local filesystem operation failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
