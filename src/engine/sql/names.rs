//! Names as statements write them: identifiers and table names.

use datafusion::sql::sqlparser::ast::{Ident, ObjectName, ObjectNamePart};

use crate::engine::EngineError;

/// The name an identifier denotes: unquoted identifiers are case-insensitive (lower-cased),
/// quoted ones are taken as written — the same rule DataFusion applies.
pub fn normalize(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// A table name as written: optionally qualified by a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub database: Option<String>,
    pub table: String,
}

/// Splits `db.table` / `table` from a sqlparser object name.
pub fn table_name(name: &ObjectName) -> Result<TableName, EngineError> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Ok(normalize(ident)),
            other => Err(EngineError::InvalidInput(format!(
                "unexpected name part {other}"
            ))),
        })
        .collect::<Result<_, _>>()?;
    match parts.as_slice() {
        [table] => Ok(TableName {
            database: None,
            table: table.clone(),
        }),
        [database, table] => Ok(TableName {
            database: Some(database.clone()),
            table: table.clone(),
        }),
        _ => Err(EngineError::InvalidInput(format!(
            "table name {name} has too many parts; use table or database.table"
        ))),
    }
}
