//! SQL column types of `CREATE TABLE` and how they are stored.

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::sql::sqlparser::ast::{self, ExactNumberInfo};

use super::EngineError;

/// The Arrow type a declared SQL column type is stored as.
///
/// As in PostgreSQL, `REAL` (`FLOAT4`, `FLOAT(1)`…`FLOAT(24)`) is 32-bit and `FLOAT` (`DOUBLE`,
/// `FLOAT(25)`…`FLOAT(53)`) 64-bit; `VARCHAR(n)` lengths are accepted but not enforced;
/// `TIMESTAMP` is a timestamp without time zone, in microseconds.
pub fn column_type(sql: &ast::DataType) -> Result<DataType, EngineError> {
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
        other => return Err(EngineError::NotSupported(format!("column type {other}"))),
    })
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
