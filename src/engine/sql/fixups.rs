//! Rewrites of single expressions, applied once to every expression of a statement DataFusion's
//! parser produced:
//!
//! 1. Unary `+` is the identity on any type, as in MySQL and SQLite (`+name` is `name`);
//!    DataFusion only accepts it on numbers, so it is removed.
//! 2. A number written with an exponent (`1e10`, `2.5E-3`) is a DOUBLE, as in DuckDB and
//!    standard SQL's approximate numeric literal; numbers with a fraction and no exponent stay
//!    exact DECIMALs (the engine parses them so).

use std::ops::ControlFlow;

use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    DataType, ExactNumberInfo, Expr, TypedString, UnaryOperator, Value, ValueWithSpan,
    visit_expressions_mut,
};

/// Applies the rewrites to every expression of `statement`.
pub fn apply(statement: &mut DFStatement) {
    match statement {
        DFStatement::Statement(inner) => {
            let _ = visit_expressions_mut(inner.as_mut(), |expr| {
                while let Expr::UnaryOp {
                    op: UnaryOperator::Plus,
                    expr: operand,
                } = expr
                {
                    *expr = Expr::Nested(Box::new(std::mem::replace(
                        operand.as_mut(),
                        Expr::value(Value::Null),
                    )));
                }
                if let Expr::Value(ValueWithSpan {
                    value: Value::Number(number, _),
                    span,
                }) = expr
                    && number.contains(['e', 'E'])
                {
                    *expr = Expr::TypedString(TypedString {
                        data_type: DataType::Double(ExactNumberInfo::None),
                        value: ValueWithSpan {
                            value: Value::SingleQuotedString(number.replace('_', "")),
                            span: *span,
                        },
                        uses_odbc_syntax: false,
                    });
                }
                ControlFlow::<()>::Continue(())
            });
        }
        DFStatement::Explain(explain) => apply(&mut explain.statement),
        _ => {}
    }
}
