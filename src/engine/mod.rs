//! The engine: sessions, statement dispatch and the DataFusion context.
//!
//! Life of a statement, from either protocol:
//!
//! 1. The protocol hands one SQL statement and the caller's [`Session`] to [`Engine::execute`].
//! 2. The SQL front end (`sql`) parses it once into a typed statement: MiniDB's own statements
//!    from tokens, everything else through DataFusion's parser, after the text rewrites (time
//!    travel, `PARTITION BY`) in their one order.
//! 3. One dispatch (`exec`) runs it: catalog statements against the
//!    [`Catalog`](crate::catalog::Catalog) directly; queries and INSERTs planned by DataFusion
//!    over a per-statement [`StatementCatalog`](crate::catalog::StatementCatalog), whose tables
//!    are Delta snapshots; the physical plan streams batches back as an [`Outcome::Rows`], never
//!    collected in full.
//! 4. The protocol encodes the [`Outcome`]: an ASCII table or message on :7205, Arrow IPC on
//!    Flight SQL. Protocols use this module's API only, never the layers below it.

mod catalog_api;
mod checked;
mod compactor;
mod decorrelate;
mod error;
mod exec;
mod functions;
mod ingest;
mod insert;
mod instance;
mod outcome;
pub(crate) mod running;
mod selectivity;
mod session;
mod sql;
mod sqlstate;
mod types;
mod wording;

pub use catalog_api::{CatalogStatus, CompactionHistory, ForeignKeyInfo};
pub use compactor::{CompactionOptions, Compactor};
pub use error::{EngineError, ErrorKind};
pub use ingest::{IfExists, IfMissing};
pub use instance::{Engine, EngineOptions, PlannedQuery, Prepared};
pub use outcome::{Listing, Outcome};
pub use running::{AdmissionLimits, parse_duration};
pub use session::Session;
pub use sql::parameters;
pub use sqlstate::{
    FEATURE_NOT_SUPPORTED, INVALID_AUTHORIZATION, INVALID_PASSWORD, NO_ACTIVE_TRANSACTION,
    PROGRAM_LIMIT_EXCEEDED, SYNTAX_ERROR, TOO_MANY_CONNECTIONS,
};

// Names and types of the layers below that are part of the engine's API.
pub use crate::catalog::{CATALOG_NAME, CompactionRun, DEFAULT_DATABASE, SYSTEM_DATABASE};
pub use crate::storage::DataStore;
pub use crate::table::Transaction;
/// A column as clients see it: without the metadata that ties a table's column to its data
/// files (Delta column mapping ids and physical names, the history of its type changes).
pub use crate::txlog::unmapped as client_field;
