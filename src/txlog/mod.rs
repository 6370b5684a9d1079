//! The Delta Lake transaction log: actions, snapshots and commits.
//!
//! A table is a directory whose `_delta_log/` holds commits `{version:020}.json`, each a list of
//! newline-delimited JSON actions. Life of a commit:
//!
//! 1. A writer reads a [`Snapshot`] at version `v` (protocol, metadata, live files).
//! 2. It writes its data files, which are invisible until referenced by the log.
//! 3. [`DeltaLog::commit`] writes `{v+1:020}.json` with `PutMode::Create`: the object store makes
//!    the create atomic and exclusive, so exactly one writer wins each version.
//! 4. A loser reads the winning commits and retries at the next version when the Delta conflict
//!    rules allow it (write-serializable: a blind append never conflicts with another append, and
//!    an UPDATE/DELETE moves past concurrent blind appends), or fails with
//!    [`TxLogError::Conflict`], which tells the user to retry.
//!
//! A crash before step 3 leaves only unreferenced files (orphans for VACUUM); a crash after it
//! leaves a complete commit. This layer never imports DataFusion or tonic.

mod actions;
mod checkpoint;
pub mod commit_point;
mod dv;
mod error;
mod log;
mod schema;
mod snapshot;

pub use actions::{
    Action, Add, CommitInfo, ENABLE_DELETION_VECTORS, Format, Metadata, Protocol, Remove,
    STATISTICS_PROPERTY,
};
pub use dv::{DeletionVectorDescriptor, write_deletion_vector};
pub use error::TxLogError;
pub use log::{CommitFile, DeltaLog, LogRepair, MIN_READABLE_VERSION, Operation, VACUUM_OPERATION};
pub use schema::{
    CHAR_VARCHAR_TYPE, DeclaredLength, arrow_schema_from_delta, declared_length,
    delta_schema_string,
};
pub use snapshot::{FileStats, Snapshot};
