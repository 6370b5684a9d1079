//! `CREATE TABLE` (its columns, keys, defaults, partitioning and TBLPROPERTIES), `ALTER TABLE`,
//! `DROP TABLE` and `DESCRIBE`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use datafusion::common::DFSchema;
use datafusion::sql::sqlparser::ast::{self, ColumnOption};

use super::declaration::declared;
use super::{Engine, EngineError, Outcome, Session, drop_outcome};
use crate::catalog::{CatalogError, column_type_name};
use crate::engine::Listing;
use crate::engine::sql::{TableName, normalize, table_name};
use crate::engine::types::column_field;
use crate::table::partitioning::{PARTITIONING_PROPERTY, Partitioner, Partitioning};
use crate::table::{
    DEFAULTS_PROPERTY, INDEXES_PROPERTY, IndexDef, PRIMARY_KEY_PROPERTY, UNIQUE_PROPERTY,
    properties, set_properties,
};

impl Engine {
    pub(super) async fn create_table(
        &self,
        session: &Session,
        create: &ast::CreateTable,
        partitioning: Option<Partitioning>,
    ) -> Result<Outcome, EngineError> {
        if create.query.is_some() {
            return Err(EngineError::NotSupported("CREATE TABLE … AS SELECT".into()));
        }
        if let Some(expr) = &create.partition_by {
            return Err(EngineError::InvalidInput(format!(
                "PARTITION BY {expr}: expected PARTITION BY HASH (column) or PARTITION BY RANGE (column)"
            )));
        }
        let mut primary_key: Vec<String> = Vec::new();
        let mut unique: Vec<Vec<String>> = Vec::new();
        for constraint in &create.constraints {
            match constraint {
                ast::TableConstraint::PrimaryKey(pk) if primary_key.is_empty() => {
                    primary_key = index_columns(&pk.columns, "PRIMARY KEY")?;
                }
                ast::TableConstraint::PrimaryKey(_) => {
                    return Err(EngineError::InvalidInput(
                        "a table has at most one PRIMARY KEY".into(),
                    ));
                }
                ast::TableConstraint::Unique(key) => {
                    unique.push(index_columns(&key.columns, "UNIQUE")?);
                }
                other => {
                    return Err(EngineError::NotSupported(format!(
                        "table constraint {other} (MiniDB enforces PRIMARY KEY, UNIQUE, NOT NULL and DEFAULT)"
                    )));
                }
            }
        }
        let mut defaults = serde_json::Map::new();
        if create.columns.is_empty() {
            return Err(EngineError::InvalidInput(
                "a table needs at least one column".into(),
            ));
        }
        let name = table_name(&create.name)?;
        let database = session.database_or_current(name.database);
        let mut fields: Vec<Field> = Vec::with_capacity(create.columns.len());
        for column in &create.columns {
            let column_name = normalize(&column.name);
            if fields
                .iter()
                .any(|f| f.name().eq_ignore_ascii_case(&column_name))
            {
                return Err(EngineError::InvalidInput(format!(
                    "column '{column_name}' is declared twice"
                )));
            }
            let mut nullable = true;
            for option in &column.options {
                match &option.option {
                    ColumnOption::NotNull => nullable = false,
                    ColumnOption::PrimaryKey(_) if primary_key.is_empty() => {
                        primary_key.push(column_name.clone());
                    }
                    ColumnOption::PrimaryKey(_) => {
                        return Err(EngineError::InvalidInput(
                            "a table has at most one PRIMARY KEY".into(),
                        ));
                    }
                    ColumnOption::Null => nullable = true,
                    ColumnOption::Unique(_) => unique.push(vec![column_name.clone()]),
                    ColumnOption::Default(expr) => {
                        let text = expr.to_string();
                        let parsed = self
                            .state
                            .create_logical_expr(&text, &DFSchema::empty())
                            .map_err(|e| {
                                EngineError::InvalidInput(format!(
                                    "DEFAULT of '{column_name}' must be a constant expression: {}",
                                    e.strip_backtrace()
                                ))
                            })?;
                        if !parsed.column_refs().is_empty() {
                            return Err(EngineError::InvalidInput(format!(
                                "DEFAULT of '{column_name}' cannot name columns"
                            )));
                        }
                        defaults.insert(column_name.clone(), text.into());
                    }
                    other => {
                        return Err(EngineError::NotSupported(format!(
                            "column option {other} on '{column_name}' (MiniDB enforces PRIMARY KEY, UNIQUE, NOT NULL and DEFAULT)"
                        )));
                    }
                }
            }
            fields.push(column_field(&column_name, &column.data_type, nullable)?);
        }
        for key in unique.iter().flatten() {
            if !fields.iter().any(|f| f.name() == key) {
                return Err(EngineError::InvalidInput(format!(
                    "UNIQUE column '{key}' is not a column of the table"
                )));
            }
        }
        for key in &primary_key {
            let Some(field) = fields.iter_mut().find(|f| f.name() == key) else {
                return Err(EngineError::InvalidInput(format!(
                    "PRIMARY KEY column '{key}' is not a column of the table"
                )));
            };
            // Key columns are NOT NULL, which the Delta schema itself records.
            *field = field.clone().with_nullable(false);
        }
        let schema = Schema::new(fields);
        let mut properties = Vec::new();
        // Every key gets an index, which answers "does this key exist?" for its checks.
        let mut indexes: Vec<IndexDef> = Vec::new();
        if !primary_key.is_empty() {
            properties.push((PRIMARY_KEY_PROPERTY, serde_json::json!(primary_key)));
            let key = primary_key.clone();
            indexes.push(IndexDef::for_constraint(&name.table, "PRIMARY KEY", key));
        }
        if !unique.is_empty() {
            properties.push((UNIQUE_PROPERTY, serde_json::json!(unique)));
        }
        for columns in &unique {
            if !indexes.iter().any(|i| &i.columns == columns) {
                let key = columns.clone();
                indexes.push(IndexDef::for_constraint(&name.table, "UNIQUE", key));
            }
        }
        if !indexes.is_empty() {
            let json = serde_json::to_value(&indexes)
                .map_err(|e| EngineError::InvalidInput(format!("index definitions: {e}")))?;
            properties.push((INDEXES_PROPERTY, json));
        }
        if !defaults.is_empty() {
            properties.push((DEFAULTS_PROPERTY, serde_json::Value::Object(defaults)));
        }
        if let Some(partitioning) = partitioning {
            Partitioner::new(partitioning.clone(), &schema).map_err(EngineError::InvalidInput)?;
            let json = serde_json::to_value(&partitioning)
                .map_err(|e| EngineError::InvalidInput(format!("partitioning: {e}")))?;
            properties.push((PARTITIONING_PROPERTY, json));
        }
        let mut properties: Vec<(String, String)> = properties
            .into_iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        properties.extend(table_properties(&create.table_options)?);
        match self
            .catalog
            .create_table(&database, &name.table, &schema, properties)
            .await
        {
            Ok(_) => Ok(Outcome::TableCreated(name.table)),
            Err(CatalogError::TableExists(t)) if create.if_not_exists => {
                Ok(Outcome::NothingToDo(format!("Table {t} already exists")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `ALTER TABLE t SET TBLPROPERTIES ('key' = 'value', …)`, the only ALTER TABLE so far.
    pub(super) async fn alter_table(
        &self,
        session: &Session,
        alter: &ast::AlterTable,
    ) -> Result<Outcome, EngineError> {
        let [ast::AlterTableOperation::SetTblProperties { table_properties }] =
            alter.operations.as_slice()
        else {
            return Err(EngineError::NotSupported(format!(
                "{alter} (ALTER TABLE supports SET TBLPROPERTIES only)"
            )));
        };
        let name = table_name(&alter.name)?;
        let (_, handle) = self.named_table(session, &name).await?;
        let set = property_list(table_properties)?;
        let count = set.len();
        set_properties(&handle, set).await?;
        Ok(Outcome::TableAltered {
            table: name.table,
            properties: count,
        })
    }

    pub(super) async fn describe(
        &self,
        session: &Session,
        name: TableName,
    ) -> Result<Outcome, EngineError> {
        let mut keys: HashMap<String, &str> = HashMap::new();
        let mut defaults: HashMap<String, String> = HashMap::new();
        let (database, schema) = match self.named_table(session, &name).await {
            Ok((database, handle)) => {
                let snapshot = handle.cached();
                let unique: Vec<Vec<String>> =
                    declared(&snapshot, UNIQUE_PROPERTY)?.unwrap_or_default();
                for key in unique {
                    if let [column] = key.as_slice() {
                        keys.insert(column.clone(), "UNI");
                    }
                }
                let primary_key: Vec<String> =
                    declared(&snapshot, PRIMARY_KEY_PROPERTY)?.unwrap_or_default();
                keys.extend(primary_key.into_iter().map(|column| (column, "PRI")));
                defaults = declared(&snapshot, DEFAULTS_PROPERTY)?.unwrap_or_default();
                (database, Arc::clone(snapshot.schema()))
            }
            Err(e) => {
                // A view's columns are those its query returns.
                let database = session.database_or_current(name.database.clone());
                match self.catalog.view(&database, &name.table).await {
                    Ok(Some(_)) => {
                        let schema = self.view_schema(&database, &name.table).await?;
                        (database, Arc::new(schema))
                    }
                    _ => return Err(e),
                }
            }
        };
        let fields = schema.fields();
        let batch = RecordBatch::try_new(
            Outcome::columns_schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    fields.iter().map(|f| f.name()),
                )),
                Arc::new(StringArray::from_iter_values(
                    fields.iter().map(|f| column_type_name(f)),
                )),
                Arc::new(StringArray::from_iter_values(
                    fields
                        .iter()
                        .map(|f| if f.is_nullable() { "YES" } else { "NO" }),
                )),
                Arc::new(StringArray::from_iter(
                    fields.iter().map(|f| keys.get(f.name()).copied()),
                )),
                Arc::new(StringArray::from_iter(
                    fields.iter().map(|f| defaults.get(f.name()).cloned()),
                )),
            ],
        )
        .map_err(|e| EngineError::DataFusion(e.into()))?;
        Ok(Outcome::Listing(
            Listing::Columns {
                table: format!("{database}.{}", name.table),
            },
            batch,
        ))
    }

    pub(super) async fn drop_tables(
        &self,
        session: &Session,
        names: Vec<TableName>,
        if_exists: bool,
    ) -> Result<Outcome, EngineError> {
        let mut dropped = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            let database = session.database_or_current(name.database);
            match self.catalog.drop_table(&database, &name.table).await {
                Ok(()) => dropped.push(name.table),
                Err(e) => match self.table_error(&database, &name.table, e).await {
                    EngineError::Catalog(CatalogError::TableNotFound(t)) if if_exists => {
                        missing.push(t)
                    }
                    e => return Err(e),
                },
            }
        }
        Ok(drop_outcome(
            "Table",
            dropped,
            missing,
            Outcome::TableDropped,
        ))
    }
}

/// The plain column names of a PRIMARY KEY or UNIQUE constraint.
fn index_columns(columns: &[ast::IndexColumn], kind: &str) -> Result<Vec<String>, EngineError> {
    columns
        .iter()
        .map(|column| match &column.column.expr {
            ast::Expr::Identifier(ident) => Ok(normalize(ident)),
            other => Err(EngineError::InvalidInput(format!(
                "{kind} lists columns, not expressions like {other}"
            ))),
        })
        .collect()
}

/// The `TBLPROPERTIES ('key' = 'value', …)` of a CREATE TABLE, checked.
fn table_properties(
    options: &ast::CreateTableOptions,
) -> Result<Vec<(String, String)>, EngineError> {
    match options {
        ast::CreateTableOptions::None => Ok(Vec::new()),
        ast::CreateTableOptions::TableProperties(options) => property_list(options),
        other => Err(EngineError::NotSupported(format!(
            "table options {other}; set table properties with TBLPROPERTIES ('key' = 'value', …)"
        ))),
    }
}

/// Key/value pairs of a property list, each checked with [`properties::check`].
fn property_list(options: &[ast::SqlOption]) -> Result<Vec<(String, String)>, EngineError> {
    options
        .iter()
        .map(|option| {
            let ast::SqlOption::KeyValue { key, value } = option else {
                return Err(EngineError::InvalidInput(format!(
                    "expected 'key' = 'value' in a property list, found {option}"
                )));
            };
            let value = match value {
                ast::Expr::Value(v) => match &v.value {
                    ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => {
                        s.clone()
                    }
                    ast::Value::Number(n, _) => n.clone(),
                    ast::Value::Boolean(b) => b.to_string(),
                    other => other.to_string(),
                },
                other => other.to_string(),
            };
            properties::check(&key.value, &value).map_err(EngineError::InvalidInput)?;
            Ok((key.value.clone(), value))
        })
        .collect()
}
