//! Time travel: `FROM t VERSION AS OF n` and `FROM t TIMESTAMP AS OF '…'`.
//!
//! DataFusion's SQL planner ignores sqlparser's table versions (and the generic dialect does not
//! parse them), so MiniDB rewrites such a reference before parsing: `db.t VERSION AS OF 3`
//! becomes `db."t@v3" AS t`, and `t TIMESTAMP AS OF '2026-01-01 10:00:00'` becomes
//! `"t@t1767261600000" AS t` (milliseconds since the epoch, UTC). The statement's catalog
//! resolves such a name (`catalog::split_as_of`) to the table's snapshot at that version, or at
//! the newest version committed at or before that time. `@` cannot appear in a table name, so
//! these names never collide with real tables. The alias keeps `t.column` working; an alias written after the
//! clause replaces it.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use datafusion::sql::sqlparser::keywords::{Keyword, RESERVED_FOR_TABLE_ALIAS};
use datafusion::sql::sqlparser::tokenizer::{Span, Token, TokenWithSpan, Word};

use super::lexing::{splice, text};
use super::names::normalize;
use crate::catalog::{AsOf, as_of_name};
use crate::engine::EngineError;

/// The SQL with every time-travel table reference rewritten; `None` when it has none.
/// `tokens` are the statement's tokens without whitespace.
pub fn rewrite(sql: &str, tokens: &[TokenWithSpan]) -> Result<Option<String>, EngineError> {
    let mut edits: Vec<(Span, String)> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let Some(kind) = clause_at(tokens, i) else {
            i += 1;
            continue;
        };
        let value = tokens.get(i + 3).ok_or_else(|| {
            EngineError::InvalidInput(format!("syntax error: expected a {kind} after AS OF"))
        })?;
        let as_of = match (kind, &value.token) {
            (Keyword::VERSION, Token::Number(n, _)) => AsOf::Version(n.parse().map_err(|_| {
                EngineError::InvalidInput(format!("VERSION AS OF needs a whole number, not {n}"))
            })?),
            (Keyword::TIMESTAMP, Token::SingleQuotedString(text)) => {
                AsOf::Timestamp(parse_timestamp(text)?)
            }
            (Keyword::VERSION, other) => {
                return Err(EngineError::InvalidInput(format!(
                    "VERSION AS OF needs a version number, not {other}"
                )));
            }
            (_, other) => {
                return Err(EngineError::InvalidInput(format!(
                    "TIMESTAMP AS OF needs a quoted timestamp such as '2026-01-01 10:00:00', not {other}"
                )));
            }
        };
        let Some((name_start, table)) = table_before(tokens, i) else {
            return Err(EngineError::InvalidInput(
                "syntax error: VERSION/TIMESTAMP AS OF must follow a table name".into(),
            ));
        };
        let encoded = as_of_name(&table, as_of);
        let aliased = has_alias(tokens.get(i + 4));
        let mut replacement = String::new();
        let name = &tokens[name_start..i];
        if name.len() == 3 {
            // `db.t`: keep the database as written.
            replacement.push_str(text(sql, name[0].span));
            replacement.push('.');
        }
        replacement.push_str(&format!("\"{encoded}\""));
        if !aliased {
            replacement.push_str(&format!(" AS \"{table}\""));
        }
        edits.push((tokens[name_start].span.union(&value.span), replacement));
        i += 4;
    }
    if edits.is_empty() {
        return Ok(None);
    }
    Ok(Some(splice(sql, edits)))
}

/// `VERSION AS OF` or `TIMESTAMP AS OF` starting at token `i`, by its first keyword.
fn clause_at(tokens: &[TokenWithSpan], i: usize) -> Option<Keyword> {
    let keyword = |j: usize| match tokens.get(j).map(|t| &t.token) {
        Some(Token::Word(Word {
            keyword,
            quote_style: None,
            ..
        })) => Some(*keyword),
        _ => None,
    };
    let first = keyword(i)?;
    (matches!(first, Keyword::VERSION | Keyword::TIMESTAMP)
        && keyword(i + 1) == Some(Keyword::AS)
        && keyword(i + 2) == Some(Keyword::OF))
    .then_some(first)
}

/// The table name ending just before token `clause`: its first token and its normalized name.
fn table_before(tokens: &[TokenWithSpan], clause: usize) -> Option<(usize, String)> {
    let word = |j: usize| match &tokens.get(j)?.token {
        Token::Word(w) => Some(normalize(&w.to_ident(Span::empty()))),
        _ => None,
    };
    let table = word(clause.checked_sub(1)?)?;
    let qualified = clause >= 3
        && matches!(tokens[clause - 2].token, Token::Period)
        && word(clause - 3).is_some();
    Some((if qualified { clause - 3 } else { clause - 1 }, table))
}

/// True when `next`, the token after a time-travel clause, starts a table alias.
fn has_alias(next: Option<&TokenWithSpan>) -> bool {
    match next.map(|t| &t.token) {
        Some(Token::Word(Word {
            quote_style: Some(_),
            ..
        })) => true,
        Some(Token::Word(Word { keyword, .. })) => {
            *keyword == Keyword::AS || !RESERVED_FOR_TABLE_ALIAS.contains(keyword)
        }
        _ => false,
    }
}

/// Milliseconds since the epoch of a timestamp literal; without a zone it is UTC.
fn parse_timestamp(text: &str) -> Result<i64, EngineError> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc()
            .timestamp_millis());
    }
    Err(EngineError::InvalidInput(format!(
        "cannot read '{text}' as a timestamp; write it as '2026-01-01 10:00:00' (UTC) or with a zone"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> Option<String> {
        let tokens = super::super::lexing::tokens(sql).unwrap();
        rewrite(sql, &tokens).unwrap()
    }

    #[test]
    fn references_become_marked_names_with_an_alias() {
        assert_eq!(rewritten("SELECT * FROM t"), None);
        assert_eq!(
            rewritten("SELECT t.a FROM T VERSION AS OF 3 WHERE a > 1").as_deref(),
            Some("SELECT t.a FROM \"t@v3\" AS \"t\" WHERE a > 1")
        );
        assert_eq!(
            rewritten("select * from shop.t version as of 0 old, shop.t new\nwhere 'it''s' = 'x'")
                .as_deref(),
            Some("select * from shop.\"t@v0\" old, shop.t new\nwhere 'it''s' = 'x'")
        );
        assert_eq!(
            rewritten("SELECT * FROM t TIMESTAMP AS OF '2026-01-01 10:00:00'").as_deref(),
            Some("SELECT * FROM \"t@t1767261600000\" AS \"t\"")
        );
    }
}
