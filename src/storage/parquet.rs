//! Parquet encoding of data files, with the per-file statistics Delta records.
//!
//! A [`ParquetFileWriter`] buffers one file in memory and, when finished, returns its bytes and
//! [`FileStatistics`] taken from the Parquet footer: row count, and per top-level column the
//! minimum, maximum and null count. Statistics are conservative: a bound that cannot be written
//! exactly (long strings, NaN, wide decimals, booleans, nested values) is left out, which tells
//! readers "cannot skip on this column" rather than risking a wrong skip.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{SortOptions, sort_to_indices};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, DecimalType, Float32Type, Float64Type, Int8Type,
    Int16Type, Int32Type, Int64Type, SchemaRef, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::WriterProperties;
use serde_json::{Map, Value};

use super::StorageError;

/// Longest string prefix recorded as a minimum; longer maxima are not recorded at all.
const STRING_STATS_PREFIX: usize = 32;

/// Most rows per row group. A row group is the unit scans share among cores and skip by
/// statistics: DataFusion splits a file's byte range across partitions at row-group
/// boundaries, so a table written as one million-row group (Parquet's default) is read by one
/// core. 128 Ki rows keeps every core busy from about a quarter of a million rows up (DuckDB
/// writes 122,880).
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Most bytes per row group (as the writer estimates them encoded), for tables of wide rows.
const ROW_GROUP_BYTES: usize = 64 * 1024 * 1024;

/// Most rows per data page: one engine batch. A point lookup (through an index or a
/// deletion-vector-sized row selection) decodes one page per column, so pages stay small; a
/// scan pays for every page it starts, so they are not smaller (2,048-row pages made TPC-H
/// q1 a fifth slower, see docs/performance.md).
const DATA_PAGE_ROWS: usize = 8192;

/// Largest dictionary per column chunk: columns with few distinct values keep their dictionary,
/// unique-ish ones fall back to plain pages early. A point lookup decompresses the column's
/// dictionary page before its data page, so a large dictionary would dominate its cost (16 KiB
/// instead of 64 KiB took an indexed lookup from 1.85 to 1.5 ms).
const DICTIONARY_PAGE_BYTES: usize = 16 * 1024;

/// Statistics of one data file, keyed by top-level column name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileStatistics {
    pub num_records: u64,
    pub min_values: Map<String, Value>,
    pub max_values: Map<String, Value>,
    pub null_count: Map<String, Value>,
}

/// A finished data file: its encoded bytes and statistics.
#[derive(Debug)]
pub struct EncodedFile {
    pub bytes: Bytes,
    pub stats: FileStatistics,
}

/// Encodes record batches of one schema into a single in-memory Parquet file.
pub struct ParquetFileWriter {
    writer: ArrowWriter<Vec<u8>>,
    schema: SchemaRef,
    rows: u64,
}

impl ParquetFileWriter {
    pub fn try_new(schema: SchemaRef) -> Result<Self, StorageError> {
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
            .set_data_page_row_count_limit(DATA_PAGE_ROWS)
            .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
            .build();
        let writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props))?;
        Ok(Self {
            writer,
            schema,
            rows: 0,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), StorageError> {
        self.writer.write(batch)?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Approximate encoded size so far, for rolling over to a new file.
    pub fn encoded_size(&self) -> usize {
        self.writer.bytes_written() + self.writer.in_progress_size()
    }

    pub fn finish(mut self) -> Result<EncodedFile, StorageError> {
        let metadata = self.writer.finish()?;
        let stats = file_statistics(&self.schema, &metadata)?;
        // `finish` wrote the footer; the buffer now holds the complete file.
        let bytes = Bytes::from(std::mem::take(self.writer.inner_mut()));
        Ok(EncodedFile { bytes, stats })
    }
}

/// The error for a panic of the Parquet reader on damaged bytes (it asserts on some damage — a
/// division by zero, an out-of-range offset — instead of failing).
pub fn reader_panicked(panic: &(dyn std::any::Any + Send)) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string());
    format!("the Parquet reader failed on it: {what}")
}

/// Runs `decode` over Parquet bytes that may be damaged; a panic of the reader becomes an
/// error (see [`reader_panicked`]).
pub fn guarded<T>(decode: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode))
        .unwrap_or_else(|panic| Err(reader_panicked(panic.as_ref())))
}

/// Checks that every column chunk a footer describes lies inside the file's `size` bytes: a
/// damaged footer can describe negative or out-of-file ranges, which the Parquet reader asserts
/// against (a panic) rather than reports.
pub fn check_layout(metadata: &ParquetMetaData, size: u64) -> Result<(), String> {
    for (g, group) in metadata.row_groups().iter().enumerate() {
        for column in group.columns() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or_else(|| column.data_page_offset());
            let length = column.compressed_size();
            let end = u64::try_from(start)
                .ok()
                .zip(u64::try_from(length).ok())
                .and_then(|(start, length)| start.checked_add(length));
            if end.is_none_or(|end| end > size) {
                return Err(format!(
                    "row group {g}, column {}: bytes {start} to {start} + {length} lie outside \
                     the file's {size} bytes",
                    column.column_path()
                ));
            }
        }
    }
    Ok(())
}

/// Reads and decodes the footer of the Parquet file at `location`, which is `size` bytes long.
pub async fn read_footer(
    store: &dyn ObjectStore,
    location: &Path,
    size: u64,
) -> Result<ParquetMetaData, StorageError> {
    let bad = || {
        StorageError::Parquet(ParquetError::General(format!(
            "'{location}' is not a Parquet file"
        )))
    };
    // The file ends with the footer's length (u32 LE) and the magic `PAR1`.
    let tail = store
        .get_range(location, size.saturating_sub(8)..size)
        .await?;
    if tail.len() != 8 || &tail[4..] != b"PAR1" {
        return Err(bad());
    }
    let length = u64::from(u32::from_le_bytes(tail[..4].try_into().map_err(|_| bad())?));
    let start = size.checked_sub(8 + length).ok_or_else(bad)?;
    let footer = store.get_range(location, start..size - 8).await?;
    Ok(ParquetMetaDataReader::decode_metadata(&footer)?)
}

fn file_statistics(
    schema: &SchemaRef,
    metadata: &ParquetMetaData,
) -> Result<FileStatistics, StorageError> {
    let row_groups = metadata.row_groups();
    let parquet_schema = metadata.file_metadata().schema_descr();
    let mut stats = FileStatistics {
        num_records: row_groups.iter().map(|rg| rg.num_rows() as u64).sum(),
        ..Default::default()
    };
    for field in schema.fields() {
        if field.data_type().is_nested() {
            continue;
        }
        let converter = StatisticsConverter::try_new(field.name(), schema, parquet_schema)?;
        let nulls = converter.row_group_null_counts(row_groups.iter())?;
        if nulls.null_count() == 0 {
            let total: u64 = nulls.values().iter().sum();
            stats.null_count.insert(field.name().clone(), total.into());
        }
        let mins = converter.row_group_mins(row_groups.iter())?;
        if let Some(v) = extreme_value(&mins, false)? {
            stats.min_values.insert(field.name().clone(), v);
        }
        let maxes = converter.row_group_maxes(row_groups.iter())?;
        if let Some(v) = extreme_value(&maxes, true)? {
            stats.max_values.insert(field.name().clone(), v);
        }
    }
    Ok(stats)
}

/// The smallest (or largest) value of per-row-group bounds, as a Delta stats JSON value.
///
/// A row group without a bound makes the whole file's bound unknown.
fn extreme_value(bounds: &ArrayRef, max: bool) -> Result<Option<Value>, StorageError> {
    if bounds.is_empty() || bounds.null_count() > 0 {
        return Ok(None);
    }
    let options = SortOptions {
        descending: max,
        nulls_first: false,
    };
    let index = sort_to_indices(bounds, Some(options), Some(1))?.value(0) as usize;
    Ok(json_bound(bounds.as_ref(), index, max))
}

/// Converts one array element into the JSON form Delta uses for statistics.
fn json_bound(array: &dyn Array, i: usize, max: bool) -> Option<Value> {
    let value = match array.data_type() {
        DataType::Int8 => array.as_primitive::<Int8Type>().value(i).into(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(i).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(i).into(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(i).into(),
        DataType::Float32 => finite(array.as_primitive::<Float32Type>().value(i).into())?,
        DataType::Float64 => finite(array.as_primitive::<Float64Type>().value(i))?,
        // f64 keeps 15 significant digits exactly; wider decimals would round.
        DataType::Decimal128(precision, scale) if *precision <= 15 => {
            let raw = array.as_primitive::<Decimal128Type>().value(i);
            let text = Decimal128Type::format_decimal(raw, *precision, *scale);
            Value::Number(serde_json::Number::from_f64(text.parse().ok()?)?)
        }
        DataType::Utf8 => string_bound(array.as_string::<i32>().value(i), max)?,
        DataType::LargeUtf8 => string_bound(array.as_string::<i64>().value(i), max)?,
        DataType::Utf8View => string_bound(array.as_string_view().value(i), max)?,
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(i);
            let date = chrono::DateTime::from_timestamp(i64::from(days) * 86_400, 0)?;
            Value::String(date.format("%Y-%m-%d").to_string())
        }
        DataType::Timestamp(unit, tz) => {
            let micros = match unit {
                TimeUnit::Second => array
                    .as_primitive::<TimestampSecondType>()
                    .value(i)
                    .checked_mul(1_000_000)?,
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .value(i)
                    .checked_mul(1_000)?,
                TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(i),
                TimeUnit::Nanosecond => {
                    let nanos = array.as_primitive::<TimestampNanosecondType>().value(i);
                    if max {
                        nanos.div_euclid(1_000) + i64::from(nanos.rem_euclid(1_000) != 0)
                    } else {
                        nanos.div_euclid(1_000)
                    }
                }
            };
            // Delta stats carry milliseconds: round outward so the bound still holds.
            let millis = if max {
                micros.div_euclid(1_000) + i64::from(micros.rem_euclid(1_000) != 0)
            } else {
                micros.div_euclid(1_000)
            };
            let ts = chrono::DateTime::from_timestamp_millis(millis)?;
            let suffix = if tz.is_some() { "Z" } else { "" };
            Value::String(format!("{}{suffix}", ts.format("%Y-%m-%dT%H:%M:%S%.3f")))
        }
        _ => return None,
    };
    Some(value)
}

fn finite(v: f64) -> Option<Value> {
    serde_json::Number::from_f64(v).map(Value::Number)
}

/// A string bound: minima are truncated to a prefix (still a lower bound); maxima that would
/// need truncation are dropped, because a truncated maximum is no longer an upper bound.
fn string_bound(s: &str, max: bool) -> Option<Value> {
    if s.chars().count() <= STRING_STATS_PREFIX {
        Some(Value::String(s.to_string()))
    } else if max {
        None
    } else {
        Some(Value::String(s.chars().take(STRING_STATS_PREFIX).collect()))
    }
}

/// Convenience for tests and callers holding a whole batch list.
pub fn encode_batches(
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> Result<EncodedFile, StorageError> {
    let mut writer = ParquetFileWriter::try_new(Arc::clone(&schema))?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn statistics_cover_all_row_groups_and_nulls() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let b1 = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![5, 3])),
                Arc::new(StringArray::from(vec![Some("m"), None])),
            ],
        )
        .unwrap();
        let b2 = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![9])),
                Arc::new(StringArray::from(vec![Some("a")])),
            ],
        )
        .unwrap();
        let file = encode_batches(schema, &[b1, b2]).unwrap();
        assert_eq!(file.stats.num_records, 3);
        assert_eq!(file.stats.min_values["id"], Value::from(3));
        assert_eq!(file.stats.max_values["id"], Value::from(9));
        assert_eq!(file.stats.min_values["name"], Value::from("a"));
        assert_eq!(file.stats.max_values["name"], Value::from("m"));
        assert_eq!(file.stats.null_count["name"], Value::from(1));
        assert_eq!(file.stats.null_count["id"], Value::from(0));
    }

    #[test]
    fn long_string_maximum_is_not_recorded() {
        assert_eq!(string_bound(&"x".repeat(40), true), None);
        assert_eq!(
            string_bound(&"x".repeat(40), false),
            Some(Value::String("x".repeat(32)))
        );
    }
}
