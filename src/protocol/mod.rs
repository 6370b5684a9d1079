//! Network protocols. Each handler decodes a request, makes one engine call and encodes the
//! answer; no protocol holds state that matters beyond a connection.
//!
//! - [`flight`]: Arrow Flight SQL over gRPC (JDBC, ADBC, pyarrow clients).
//! - [`text`]: the plain-text protocol on TCP :7205 (nc, telnet).
//! - [`admin`]: MiniDB's own gRPC admin service (`proto/minidb/v1/admin.proto`).
//! - [`grpc_auth`]: the bearer-token check in front of every gRPC call when users are configured.

pub mod admin;
pub mod flight;
pub mod grpc_auth;
pub mod text;
