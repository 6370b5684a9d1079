//! `BEGIN`, `COMMIT` and `ROLLBACK`.

use super::{Engine, EngineError, Outcome, Session};

impl Engine {
    pub(super) fn begin_statement(&self, session: &mut Session) -> Result<Outcome, EngineError> {
        if session.transaction().is_some() {
            return Err(EngineError::InvalidInput(
                "a transaction is already open; COMMIT or ROLLBACK it first".into(),
            ));
        }
        session.begin(self.begin());
        Ok(Outcome::TransactionStarted)
    }

    pub(super) async fn commit_statement(
        &self,
        session: &mut Session,
    ) -> Result<Outcome, EngineError> {
        let Some(transaction) = session.end_transaction() else {
            return Ok(Outcome::NothingToDo("No transaction is open".into()));
        };
        self.commit(&transaction)
            .await
            .map_err(|e| EngineError::RolledBack(Box::new(e)))?;
        Ok(Outcome::TransactionCommitted)
    }

    pub(super) fn rollback_statement(&self, session: &mut Session) -> Outcome {
        match session.end_transaction() {
            Some(_) => Outcome::TransactionRolledBack,
            None => Outcome::NothingToDo("No transaction is open".into()),
        }
    }
}
