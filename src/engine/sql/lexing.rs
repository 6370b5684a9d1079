//! The statement text as tokens: one tokenizer, one [`Cursor`] to read tokens with, and one
//! [`splice`] to replace spans of the text. Every rewrite that runs before parsing is built from
//! these.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer};

use super::names::{TableName, normalize};
use crate::engine::EngineError;

/// The tokens of `sql` without whitespace, with their positions.
pub fn tokens(sql: &str) -> Result<Vec<TokenWithSpan>, EngineError> {
    let spanned = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| super::syntax::error(sql, &e.to_string()))?;
    Ok(spanned
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect())
}

/// `sql` with each span of `edits` replaced by its text; everything else is kept byte for
/// byte. Spans are token spans of `sql`, in order and not overlapping.
pub fn splice(sql: &str, edits: impl IntoIterator<Item = (Span, String)>) -> String {
    let lines = LineStarts::new(sql);
    let mut out = String::with_capacity(sql.len() + 32);
    let mut copied = 0;
    for (span, replacement) in edits {
        out.push_str(&sql[copied..lines.offset(sql, span.start)]);
        out.push_str(&replacement);
        copied = lines.offset(sql, span.end);
    }
    out.push_str(&sql[copied..]);
    out
}

/// The text of `sql` a span covers.
pub fn text(sql: &str, span: Span) -> &str {
    &sql[byte_range(sql, span)]
}

/// The bytes of `sql` a span covers.
pub fn byte_range(sql: &str, span: Span) -> std::ops::Range<usize> {
    let lines = LineStarts::new(sql);
    lines.offset(sql, span.start)..lines.offset(sql, span.end)
}

/// Where each line of a text starts, to turn tokenizer locations into byte offsets.
struct LineStarts(Vec<usize>);

impl LineStarts {
    fn new(sql: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self(starts)
    }

    /// The byte offset of a location (1-based line and character column).
    fn offset(&self, sql: &str, location: Location) -> usize {
        let Some(&start) = (location.line as usize)
            .checked_sub(1)
            .and_then(|line| self.0.get(line))
        else {
            return sql.len();
        };
        sql[start..]
            .char_indices()
            .nth(location.column.saturating_sub(1) as usize)
            .map_or(sql.len(), |(i, _)| start + i)
    }
}

/// Reads the tokens of one statement front to back. Matching methods (`keyword`, `word`,
/// `token`) consume the token only when it matches; `expect_…` methods fail with a syntax error
/// saying what was expected.
pub struct Cursor<'a> {
    tokens: &'a [TokenWithSpan],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `tokens`; a trailing `;` (and the end-of-file token) is not
    /// part of the statement.
    pub fn new(tokens: &'a [TokenWithSpan]) -> Self {
        let end = tokens
            .iter()
            .rposition(|t| !matches!(t.token, Token::SemiColon | Token::EOF))
            .map_or(0, |i| i + 1);
        Self::at(&tokens[..end], 0)
    }

    /// A cursor at token `pos` of `tokens`.
    pub fn at(tokens: &'a [TokenWithSpan], pos: usize) -> Self {
        Self { tokens, pos }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn rewind(&mut self, pos: usize) {
        self.pos = pos;
    }

    pub fn done(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    pub fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.pos).map(|t| &t.token)
    }

    /// The span of the token read last.
    pub fn last_span(&self) -> Span {
        self.pos
            .checked_sub(1)
            .and_then(|i| self.tokens.get(i))
            .map_or(Span::empty(), |t| t.span)
    }

    pub fn next(&mut self) -> Option<&'a Token> {
        let token = self.peek();
        self.pos += 1;
        token
    }

    /// An unquoted keyword.
    pub fn keyword(&mut self, keyword: Keyword) -> bool {
        let found = matches!(self.peek(), Some(Token::Word(w)) if w.keyword == keyword && w.quote_style.is_none());
        if found {
            self.pos += 1;
        }
        found
    }

    /// All of `keywords` in a row, or nothing consumed.
    pub fn keywords(&mut self, keywords: &[Keyword]) -> bool {
        let start = self.pos;
        if keywords.iter().all(|k| self.keyword(*k)) {
            true
        } else {
            self.pos = start;
            false
        }
    }

    /// An unquoted word, keyword or not (sqlparser has no keyword for `INDEXES` or `HASH`).
    pub fn word(&mut self, text: &str) -> bool {
        let found = matches!(self.peek(), Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(text));
        if found {
            self.pos += 1;
        }
        found
    }

    /// The token `token`.
    pub fn token(&mut self, token: &Token) -> bool {
        let found = self.peek() == Some(token);
        if found {
            self.pos += 1;
        }
        found
    }

    /// The token `token`, or a syntax error naming `what` was expected.
    pub fn expect(&mut self, token: &Token, what: &str) -> Result<(), EngineError> {
        match self.peek() {
            Some(found) if found == token => {
                self.pos += 1;
                Ok(())
            }
            Some(found) => Err(syntax(format!("expected {what}, found '{found}'"))),
            None => Err(syntax(format!(
                "expected {what} at the end of the statement"
            ))),
        }
    }

    /// A name (a word, quoted or not), normalized.
    pub fn ident(&mut self) -> Result<String, EngineError> {
        match self.peek() {
            Some(Token::Word(word)) => {
                self.pos += 1;
                Ok(normalize(&word.to_ident(Span::empty())))
            }
            Some(other) => Err(syntax(format!("expected a name, found '{other}'"))),
            None => Err(syntax("expected a name at the end of the statement".into())),
        }
    }

    /// `table` or `database.table`.
    pub fn table_name(&mut self) -> Result<TableName, EngineError> {
        let first = self.ident()?;
        if self.token(&Token::Period) {
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

    /// `c1, c2, …`: one or more names separated by commas.
    pub fn name_list(&mut self) -> Result<Vec<String>, EngineError> {
        let mut names = vec![self.ident()?];
        while self.token(&Token::Comma) {
            names.push(self.ident()?);
        }
        Ok(names)
    }

    /// Succeeds when every token has been read.
    pub fn expect_end(&self) -> Result<(), EngineError> {
        match self.peek() {
            None => Ok(()),
            Some(extra) => Err(syntax(format!("unexpected '{extra}' after the statement"))),
        }
    }
}

/// A syntax error saying what was expected.
pub fn syntax(message: String) -> EngineError {
    EngineError::InvalidInput(format!("syntax error: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_keep_everything_between_edits() {
        let sql = "SELECT 'é', ?\nFROM t WHERE a = ?;";
        let tokens = tokens(sql).unwrap();
        let edits = tokens
            .iter()
            .filter(|t| t.token == Token::Placeholder("?".into()))
            .enumerate()
            .map(|(i, t)| (t.span, format!("${}", i + 1)));
        assert_eq!(splice(sql, edits), "SELECT 'é', $1\nFROM t WHERE a = $2;");
        let from = tokens
            .iter()
            .find(|t| matches!(&t.token, Token::Word(w) if w.keyword == Keyword::FROM))
            .unwrap();
        assert_eq!(text(sql, from.span), "FROM");
    }

    #[test]
    fn cursors_match_only_what_is_there() {
        let tokens = tokens("DROP \"table\" x.y;").unwrap();
        let mut cursor = Cursor::new(&tokens);
        assert!(cursor.keyword(Keyword::DROP));
        assert!(!cursor.keyword(Keyword::TABLE), "a quoted word is a name");
        assert_eq!(cursor.ident().unwrap(), "table");
        let name = cursor.table_name().unwrap();
        assert_eq!(
            (name.database.as_deref(), name.table.as_str()),
            (Some("x"), "y")
        );
        assert!(cursor.done());
        assert!(cursor.expect_end().is_ok());
    }
}
