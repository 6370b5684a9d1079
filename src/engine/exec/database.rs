//! `CREATE DATABASE`, `DROP DATABASE`, `USE`, `SHOW DATABASES` and `SHOW TABLES` (which lists
//! views too, and for `sys` the system tables).

use crate::table::foreign_keys::foreign_keys;

use super::{Engine, EngineError, Outcome, Session};
use crate::catalog::{CatalogError, DEFAULT_DATABASE, SYSTEM_DATABASE, system_tables};
use crate::engine::Listing;

impl Engine {
    pub(super) async fn create_database(
        &self,
        name: String,
        if_not_exists: bool,
    ) -> Result<Outcome, EngineError> {
        match self.catalog.create_database(&name).await {
            Ok(()) => Ok(Outcome::DatabaseCreated(name)),
            Err(CatalogError::DatabaseExists(_)) if if_not_exists => Ok(Outcome::NothingToDo(
                format!("Database {name} already exists"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn drop_database(
        &self,
        name: String,
        if_exists: bool,
    ) -> Result<Outcome, EngineError> {
        if name == DEFAULT_DATABASE {
            return Err(EngineError::InvalidInput(
                "the default database cannot be dropped".into(),
            ));
        }
        // Tables of other databases may reference the tables dropped, or be referenced by them.
        let mut children = Vec::new();
        if let Ok(tables) = self.catalog.tables(&name).await {
            let dropping: Vec<String> = tables.iter().map(|t| format!("{name}.{t}")).collect();
            for table in &tables {
                self.check_not_referenced(&name, table, &dropping).await?;
                if let Ok(handle) = self.catalog.table(&name, table).await {
                    children.push((table.clone(), foreign_keys(&handle.cached())?));
                }
            }
        }
        match self.catalog.drop_database(&name).await {
            Ok(()) => {
                for (table, keys) in children {
                    self.unlist_dropped_child(&name, &table, &keys).await;
                }
                Ok(Outcome::DatabaseDropped(name))
            }
            Err(CatalogError::DatabaseNotFound(_)) if if_exists => Ok(Outcome::NothingToDo(
                format!("Database {name} does not exist"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn use_database(
        &self,
        session: &mut Session,
        name: String,
    ) -> Result<Outcome, EngineError> {
        if name.eq_ignore_ascii_case(SYSTEM_DATABASE) {
            return Err(EngineError::InvalidInput(format!(
                "{SYSTEM_DATABASE} holds the system tables, which are read by their full name \
                 ({SYSTEM_DATABASE}.table_metadata, …), not a database to USE"
            )));
        }
        if !self.catalog.database_exists(&name).await? {
            return Err(CatalogError::DatabaseNotFound(name).into());
        }
        session.set_database(name.clone());
        Ok(Outcome::UsingDatabase(name))
    }

    pub(super) async fn show_databases(&self) -> Result<Outcome, EngineError> {
        Ok(Outcome::names(
            Listing::Databases,
            "database_name",
            self.catalog.databases().await?,
        ))
    }

    pub(super) async fn show_tables(
        &self,
        session: &Session,
        database: Option<String>,
    ) -> Result<Outcome, EngineError> {
        let database = session.database_or_current(database);
        if database.eq_ignore_ascii_case(SYSTEM_DATABASE) {
            let mut tables: Vec<String> = system_tables().map(|(name, _)| name.into()).collect();
            tables.sort();
            return Ok(Outcome::names(
                Listing::Tables {
                    database: SYSTEM_DATABASE.to_string(),
                },
                "table_name",
                tables,
            ));
        }
        let mut tables = self.catalog.tables(&database).await?;
        tables.extend(self.catalog.views(&database).await?);
        tables.sort();
        Ok(Outcome::names(
            Listing::Tables { database },
            "table_name",
            tables,
        ))
    }
}
