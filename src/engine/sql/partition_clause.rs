//! The `PARTITION BY` clause of `CREATE TABLE`, which MiniDB parses itself:
//!
//! ```sql
//! PARTITION BY HASH (c) [PARTITIONS n]
//! PARTITION BY RANGE (c) [(PARTITION p0 VALUES LESS THAN (10), …, PARTITION pn VALUES LESS THAN (MAXVALUE))]
//! ```
//!
//! sqlparser reads `PARTITION BY <expression>` only, so the clause is cut out of the statement
//! (by token spans) before DataFusion's parser reads the rest.

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

use super::lexing::{Cursor, splice, syntax};
use crate::engine::EngineError;
use crate::table::partitioning::{DEFAULT_HASH_PARTITIONS, Partitioning, RangePartition};

/// The partitioning a `CREATE TABLE` declares and the statement without the clause; `None`
/// when `tokens` (without whitespace) are not a `CREATE TABLE … PARTITION BY`.
pub fn extract(
    sql: &str,
    tokens: &[TokenWithSpan],
) -> Result<Option<(Partitioning, String)>, EngineError> {
    let is_keyword = |i: usize, keyword: Keyword| matches!(tokens.get(i).map(|t| &t.token), Some(Token::Word(w)) if w.keyword == keyword);
    let creates_table = is_keyword(0, Keyword::CREATE)
        && tokens
            .iter()
            .take_while(|t| t.token != Token::LParen)
            .any(|t| matches!(&t.token, Token::Word(w) if w.keyword == Keyword::TABLE));
    if !creates_table {
        return Ok(None);
    }
    let mut depth = 0usize;
    let mut start = None;
    for (i, token) in tokens.iter().enumerate() {
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            _ if depth == 0
                && is_keyword(i, Keyword::PARTITION)
                && is_keyword(i + 1, Keyword::BY) =>
            {
                start = Some(i);
                break;
            }
            _ => {}
        }
    }
    let Some(start) = start else {
        return Ok(None);
    };
    let mut cursor = Cursor::at(tokens, start + 2);
    let partitioning = partitioning(&mut cursor)?;
    let clause = tokens[start].span.union(&cursor.last_span());
    Ok(Some((
        partitioning,
        splice(sql, [(clause, " ".to_string())]),
    )))
}

/// The clause after `PARTITION BY`.
fn partitioning(cursor: &mut Cursor<'_>) -> Result<Partitioning, EngineError> {
    if cursor.word("HASH") {
        let column = column(cursor)?;
        let partitions = if cursor.word("PARTITIONS") {
            match cursor.next() {
                Some(Token::Number(n, _)) => n
                    .parse::<u32>()
                    .map_err(|_| syntax(format!("PARTITIONS needs a whole number, not {n}")))?,
                _ => return Err(syntax("expected a number after PARTITIONS".into())),
            }
        } else {
            DEFAULT_HASH_PARTITIONS
        };
        return Ok(Partitioning::Hash { column, partitions });
    }
    if cursor.word("RANGE") {
        let column = column(cursor)?;
        let mut partitions = Vec::new();
        if cursor.token(&Token::LParen) {
            loop {
                partitions.push(range_partition(cursor)?);
                match cursor.next() {
                    Some(Token::Comma) => {}
                    Some(Token::RParen) => break,
                    _ => return Err(syntax("expected ',' or ')' after a partition".into())),
                }
            }
        }
        return Ok(Partitioning::Range { column, partitions });
    }
    if cursor.word("LIST") {
        return Err(EngineError::NotSupported(
            "PARTITION BY LIST (partition by HASH (column) or RANGE (column))".into(),
        ));
    }
    Err(syntax(
        "expected PARTITION BY HASH (column) [PARTITIONS n] or PARTITION BY RANGE (column) [(PARTITION name VALUES LESS THAN (value), …)]".into(),
    ))
}

/// `PARTITION name VALUES LESS THAN (value | MAXVALUE)`.
fn range_partition(cursor: &mut Cursor<'_>) -> Result<RangePartition, EngineError> {
    let expected = || syntax("expected PARTITION name VALUES LESS THAN (value)".into());
    if !cursor.word("PARTITION") {
        return Err(expected());
    }
    let name = cursor.ident().map_err(|_| expected())?;
    if !(cursor.word("VALUES") && cursor.word("LESS") && cursor.word("THAN")) {
        return Err(expected());
    }
    cursor.expect(&Token::LParen, "'(' before the bound")?;
    let less_than = match cursor.next() {
        Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("MAXVALUE") => None,
        Some(Token::Number(n, _)) => Some(n.clone()),
        Some(Token::Minus) => match cursor.next() {
            Some(Token::Number(n, _)) => Some(format!("-{n}")),
            _ => return Err(syntax("expected a number after '-'".into())),
        },
        Some(Token::SingleQuotedString(s)) => Some(s.clone()),
        _ => {
            return Err(syntax(format!(
                "partition '{name}': the bound must be a number, a quoted string or MAXVALUE"
            )));
        }
    };
    cursor.expect(&Token::RParen, "')' after the bound")?;
    Ok(RangePartition { name, less_than })
}

/// `( column )`.
fn column(cursor: &mut Cursor<'_>) -> Result<String, EngineError> {
    cursor.expect(&Token::LParen, "'(' before the partition column")?;
    let column = cursor
        .ident()
        .map_err(|_| syntax("expected the partition column".into()))?;
    match cursor.next() {
        Some(Token::RParen) => Ok(column),
        Some(Token::Comma) => Err(EngineError::NotSupported(
            "partitioning by more than one column".into(),
        )),
        _ => Err(syntax("expected ')' after the partition column".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extract_from(sql: &str) -> Result<Option<(Partitioning, String)>, EngineError> {
        let tokens = super::super::lexing::tokens(sql).unwrap();
        extract(sql, &tokens)
    }

    #[test]
    fn hash_and_range_clauses_are_cut_out() {
        let (partitioning, rest) = extract_from(
            "CREATE TABLE t (id INT, s VARCHAR) PARTITION BY HASH (ID) PARTITIONS 8 TBLPROPERTIES ('a' = 'b');",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            partitioning,
            Partitioning::Hash {
                column: "id".into(),
                partitions: 8
            }
        );
        assert_eq!(
            rest,
            "CREATE TABLE t (id INT, s VARCHAR)   TBLPROPERTIES ('a' = 'b');"
        );
        let (partitioning, _) = extract_from(
            "CREATE TABLE t (id INT) PARTITION BY RANGE (id) (PARTITION low VALUES LESS THAN (-5), PARTITION mid VALUES LESS THAN ('10'), PARTITION high VALUES LESS THAN (MAXVALUE))",
        )
        .unwrap()
        .unwrap();
        let bounds: Vec<(String, Option<String>)> = match partitioning {
            Partitioning::Range { partitions, .. } => partitions
                .into_iter()
                .map(|p| (p.name, p.less_than))
                .collect(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            bounds,
            vec![
                ("low".into(), Some("-5".into())),
                ("mid".into(), Some("10".into())),
                ("high".into(), None)
            ]
        );
        let (partitioning, _) = extract_from("CREATE TABLE t (id INT) PARTITION BY RANGE (id)")
            .unwrap()
            .unwrap();
        assert_eq!(
            partitioning,
            Partitioning::Range {
                column: "id".into(),
                partitions: vec![]
            }
        );
    }

    #[test]
    fn other_statements_are_left_alone() {
        assert!(extract_from("CREATE TABLE t (id INT)").unwrap().is_none());
        assert!(
            extract_from("SELECT row_number() OVER (PARTITION BY a) FROM t")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn malformed_clauses_say_what_was_expected() {
        let error = |sql| extract_from(sql).unwrap_err().to_string();
        assert!(
            error("CREATE TABLE t (id INT) PARTITION BY LIST (id)")
                .starts_with("not supported: PARTITION BY LIST")
        );
        assert!(
            error("CREATE TABLE t (id INT) PARTITION BY KEY (id)")
                .contains("expected PARTITION BY HASH")
        );
        assert!(
            error("CREATE TABLE t (id INT) PARTITION BY HASH (id) PARTITIONS x").contains("number")
        );
        assert!(
            error("CREATE TABLE t (a INT, b INT) PARTITION BY HASH (a, b)")
                .contains("more than one column")
        );
        assert!(
            error("CREATE TABLE t (id INT) PARTITION BY RANGE (id) (PARTITION p VALUES IN (1))")
                .contains("VALUES LESS THAN")
        );
    }
}
