//! Table properties a user may set (`TBLPROPERTIES`), and the checks on their values.
//!
//! Properties live in the table's Delta `metaData.configuration`. `delta.*` keys are Delta's
//! own (other engines read them too); `minidb.*` keys hold MiniDB's constraint and index
//! definitions and cannot be set by hand.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::Result;
use serde_json::json;

use super::TableHandle;
use super::datafile::external;
use crate::txlog::{Action, Operation, Snapshot};

/// The size OPTIMIZE aims for, in bytes (the name Delta uses).
pub const TARGET_FILE_SIZE: &str = "delta.targetFileSize";

/// Target file size when the table does not set one.
pub const DEFAULT_TARGET_FILE_SIZE: u64 = 128 * 1024 * 1024;

/// Prefix of the properties MiniDB manages itself.
const RESERVED_PREFIX: &str = "minidb.";

/// Checks that `key` may be set to `value`; the error says why not.
pub fn check(key: &str, value: &str) -> Result<(), String> {
    if key.starts_with(RESERVED_PREFIX) {
        return Err(format!(
            "table property {key} is managed by MiniDB (constraints and indexes are declared with SQL)"
        ));
    }
    if key == TARGET_FILE_SIZE {
        positive(key, value)?;
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
