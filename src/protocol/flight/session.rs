//! The current database of a Flight SQL client, carried in a cookie or a header.

use tonic::metadata::{MetadataMap, MetadataValue};

use crate::engine::Session;

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
