//! The engine: sessions, statement dispatch and the DataFusion context.
//!
//! Life of a query, from either protocol:
//!
//! 1. The protocol hands one SQL statement and the caller's [`Session`] to [`Engine::execute`].
//! 2. [`statement::parse`] recognises MiniDB's own statements (databases, `USE`, `SHOW`,
//!    `DESCRIBE`, `CREATE/DROP TABLE`) and passes everything else, parsed by DataFusion's parser,
//!    through untouched.
//! 3. Catalog statements run against the [`Catalog`](crate::catalog::Catalog) directly.
//! 4. Queries and INSERTs are planned by DataFusion over a per-statement
//!    [`StatementCatalog`](crate::catalog::StatementCatalog), whose tables are Delta snapshots;
//!    the physical plan streams batches back as an [`Outcome::Rows`], never collected in full.
//! 5. The protocol encodes the [`Outcome`]: an ASCII table or message on :7205, Arrow IPC on
//!    Flight SQL.

mod compactor;
mod dml;
mod error;
mod history;
mod indexes;
mod ingest;
mod insert;
mod instance;
mod lexing;
mod maintenance;
mod outcome;
pub mod parameters;
mod partition_clause;
mod selectivity;
mod session;
mod statement;
mod time_travel;
mod types;

pub use compactor::{CompactionOptions, Compactor};
pub use error::{EngineError, ErrorKind};
pub use ingest::{IfExists, IfMissing};
pub use instance::{Engine, EngineOptions, PlannedQuery, Prepared};
pub use outcome::{Listing, Outcome};
pub use session::Session;
