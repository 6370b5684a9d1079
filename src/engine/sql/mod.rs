//! The SQL front end: from the text of one statement to a typed [`Statement`].
//!
//! A statement's text goes through these steps, in this order, and nowhere else:
//!
//! 0. Before the engine sees it, a protocol may have rewritten it: the text protocol expands
//!    the seed's shorthand (`protocol::text::shorthand`), and Flight SQL binds parameter
//!    values as literals ([`parameters`]).
//! 1. Time travel: `t VERSION AS OF n` / `t TIMESTAMP AS OF '…'` become names the catalog
//!    resolves to past snapshots ([`time_travel`]).
//! 2. `PARTITION BY HASH|RANGE …` is cut out of a `CREATE TABLE` ([`partition_clause`]).
//! 3. MiniDB's own statements are read from the tokens ([`own_syntax`]).
//! 4. Everything else goes to DataFusion's parser; its expressions are fixed up once
//!    ([`fixups`]) and the result is typed ([`Statement::from_parsed`]).
//!
//! Each rewrite reads tokens with [`lexing::Cursor`] and edits the text with
//! [`lexing::splice`]; a step tokenizes again only if the step before changed the text.

mod fixups;
mod lexing;
mod names;
mod own_syntax;
pub mod parameters;
mod partition_clause;
mod statement;
pub mod syntax;
mod time_travel;

use datafusion::common::DataFusionError;
use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::ParserError;

pub use fixups::{NAME_MARK, output_name};
pub use names::{TableName, normalize, table_name};
pub use statement::{Answer, Statement};

use super::EngineError;

/// Parses exactly one statement (a trailing `;` is allowed).
pub fn parse(sql: &str) -> Result<Statement, EngineError> {
    let mut tokens = lexing::tokens(sql)?;
    let traveled = time_travel::rewrite(sql, &tokens)?;
    if let Some(text) = &traveled {
        tokens = lexing::tokens(text)?;
    }
    let sql = traveled.as_deref().unwrap_or(sql);
    let cut = partition_clause::extract(sql, &tokens)?;
    let (sql, partitioning) = match cut {
        Some((partitioning, rest)) => {
            tokens = lexing::tokens(&rest)?;
            (std::borrow::Cow::Owned(rest), Some(partitioning))
        }
        None => (std::borrow::Cow::Borrowed(sql), None),
    };
    if let Some(statement) = own_syntax::parse(lexing::Cursor::new(&tokens))? {
        if partitioning.is_some() {
            return Err(EngineError::InvalidInput(
                "PARTITION BY belongs to CREATE TABLE".into(),
            ));
        }
        return Ok(statement);
    }
    let mut statements =
        // A parser error may come wrapped (in a `Diagnostic` with its place in the text).
        DFParser::parse_sql_with_dialect(&sql, &GenericDialect {}).map_err(|e| {
            match e.find_root() {
                DataFusionError::SQL(e, _) => syntax::error(&sql, &parser_message(e)),
                other => EngineError::InvalidInput(other.strip_backtrace()),
            }
        })?;
    match (statements.pop_front(), statements.is_empty()) {
        (Some(mut parsed), true) => {
            fixups::apply(&mut parsed);
            Statement::from_parsed(parsed, partitioning)
        }
        (None, _) => Err(EngineError::InvalidInput("empty statement".into())),
        (Some(_), false) => Err(EngineError::InvalidInput(
            "one statement at a time, please (found several separated by ';')".into(),
        )),
    }
}

/// What sqlparser says, without its `sql parser error: ` prefix.
fn parser_message(e: &ParserError) -> String {
    match e {
        ParserError::TokenizerError(text) | ParserError::ParserError(text) => text.clone(),
        ParserError::RecursionLimitExceeded => "the statement nests too deeply".to_string(),
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
        assert!(matches!(parse("SELECT 1").unwrap(), Statement::Query(_)));
        assert!(matches!(
            parse("EXPLAIN SELECT 1").unwrap(),
            Statement::Query(_)
        ));
        assert!(matches!(
            parse("INSERT INTO t VALUES (1)").unwrap(),
            Statement::Insert(_)
        ));
        assert!(matches!(parse("begin").unwrap(), Statement::Begin));
    }

    #[test]
    fn parser_errors_read_as_syntax_errors_wherever_they_are_found() {
        for sql in [
            "SELECT 1 FROM t LIKE x",
            "CREATE TABLE a (x INT) LIKE b",
            "SELEC 1",
        ] {
            match parse(sql) {
                Err(EngineError::Syntax(message)) => {
                    assert!(!message.contains("ParserError"), "{sql}: {message}")
                }
                other => panic!("{sql}: {other:?}"),
            }
        }
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
    fn partition_by_travels_with_create_table_only() {
        let Statement::CreateTable {
            create,
            partitioning: Some(_),
        } = parse("CREATE TABLE t (id INT) PARTITION BY HASH (id)").unwrap()
        else {
            panic!("CREATE TABLE … PARTITION BY keeps its clause")
        };
        assert_eq!(create.columns.len(), 1);
        assert!(parse("DROP TABLE t PARTITION BY HASH (id)").is_err());
    }

    #[test]
    fn unary_plus_disappears() {
        let Statement::Query(parsed) = parse("SELECT + + name FROM t WHERE + - a > 1").unwrap()
        else {
            panic!("a query parses through DataFusion")
        };
        // The column keeps its name.
        assert_eq!(
            parsed.to_string(),
            "SELECT ((name)) AS \"name\" FROM t WHERE (-a) > 1"
        );
    }

    #[test]
    fn other_statements_are_refused_by_kind() {
        let err = parse("TRUNCATE TABLE t").unwrap_err();
        assert_eq!(err.to_string(), "not supported: TRUNCATE TABLE statements");
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        let err = parse("USE test extra").unwrap_err();
        assert!(err.to_string().contains("unexpected"), "{err}");
        assert!(parse("SELECT 1; SELECT 2").is_err());
    }
}

/// Garbage SQL gets an error, never a panic: token soup from MiniDB's own statements and
/// DataFusion's, and arbitrary text.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::parse;
    use crate::fuzzing;

    const WORDS: &[&str] = &[
        "SELECT",
        "FROM",
        "WHERE",
        "GROUP",
        "BY",
        "ORDER",
        "LIMIT",
        "INSERT",
        "INTO",
        "VALUES",
        "UPDATE",
        "SET",
        "DELETE",
        "CREATE",
        "DROP",
        "ALTER",
        "TABLE",
        "DATABASE",
        "VIEW",
        "INDEX",
        "UNIQUE",
        "ON",
        "IF",
        "NOT",
        "EXISTS",
        "PRIMARY",
        "KEY",
        "TBLPROPERTIES",
        "PARTITIONED",
        "VERSION",
        "TIMESTAMP",
        "AS",
        "OF",
        "OPTIMIZE",
        "ZORDER",
        "VACUUM",
        "RETAIN",
        "HOURS",
        "DRY",
        "RUN",
        "FSCK",
        "REPAIR",
        "ANALYZE",
        "COMPUTE",
        "STATISTICS",
        "DESCRIBE",
        "HISTORY",
        "SHOW",
        "TABLES",
        "USE",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "CANCEL",
        "QUERY",
        "statement_timeout",
        "RESET",
        "INGEST",
        "WITH",
        "UNION",
        "JOIN",
        "LEFT",
        "EXISTS",
        "IN",
        "CASE",
        "WHEN",
        "THEN",
        "END",
        "CAST",
        "INT",
        "VARCHAR(3)",
        "INT[]",
        "STRUCT<a INT>",
        "MAP(INT, INT)",
        "DECIMAL(38, 2)",
        "t",
        "d.t",
        "\"Q\"",
        "`b`",
        "x",
        "(",
        ")",
        ",",
        ";",
        "*",
        "=",
        "<",
        ">",
        "-",
        "+",
        "/",
        "?",
        "$1",
        ":name",
        "[",
        "]",
        "{",
        "}",
        "::",
        ".",
        "'s'",
        "'it''s'",
        "''",
        "1",
        "-1",
        "1.5e308",
        "99999999999999999999",
        "NULL",
        "--",
        "/*",
        "*/",
        "\n",
        "é",
        "\u{0}",
    ];

    fn soup() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(WORDS), 0..24).prop_map(|w| w.join(" "))
    }

    proptest! {
        #![proptest_config(fuzzing::config())]

        #[test]
        fn token_soup_never_panics(sql in soup()) {
            let _ = parse(&sql);
        }

        #[test]
        fn arbitrary_text_never_panics(sql in any::<String>()) {
            let _ = parse(&sql);
        }
    }
}
