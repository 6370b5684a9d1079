//! Syntax errors in MiniDB's words: where the statement went wrong (line and column), what was
//! expected there, and the line itself with a caret under the spot, as psql shows them.

use super::EngineError;

/// Characters of the statement's line shown on each side of the caret.
const CONTEXT_CHARS: usize = 60;

/// The error for `sql`, which the parser or tokenizer rejected with `message` (sqlparser's text:
/// `Expected: …, found: …`, ending in ` at Line: L, Column: C` when it knows where).
pub fn error(sql: &str, message: &str) -> EngineError {
    let (what, mut at) = split_location(message);
    // The end of the statement has no location of its own: it is after the last character.
    if at.is_none() && what.ends_with(", found: EOF") {
        let text = sql.trim_end().trim_end_matches(';').trim_end();
        let line = text.lines().count().max(1);
        let column = text.lines().last().map_or(0, |l| l.chars().count()) + 1;
        at = Some((line, column));
    }
    let what = reword(what);
    EngineError::Syntax(match at {
        Some((line, column)) => format!(
            "syntax error at line {line}, column {column}: {what}{}",
            caret(sql, line, column)
        ),
        None => format!("syntax error: {what}"),
    })
}

/// `message` without its location suffix, and the location (1-based line and column).
fn split_location(message: &str) -> (&str, Option<(usize, usize)>) {
    let Some(at) = message.rfind(" at Line: ") else {
        return (message, None);
    };
    let location = &message[at + " at Line: ".len()..];
    let parsed = location
        .split_once(", Column: ")
        .and_then(|(line, column)| Some((line.trim().parse().ok()?, column.trim().parse().ok()?)));
    match parsed {
        Some(position) => (&message[..at], Some(position)),
        None => (message, None),
    }
}

/// sqlparser's `Expected: X, found: Y` as `expected X, found Y`.
fn reword(what: &str) -> String {
    let what = what
        .trim()
        .trim_start_matches("sql parser error: ")
        .replacen("Expected: ", "expected ", 1)
        .replacen(", found: EOF", ", found the end of the statement", 1)
        .replacen(", found: ", ", found ", 1);
    let mut chars = what.chars();
    match chars.next() {
        // A keyword (`DELETE is not allowed …`) keeps its case.
        Some(_) if chars.clone().next().is_some_and(char::is_uppercase) => what,
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "the statement could not be read".to_string(),
    }
}

/// Line `line` of `sql` (cut around the spot when long) and a caret under column `column`,
/// each on a line of its own; empty when `sql` has no such line.
fn caret(sql: &str, line: usize, column: usize) -> String {
    let Some(text) = sql.lines().nth(line.saturating_sub(1)) else {
        return String::new();
    };
    let chars: Vec<char> = text
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .collect();
    let spot = column.saturating_sub(1).min(chars.len());
    let from = spot.saturating_sub(CONTEXT_CHARS);
    let to = (spot + CONTEXT_CHARS).min(chars.len());
    let mut shown: String = chars[from..to].iter().collect();
    let mut pad = spot - from;
    if from > 0 {
        shown.insert(0, '…');
        pad += 1;
    }
    if to < chars.len() {
        shown.push('…');
    }
    format!("\n{}\n{}^", shown.trim_end(), " ".repeat(pad))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(sql: &str, message: &str) -> String {
        error(sql, message).to_string()
    }

    #[test]
    fn the_spot_is_named_and_marked() {
        assert_eq!(
            text(
                "SELEC * FROM t",
                "Expected: an SQL statement, found: SELEC at Line: 1, Column: 1"
            ),
            "syntax error at line 1, column 1: expected an SQL statement, found SELEC\n\
             SELEC * FROM t\n^"
        );
        assert_eq!(
            text(
                "SELECT a\nFROM t WHERE",
                "Expected: an expression, found: EOF at Line: 2, Column: 13"
            ),
            "syntax error at line 2, column 13: expected an expression, found the end of the \
             statement\nFROM t WHERE\n            ^"
        );
    }

    #[test]
    fn a_statement_that_ends_too_soon_is_marked_at_its_end() {
        assert_eq!(
            text("SELECT 1 FROM;", "Expected: identifier, found: EOF"),
            "syntax error at line 1, column 14: expected identifier, found the end of the \
             statement\nSELECT 1 FROM;\n             ^"
        );
    }

    #[test]
    fn long_lines_are_cut_around_the_spot() {
        let sql = format!("SELECT {} FROM", "x, ".repeat(100));
        let shown = text(
            &sql,
            "Expected: an expression, found: FROM at Line: 1, Column: 309",
        );
        let lines: Vec<&str> = shown.lines().collect();
        assert!(
            lines[1].starts_with('…') && lines[1].ends_with("FROM"),
            "{shown}"
        );
        assert_eq!(lines[2].chars().count(), lines[1].chars().count() - 3);
    }

    #[test]
    fn messages_without_a_location_keep_their_words() {
        assert_eq!(
            text("x", "sql parser error: recursion limit exceeded"),
            "syntax error: recursion limit exceeded"
        );
        assert_eq!(
            text(
                "SELECT 'a",
                "Unterminated string literal at Line: 1, Column: 8"
            ),
            "syntax error at line 1, column 8: unterminated string literal\nSELECT 'a\n       ^"
        );
    }
}
