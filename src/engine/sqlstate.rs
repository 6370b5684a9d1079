//! SQLSTATE codes: the five characters that say what class of error a statement ended with —
//! PostgreSQL's codes, which JDBC, ODBC and most SQL tools know — so that a program can branch
//! on a code instead of parsing a message. :7205 prints one after `ERROR`; Flight SQL sends it
//! in the `sqlstate` metadata of the failing call.
//!
//! The code follows the error's [`ErrorKind`], refined by what MiniDB's own message says
//! (messages are worded by MiniDB, see `wording`, so their forms are known).

use datafusion::common::DataFusionError;

use super::{EngineError, ErrorKind};

pub const SYNTAX_ERROR: &str = "42601";
pub const TOO_MANY_CONNECTIONS: &str = "53300";
pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
pub const INVALID_AUTHORIZATION: &str = "28000";
pub const INVALID_PASSWORD: &str = "28P01";
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
pub const NO_ACTIVE_TRANSACTION: &str = "25P01";

/// Codes for message forms, checked in order; the first whose pattern the message contains wins.
const BY_MESSAGE: &[(&str, &str)] = &[
    ("division by zero", "22012"),
    (" out of range", "22003"),
    ("invalid value '", "22P02"),
    ("does not fit column", "22P02"),
    ("is too long for column", "22001"),
    ("duplicate key violates", "23505"),
    ("violates foreign key", "23503"),
    ("cannot affect a row a second time", "21000"),
    ("is not null: null not allowed", "23502"),
    ("must appear in the group by clause", "42803"),
    ("cannot coerce", "42883"),
    ("is a system table", "42501"),
];

impl EngineError {
    /// The SQLSTATE code of the error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            EngineError::Syntax(_) => return SYNTAX_ERROR,
            EngineError::RolledBack(e) => return e.sqlstate(),
            EngineError::Busy(_) => return TOO_MANY_CONNECTIONS,
            EngineError::SchemaMismatch(_) => return "42804",
            _ => {}
        }
        let message = self.to_string().to_lowercase();
        let says = |text: &str| message.contains(text);
        let names = |object: &str| message.starts_with(&format!("{object} '"));
        match self.kind() {
            ErrorKind::InvalidInput => {
                if let Some((_, code)) = BY_MESSAGE.iter().find(|(text, _)| says(text)) {
                    code
                } else if says("column '") && says("does not exist") {
                    "42703"
                } else if names("function") || message.starts_with("function ") {
                    "42883"
                } else if self.is_data_error() {
                    "22000"
                } else {
                    "42000"
                }
            }
            ErrorKind::NotFound if names("database") => "3D000",
            ErrorKind::NotFound if names("table") || names("view") => {
                if says("has no version") {
                    "22023"
                } else {
                    "42P01"
                }
            }
            ErrorKind::NotFound => "42704",
            ErrorKind::AlreadyExists if names("database") => "42P04",
            ErrorKind::AlreadyExists => "42P07",
            ErrorKind::Conflict if says("lock") => "55P03",
            ErrorKind::Conflict => "40001",
            ErrorKind::NotSupported => FEATURE_NOT_SUPPORTED,
            ErrorKind::ResourcesExhausted => "53200",
            ErrorKind::Cancelled | ErrorKind::TimedOut => "57014",
            ErrorKind::DataLoss => "XX001",
            ErrorKind::Internal => "XX000",
        }
    }

    /// Whether the error is about a value the statement met while running (class 22) rather
    /// than about the statement itself (class 42).
    fn is_data_error(&self) -> bool {
        let EngineError::DataFusion(e) = self else {
            return false;
        };
        matches!(
            e.find_root(),
            DataFusionError::Execution(_) | DataFusionError::ArrowError(..)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CatalogError;

    #[test]
    fn codes_follow_the_class_and_the_message() {
        let invalid = |m: &str| EngineError::InvalidInput(m.into()).sqlstate();
        assert_eq!(invalid("division by zero"), "22012");
        assert_eq!(
            invalid("BIGINT out of range: 9223372036854775807 + 1"),
            "22003"
        );
        assert_eq!(
            invalid("column 'nope' does not exist (did you mean 'note'?)"),
            "42703"
        );
        assert_eq!(invalid("function 'f' does not exist"), "42883");
        assert_eq!(
            invalid("duplicate key violates PRIMARY KEY (id): (1) already exists"),
            "23505"
        );
        assert_eq!(
            invalid("column 'qty' is NOT NULL: NULL not allowed"),
            "23502"
        );
        assert_eq!(invalid("the default database cannot be dropped"), "42000");
        assert_eq!(
            EngineError::Syntax("syntax error".into()).sqlstate(),
            "42601"
        );
        assert_eq!(
            EngineError::NotSupported("MERGE".into()).sqlstate(),
            "0A000"
        );
        let catalog = |e: CatalogError| EngineError::Catalog(e).sqlstate();
        assert_eq!(catalog(CatalogError::DatabaseNotFound("d".into())), "3D000");
        assert_eq!(catalog(CatalogError::TableNotFound("d.t".into())), "42P01");
        assert_eq!(catalog(CatalogError::DatabaseExists("d".into())), "42P04");
        assert_eq!(catalog(CatalogError::TableExists("d.t".into())), "42P07");
        let execution = EngineError::DataFusion(DataFusionError::Execution("bad row".into()));
        assert_eq!(execution.sqlstate(), "22000");
    }
}
