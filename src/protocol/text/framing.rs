//! Splitting the byte stream of a connection into statements.

/// Longest statement accepted; longer ones are discarded up to their `;` with an error.
pub const MAX_STATEMENT_BYTES: usize = 1 << 20;

/// What the splitter found in the input so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    Statement(String),
    /// A statement grew past [`MAX_STATEMENT_BYTES`]; it was dropped.
    TooLong,
}

/// Accumulates text and yields complete statements, honouring quotes and comments so that a
/// `;` inside `'a;b'` or `-- a;b` does not end a statement.
#[derive(Debug, Default)]
pub struct StatementSplitter {
    buffer: String,
    quote: Option<char>,
    line_comment: bool,
    block_comment: bool,
    discarding: bool,
    /// Parentheses opened and not yet closed, outside quotes and comments.
    open_parens: usize,
}

impl StatementSplitter {
    /// True when no statement is partially entered.
    pub fn is_idle(&self) -> bool {
        self.buffer.trim().is_empty() && !self.discarding
    }

    /// The prompt for the next line of an open statement — `...> `, with the last dot replaced
    /// by what is open: `..'> ` (a quote), `..(> ` (a parenthesis), `..*> ` (a comment) — or
    /// `None` when no statement is open.
    pub fn continuation(&self) -> Option<String> {
        if self.is_idle() {
            return None;
        }
        let open = match self.quote {
            Some(q) => q,
            None if self.block_comment => '*',
            None if self.open_parens > 0 => '(',
            None => '.',
        };
        Some(format!("..{open}> "))
    }

    /// Feeds one line (with its newline) and returns the pieces it completed.
    pub fn push_line(&mut self, line: &str) -> Vec<Piece> {
        let mut pieces = Vec::new();
        // A bare EXIT or QUIT needs no semicolon.
        if self.is_idle() {
            let word = line.trim().trim_end_matches(';').trim();
            if word.eq_ignore_ascii_case("exit") || word.eq_ignore_ascii_case("quit") {
                self.buffer.clear();
                pieces.push(Piece::Statement(word.to_string()));
                return pieces;
            }
        }
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if self.line_comment {
                if c == '\n' {
                    self.line_comment = false;
                }
            } else if self.block_comment {
                if c == '*' && chars.peek() == Some(&'/') {
                    chars.next();
                    self.block_comment = false;
                }
            } else if let Some(q) = self.quote {
                if c == q {
                    self.quote = None;
                }
            } else {
                match c {
                    '\'' | '"' | '`' => self.quote = Some(c),
                    '(' => self.open_parens += 1,
                    ')' => self.open_parens = self.open_parens.saturating_sub(1),
                    '-' if chars.peek() == Some(&'-') => self.line_comment = true,
                    '/' if chars.peek() == Some(&'*') => {
                        self.block_comment = true;
                    }
                    ';' => {
                        if self.discarding {
                            self.discarding = false;
                        } else {
                            let statement = self.buffer.trim().to_string();
                            if !statement.is_empty() {
                                pieces.push(Piece::Statement(statement));
                            }
                        }
                        self.buffer.clear();
                        self.open_parens = 0;
                        continue;
                    }
                    _ => {}
                }
            }
            if !self.discarding {
                self.buffer.push(c);
                if self.buffer.len() > MAX_STATEMENT_BYTES {
                    self.buffer.clear();
                    self.discarding = true;
                    pieces.push(Piece::TooLong);
                }
            }
        }
        pieces
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statements(lines: &[&str]) -> Vec<Piece> {
        let mut splitter = StatementSplitter::default();
        lines.iter().flat_map(|l| splitter.push_line(l)).collect()
    }

    #[test]
    fn splits_several_per_line_and_across_lines() {
        assert_eq!(
            statements(&["SELECT 1; SELECT\n", "2;\n"]),
            vec![
                Piece::Statement("SELECT 1".into()),
                Piece::Statement("SELECT\n2".into())
            ]
        );
    }

    #[test]
    fn semicolons_in_quotes_and_comments_do_not_split() {
        assert_eq!(
            statements(&["SELECT 'a;b' -- c;d\n", ", \"x;y\";\n"]),
            vec![Piece::Statement("SELECT 'a;b' -- c;d\n, \"x;y\"".into())]
        );
    }

    #[test]
    fn an_open_statement_prompts_for_more_and_says_what_is_open() {
        let mut splitter = StatementSplitter::default();
        assert_eq!(splitter.continuation(), None);
        assert!(splitter.push_line("SELECT\n").is_empty());
        assert_eq!(splitter.continuation().as_deref(), Some("...> "));
        assert!(splitter.push_line("count(*\n").is_empty());
        assert_eq!(splitter.continuation().as_deref(), Some("..(> "));
        assert!(splitter.push_line(") FROM t WHERE s = 'O\n").is_empty());
        assert_eq!(splitter.continuation().as_deref(), Some("..'> "));
        assert!(splitter.push_line("Brien' /* a\n").is_empty());
        assert_eq!(splitter.continuation().as_deref(), Some("..*> "));
        assert_eq!(splitter.push_line("b */;\n").len(), 1);
        assert_eq!(splitter.continuation(), None);
    }

    #[test]
    fn exit_needs_no_semicolon() {
        assert_eq!(
            statements(&["exit\n"]),
            vec![Piece::Statement("exit".into())]
        );
    }

    #[test]
    fn over_long_statement_is_dropped_until_its_end() {
        let mut splitter = StatementSplitter::default();
        let long = "x".repeat(MAX_STATEMENT_BYTES + 1);
        assert_eq!(splitter.push_line(&long), vec![Piece::TooLong]);
        assert_eq!(
            splitter.push_line("more; SELECT 1;"),
            vec![Piece::Statement("SELECT 1".into())]
        );
    }
}
