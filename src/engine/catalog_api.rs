//! What protocols may ask the engine about its catalog, besides running statements: the
//! databases, tables and views (with their schemas, primary and foreign keys) that Flight SQL's metadata
//! commands list, and the figures of the admin service.

use arrow::datatypes::{Field, Schema};

use super::sql::{self, Statement};
use super::{Engine, EngineError, Session};
use crate::catalog::{CompactionRun, system_tables};
use crate::table::foreign_keys::{ForeignKey, foreign_keys};
use crate::table::primary_key;
use crate::txlog::unmapped;

/// A foreign key, as the catalog RPCs describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKeyInfo {
    pub name: String,
    pub database: String,
    pub table: String,
    pub columns: Vec<String>,
    pub parent_database: String,
    pub parent_table: String,
    pub parent_columns: Vec<String>,
    /// The name of the parent's key it references (`t_pkey`, `t_a_b_key`).
    pub parent_key: String,
    /// `NO ACTION`, `RESTRICT`, `CASCADE` or `SET NULL`.
    pub on_delete: &'static str,
}

/// The catalog's figures, for the admin service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogStatus {
    /// Where the catalog is stored (a directory or bucket URL).
    pub storage_root: String,
    pub databases: usize,
    pub tables: usize,
}

/// What the background compactor has done, for the admin service.
#[derive(Debug, Clone)]
pub struct CompactionHistory {
    /// Passes over the catalog so far.
    pub passes: u64,
    /// When the last pass ended, in milliseconds since the epoch (0: none yet).
    pub last_pass_ms: i64,
    /// The most recent runs, oldest first.
    pub runs: Vec<CompactionRun>,
}

impl Engine {
    /// The names of the user databases (not the system one).
    pub async fn databases(&self) -> Result<Vec<String>, EngineError> {
        Ok(self.catalog.databases().await?)
    }

    pub async fn database_exists(&self, database: &str) -> Result<bool, EngineError> {
        Ok(self.catalog.database_exists(database).await?)
    }

    /// The names of the tables of `database`.
    pub async fn tables(&self, database: &str) -> Result<Vec<String>, EngineError> {
        Ok(self.catalog.tables(database).await?)
    }

    /// The names of the views of `database`.
    pub async fn views(&self, database: &str) -> Result<Vec<String>, EngineError> {
        Ok(self.catalog.views(database).await?)
    }

    /// The schema of the rows a view returns, planned now.
    pub async fn view_schema(&self, database: &str, view: &str) -> Result<Schema, EngineError> {
        let quoted = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
        let sql = format!("SELECT * FROM {}.{}", quoted(database), quoted(view));
        let Statement::Query(query) = sql::parse(&sql)? else {
            return Err(EngineError::InvalidInput(format!(
                "{database}.{view} is not a view"
            )));
        };
        let (plan, _) = self
            .physical_plan(&Session::in_database(database), *query)
            .await?;
        Ok(plan.schema().as_ref().clone())
    }

    /// The schema of a table, as of its newest snapshot known to this server.
    pub async fn table_schema(&self, database: &str, table: &str) -> Result<Schema, EngineError> {
        let handle = self.catalog.table(database, table).await?;
        let fields: Vec<Field> = handle
            .cached()
            .schema()
            .fields()
            .iter()
            .map(|f| unmapped(f))
            .collect();
        Ok(Schema::new(fields))
    }

    /// The primary key columns of a table, in key order; empty without one.
    pub async fn primary_key(
        &self,
        database: &str,
        table: &str,
    ) -> Result<Vec<String>, EngineError> {
        let handle = self.catalog.table(database, table).await?;
        Ok(primary_key(&handle.cached())?.unwrap_or_default())
    }

    /// The foreign keys of `database.table` (the keys it imports).
    pub async fn foreign_keys(
        &self,
        database: &str,
        table: &str,
    ) -> Result<Vec<ForeignKeyInfo>, EngineError> {
        let handle = self.catalog.table(database, table).await?;
        let mut found = Vec::new();
        for key in foreign_keys(&handle.cached())? {
            found.push(self.key_info(database, table, key).await?);
        }
        Ok(found)
    }

    /// The foreign keys of other tables that reference `database.table` (the keys it exports).
    pub async fn referencing_foreign_keys(
        &self,
        database: &str,
        table: &str,
    ) -> Result<Vec<ForeignKeyInfo>, EngineError> {
        let handle = self.catalog.table(database, table).await?;
        let mut found = Vec::new();
        for (child, key) in self.referencing_keys(database, table, &handle).await? {
            let (child_database, child_table) = child.split_once('.').unwrap_or(("", &child));
            found.push(self.key_info(child_database, child_table, key).await?);
        }
        Ok(found)
    }

    async fn key_info(
        &self,
        database: &str,
        table: &str,
        key: ForeignKey,
    ) -> Result<ForeignKeyInfo, EngineError> {
        let (parent_database, parent_table) =
            key.parent.split_once('.').unwrap_or(("", &key.parent));
        let is_primary = match self.catalog.table(parent_database, parent_table).await {
            Ok(parent) => primary_key(&parent.cached())?.as_ref() == Some(&key.parent_columns),
            Err(_) => false,
        };
        let parent_key = match is_primary {
            true => format!("{parent_table}_pkey"),
            false => format!("{parent_table}_{}_key", key.parent_columns.join("_")),
        };
        Ok(ForeignKeyInfo {
            database: database.to_string(),
            table: table.to_string(),
            parent_database: parent_database.to_string(),
            parent_table: parent_table.to_string(),
            parent_key,
            on_delete: key.on_delete.sql(),
            name: key.name,
            columns: key.columns,
            parent_columns: key.parent_columns,
        })
    }

    /// The tables of the system database and their schemas.
    pub fn system_tables(&self) -> impl Iterator<Item = (&'static str, Schema)> {
        system_tables()
    }

    pub async fn catalog_status(&self) -> Result<CatalogStatus, EngineError> {
        Ok(CatalogStatus {
            storage_root: self.catalog.store().root_url().to_string(),
            databases: self.catalog.databases().await?.len(),
            tables: self.catalog.table_count().await?,
        })
    }

    /// The compactor's passes and its `recent` most recent runs.
    pub fn compaction_history(&self, recent: usize) -> CompactionHistory {
        let log = self.catalog.maintenance();
        let runs = log.runs();
        CompactionHistory {
            passes: log.passes(),
            last_pass_ms: log.last_pass_ms(),
            runs: runs[runs.len().saturating_sub(recent)..].to_vec(),
        }
    }
}
