//! The plain-text protocol: SQL in, ASCII tables and one-line messages out, over TCP.
//!
//! A connection is a session (its own current database). Statements end with `;`, may span
//! lines and several may share a line; `EXIT`/`QUIT` ends the session. Errors print
//! `ERROR: <cause>` and the session continues. Over-long lines, invalid UTF-8 and abrupt
//! disconnects only ever affect their own connection.

mod connection;
mod format;
mod framing;
mod shorthand;

pub use connection::serve;
pub use framing::{Piece, StatementSplitter};
