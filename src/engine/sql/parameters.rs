//! Statement parameters: placeholders in SQL text and the values bound to them.
//!
//! A statement may hold positional placeholders, either `?` (JDBC, ODBC, ADBC's habit) or
//! `$1`, `$2`, … (DataFusion's and PostgreSQL's); one statement uses one form. Preparing numbers
//! the `?`s left to right, so every prepared statement speaks `$N`. Binding replaces each `$N`
//! with its value written as a SQL literal — built through sqlparser's own literal printer, so
//! a string value can never end its quotes — and the bound statement then runs like any other.
//! Every statement kind therefore takes parameters, including UPDATE and DELETE, which MiniDB
//! plans itself.

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::Value;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::lexing::{byte_range, splice, tokens};
use crate::engine::EngineError;

/// `sql` with every `?` numbered as `$1`, `$2`, …, and its number of parameters (the highest
/// `$N`).
pub fn number_placeholders(sql: &str) -> Result<(String, usize), EngineError> {
    let mut questions = 0;
    let mut highest = 0;
    let numbered = splice_placeholders(sql, |placeholder| match placeholder {
        Placeholder::Question => {
            questions += 1;
            Ok(format!("${questions}"))
        }
        Placeholder::Numbered(n) => {
            highest = highest.max(n);
            Ok(format!("${n}"))
        }
    })?;
    if questions > 0 && highest > 0 {
        return Err(EngineError::InvalidInput(
            "a statement uses either ? or $1, $2, … placeholders, not both".into(),
        ));
    }
    Ok((numbered, questions.max(highest)))
}

/// `sql` (numbered by [`number_placeholders`]) with `$N` replaced by `literals[N - 1]`.
pub fn bind(sql: &str, literals: &[String]) -> Result<String, EngineError> {
    splice_placeholders(sql, |placeholder| {
        let Placeholder::Numbered(n) = placeholder else {
            return Err(EngineError::InvalidInput(
                "bind parameters to a prepared statement, whose placeholders are numbered".into(),
            ));
        };
        literals.get(n - 1).cloned().ok_or_else(|| {
            EngineError::InvalidInput(format!(
                "the statement uses parameter ${n} but {} value(s) were bound",
                literals.len()
            ))
        })
    })
}

/// The statements that run `sql` once per row of `rows`. An `INSERT … VALUES (…)` of one row
/// becomes a single INSERT of all rows, so a batch of parameter rows writes one file, not one
/// per row.
pub fn bind_rows(sql: &str, rows: &[Vec<String>]) -> Result<Vec<String>, EngineError> {
    if rows.len() > 1
        && let Some((head, row)) = single_values_row(sql)?
    {
        let tuples = rows
            .iter()
            .map(|literals| bind(row, literals))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(vec![format!("{head}{}", tuples.join(", "))]);
    }
    rows.iter().map(|literals| bind(sql, literals)).collect()
}

/// For `INSERT … VALUES (<row>)` with nothing after the row (but a `;`): the text before the
/// row and the row.
fn single_values_row(sql: &str) -> Result<Option<(&str, &str)>, EngineError> {
    let tokens = tokens(sql)?;
    let is_keyword = |i: usize, keyword: Keyword| matches!(tokens.get(i).map(|t| &t.token), Some(Token::Word(w)) if w.keyword == keyword);
    if !is_keyword(0, Keyword::INSERT) {
        return Ok(None);
    }
    let mut depth = 0usize;
    let mut values = None;
    for (i, token) in tokens.iter().enumerate() {
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            _ if depth == 0 && is_keyword(i, Keyword::VALUES) => {
                values = Some(i);
                break;
            }
            _ => {}
        }
    }
    let Some(open) = values.map(|i| i + 1) else {
        return Ok(None);
    };
    if tokens.get(open).map(|t| &t.token) != Some(&Token::LParen) {
        return Ok(None);
    }
    let mut depth = 0usize;
    let mut close = None;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let Some(close) = close else {
        return Ok(None);
    };
    let rest = &tokens[close + 1..];
    if !rest
        .iter()
        .all(|t| matches!(t.token, Token::SemiColon | Token::EOF))
    {
        return Ok(None);
    }
    let row = byte_range(sql, tokens[open].span.union(&tokens[close].span));
    Ok(Some((&sql[..row.start], &sql[row])))
}

/// Each row of `batch` as SQL literals, one per column: the values of one execution.
pub fn literal_rows(batch: &RecordBatch) -> Result<Vec<Vec<String>>, EngineError> {
    (0..batch.num_rows())
        .map(|row| {
            batch
                .columns()
                .iter()
                .map(|column| literal(&ScalarValue::try_from_array(column.as_ref(), row)?))
                .collect()
        })
        .collect()
}

/// `value` as a SQL literal of its type.
pub fn literal(value: &ScalarValue) -> Result<String, EngineError> {
    if value.is_null() {
        return Ok("NULL".into());
    }
    let quoted = |text: String| Value::SingleQuotedString(text).to_string();
    let cast = |text: String, sql_type: &str| format!("CAST({} AS {sql_type})", quoted(text));
    Ok(match value {
        // Clients that send a parameter of any type (flightsql-dbapi) send a union.
        ScalarValue::Union(Some((_, inner)), _, _) => literal(inner)?,
        // A dictionary-encoded column binds its values.
        ScalarValue::Dictionary(_, inner) => literal(inner)?,
        ScalarValue::Boolean(Some(b)) => if *b { "TRUE" } else { "FALSE" }.into(),
        ScalarValue::Int8(_)
        | ScalarValue::Int16(_)
        | ScalarValue::Int32(_)
        | ScalarValue::Int64(_)
        | ScalarValue::UInt8(_)
        | ScalarValue::UInt16(_)
        | ScalarValue::UInt32(_)
        | ScalarValue::UInt64(_) => value.to_string(),
        // Every half-precision value is exactly a REAL.
        ScalarValue::Float16(Some(f)) => float(f.to_f64(), "REAL"),
        ScalarValue::Float32(Some(f)) => float(f64::from(*f), "REAL"),
        ScalarValue::Float64(Some(f)) => float(*f, "DOUBLE"),
        ScalarValue::Decimal128(Some(_), precision, scale) => {
            format!("CAST({value} AS DECIMAL({precision}, {scale}))")
        }
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => quoted(s.clone()),
        ScalarValue::Binary(Some(b))
        | ScalarValue::LargeBinary(Some(b))
        | ScalarValue::BinaryView(Some(b))
        | ScalarValue::FixedSizeBinary(_, Some(b)) => {
            let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
            format!("X'{hex}'")
        }
        ScalarValue::Date32(_) | ScalarValue::Date64(_) => cast(value.to_string(), "DATE"),
        ScalarValue::Time32Second(_)
        | ScalarValue::Time32Millisecond(_)
        | ScalarValue::Time64Microsecond(_)
        | ScalarValue::Time64Nanosecond(_) => cast(value.to_string(), "TIME"),
        ScalarValue::TimestampSecond(_, tz)
        | ScalarValue::TimestampMillisecond(_, tz)
        | ScalarValue::TimestampMicrosecond(_, tz)
        | ScalarValue::TimestampNanosecond(_, tz) => {
            let text = arrow::util::display::array_value_to_string(&value.to_array()?, 0)
                .map_err(datafusion::error::DataFusionError::from)?;
            match tz {
                Some(_) => cast(text, "TIMESTAMPTZ"),
                None => cast(text, "TIMESTAMP"),
            }
        }
        ScalarValue::List(_)
        | ScalarValue::LargeList(_)
        | ScalarValue::FixedSizeList(_)
        | ScalarValue::Struct(_)
        | ScalarValue::Map(_) => {
            // Built from its parts, then cast to exactly the bound type (whose Arrow name
            // `arrow_cast` reads back), so empty lists and NULL fields keep their types.
            let arrow_type = quoted(value.data_type().to_string());
            format!("arrow_cast({}, {arrow_type})", nested(value)?)
        }
        other => {
            return Err(EngineError::NotSupported(format!(
                "parameters of type {}",
                other.data_type()
            )));
        }
    })
}

/// A list, struct or map value built by SQL functions from the literals of its parts.
fn nested(value: &ScalarValue) -> Result<String, EngineError> {
    let parts = |array: &dyn Array| -> Result<Vec<String>, EngineError> {
        (0..array.len())
            .map(|i| literal(&ScalarValue::try_from_array(array, i)?))
            .collect()
    };
    Ok(match value {
        ScalarValue::List(list) => format!("make_array({})", parts(&list.value(0))?.join(", ")),
        ScalarValue::LargeList(list) => {
            format!("make_array({})", parts(&list.value(0))?.join(", "))
        }
        ScalarValue::FixedSizeList(list) => {
            format!("make_array({})", parts(&list.value(0))?.join(", "))
        }
        ScalarValue::Struct(fields) => {
            let mut args = Vec::with_capacity(fields.num_columns() * 2);
            for (field, column) in fields.fields().iter().zip(fields.columns()) {
                args.push(Value::SingleQuotedString(field.name().clone()).to_string());
                args.push(literal(&ScalarValue::try_from_array(column.as_ref(), 0)?)?);
            }
            format!("named_struct({})", args.join(", "))
        }
        ScalarValue::Map(map) => {
            let entries = map.value(0);
            let keys = parts(entries.column(0).as_ref())?;
            let values = parts(entries.column(1).as_ref())?;
            let pairs: Vec<String> = keys
                .iter()
                .zip(&values)
                .map(|(key, value)| format!("{key}: {value}"))
                .collect();
            format!("MAP {{{}}}", pairs.join(", "))
        }
        other => literal(other)?,
    })
}

/// A float as a literal that reads back as the same value of the same type: the text is
/// parsed as a float directly (a bare number with a fraction would be an exact DECIMAL first).
fn float(value: f64, sql_type: &str) -> String {
    // Debug prints the shortest text that reads back exactly; Display spells NaN and inf.
    let text = if value.is_finite() {
        format!("{value:?}")
    } else {
        value.to_string()
    };
    format!("CAST('{text}' AS {sql_type})")
}

/// The type a parameter gets when planning cannot tell: text, which SQL casts to what the
/// statement needs.
pub fn unknown_parameter_type() -> DataType {
    DataType::Utf8
}

/// A positional placeholder of the statement's text.
enum Placeholder {
    Question,
    Numbered(usize),
}

/// `sql` with each placeholder replaced by what `replace` makes of it; everything else is kept
/// byte for byte.
fn splice_placeholders(
    sql: &str,
    mut replace: impl FnMut(Placeholder) -> Result<String, EngineError>,
) -> Result<String, EngineError> {
    let mut edits = Vec::new();
    for token in tokens(sql)? {
        let placeholder = match &token.token {
            Token::Question => Placeholder::Question,
            Token::Placeholder(text) if text == "?" => Placeholder::Question,
            Token::Placeholder(text) => {
                let number = text[1..].parse::<usize>().ok().filter(|n| *n > 0);
                match number {
                    Some(n) => Placeholder::Numbered(n),
                    None => {
                        return Err(EngineError::NotSupported(format!(
                            "named parameters ({text}); use ? or $1, $2, …"
                        )));
                    }
                }
            }
            _ => continue,
        };
        edits.push((token.span, replace(placeholder)?));
    }
    Ok(splice(sql, edits))
}

/// Whether `batch` carries parameter values at all (JDBC sends a batch without columns when a
/// statement has no parameters).
pub fn has_values(batch: &RecordBatch) -> bool {
    batch.num_columns() > 0 && batch.columns().iter().any(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::ArrayRef;

    use super::*;

    #[test]
    fn question_marks_are_numbered_in_order() {
        let (sql, n) =
            number_placeholders("SELECT * FROM t WHERE a = ? AND b = '?' AND c IN (?, ?)").unwrap();
        assert_eq!(
            sql,
            "SELECT * FROM t WHERE a = $1 AND b = '?' AND c IN ($2, $3)"
        );
        assert_eq!(n, 3);
        let (sql, n) = number_placeholders("UPDATE t SET v = $2 WHERE id = $1").unwrap();
        assert_eq!(sql, "UPDATE t SET v = $2 WHERE id = $1");
        assert_eq!(n, 2);
        assert_eq!(number_placeholders("SELECT 1").unwrap().1, 0);
        assert!(number_placeholders("SELECT ?, $1").is_err());
        assert!(number_placeholders("SELECT $name").is_err());
    }

    #[test]
    fn rows_of_a_one_row_insert_become_one_insert() {
        let rows = vec![
            vec!["1".to_string(), "'a'".to_string()],
            vec!["2".to_string(), "NULL".to_string()],
        ];
        assert_eq!(
            bind_rows("INSERT INTO t (id, v) VALUES ($1, $2);", &rows).unwrap(),
            vec!["INSERT INTO t (id, v) VALUES (1, 'a'), (2, NULL)"]
        );
        assert_eq!(
            bind_rows("UPDATE t SET v = $2 WHERE id = $1", &rows).unwrap(),
            vec![
                "UPDATE t SET v = 'a' WHERE id = 1",
                "UPDATE t SET v = NULL WHERE id = 2"
            ]
        );
        assert_eq!(
            bind_rows("INSERT INTO t SELECT $1, $2", &rows)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn values_bind_as_literals_that_cannot_escape_their_quotes() {
        let literals = [
            literal(&ScalarValue::Utf8(Some("it's'; DROP TABLE t; --".into()))).unwrap(),
            literal(&ScalarValue::Int64(Some(-7))).unwrap(),
            literal(&ScalarValue::Float64(Some(0.1))).unwrap(),
            literal(&ScalarValue::Null).unwrap(),
        ];
        let sql = bind("SELECT $1, $2, $3, $4, $1", &literals).unwrap();
        assert_eq!(
            sql,
            "SELECT 'it''s''; DROP TABLE t; --', -7, CAST('0.1' AS DOUBLE), NULL, 'it''s''; DROP TABLE t; --'"
        );
        assert!(bind("SELECT $3", &literals[..2]).is_err());
        assert_eq!(
            literal(&ScalarValue::Binary(Some(vec![0, 255]))).unwrap(),
            "X'00ff'"
        );
        assert_eq!(
            literal(&ScalarValue::Decimal128(Some(1234), 10, 2)).unwrap(),
            "CAST(12.34 AS DECIMAL(10, 2))"
        );
        assert_eq!(
            literal(&ScalarValue::Date32(Some(19_000))).unwrap(),
            "CAST('2022-01-08' AS DATE)"
        );
        assert_eq!(
            literal(&ScalarValue::Float64(Some(f64::NAN))).unwrap(),
            "CAST('NaN' AS DOUBLE)"
        );
    }

    #[test]
    fn nested_values_bind_as_constructors_cast_to_their_type() {
        use arrow::array::{Int32Builder, ListBuilder};
        let mut builder = ListBuilder::new(Int32Builder::new());
        builder.values().append_value(1);
        builder.values().append_null();
        builder.append(true);
        let list = ScalarValue::List(Arc::new(builder.finish()));
        assert_eq!(
            literal(&list).unwrap(),
            "arrow_cast(make_array(1, NULL), 'List(Int32)')"
        );
        let point = ScalarValue::Struct(Arc::new(
            arrow::array::StructArray::try_from(vec![(
                "it's",
                Arc::new(arrow::array::Int64Array::from(vec![2])) as ArrayRef,
            )])
            .unwrap(),
        ));
        assert_eq!(
            literal(&point).unwrap(),
            r#"arrow_cast(named_struct('it''s', 2), 'Struct("it''s": non-null Int64)')"#
        );
        let dictionary = ScalarValue::Dictionary(
            Box::new(DataType::Int32),
            Box::new(ScalarValue::Utf8(Some("x".into()))),
        );
        assert_eq!(literal(&dictionary).unwrap(), "'x'");
        let halves = arrow::compute::cast(
            &arrow::array::Float32Array::from(vec![1.5]),
            &DataType::Float16,
        )
        .unwrap();
        let half = ScalarValue::try_from_array(&halves, 0).unwrap();
        assert_eq!(literal(&half).unwrap(), "CAST('1.5' AS REAL)");
    }
}
