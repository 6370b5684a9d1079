//! Self-contained statement handles and tickets.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tonic::Status;

/// What a prepared-statement handle or a query ticket carries: everything needed to run it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementHandle {
    pub sql: String,
    pub database: String,
    /// Set for prepared statements, unique to each: the key of the parameters bound to it on
    /// this server, for clients that keep using the handle they were first given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Set in the ticket of a statement that already ran at GetFlightInfo (DDL, DML): its
    /// DoGet answers with no rows and runs nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub executed: bool,
    /// The bound parameters as SQL literals, one row per execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<Vec<String>>>,
    /// The Flight SQL transaction the statement runs in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<String>,
    /// A query already planned by GetFlightInfo and parked on this server under this id; DoGet
    /// runs it instead of planning again (and plans from `sql` if it is gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// The statement timeout of the session that made the handle, when it set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl StatementHandle {
    /// A handle for `sql` in `database`, optionally inside a transaction.
    pub fn new(sql: String, database: String, transaction: Option<String>) -> Self {
        Self {
            sql,
            database,
            transaction,
            plan: None,
            id: None,
            executed: false,
            parameters: None,
            timeout_ms: None,
        }
    }

    /// The handle with the statement timeout `session` set, if any.
    pub fn in_session_of(mut self, session: &crate::engine::Session) -> Self {
        self.timeout_ms = session
            .statement_timeout()
            .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        self
    }

    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("strings always serialize"))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Status> {
        serde_json::from_slice(bytes)
            .map_err(|e| Status::invalid_argument(format!("not a MiniDB statement handle: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_reject_garbage() {
        let handle = StatementHandle {
            sql: "SELECT 1".into(),
            database: "test".into(),
            transaction: Some("t1".into()),
            plan: None,
            id: Some("p1".into()),
            executed: false,
            parameters: Some(vec![vec!["1".into(), "'x'".into()]]),
            timeout_ms: Some(1500),
        };
        assert_eq!(StatementHandle::decode(&handle.encode()).unwrap(), handle);
        assert!(StatementHandle::decode(b"\x00garbage").is_err());
    }
}
