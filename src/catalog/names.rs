//! Database and table names, which double as folder names in the object store.

use super::CatalogError;

/// The database every new session starts in; it always exists.
pub const DEFAULT_DATABASE: &str = "default";

/// Names reserved for catalogs MiniDB or DataFusion provide themselves.
const RESERVED: &[&str] = &["information_schema", "sys"];

/// True when `database` is one MiniDB or DataFusion provides itself (`sys`,
/// `information_schema`): its tables can be read, never written.
pub fn is_reserved(database: &str) -> bool {
    RESERVED.contains(&database.to_ascii_lowercase().as_str())
}

/// Checks that `name` can be a database or table name: ASCII letters, digits and `_`, not
/// starting with `_` (hidden in Delta layouts), at most 128 characters.
pub fn validate_name(name: &str) -> Result<(), CatalogError> {
    let invalid = |reason| {
        Err(CatalogError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("names cannot be empty");
    }
    if name.len() > 128 {
        return invalid("names are at most 128 characters");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return invalid("use only letters, digits and '_'");
    }
    if name.starts_with('_') {
        return invalid("names cannot start with '_'");
    }
    if is_reserved(name) {
        return invalid("this name is reserved");
    }
    Ok(())
}

/// Separates a table name from a point in its history in a time-travel name.
const AS_OF_MARK: char = '@';

/// A point in a table's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    Version(i64),
    /// The newest version committed at or before this time (milliseconds since the epoch).
    Timestamp(i64),
}

/// The name under which a statement reads `table` as of `as_of`: `t@v3`, `t@t1767261600000`.
pub fn as_of_name(table: &str, as_of: AsOf) -> String {
    match as_of {
        AsOf::Version(v) => format!("{table}{AS_OF_MARK}v{v}"),
        AsOf::Timestamp(t) => format!("{table}{AS_OF_MARK}t{t}"),
    }
}

/// Splits a time-travel name into the table and its point in history; `None` for an ordinary
/// name.
pub fn split_as_of(name: &str) -> Option<(&str, AsOf)> {
    let (table, at) = name.split_once(AS_OF_MARK)?;
    let number = |text: &str| text.parse::<i64>().ok();
    let as_of = match at.split_at_checked(1)? {
        ("v", version) => AsOf::Version(number(version)?),
        ("t", millis) => AsOf::Timestamp(number(millis)?),
        _ => return None,
    };
    Some((table, as_of))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_travel_names_round_trip() {
        assert_eq!(
            split_as_of(&as_of_name("t", AsOf::Version(3))),
            Some(("t", AsOf::Version(3)))
        );
        assert_eq!(split_as_of("t@t5"), Some(("t", AsOf::Timestamp(5))));
        assert_eq!(split_as_of("t"), None);
        assert_eq!(split_as_of("t@x1"), None);
    }

    #[test]
    fn names_must_be_safe_folder_names() {
        assert!(validate_name("users_2").is_ok());
        assert!(validate_name("../etc").is_err());
        assert!(validate_name("_delta_log").is_err());
        assert!(validate_name("sys").is_err());
        assert!(validate_name("").is_err());
    }
}
