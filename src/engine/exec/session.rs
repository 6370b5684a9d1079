//! Statements about the session and the server's running statements: `SET` / `RESET` /
//! `SHOW statement_timeout` and `CANCEL QUERY`.

use std::time::Duration;

use super::super::running::show_duration;
use super::super::{Engine, EngineError, Listing, Outcome, Session};

impl Engine {
    /// `CANCEL QUERY id`: asks statement `id` (a `query_id` of `sys.queries`) to stop. It ends
    /// with "canceling statement due to user request"; one already committing finishes.
    pub(super) fn cancel_query(&self, id: u64) -> Result<Outcome, EngineError> {
        if self.catalog.statements().cancel(id) {
            Ok(Outcome::QueryCancelled(id))
        } else {
            Err(EngineError::InvalidInput(format!(
                "no running statement has query_id {id} (sys.queries lists them)"
            )))
        }
    }

    pub(super) fn set_statement_timeout(
        &self,
        session: &mut Session,
        timeout: Option<Duration>,
    ) -> Outcome {
        session.set_statement_timeout(timeout);
        Outcome::SettingChanged(format!(
            "statement_timeout = {}",
            show_timeout(self.statement_timeout(session))
        ))
    }

    pub(super) fn show_statement_timeout(&self, session: &Session) -> Outcome {
        let shown = show_timeout(self.statement_timeout(session));
        Outcome::names(Listing::Report, "statement_timeout", vec![shown])
    }

    /// The timeout `session`'s statements run under: its own, else the server's; `None` for
    /// none.
    pub(in crate::engine) fn statement_timeout(&self, session: &Session) -> Option<Duration> {
        session
            .statement_timeout()
            .or(self.default_statement_timeout)
            .filter(|timeout| !timeout.is_zero())
    }
}

fn show_timeout(timeout: Option<Duration>) -> String {
    timeout.map_or_else(|| "0".into(), show_duration)
}
