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
//! A field's string-valued `metadata` entries are kept as Arrow field metadata, among them
//! [`CHAR_VARCHAR_TYPE`], the declared `char(n)` / `varchar(n)` of a `string` column as Spark
//! records it (and enforces it).

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
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
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
    Ok(json!({
        "name": field.name(),
        "type": type_json(field.data_type())?,
        "nullable": field.is_nullable(),
        "metadata": field.metadata(),
    }))
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
}
