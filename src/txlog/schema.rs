//! Conversion between Delta's schema JSON (`metaData.schemaString`) and Arrow schemas.
//!
//! | Delta            | Arrow                         |
//! |------------------|-------------------------------|
//! | byte/short/integer/long | Int8/Int16/Int32/Int64 |
//! | float/double     | Float32/Float64               |
//! | decimal(p,s)     | Decimal128(p,s)               |
//! | string / binary  | Utf8 / Binary                 |
//! | boolean / date   | Boolean / Date32              |
//! | timestamp        | Timestamp(µs, "UTC")          |
//! | timestamp_ntz    | Timestamp(µs, none)           |
//! | struct/array/map | Struct/List/Map               |
//!
//! A field's `metadata` entries are kept as Arrow field metadata, among them
//! [`CHAR_VARCHAR_TYPE`], the declared `char(n)` / `varchar(n)` of a `string` column as Spark
//! records it (and enforces it). Values that are not strings (a column mapping id, a list of
//! type changes) are kept as their JSON text and written back as JSON.
//!
//! With column mapping (mode `name`), a column's data lives in the data files under its
//! *physical* name ([`PHYSICAL_NAME`] in its metadata), which never changes; renaming a column
//! changes only its display name, and dropping it removes it from the schema alone.
//! [`physical_name`] and [`physical_schema`] give what the files and the `add` statistics use.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use serde_json::{Value, json};

use super::TxLogError;

/// The field metadata key holding a string column's declared `char(n)` or `varchar(n)`.
pub const CHAR_VARCHAR_TYPE: &str = "__CHAR_VARCHAR_TYPE_STRING";

/// The declared length of a `CHAR(n)` or `VARCHAR(n)` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeclaredLength {
    /// `CHAR(n)` rather than `VARCHAR(n)`.
    pub fixed: bool,
    /// The most characters a value may have.
    pub chars: usize,
}

impl DeclaredLength {
    /// The metadata value recording this length (`varchar(20)`).
    pub fn metadata_value(&self) -> String {
        let kind = if self.fixed { "char" } else { "varchar" };
        format!("{kind}({})", self.chars)
    }

    /// The SQL spelling (`VARCHAR(20)`).
    pub fn sql_name(&self) -> String {
        self.metadata_value().to_uppercase()
    }
}

/// The declared length `field`'s metadata records, if any.
pub fn declared_length(field: &Field) -> Option<DeclaredLength> {
    let text = field
        .metadata()
        .get(CHAR_VARCHAR_TYPE)?
        .to_ascii_lowercase();
    let (fixed, rest) = match text.strip_prefix("varchar(") {
        Some(rest) => (false, rest),
        None => (true, text.strip_prefix("char(")?),
    };
    let chars = rest.strip_suffix(')')?.trim().parse().ok()?;
    Some(DeclaredLength { fixed, chars })
}

/// The field metadata key holding a column's physical name (column mapping).
pub const PHYSICAL_NAME: &str = "delta.columnMapping.physicalName";

/// The field metadata key holding a column's column mapping id.
pub const COLUMN_MAPPING_ID: &str = "delta.columnMapping.id";

/// The field metadata key holding a column's history of type changes (type widening).
pub const TYPE_CHANGES: &str = "delta.typeChanges";

/// The Arrow field metadata key the Parquet writer stores as a column's `field_id`.
const PARQUET_FIELD_ID: &str = "PARQUET:field_id";

/// Field metadata keys whose Delta values are JSON numbers, booleans, lists or objects: kept
/// in Arrow as JSON text, written back as JSON.
const JSON_VALUED: &[&str] = &[
    COLUMN_MAPPING_ID,
    TYPE_CHANGES,
    "delta.columnMapping.nested.ids",
    "delta.identity.start",
    "delta.identity.step",
    "delta.identity.highWaterMark",
    "delta.identity.allowExplicitInsert",
];

/// The name under which `field`'s values are stored in data files and file statistics: its
/// physical name under column mapping, else its name.
pub fn physical_name(field: &Field) -> &str {
    field
        .metadata()
        .get(PHYSICAL_NAME)
        .map_or(field.name().as_str(), String::as_str)
}

/// True when a column of `schema` has a physical name (column mapping is on).
pub fn is_mapped(schema: &Schema) -> bool {
    schema
        .fields()
        .iter()
        .any(|f| f.metadata().contains_key(PHYSICAL_NAME))
}

/// `schema` as the data files hold it: each column under its physical name, with its column
/// mapping id as the Parquet field id. The same schema when column mapping is off.
pub fn physical_schema(schema: &Schema) -> Schema {
    if !is_mapped(schema) {
        return schema.clone();
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let mut metadata = f.metadata().clone();
            if let Some(id) = metadata.get(COLUMN_MAPPING_ID).cloned() {
                metadata.insert(PARQUET_FIELD_ID.to_string(), id);
            }
            Field::new(physical_name(f), f.data_type().clone(), f.is_nullable())
                .with_metadata(metadata)
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// `field` without the metadata that ties it to one table's files (column mapping, type
/// history), for a column of a new table made from it.
pub fn unmapped(field: &Field) -> Field {
    let mut metadata = field.metadata().clone();
    for key in [
        PHYSICAL_NAME,
        COLUMN_MAPPING_ID,
        TYPE_CHANGES,
        PARQUET_FIELD_ID,
    ] {
        metadata.remove(key);
    }
    let data_type = match field.data_type() {
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(|f| unmapped(f)).collect()),
        DataType::List(element) => DataType::List(Arc::new(unmapped(element))),
        DataType::Map(entries, sorted) => DataType::Map(Arc::new(unmapped(entries)), *sorted),
        other => other.clone(),
    };
    field
        .clone()
        .with_data_type(data_type)
        .with_metadata(metadata)
}

/// Parses `schemaString` into an Arrow schema.
pub fn arrow_schema_from_delta(schema_string: &str) -> Result<Schema, TxLogError> {
    let value: Value = serde_json::from_str(schema_string)?;
    let fields = struct_fields(&value)?;
    Ok(Schema::new(fields))
}

/// Serializes an Arrow schema as Delta `schemaString`.
pub fn delta_schema_string(schema: &Schema) -> Result<String, TxLogError> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| field_json(f))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(serde_json::to_string(
        &json!({"type": "struct", "fields": fields}),
    )?)
}

fn corrupt(reason: impl Into<String>) -> TxLogError {
    TxLogError::Corrupt {
        path: "schemaString".into(),
        reason: reason.into(),
    }
}

fn struct_fields(value: &Value) -> Result<Fields, TxLogError> {
    let fields = value["fields"]
        .as_array()
        .ok_or_else(|| corrupt("struct type without fields"))?;
    fields
        .iter()
        .map(|f| {
            let name = f["name"]
                .as_str()
                .ok_or_else(|| corrupt("field without name"))?;
            let nullable = f["nullable"].as_bool().unwrap_or(true);
            let metadata: HashMap<String, String> = f["metadata"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(key, value)| {
                    let text = match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    (key.clone(), text)
                })
                .collect();
            let field = Field::new(name, data_type(&f["type"])?, nullable).with_metadata(metadata);
            Ok(Arc::new(field))
        })
        .collect()
}

fn data_type(value: &Value) -> Result<DataType, TxLogError> {
    if let Some(name) = value.as_str() {
        return primitive(name);
    }
    match value["type"].as_str() {
        Some("struct") => Ok(DataType::Struct(struct_fields(value)?)),
        Some("array") => {
            let element = data_type(&value["elementType"])?;
            let nullable = value["containsNull"].as_bool().unwrap_or(true);
            Ok(DataType::List(Arc::new(Field::new(
                "element", element, nullable,
            ))))
        }
        Some("map") => {
            let key = data_type(&value["keyType"])?;
            let val = data_type(&value["valueType"])?;
            let nullable = value["valueContainsNull"].as_bool().unwrap_or(true);
            let entries = Field::new(
                "key_value",
                DataType::Struct(Fields::from(vec![
                    Field::new("key", key, false),
                    Field::new("value", val, nullable),
                ])),
                false,
            );
            Ok(DataType::Map(Arc::new(entries), false))
        }
        other => Err(corrupt(format!("unknown complex type {other:?}"))),
    }
}

fn primitive(name: &str) -> Result<DataType, TxLogError> {
    Ok(match name {
        "string" => DataType::Utf8,
        "long" => DataType::Int64,
        "integer" => DataType::Int32,
        "short" => DataType::Int16,
        "byte" => DataType::Int8,
        "float" => DataType::Float32,
        "double" => DataType::Float64,
        "boolean" => DataType::Boolean,
        "binary" => DataType::Binary,
        "date" => DataType::Date32,
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "timestamp_ntz" => DataType::Timestamp(TimeUnit::Microsecond, None),
        decimal if decimal.starts_with("decimal(") => {
            let inner = decimal.trim_start_matches("decimal(").trim_end_matches(')');
            let (p, s) = inner
                .split_once(',')
                .ok_or_else(|| corrupt(format!("bad decimal type {decimal}")))?;
            let p: u8 = p.trim().parse().map_err(|_| corrupt(decimal.to_string()))?;
            let s: i8 = s.trim().parse().map_err(|_| corrupt(decimal.to_string()))?;
            DataType::Decimal128(p, s)
        }
        other => {
            return Err(TxLogError::Unsupported(format!(
                "Delta column type '{other}'"
            )));
        }
    })
}

fn field_json(field: &Field) -> Result<Value, TxLogError> {
    let metadata: serde_json::Map<String, Value> = field
        .metadata()
        .iter()
        .filter(|(key, _)| key.as_str() != PARQUET_FIELD_ID)
        .map(|(key, text)| {
            let value = match JSON_VALUED.contains(&key.as_str()) {
                true => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone())),
                false => Value::String(text.clone()),
            };
            (key.clone(), value)
        })
        .collect();
    Ok(json!({
        "name": field.name(),
        "type": type_json(field.data_type())?,
        "nullable": field.is_nullable(),
        "metadata": metadata,
    }))
}

/// The Delta name of a primitive `data_type` (`integer`, `decimal(10,2)`, …), as a type
/// change records it.
pub fn delta_type_name(data_type: &DataType) -> Result<String, TxLogError> {
    match type_json(data_type)? {
        Value::String(name) => Ok(name),
        other => Ok(other.to_string()),
    }
}

fn type_json(data_type: &DataType) -> Result<Value, TxLogError> {
    let name = match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string",
        DataType::Int64 => "long",
        DataType::Int32 => "integer",
        DataType::Int16 => "short",
        DataType::Int8 => "byte",
        DataType::Float32 => "float",
        DataType::Float64 => "double",
        DataType::Boolean => "boolean",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary",
        DataType::Date32 => "date",
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "timestamp",
        DataType::Timestamp(TimeUnit::Microsecond, None) => "timestamp_ntz",
        DataType::Decimal128(p, s) => return Ok(Value::String(format!("decimal({p},{s})"))),
        DataType::Struct(fields) => {
            let fields = fields
                .iter()
                .map(|f| field_json(f))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(json!({"type": "struct", "fields": fields}));
        }
        DataType::List(element) => {
            return Ok(json!({
                "type": "array",
                "elementType": type_json(element.data_type())?,
                "containsNull": element.is_nullable(),
            }));
        }
        DataType::Map(entries, _) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(TxLogError::Unsupported(format!("map type {data_type}")));
            };
            let [key, value] = kv.iter().collect::<Vec<_>>()[..] else {
                return Err(TxLogError::Unsupported(format!("map type {data_type}")));
            };
            return Ok(json!({
                "type": "map",
                "keyType": type_json(key.data_type())?,
                "valueType": type_json(value.data_type())?,
                "valueContainsNull": value.is_nullable(),
            }));
        }
        other => {
            return Err(TxLogError::Unsupported(format!(
                "column type {other} in a Delta table"
            )));
        }
    };
    Ok(Value::String(name.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_round_trips() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("price", DataType::Decimal128(10, 2), true),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new("day", DataType::Date32, true),
            Field::new("code", DataType::Utf8, true).with_metadata(HashMap::from([(
                CHAR_VARCHAR_TYPE.to_string(),
                "varchar(3)".to_string(),
            )])),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))),
                true,
            ),
            Field::new(
                "point",
                DataType::Struct(Fields::from(vec![
                    Field::new("x", DataType::Float64, false),
                    Field::new("y", DataType::Float64, true),
                ])),
                true,
            ),
            Field::new(
                "attrs",
                DataType::Map(
                    Arc::new(Field::new(
                        "key_value",
                        DataType::Struct(Fields::from(vec![
                            Field::new("key", DataType::Utf8, false),
                            Field::new(
                                "value",
                                DataType::List(Arc::new(Field::new(
                                    "element",
                                    DataType::Int64,
                                    false,
                                ))),
                                true,
                            ),
                        ])),
                        false,
                    )),
                    false,
                ),
                true,
            ),
        ]);
        let text = delta_schema_string(&schema).unwrap();
        assert!(text.contains(r#""type":"decimal(10,2)""#), "{text}");
        assert!(text.contains(r#""keyType":"string""#), "{text}");
        assert!(
            text.contains(r#""metadata":{"__CHAR_VARCHAR_TYPE_STRING":"varchar(3)"}"#),
            "{text}"
        );
        let read = arrow_schema_from_delta(&text).unwrap();
        assert_eq!(read, schema);
        assert_eq!(
            declared_length(read.field_with_name("code").unwrap()),
            Some(DeclaredLength {
                fixed: false,
                chars: 3
            })
        );
    }

    /// Column mapping's numeric ids and a type history are written back as JSON values; the
    /// physical schema names columns as the files do, with the ids as Parquet field ids.
    #[test]
    fn column_mapping_metadata_round_trips() {
        let text = concat!(
            r#"{"type":"struct","fields":[{"name":"label","type":"long","nullable":true,"#,
            r#""metadata":{"delta.columnMapping.id":2,"delta.columnMapping.physicalName":"name","#,
            r#""delta.typeChanges":[{"fromType":"integer","toType":"long"}]}},"#,
            r#"{"name":"k","type":"integer","nullable":false,"metadata":{}}]}"#
        );
        let schema = arrow_schema_from_delta(text).unwrap();
        let label = schema.field(0);
        assert_eq!(label.metadata()[COLUMN_MAPPING_ID], "2");
        assert_eq!(physical_name(label), "name");
        assert_eq!(physical_name(schema.field(1)), "k");
        let written: Value = serde_json::from_str(&delta_schema_string(&schema).unwrap()).unwrap();
        let metadata = &written["fields"][0]["metadata"];
        assert_eq!(metadata[COLUMN_MAPPING_ID], json!(2));
        assert_eq!(metadata[TYPE_CHANGES][0]["toType"], json!("long"));
        assert_eq!(metadata[PHYSICAL_NAME], json!("name"));
        let physical = physical_schema(&schema);
        assert_eq!(physical.field(0).name(), "name");
        assert_eq!(physical.field(0).metadata()[PARQUET_FIELD_ID], "2");
        assert!(is_mapped(&schema));
        assert!(!is_mapped(&Schema::new(vec![unmapped(label)])));
    }
}
