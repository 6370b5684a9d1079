//! Storage: where bytes live and how data files are encoded.
//!
//! Everything MiniDB persists goes through [`DataStore`], a thin wrapper over an `object_store`
//! backend (local directory, S3-compatible bucket, in-memory); reads of a bucket's immutable
//! objects go through a [`ReadCache`] in memory and on local disk, and decoded column chunks of data
//! files can be kept in a [`ColumnCache`]. Paths inside it are relative to
//! the data root: `<database>/<table>/...`. [`parquet`] turns record batches into Parquet bytes
//! plus the per-file statistics the Delta log records.
//!
//! This layer knows nothing of SQL, DataFusion or gRPC.

mod cache;
mod columns;
mod durable;
mod error;
mod metered;
pub mod parquet;
mod store;

pub use cache::{CacheSettings, ReadCache, TierReport};
pub(crate) use cache::{Tier, lock};
pub use columns::{ChunkKey, ColumnCache};
pub use error::StorageError;
pub use store::{DataStore, S3Settings};
