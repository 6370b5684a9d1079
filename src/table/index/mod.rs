//! Secondary indexes: per data file, a sorted run of (key, row position), versioned by the log.
//!
//! An index is declared in the table configuration ([`INDEXES_PROPERTY`], a JSON list of
//! [`IndexDef`]) and stored as one *segment* per data file: a small Parquet file under
//! `_minidb_index/<index id>/` holding every row's key columns and physical position in that
//! data file, sorted by key. The data file's `add` action names its segment in a tag
//! (`minidb.index.<index id>`), so a snapshot and its index always agree: whoever writes a data
//! file (INSERT, an UPDATE's new rows) writes its segments before the commit that adds it, and
//! `CREATE INDEX` re-adds the existing files (`dataChange:false`) with their new tags in the same
//! commit that declares the index. A file without a segment (written by another engine, or
//! before the index existed and not yet re-added) is simply scanned.
//!
//! Segments are immutable, like the data files they describe: a DELETE or UPDATE does not touch
//! them, it adds a deletion vector, and a lookup drops the positions that vector lists. A file
//! removed from the table takes its segments out of every later snapshot with it.
//!
//! Each segment is a two-level B-tree: the Parquet footer's per-row-group minimum of the first
//! key column is the inner node, and each row group of up to [`LEAF_ROWS`] sorted entries is a
//! leaf. A lookup reads the (cached) footer, picks the leaves whose key range can hold the probe,
//! and binary-searches them in memory (leaves are cached too). Keys are compared in Arrow's row
//! format, which is byte-comparable and orders like SQL comparisons do.

mod probe;
mod segment;

use std::collections::HashMap;

use arrow::datatypes::{DataType, Schema};
use serde::{Deserialize, Serialize};

use crate::txlog::{Add, Metadata, Snapshot, TxLogError};

pub use probe::{ColumnBounds, IndexScan, KeyCodec, Probe, column_bounds};
pub use segment::{IndexCache, Lookup, build_segment, segment_location, segment_path};

/// Table property holding the table's indexes: a JSON array of [`IndexDef`].
pub const INDEXES_PROPERTY: &str = "minidb.indexes";

/// Prefix of the `add` tag that names a data file's segment of one index.
const TAG_PREFIX: &str = "minidb.index.";

/// The segments `add`'s tags name (of any index, declared or dropped), relative to the table.
pub fn segments_of(add: &Add) -> impl Iterator<Item = &str> {
    add.tags
        .iter()
        .flatten()
        .filter(|(key, _)| key.starts_with(TAG_PREFIX))
        .filter_map(|(_, value)| value.as_deref())
}

/// `add` without tags naming index segments.
pub fn without_segments(mut add: Add) -> Add {
    if let Some(tags) = &mut add.tags {
        tags.retain(|key, _| !key.starts_with(TAG_PREFIX));
        if tags.is_empty() {
            add.tags = None;
        }
    }
    add
}

/// Entries per leaf (Parquet row group) of a segment.
pub const LEAF_ROWS: usize = 8192;

/// One index of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDef {
    /// Unique for the life of the table: names the segments' folder and the `add` tag, so an
    /// index dropped and created again under the same name never sees the old segments.
    pub id: String,
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
    /// `PRIMARY KEY` or `UNIQUE` when the index was made for a constraint of the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
}

impl IndexDef {
    pub fn new(name: String, columns: Vec<String>, unique: bool) -> Self {
        Self {
            id: uuid::Uuid::new_v4().simple().to_string(),
            name,
            columns,
            unique,
            constraint: None,
        }
    }

    /// The index behind a table's PRIMARY KEY or UNIQUE constraint.
    pub fn for_constraint(table: &str, kind: &str, columns: Vec<String>) -> Self {
        let name = if kind == "PRIMARY KEY" {
            format!("{table}_pkey")
        } else {
            format!("{table}_{}_key", columns.join("_"))
        };
        Self {
            constraint: Some(kind.to_string()),
            ..Self::new(name, columns, true)
        }
    }

    fn tag(&self) -> String {
        format!("{TAG_PREFIX}{}", self.id)
    }

    /// The segment of this index for `add`'s data file, if it has one (relative to the table).
    pub fn segment_of<'a>(&self, add: &'a Add) -> Option<&'a str> {
        add.tags.as_ref()?.get(&self.tag())?.as_deref()
    }

    /// `add` with its segment of this index recorded.
    pub fn tag_segment(&self, add: &mut Add, segment: &str) {
        add.tags
            .get_or_insert_with(HashMap::new)
            .insert(self.tag(), Some(segment.to_string()));
    }

    /// The types of the key columns in `schema`; fails when a column is missing or cannot be
    /// indexed.
    pub fn key_types(&self, schema: &Schema) -> Result<Vec<DataType>, String> {
        self.columns
            .iter()
            .map(|column| {
                let field = schema
                    .field_with_name(column)
                    .map_err(|_| format!("column '{column}' does not exist"))?;
                let data_type = field.data_type();
                if data_type.is_nested() || matches!(data_type, DataType::Binary) {
                    return Err(format!(
                        "column '{column}' cannot be indexed: an index holds single values, not \
                         lists, structs, maps or binary data"
                    ));
                }
                Ok(data_type.clone())
            })
            .collect()
    }
}

/// The indexes declared on `snapshot`'s table.
pub fn table_indexes(snapshot: &Snapshot) -> Result<Vec<IndexDef>, TxLogError> {
    match snapshot.metadata().configuration.get(INDEXES_PROPERTY) {
        Some(Some(json)) => serde_json::from_str(json).map_err(|e| TxLogError::Corrupt {
            path: INDEXES_PROPERTY.into(),
            reason: e.to_string(),
        }),
        _ => Ok(Vec::new()),
    }
}

/// `metadata` with its list of indexes replaced by `indexes`.
pub fn with_indexes(metadata: &Metadata, indexes: &[IndexDef]) -> Metadata {
    let mut metadata = metadata.clone();
    if indexes.is_empty() {
        metadata.configuration.remove(INDEXES_PROPERTY);
    } else {
        let json = serde_json::to_string(indexes).expect("index definitions serialise");
        metadata
            .configuration
            .insert(INDEXES_PROPERTY.into(), Some(json));
    }
    metadata
}
