//! The statement text as tokens, for the rewrites that run before parsing (time travel,
//! `PARTITION BY`, parameters) and for MiniDB's own statements: one tokenizer, the byte offset
//! of a token's position (to splice the text), and the rule that turns an identifier into the
//! name it denotes.

use datafusion::sql::sqlparser::ast::Ident;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use super::EngineError;

/// The tokens of `sql` without whitespace, with their positions.
pub(super) fn tokens(sql: &str) -> Result<Vec<TokenWithSpan>, EngineError> {
    let spanned = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| EngineError::InvalidInput(format!("syntax error: {e}")))?;
    Ok(spanned
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect())
}

/// The byte offset of a tokenizer location (1-based line and character column) in `sql`.
pub(super) fn offset(sql: &str, location: Location) -> usize {
    let mut line_start = 0;
    for _ in 1..location.line {
        match sql[line_start..].find('\n') {
            Some(newline) => line_start += newline + 1,
            None => return sql.len(),
        }
    }
    sql[line_start..]
        .char_indices()
        .nth(location.column.saturating_sub(1) as usize)
        .map_or(sql.len(), |(i, _)| line_start + i)
}

/// The name an identifier denotes: unquoted identifiers are case-insensitive (lower-cased),
/// quoted ones are taken as written — the same rule DataFusion applies.
pub fn normalize(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}
