//! Per-connection state.

use std::sync::Arc;

use crate::catalog::DEFAULT_DATABASE;
use crate::table::Transaction;

/// What a connection carries between statements: its current database and open transaction.
#[derive(Debug, Clone)]
pub struct Session {
    database: String,
    transaction: Option<Arc<Transaction>>,
}

impl Session {
    /// A session in `database` (which is not checked here; statements check it when used).
    pub fn in_database(database: impl Into<String>) -> Self {
        Self {
            database: database.into(),
            transaction: None,
        }
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// The database a name qualified by `database` (or not qualified) refers to.
    pub fn database_or_current(&self, database: Option<String>) -> String {
        database.unwrap_or_else(|| self.database.clone())
    }

    pub(crate) fn set_database(&mut self, database: String) {
        self.database = database;
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
