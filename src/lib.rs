//! MiniDB: a lakehouse database server.
//!
//! One binary serves Arrow Flight SQL and a plain-text protocol over a catalog of Delta Lake
//! tables in an object store, executed by Apache DataFusion. Layers, top to bottom (each only
//! uses the ones below it):
//!
//! - [`protocol`]: Flight SQL, the :7205 text protocol and the admin gRPC service — decode a
//!   request, call the engine, encode the answer.
//! - [`engine`]: sessions, statement dispatch, the DataFusion context.
//! - [`catalog`]: databases and tables derived from the store layout.
//! - [`table`]: Delta tables as DataFusion tables (scan with file skipping, append writer).
//! - [`txlog`]: the Delta transaction log (actions, snapshots, put-if-absent commits).
//! - [`storage`]: the object store and Parquet encoding.
//!
//! [`server`] wires them into the running process; [`config_file`] reads its optional TOML
//! configuration; [`metrics`] counts what every layer does, for Prometheus.

pub mod auth;
pub mod catalog;
pub mod config_file;
pub mod engine;
#[cfg(test)]
mod fuzzing;
pub mod metrics;
pub mod protocol;
pub mod server;
pub mod storage;
pub mod table;
pub mod txlog;
