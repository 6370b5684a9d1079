//! The engine's errors in MiniDB's words. DataFusion and Arrow describe a user's mistake in
//! their own terms — `Arrow error: Cast error: Cannot cast string 'x' to value of Int64 type`,
//! `Error during planning: table 'minidb.shop.ordrs' not found` — with their category as a
//! prefix, Arrow's type names and the catalog's name in table names. This module says the same
//! thing the way the user wrote it: SQL type names, tables as `database.table`, no prefixes.

use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use datafusion::common::{DataFusionError, SchemaError};

use crate::catalog::{CATALOG_NAME, split_as_of, sql_type_name};

/// DataFusion's refusal of `INSERT … ON CONFLICT`.
const INSERT_ON_CONFLICT: &str = "Insert-on clause not supported";
const INSERT_RETURNING: &str = "Insert-returning clause not supported";

/// `e` in MiniDB's words, when it is one of the errors worded here.
pub(super) fn reworded(e: &DataFusionError) -> Option<String> {
    match e {
        DataFusionError::ArrowError(e, _) => Some(arrow_error(e)),
        DataFusionError::Plan(message) => Some(plan_error(message)),
        DataFusionError::SchemaError(e, _) => Some(match e.as_ref() {
            SchemaError::FieldNotFound { field, .. } => {
                let mut text = format!("column '{}' does not exist", field.name);
                if let Some(closest) = suggestion(&e.to_string()) {
                    text.push_str(&format!(" (did you mean '{closest}'?)"));
                }
                text
            }
            other => sql_types(&other.to_string()),
        }),
        DataFusionError::Execution(message) => Some(sql_types(message)),
        _ => None,
    }
    .map(|text| signature_mismatch(&text).unwrap_or(text))
}

/// DataFusion's `Function 'sum' failed to match any signature, errors: …` (one error per
/// signature it tried, each naming the argument's type) as `function sum(VARCHAR) does not
/// exist`.
fn signature_mismatch(text: &str) -> Option<String> {
    let start = text.find("Function '")? + "Function '".len();
    let (name, rest) = text[start..].split_once("' failed to match any signature")?;
    let received: Vec<&str> = rest
        .split("(DataType: ")
        .skip(1)
        .filter_map(|s| s.split_once(')').map(|(t, _)| t))
        .collect();
    Some(match received.first() {
        Some(first) => format!(
            "function {name}({first}) does not exist: no form of {name} takes {first} arguments"
        ),
        None => format!("function {name} does not take these arguments"),
    })
}

/// Whether `e` refuses a statement MiniDB does not support (said as "not supported: …").
pub(super) fn is_unsupported(e: &DataFusionError) -> bool {
    matches!(e, DataFusionError::Plan(message)
        if message == INSERT_ON_CONFLICT || message == INSERT_RETURNING)
}

/// Whether `e` says a table does not exist (DataFusion plans a name its catalog does not know).
pub(super) fn is_unknown_table(e: &DataFusionError) -> bool {
    matches!(e, DataFusionError::Plan(message) if unknown_table(message).is_some())
}

fn arrow_error(e: &ArrowError) -> String {
    match e {
        ArrowError::DivideByZero => "division by zero".to_string(),
        ArrowError::CastError(message) => cast_error(message),
        ArrowError::ArithmeticOverflow(message) => {
            format!("value out of range: {}", sql_types(message))
        }
        ArrowError::ComputeError(message) | ArrowError::InvalidArgumentError(message) => {
            sql_types(message)
        }
        other => sql_types(&other.to_string()),
    }
}

/// Arrow's `Cannot cast string 'x' to value of Int64 type` as `invalid value 'x' for BIGINT`.
fn cast_error(message: &str) -> String {
    let parsed = message
        .strip_prefix("Cannot cast string ")
        .and_then(|rest| rest.rsplit_once(" to value of "))
        .and_then(|(value, target)| Some((value, target.strip_suffix(" type")?)));
    match parsed {
        Some((value, target)) => format!("invalid value {value} for {}", sql_types(target)),
        None => format!("cannot cast: {}", sql_types(&lowercase_first(message))),
    }
}

fn plan_error(message: &str) -> String {
    if let Some(table) = unknown_table(message) {
        // A table read as of a point in history is planned under a name of its own (`t@v3`).
        let table = split_as_of(table).map_or(table, |(table, _)| table);
        return format!("table '{table}' does not exist");
    }
    if let Some(rest) = message.strip_prefix("Invalid function '")
        && let Some((name, rest)) = rest.split_once('\'')
    {
        let mut text = format!("function '{name}' does not exist");
        if let Some(closest) = rest
            .split_once("Did you mean '")
            .and_then(|(_, s)| s.split_once('\''))
            .map(|(closest, _)| closest)
        {
            text.push_str(&format!(" (did you mean '{closest}'?)"));
        }
        return text;
    }
    if message.starts_with("Column in SELECT must be in GROUP BY")
        && let Some(column) = message
            .split_once("column \"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(name, _)| name.rsplit('.').next().unwrap_or(name))
    {
        return format!(
            "column '{column}' must appear in the GROUP BY clause or be used in an aggregate \
             function"
        );
    }
    if message == INSERT_ON_CONFLICT {
        return "not supported: INSERT … ON DUPLICATE KEY UPDATE (use ON CONFLICT)".to_string();
    }
    if message == INSERT_RETURNING {
        return "not supported: INSERT … RETURNING".to_string();
    }
    sql_types(&lowercase_first(message))
}

/// The table, as `database.table`, of DataFusion's `table 'minidb.db.t' not found`.
fn unknown_table(message: &str) -> Option<&str> {
    let name = message
        .strip_prefix("table '")?
        .strip_suffix("' not found")?;
    Some(
        name.strip_prefix(&format!("{CATALOG_NAME}."))
            .unwrap_or(name),
    )
}

/// The last part of the name in DataFusion's `Did you mean 'shop.orders.note'?`.
fn suggestion(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("Did you mean '")?;
    let (name, _) = rest.split_once("'?")?;
    Some(name.rsplit('.').next().unwrap_or(name).to_string())
}

/// `text` with Arrow's type names (`Int64`, `Utf8`, `Decimal128(10, 2)`,
/// `Timestamp(Microsecond, None)`) replaced by SQL's.
pub(super) fn sql_types(text: &str) -> String {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut quoted = false;
    while let Some(c) = text[at..].chars().next() {
        // Only whole words outside quotes: `my_Int64`, `xInt8` and `'Int64'` stay as they are.
        quoted ^= c == '\'';
        let starts_word = !quoted
            && c.is_ascii_alphabetic()
            && !text[..at].chars().next_back().is_some_and(is_word);
        if !starts_word {
            out.push(c);
            at += c.len_utf8();
            continue;
        }
        let end = text[at..]
            .find(|c: char| !is_word(c))
            .map_or(text.len(), |n| at + n);
        let word = &text[at..end];
        let after = &text[end..];
        let sql = parameterised_type(word, after).or_else(|| Some((simple_type(word)?, 0)));
        match sql {
            Some((sql, consumed)) => {
                out.push_str(&sql);
                at = end + consumed;
            }
            None => {
                out.push_str(word);
                at = end;
            }
        }
    }
    out
}

/// A type name `word` followed by parentheses: `Decimal128(p, s)` and `Timestamp(unit, zone)`
/// as SQL types, and a literal as DataFusion shows one in an expression (`Int64(1)`,
/// `Utf8("a")`) as SQL writes it (`1`, `'a'`); with how much of `after` (the text following the
/// word) the parentheses took.
fn parameterised_type(word: &str, after: &str) -> Option<(String, usize)> {
    let inner = after.strip_prefix('(')?;
    let mut depth = 0;
    let close = inner.find(|c| {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return true,
            ')' => depth -= 1,
            _ => {}
        }
        false
    })?;
    let parameters: Vec<&str> = inner[..close].split(',').map(str::trim).collect();
    let sql = match (word, parameters.as_slice()) {
        ("Timestamp", [_, "None"]) | ("Timestamp", [_]) => "TIMESTAMP".to_string(),
        ("Timestamp", [_, _]) => "TIMESTAMP WITH TIME ZONE".to_string(),
        ("Decimal128" | "Decimal256", [precision, scale]) => {
            format!("DECIMAL({precision},{scale})")
        }
        ("Utf8" | "LargeUtf8" | "Utf8View", [text]) => match text.strip_prefix('"') {
            Some(quoted) => format!("'{}'", quoted.strip_suffix('"').unwrap_or(quoted)),
            None => (*text).to_string(),
        },
        (_, [value]) if simple_type(word).is_some() => (*value).to_string(),
        _ => return None,
    };
    Some((sql, close + 2))
}

/// The SQL name of the Arrow type named `word` without parameters (`Int64` → `BIGINT`), when
/// the two differ.
fn simple_type(word: &str) -> Option<String> {
    let data_type: DataType = word.parse().ok()?;
    let sql = sql_type_name(&data_type);
    (sql != word).then_some(sql)
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        // An acronym (`SQL`, `NULL`) keeps its case.
        Some(first) if chars.clone().next().is_some_and(|c| c.is_uppercase()) => {
            std::iter::once(first).chain(chars).collect()
        }
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrow_type_names_become_sql_names() {
        assert_eq!(
            sql_types("Cannot coerce arithmetic expression Utf8 + Int64 to valid types"),
            "Cannot coerce arithmetic expression VARCHAR + BIGINT to valid types"
        );
        assert_eq!(
            sql_types(
                "from Decimal128(10, 2) to Timestamp(Microsecond, None) or Timestamp(Nanosecond, Some(\"UTC\"))"
            ),
            "from DECIMAL(10,2) to TIMESTAMP or TIMESTAMP WITH TIME ZONE"
        );
        // Literals as SQL writes them.
        assert_eq!(
            sql_types("HAVING clause references: Int64(5) > Int64(3) AND Utf8(\"a\") = Utf8(NULL)"),
            "HAVING clause references: 5 > 3 AND 'a' = NULL"
        );
        // Parts of other words and identifiers stay.
        assert_eq!(
            sql_types("column my_Int64 and xInt8 and Int8x, value 'Int64 x' of Int64"),
            "column my_Int64 and xInt8 and Int8x, value 'Int64 x' of BIGINT"
        );
    }

    #[test]
    fn engine_errors_are_reworded() {
        let arrow = |e| DataFusionError::ArrowError(Box::new(e), None);
        let text = |e: DataFusionError| reworded(&e).unwrap();
        assert_eq!(text(arrow(ArrowError::DivideByZero)), "division by zero");
        assert_eq!(
            text(arrow(ArrowError::CastError(
                "Cannot cast string 'x' to value of Int64 type".into()
            ))),
            "invalid value 'x' for BIGINT"
        );
        assert_eq!(
            text(DataFusionError::Plan(
                "table 'minidb.shop.ordrs' not found".into()
            )),
            "table 'shop.ordrs' does not exist"
        );
        assert!(is_unknown_table(&DataFusionError::Plan(
            "table 'minidb.shop.ordrs' not found".into()
        )));
        assert_eq!(
            text(DataFusionError::Plan(
                "Invalid function 'nosuchfn'.\nDid you mean 'position'?".into()
            )),
            "function 'nosuchfn' does not exist (did you mean 'position'?)"
        );
        assert_eq!(
            text(DataFusionError::Plan(
                "Column in SELECT must be in GROUP BY or an aggregate function: While expanding \
                 wildcard, column \"shop.orders.id\" must appear in the GROUP BY clause"
                    .into()
            )),
            "column 'id' must appear in the GROUP BY clause or be used in an aggregate function"
        );
        assert_eq!(
            text(DataFusionError::Plan(
                "internal error: Function 'sum' failed to match any signature, errors: Error \
                 during planning: Function 'sum' requires Decimal, but received String \
                 (DataType: Utf8).,Error during planning: …"
                    .into()
            )),
            "function sum(VARCHAR) does not exist: no form of sum takes VARCHAR arguments"
        );
        assert_eq!(
            text(DataFusionError::Plan(
                "Insert-on clause not supported".into()
            )),
            "not supported: INSERT … ON DUPLICATE KEY UPDATE (use ON CONFLICT)"
        );
        assert_eq!(
            text(DataFusionError::Plan(INSERT_RETURNING.into())),
            "not supported: INSERT … RETURNING"
        );
    }
}
