//! Per-connection state.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::catalog::{DEFAULT_DATABASE, StatementOrigin};
use crate::table::Transaction;

/// What a connection carries between statements: its current database, open transaction and
/// statement timeout, and who it is (for `sys.queries`).
#[derive(Debug, Clone)]
pub struct Session {
    database: String,
    transaction: Option<Arc<Transaction>>,
    /// Set by `SET statement_timeout`; `None` follows the server's setting, zero is none.
    statement_timeout: Option<Duration>,
    protocol: &'static str,
    user: Option<String>,
    /// Fires when the connection closes, stopping its running statement.
    hangup: Option<CancellationToken>,
}

impl Session {
    /// A session in `database` (which is not checked here; statements check it when used).
    pub fn in_database(database: impl Into<String>) -> Self {
        Self {
            database: database.into(),
            transaction: None,
            statement_timeout: None,
            protocol: "engine",
            user: None,
            hangup: None,
        }
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// The database a name qualified by `database` (or not qualified) refers to.
    pub fn database_or_current(&self, database: Option<String>) -> String {
        database.unwrap_or_else(|| self.database.clone())
    }

    /// Moves the session to `database` (which is not checked here).
    pub fn set_database(&mut self, database: String) {
        self.database = database;
    }

    /// Names the protocol (`text`, `flight`) and user the session's statements are listed with.
    pub fn with_origin(mut self, protocol: &'static str, user: Option<String>) -> Self {
        self.protocol = protocol;
        self.user = user;
        self
    }

    /// Stops the session's running statement when `hangup` fires (its client went away).
    pub fn with_hangup(mut self, hangup: CancellationToken) -> Self {
        self.hangup = Some(hangup);
        self
    }

    pub(crate) fn origin(&self) -> StatementOrigin {
        StatementOrigin {
            protocol: self.protocol,
            user: self.user.clone(),
            database: self.database.clone(),
            hangup: self.hangup.clone(),
        }
    }

    /// The session's own statement timeout (`SET statement_timeout`), if it set one.
    pub fn statement_timeout(&self) -> Option<Duration> {
        self.statement_timeout
    }

    /// Sets the session's statement timeout; `None` follows the server's setting again.
    pub fn set_statement_timeout(&mut self, timeout: Option<Duration>) {
        self.statement_timeout = timeout;
    }

    /// The open transaction, if any.
    pub fn transaction(&self) -> Option<&Arc<Transaction>> {
        self.transaction.as_ref()
    }

    /// Runs later statements inside `transaction` (Flight SQL passes it with each statement).
    pub fn with_transaction(mut self, transaction: Arc<Transaction>) -> Self {
        self.transaction = Some(transaction);
        self
    }

    pub(crate) fn begin(&mut self, transaction: Arc<Transaction>) {
        self.transaction = Some(transaction);
    }

    /// Ends the open transaction, returning it.
    pub(crate) fn end_transaction(&mut self) -> Option<Arc<Transaction>> {
        self.transaction.take()
    }
}

impl PartialEq for Session {
    fn eq(&self, other: &Self) -> bool {
        self.database == other.database
            && self.transaction.as_ref().map(|t| t.id())
                == other.transaction.as_ref().map(|t| t.id())
    }
}

impl Eq for Session {}

impl Default for Session {
    fn default() -> Self {
        Self::in_database(DEFAULT_DATABASE)
    }
}
