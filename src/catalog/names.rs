//! Database and table names, which double as folder names in the object store.

use super::CatalogError;

/// The database every new session starts in; it always exists.
pub const DEFAULT_DATABASE: &str = "default";

/// Names reserved for catalogs MiniDB or DataFusion provide themselves.
const RESERVED: &[&str] = &["information_schema", "sys"];

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
    if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        return invalid("this name is reserved");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_safe_folder_names() {
        assert!(validate_name("users_2").is_ok());
        assert!(validate_name("../etc").is_err());
        assert!(validate_name("_delta_log").is_err());
        assert!(validate_name("sys").is_err());
        assert!(validate_name("").is_err());
    }
}
