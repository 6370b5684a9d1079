//! Classic Delta checkpoints: a table's reconciled state at one version in one Parquet file.
//!
//! `{version:020}.checkpoint.parquet` holds one row per action, in the top-level struct columns
//! `txn`, `add`, `remove`, `metaData` and `protocol`; each row fills exactly one of them. It
//! carries the protocol, the metadata, every live `add` (with its deletion vector) and the
//! tombstones still inside file retention, and never a `commitInfo`. `_last_checkpoint` names
//! the newest one so a reader lists the log from there instead of from commit 0.
//!
//! Actions travel between their JSON form (what commits hold) and the Parquet columns through
//! Arrow's JSON codec, so the one serde definition of each action serves both encodings and a
//! checkpoint written by another engine (extra columns such as `stats_parsed` included) decodes
//! into the same actions.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::json::{LineDelimitedWriter, ReaderBuilder};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::storage::parquet::{check_layout, guarded};
use serde::{Deserialize, Serialize};

use super::Action;

/// The contents of `_delta_log/_last_checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastCheckpoint {
    pub version: i64,
    /// Actions in the checkpoint.
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_in_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_of_add_files: Option<i64>,
    /// Present for a multi-part checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<i64>,
}

/// A file name in `_delta_log/`, as far as reading the log is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFile {
    /// `{version:020}.json`
    Commit(i64),
    /// `{version:020}.checkpoint.parquet`, or part `part` (1-based) of `parts` of a multi-part
    /// checkpoint `{version:020}.checkpoint.{part:010}.{parts:010}.parquet`.
    Checkpoint { version: i64, part: u32, parts: u32 },
    /// `_last_checkpoint`, `.crc` files, log compactions, V2 checkpoints and anything else.
    Other,
}

impl LogFile {
    pub fn parse(name: &str) -> Self {
        let Some((version, rest)) = name.split_once('.') else {
            return LogFile::Other;
        };
        let Ok(version) = version.parse::<i64>() else {
            return LogFile::Other;
        };
        if version.to_string().len() > 20 || name.len() < 20 {
            return LogFile::Other;
        }
        match rest.split('.').collect::<Vec<_>>().as_slice() {
            ["json"] => LogFile::Commit(version),
            ["checkpoint", "parquet"] => LogFile::Checkpoint {
                version,
                part: 1,
                parts: 1,
            },
            ["checkpoint", part, parts, "parquet"] => match (part.parse(), parts.parse()) {
                (Ok(part), Ok(parts)) if (1..=parts).contains(&part) => LogFile::Checkpoint {
                    version,
                    part,
                    parts,
                },
                _ => LogFile::Other,
            },
            _ => LogFile::Other,
        }
    }
}

/// The file name of the single-file checkpoint of `version`.
pub fn checkpoint_name(version: i64) -> String {
    format!("{version:020}.checkpoint.parquet")
}

/// The file name of part `part` of `parts` of the checkpoint of `version`.
pub fn checkpoint_part_name(version: i64, part: u32, parts: u32) -> String {
    if parts == 1 {
        checkpoint_name(version)
    } else {
        format!("{version:020}.checkpoint.{part:010}.{parts:010}.parquet")
    }
}

/// Encodes `actions` (no `commitInfo`) as a checkpoint file.
pub fn encode(actions: &[Action]) -> Result<Bytes, String> {
    let schema = checkpoint_schema();
    let mut text = String::new();
    for action in actions {
        if matches!(action, Action::CommitInfo(_)) {
            continue;
        }
        text.push_str(&action.to_json_line().map_err(|e| e.to_string())?);
        text.push('\n');
    }
    let mut decoder = ReaderBuilder::new(Arc::clone(&schema))
        .with_batch_size(8192)
        .build_decoder()
        .map_err(|e| e.to_string())?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(properties))
        .map_err(|e| e.to_string())?;
    let mut input = text.as_bytes();
    loop {
        let consumed = decoder.decode(input).map_err(|e| e.to_string())?;
        input = &input[consumed..];
        if let Some(batch) = decoder.flush().map_err(|e| e.to_string())? {
            writer.write(&batch).map_err(|e| e.to_string())?;
        }
        if input.is_empty() {
            break;
        }
    }
    Ok(Bytes::from(writer.into_inner().map_err(|e| e.to_string())?))
}

/// Decodes a checkpoint file (or one part of it) into its actions.
pub fn decode(file: Bytes) -> Result<Vec<Action>, String> {
    guarded(|| decode_checked(file))
}

fn decode_checked(file: Bytes) -> Result<Vec<Action>, String> {
    // The actions decode from the Parquet schema; an embedded Arrow schema that is damaged
    // would make its decoder panic.
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let metadata = ArrowReaderMetadata::load(&file, options).map_err(|e| e.to_string())?;
    check_layout(metadata.metadata(), file.len() as u64)?;
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata)
        .with_batch_size(8192)
        .build()
        .map_err(|e| e.to_string())?;
    let mut actions = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        actions.extend(decode_batch(&batch)?);
    }
    Ok(actions)
}

fn decode_batch(batch: &RecordBatch) -> Result<Vec<Action>, String> {
    // Only the action columns: a checkpoint of another engine may carry more.
    let wanted: Vec<usize> = batch
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| ACTION_COLUMNS.contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    let batch = batch.project(&wanted).map_err(|e| e.to_string())?;
    // Without explicit nulls each row becomes `{"add":{…}}`: the one column it fills.
    let mut writer = LineDelimitedWriter::new(Vec::new());
    writer.write(&batch).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    let text = String::from_utf8(writer.into_inner()).map_err(|e| e.to_string())?;
    text.lines()
        .filter(|line| !line.trim().is_empty() && *line != "{}")
        .map(|line| Action::from_json_line(line).map_err(|e| e.to_string()))
        .collect()
}

const ACTION_COLUMNS: &[&str] = &["txn", "add", "remove", "metaData", "protocol"];

/// The checkpoint schema of `PROTOCOL.md` ("Checkpoint Schema"), every field nullable, with
/// `deletionVector` in `add` and `remove` and `tags` in `remove`.
fn checkpoint_schema() -> SchemaRef {
    let text = || DataType::Utf8;
    let long = || DataType::Int64;
    let field = |name: &str, data_type: DataType| Field::new(name, data_type, true);
    let string_map = |name: &str| {
        Field::new_map(
            name,
            "key_value",
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Utf8, true),
            false,
            true,
        )
    };
    let string_list = |name: &str| field(name, DataType::new_list(text(), true));
    let deletion_vector = field(
        "deletionVector",
        DataType::Struct(Fields::from(vec![
            field("storageType", text()),
            field("pathOrInlineDv", text()),
            field("offset", DataType::Int32),
            field("sizeInBytes", DataType::Int32),
            field("cardinality", long()),
        ])),
    );
    let txn = Fields::from(vec![
        field("appId", text()),
        field("version", long()),
        field("lastUpdated", long()),
    ]);
    let add = Fields::from(vec![
        field("path", text()),
        string_map("partitionValues"),
        field("size", long()),
        field("modificationTime", long()),
        field("dataChange", DataType::Boolean),
        field("stats", text()),
        string_map("tags"),
        deletion_vector.clone(),
        field("baseRowId", long()),
        field("defaultRowCommitVersion", long()),
    ]);
    let remove = Fields::from(vec![
        field("path", text()),
        field("deletionTimestamp", long()),
        field("dataChange", DataType::Boolean),
        field("extendedFileMetadata", DataType::Boolean),
        string_map("partitionValues"),
        field("size", long()),
        // Not in the protocol's example schema: the removed file's index segments, which
        // VACUUM must keep while the tombstone is within retention. Readers ignore it.
        string_map("tags"),
        deletion_vector,
    ]);
    let metadata = Fields::from(vec![
        field("id", text()),
        field("name", text()),
        field("description", text()),
        field(
            "format",
            DataType::Struct(Fields::from(vec![
                field("provider", text()),
                string_map("options"),
            ])),
        ),
        field("schemaString", text()),
        string_list("partitionColumns"),
        field("createdTime", long()),
        string_map("configuration"),
    ]);
    let protocol = Fields::from(vec![
        field("minReaderVersion", DataType::Int32),
        field("minWriterVersion", DataType::Int32),
        string_list("readerFeatures"),
        string_list("writerFeatures"),
    ]);
    Arc::new(Schema::new(vec![
        field("txn", DataType::Struct(txn)),
        field("add", DataType::Struct(add)),
        field("remove", DataType::Struct(remove)),
        field("metaData", DataType::Struct(metadata)),
        field("protocol", DataType::Struct(protocol)),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txlog::{Add, DeletionVectorDescriptor, Protocol, Remove};

    #[test]
    fn actions_survive_a_checkpoint_round_trip() {
        let add = Add {
            path: "part-1.parquet".into(),
            partition_values: Default::default(),
            size: 123,
            modification_time: 456,
            data_change: true,
            stats: Some(r#"{"numRecords":3}"#.into()),
            tags: Some(
                [(
                    "minidb.index.7".to_string(),
                    Some("_index/7/a.parquet".to_string()),
                )]
                .into(),
            ),
            deletion_vector: Some(DeletionVectorDescriptor {
                storage_type: "u".into(),
                path_or_inline_dv: "ab^-aqEH.-t@S}K{vb[*k^".into(),
                offset: Some(1),
                size_in_bytes: 36,
                cardinality: 2,
            }),
        };
        let remove = Remove {
            path: "part-0.parquet".into(),
            deletion_timestamp: Some(789),
            data_change: true,
            extended_file_metadata: Some(true),
            partition_values: Some(Default::default()),
            size: Some(99),
            tags: Some(
                [(
                    "minidb.index.7".to_string(),
                    Some("_minidb_index/7/b.parquet".to_string()),
                )]
                .into(),
            ),
            deletion_vector: None,
        };
        let protocol = Protocol {
            min_reader_version: 3,
            min_writer_version: 7,
            reader_features: Some(vec!["deletionVectors".into()]),
            writer_features: Some(vec!["deletionVectors".into()]),
        };
        let mut metadata = crate::txlog::actions::test_table_metadata();
        metadata
            .configuration
            .insert("delta.checkpointInterval".into(), Some("10".into()));
        let actions = vec![
            Action::Protocol(protocol),
            Action::Metadata(metadata),
            Action::Add(add),
            Action::Remove(remove),
        ];
        let decoded = decode(encode(&actions).unwrap()).unwrap();
        assert_eq!(decoded, actions);
    }

    #[test]
    fn log_file_names_parse() {
        assert_eq!(
            LogFile::parse("00000000000000000010.json"),
            LogFile::Commit(10)
        );
        assert_eq!(
            LogFile::parse(&checkpoint_name(10)),
            LogFile::Checkpoint {
                version: 10,
                part: 1,
                parts: 1
            }
        );
        assert_eq!(
            LogFile::parse(&checkpoint_part_name(20, 2, 3)),
            LogFile::Checkpoint {
                version: 20,
                part: 2,
                parts: 3
            }
        );
        for other in [
            "_last_checkpoint",
            "00000000000000000010.crc",
            "00000000000000000004.00000000000000000006.compacted.json",
            "00000000000000000010.checkpoint.80a083e8-7026-4e79-81be-64bd76c43a11.parquet",
            "10.json",
        ] {
            assert_eq!(LogFile::parse(other), LogFile::Other, "{other}");
        }
    }
}
