//! The catalog: databases and tables, all derived from the object store's layout.
//!
//! A database is a top-level folder of the data root (`<db>/`, marked by a small
//! `.minidb_database` object so an empty database survives a restart); a table is any folder
//! `<db>/<table>/` with a Delta log, whoever wrote it; a view is a small JSON object in
//! `<db>/_views/`. Nothing else is stored, so the catalog can never drift from the data, and a
//! restarted server (or another replica) sees the same catalog.
//!
//! [`StatementCatalog`] presents the catalog to DataFusion for one statement: the database list is
//! read once, and each table resolves to the snapshot current when the statement first names it.

mod activity;
mod error;
mod names;
mod provider;
mod references;
mod statements;
mod store;
mod system;
mod views;

pub use activity::{CompactionRun, MaintenanceLog};
pub use error::CatalogError;
pub use names::{AsOf, DEFAULT_DATABASE, as_of_name, is_reserved, split_as_of, validate_name};
pub use provider::{CATALOG_NAME, ReadSet, Scope, StatementCatalog};
pub use references::StatementReferences;
pub use statements::{RunningStatement, RunningStatements, StatementOrigin, StopReason};
pub use store::{Catalog, new_table};
pub use system::{
    SYSTEM_DATABASE, SystemTables, check_writable, column_type_name, sql_type_name, system_tables,
};
pub use views::ViewDef;
