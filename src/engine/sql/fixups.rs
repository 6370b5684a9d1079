//! Rewrites of single expressions, applied once to every expression of a statement DataFusion's
//! parser produced:
//!
//! 1. Unary `+` is the identity on any type, as in MySQL and SQLite (`+name` is `name`);
//!    DataFusion only accepts it on numbers, so it is removed.
//! 2. A number written with an exponent (`1e10`, `2.5E-3`) is a DOUBLE, as in DuckDB and
//!    standard SQL's approximate numeric literal; numbers with a fraction and no exponent stay
//!    exact DECIMALs (the engine parses them so).
//! 3. `TIMESTAMP` without a precision, in a literal (`TIMESTAMP '9999-12-31 23:59:59'`) or a
//!    cast, is `TIMESTAMP(6)`: microseconds, what Delta stores and what a TIMESTAMP column
//!    holds. DataFusion would take nanoseconds, whose 64 bits end in 2262 and begin in 1677;
//!    microseconds cover years 1 to 9999.
//!
//! And two rewrites of SELECT lists:
//!
//! 1. An unnamed item that is not a column is named by its text as written, as DuckDB names
//!    it: `SELECT 1, 'a', sum(id), a + 1` returns columns `1`, `'a'`, `sum(id)`, `a + 1`, where
//!    DataFusion would name them `Int64(1)`, `Utf8("a")`, `sum(db.t.id)` and
//!    `db.t.a + Int64(1)`, and every subquery `(<subquery>)`, so that two of them clashed. A
//!    column keeps its name, and so does a column in a cast, parentheses or unary `+`
//!    (`CAST(a AS INT)` is `a`, as in PostgreSQL; DataFusion would say `db.t.a`).
//! 2. Items whose names repeat (`SELECT a, a`, `SELECT count(*), count(*)`, `SELECT *, a`) are
//!    named apart: each after the first gets its name followed by [`NAME_MARK`] and its
//!    position. DataFusion
//!    refuses two columns of one name in a projection, which SQL allows; the engine removes the
//!    suffixes from the names of the rows it returns (see [`output_name`]), so a client sees
//!    the names it wrote.

use std::ops::ControlFlow;

use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    DataType, ExactNumberInfo, Expr, Ident, Query, SelectItem, SetExpr, TypedString, UnaryOperator,
    Value, ValueWithSpan, VisitMut, VisitorMut, visit_expressions_mut,
};

/// Applies the rewrites to every expression of `statement`.
pub fn apply(statement: &mut DFStatement) {
    match statement {
        DFStatement::Statement(inner) => {
            // Names first, so that they are the text as written, before the rewrites below.
            let _ = inner.visit(&mut NameItems);
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
                match expr {
                    Expr::Cast { data_type, .. }
                    | Expr::TypedString(TypedString { data_type, .. }) => {
                        in_microseconds(data_type)
                    }
                    _ => {}
                }
                ControlFlow::<()>::Continue(())
            });
        }
        DFStatement::Explain(explain) => apply(&mut explain.statement),
        _ => {}
    }
}

/// `TIMESTAMP` without a precision as `TIMESTAMP(6)`.
fn in_microseconds(data_type: &mut DataType) {
    if let DataType::Timestamp(precision @ None, _) = data_type {
        *precision = Some(6);
    }
}

/// What separates a SELECT item's name from the position that keeps it apart from another item
/// of the same name: the invisible separator, which no name a user writes holds.
pub const NAME_MARK: char = '\u{2063}';

/// The name a client sees for the output column `name`: without a [`NAME_MARK`] suffix.
pub fn output_name(name: &str) -> &str {
    name.split(NAME_MARK).next().unwrap_or(name)
}

/// Names each unnamed SELECT item that is not a column or a cast by its text, and names apart
/// the items whose names repeat.
struct NameItems;

impl VisitorMut for NameItems {
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
                    && let Some(name) = written_name(expr)
                {
                    let alias = Ident::with_quote('"', name);
                    let expr = std::mem::replace(expr, Expr::value(Value::Null));
                    *item = SelectItem::ExprWithAlias { expr, alias };
                }
            }
            name_apart(&mut select.projection);
        }
        SetExpr::SetOperation { left, right, .. } => {
            name_items(left);
            name_items(right);
        }
        _ => {}
    }
}

/// Gives the items of a SELECT list that would share a name names of their own: an item whose
/// name an earlier item has, and a column beside `*` (which returns that column already). The
/// first item of a name keeps it, so a query around this one reads that item by its name.
fn name_apart(items: &mut [SelectItem]) {
    let wildcard = items
        .iter()
        .any(|item| matches!(item, SelectItem::Wildcard(_)));
    let names: Vec<Option<String>> = items.iter().map(item_name).collect();
    for (position, item) in items.iter_mut().enumerate() {
        let Some(name) = &names[position] else {
            continue;
        };
        let repeats = names[..position].contains(&names[position]);
        let beside_wildcard =
            wildcard && matches!(item, SelectItem::UnnamedExpr(e) if column_name(e).is_some());
        if !repeats && !beside_wildcard {
            continue;
        }
        let alias = Ident::with_quote('"', format!("{name}{NAME_MARK}{position}"));
        *item = match std::mem::replace(item, SelectItem::UnnamedExpr(Expr::value(Value::Null))) {
            SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
                SelectItem::ExprWithAlias { expr, alias }
            }
            other => other,
        };
    }
}

/// The name DataFusion gives a SELECT item's column (`None` for a wildcard): an alias or a
/// column's name as DataFusion normalizes identifiers, otherwise the expression's text.
fn item_name(item: &SelectItem) -> Option<String> {
    match item {
        SelectItem::UnnamedExpr(expr) => {
            Some(column_name(expr).unwrap_or_else(|| expr.to_string()))
        }
        SelectItem::ExprWithAlias { alias, .. } => Some(normalized(alias)),
        _ => None,
    }
}

/// The name of a column reference (`a`, `t.a`).
fn column_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(ident) => Some(normalized(ident)),
        Expr::CompoundIdentifier(parts) => parts.last().map(normalized),
        _ => None,
    }
}

fn normalized(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// The name an unnamed SELECT item `expr` is given: a column in casts, parentheses or unary
/// `+` the column's, any other expression its text; `None` for a bare column, which DataFusion
/// names already.
fn written_name(expr: &Expr) -> Option<String> {
    let mut core = expr;
    while let Expr::Cast { expr: inner, .. }
    | Expr::Nested(inner)
    | Expr::UnaryOp {
        op: UnaryOperator::Plus,
        expr: inner,
    } = core
    {
        core = inner;
    }
    match column_name(core) {
        Some(_) if std::ptr::eq(core, expr) => None,
        Some(name) => Some(name),
        None => Some(expr.to_string()),
    }
}
