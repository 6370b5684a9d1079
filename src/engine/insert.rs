//! Clear errors for INSERT values: which column, which value, and why it does not fit.
//!
//! DataFusion plans an INSERT as a projection that casts each value to its column's type and
//! checks NOT NULL afterwards, by column position. This rewrite replaces each of those casts with
//! [`StoreValue`], which converts the same way but fails with the column's name and the offending
//! value, e.g. `value 300 does not fit column 'v' (TINYINT)`.
//!
//! Assignment follows one rule on every write path (INSERT, UPDATE, bulk ingest): a value is
//! converted exactly when it can be, and otherwise rounded half away from zero to the column's
//! scale — `2.5` into an INTEGER is 3, `-2.5` is -3, `1.005` into DECIMAL(10, 2) is 1.01 — as in
//! PostgreSQL and DuckDB. A value whose rounded form is out of the column's range is refused.
//! A string longer than its column's `VARCHAR(n)` / `CHAR(n)` is refused, unless the excess is
//! spaces, which are cut (PostgreSQL's rule).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::compute::{CastOptions, cast, cast_with_options};
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{DFSchema, Result, TableReference, exec_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, Projection, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Values, Volatility, WriteOp,
};

use crate::catalog::sql_type_name;
use crate::txlog::{DeclaredLength, declared_length};

/// Rewrites an INSERT plan so bad values fail with their column's name; other plans pass through.
pub fn name_bad_values(plan: LogicalPlan) -> Result<LogicalPlan> {
    let LogicalPlan::Dml(mut dml) = plan else {
        return Ok(plan);
    };
    if !matches!(dml.op, WriteOp::Insert(_)) {
        return Ok(LogicalPlan::Dml(dml));
    }
    let target = dml.target.schema();
    let input = dml.input.as_ref().clone();
    dml.input = Arc::new(match input {
        LogicalPlan::Projection(projection) => {
            // Which VALUES column feeds which table column, through the projection.
            let mut feeds = HashMap::new();
            for (expr, field) in projection.expr.iter().zip(target.fields()) {
                if let Expr::Column(column) = without_cast(expr) {
                    feeds.insert(column.name.clone(), Arc::clone(field));
                }
            }
            let values = checked_values(projection.input.as_ref().clone(), |_, name| {
                feeds.get(name).cloned()
            })?;
            let exprs = projection
                .expr
                .iter()
                .zip(target.fields())
                .map(|(expr, field)| store(without_cast(expr), field).alias(field.name()))
                .collect();
            LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(values))?)
        }
        values @ LogicalPlan::Values(_) => {
            checked_values(values, |i, _| target.fields().get(i).cloned())?
        }
        other => {
            let exprs = other
                .schema()
                .columns()
                .into_iter()
                .zip(target.fields())
                .map(|(column, field)| store(Expr::Column(column), field).alias(field.name()))
                .collect();
            LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(other))?)
        }
    });
    Ok(LogicalPlan::Dml(dml))
}

/// The expression under any alias and cast DataFusion put around it.
fn without_cast(expr: &Expr) -> Expr {
    match expr {
        Expr::Alias(alias) => without_cast(&alias.expr),
        Expr::Cast(cast) => cast.expr.as_ref().clone(),
        other => other.clone(),
    }
}

/// `expr` converted to `field`'s type, failing with the column's name.
pub(super) fn store(expr: Expr, field: &FieldRef) -> Expr {
    let udf = ScalarUDF::from(StoreValue {
        column: field.name().clone(),
        target: field.data_type().clone(),
        not_null: !field.is_nullable(),
        length: declared_length(field),
        signature: Signature::any(1, Volatility::Immutable),
    });
    Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(udf), vec![expr]))
}

/// DataFusion types an INSERT's VALUES list with the target's types and nullability, so a bad
/// value would fail inside VALUES, naming `column1`. Each value of a VALUES column that feeds a
/// table column (`target_of(index, name)`) is converted by [`StoreValue`] instead, and the
/// columns are declared nullable so NOT NULL is reported by the table column's name.
fn checked_values(
    plan: LogicalPlan,
    target_of: impl Fn(usize, &str) -> Option<FieldRef>,
) -> Result<LogicalPlan> {
    let LogicalPlan::Values(values) = plan else {
        return Ok(plan);
    };
    let targets: Vec<Option<FieldRef>> = values
        .schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| target_of(i, f.name()))
        .collect();
    let fields: Vec<(Option<TableReference>, Arc<Field>)> = values
        .schema
        .iter()
        .zip(&targets)
        .map(|((qualifier, field), target)| {
            let data_type = target.as_ref().map_or(field.data_type(), |t| t.data_type());
            let field = Field::new(field.name(), data_type.clone(), true);
            (qualifier.cloned(), Arc::new(field))
        })
        .collect();
    let rows = values
        .values
        .into_iter()
        .map(|row| {
            row.into_iter()
                .zip(&targets)
                .map(|(expr, target)| match target {
                    Some(field) => store(without_cast(&expr), field),
                    None => expr,
                })
                .collect()
        })
        .collect();
    let schema = DFSchema::new_with_metadata(fields, values.schema.metadata().clone())?;
    Ok(LogicalPlan::Values(Values {
        schema: Arc::new(schema),
        values: rows,
    }))
}

/// `input` rounded half away from zero to a whole number when it has a fraction (a float or a
/// DECIMAL with a scale) and `target` is an integer type; Arrow's cast would truncate.
fn rounded_for(input: ArrayRef, target: &DataType) -> Result<ArrayRef> {
    if !target.is_integer() {
        return Ok(input);
    }
    Ok(match input.data_type() {
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let doubles = cast(&input, &DataType::Float64)?;
            Arc::new(
                doubles
                    .as_primitive::<Float64Type>()
                    .unary::<_, Float64Type>(f64::round),
            )
        }
        // Arrow's decimal rescale rounds half away from zero; the precision grows by one digit
        // for a carry (`9.5` → `10`).
        DataType::Decimal128(precision, scale) if *scale > 0 => {
            let whole = (*precision - *scale as u8 + 1).min(38);
            cast(&input, &DataType::Decimal128(whole, 0))?
        }
        _ => input,
    })
}

/// Converts values to a column's type, failing with the column's name and the value.
#[derive(Debug, PartialEq, Eq, Hash)]
struct StoreValue {
    column: String,
    target: DataType,
    not_null: bool,
    length: Option<DeclaredLength>,
    signature: Signature,
}

impl ScalarUDFImpl for StoreValue {
    fn name(&self) -> &str {
        "store_value"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.target.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let input = args.args[0].to_array(args.number_rows)?;
        let options = CastOptions {
            safe: true,
            ..Default::default()
        };
        let rounded = rounded_for(Arc::clone(&input), &self.target)?;
        let output = cast_with_options(&rounded, &self.target, &options)?;
        // Logical nulls: a NULL literal arrives as a NullArray, which has no null buffer.
        let input_nulls = input.logical_nulls();
        let input_is_null = |row| input_nulls.as_ref().is_some_and(|n| n.is_null(row));
        for row in 0..output.len() {
            if output.is_null(row) && !input_is_null(row) {
                let shown = ArrayFormatter::try_new(input.as_ref(), &FormatOptions::default())?
                    .value(row)
                    .to_string();
                return exec_err!(
                    "value {shown} does not fit column '{}' ({})",
                    self.column,
                    sql_type_name(&self.target)
                );
            }
            if self.not_null && output.is_null(row) {
                return exec_err!("column '{}' is NOT NULL: NULL not allowed", self.column);
            }
        }
        let output = match self.length {
            Some(length) => self.within(output, length)?,
            None => output,
        };
        Ok(ColumnarValue::Array(output))
    }
}

impl StoreValue {
    /// `strings` with each value checked against the column's declared length; a value whose
    /// excess characters are all spaces is cut to the length.
    fn within(&self, strings: ArrayRef, length: DeclaredLength) -> Result<ArrayRef> {
        let values = strings.as_string::<i32>();
        let fits = |value: &str| value.chars().nth(length.chars).is_none();
        if values.iter().flatten().all(fits) {
            return Ok(strings);
        }
        let mut cut = StringBuilder::with_capacity(values.len(), values.value_data().len());
        for value in values.iter() {
            let Some(value) = value else {
                cut.append_null();
                continue;
            };
            if fits(value) {
                cut.append_value(value);
                continue;
            }
            let end = value
                .char_indices()
                .nth(length.chars)
                .map_or(value.len(), |(at, _)| at);
            if !value[end..].chars().all(|c| c == ' ') {
                let chars = value.chars().count();
                let start: String = value.chars().take(40).collect();
                let shown = if chars > 40 { start + "…" } else { start };
                return exec_err!(
                    "value '{shown}' is too long for column '{}' ({}): {chars} characters",
                    self.column,
                    length.sql_name()
                );
            }
            cut.append_value(&value[..end]);
        }
        Ok(Arc::new(cut.finish()))
    }
}
