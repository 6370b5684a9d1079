//! Self-contained statement handles and tickets.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tonic::Status;

/// What a prepared-statement handle or a query ticket carries: everything needed to run it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementHandle {
    pub sql: String,
    pub database: String,
    /// The Flight SQL transaction the statement runs in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<String>,
    /// A query already planned by GetFlightInfo and parked on this server under this id; DoGet
    /// runs it instead of planning again (and plans from `sql` if it is gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

impl StatementHandle {
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
        };
        assert_eq!(StatementHandle::decode(&handle.encode()).unwrap(), handle);
        assert!(StatementHandle::decode(b"\x00garbage").is_err());
    }
}
