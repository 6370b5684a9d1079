//! Arrow Flight SQL over gRPC.
//!
//! Every handle and ticket is self-contained (the SQL text plus the database it runs in), so
//! any replica can serve any call and nothing needs cleaning up when a client vanishes.
//!
//! **Sessions.** `USE db` answers with a `set-cookie: minidb_database=db` header; clients that
//! keep cookies (JDBC by default, ADBC with `adbc.flight.sql.rpc.with_cookie_middleware=true`)
//! send it back and stay in that database. A `x-minidb-database` request header, when present,
//! takes precedence. Without either, statements run in `default`.
//!
//! **Statements.** Queries are planned at `GetFlightInfo` (for the schema) and run at `DoGet`,
//! streaming batches. Statements that return no rows (DDL, INSERT) run at `GetFlightInfo`
//! (ADBC's DBAPI sends every statement that way) or at `DoPut`, and answer with an empty schema.
//!
//! **Parameters.** Preparing numbers `?` placeholders as `$N` and reports their inferred types;
//! values bound by `DoPut` travel in the handle returned and are also kept on this server under
//! the statement's id (flightsql-dbapi reuses the first handle). Binding writes them into the
//! SQL as literals (`engine::parameters`); several rows run as one atomic execution.
//!
//! **Catalog.** One Flight SQL catalog, `minidb`, whose schemas are the databases (and `sys`):
//! see `metadata.rs`. The session options `catalog` and `schema` (SetSessionOptions,
//! GetSessionOptions, CloseSession) read and move the same cookie as `USE`.
//!
//! **Cancellation.** A query starts at GetFlightInfo under an id its ticket carries;
//! CancelFlightInfo (or CancelQuery) stops it wherever it is, and a client that drops its DoGet
//! stops it too (`queries.rs`).
//!
//! **Types.** Results travel as the engine produces them, except that string views go out as
//! plain `Utf8`/`Binary` unless configured otherwise (`wire.rs`).

mod handle;
mod metadata;
mod queries;
mod rpc;
mod service;
mod session;
mod sql_info;
mod status;
mod wire;

pub use rpc::FlightRpc;
pub use session::{DATABASE_COOKIE, DATABASE_HEADER};
pub use wire::FlightOptions;

/// Statement handles and Flight SQL commands from a client decode or fail, never panic.
#[cfg(test)]
mod fuzz {
    use arrow_flight::sql::{Any, Command};
    use proptest::prelude::*;
    use prost::Message;

    use super::handle::StatementHandle;
    use crate::fuzzing;

    fn handle_seed() -> Vec<u8> {
        let mut handle = StatementHandle::new("SELECT $1".into(), "default".into(), None);
        handle.parameters = Some(vec![vec!["1".into()]]);
        handle.timeout_ms = Some(5);
        handle.encode().to_vec()
    }

    fn command_seed() -> Vec<u8> {
        let query = arrow_flight::sql::CommandStatementQuery {
            query: "SELECT 1".into(),
            transaction_id: None,
        };
        Any::pack(&query)
            .map(|any| any.encode_to_vec())
            .unwrap_or_default()
    }

    proptest! {
        #![proptest_config(fuzzing::config())]

        #[test]
        fn handles_decode_or_fail(bytes in prop_oneof![
            fuzzing::mutated(handle_seed()),
            prop::collection::vec(any::<u8>(), 0..256),
        ]) {
            let _ = StatementHandle::decode(&bytes);
        }

        #[test]
        fn commands_decode_or_fail(bytes in prop_oneof![
            fuzzing::mutated(command_seed()),
            prop::collection::vec(any::<u8>(), 0..256),
        ]) {
            if let Ok(any) = Any::decode(bytes.as_slice()) {
                let _ = Command::try_from(any);
            }
        }
    }
}
