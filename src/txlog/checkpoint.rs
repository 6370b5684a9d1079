//! Classic Delta checkpoints: a table's reconciled state at one version in one Parquet file.
//!
//! `{version:020}.checkpoint.parquet` holds one row per action, in the top-level struct columns
//! `txn`, `add`, `remove`, `metaData` and `protocol`; each row fills exactly one of them. It
//! carries the protocol, the metadata, every live `add` (with its deletion vector) and the
//! tombstones still inside file retention, and never a `commitInfo`. `_last_checkpoint` names
//! the newest one so a reader starts there instead of at commit 0.
//!
//! `add` and `remove` rows, nearly all of a checkpoint, are built and read column by column
//! ([`super::file_columns`]). The few other actions travel between their JSON form (what commits
//! hold) and the Parquet columns through Arrow's JSON codec, so one serde definition serves both
//! encodings. A checkpoint written by another engine decodes into the same actions; columns
//! other than the actions (such as `stats_parsed`) are not read.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StructArray, UInt32Array, new_null_array,
};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::json::{LineDelimitedWriter, ReaderBuilder};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::storage::parquet::{check_layout, guarded};
use serde::{Deserialize, Serialize};

use super::{Action, Add, Remove, file_columns};

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

impl LastCheckpoint {
    /// The number of files the checkpoint is written in (1 unless it is multi-part).
    pub fn part_count(&self) -> u32 {
        self.parts
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0)
            .unwrap_or(1)
    }
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

/// Encodes `actions` (no `commitInfo`) as a checkpoint file: the few protocol, metadata and
/// other actions first, then the adds, then the removes.
pub fn encode(actions: &[Action]) -> Result<Bytes, String> {
    let schema = checkpoint_schema();
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(properties))
        .map_err(|e| e.to_string())?;
    let others: Vec<&Action> = actions
        .iter()
        .filter(|a| {
            !matches!(
                a,
                Action::CommitInfo(_) | Action::Add(_) | Action::Remove(_)
            )
        })
        .collect();
    if let Some(batch) = json_rows(&schema, &others)? {
        writer.write(&batch).map_err(|e| e.to_string())?;
    }
    let adds: Vec<&Add> = actions.iter().filter_map(Action::as_add).collect();
    let removes: Vec<&Remove> = actions.iter().filter_map(Action::as_remove).collect();
    for chunk in adds.chunks(ROWS_PER_BATCH) {
        let batch = one_column_batch(&schema, "add", chunk.len(), |fields| {
            file_columns::add_column(fields, chunk)
        })?;
        writer.write(&batch).map_err(|e| e.to_string())?;
    }
    for chunk in removes.chunks(ROWS_PER_BATCH) {
        let batch = one_column_batch(&schema, "remove", chunk.len(), |fields| {
            file_columns::remove_column(fields, chunk)
        })?;
        writer.write(&batch).map_err(|e| e.to_string())?;
    }
    Ok(Bytes::from(writer.into_inner().map_err(|e| e.to_string())?))
}

const ROWS_PER_BATCH: usize = 8192;

/// The most actions reserved ahead of decoding, whatever a (perhaps damaged) footer claims.
const MAX_RESERVED_ACTIONS: usize = 1 << 20;

/// A batch of `rows` rows of `schema` whose column `name` is built by `build` (from that
/// struct column's fields) and every other column is null.
fn one_column_batch(
    schema: &SchemaRef,
    name: &str,
    rows: usize,
    build: impl Fn(&Fields) -> Result<ArrayRef, ArrowError>,
) -> Result<RecordBatch, String> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| match field.data_type() {
            DataType::Struct(fields) if field.name() == name => build(fields),
            data_type => Ok(new_null_array(data_type, rows)),
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| e.to_string())
}

/// `actions` as rows of `schema`, through their JSON form (the one serde definition of each
/// action); `None` for no actions.
fn json_rows(schema: &SchemaRef, actions: &[&Action]) -> Result<Option<RecordBatch>, String> {
    if actions.is_empty() {
        return Ok(None);
    }
    let mut text = String::new();
    for action in actions {
        text.push_str(&action.to_json_line().map_err(|e| e.to_string())?);
        text.push('\n');
    }
    let mut decoder = ReaderBuilder::new(Arc::clone(schema))
        .with_batch_size(actions.len())
        .build_decoder()
        .map_err(|e| e.to_string())?;
    let consumed = decoder.decode(text.as_bytes()).map_err(|e| e.to_string())?;
    if consumed != text.len() {
        return Err("checkpoint actions did not fit one batch".into());
    }
    decoder.flush().map_err(|e| e.to_string())
}

/// What to read of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Every action, tombstones (`remove`) included: what VACUUM and log cleanup need.
    All,
    /// The table's state only, without its tombstones: what a replay needs. A checkpoint is a
    /// state, not a sequence, so its tombstones never apply to its adds (they may name a path
    /// that is live again, with another deletion vector).
    State,
}

/// Decodes a checkpoint file (or one part of it) into its actions.
pub fn decode(file: Bytes, read: Read) -> Result<Vec<Action>, String> {
    guarded(|| decode_checked(file, read))
}

fn decode_checked(file: Bytes, read: Read) -> Result<Vec<Action>, String> {
    // The actions decode from the Parquet schema; an embedded Arrow schema that is damaged
    // would make its decoder panic.
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let metadata = ArrowReaderMetadata::load(&file, options).map_err(|e| e.to_string())?;
    check_layout(metadata.metadata(), file.len() as u64)?;
    // Only the action columns: a checkpoint of another engine may carry more (`stats_parsed`).
    let wanted = metadata
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| ACTION_COLUMNS.contains(&f.name().as_str()))
        .filter(|(_, f)| read == Read::All || f.name() != "remove")
        .map(|(i, _)| i);
    let mask = ProjectionMask::roots(metadata.metadata().file_metadata().schema_descr(), wanted);
    let rows = usize::try_from(metadata.metadata().file_metadata().num_rows()).unwrap_or(0);
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata)
        .with_projection(mask)
        .with_batch_size(ROWS_PER_BATCH)
        .build()
        .map_err(|e| e.to_string())?;
    // One allocation for the whole file: a table of many files has as many actions.
    let mut actions = Vec::with_capacity(rows.min(MAX_RESERVED_ACTIONS));
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        decode_batch(&batch, &mut actions)?;
    }
    Ok(actions)
}

/// Appends the actions of one batch to `actions`: the protocol, metadata and other actions
/// (read through their JSON form), then the adds, then the removes (read from their columns).
/// A checkpoint is a state, so the order of its rows carries no meaning; MiniDB writes them in
/// this order.
fn decode_batch(batch: &RecordBatch, actions: &mut Vec<Action>) -> Result<(), String> {
    let file_actions = |name: &str| -> Result<Option<StructArray>, String> {
        match batch.column_by_name(name) {
            None => Ok(None),
            Some(column) => match column.as_struct_opt() {
                Some(array) => Ok(Some(array.clone())),
                None => Err(format!("{name} is {}, not a struct", column.data_type())),
            },
        }
    };
    let adds = file_actions("add")?;
    let removes = file_actions("remove")?;
    let is_null =
        |array: &Option<StructArray>, row: usize| array.as_ref().is_none_or(|a| a.is_null(row));
    let rest: Vec<u32> = (0..batch.num_rows())
        .filter(|row| is_null(&adds, *row) && is_null(&removes, *row))
        .map(|row| row as u32)
        .collect();
    if !rest.is_empty() {
        let others: Vec<usize> = batch
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| !matches!(f.name().as_str(), "add" | "remove"))
            .map(|(i, _)| i)
            .collect();
        let indices = UInt32Array::from(rest);
        let taken = take_record_batch(
            &batch.project(&others).map_err(|e| e.to_string())?,
            &indices,
        )
        .map_err(|e| e.to_string())?;
        // Without explicit nulls each row becomes `{"txn":{…}}`: the one column it fills.
        let mut writer = LineDelimitedWriter::new(Vec::new());
        writer.write(&taken).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
        let text = String::from_utf8(writer.into_inner()).map_err(|e| e.to_string())?;
        for line in text.lines() {
            if !line.trim().is_empty() && line != "{}" {
                actions.push(Action::from_json_line(line).map_err(|e| e.to_string())?);
            }
        }
    }
    if let Some(adds) = &adds {
        file_columns::decode_adds(adds, actions)?;
    }
    if let Some(removes) = &removes {
        // A row filling both keeps its add, as a JSON line keeps its first action.
        let only_removes = match &adds {
            Some(adds) => {
                let mask = arrow::compute::is_null(adds).map_err(|e| e.to_string())?;
                arrow::compute::filter(removes, &mask).map_err(|e| e.to_string())?
            }
            None => Arc::new(removes.clone()),
        };
        file_columns::decode_removes(only_removes.as_struct(), actions)?;
    }
    Ok(())
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
        let decoded = decode(encode(&actions).unwrap(), Read::All).unwrap();
        assert_eq!(decoded, actions);
        let state = decode(encode(&actions).unwrap(), Read::State).unwrap();
        assert_eq!(state, actions[..3]);
    }

    /// A checkpoint of another engine (or of an older MiniDB, which wrote every action through
    /// JSON): fields typed differently, strings as large strings, an extra column.
    #[test]
    fn checkpoints_of_other_writers_decode_into_the_same_actions() {
        use arrow::compute::cast;
        let mut metadata = crate::txlog::actions::test_table_metadata();
        metadata.configuration.insert("k".into(), Some("v".into()));
        let add = |path: &str, dv: bool| Add {
            path: path.into(),
            partition_values: [("p".to_string(), None)].into(),
            size: 7,
            modification_time: 8,
            data_change: false,
            stats: None,
            tags: None,
            deletion_vector: dv.then(|| DeletionVectorDescriptor {
                storage_type: "i".into(),
                path_or_inline_dv: "wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L".into(),
                offset: None,
                size_in_bytes: 40,
                cardinality: 6,
            }),
        };
        let actions = vec![
            Action::Metadata(metadata),
            Action::Add(add("a", true)),
            Action::Other(
                "txn".into(),
                serde_json::json!({"appId": "x", "version": 3}),
            ),
            Action::Add(add("b", false)),
            Action::Remove(Remove {
                path: "c".into(),
                deletion_timestamp: None,
                data_change: true,
                extended_file_metadata: None,
                partition_values: None,
                size: None,
                tags: None,
                deletion_vector: None,
            }),
        ];
        let schema = checkpoint_schema();
        let rows: Vec<&Action> = actions.iter().collect();
        let batch = json_rows(&schema, &rows).unwrap().unwrap();
        // `add.size` as int32, `add.path` as a large string, plus `stats_parsed`.
        let DataType::Struct(add_fields) = schema.field_with_name("add").unwrap().data_type()
        else {
            unreachable!()
        };
        let retyped: Fields = add_fields
            .iter()
            .map(|f| match f.name().as_str() {
                "size" => Arc::new(Field::new("size", DataType::Int32, true)),
                "path" => Arc::new(Field::new("path", DataType::LargeUtf8, true)),
                _ => Arc::clone(f),
            })
            .collect();
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut columns = batch.columns().to_vec();
        let add_index = schema.index_of("add").unwrap();
        fields[add_index] = Field::new("add", DataType::Struct(retyped.clone()), true);
        columns[add_index] = cast(&columns[add_index], &DataType::Struct(retyped)).unwrap();
        fields.push(Field::new("stats_parsed", DataType::Int64, true));
        columns.push(Arc::new(arrow::array::Int64Array::from(vec![Some(1); 5])));
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        let file = Bytes::from(writer.into_inner().unwrap());
        // Read back grouped: other actions, then adds, then removes.
        let kind = |a: &Action| match a {
            Action::Add(_) => 1,
            Action::Remove(_) => 2,
            _ => 0,
        };
        let mut grouped = actions.clone();
        grouped.sort_by_key(kind);
        assert_eq!(decode(file, Read::All).unwrap(), grouped);
    }

    #[test]
    fn a_missing_required_field_fails_the_checkpoint() {
        let add = Add {
            path: "a".into(),
            partition_values: Default::default(),
            size: 1,
            modification_time: 2,
            data_change: true,
            stats: None,
            tags: None,
            deletion_vector: None,
        };
        let schema = checkpoint_schema();
        let batch = one_column_batch(&schema, "add", 1, |fields| {
            let column = file_columns::add_column(fields, &[&add])?;
            let column = column.as_struct();
            let children = fields
                .iter()
                .zip(column.columns())
                .map(|(f, c)| match f.name().as_str() {
                    "size" => new_null_array(f.data_type(), 1),
                    _ => Arc::clone(c),
                })
                .collect();
            Ok(Arc::new(StructArray::try_new(
                fields.clone(),
                children,
                None,
            )?))
        })
        .unwrap();
        let mut writer = ArrowWriter::try_new(Vec::new(), schema, None).unwrap();
        writer.write(&batch).unwrap();
        let file = Bytes::from(writer.into_inner().unwrap());
        let err = decode(file, Read::All).unwrap_err();
        assert!(err.contains("add action without size"), "{err}");
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
