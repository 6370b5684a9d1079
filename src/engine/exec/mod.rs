//! Running a parsed [`Statement`]: one dispatch ([`Engine::run`]) and one `impl Engine` per
//! family of statements — databases, tables, views, indexes, maintenance, history,
//! transactions, session settings, DML (MERGE and upsert too) and queries.

mod database;
mod declaration;
mod dml;
mod foreign_key;
mod history;
mod index;
mod maintenance;
mod merge;
pub(super) mod query;
mod references;
mod session;
mod table;
mod transaction;
mod view;

use std::sync::Arc;

use super::sql::{Statement, TableName};
use super::{Engine, EngineError, Outcome, Session};
use crate::table::TableHandle;

impl Engine {
    /// Runs `statement` in `session`.
    pub(super) async fn run(
        &self,
        session: &mut Session,
        statement: Statement,
    ) -> Result<Outcome, EngineError> {
        // Catalog changes are not transactional. One in a transaction that has not used a table
        // yet runs as if just before it (clients that open a transaction on connect, like
        // ADBC's DBAPI, start with DDL); later ones would change tables under the transaction.
        if statement.changes_catalog() && session.transaction().is_some_and(|t| !t.is_untouched()) {
            return Err(EngineError::NotSupported(
                "changing databases or tables inside a transaction that has used tables; \
                 COMMIT or ROLLBACK first"
                    .into(),
            ));
        }
        match statement {
            Statement::CreateDatabase {
                name,
                if_not_exists,
            } => self.create_database(name, if_not_exists).await,
            Statement::DropDatabase { name, if_exists } => {
                self.drop_database(name, if_exists).await
            }
            Statement::Use(name) => self.use_database(session, name).await,
            Statement::ShowDatabases => self.show_databases().await,
            Statement::ShowTables(database) => self.show_tables(session, database).await,
            Statement::CreateTable {
                create,
                partitioning,
            } => self.create_table(session, &create, partitioning).await,
            Statement::AlterTable(alter) => self.alter_table(session, &alter).await,
            Statement::CloneTable {
                name,
                source,
                if_not_exists,
                shallow,
            } => {
                self.clone_table(session, name, source, if_not_exists, shallow)
                    .await
            }
            Statement::DropTable { names, if_exists } => {
                self.drop_tables(session, names, if_exists).await
            }
            Statement::CreateView(create) => self.create_view(session, *create).await,
            Statement::DropView { names, if_exists } => {
                self.drop_views(session, names, if_exists).await
            }
            Statement::Describe(name) => self.describe(session, name).await,
            Statement::ShowCreateTable(name) => self.show_create_table(session, name).await,
            Statement::CreateIndex {
                name,
                table,
                columns,
                unique,
                if_not_exists,
            } => {
                self.create_index(session, name, table, columns, unique, if_not_exists)
                    .await
            }
            Statement::DropIndex {
                name,
                table,
                if_exists,
            } => self.drop_index(session, name, table, if_exists).await,
            Statement::ShowIndexes(table) => self.show_indexes(session, table).await,
            Statement::Optimize { table, zorder } => self.optimize(session, table, zorder).await,
            Statement::Analyze { table, columns } => self.analyze(session, table, columns).await,
            Statement::Vacuum {
                table,
                retain_hours,
                dry_run,
            } => self.vacuum(session, table, retain_hours, dry_run).await,
            Statement::Fsck { table, dry_run } => self.fsck(session, table, dry_run).await,
            Statement::DescribeHistory(table) => self.describe_history(session, table).await,
            Statement::Begin => self.begin_statement(session),
            Statement::Commit => self.commit_statement(session).await,
            Statement::Rollback => Ok(self.rollback_statement(session)),
            Statement::Update(update) => self.update(session, &update).await,
            Statement::Delete(delete) => self.delete(session, &delete).await,
            Statement::Merge(merge) => self.merge(session, &merge).await,
            Statement::Upsert(insert) => self.upsert(session, &insert).await,
            Statement::Insert(insert) => self.insert(session, *insert).await,
            Statement::Query(query) => self.query(session, *query).await,
            Statement::CancelQuery(id) => self.cancel_query(id),
            Statement::SetStatementTimeout(timeout) => {
                Ok(self.set_statement_timeout(session, timeout))
            }
            Statement::ShowStatementTimeout => Ok(self.show_statement_timeout(session)),
        }
    }

    /// The table a statement names (in the session's database unless it names one): its
    /// database and its handle, brought up to date with its log.
    async fn named_table(
        &self,
        session: &Session,
        name: &TableName,
    ) -> Result<(String, Arc<TableHandle>), EngineError> {
        let database = session.database_or_current(name.database.clone());
        let handle = self.catalog.table(&database, &name.table).await?;
        Ok((database, handle))
    }
}

/// What a DROP of several `kind`s ("Table", "View") did: the names dropped, or, when none was,
/// the ones that did not exist (`IF EXISTS`).
fn drop_outcome(
    kind: &str,
    dropped: Vec<String>,
    missing: Vec<String>,
    outcome: fn(String) -> Outcome,
) -> Outcome {
    if dropped.is_empty() {
        Outcome::NothingToDo(format!("{kind} {} does not exist", missing.join(", ")))
    } else {
        outcome(dropped.join(", "))
    }
}
