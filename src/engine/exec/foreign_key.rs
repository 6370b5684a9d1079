//! Declaring foreign keys: `CREATE TABLE` with `REFERENCES` (column or table level), and what
//! `DROP TABLE` and `DROP DATABASE` must respect.
//!
//! A child table is created in three steps, under the writer lock of each parent (taken in name
//! order): its foreign keys are checked against the parents (the referenced columns are the
//! parent's PRIMARY KEY or a UNIQUE constraint, with the same types); each parent lists the child
//! in [`REFERENCED_BY_PROPERTY`]; then the child's first commit creates it, with its foreign keys
//! and an index on each key's columns. A parent lists a child before the child exists, so a
//! parent's writer never misses one; if creating the child fails, the parent lists a table that
//! does not reference it, which is ignored.
//!
//! [`REFERENCED_BY_PROPERTY`]: crate::table::foreign_keys::REFERENCED_BY_PROPERTY

use std::sync::Arc;

use arrow::datatypes::Schema;
use datafusion::sql::sqlparser::ast;

use super::declaration::declared;
use super::{Engine, EngineError, Outcome, Session};
use crate::catalog::{CatalogError, sql_type_name};
use crate::engine::sql::{TableName, table_name};
use crate::table::foreign_keys::{
    FOREIGN_KEY_INDEX, FOREIGN_KEYS_PROPERTY, ForeignKey, OnDelete, foreign_keys, list_child,
    referenced_by, unlist_child,
};
use crate::table::{
    INDEXES_PROPERTY, IndexDef, TableHandle, UNIQUE_PROPERTY, WriterLock, primary_key,
};

/// A foreign key as `CREATE TABLE` declares it, before its parent is looked up.
#[derive(Debug)]
pub(super) struct DeclaredForeignKey {
    name: Option<String>,
    columns: Vec<String>,
    parent: TableName,
    /// Empty when the declaration names none: the parent's primary key.
    parent_columns: Vec<String>,
    on_delete: OnDelete,
}

impl DeclaredForeignKey {
    /// The foreign key `key` on `columns` (the column's own for a column-level `REFERENCES`).
    pub fn new(
        name: Option<String>,
        columns: Vec<String>,
        key: &ast::ForeignKeyConstraint,
    ) -> Result<Self, EngineError> {
        let unsupported = |what: String| Err(EngineError::NotSupported(what));
        let on_delete = match key.on_delete {
            None | Some(ast::ReferentialAction::NoAction) => OnDelete::NoAction,
            Some(ast::ReferentialAction::Restrict) => OnDelete::Restrict,
            Some(ast::ReferentialAction::Cascade) => OnDelete::Cascade,
            Some(ast::ReferentialAction::SetNull) => OnDelete::SetNull,
            Some(ast::ReferentialAction::SetDefault) => {
                return unsupported(
                    "ON DELETE SET DEFAULT (MiniDB has NO ACTION, RESTRICT, CASCADE and SET NULL)"
                        .into(),
                );
            }
        };
        match key.on_update {
            None | Some(ast::ReferentialAction::NoAction | ast::ReferentialAction::Restrict) => {}
            Some(action) => {
                return unsupported(format!(
                    "ON UPDATE {action} (a referenced key cannot change while rows reference it)"
                ));
            }
        }
        if let Some(kind) = &key.match_kind
            && *kind != ast::ConstraintReferenceMatchKind::Simple
        {
            return unsupported(format!("{kind} (MiniDB's foreign keys are MATCH SIMPLE)"));
        }
        if key.characteristics.is_some() {
            return unsupported(
                "DEFERRABLE foreign keys (MiniDB checks foreign keys at the end of each statement)"
                    .into(),
            );
        }
        if columns.is_empty() {
            return Err(EngineError::InvalidInput(
                "a FOREIGN KEY needs at least one column".into(),
            ));
        }
        Ok(Self {
            name,
            columns,
            parent: table_name(&key.foreign_table)?,
            parent_columns: key
                .referred_columns
                .iter()
                .map(crate::engine::sql::normalize)
                .collect(),
            on_delete,
        })
    }
}

impl Engine {
    /// `CREATE TABLE` of a table with foreign keys (see the module documentation).
    pub(super) async fn create_child_table(
        &self,
        session: &Session,
        create: &ast::CreateTable,
        database: &str,
        schema: &Schema,
        mut properties: Vec<(String, String)>,
        declared_keys: Vec<DeclaredForeignKey>,
    ) -> Result<Outcome, EngineError> {
        let name = table_name(&create.name)?;
        let table = name.table.clone();
        let qualified = format!("{database}.{table}");
        let mut parents: Vec<(String, Arc<TableHandle>)> = Vec::new();
        let mut keys: Vec<ForeignKey> = Vec::new();
        for declared_key in declared_keys {
            let parent_database = session.database_or_current(declared_key.parent.database.clone());
            let parent = format!("{parent_database}.{}", declared_key.parent.table);
            if parent == qualified {
                return Err(EngineError::NotSupported(format!(
                    "a foreign key of {qualified} referencing {qualified} itself"
                )));
            }
            let handle = match self
                .catalog
                .table(&parent_database, &declared_key.parent.table)
                .await
            {
                Ok(handle) => handle,
                Err(CatalogError::TableNotFound(_)) => {
                    return Err(EngineError::InvalidInput(format!(
                        "the table {parent} that a foreign key of {qualified} references does not exist"
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            let key = resolve(&qualified, schema, &keys, declared_key, &parent, &handle)?;
            let acts =
                |k: &ForeignKey| matches!(k.on_delete, OnDelete::Cascade | OnDelete::SetNull);
            if acts(&key) && keys.iter().any(|k| k.parent == key.parent && acts(k)) {
                return Err(EngineError::NotSupported(format!(
                    "two foreign keys of {qualified} on {parent} with ON DELETE CASCADE or SET NULL \
                     (one of them can be NO ACTION)"
                )));
            }
            keys.push(key);
            if !parents.iter().any(|(p, _)| *p == parent) {
                parents.push((parent, handle));
            }
        }
        // Each key's columns get an index (unless one on exactly them exists), which finds the
        // rows that reference a parent key.
        let mut indexes: Vec<IndexDef> =
            match properties.iter().find(|(k, _)| k == INDEXES_PROPERTY) {
                Some((_, json)) => serde_json::from_str(json)
                    .map_err(|e| EngineError::InvalidInput(format!("index definitions: {e}")))?,
                None => Vec::new(),
            };
        for key in &keys {
            if !indexes.iter().any(|i| i.columns == key.columns) {
                indexes.push(IndexDef {
                    constraint: Some(FOREIGN_KEY_INDEX.to_string()),
                    ..IndexDef::new(key.name.clone(), key.columns.clone(), false)
                });
            }
        }
        properties.retain(|(k, _)| k != INDEXES_PROPERTY);
        let json = |value: serde_json::Result<String>| {
            value.map_err(|e| EngineError::InvalidInput(format!("foreign keys: {e}")))
        };
        properties.push((
            INDEXES_PROPERTY.to_string(),
            json(serde_json::to_string(&indexes))?,
        ));
        properties.push((
            FOREIGN_KEYS_PROPERTY.to_string(),
            json(serde_json::to_string(&keys))?,
        ));

        parents.sort_by(|a, b| a.0.cmp(&b.0));
        let mut locks: Vec<WriterLock> = Vec::new();
        for (_, handle) in &parents {
            locks.extend(handle.lock_for_write().await.map_err(CatalogError::from)?);
        }
        if self.catalog.table(database, &table).await.is_ok() {
            if create.if_not_exists {
                return Ok(Outcome::NothingToDo(format!(
                    "Table {qualified} already exists"
                )));
            }
            return Err(CatalogError::TableExists(qualified).into());
        }
        for (_, handle) in &parents {
            list_child(handle, &qualified).await?;
        }
        match self
            .catalog
            .create_table(database, &table, schema, properties)
            .await
        {
            Ok(_) => Ok(Outcome::TableCreated(table)),
            Err(CatalogError::TableExists(t)) if create.if_not_exists => {
                Ok(Outcome::NothingToDo(format!("Table {t} already exists")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The foreign keys of other tables that reference `database.table`: (child table, key).
    pub(in crate::engine) async fn referencing_keys(
        &self,
        database: &str,
        table: &str,
        handle: &TableHandle,
    ) -> Result<Vec<(String, ForeignKey)>, EngineError> {
        let qualified = format!("{database}.{table}");
        let mut found = Vec::new();
        for child in referenced_by(&handle.cached())? {
            let Some((child_database, child_table)) = child.split_once('.') else {
                continue;
            };
            let child_handle = match self.catalog.table(child_database, child_table).await {
                Ok(handle) => handle,
                Err(CatalogError::TableNotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            for key in foreign_keys(&child_handle.cached())? {
                if key.parent == qualified {
                    found.push((child.clone(), key));
                }
            }
        }
        Ok(found)
    }

    /// Fails when a table outside `dropped` (qualified names) references `database.table`.
    pub(super) async fn check_not_referenced(
        &self,
        database: &str,
        table: &str,
        dropped: &[String],
    ) -> Result<(), EngineError> {
        let handle = match self.catalog.table(database, table).await {
            Ok(handle) => handle,
            Err(_) => return Ok(()),
        };
        let referencing = self.referencing_keys(database, table, &handle).await?;
        match referencing
            .iter()
            .find(|(child, _)| !dropped.contains(child))
        {
            Some((child, key)) => Err(EngineError::InvalidInput(format!(
                "cannot drop table {database}.{table}: foreign key {} of table {child} references \
                 it (drop {child} first)",
                key.name
            ))),
            None => Ok(()),
        }
    }

    /// After `database.table` was dropped with `keys` (its foreign keys), takes it off its
    /// parents' lists of children. A failure only leaves a stale entry, which checks ignore.
    pub(super) async fn unlist_dropped_child(
        &self,
        database: &str,
        table: &str,
        keys: &[ForeignKey],
    ) {
        let child = format!("{database}.{table}");
        let mut parents: Vec<&str> = keys.iter().map(|k| k.parent.as_str()).collect();
        parents.sort_unstable();
        parents.dedup();
        for parent in parents {
            let Some((parent_database, parent_table)) = parent.split_once('.') else {
                continue;
            };
            let Ok(handle) = self.catalog.table(parent_database, parent_table).await else {
                continue;
            };
            let result = async {
                let _turn = handle.lock_for_write().await.map_err(CatalogError::from)?;
                unlist_child(&handle, &child).await?;
                Ok::<_, EngineError>(())
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(%parent, %child, error = %e, "could not unlist a dropped child table");
            }
        }
    }
}

/// Checks `declaration` (a foreign key of `child`, whose columns are `schema`) against its parent
/// `parent` and names it.
fn resolve(
    child: &str,
    schema: &Schema,
    earlier: &[ForeignKey],
    declaration: DeclaredForeignKey,
    parent: &str,
    handle: &TableHandle,
) -> Result<ForeignKey, EngineError> {
    let invalid = |message: String| Err(EngineError::InvalidInput(message));
    let parent_snapshot = handle.cached();
    let primary = primary_key(&parent_snapshot)?;
    let parent_columns = match (declaration.parent_columns.is_empty(), &primary) {
        (false, _) => declaration.parent_columns,
        (true, Some(primary)) => primary.clone(),
        (true, None) => {
            return invalid(format!(
                "{parent} has no PRIMARY KEY: name the referenced columns, REFERENCES {parent} (column, …)"
            ));
        }
    };
    let table = child.split_once('.').map_or(child, |(_, t)| t);
    let name = declaration
        .name
        .unwrap_or_else(|| format!("{table}_{}_fkey", declaration.columns.join("_")));
    if earlier.iter().any(|k| k.name == name) {
        return invalid(format!("two foreign keys of {child} are named {name}"));
    }
    let unique: Vec<Vec<String>> = declared(&parent_snapshot, UNIQUE_PROPERTY)?.unwrap_or_default();
    if primary.as_ref() != Some(&parent_columns) && !unique.contains(&parent_columns) {
        return invalid(format!(
            "foreign key {name}: ({}) of {parent} is not its PRIMARY KEY or a UNIQUE constraint \
             (a foreign key references a whole key, in its column order)",
            parent_columns.join(", ")
        ));
    }
    if parent_columns.len() != declaration.columns.len() {
        return invalid(format!(
            "foreign key {name} has {} column(s) but references {} of {parent}",
            declaration.columns.len(),
            parent_columns.len()
        ));
    }
    for (column, parent_column) in declaration.columns.iter().zip(&parent_columns) {
        let Ok(field) = schema.field_with_name(column) else {
            return invalid(format!(
                "foreign key {name}: '{column}' is not a column of {child}"
            ));
        };
        let parent_field = parent_snapshot
            .schema()
            .field_with_name(parent_column)
            .map_err(|e| EngineError::DataFusion(e.into()))?;
        if field.data_type() != parent_field.data_type() {
            return invalid(format!(
                "foreign key {name}: column {column} ({}) and the column {parent_column} ({}) of \
                 {parent} it references must have the same type",
                sql_type_name(field.data_type()),
                sql_type_name(parent_field.data_type())
            ));
        }
        if declaration.on_delete == OnDelete::SetNull && !field.is_nullable() {
            return invalid(format!(
                "foreign key {name}: ON DELETE SET NULL needs nullable columns, and {column} is NOT NULL"
            ));
        }
    }
    Ok(ForeignKey {
        name,
        columns: declaration.columns,
        parent: parent.to_string(),
        parent_columns,
        on_delete: declaration.on_delete,
    })
}
