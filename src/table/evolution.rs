//! Schema evolution that rewrites no data: `ALTER TABLE … ADD COLUMN`, `DROP COLUMN`, `RENAME
//! COLUMN`, and `ALTER COLUMN … TYPE | SET / DROP NOT NULL | SET / DROP DEFAULT`.
//!
//! A new column goes at the end of the table's schema in one metadata commit. Files written
//! before it do not have it, and every reader — MiniDB's scans, delta-rs, DuckDB — reads it there
//! as NULL; a column's DEFAULT applies to rows written after it was added, as in Delta. Time
//! travel to a version before the change shows the schema of that version.
//!
//! Renaming and dropping use Delta column mapping (mode `name`): the first such change turns it
//! on, giving every existing column its own name as physical name (so no file changes) and an
//! id; a rename then changes only the display name, a drop removes the column from the schema
//! alone, and a column added afterwards gets a fresh physical name (`col-<uuid>`), so a dropped
//! column's values never reappear under a new column of the same name. The table's own
//! declarations (keys, indexes, partitioning, DEFAULTs, ANALYZE figures) follow a rename; a
//! column that a key, an index or the partitioning uses cannot be dropped.
//!
//! A type change widens a column (Delta's `typeWidening` feature): the files keep the values in
//! the old type, and readers convert them; the column's metadata records each change.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema};
use datafusion::common::Result;
use serde_json::{Map, Value, json};

use super::constraints::{DEFAULTS_PROPERTY, PRIMARY_KEY_PROPERTY, UNIQUE_PROPERTY, primary_key};
use super::error::external;
use super::foreign_keys::{FOREIGN_KEYS_PROPERTY, OnDelete, foreign_keys, referenced_by};
use super::index::{INDEXES_PROPERTY, table_indexes};
use super::partitioning::{PARTITIONING_PROPERTY, Partitioning};
use super::properties::declared;
use super::{TableError, TableHandle};
use crate::txlog::{
    Action, CHAR_VARCHAR_TYPE, COLUMN_MAPPING_ID, COLUMN_MAPPING_MODE, Metadata, Operation,
    PHYSICAL_NAME, STATISTICS_PROPERTY, Snapshot, TYPE_CHANGES, declared_length,
    delta_schema_string, delta_type_name, is_mapped,
};

/// The table property recording the highest column mapping id given out.
const MAX_COLUMN_ID: &str = "delta.columnMapping.maxColumnId";

/// The table property that allows type changes (type widening).
const ENABLE_TYPE_WIDENING: &str = "delta.enableTypeWidening";

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
    // Under column mapping a new column gets an id and a physical name of its own.
    let mut ids = is_mapped(snapshot.schema()).then(|| max_column_id(&snapshot));
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
        fields.push(match &mut ids {
            Some(next) => with_mapping(column.field, next, new_physical_name()),
            None => column.field,
        });
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
    if let Some(max) = ids {
        metadata
            .configuration
            .insert(MAX_COLUMN_ID.to_string(), Some(max.to_string()));
    }
    actions.push(Action::Metadata(metadata));
    let count = added.len();
    let parameters = [("columns", json!(added))];
    commit_change(handle, &snapshot, "ADD COLUMNS", parameters, actions).await?;
    Ok(count)
}

/// What `ALTER TABLE … ALTER COLUMN` changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnChange {
    /// `SET NOT NULL` (false) or `DROP NOT NULL` (true).
    Nullable(bool),
    /// `SET DEFAULT expr` (its SQL text) or `DROP DEFAULT`.
    Default(Option<String>),
    /// `TYPE t`: a wider type (see [`widens`]), or a longer declared length of a string; the
    /// field carries the new type and its declared length.
    Type(Field),
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
    let mut actions = Vec::new();
    let (name, parameter) = match &change {
        ColumnChange::Nullable(nullable) => {
            let key = primary_key(snapshot)?.unwrap_or_default();
            if *nullable && key.iter().any(|k| k == column) {
                return Err(TableError::Invalid(format!(
                    "column '{column}' is in the PRIMARY KEY of {table}, which stays NOT NULL"
                ))
                .into());
            }
            let setting_null = foreign_keys(snapshot)?.into_iter().find(|k| {
                k.on_delete == OnDelete::SetNull && k.columns.iter().any(|c| c == column)
            });
            if let Some(key) = setting_null.filter(|_| !*nullable) {
                return Err(TableError::Invalid(format!(
                    "column '{column}' of {table} is set to NULL by foreign key {} (ON DELETE SET \
                     NULL), so it cannot be NOT NULL",
                    key.name
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
        ColumnChange::Type(new) => {
            let field = schema.field(index);
            let (from, to) = (field.data_type(), new.data_type());
            if from == to {
                let (old, declared) = (declared_length(field), declared_length(new));
                if old == declared {
                    return Ok(());
                }
                // Only a longer length, or none, holds every value without checking them.
                let longer = match (old, declared) {
                    (Some(old), Some(declared)) => declared.chars >= old.chars,
                    (Some(_), None) => true,
                    _ => false,
                };
                if !longer {
                    return Err(TableError::Invalid(format!(
                        "column '{column}' of {table} cannot take a shorter or new declared \
                         length: its values are not checked again (a length only grows)"
                    ))
                    .into());
                }
                let mut metadata_of = field.metadata().clone();
                match declared {
                    Some(length) => {
                        metadata_of.insert(CHAR_VARCHAR_TYPE.to_string(), length.metadata_value())
                    }
                    None => metadata_of.remove(CHAR_VARCHAR_TYPE),
                };
                let mut fields: Vec<Field> =
                    schema.fields().iter().map(|f| f.as_ref().clone()).collect();
                fields[index] = field.clone().with_metadata(metadata_of);
                metadata.schema_string =
                    delta_schema_string(&Schema::new(fields)).map_err(external)?;
                let length = declared.map(|d| d.sql_name());
                actions.push(Action::Metadata(metadata));
                let parameters = [("column", json!(column)), ("length", json!(length))];
                return commit_change(handle, snapshot, "CHANGE COLUMN", parameters, actions).await;
            }
            if !widens(from, to) {
                return Err(TableError::Invalid(format!(
                    "column '{column}' of {table} cannot change from {from} to {to}: a type \
                     changes only to a wider one"
                ))
                .into());
            }
            if let Some(reason) = dropping_refused(snapshot, column)? {
                return Err(TableError::Invalid(format!(
                    "column '{column}' of {table} cannot change its type: {reason}"
                ))
                .into());
            }
            let mut fields: Vec<Field> =
                schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields[index] = with_type_change(field, from, to)?;
            metadata.schema_string = delta_schema_string(&Schema::new(fields)).map_err(external)?;
            metadata
                .configuration
                .insert(ENABLE_TYPE_WIDENING.to_string(), Some("true".to_string()));
            let mut protocol = snapshot.protocol().clone();
            for feature in ["typeWidening", "timestampNtz"] {
                let needed =
                    feature == "typeWidening" || matches!(to, DataType::Timestamp(_, None));
                if needed && !protocol.has_feature(feature) {
                    protocol = protocol.with_feature(feature);
                }
            }
            if &protocol != snapshot.protocol() {
                actions.push(Action::Protocol(protocol));
            }
            ("type", json!(delta_type_name(to).map_err(external)?))
        }
    };
    actions.push(Action::Metadata(metadata));
    let parameters = [("column", json!(column)), (name, parameter)];
    commit_change(handle, snapshot, "CHANGE COLUMN", parameters, actions).await
}

/// A fresh physical name for a column added under column mapping.
fn new_physical_name() -> String {
    format!("col-{}", uuid::Uuid::new_v4())
}

/// The highest column mapping id of `snapshot`'s table: its `maxColumnId`, or the highest id
/// its schema holds if that is higher.
fn max_column_id(snapshot: &Snapshot) -> i64 {
    let recorded = snapshot
        .metadata()
        .configuration
        .get(MAX_COLUMN_ID)
        .cloned()
        .flatten()
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    fn highest(fields: &Fields) -> i64 {
        fields
            .iter()
            .map(|f| {
                let own = f
                    .metadata()
                    .get(COLUMN_MAPPING_ID)
                    .and_then(|id| id.parse().ok())
                    .unwrap_or(0);
                own.max(match f.data_type() {
                    DataType::Struct(nested) => highest(nested),
                    _ => 0,
                })
            })
            .max()
            .unwrap_or(0)
    }
    recorded.max(highest(snapshot.schema().fields()))
}

/// `field` with the next column mapping id and `physical` as its physical name; the fields of
/// a struct inside it get ids too, and keep their names as physical names.
fn with_mapping(field: Field, next: &mut i64, physical: String) -> Field {
    *next += 1;
    let mut metadata = field.metadata().clone();
    metadata.insert(COLUMN_MAPPING_ID.to_string(), next.to_string());
    metadata.insert(PHYSICAL_NAME.to_string(), physical);
    let data_type = nested_mapping(field.data_type(), next);
    field.with_data_type(data_type).with_metadata(metadata)
}

fn nested_mapping(data_type: &DataType, next: &mut i64) -> DataType {
    match data_type {
        DataType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| {
                    let name = f.name().clone();
                    with_mapping(f.as_ref().clone(), next, name)
                })
                .collect(),
        ),
        DataType::List(element) => {
            let inner = nested_mapping(element.data_type(), next);
            DataType::List(Arc::new(element.as_ref().clone().with_data_type(inner)))
        }
        DataType::Map(entries, sorted) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return data_type.clone();
            };
            let kv: Fields = kv
                .iter()
                .map(|f| {
                    let inner = nested_mapping(f.data_type(), next);
                    f.as_ref().clone().with_data_type(inner)
                })
                .collect();
            DataType::Map(
                Arc::new(
                    entries
                        .as_ref()
                        .clone()
                        .with_data_type(DataType::Struct(kv)),
                ),
                *sorted,
            )
        }
        other => other.clone(),
    }
}

/// The table's columns, metadata and protocol action with column mapping (mode `name`) on.
/// Turning it on gives every column its own name as physical name, so the data files stay
/// valid as they are.
fn mapped_columns(snapshot: &Snapshot) -> (Vec<Field>, Metadata, Option<Action>) {
    let mut metadata = snapshot.metadata().clone();
    let fields: Vec<Field> = snapshot
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    if is_mapped(snapshot.schema()) {
        return (fields, metadata, None);
    }
    let mut next = max_column_id(snapshot);
    let fields = fields
        .into_iter()
        .map(|f| {
            let name = f.name().clone();
            with_mapping(f, &mut next, name)
        })
        .collect();
    metadata
        .configuration
        .insert(COLUMN_MAPPING_MODE.to_string(), Some("name".to_string()));
    metadata
        .configuration
        .insert(MAX_COLUMN_ID.to_string(), Some(next.to_string()));
    let protocol = snapshot.protocol();
    let upgrade = (!protocol.has_feature("columnMapping"))
        .then(|| Action::Protocol(protocol.with_feature("columnMapping")));
    (fields, metadata, upgrade)
}

/// Rewrites the JSON table property `key`, if set, with `edit`.
fn edit_property(metadata: &mut Metadata, key: &str, edit: impl Fn(&mut Value)) -> Result<()> {
    let Some(Some(json)) = metadata.configuration.get(key) else {
        return Ok(());
    };
    let mut value: Value = serde_json::from_str(json)
        .map_err(|e| TableError::Corrupt(format!("table property {key}: {e}")))?;
    edit(&mut value);
    metadata
        .configuration
        .insert(key.to_string(), Some(value.to_string()));
    Ok(())
}

/// The elements of a JSON array (none for anything else).
fn elements(value: &mut Value) -> impl Iterator<Item = &mut Value> {
    value.as_array_mut().into_iter().flatten()
}

/// Moves a JSON object's entry `old` to `new`.
fn rekey(value: &mut Value, old: &str, new: &str) {
    if let Some(object) = value.as_object_mut()
        && let Some(entry) = object.remove(old)
    {
        object.insert(new.to_string(), entry);
    }
}

/// Renames column `old` to `new` in every declaration of the table that names columns.
fn rename_in_declarations(metadata: &mut Metadata, old: &str, new: &str) -> Result<()> {
    let rename = |name: &mut Value| {
        if name.as_str() == Some(old) {
            *name = Value::String(new.to_string());
        }
    };
    edit_property(metadata, PRIMARY_KEY_PROPERTY, |key| {
        elements(key).for_each(rename)
    })?;
    edit_property(metadata, UNIQUE_PROPERTY, |keys| {
        elements(keys).for_each(|key| elements(key).for_each(rename))
    })?;
    edit_property(metadata, INDEXES_PROPERTY, |indexes| {
        for index in elements(indexes) {
            if let Some(columns) = index.get_mut("columns") {
                elements(columns).for_each(rename);
            }
        }
    })?;
    edit_property(metadata, PARTITIONING_PROPERTY, |partitioning| {
        if let Some(column) = partitioning.get_mut("column") {
            rename(column);
        }
    })?;
    edit_property(metadata, FOREIGN_KEYS_PROPERTY, |keys| {
        for key in elements(keys) {
            if let Some(columns) = key.get_mut("columns") {
                elements(columns).for_each(rename);
            }
        }
    })?;
    edit_property(metadata, DEFAULTS_PROPERTY, |defaults| {
        rekey(defaults, old, new)
    })?;
    edit_property(metadata, STATISTICS_PROPERTY, |figures| {
        rekey(figures, old, new)
    })
}

/// The error for a column `table` does not have.
fn no_column(table: &str, column: &str) -> datafusion::error::DataFusionError {
    TableError::Invalid(format!("column '{column}' does not exist in table {table}")).into()
}

/// `ALTER TABLE … RENAME COLUMN old TO new`: one metadata commit (turning column mapping on
/// first if needed); the data files keep the column under its physical name.
pub async fn rename_column(
    handle: &Arc<TableHandle>,
    table: &str,
    old: &str,
    new: &str,
) -> Result<()> {
    let _turn = handle.lock_for_write().await.map_err(external)?;
    let snapshot = handle.refresh().await.map_err(external)?;
    let (mut fields, mut metadata, upgrade) = mapped_columns(&snapshot);
    let Some(index) = fields.iter().position(|f| f.name() == old) else {
        return Err(no_column(table, old));
    };
    if fields.iter().any(|f| f.name().eq_ignore_ascii_case(new)) {
        return Err(
            TableError::Invalid(format!("column '{new}' already exists in table {table}")).into(),
        );
    }
    if !referenced_by(&snapshot)?.is_empty() {
        let unique: Vec<Vec<String>> = declared(&snapshot, UNIQUE_PROPERTY)?.unwrap_or_default();
        let keys = primary_key(&snapshot)?.into_iter().chain(unique);
        if keys.flatten().any(|c| c == old) {
            return Err(TableError::Invalid(format!(
                "column '{old}' of {table} is in a key that foreign keys of other tables reference; \
                 it cannot be renamed"
            ))
            .into());
        }
    }
    fields[index] = fields[index].clone().with_name(new);
    metadata.schema_string = delta_schema_string(&Schema::new(fields)).map_err(external)?;
    rename_in_declarations(&mut metadata, old, new)?;
    let parameters = [("oldColumnPath", json!(old)), ("newColumnPath", json!(new))];
    let actions = upgrade.into_iter().chain([Action::Metadata(metadata)]);
    commit_change(
        handle,
        &snapshot,
        "RENAME COLUMN",
        parameters,
        actions.collect(),
    )
    .await
}

/// Commits a change of the table's definition: `actions` as operation `name`.
async fn commit_change<const N: usize>(
    handle: &TableHandle,
    snapshot: &Arc<Snapshot>,
    name: &str,
    parameters: [(&str, Value); N],
    actions: Vec<Action>,
) -> Result<()> {
    let operation = Operation {
        name: name.into(),
        parameters: parameters
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect(),
        metrics: HashMap::new(),
        blind_append: false,
    };
    handle
        .commit(snapshot, operation, actions)
        .await
        .map_err(external)?;
    Ok(())
}

/// Why `column` cannot be dropped from `snapshot`'s table, if something depends on it.
fn dropping_refused(snapshot: &Snapshot, column: &str) -> Result<Option<String>> {
    if primary_key(snapshot)?
        .unwrap_or_default()
        .iter()
        .any(|c| c == column)
    {
        return Ok(Some("it is in the table's PRIMARY KEY".into()));
    }
    let unique: Vec<Vec<String>> = declared(snapshot, UNIQUE_PROPERTY)?.unwrap_or_default();
    if unique.iter().flatten().any(|c| c == column) {
        return Ok(Some("it is in a UNIQUE constraint of the table".into()));
    }
    let partitioning: Option<Partitioning> = declared(snapshot, PARTITIONING_PROPERTY)?;
    if partitioning.is_some_and(|p| p.column() == column) {
        return Ok(Some("the table is partitioned by it".into()));
    }
    let indexes = table_indexes(snapshot).map_err(external)?;
    if let Some(index) = indexes
        .iter()
        .find(|i| i.columns.iter().any(|c| c == column))
    {
        return Ok(Some(format!(
            "index {} uses it (DROP INDEX {} first)",
            index.name, index.name
        )));
    }
    Ok(None)
}

/// `ALTER TABLE … DROP COLUMN c[, …]`: one metadata commit (turning column mapping on first if
/// needed) that removes the columns from the schema; their values stay in the data files,
/// unread, until the files are rewritten. Each column comes with whether it may be missing (`IF
/// EXISTS`). Returns the number dropped.
pub async fn drop_columns(
    handle: &Arc<TableHandle>,
    table: &str,
    columns: &[(String, bool)],
) -> Result<usize> {
    let _turn = handle.lock_for_write().await.map_err(external)?;
    let snapshot = handle.refresh().await.map_err(external)?;
    let (mut fields, mut metadata, upgrade) = mapped_columns(&snapshot);
    let mut dropped = Vec::new();
    for (column, if_exists) in columns {
        let Some(index) = fields.iter().position(|f| f.name() == column) else {
            if *if_exists {
                continue;
            }
            return Err(no_column(table, column));
        };
        if let Some(reason) = dropping_refused(&snapshot, column)? {
            return Err(TableError::Invalid(format!(
                "cannot drop column '{column}' of {table}: {reason}"
            ))
            .into());
        }
        fields.remove(index);
        dropped.push(column.clone());
    }
    if dropped.is_empty() {
        return Ok(0);
    }
    if fields.is_empty() {
        return Err(TableError::Invalid(format!(
            "cannot drop every column of {table} (DROP TABLE drops the table)"
        ))
        .into());
    }
    metadata.schema_string = delta_schema_string(&Schema::new(fields)).map_err(external)?;
    for key in [DEFAULTS_PROPERTY, STATISTICS_PROPERTY] {
        edit_property(&mut metadata, key, |entries| {
            if let Some(object) = entries.as_object_mut() {
                for column in &dropped {
                    object.remove(column);
                }
            }
        })?;
    }
    let count = dropped.len();
    let actions = upgrade.into_iter().chain([Action::Metadata(metadata)]);
    let parameters = [("columns", json!(dropped))];
    commit_change(
        handle,
        &snapshot,
        "DROP COLUMNS",
        parameters,
        actions.collect(),
    )
    .await?;
    Ok(count)
}

/// Whether Delta's type widening allows a column of type `from` to become `to`.
pub fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let integer_rank = |t: &DataType| match t {
        Int8 => Some(1),
        Int16 => Some(2),
        Int32 => Some(3),
        Int64 => Some(4),
        _ => None,
    };
    // Integer digits a decimal must keep for each integer type.
    let integer_digits = |t: &DataType| match t {
        Int8 | Int16 | Int32 => Some(10),
        Int64 => Some(20),
        _ => None,
    };
    match (from, to) {
        (Float32, Float64) => true,
        (Int8 | Int16 | Int32, Float64) => true,
        (Date32, Timestamp(_, None)) => true,
        (Decimal128(p, s), Decimal128(p2, s2)) => {
            p2 >= p && s2 >= s && i16::from(*p2) - i16::from(*p) >= i16::from(*s2 - *s)
        }
        (_, Decimal128(p2, s2)) => {
            integer_digits(from).is_some_and(|digits| i16::from(*p2) - i16::from(*s2) >= digits)
        }
        _ => match (integer_rank(from), integer_rank(to)) {
            (Some(a), Some(b)) => b > a,
            _ => false,
        },
    }
}

/// The metadata of `field` with the change `from` → `to` added to its type history.
fn with_type_change(field: &Field, from: &DataType, to: &DataType) -> Result<Field> {
    let mut changes: Vec<Value> = field
        .metadata()
        .get(TYPE_CHANGES)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    changes.push(json!({
        "fromType": delta_type_name(from).map_err(external)?,
        "toType": delta_type_name(to).map_err(external)?,
    }));
    let mut metadata = field.metadata().clone();
    metadata.insert(TYPE_CHANGES.to_string(), Value::Array(changes).to_string());
    Ok(field
        .clone()
        .with_data_type(to.clone())
        .with_metadata(metadata))
}
