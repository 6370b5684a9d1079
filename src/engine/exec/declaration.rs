//! `SHOW CREATE TABLE t`: the statements that declare a table as it is now, ready to run again
//! — its `CREATE TABLE` (columns with their declared types, `NOT NULL`, `DEFAULT`, keys and
//! foreign keys, partitioning, table properties), then a `CREATE INDEX` per index not made for a key; for a
//! view, its `CREATE VIEW`.

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::keywords::{
    ALL_KEYWORDS, ALL_KEYWORDS_INDEX, RESERVED_FOR_COLUMN_ALIAS, RESERVED_FOR_TABLE_ALIAS,
};
use serde::de::DeserializeOwned;

use super::{Engine, EngineError, Outcome, Session};
use crate::catalog::{CatalogError, ViewDef, column_type_name};
use crate::engine::Listing;
use crate::engine::sql::TableName;
use crate::table::foreign_keys::{OnDelete, foreign_keys};
use crate::table::partitioning::{PARTITIONING_PROPERTY, Partitioning};
use crate::table::{
    DEFAULTS_PROPERTY, PRIMARY_KEY_PROPERTY, UNIQUE_PROPERTY, properties, table_indexes,
};
use crate::txlog::{ENABLE_DELETION_VECTORS, Snapshot};

impl Engine {
    pub(super) async fn show_create_table(
        &self,
        session: &Session,
        name: TableName,
    ) -> Result<Outcome, EngineError> {
        let statements = match self.named_table(session, &name).await {
            Ok((database, handle)) => table_statements(&database, &name.table, &handle.cached())?,
            Err(e) => {
                let database = session.database_or_current(name.database.clone());
                match self.catalog.view(&database, &name.table).await {
                    Ok(Some(view)) => vec![view_statement(&database, &view)],
                    _ => return Err(e),
                }
            }
        };
        Ok(Outcome::names(Listing::Statements, "statement", statements))
    }
}

/// The CREATE TABLE of the table `database.table` as of `snapshot`, and its CREATE INDEXes.
fn table_statements(
    database: &str,
    table: &str,
    snapshot: &Snapshot,
) -> Result<Vec<String>, EngineError> {
    let configuration = &snapshot.metadata().configuration;
    let primary_key: Vec<String> = declared(snapshot, PRIMARY_KEY_PROPERTY)?.unwrap_or_default();
    let unique: Vec<Vec<String>> = declared(snapshot, UNIQUE_PROPERTY)?.unwrap_or_default();
    let defaults: BTreeMap<String, String> =
        declared(snapshot, DEFAULTS_PROPERTY)?.unwrap_or_default();
    let partitioning: Option<Partitioning> = declared(snapshot, PARTITIONING_PROPERTY)?;

    let mut items: Vec<String> = snapshot
        .schema()
        .fields()
        .iter()
        .map(|field| {
            let mut item = format!("{} {}", ident(field.name()), column_type_name(field));
            // Key columns are NOT NULL by being keys.
            if !field.is_nullable() && !primary_key.contains(field.name()) {
                item.push_str(" NOT NULL");
            }
            if let Some(default) = defaults.get(field.name()) {
                item.push_str(" DEFAULT ");
                item.push_str(default);
            }
            item
        })
        .collect();
    if !primary_key.is_empty() {
        items.push(format!("PRIMARY KEY ({})", idents(&primary_key)));
    }
    items.extend(unique.iter().map(|key| format!("UNIQUE ({})", idents(key))));
    for key in foreign_keys(snapshot)? {
        let (parent_database, parent_table) =
            key.parent.split_once('.').unwrap_or(("", &key.parent));
        let mut item = format!(
            "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {}.{} ({})",
            ident(&key.name),
            idents(&key.columns),
            ident(parent_database),
            ident(parent_table),
            idents(&key.parent_columns)
        );
        if key.on_delete != OnDelete::NoAction {
            item.push_str(&format!(" ON DELETE {}", key.on_delete.sql()));
        }
        items.push(item);
    }
    let name = format!("{}.{}", ident(database), ident(table));
    let mut create = format!("CREATE TABLE {name} ({})", items.join(", "));
    if let Some(partitioning) = &partitioning {
        create.push(' ');
        create.push_str(&partition_clause(partitioning));
    }
    let set: BTreeMap<&str, &str> = configuration
        .iter()
        .filter(|(key, _)| !properties::is_managed(key))
        .filter_map(|(key, value)| Some((key.as_str(), value.as_deref()?)))
        // Every table MiniDB creates has it.
        .filter(|(key, value)| !(*key == ENABLE_DELETION_VECTORS && *value == "true"))
        .collect();
    if !set.is_empty() {
        let set: Vec<String> = set
            .iter()
            .map(|(key, value)| format!("{} = {}", literal(key), literal(value)))
            .collect();
        create.push_str(&format!(" TBLPROPERTIES ({})", set.join(", ")));
    }

    let mut statements = vec![create];
    let indexes = table_indexes(snapshot).map_err(CatalogError::from)?;
    for index in indexes.iter().filter(|index| index.constraint.is_none()) {
        statements.push(format!(
            "CREATE {}INDEX {} ON {name} ({})",
            if index.unique { "UNIQUE " } else { "" },
            ident(&index.name),
            idents(&index.columns)
        ));
    }
    Ok(statements)
}

/// The CREATE VIEW of `view` in `database`.
fn view_statement(database: &str, view: &ViewDef) -> String {
    let columns = match view.columns.as_slice() {
        [] => String::new(),
        columns => format!(" ({})", idents(columns)),
    };
    format!(
        "CREATE VIEW {}.{}{columns} AS {}",
        ident(database),
        ident(&view.name),
        view.query
    )
}

/// The value of one of the table properties MiniDB keeps its declarations in (JSON).
pub(super) fn declared<T: DeserializeOwned>(
    snapshot: &Snapshot,
    key: &str,
) -> Result<Option<T>, EngineError> {
    Ok(properties::declared(snapshot, key)?)
}

/// `PARTITION BY HASH (c) PARTITIONS n` or `PARTITION BY RANGE (c) [(PARTITION p VALUES LESS
/// THAN (bound), …)]`.
fn partition_clause(partitioning: &Partitioning) -> String {
    match partitioning {
        Partitioning::Hash { column, partitions } => {
            format!(
                "PARTITION BY HASH ({}) PARTITIONS {partitions}",
                ident(column)
            )
        }
        Partitioning::Range { column, partitions } => {
            let mut clause = format!("PARTITION BY RANGE ({})", ident(column));
            if !partitions.is_empty() {
                let partitions: Vec<String> = partitions
                    .iter()
                    .map(|p| {
                        let bound = match &p.less_than {
                            None => "MAXVALUE".to_string(),
                            Some(n) if is_number(n) => n.clone(),
                            Some(text) => literal(text),
                        };
                        format!("PARTITION {} VALUES LESS THAN ({bound})", ident(&p.name))
                    })
                    .collect();
                clause.push_str(&format!(" ({})", partitions.join(", ")));
            }
            clause
        }
    }
}

/// Whether `text` is a plain decimal number, as a bound may be written unquoted.
fn is_number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.chars().filter(|c| *c == '.').count() <= 1
        && digits.chars().any(|c| c.is_ascii_digit())
}

/// A name as SQL reads it back: bare when it is a plain lower-case word that is not reserved,
/// double-quoted otherwise.
fn ident(name: &str) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && !is_reserved(name) {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Whether `word` is a keyword that cannot name a column or table unquoted.
fn is_reserved(word: &str) -> bool {
    let upper = word.to_ascii_uppercase();
    ALL_KEYWORDS.binary_search(&upper.as_str()).is_ok_and(|i| {
        let keyword = ALL_KEYWORDS_INDEX[i];
        RESERVED_FOR_COLUMN_ALIAS.contains(&keyword) || RESERVED_FOR_TABLE_ALIAS.contains(&keyword)
    })
}

fn idents(names: &[String]) -> String {
    names
        .iter()
        .map(|n| ident(n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_only_when_they_must_be() {
        assert_eq!(ident("orders"), "orders");
        assert_eq!(ident("name"), "name");
        assert_eq!(ident("order"), "\"order\"");
        assert_eq!(ident("select"), "\"select\"");
        assert_eq!(ident("Mixed"), "\"Mixed\"");
        assert_eq!(ident("two words"), "\"two words\"");
        assert_eq!(ident("say\"hi"), "\"say\"\"hi\"");
        assert_eq!(ident("1st"), "\"1st\"");
        assert_eq!(literal("O'Brien"), "'O''Brien'");
    }

    #[test]
    fn range_bounds_keep_numbers_bare() {
        let clause = partition_clause(&Partitioning::Range {
            column: "id".into(),
            partitions: vec![
                crate::table::partitioning::RangePartition {
                    name: "low".into(),
                    less_than: Some("-5".into()),
                },
                crate::table::partitioning::RangePartition {
                    name: "mid".into(),
                    less_than: Some("2024-01-01".into()),
                },
                crate::table::partitioning::RangePartition {
                    name: "high".into(),
                    less_than: None,
                },
            ],
        });
        assert_eq!(
            clause,
            "PARTITION BY RANGE (id) (PARTITION low VALUES LESS THAN (-5), \
             PARTITION mid VALUES LESS THAN ('2024-01-01'), PARTITION high VALUES LESS THAN (MAXVALUE))"
        );
    }
}
