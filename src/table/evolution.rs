//! Schema evolution that rewrites no data: `ALTER TABLE … ADD COLUMN` and `ALTER COLUMN … SET |
//! DROP NOT NULL | DEFAULT`.
//!
//! A new column goes at the end of the table's schema in one metadata commit. Files written
//! before it do not have it, and every reader — MiniDB's scans, delta-rs, DuckDB — reads it there
//! as NULL; a column's DEFAULT applies to rows written after it was added, as in Delta. Time
//! travel to a version before the change shows the schema of that version.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::Result;
use serde_json::{Map, Value, json};

use super::constraints::{DEFAULTS_PROPERTY, primary_key};
use super::error::external;
use super::properties::declared;
use super::{TableError, TableHandle};
use crate::txlog::{Action, Operation, Snapshot, delta_schema_string};

/// A column to add: its field, its DEFAULT as SQL text, and whether an existing column of
/// its name is skipped (`IF NOT EXISTS`) rather than refused.
pub struct NewColumn {
    pub field: Field,
    pub default: Option<String>,
    pub if_not_exists: bool,
}

/// Adds `columns` at the end of the table's schema in one commit. Returns the number added.
///
/// A NOT NULL column can only be added to a table without rows: the rows there are would have
/// no value.
pub async fn add_columns(
    handle: &Arc<TableHandle>,
    table: &str,
    columns: Vec<NewColumn>,
) -> Result<usize> {
    let _turn = handle.lock_for_write().await.map_err(external)?;
    let snapshot = handle.refresh().await.map_err(external)?;
    let mut fields: Vec<Field> = snapshot
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut defaults: Map<String, Value> =
        match snapshot.metadata().configuration.get(DEFAULTS_PROPERTY) {
            Some(Some(json)) => serde_json::from_str(json).map_err(|e| {
                TableError::Corrupt(format!("table property {DEFAULTS_PROPERTY}: {e}"))
            })?,
            _ => Map::new(),
        };
    let has_rows = snapshot
        .files_with_stats()
        .any(|(_, stats)| stats.num_records != Some(0));
    let mut added = Vec::new();
    for column in columns {
        let name = column.field.name().clone();
        if fields.iter().any(|f| f.name().eq_ignore_ascii_case(&name)) {
            if column.if_not_exists {
                continue;
            }
            return Err(TableError::Invalid(format!(
                "column '{name}' already exists in table {table}"
            ))
            .into());
        }
        if !column.field.is_nullable() && has_rows {
            return Err(TableError::Invalid(format!(
                "cannot add column '{name}' NOT NULL to {table}: its rows would have no value \
                 (add it nullable; a DEFAULT fills rows written from now on)"
            ))
            .into());
        }
        if let Some(default) = column.default {
            defaults.insert(name.clone(), Value::String(default));
        }
        added.push(name);
        fields.push(column.field);
    }
    if added.is_empty() {
        return Ok(0);
    }
    let schema = Schema::new(fields);
    let mut actions = Vec::new();
    let protocol = snapshot.protocol();
    let timestamp_ntz = schema
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Timestamp(_, None)));
    if timestamp_ntz && !protocol.has_feature("timestampNtz") {
        actions.push(Action::Protocol(protocol.with_feature("timestampNtz")));
    }
    let mut metadata = snapshot.metadata().clone();
    metadata.schema_string = delta_schema_string(&schema).map_err(external)?;
    if !defaults.is_empty() {
        metadata.configuration.insert(
            DEFAULTS_PROPERTY.to_string(),
            Some(Value::Object(defaults).to_string()),
        );
    }
    actions.push(Action::Metadata(metadata));
    let operation = Operation {
        name: "ADD COLUMNS".into(),
        parameters: HashMap::from([("columns".into(), json!(added))]),
        metrics: HashMap::new(),
        blind_append: false,
    };
    handle
        .commit(&snapshot, operation, actions)
        .await
        .map_err(external)?;
    Ok(added.len())
}

/// What `ALTER TABLE … ALTER COLUMN` changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnChange {
    /// `SET NOT NULL` (false) or `DROP NOT NULL` (true).
    Nullable(bool),
    /// `SET DEFAULT expr` (its SQL text) or `DROP DEFAULT`.
    Default(Option<String>),
}

/// Commits `change` to `column`'s definition on top of `snapshot`, which the caller holds the
/// writer's turn for and has checked the change against (no NULLs before `SET NOT NULL`).
pub async fn change_column(
    handle: &Arc<TableHandle>,
    snapshot: &Arc<Snapshot>,
    table: &str,
    column: &str,
    change: ColumnChange,
) -> Result<()> {
    let schema = snapshot.schema();
    let Ok(index) = schema.index_of(column) else {
        return Err(TableError::Invalid(format!(
            "column '{column}' does not exist in table {table}"
        ))
        .into());
    };
    let mut metadata = snapshot.metadata().clone();
    let (name, parameter) = match &change {
        ColumnChange::Nullable(nullable) => {
            let key = primary_key(snapshot)?.unwrap_or_default();
            if *nullable && key.iter().any(|k| k == column) {
                return Err(TableError::Invalid(format!(
                    "column '{column}' is in the PRIMARY KEY of {table}, which stays NOT NULL"
                ))
                .into());
            }
            let mut fields: Vec<Field> =
                schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields[index] = fields[index].clone().with_nullable(*nullable);
            metadata.schema_string = delta_schema_string(&Schema::new(fields)).map_err(external)?;
            ("nullable", json!(nullable))
        }
        ColumnChange::Default(default) => {
            let mut defaults =
                declared::<Map<String, Value>>(snapshot, DEFAULTS_PROPERTY)?.unwrap_or_default();
            match default {
                Some(text) => defaults.insert(column.to_string(), Value::String(text.clone())),
                None => defaults.remove(column),
            };
            metadata.configuration.insert(
                DEFAULTS_PROPERTY.to_string(),
                Some(Value::Object(defaults).to_string()),
            );
            ("default", json!(default))
        }
    };
    let operation = Operation {
        name: "CHANGE COLUMN".into(),
        parameters: HashMap::from([("column".into(), json!(column)), (name.into(), parameter)]),
        metrics: HashMap::new(),
        blind_append: false,
    };
    handle
        .commit(snapshot, operation, vec![Action::Metadata(metadata)])
        .await
        .map_err(external)?;
    Ok(())
}
