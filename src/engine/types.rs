//! SQL column types of `CREATE TABLE` and how they are stored.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use datafusion::sql::sqlparser::ast::{self, ArrayElemTypeDef, CharacterLength, ExactNumberInfo};

use super::EngineError;
use crate::txlog::{CHAR_VARCHAR_TYPE, DeclaredLength};

/// The field a column declared as `name sql` is stored as: its type, and for `VARCHAR(n)` and
/// `CHAR(n)` the declared length in the field's metadata, where Delta (and Spark) keep it.
/// Every write checks values against it; `CHAR(n)` is not padded (a `CHAR` without a length is
/// `CHAR(1)`, as in the SQL standard).
pub fn column_field(name: &str, sql: &ast::DataType, nullable: bool) -> Result<Field, EngineError> {
    let field = Field::new(name, column_type(sql)?, nullable);
    Ok(match declared_length(sql)? {
        Some(length) => field.with_metadata(HashMap::from([(
            CHAR_VARCHAR_TYPE.to_string(),
            length.metadata_value(),
        )])),
        None => field,
    })
}

/// The length a `VARCHAR(n)` / `CHAR(n)` declares.
fn declared_length(sql: &ast::DataType) -> Result<Option<DeclaredLength>, EngineError> {
    use ast::DataType as T;
    let (fixed, length) = match sql {
        T::Varchar(length)
        | T::CharVarying(length)
        | T::CharacterVarying(length)
        | T::Nvarchar(length) => (false, *length),
        T::Char(length) | T::Character(length) => (
            true,
            Some(length.unwrap_or(CharacterLength::IntegerLength {
                length: 1,
                unit: None,
            })),
        ),
        _ => return Ok(None),
    };
    match length {
        None | Some(CharacterLength::Max) => Ok(None),
        Some(CharacterLength::IntegerLength { length, .. }) => {
            let chars = usize::try_from(length)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    EngineError::InvalidInput(format!(
                        "length {length} of {sql} must be at least 1"
                    ))
                })?;
            Ok(Some(DeclaredLength { fixed, chars }))
        }
    }
}

/// The Arrow type a declared SQL column type is stored as.
///
/// As in PostgreSQL, `REAL` (`FLOAT4`, `FLOAT(1)`…`FLOAT(24)`) is 32-bit and `FLOAT` (`DOUBLE`,
/// `FLOAT(25)`…`FLOAT(53)`) 64-bit; `VARCHAR(n)` is a string (see [`column_field`] for its
/// length); `TIMESTAMP` is a timestamp without time zone, in microseconds.
///
/// Nested types nest to any depth, as Delta's `array`, `struct` and `map`: `INT[]` or
/// `ARRAY<INT>` is a list of `element`s, `STRUCT<x INT, y VARCHAR>` a struct of those fields,
/// `MAP(VARCHAR, INT)` a map whose `key_value` entries hold a non-null `key` and a `value`. Every
/// element, field and value may be NULL.
fn column_type(sql: &ast::DataType) -> Result<DataType, EngineError> {
    use ast::DataType as T;
    Ok(match sql {
        T::TinyInt(_) => DataType::Int8,
        T::SmallInt(_) | T::Int2(_) | T::Int16 => DataType::Int16,
        T::Int(_) | T::Integer(_) | T::Int4(_) | T::Int32 | T::MediumInt(_) => DataType::Int32,
        T::BigInt(_) | T::Int8(_) | T::Int64 => DataType::Int64,
        T::Real | T::Float4 | T::Float32 => DataType::Float32,
        T::Float(ExactNumberInfo::Precision(bits)) if *bits <= 24 => DataType::Float32,
        T::Float(_) | T::Double(_) | T::DoublePrecision | T::Float8 | T::Float64 => {
            DataType::Float64
        }
        T::Decimal(info) | T::Numeric(info) | T::Dec(info) => decimal(info)?,
        T::Varchar(_)
        | T::Char(_)
        | T::Character(_)
        | T::CharVarying(_)
        | T::CharacterVarying(_)
        | T::Text
        | T::String(_)
        | T::Nvarchar(_) => DataType::Utf8,
        T::Boolean | T::Bool => DataType::Boolean,
        T::Date => DataType::Date32,
        T::Timestamp(_, ast::TimezoneInfo::None | ast::TimezoneInfo::WithoutTimeZone)
        | T::Datetime(_) => DataType::Timestamp(TimeUnit::Microsecond, None),
        T::Timestamp(_, _) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        T::Binary(_) | T::Varbinary(_) | T::Blob(_) | T::Bytea => DataType::Binary,
        T::Array(
            ArrayElemTypeDef::AngleBracket(element)
            | ArrayElemTypeDef::SquareBracket(element, None),
        ) => list_of(column_type(element)?),
        T::Struct(fields, _) => DataType::Struct(struct_fields(fields)?),
        T::Map(key, value) => map_of(column_type(key)?, column_type(value)?),
        T::Time(..) => {
            return Err(refused(
                sql,
                "Delta has no time-of-day type; store a VARCHAR or a TIMESTAMP",
            ));
        }
        T::Uuid => {
            return Err(refused(
                sql,
                "Delta has no UUID type; store its text in a VARCHAR(36)",
            ));
        }
        other => return Err(EngineError::NotSupported(format!("column type {other}"))),
    })
}

fn refused(sql: &ast::DataType, reason: &str) -> EngineError {
    EngineError::NotSupported(format!("column type {sql}: {reason}"))
}

/// The list type of a column whose elements are `element`s, as Delta's `array` reads back.
pub fn list_of(element: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("element", element, true)))
}

/// The map type of a column, as Delta's `map` reads back.
pub fn map_of(key: DataType, value: DataType) -> DataType {
    let entries = Field::new(
        "key_value",
        DataType::Struct(Fields::from(vec![
            Field::new("key", key, false),
            Field::new("value", value, true),
        ])),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

fn struct_fields(fields: &[ast::StructField]) -> Result<Fields, EngineError> {
    let mut seen = Vec::with_capacity(fields.len());
    for field in fields {
        let name = field.field_name.as_ref().ok_or_else(|| {
            EngineError::InvalidInput(format!(
                "STRUCT field '{}' needs a name (STRUCT<name TYPE, …>)",
                field.field_type
            ))
        })?;
        let name = name.value.clone();
        if seen
            .iter()
            .any(|f: &Field| f.name().eq_ignore_ascii_case(&name))
        {
            return Err(EngineError::InvalidInput(format!(
                "STRUCT field '{name}' is named twice"
            )));
        }
        seen.push(Field::new(name, column_type(&field.field_type)?, true));
    }
    if seen.is_empty() {
        return Err(EngineError::InvalidInput(
            "a STRUCT needs at least one field".into(),
        ));
    }
    Ok(Fields::from(seen))
}

fn decimal(info: &ExactNumberInfo) -> Result<DataType, EngineError> {
    let (precision, scale) = match info {
        ExactNumberInfo::None => (38, 10),
        ExactNumberInfo::Precision(p) => (*p, 0),
        ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s),
    };
    let precision = u8::try_from(precision)
        .ok()
        .filter(|p| (1..=38).contains(p))
        .ok_or_else(|| {
            EngineError::InvalidInput(format!(
                "DECIMAL precision {precision} is not between 1 and 38"
            ))
        })?;
    let scale = i8::try_from(scale)
        .ok()
        .filter(|s| *s >= 0 && *s as u8 <= precision)
        .ok_or_else(|| {
            EngineError::InvalidInput(format!(
                "DECIMAL scale {scale} is not between 0 and the precision"
            ))
        })?;
    Ok(DataType::Decimal128(precision, scale))
}
