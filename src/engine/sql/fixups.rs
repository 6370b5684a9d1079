//! Rewrites of single expressions, applied once to every expression of a statement DataFusion's
//! parser produced:
//!
//! 1. Unary `+` is the identity on any type, as in MySQL and SQLite (`+name` is `name`);
//!    DataFusion only accepts it on numbers, so it is removed.
//! 2. A number written with an exponent (`1e10`, `2.5E-3`) is a DOUBLE, as in DuckDB and
//!    standard SQL's approximate numeric literal; numbers with a fraction and no exponent stay
//!    exact DECIMALs (the engine parses them so).
//!
//! And one rewrite of SELECT lists: an unnamed item with a subquery is named by its text, as
//! DuckDB names it. DataFusion would name every one `(<subquery>)`, and two of them in one list
//! would then clash.

use std::ops::ControlFlow;

use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    DataType, ExactNumberInfo, Expr, Ident, Query, SelectItem, SetExpr, TypedString, UnaryOperator,
    Value, ValueWithSpan, VisitMut, VisitorMut, visit_expressions, visit_expressions_mut,
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
            let _ = inner.visit(&mut NameSubqueryItems);
        }
        DFStatement::Explain(explain) => apply(&mut explain.statement),
        _ => {}
    }
}

/// Names each unnamed SELECT item that holds a subquery by its text.
struct NameSubqueryItems;

impl VisitorMut for NameSubqueryItems {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        name_items(&mut query.body);
        ControlFlow::Continue(())
    }
}

fn name_items(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            for item in &mut select.projection {
                if let SelectItem::UnnamedExpr(expr) = item
                    && holds_subquery(expr)
                {
                    let alias = Ident::with_quote('"', expr.to_string());
                    let expr = std::mem::replace(expr, Expr::value(Value::Null));
                    *item = SelectItem::ExprWithAlias { expr, alias };
                }
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            name_items(left);
            name_items(right);
        }
        _ => {}
    }
}

fn holds_subquery(expr: &Expr) -> bool {
    visit_expressions(expr, |e| match e {
        Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}
