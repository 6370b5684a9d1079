//! Delta tables as DataFusion tables: scans with file skipping, and the append writer.
//!
//! Life of a scan: [`DeltaTableProvider::scan`] takes the statement's [`Snapshot`] (fixed when the
//! statement resolved the table), turns the pushed-down filters into a pruning predicate over the
//! per-file statistics in the log, keeps only files that may hold matching rows, and hands them
//! to DataFusion's Parquet reader inside a [`DeltaScanExec`] that reports how many files were
//! skipped. Life of an insert: DataFusion casts the input to the table schema and streams it into
//! [`DeltaSink`], which writes Parquet files and then commits them in one Delta commit.
//!
//! [`Snapshot`]: crate::txlog::Snapshot

pub mod clone;
mod column_scan;
mod constraints;
mod damage;
mod datafile;
mod error;
pub mod evolution;
mod footers;
pub mod foreign_keys;
mod group_commit;
mod handle;
pub mod index;
mod indexing;
mod mapping;
mod mutation;
mod optimize;
pub mod partitioning;
pub mod properties;
mod provider;
mod pruning;
mod scan;
mod sink;
pub mod statistics;
mod transaction;
mod vacuum;
mod vectors;
mod zorder;

pub use constraints::{
    DEFAULTS_PROPERTY, KeyChecker, PRIMARY_KEY_PROPERTY, UNIQUE_PROPERTY, key_text, primary_key,
};
pub use damage::{Damage, Finding, fsck};
pub use error::TableError;
pub use footers::FooterCache;
pub use group_commit::GROUPED_STATEMENTS;
pub use handle::{CacheBudgets, TableCaches, TableHandle, WriterLock};
pub use index::{INDEXES_PROPERTY, IndexDef, table_indexes};
pub use indexing::{create_index, drop_index};
pub use mutation::Mutation;
pub use optimize::{OptimizeReport, optimize};
pub use properties::{file_retention, set_properties};
pub use provider::{DeltaTableProvider, FILE_INDEX_COLUMN, ROW_INDEX_COLUMN};
pub use scan::DeltaScanExec;
pub use sink::DeltaSink;
pub use transaction::{Concurrency, PendingCommit, Transaction, TxTable, Writer};
pub use vacuum::{VacuumReport, vacuum};
pub use vectors::DeletionVectorCache;
