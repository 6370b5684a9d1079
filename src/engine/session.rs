//! Per-connection state.

use crate::catalog::DEFAULT_DATABASE;

/// What a connection carries between statements: its current database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    database: String,
}

impl Session {
    /// A session in `database` (which is not checked here; statements check it when used).
    pub fn in_database(database: impl Into<String>) -> Self {
        Self {
            database: database.into(),
        }
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub(crate) fn set_database(&mut self, database: String) {
        self.database = database;
    }
}

impl Default for Session {
    fn default() -> Self {
        Self::in_database(DEFAULT_DATABASE)
    }
}
