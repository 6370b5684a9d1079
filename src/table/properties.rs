//! Table properties a user may set (`TBLPROPERTIES`), and the checks on their values.
//!
//! Properties live in the table's Delta `metaData.configuration`. `delta.*` keys are Delta's
//! own (other engines read them too); `minidb.*` keys hold MiniDB's constraint and index
//! definitions and cannot be set by hand.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::common::Result;
use serde_json::json;

use super::error::external;
use super::{TableError, TableHandle};
use crate::txlog::{Action, Operation, Snapshot};

/// The size OPTIMIZE aims for, in bytes (the name Delta uses).
pub const TARGET_FILE_SIZE: &str = "delta.targetFileSize";

/// Target file size when the table does not set one.
pub const DEFAULT_TARGET_FILE_SIZE: u64 = 128 * 1024 * 1024;

/// How long removed files stay for time travel and running readers before VACUUM may delete
/// them (Delta's name and format: `interval 7 days`).
pub const RETENTION: &str = "delta.deletedFileRetentionDuration";

/// Retention when the table does not set one: 7 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Every how many commits a checkpoint is written (Delta's name).
pub const CHECKPOINT_INTERVAL: &str = "delta.checkpointInterval";

/// Checkpoint interval when the table does not set one.
pub const DEFAULT_CHECKPOINT_INTERVAL: u64 = 10;

/// How long commits stay in the log (for time travel and history) before the cleanup that
/// follows a checkpoint deletes them (Delta's name and format).
pub const LOG_RETENTION: &str = "delta.logRetentionDuration";

/// Log retention when the table does not set one: 30 days.
pub const DEFAULT_LOG_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Prefix of the properties MiniDB manages itself.
const RESERVED_PREFIX: &str = "minidb.";

/// Whether `key` is a Delta property that MiniDB sets itself when a schema change needs it
/// (column mapping, type widening).
pub fn is_schema_feature(key: &str) -> bool {
    key.starts_with("delta.columnMapping.") || key == "delta.enableTypeWidening"
}

/// Whether MiniDB keeps one of its own declarations (keys, defaults, indexes, partitioning…)
/// or a schema feature in the table property `key`, which SQL sets by other means.
pub fn is_managed(key: &str) -> bool {
    key.starts_with(RESERVED_PREFIX) || is_schema_feature(key)
}

/// Checks that `key` may be set to `value`; the error says why not.
pub fn check(key: &str, value: &str) -> Result<(), String> {
    if is_schema_feature(key) {
        return Err(format!(
            "table property {key} is managed by MiniDB (RENAME COLUMN and DROP COLUMN turn on \
             column mapping; ALTER COLUMN … TYPE turns on type widening)"
        ));
    }
    if is_managed(key) {
        return Err(format!(
            "table property {key} is managed by MiniDB (constraints and indexes are declared with SQL)"
        ));
    }
    if key == TARGET_FILE_SIZE || key == CHECKPOINT_INTERVAL {
        positive(key, value)?;
    }
    if key == RETENTION || key == LOG_RETENTION {
        interval(key, value)?;
    }
    Ok(())
}

/// The target file size of `snapshot`'s table.
pub fn target_file_size(snapshot: &Snapshot) -> Result<u64, String> {
    match snapshot.metadata().configuration.get(TARGET_FILE_SIZE) {
        Some(Some(text)) => positive(TARGET_FILE_SIZE, text),
        _ => Ok(DEFAULT_TARGET_FILE_SIZE),
    }
}

/// The file retention of `snapshot`'s table, the default when its property is unreadable.
pub fn file_retention(snapshot: &Snapshot) -> Duration {
    retention(snapshot).unwrap_or(DEFAULT_RETENTION)
}

/// The file retention of `snapshot`'s table.
pub fn retention(snapshot: &Snapshot) -> Result<Duration, String> {
    match snapshot.metadata().configuration.get(RETENTION) {
        Some(Some(text)) => interval(RETENTION, text),
        _ => Ok(DEFAULT_RETENTION),
    }
}

/// The checkpoint interval of `snapshot`'s table.
pub fn checkpoint_interval(snapshot: &Snapshot) -> Result<u64, String> {
    match snapshot.metadata().configuration.get(CHECKPOINT_INTERVAL) {
        Some(Some(text)) => positive(CHECKPOINT_INTERVAL, text),
        _ => Ok(DEFAULT_CHECKPOINT_INTERVAL),
    }
}

/// The log retention of `snapshot`'s table.
pub fn log_retention(snapshot: &Snapshot) -> Result<Duration, String> {
    match snapshot.metadata().configuration.get(LOG_RETENTION) {
        Some(Some(text)) => interval(LOG_RETENTION, text),
        _ => Ok(DEFAULT_LOG_RETENTION),
    }
}

/// A duration written as Delta writes them: `interval 7 days`, `interval 1 hour` (the
/// `interval` prefix is optional).
fn interval(key: &str, value: &str) -> Result<Duration, String> {
    let invalid = || {
        format!("table property {key} must be a duration such as 'interval 7 days', not '{value}'")
    };
    let lower = value.trim().to_ascii_lowercase();
    let text = lower.strip_prefix("interval").unwrap_or(&lower).trim();
    let (amount, unit) = text.split_once(char::is_whitespace).ok_or_else(invalid)?;
    let amount: u64 = amount.trim().parse().map_err(|_| invalid())?;
    let seconds = match unit.trim().trim_end_matches('s') {
        "second" => 1,
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        "week" => 604_800,
        _ => return Err(invalid()),
    };
    Ok(Duration::from_secs(amount.saturating_mul(seconds)))
}

fn positive(key: &str, value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            format!("table property {key} must be a positive whole number, not '{value}'")
        })
}

/// The JSON table property `key` of `snapshot` (MiniDB's `minidb.*` definitions), if it is set.
pub fn declared<T: serde::de::DeserializeOwned>(
    snapshot: &Snapshot,
    key: &str,
) -> Result<Option<T>> {
    match snapshot.metadata().configuration.get(key) {
        Some(Some(json)) => {
            Ok(Some(serde_json::from_str(json).map_err(|e| {
                TableError::Corrupt(format!("table property {key}: {e}"))
            })?))
        }
        _ => Ok(None),
    }
}

/// Sets table properties (already checked with [`check`]) in one commit.
pub async fn set_properties(handle: &Arc<TableHandle>, set: Vec<(String, String)>) -> Result<()> {
    let _turn = handle.lock_for_write().await.map_err(external)?;
    let snapshot = handle.refresh().await.map_err(external)?;
    let mut metadata = snapshot.metadata().clone();
    for (key, value) in &set {
        metadata
            .configuration
            .insert(key.clone(), Some(value.clone()));
    }
    let operation = Operation {
        name: "SET TBLPROPERTIES".into(),
        parameters: HashMap::from([(
            "properties".into(),
            json!(set.into_iter().collect::<HashMap<_, _>>()),
        )]),
        metrics: HashMap::new(),
        blind_append: false,
    };
    handle
        .commit(&snapshot, operation, vec![Action::Metadata(metadata)])
        .await
        .map_err(external)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_delta_writes_them() {
        let hours = |h: u64| Ok(Duration::from_secs(h * 3600));
        assert_eq!(interval(RETENTION, "interval 7 days"), hours(168));
        assert_eq!(interval(RETENTION, "INTERVAL 1 hour"), hours(1));
        assert_eq!(interval(RETENTION, "2 weeks"), hours(336));
        assert_eq!(interval(RETENTION, "interval 0 hours"), hours(0));
        assert!(interval(RETENTION, "interval soon").is_err());
        assert!(interval(RETENTION, "7").is_err());
        assert!(check("minidb.indexes", "[]").is_err());
        assert!(check(TARGET_FILE_SIZE, "0").is_err());
        assert!(check("owner", "anything").is_ok());
    }
}
