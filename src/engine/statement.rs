//! Recognising MiniDB's own statements before DataFusion sees the rest.
//!
//! MySQL-flavoured catalog statements (`CREATE/DROP DATABASE`, `USE`, `SHOW DATABASES|TABLES|
//! COLUMNS`, `DESCRIBE`, `DROP TABLE`) are matched on tokens here, since their handling is ours
//! and dialects disagree on their syntax. Everything else is parsed by DataFusion's parser;
//! `CREATE TABLE` comes back from it as a sqlparser AST that MiniDB executes itself.

use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    DataType, ExactNumberInfo, Expr, ObjectName, ObjectNamePart, TypedString, UnaryOperator, Value,
    ValueWithSpan, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Word};

use super::EngineError;
use super::lexing::{normalize, tokens};
use super::{partition_clause, time_travel};
use crate::table::partitioning::Partitioning;

/// A table name as written: optionally qualified by a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub database: Option<String>,
    pub table: String,
}

/// One statement, classified.
#[derive(Debug)]
pub enum Statement {
    CreateDatabase {
        name: String,
        if_not_exists: bool,
    },
    DropDatabase {
        name: String,
        if_exists: bool,
    },
    Use(String),
    ShowDatabases,
    ShowTables(Option<String>),
    Describe(TableName),
    DropTable {
        names: Vec<TableName>,
        if_exists: bool,
    },
    CreateIndex {
        name: String,
        table: TableName,
        columns: Vec<String>,
        unique: bool,
        if_not_exists: bool,
    },
    /// `DROP INDEX name [ON table]`; without a table, the index is looked for in the session's
    /// database.
    DropIndex {
        name: String,
        table: Option<TableName>,
        if_exists: bool,
    },
    ShowIndexes(TableName),
    /// `VACUUM [TABLE] t [RETAIN n HOURS] [DRY RUN]`.
    Vacuum {
        table: TableName,
        retain_hours: Option<u64>,
        dry_run: bool,
    },
    /// `ANALYZE TABLE t [(c1, …)]` (also Spark's `COMPUTE STATISTICS [FOR COLUMNS c1, …]`);
    /// no columns means all of them.
    Analyze {
        table: TableName,
        columns: Vec<String>,
    },
    /// `DESCRIBE HISTORY t`.
    DescribeHistory(TableName),
    /// `OPTIMIZE [TABLE] t [ZORDER BY (c1, …)]`.
    Optimize {
        table: TableName,
        zorder: Vec<String>,
    },
    /// `CREATE TABLE … PARTITION BY …`: the statement without the clause, and the clause.
    CreatePartitionedTable {
        create: Box<DFStatement>,
        partitioning: Partitioning,
    },
    /// Parsed by DataFusion's parser: CREATE TABLE, queries, INSERT, EXPLAIN…
    Parsed(Box<DFStatement>),
}

impl Statement {
    /// True for statements that create or drop databases or tables.
    pub fn changes_catalog(&self) -> bool {
        match self {
            Statement::CreateDatabase { .. }
            | Statement::DropDatabase { .. }
            | Statement::DropTable { .. }
            | Statement::CreateIndex { .. }
            | Statement::DropIndex { .. }
            | Statement::Optimize { .. }
            | Statement::Vacuum { .. }
            | Statement::Analyze { .. }
            | Statement::CreatePartitionedTable { .. } => true,
            Statement::Parsed(parsed) => match parsed.as_ref() {
                DFStatement::Statement(s) => matches!(
                    s.as_ref(),
                    datafusion::sql::sqlparser::ast::Statement::CreateTable(_)
                        | datafusion::sql::sqlparser::ast::Statement::AlterTable(_)
                        | datafusion::sql::sqlparser::ast::Statement::Drop { .. }
                ),
                _ => true,
            },
            _ => false,
        }
    }
}

/// Parses exactly one statement (a trailing `;` is allowed).
pub fn parse(sql: &str) -> Result<Statement, EngineError> {
    let dialect = GenericDialect {};
    let spanned = tokens(sql)?;
    if let Some(rewritten) = time_travel::rewrite(sql, &spanned)? {
        return parse(&rewritten);
    }
    if let Some((partitioning, rest)) = partition_clause::extract(sql, &spanned)? {
        return match parse(&rest)? {
            Statement::Parsed(create) => Ok(Statement::CreatePartitionedTable {
                create,
                partitioning,
            }),
            _ => Err(EngineError::InvalidInput(
                "PARTITION BY belongs to CREATE TABLE".into(),
            )),
        };
    }
    let tokens: Vec<Token> = spanned.into_iter().map(|t| t.token).collect();
    if let Some(statement) = Tokens::new(&tokens).catalog_statement()? {
        return Ok(statement);
    }
    let mut statements = DFParser::parse_sql_with_dialect(sql, &dialect)
        .map_err(|e| EngineError::InvalidInput(e.strip_backtrace()))?;
    match (statements.pop_front(), statements.is_empty()) {
        (Some(mut statement), true) => {
            rewrite_expressions(&mut statement);
            Ok(Statement::Parsed(Box::new(statement)))
        }
        (None, _) => Err(EngineError::InvalidInput("empty statement".into())),
        (Some(_), false) => Err(EngineError::InvalidInput(
            "one statement at a time, please (found several separated by ';')".into(),
        )),
    }
}

/// Rewrites of single expressions, applied once to every expression of a parsed statement:
///
/// 1. Unary `+` is the identity on any type, as in MySQL and SQLite (`+name` is `name`);
///    DataFusion only accepts it on numbers, so it is removed.
/// 2. A number written with an exponent (`1e10`, `2.5E-3`) is a DOUBLE, as in DuckDB and
///    standard SQL's approximate numeric literal; numbers with a fraction and no exponent stay
///    exact DECIMALs (the engine parses them so).
fn rewrite_expressions(statement: &mut DFStatement) {
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
        DFStatement::Explain(explain) => rewrite_expressions(&mut explain.statement),
        _ => {}
    }
}

/// Splits `db.table` / `table` from a sqlparser object name.
pub fn table_name(name: &ObjectName) -> Result<TableName, EngineError> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Ok(normalize(ident)),
            other => Err(EngineError::InvalidInput(format!(
                "unexpected name part {other}"
            ))),
        })
        .collect::<Result<_, _>>()?;
    match parts.as_slice() {
        [table] => Ok(TableName {
            database: None,
            table: table.clone(),
        }),
        [database, table] => Ok(TableName {
            database: Some(database.clone()),
            table: table.clone(),
        }),
        _ => Err(EngineError::InvalidInput(format!(
            "table name {name} has too many parts; use table or database.table"
        ))),
    }
}

/// A cursor over the tokens of one statement.
struct Tokens<'a> {
    tokens: &'a [Token],
    pos: usize,
}

impl<'a> Tokens<'a> {
    fn new(tokens: &'a [Token]) -> Self {
        let end = tokens
            .iter()
            .rposition(|t| !matches!(t, Token::SemiColon | Token::EOF))
            .map_or(0, |i| i + 1);
        Self {
            tokens: &tokens[..end],
            pos: 0,
        }
    }

    fn keyword(&mut self, keyword: Keyword) -> bool {
        match self.tokens.get(self.pos) {
            Some(Token::Word(Word {
                keyword: k,
                quote_style: None,
                ..
            })) if *k == keyword => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    /// An unquoted word that is not one of sqlparser's keywords (e.g. `INDEXES`).
    fn word(&mut self, text: &str) -> bool {
        match self.tokens.get(self.pos) {
            Some(Token::Word(Word {
                value,
                quote_style: None,
                ..
            })) if value.eq_ignore_ascii_case(text) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    fn keywords(&mut self, keywords: &[Keyword]) -> bool {
        let start = self.pos;
        if keywords.iter().all(|k| self.keyword(*k)) {
            true
        } else {
            self.pos = start;
            false
        }
    }

    fn done(&self) -> bool {
        self.pos == self.tokens.len()
    }

    fn ident(&mut self) -> Result<String, EngineError> {
        match self.tokens.get(self.pos) {
            Some(Token::Word(word)) => {
                self.pos += 1;
                Ok(normalize(&word.to_ident(
                    datafusion::sql::sqlparser::tokenizer::Span::empty(),
                )))
            }
            Some(other) => Err(EngineError::InvalidInput(format!(
                "syntax error: expected a name, found '{other}'"
            ))),
            None => Err(EngineError::InvalidInput(
                "syntax error: expected a name at the end of the statement".into(),
            )),
        }
    }

    fn table_name(&mut self) -> Result<TableName, EngineError> {
        let first = self.ident()?;
        if matches!(self.tokens.get(self.pos), Some(Token::Period)) {
            self.pos += 1;
            Ok(TableName {
                database: Some(first),
                table: self.ident()?,
            })
        } else {
            Ok(TableName {
                database: None,
                table: first,
            })
        }
    }

    fn end(self, statement: Statement) -> Result<Option<Statement>, EngineError> {
        match self.tokens.get(self.pos) {
            None => Ok(Some(statement)),
            Some(extra) => Err(EngineError::InvalidInput(format!(
                "syntax error: unexpected '{extra}' after the statement"
            ))),
        }
    }

    /// `CREATE [UNIQUE] INDEX` after its keywords: `[IF NOT EXISTS] name ON table (column
    /// [ASC|DESC], …)`. An index is ordered ascending and serves either direction, so ASC and
    /// DESC are accepted and change nothing.
    fn create_index(mut self, unique: bool) -> Result<Option<Statement>, EngineError> {
        use Keyword::*;
        let if_not_exists = self.keywords(&[IF, NOT, EXISTS]);
        let name = self.ident()?;
        if !self.keyword(ON) {
            return Err(EngineError::InvalidInput(
                "syntax error: expected CREATE INDEX name ON table (columns)".into(),
            ));
        }
        let table = self.table_name()?;
        self.token(&Token::LParen, "'(' before the index columns")?;
        let mut columns = Vec::new();
        loop {
            columns.push(self.ident()?);
            let _ = self.keyword(ASC) || self.keyword(DESC);
            if matches!(self.tokens.get(self.pos), Some(Token::Comma)) {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.token(&Token::RParen, "')' after the index columns")?;
        self.end(Statement::CreateIndex {
            name,
            table,
            columns,
            unique,
            if_not_exists,
        })
    }

    fn token(&mut self, expected: &Token, what: &str) -> Result<(), EngineError> {
        match self.tokens.get(self.pos) {
            Some(found) if found == expected => {
                self.pos += 1;
                Ok(())
            }
            Some(found) => Err(EngineError::InvalidInput(format!(
                "syntax error: expected {what}, found '{found}'"
            ))),
            None => Err(EngineError::InvalidInput(format!(
                "syntax error: expected {what} at the end of the statement"
            ))),
        }
    }

    /// `c1, c2, …`: one or more names separated by commas.
    fn column_list(&mut self) -> Result<Vec<String>, EngineError> {
        let mut columns = vec![self.ident()?];
        while matches!(self.tokens.get(self.pos), Some(Token::Comma)) {
            self.pos += 1;
            columns.push(self.ident()?);
        }
        Ok(columns)
    }

    /// Recognises the catalog statements MiniDB handles itself; `None` for anything else.
    fn catalog_statement(mut self) -> Result<Option<Statement>, EngineError> {
        use Keyword::*;
        if self.keyword(CREATE) && (self.keyword(DATABASE) || self.keyword(SCHEMA)) {
            let if_not_exists = self.keywords(&[IF, NOT, EXISTS]);
            let name = self.ident()?;
            return self.end(Statement::CreateDatabase {
                name,
                if_not_exists,
            });
        }
        self.pos = 0;
        if self.keyword(CREATE) {
            let unique = self.keyword(UNIQUE);
            if self.keyword(INDEX) {
                return self.create_index(unique);
            }
        }
        self.pos = 0;
        if self.keyword(DROP) {
            if self.keyword(INDEX) {
                let if_exists = self.keywords(&[IF, EXISTS]);
                let name = self.ident()?;
                let table = if self.keyword(ON) {
                    Some(self.table_name()?)
                } else {
                    None
                };
                return self.end(Statement::DropIndex {
                    name,
                    table,
                    if_exists,
                });
            }
            if self.keyword(DATABASE) || self.keyword(SCHEMA) {
                let if_exists = self.keywords(&[IF, EXISTS]);
                let name = self.ident()?;
                return self.end(Statement::DropDatabase { name, if_exists });
            }
            if self.keyword(TABLE) {
                let if_exists = self.keywords(&[IF, EXISTS]);
                let mut names = vec![self.table_name()?];
                while matches!(self.tokens.get(self.pos), Some(Token::Comma)) {
                    self.pos += 1;
                    names.push(self.table_name()?);
                }
                return self.end(Statement::DropTable { names, if_exists });
            }
            return Ok(None);
        }
        if self.keyword(USE) {
            let name = self.ident()?;
            return self.end(Statement::Use(name));
        }
        if self.keyword(SHOW) {
            if self.keyword(DATABASES) || self.keyword(SCHEMAS) {
                return self.end(Statement::ShowDatabases);
            }
            let _ = self.keyword(FULL);
            if self.keyword(TABLES) {
                let database = if self.keyword(FROM) || self.keyword(IN) {
                    Some(self.ident()?)
                } else {
                    None
                };
                return self.end(Statement::ShowTables(database));
            }
            if self.keyword(INDEX) || self.word("INDEXES") || self.keyword(KEYS) {
                if !(self.keyword(FROM) || self.keyword(IN) || self.keyword(ON)) {
                    return Err(EngineError::InvalidInput(
                        "syntax error: expected SHOW INDEXES ON table".into(),
                    ));
                }
                let mut name = self.table_name()?;
                if self.keyword(FROM) || self.keyword(IN) {
                    name.database = Some(self.ident()?);
                }
                return self.end(Statement::ShowIndexes(name));
            }
            if self.keyword(COLUMNS) || self.keyword(FIELDS) {
                if !(self.keyword(FROM) || self.keyword(IN)) {
                    return Err(EngineError::InvalidInput(
                        "syntax error: expected SHOW COLUMNS FROM table".into(),
                    ));
                }
                let mut name = self.table_name()?;
                if self.keyword(FROM) || self.keyword(IN) {
                    name.database = Some(self.ident()?);
                }
                return self.end(Statement::Describe(name));
            }
            return Ok(None);
        }
        if self.keyword(VACUUM) {
            let _ = self.keyword(TABLE);
            let table = self.table_name()?;
            let mut retain_hours = None;
            if self.keyword(RETAIN) {
                let hours = match self.tokens.get(self.pos) {
                    Some(Token::Number(n, _)) => n.parse::<u64>().ok(),
                    _ => None,
                };
                self.pos += 1;
                if hours.is_none() || !(self.keyword(HOURS) || self.keyword(HOUR)) {
                    return Err(EngineError::InvalidInput(
                        "syntax error: expected VACUUM table RETAIN <whole number> HOURS".into(),
                    ));
                }
                retain_hours = hours;
            }
            let dry_run = self.keywords(&[DRY, RUN]);
            return self.end(Statement::Vacuum {
                table,
                retain_hours,
                dry_run,
            });
        }
        if self.keyword(ANALYZE) {
            let _ = self.keyword(TABLE);
            let table = self.table_name()?;
            let mut columns = Vec::new();
            if matches!(self.tokens.get(self.pos), Some(Token::LParen)) {
                self.pos += 1;
                columns = self.column_list()?;
                self.token(&Token::RParen, "')' after the columns to analyze")?;
            } else if self.word("COMPUTE") {
                if !self.word("STATISTICS") {
                    return Err(EngineError::InvalidInput(
                        "syntax error: expected ANALYZE TABLE t COMPUTE STATISTICS".into(),
                    ));
                }
                if self.keyword(FOR) {
                    if self.keyword(COLUMNS) {
                        columns = self.column_list()?;
                    } else if !(self.keyword(ALL) && self.keyword(COLUMNS)) {
                        return Err(EngineError::InvalidInput(
                            "syntax error: expected FOR COLUMNS c1, … or FOR ALL COLUMNS".into(),
                        ));
                    }
                }
            }
            return self.end(Statement::Analyze { table, columns });
        }
        if self.keyword(OPTIMIZE) {
            let _ = self.keyword(TABLE);
            let table = self.table_name()?;
            let mut zorder = Vec::new();
            if self.word("ZORDER") {
                if !self.keyword(BY) {
                    return Err(EngineError::InvalidInput(
                        "syntax error: expected OPTIMIZE table ZORDER BY (columns)".into(),
                    ));
                }
                self.token(&Token::LParen, "'(' before the ZORDER BY columns")?;
                loop {
                    zorder.push(self.ident()?);
                    if matches!(self.tokens.get(self.pos), Some(Token::Comma)) {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                self.token(&Token::RParen, "')' after the ZORDER BY columns")?;
            }
            return self.end(Statement::Optimize { table, zorder });
        }
        if (self.keyword(DESCRIBE) || self.keyword(DESC)) && self.word("HISTORY") && !self.done() {
            let name = self.table_name()?;
            return self.end(Statement::DescribeHistory(name));
        }
        self.pos = 0;
        if (self.keyword(DESCRIBE) || self.keyword(DESC)) && !self.done() {
            let _ = self.keyword(TABLE);
            let name = self.table_name()?;
            return self.end(Statement::Describe(name));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_statements_are_recognised() {
        assert!(matches!(
            parse("CREATE DATABASE IF NOT EXISTS Shop;").unwrap(),
            Statement::CreateDatabase { ref name, if_not_exists: true } if name == "shop"
        ));
        assert!(matches!(parse("use \"Mixed\"").unwrap(), Statement::Use(ref n) if n == "Mixed"));
        assert!(matches!(
            parse("SHOW TABLES FROM test").unwrap(),
            Statement::ShowTables(Some(ref d)) if d == "test"
        ));
        assert!(matches!(
            parse("describe test.users").unwrap(),
            Statement::Describe(TableName { database: Some(ref d), ref table }) if d == "test" && table == "users"
        ));
        assert!(matches!(
            parse("DROP TABLE IF EXISTS a, b.c").unwrap(),
            Statement::DropTable { ref names, if_exists: true } if names.len() == 2
        ));
        assert!(matches!(parse("SELECT 1").unwrap(), Statement::Parsed(_)));
    }

    #[test]
    fn analyze_statements_are_recognised() {
        let columns = |sql| match parse(sql).unwrap() {
            Statement::Analyze { columns, .. } => columns,
            other => panic!("{other:?}"),
        };
        assert!(columns("ANALYZE TABLE products").is_empty());
        assert_eq!(
            columns("ANALYZE TABLE products (price, Quantity)"),
            ["price", "quantity"]
        );
        assert_eq!(
            columns("ANALYZE t COMPUTE STATISTICS FOR COLUMNS a, b"),
            ["a", "b"]
        );
        assert!(columns("ANALYZE TABLE t COMPUTE STATISTICS FOR ALL COLUMNS").is_empty());
        assert!(parse("ANALYZE TABLE t (a").is_err());
        assert!(parse("ANALYZE TABLE t COMPUTE STATISTICS FOR a").is_err());
    }

    #[test]
    fn index_statements_are_recognised() {
        let Statement::CreateIndex {
            name,
            table,
            columns,
            unique: true,
            if_not_exists: false,
        } = parse("CREATE UNIQUE INDEX Idx ON shop.t (a DESC, \"B\")").unwrap()
        else {
            panic!("CREATE UNIQUE INDEX is recognised")
        };
        assert_eq!(
            (name.as_str(), columns),
            ("idx", vec!["a".to_string(), "B".into()])
        );
        assert_eq!(table.database.as_deref(), Some("shop"));
        assert!(matches!(
            parse("DROP INDEX IF EXISTS i ON t").unwrap(),
            Statement::DropIndex {
                table: Some(_),
                if_exists: true,
                ..
            }
        ));
        assert!(matches!(
            parse("SHOW INDEXES FROM t").unwrap(),
            Statement::ShowIndexes(TableName { database: None, .. })
        ));
        assert!(parse("CREATE INDEX i ON t").is_err());
        assert!(parse("CREATE INDEX i ON t (a) extra").is_err());
    }

    #[test]
    fn unary_plus_disappears() {
        let Statement::Parsed(parsed) = parse("SELECT + + name FROM t WHERE + - a > 1").unwrap()
        else {
            panic!("a query parses through DataFusion")
        };
        assert_eq!(parsed.to_string(), "SELECT ((name)) FROM t WHERE (-a) > 1");
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        let err = parse("USE test extra").unwrap_err();
        assert!(err.to_string().contains("unexpected"), "{err}");
        assert!(parse("SELECT 1; SELECT 2").is_err());
    }
}
