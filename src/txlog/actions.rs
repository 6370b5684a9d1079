//! Delta log actions as they appear, one JSON object per line, in a commit file.
//!
//! Field names follow the Delta protocol (camelCase). Unknown fields written by other engines are
//! ignored on read; unknown action types are kept opaque so replay can skip them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::DeletionVectorDescriptor;

/// One line of a commit file.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CommitInfo(CommitInfo),
    Protocol(Protocol),
    Metadata(Metadata),
    Add(Add),
    Remove(Remove),
    /// An action this version of MiniDB does not interpret (txn, cdc, domainMetadata…).
    Other(String, Value),
}

impl Action {
    /// Parses one JSON line.
    pub fn from_json_line(line: &str) -> Result<Self, serde_json::Error> {
        let mut object: serde_json::Map<String, Value> = serde_json::from_str(line)?;
        let Some((key, value)) = object.iter_mut().next().map(|(k, v)| (k.clone(), v.take()))
        else {
            return Err(serde::de::Error::custom("empty action object"));
        };
        Ok(match key.as_str() {
            "commitInfo" => Action::CommitInfo(serde_json::from_value(value)?),
            "protocol" => Action::Protocol(serde_json::from_value(value)?),
            "metaData" => Action::Metadata(serde_json::from_value(value)?),
            "add" => Action::Add(serde_json::from_value(value)?),
            "remove" => Action::Remove(serde_json::from_value(value)?),
            _ => Action::Other(key, value),
        })
    }

    /// The `add` this action is, if it is one.
    pub fn as_add(&self) -> Option<&Add> {
        match self {
            Action::Add(add) => Some(add),
            _ => None,
        }
    }

    /// The `remove` this action is, if it is one.
    pub fn as_remove(&self) -> Option<&Remove> {
        match self {
            Action::Remove(remove) => Some(remove),
            _ => None,
        }
    }

    /// Serializes to one JSON line (without the newline).
    pub fn to_json_line(&self) -> Result<String, serde_json::Error> {
        let (key, value) = match self {
            Action::CommitInfo(a) => ("commitInfo", serde_json::to_value(a)?),
            Action::Protocol(a) => ("protocol", serde_json::to_value(a)?),
            Action::Metadata(a) => ("metaData", serde_json::to_value(a)?),
            Action::Add(a) => ("add", serde_json::to_value(a)?),
            Action::Remove(a) => ("remove", serde_json::to_value(a)?),
            Action::Other(k, v) => (k.as_str(), v.clone()),
        };
        serde_json::to_string(&serde_json::json!({ key: value }))
    }
}

/// Provenance of a commit. MiniDB writes it first in every commit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitInfo {
    #[serde(default)]
    pub timestamp: Option<i64>,
    #[serde(default)]
    pub operation: Option<String>,
    #[serde(default)]
    pub operation_parameters: Option<HashMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation_level: Option<String>,
    #[serde(default)]
    pub is_blind_append: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_metrics: Option<HashMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_info: Option<String>,
}

/// Reader/writer protocol versions and features.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Protocol {
    pub min_reader_version: i32,
    pub min_writer_version: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reader_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer_features: Option<Vec<String>>,
}

/// Table property that allows writers to add deletion vectors.
pub const ENABLE_DELETION_VECTORS: &str = "delta.enableDeletionVectors";

/// Writer features implied by legacy (pre-7) writer versions, which a move to writer version 7
/// must list explicitly.
const LEGACY_WRITER_FEATURES: &[(i32, &str)] = &[
    (2, "appendOnly"),
    (2, "invariants"),
    (3, "checkConstraints"),
    (4, "changeDataFeed"),
    (4, "generatedColumns"),
    (5, "columnMapping"),
    (6, "identityColumns"),
];

impl Protocol {
    /// Whether readers and writers of this protocol know deletion vectors.
    pub fn has_deletion_vectors(&self) -> bool {
        self.has_feature("deletionVectors")
    }

    /// Whether readers and writers of this protocol know the reader-writer `feature`.
    pub fn has_feature(&self, feature: &str) -> bool {
        let listed =
            |features: &Option<Vec<String>>| features.iter().flatten().any(|f| f == feature);
        listed(&self.reader_features) && listed(&self.writer_features)
    }

    /// This protocol at reader 3 / writer 7 with `deletionVectors` added, keeping every feature
    /// the old versions implied.
    pub fn with_deletion_vectors(&self) -> Protocol {
        self.with_feature("deletionVectors")
    }

    /// This protocol at reader 3 / writer 7 with the reader-writer `feature` added, keeping
    /// every feature the old versions implied.
    pub fn with_feature(&self, feature: &str) -> Protocol {
        let mut readers = self.reader_features.clone().unwrap_or_default();
        let mut writers = self.writer_features.clone().unwrap_or_default();
        if self.min_writer_version < 7 {
            for (version, legacy) in LEGACY_WRITER_FEATURES {
                if self.min_writer_version >= *version {
                    writers.push(legacy.to_string());
                }
            }
        }
        // Reader version 2 is column mapping.
        if self.min_reader_version == 2 && !readers.iter().any(|f| f == "columnMapping") {
            readers.push("columnMapping".into());
        }
        for features in [&mut readers, &mut writers] {
            if !features.iter().any(|f| f == feature) {
                features.push(feature.into());
            }
        }
        Protocol {
            min_reader_version: 3,
            min_writer_version: 7,
            reader_features: Some(readers),
            writer_features: Some(writers),
        }
    }
}

/// Table schema, partitioning and properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub format: Format,
    pub schema_string: String,
    #[serde(default)]
    pub partition_columns: Vec<String>,
    #[serde(default)]
    pub configuration: HashMap<String, Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<i64>,
}

/// The table property holding ANALYZE's per-column statistics (JSON).
pub const STATISTICS_PROPERTY: &str = "minidb.statistics";

impl Metadata {
    /// True when `self` and `other` differ at most in their analyzed statistics
    /// ([`STATISTICS_PROPERTY`]), which are estimates no reader or writer depends on.
    pub fn same_apart_from_statistics(&self, other: &Metadata) -> bool {
        let without = |m: &Metadata| {
            let mut m = m.clone();
            m.configuration.remove(STATISTICS_PROPERTY);
            m
        };
        without(self) == without(other)
    }
}

/// The data file format; always Parquet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Format {
    pub provider: String,
    #[serde(default)]
    pub options: HashMap<String, Option<String>>,
}

impl Default for Format {
    fn default() -> Self {
        Self {
            provider: "parquet".into(),
            options: HashMap::new(),
        }
    }
}

/// Adds a data file to the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Add {
    pub path: String,
    #[serde(default)]
    pub partition_values: HashMap<String, Option<String>>,
    pub size: i64,
    pub modification_time: i64,
    pub data_change: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<HashMap<String, Option<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_vector: Option<DeletionVectorDescriptor>,
}

impl Add {
    /// Rows its deletion vector marks deleted (0 without one).
    pub fn deleted_rows(&self) -> u64 {
        self.deletion_vector
            .as_ref()
            .map_or(0, |d| u64::try_from(d.cardinality).unwrap_or_default())
    }
}

/// Removes a data file (a tombstone kept until retention expires).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remove {
    pub path: String,
    #[serde(default)]
    pub deletion_timestamp: Option<i64>,
    pub data_change: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_file_metadata: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_values: Option<HashMap<String, Option<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// The removed file's `add` tags (its index segments), so a tombstone names everything
    /// its file needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<HashMap<String, Option<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_vector: Option<DeletionVectorDescriptor>,
}

impl Remove {
    /// The tombstone of a live file (with its deletion vector, if any) at `timestamp`.
    pub fn of(add: &Add, timestamp: i64) -> Self {
        Remove {
            path: add.path.clone(),
            deletion_timestamp: Some(timestamp),
            data_change: true,
            extended_file_metadata: Some(true),
            partition_values: Some(add.partition_values.clone()),
            size: Some(add.size),
            tags: add.tags.clone(),
            deletion_vector: add.deletion_vector.clone(),
        }
    }
}

/// Metadata of a table with one nullable BIGINT column `a`, for tests.
#[cfg(test)]
pub(crate) fn test_table_metadata() -> Metadata {
    Metadata {
        id: "t".into(),
        name: None,
        description: None,
        format: Format::default(),
        schema_string: r#"{"type":"struct","fields":[{"name":"a","type":"long","nullable":true,"metadata":{}}]}"#.into(),
        partition_columns: vec![],
        configuration: Default::default(),
        created_time: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_through_json_lines() {
        let line = r#"{"add":{"path":"a.parquet","partitionValues":{},"size":10,"modificationTime":5,"dataChange":true,"stats":"{\"numRecords\":1}"}}"#;
        let action = Action::from_json_line(line).unwrap();
        let Action::Add(add) = &action else {
            panic!("expected add, got {action:?}")
        };
        assert_eq!(add.size, 10);
        let again = Action::from_json_line(&action.to_json_line().unwrap()).unwrap();
        assert_eq!(again, action);
    }

    #[test]
    fn legacy_protocols_keep_their_features_when_deletion_vectors_arrive() {
        let legacy = Protocol {
            min_reader_version: 1,
            min_writer_version: 2,
            reader_features: None,
            writer_features: None,
        };
        assert!(!legacy.has_deletion_vectors());
        let upgraded = legacy.with_deletion_vectors();
        assert!(upgraded.has_deletion_vectors());
        assert_eq!(
            (upgraded.min_reader_version, upgraded.min_writer_version),
            (3, 7)
        );
        assert_eq!(
            upgraded.writer_features.unwrap(),
            ["appendOnly", "invariants", "deletionVectors"]
        );
        assert_eq!(upgraded.reader_features.unwrap(), ["deletionVectors"]);
        // Reader version 2 / writer 5 is column mapping, which readers must keep applying.
        let mapped = Protocol {
            min_reader_version: 2,
            min_writer_version: 5,
            reader_features: None,
            writer_features: None,
        };
        let upgraded = mapped.with_deletion_vectors();
        assert!(upgraded.has_feature("columnMapping"));
        assert_eq!(
            upgraded.reader_features.unwrap(),
            ["columnMapping", "deletionVectors"]
        );
    }

    #[test]
    fn unknown_actions_are_kept_opaque() {
        let action = Action::from_json_line(r#"{"txn":{"appId":"x","version":3}}"#).unwrap();
        assert!(matches!(action, Action::Other(ref k, _) if k == "txn"));
    }
}
