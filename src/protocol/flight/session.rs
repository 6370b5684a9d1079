//! The current database of a Flight SQL client, carried in a cookie or a header, and the
//! Flight session-option actions that read and change it.
//!
//! Session options: `catalog` is always `minidb`; `schema` is the current database. Setting
//! `schema` answers with the cookie that keeps the client there, so it lasts only for clients
//! that keep cookies (JDBC does by default; ADBC with its cookie middleware option).
//! arrow-flight has no types for these messages, so they are declared here as Flight.proto
//! defines them.

use std::collections::HashMap;
use std::time::Duration;

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Status};

use crate::engine::{CATALOG_NAME, DEFAULT_DATABASE, Engine, Session, parse_duration};
use crate::protocol::grpc_auth::Caller;

/// Cookie set by `USE` and sent back by cookie-keeping clients.
pub const DATABASE_COOKIE: &str = "minidb_database";
/// Request header naming the database explicitly (wins over the cookie).
pub const DATABASE_HEADER: &str = "x-minidb-database";

/// Cookie set by `SET statement_timeout` (milliseconds) and sent back by cookie-keeping clients.
pub const TIMEOUT_COOKIE: &str = "minidb_statement_timeout";
/// Request header setting the statement timeout explicitly (`5s`, `1500`; wins over the cookie).
pub const TIMEOUT_HEADER: &str = "x-minidb-statement-timeout";

/// The session `request` runs in: as [`from_metadata`] reads it, run by the request's user.
pub fn from_request<T>(request: &Request<T>) -> Session {
    from_metadata(request.metadata()).with_origin("flight", caller(request))
}

/// The user who sent `request`, when users are configured (see `grpc_auth`).
pub fn caller<T>(request: &Request<T>) -> Option<String> {
    request
        .extensions()
        .get::<Caller>()
        .map(|Caller(user)| user.clone())
}

/// The session a request runs in: its database and statement timeout, from the request's
/// headers, else its cookies.
pub fn from_metadata(metadata: &MetadataMap) -> Session {
    let header = |name: &str| {
        metadata
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
    };
    let cookies: HashMap<String, String> = metadata
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let database = header(DATABASE_HEADER).or_else(|| cookies.get(DATABASE_COOKIE).cloned());
    let mut session = database
        .map(Session::in_database)
        .unwrap_or_default()
        .with_origin("flight", None);
    let timeout = header(TIMEOUT_HEADER).or_else(|| cookies.get(TIMEOUT_COOKIE).cloned());
    // A value that does not read is ignored here; SET statement_timeout names the mistake.
    if let Some(Ok(timeout)) = timeout.map(|t| parse_duration(&t)) {
        session.set_statement_timeout(Some(timeout));
    }
    session
}

/// Adds the cookies that keep the client in `session`'s database and statement timeout.
pub fn remember(metadata: &mut MetadataMap, session: &Session) {
    let mut cookies = vec![format!("{DATABASE_COOKIE}={}; Path=/", session.database())];
    cookies.push(match session.statement_timeout() {
        Some(timeout) => format!("{TIMEOUT_COOKIE}={}; Path=/", timeout.as_millis()),
        None => format!("{TIMEOUT_COOKIE}=; Max-Age=0; Path=/"),
    });
    // Database names are restricted to ASCII letters, digits and '_', always a valid header.
    for cookie in cookies {
        if let Ok(value) = MetadataValue::try_from(cookie) {
            metadata.append("set-cookie", value);
        }
    }
}

/// Ends the client's session: the cookie is cleared, so it is back in `default`.
pub fn forget(metadata: &mut MetadataMap) {
    for name in [DATABASE_COOKIE, TIMEOUT_COOKIE] {
        if let Ok(value) = MetadataValue::try_from(format!("{name}=; Max-Age=0; Path=/")) {
            metadata.append("set-cookie", value);
        }
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

/// The options of `session`: the catalog, the current database and, when the session set
/// one, its statement timeout in milliseconds.
pub fn options(session: &Session) -> GetSessionOptionsResult {
    let text = |s: &str| SessionOptionValue {
        option_value: Some(OptionValue::String(s.to_string())),
    };
    let mut session_options = HashMap::from([
        ("catalog".to_string(), text(CATALOG_NAME)),
        ("schema".to_string(), text(session.database())),
    ]);
    if let Some(timeout) = session.statement_timeout() {
        let ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        session_options.insert(
            "statement_timeout".to_string(),
            SessionOptionValue {
                option_value: Some(OptionValue::Int64(ms)),
            },
        );
    }
    GetSessionOptionsResult { session_options }
}

/// Applies `request` to `session`: `schema` names an existing database (erasing it returns
/// to `default`), `catalog` can only be `minidb`, `statement_timeout` is milliseconds (a
/// number) or text as `SET statement_timeout` takes it (erasing it follows the server's). Options not set are reported in the result;
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
                session.set_database(DEFAULT_DATABASE.to_string());
                Ok(())
            }
            ("schema", Some(OptionValue::String(database))) => {
                match engine.database_exists(&database).await {
                    Ok(true) => {
                        session.set_database(database);
                        Ok(())
                    }
                    Ok(false) => Err(SetOptionErrorValue::InvalidValue),
                    Err(_) => Err(SetOptionErrorValue::Error),
                }
            }
            ("statement_timeout", None) => {
                session.set_statement_timeout(None);
                Ok(())
            }
            ("statement_timeout", Some(OptionValue::Int64(ms))) if ms >= 0 => {
                session.set_statement_timeout(Some(Duration::from_millis(ms.unsigned_abs())));
                Ok(())
            }
            ("statement_timeout", Some(OptionValue::String(text))) => parse_duration(&text)
                .map(|timeout| session.set_statement_timeout(Some(timeout)))
                .map_err(|_| SetOptionErrorValue::InvalidValue),
            ("catalog" | "schema" | "statement_timeout", _) => {
                Err(SetOptionErrorValue::InvalidValue)
            }
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
