//! The statements whose syntax MiniDB reads itself, from tokens: MySQL-flavoured catalog
//! statements (`CREATE/DROP DATABASE`, `USE`, `SHOW DATABASES|TABLES|COLUMNS|INDEXES`,
//! `DESCRIBE`, `DROP TABLE`), indexes, Delta's `CREATE TABLE … CLONE`, and Delta maintenance
//! (`OPTIMIZE`, `VACUUM`, `ANALYZE`, `DESCRIBE HISTORY`). Dialects disagree on these, or sqlparser has none of them.

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::lexing::{Cursor, syntax};
use super::statement::Statement;
use crate::engine::EngineError;
use crate::engine::running::parse_duration;

/// The statement `cursor` holds when it is one of MiniDB's own; `None` for anything else.
pub fn parse(mut cursor: Cursor<'_>) -> Result<Option<Statement>, EngineError> {
    use Keyword::*;
    let statement = if cursor.keyword(CREATE) {
        if cursor.keyword(DATABASE) || cursor.keyword(SCHEMA) {
            let if_not_exists = cursor.keywords(&[IF, NOT, EXISTS]);
            Statement::CreateDatabase {
                name: cursor.ident()?,
                if_not_exists,
            }
        } else if cursor.keyword(TABLE) {
            match clone(&mut cursor)? {
                Some(statement) => statement,
                None => return Ok(None),
            }
        } else {
            let unique = cursor.keyword(UNIQUE);
            if !cursor.keyword(INDEX) {
                return Ok(None);
            }
            create_index(&mut cursor, unique)?
        }
    } else if cursor.keyword(DROP) {
        if cursor.keyword(INDEX) {
            let if_exists = cursor.keywords(&[IF, EXISTS]);
            let name = cursor.ident()?;
            let table = if cursor.keyword(ON) {
                Some(cursor.table_name()?)
            } else {
                None
            };
            Statement::DropIndex {
                name,
                table,
                if_exists,
            }
        } else if cursor.keyword(DATABASE) || cursor.keyword(SCHEMA) {
            let if_exists = cursor.keywords(&[IF, EXISTS]);
            Statement::DropDatabase {
                name: cursor.ident()?,
                if_exists,
            }
        } else if cursor.keyword(TABLE) {
            let if_exists = cursor.keywords(&[IF, EXISTS]);
            let mut names = vec![cursor.table_name()?];
            while cursor.token(&Token::Comma) {
                names.push(cursor.table_name()?);
            }
            Statement::DropTable { names, if_exists }
        } else {
            return Ok(None);
        }
    } else if cursor.keyword(USE) {
        Statement::Use(cursor.ident()?)
    } else if cursor.word("CANCEL") {
        if !cursor.keyword(QUERY) {
            return Err(syntax(
                "expected CANCEL QUERY <id> (the query_id of sys.queries)".into(),
            ));
        }
        match cursor.next() {
            Some(Token::Number(n, _)) => match n.parse() {
                Ok(id) => Statement::CancelQuery(id),
                Err(_) => return Err(syntax(format!("'{n}' is not a query id"))),
            },
            _ => {
                return Err(syntax(
                    "expected CANCEL QUERY <id> (the query_id of sys.queries)".into(),
                ));
            }
        }
    } else if cursor.keyword(RESET) {
        if !cursor.word("statement_timeout") {
            return Ok(None);
        }
        Statement::SetStatementTimeout(None)
    } else if cursor.keyword(SET) {
        if !cursor.word("statement_timeout") {
            return Ok(None);
        }
        if !(cursor.token(&Token::Eq) || cursor.keyword(TO)) {
            return Err(syntax("expected SET statement_timeout = <value>".into()));
        }
        let timeout = match cursor.next() {
            Some(Token::Word(w)) if w.keyword == DEFAULT => None,
            Some(Token::Number(n, _)) => Some(parse_duration(n)?),
            Some(Token::SingleQuotedString(text)) => Some(parse_duration(text)?),
            _ => {
                return Err(syntax(
                    "expected SET statement_timeout = <milliseconds> | '<n>s' | DEFAULT".into(),
                ));
            }
        };
        Statement::SetStatementTimeout(timeout)
    } else if cursor.keyword(SHOW) {
        match show(&mut cursor)? {
            Some(statement) => statement,
            None => return Ok(None),
        }
    } else if cursor.keyword(VACUUM) {
        vacuum(&mut cursor)?
    } else if cursor.word("FSCK") {
        if !(cursor.word("REPAIR") && cursor.keyword(TABLE)) {
            return Err(syntax("expected FSCK REPAIR TABLE table [DRY RUN]".into()));
        }
        let table = cursor.table_name()?;
        let dry_run = cursor.keywords(&[DRY, RUN]);
        Statement::Fsck { table, dry_run }
    } else if cursor.keyword(ANALYZE) {
        analyze(&mut cursor)?
    } else if cursor.keyword(OPTIMIZE) {
        optimize(&mut cursor)?
    } else if (cursor.keyword(DESCRIBE) || cursor.keyword(DESC)) && !cursor.done() {
        let start = cursor.position();
        if cursor.word("HISTORY") && !cursor.done() {
            Statement::DescribeHistory(cursor.table_name()?)
        } else {
            cursor.rewind(start);
            let _ = cursor.keyword(TABLE);
            Statement::Describe(cursor.table_name()?)
        }
    } else {
        return Ok(None);
    };
    cursor.expect_end()?;
    Ok(Some(statement))
}

/// `SHOW …` after `SHOW`.
fn show(cursor: &mut Cursor<'_>) -> Result<Option<Statement>, EngineError> {
    use Keyword::*;
    if cursor.word("statement_timeout") {
        return Ok(Some(Statement::ShowStatementTimeout));
    }
    if cursor.keyword(CREATE) {
        if !(cursor.keyword(TABLE) || cursor.keyword(VIEW)) {
            return Err(syntax("expected SHOW CREATE TABLE table".into()));
        }
        return Ok(Some(Statement::ShowCreateTable(cursor.table_name()?)));
    }
    if cursor.keyword(DATABASES) || cursor.keyword(SCHEMAS) {
        return Ok(Some(Statement::ShowDatabases));
    }
    let _ = cursor.keyword(FULL);
    if cursor.keyword(TABLES) {
        let database = if cursor.keyword(FROM) || cursor.keyword(IN) {
            Some(cursor.ident()?)
        } else {
            None
        };
        return Ok(Some(Statement::ShowTables(database)));
    }
    if cursor.keyword(INDEX) || cursor.word("INDEXES") || cursor.keyword(KEYS) {
        if !(cursor.keyword(FROM) || cursor.keyword(IN) || cursor.keyword(ON)) {
            return Err(syntax("expected SHOW INDEXES ON table".into()));
        }
        let mut name = cursor.table_name()?;
        if cursor.keyword(FROM) || cursor.keyword(IN) {
            name.database = Some(cursor.ident()?);
        }
        return Ok(Some(Statement::ShowIndexes(name)));
    }
    if cursor.keyword(COLUMNS) || cursor.keyword(FIELDS) {
        if !(cursor.keyword(FROM) || cursor.keyword(IN)) {
            return Err(syntax("expected SHOW COLUMNS FROM table".into()));
        }
        let mut name = cursor.table_name()?;
        if cursor.keyword(FROM) || cursor.keyword(IN) {
            name.database = Some(cursor.ident()?);
        }
        return Ok(Some(Statement::Describe(name)));
    }
    Ok(None)
}

/// `CREATE [UNIQUE] INDEX` after its keywords: `[IF NOT EXISTS] name ON table (column
/// [ASC|DESC], …)`. An index is ordered ascending and serves either direction, so ASC and DESC
/// are accepted and change nothing.
fn create_index(cursor: &mut Cursor<'_>, unique: bool) -> Result<Statement, EngineError> {
    use Keyword::*;
    let if_not_exists = cursor.keywords(&[IF, NOT, EXISTS]);
    let name = cursor.ident()?;
    if !cursor.keyword(ON) {
        return Err(syntax(
            "expected CREATE INDEX name ON table (columns)".into(),
        ));
    }
    let table = cursor.table_name()?;
    cursor.expect(&Token::LParen, "'(' before the index columns")?;
    let mut columns = Vec::new();
    loop {
        columns.push(cursor.ident()?);
        let _ = cursor.keyword(ASC) || cursor.keyword(DESC);
        if !cursor.token(&Token::Comma) {
            break;
        }
    }
    cursor.expect(&Token::RParen, "')' after the index columns")?;
    Ok(Statement::CreateIndex {
        name,
        table,
        columns,
        unique,
        if_not_exists,
    })
}

/// `[IF NOT EXISTS] t [SHALLOW | DEEP] CLONE source` after `CREATE TABLE` (Delta's clone;
/// a time-travelled source arrives as the name time travel gave it, with its alias); `None`
/// for any other `CREATE TABLE`.
fn clone(cursor: &mut Cursor<'_>) -> Result<Option<Statement>, EngineError> {
    use Keyword::*;
    let if_not_exists = cursor.keywords(&[IF, NOT, EXISTS]);
    let Ok(name) = cursor.table_name() else {
        return Ok(None);
    };
    let shallow = cursor.word("SHALLOW");
    let deep = !shallow && cursor.word("DEEP");
    if !cursor.keyword(CLONE) {
        if shallow || deep {
            return Err(syntax("expected CLONE after SHALLOW or DEEP".into()));
        }
        return Ok(None);
    }
    let source = cursor.table_name()?;
    if cursor.keyword(AS) {
        cursor.ident()?;
    }
    Ok(Some(Statement::CloneTable {
        name,
        source,
        if_not_exists,
        shallow,
    }))
}

/// `VACUUM [TABLE] t [RETAIN n HOURS] [DRY RUN]` after `VACUUM`.
fn vacuum(cursor: &mut Cursor<'_>) -> Result<Statement, EngineError> {
    use Keyword::*;
    let _ = cursor.keyword(TABLE);
    let table = cursor.table_name()?;
    let mut retain_hours = None;
    if cursor.keyword(RETAIN) {
        let hours = match cursor.next() {
            Some(Token::Number(n, _)) => n.parse::<u64>().ok(),
            _ => None,
        };
        if hours.is_none() || !(cursor.keyword(HOURS) || cursor.keyword(HOUR)) {
            return Err(syntax(
                "expected VACUUM table RETAIN <whole number> HOURS".into(),
            ));
        }
        retain_hours = hours;
    }
    let dry_run = cursor.keywords(&[DRY, RUN]);
    Ok(Statement::Vacuum {
        table,
        retain_hours,
        dry_run,
    })
}

/// `ANALYZE [TABLE] t [(c1, …)]` or Spark's `… COMPUTE STATISTICS [FOR COLUMNS c1, … | FOR ALL
/// COLUMNS]`, after `ANALYZE`.
fn analyze(cursor: &mut Cursor<'_>) -> Result<Statement, EngineError> {
    use Keyword::*;
    let _ = cursor.keyword(TABLE);
    let table = cursor.table_name()?;
    let mut columns = Vec::new();
    if cursor.token(&Token::LParen) {
        columns = cursor.name_list()?;
        cursor.expect(&Token::RParen, "')' after the columns to analyze")?;
    } else if cursor.word("COMPUTE") {
        if !cursor.word("STATISTICS") {
            return Err(syntax("expected ANALYZE TABLE t COMPUTE STATISTICS".into()));
        }
        if cursor.keyword(FOR) {
            if cursor.keyword(COLUMNS) {
                columns = cursor.name_list()?;
            } else if !cursor.keywords(&[ALL, COLUMNS]) {
                return Err(syntax(
                    "expected FOR COLUMNS c1, … or FOR ALL COLUMNS".into(),
                ));
            }
        }
    }
    Ok(Statement::Analyze { table, columns })
}

/// `OPTIMIZE [TABLE] t [ZORDER BY (c1, …)]` after `OPTIMIZE`.
fn optimize(cursor: &mut Cursor<'_>) -> Result<Statement, EngineError> {
    let _ = cursor.keyword(Keyword::TABLE);
    let table = cursor.table_name()?;
    let mut zorder = Vec::new();
    if cursor.word("ZORDER") {
        if !cursor.keyword(Keyword::BY) {
            return Err(syntax("expected OPTIMIZE table ZORDER BY (columns)".into()));
        }
        cursor.expect(&Token::LParen, "'(' before the ZORDER BY columns")?;
        zorder = cursor.name_list()?;
        cursor.expect(&Token::RParen, "')' after the ZORDER BY columns")?;
    }
    Ok(Statement::Optimize { table, zorder })
}
