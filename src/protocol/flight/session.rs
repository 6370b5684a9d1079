//! The current database of a Flight SQL client, carried in a cookie or a header, and the
//! Flight session-option actions that read and change it.
//!
//! Session options: `catalog` is always `minidb`; `schema` is the current database. Setting
//! `schema` answers with the cookie that keeps the client there, so it lasts only for clients
//! that keep cookies (JDBC does by default; ADBC with its cookie middleware option).
//! arrow-flight has no types for these messages, so they are declared here as Flight.proto
//! defines them.

use std::collections::HashMap;

use tonic::Status;
use tonic::metadata::{MetadataMap, MetadataValue};

use crate::engine::{CATALOG_NAME, DEFAULT_DATABASE, Engine, Session};

/// Cookie set by `USE` and sent back by cookie-keeping clients.
pub const DATABASE_COOKIE: &str = "minidb_database";
/// Request header naming the database explicitly (wins over the cookie).
pub const DATABASE_HEADER: &str = "x-minidb-database";

/// The session a request runs in.
pub fn from_metadata(metadata: &MetadataMap) -> Session {
    if let Some(db) = metadata.get(DATABASE_HEADER).and_then(|v| v.to_str().ok()) {
        return Session::in_database(db.trim());
    }
    let from_cookie = metadata
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == DATABASE_COOKIE)
        .map(|(_, value)| value.to_string());
    from_cookie.map(Session::in_database).unwrap_or_default()
}

/// Adds the cookie that keeps the client in `session`'s database.
pub fn remember(metadata: &mut MetadataMap, session: &Session) {
    let cookie = format!("{DATABASE_COOKIE}={}; Path=/", session.database());
    // Database names are restricted to ASCII letters, digits and '_', always a valid header.
    if let Ok(value) = MetadataValue::try_from(cookie) {
        metadata.insert("set-cookie", value);
    }
}

/// Ends the client's session: the cookie is cleared, so it is back in `default`.
pub fn forget(metadata: &mut MetadataMap) {
    let cookie = format!("{DATABASE_COOKIE}=; Max-Age=0; Path=/");
    if let Ok(value) = MetadataValue::try_from(cookie) {
        metadata.insert("set-cookie", value);
    }
}

/// Flight's `SessionOptionValue`: one option's value, or none to erase the option.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionOptionValue {
    #[prost(oneof = "OptionValue", tags = "1, 2, 3, 4, 5")]
    pub option_value: Option<OptionValue>,
}

/// The kinds of value a session option can hold.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum OptionValue {
    #[prost(string, tag = "1")]
    String(String),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(sfixed64, tag = "3")]
    Int64(i64),
    #[prost(double, tag = "4")]
    Double(f64),
    #[prost(message, tag = "5")]
    StringList(StringListValue),
}

/// A list of strings as a session option value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringListValue {
    #[prost(string, repeated, tag = "1")]
    pub values: Vec<String>,
}

/// Body of the `SetSessionOptions` action.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SetSessionOptionsRequest {
    #[prost(map = "string, message", tag = "1")]
    pub session_options: HashMap<String, SessionOptionValue>,
}

/// Result of `SetSessionOptions`: the options that could not be set, with why.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SetSessionOptionsResult {
    #[prost(map = "string, message", tag = "1")]
    pub errors: HashMap<String, SetOptionError>,
}

/// Why one option was not set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SetOptionError {
    #[prost(enumeration = "SetOptionErrorValue", tag = "1")]
    pub value: i32,
}

/// Flight's `SetSessionOptionsResult.ErrorValue`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SetOptionErrorValue {
    Unspecified = 0,
    InvalidName = 1,
    InvalidValue = 2,
    Error = 3,
}

/// Result of `GetSessionOptions`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetSessionOptionsResult {
    #[prost(map = "string, message", tag = "1")]
    pub session_options: HashMap<String, SessionOptionValue>,
}

/// Result of `CloseSession`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CloseSessionResult {
    #[prost(enumeration = "CloseSessionStatus", tag = "1")]
    pub status: i32,
}

/// Flight's `CloseSessionResult.Status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CloseSessionStatus {
    Unspecified = 0,
    Closed = 1,
    Closing = 2,
    NotClosable = 3,
}

/// The options of `session`: the catalog and the current database.
pub fn options(session: &Session) -> GetSessionOptionsResult {
    let text = |s: &str| SessionOptionValue {
        option_value: Some(OptionValue::String(s.to_string())),
    };
    GetSessionOptionsResult {
        session_options: HashMap::from([
            ("catalog".to_string(), text(CATALOG_NAME)),
            ("schema".to_string(), text(session.database())),
        ]),
    }
}

/// Applies `request` to `session`: `schema` names an existing database (erasing it returns
/// to `default`), `catalog` can only be `minidb`. Options not set are reported in the result;
/// a `schema` naming no database fails the call with NOT_FOUND, as ADBC asks of an unknown
/// current schema, and sets nothing.
pub async fn set_options(
    engine: &Engine,
    session: &mut Session,
    request: SetSessionOptionsRequest,
) -> Result<SetSessionOptionsResult, Status> {
    if let Some(SessionOptionValue {
        option_value: Some(OptionValue::String(database)),
    }) = request.session_options.get("schema")
        && let Ok(false) = engine.database_exists(database).await
    {
        return Err(Status::not_found(format!(
            "schema (database) '{database}' does not exist"
        )));
    }
    let mut errors = HashMap::new();
    for (name, value) in request.session_options {
        let outcome = match (name.as_str(), value.option_value) {
            ("catalog", Some(OptionValue::String(catalog))) if catalog == CATALOG_NAME => Ok(()),
            ("schema", None) => {
                *session = Session::in_database(DEFAULT_DATABASE);
                Ok(())
            }
            ("schema", Some(OptionValue::String(database))) => {
                match engine.database_exists(&database).await {
                    Ok(true) => {
                        *session = Session::in_database(database);
                        Ok(())
                    }
                    Ok(false) => Err(SetOptionErrorValue::InvalidValue),
                    Err(_) => Err(SetOptionErrorValue::Error),
                }
            }
            ("catalog" | "schema", _) => Err(SetOptionErrorValue::InvalidValue),
            _ => Err(SetOptionErrorValue::InvalidName),
        };
        if let Err(error) = outcome {
            errors.insert(
                name,
                SetOptionError {
                    value: error as i32,
                },
            );
        }
    }
    Ok(SetSessionOptionsResult { errors })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_wins_over_cookie_and_default_applies() {
        let mut metadata = MetadataMap::new();
        assert_eq!(from_metadata(&metadata), Session::default());
        metadata.insert("cookie", "a=b; minidb_database=shop".parse().unwrap());
        assert_eq!(from_metadata(&metadata).database(), "shop");
        metadata.insert(DATABASE_HEADER, "other".parse().unwrap());
        assert_eq!(from_metadata(&metadata).database(), "other");
    }
}
