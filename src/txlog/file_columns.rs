//! `add` and `remove` actions to and from a checkpoint's struct columns, column by column.
//!
//! A checkpoint holds one row per live file, so these two actions are nearly all of it. They
//! are built and read straight from Arrow arrays instead of through JSON text; the few other
//! actions (protocol, metadata, txn) take the JSON route in [`super::checkpoint`]. Reading is
//! lenient about how another engine typed a field (`size` as int32, strings as large or view
//! strings): each field is cast to the type the protocol gives it, and a field that is absent
//! reads as null. A required field that is null fails the checkpoint.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, Int32Builder, Int64Array, Int64Builder,
    MapArray, StringArray, StringBuilder, StructArray, new_null_array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Fields};
use arrow::error::ArrowError;

use super::{Action, Add, DeletionVectorDescriptor, Remove};

type StringMap = HashMap<String, Option<String>>;

/// The `add` struct column (of type `fields`) holding `adds`, one per row.
pub(super) fn add_column(fields: &Fields, adds: &[&Add]) -> Result<ArrayRef, ArrowError> {
    struct_column(fields, adds.len(), |field| {
        Ok(Some(match field.name().as_str() {
            "path" => strings(adds.iter().map(|a| Some(a.path.as_str()))),
            "partitionValues" => string_maps(
                field.data_type(),
                adds.iter().map(|a| Some(&a.partition_values)),
            )?,
            "size" => Arc::new(Int64Array::from_iter_values(adds.iter().map(|a| a.size))),
            "modificationTime" => Arc::new(Int64Array::from_iter_values(
                adds.iter().map(|a| a.modification_time),
            )),
            "dataChange" => Arc::new(BooleanArray::from_iter(
                adds.iter().map(|a| Some(a.data_change)),
            )),
            "stats" => strings(adds.iter().map(|a| a.stats.as_deref())),
            "tags" => string_maps(field.data_type(), adds.iter().map(|a| a.tags.as_ref()))?,
            "deletionVector" => deletion_vectors(
                field.data_type(),
                adds.iter().map(|a| a.deletion_vector.as_ref()),
            )?,
            _ => return Ok(None),
        }))
    })
}

/// The `remove` struct column (of type `fields`) holding `removes`, one per row.
pub(super) fn remove_column(fields: &Fields, removes: &[&Remove]) -> Result<ArrayRef, ArrowError> {
    struct_column(fields, removes.len(), |field| {
        Ok(Some(match field.name().as_str() {
            "path" => strings(removes.iter().map(|r| Some(r.path.as_str()))),
            "deletionTimestamp" => Arc::new(Int64Array::from_iter(
                removes.iter().map(|r| r.deletion_timestamp),
            )),
            "dataChange" => Arc::new(BooleanArray::from_iter(
                removes.iter().map(|r| Some(r.data_change)),
            )),
            "extendedFileMetadata" => Arc::new(BooleanArray::from_iter(
                removes.iter().map(|r| r.extended_file_metadata),
            )),
            "partitionValues" => string_maps(
                field.data_type(),
                removes.iter().map(|r| r.partition_values.as_ref()),
            )?,
            "size" => Arc::new(Int64Array::from_iter(removes.iter().map(|r| r.size))),
            "tags" => string_maps(field.data_type(), removes.iter().map(|r| r.tags.as_ref()))?,
            "deletionVector" => deletion_vectors(
                field.data_type(),
                removes.iter().map(|r| r.deletion_vector.as_ref()),
            )?,
            _ => return Ok(None),
        }))
    })
}

/// A struct column of `rows` rows, none of them null, whose fields `build` makes; a field it
/// knows nothing of (`None`) is null throughout.
fn struct_column(
    fields: &Fields,
    rows: usize,
    build: impl Fn(&Field) -> Result<Option<ArrayRef>, ArrowError>,
) -> Result<ArrayRef, ArrowError> {
    let columns = fields
        .iter()
        .map(|field| Ok(build(field)?.unwrap_or_else(|| new_null_array(field.data_type(), rows))))
        .collect::<Result<Vec<_>, ArrowError>>()?;
    Ok(Arc::new(StructArray::try_new(
        fields.clone(),
        columns,
        None,
    )?))
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

/// A map column of `data_type` (string keys and values); entries in key order, so the same
/// state always encodes the same bytes.
fn string_maps<'a>(
    data_type: &DataType,
    maps: impl Iterator<Item = Option<&'a StringMap>>,
) -> Result<ArrayRef, ArrowError> {
    let DataType::Map(entry, sorted) = data_type else {
        return Err(ArrowError::SchemaError(format!("{data_type} is not a map")));
    };
    let DataType::Struct(entry_fields) = entry.data_type() else {
        return Err(ArrowError::SchemaError(format!(
            "{entry} is not a map entry"
        )));
    };
    let mut keys = StringBuilder::new();
    let mut values = StringBuilder::new();
    let mut offsets = vec![0i32];
    let mut valid = Vec::new();
    let mut count = 0usize;
    for map in maps {
        valid.push(map.is_some());
        if let Some(map) = map {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by_key(|(k, _)| k.as_str());
            for (key, value) in entries {
                keys.append_value(key);
                values.append_option(value.as_deref());
            }
            count += map.len();
        }
        offsets.push(i32::try_from(count).map_err(|_| ArrowError::OffsetOverflowError(count))?);
    }
    let entries = StructArray::try_new(
        entry_fields.clone(),
        vec![Arc::new(keys.finish()), Arc::new(values.finish())],
        None,
    )?;
    Ok(Arc::new(MapArray::try_new(
        Arc::clone(entry),
        OffsetBuffer::new(offsets.into()),
        entries,
        Some(NullBuffer::from(valid)),
        *sorted,
    )?))
}

fn deletion_vectors<'a>(
    data_type: &DataType,
    dvs: impl Iterator<Item = Option<&'a DeletionVectorDescriptor>>,
) -> Result<ArrayRef, ArrowError> {
    let DataType::Struct(fields) = data_type else {
        return Err(ArrowError::SchemaError(format!(
            "{data_type} is not a struct"
        )));
    };
    let mut storage_type = StringBuilder::new();
    let mut path = StringBuilder::new();
    let mut offset = Int32Builder::new();
    let mut size = Int32Builder::new();
    let mut cardinality = Int64Builder::new();
    let mut valid = Vec::new();
    for dv in dvs {
        valid.push(dv.is_some());
        storage_type.append_option(dv.map(|d| d.storage_type.as_str()));
        path.append_option(dv.map(|d| d.path_or_inline_dv.as_str()));
        offset.append_option(dv.and_then(|d| d.offset));
        size.append_option(dv.map(|d| d.size_in_bytes));
        cardinality.append_option(dv.map(|d| d.cardinality));
    }
    let mut built: HashMap<&str, ArrayRef> = HashMap::from([
        ("storageType", Arc::new(storage_type.finish()) as ArrayRef),
        ("pathOrInlineDv", Arc::new(path.finish())),
        ("offset", Arc::new(offset.finish())),
        ("sizeInBytes", Arc::new(size.finish())),
        ("cardinality", Arc::new(cardinality.finish())),
    ]);
    let rows = valid.len();
    let columns = fields
        .iter()
        .map(|f| {
            built
                .remove(f.name().as_str())
                .unwrap_or_else(|| new_null_array(f.data_type(), rows))
        })
        .collect();
    Ok(Arc::new(StructArray::try_new(
        fields.clone(),
        columns,
        Some(NullBuffer::from(valid)),
    )?))
}

/// The fields of one struct column of a checkpoint, cast to the types the protocol gives them.
struct Columns<'a> {
    array: &'a StructArray,
    what: &'static str,
}

impl<'a> Columns<'a> {
    fn new(array: &'a StructArray, what: &'static str) -> Self {
        Self { array, what }
    }

    fn cast(&self, name: &str, to: &DataType) -> Result<Option<ArrayRef>, String> {
        match self.array.column_by_name(name) {
            None => Ok(None),
            Some(column) if column.data_type() == to => Ok(Some(Arc::clone(column))),
            Some(column) => cast(column, to)
                .map(Some)
                .map_err(|e| format!("{}.{name}: {e}", self.what)),
        }
    }

    fn strings(&self, name: &str) -> Result<Strings, String> {
        Ok(Strings(
            self.cast(name, &DataType::Utf8)?
                .map(|a| a.as_string::<i32>().clone()),
        ))
    }

    fn longs(&self, name: &str) -> Result<Option<Int64Array>, String> {
        Ok(self
            .cast(name, &DataType::Int64)?
            .map(|a| a.as_primitive().clone()))
    }

    fn ints(&self, name: &str) -> Result<Option<Int32Array>, String> {
        Ok(self
            .cast(name, &DataType::Int32)?
            .map(|a| a.as_primitive().clone()))
    }

    fn booleans(&self, name: &str) -> Result<Option<BooleanArray>, String> {
        Ok(self
            .cast(name, &DataType::Boolean)?
            .map(|a| a.as_boolean().clone()))
    }

    fn maps(&self, name: &str) -> Result<Maps, String> {
        let Some(column) = self.array.column_by_name(name) else {
            return Ok(Maps(None));
        };
        let Some(map) = column.as_map_opt() else {
            return Err(format!(
                "{}.{name} is {}, not a map",
                self.what,
                column.data_type()
            ));
        };
        let text = |a: &ArrayRef| {
            cast(a, &DataType::Utf8)
                .map(|a| a.as_string::<i32>().clone())
                .map_err(|e| format!("{}.{name}: {e}", self.what))
        };
        Ok(Maps(Some((
            map.clone(),
            text(map.keys())?,
            text(map.values())?,
        ))))
    }

    fn deletion_vectors(&self) -> Result<DeletionVectors, String> {
        let Some(column) = self.array.column_by_name("deletionVector") else {
            return Ok(DeletionVectors(None));
        };
        let Some(array) = column.as_struct_opt() else {
            return Err(format!(
                "{}.deletionVector is {}, not a struct",
                self.what,
                column.data_type()
            ));
        };
        let dv = Columns::new(array, "deletionVector");
        Ok(DeletionVectors(Some(DeletionVectorColumns {
            array: array.clone(),
            storage_type: dv.strings("storageType")?,
            path: dv.strings("pathOrInlineDv")?,
            offset: dv.ints("offset")?,
            size: dv.ints("sizeInBytes")?,
            cardinality: dv.longs("cardinality")?,
        })))
    }
}

struct Strings(Option<StringArray>);

impl Strings {
    fn get(&self, row: usize) -> Option<String> {
        self.0
            .as_ref()
            .filter(|a| a.is_valid(row))
            .map(|a| a.value(row).to_string())
    }
}

fn value<T: arrow::datatypes::ArrowPrimitiveType>(
    array: &Option<arrow::array::PrimitiveArray<T>>,
    row: usize,
) -> Option<T::Native> {
    array
        .as_ref()
        .filter(|a| a.is_valid(row))
        .map(|a| a.value(row))
}

fn boolean(array: &Option<BooleanArray>, row: usize) -> Option<bool> {
    array
        .as_ref()
        .filter(|a| a.is_valid(row))
        .map(|a| a.value(row))
}

struct Maps(Option<(MapArray, StringArray, StringArray)>);

impl Maps {
    fn get(&self, row: usize) -> Option<StringMap> {
        let (map, keys, values) = self.0.as_ref().filter(|(m, _, _)| m.is_valid(row))?;
        let offsets = map.value_offsets();
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        Some(
            (start..end)
                .filter(|i| keys.is_valid(*i))
                .map(|i| {
                    let value = values.is_valid(i).then(|| values.value(i).to_string());
                    (keys.value(i).to_string(), value)
                })
                .collect(),
        )
    }
}

struct DeletionVectorColumns {
    array: StructArray,
    storage_type: Strings,
    path: Strings,
    offset: Option<Int32Array>,
    size: Option<Int32Array>,
    cardinality: Option<Int64Array>,
}

struct DeletionVectors(Option<DeletionVectorColumns>);

impl DeletionVectors {
    fn get(&self, row: usize) -> Result<Option<DeletionVectorDescriptor>, String> {
        let Some(dv) = self.0.as_ref().filter(|dv| dv.array.is_valid(row)) else {
            return Ok(None);
        };
        let missing = |field: &str| format!("deletionVector without {field}");
        Ok(Some(DeletionVectorDescriptor {
            storage_type: dv
                .storage_type
                .get(row)
                .ok_or_else(|| missing("storageType"))?,
            path_or_inline_dv: dv.path.get(row).ok_or_else(|| missing("pathOrInlineDv"))?,
            offset: value(&dv.offset, row),
            size_in_bytes: value(&dv.size, row).ok_or_else(|| missing("sizeInBytes"))?,
            cardinality: value(&dv.cardinality, row).ok_or_else(|| missing("cardinality"))?,
        }))
    }
}

/// Decodes the `add` column into `actions`: one `add` for each row where it is not null.
pub(super) fn decode_adds(array: &StructArray, actions: &mut Vec<Action>) -> Result<(), String> {
    let columns = Columns::new(array, "add");
    let path = columns.strings("path")?;
    let partition_values = columns.maps("partitionValues")?;
    let size = columns.longs("size")?;
    let modification_time = columns.longs("modificationTime")?;
    let data_change = columns.booleans("dataChange")?;
    let stats = columns.strings("stats")?;
    let tags = columns.maps("tags")?;
    let deletion_vector = columns.deletion_vectors()?;
    let missing = |field: &str| format!("add action without {field}");
    for row in (0..array.len()).filter(|row| array.is_valid(*row)) {
        actions.push(Action::Add(Add {
            path: path.get(row).ok_or_else(|| missing("path"))?,
            partition_values: partition_values.get(row).unwrap_or_default(),
            size: value(&size, row).ok_or_else(|| missing("size"))?,
            modification_time: value(&modification_time, row)
                .ok_or_else(|| missing("modificationTime"))?,
            data_change: boolean(&data_change, row).ok_or_else(|| missing("dataChange"))?,
            stats: stats.get(row),
            tags: tags.get(row),
            deletion_vector: deletion_vector.get(row)?,
        }));
    }
    Ok(())
}

/// Decodes the `remove` column into `actions`: one `remove` for each row where it is not null.
pub(super) fn decode_removes(array: &StructArray, actions: &mut Vec<Action>) -> Result<(), String> {
    let columns = Columns::new(array, "remove");
    let path = columns.strings("path")?;
    let deletion_timestamp = columns.longs("deletionTimestamp")?;
    let data_change = columns.booleans("dataChange")?;
    let extended_file_metadata = columns.booleans("extendedFileMetadata")?;
    let partition_values = columns.maps("partitionValues")?;
    let size = columns.longs("size")?;
    let tags = columns.maps("tags")?;
    let deletion_vector = columns.deletion_vectors()?;
    let missing = |field: &str| format!("remove action without {field}");
    for row in (0..array.len()).filter(|row| array.is_valid(*row)) {
        actions.push(Action::Remove(Remove {
            path: path.get(row).ok_or_else(|| missing("path"))?,
            deletion_timestamp: value(&deletion_timestamp, row),
            data_change: boolean(&data_change, row).ok_or_else(|| missing("dataChange"))?,
            extended_file_metadata: boolean(&extended_file_metadata, row),
            partition_values: partition_values.get(row),
            size: value(&size, row),
            tags: tags.get(row),
            deletion_vector: deletion_vector.get(row)?,
        }));
    }
    Ok(())
}
