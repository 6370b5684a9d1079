//! A text session's display settings and the backslash commands that change them.
//!
//! By default results print as the seed transcript shows them: NULL as `NULL`, no row count.
//! As in psql, `\pset null '∅'` shows NULL as other text (so it differs from the string
//! `'NULL'`), and `\pset footer on` ends every result table with `(N rows)`. A backslash
//! command is a line of its own, outside any statement, and needs no `;`.

use crate::engine::SYNTAX_ERROR;

/// How results are shown on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Display {
    /// The text shown for NULL.
    pub null: String,
    /// Whether result tables end with a `(N rows)` line.
    pub footer: bool,
}

impl Default for Display {
    fn default() -> Self {
        Self {
            null: "NULL".into(),
            footer: false,
        }
    }
}

impl Display {
    /// Runs the backslash command `line` (`\pset …`, `\?`) and answers it, as a line for the
    /// client: the new setting, or `ERROR <SQLSTATE>: …`.
    pub fn command(&mut self, line: &str) -> String {
        let line = line.trim();
        let (command, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        match command {
            "\\pset" => self.pset(rest.trim()),
            "\\?" => HELP.into(),
            _ => format!("ERROR {SYNTAX_ERROR}: unknown command {command}; \\? lists the commands"),
        }
    }

    fn pset(&mut self, arguments: &str) -> String {
        let (option, value) = arguments
            .split_once(char::is_whitespace)
            .map(|(o, v)| (o, Some(v.trim())))
            .unwrap_or((arguments, None));
        match (option, value) {
            ("", _) => format!("{}\n{}", self.null_line(), self.footer_line()),
            ("null", None) => self.null_line(),
            ("null", Some(value)) => match unquoted(value) {
                Some(text) => {
                    self.null = text;
                    self.null_line()
                }
                None => format!(
                    "ERROR {SYNTAX_ERROR}: \\pset null takes one value, quoted if it has spaces: \
                     \\pset null '(null)'"
                ),
            },
            ("footer", value) => match value.map(str::to_ascii_lowercase).as_deref() {
                None => {
                    self.footer = !self.footer;
                    self.footer_line()
                }
                Some("on") => {
                    self.footer = true;
                    self.footer_line()
                }
                Some("off") => {
                    self.footer = false;
                    self.footer_line()
                }
                Some(other) => {
                    format!("ERROR {SYNTAX_ERROR}: \\pset footer takes on or off, not '{other}'")
                }
            },
            (other, _) => {
                format!("ERROR {SYNTAX_ERROR}: \\pset has no option '{other}' (null, footer)")
            }
        }
    }

    fn null_line(&self) -> String {
        format!("Null display is \"{}\".", self.null)
    }

    fn footer_line(&self) -> String {
        format!(
            "Default footer is {}.",
            if self.footer { "on" } else { "off" }
        )
    }

    /// The footer of a result of `rows` rows, if footers are on.
    pub fn footer(&self, rows: usize) -> Option<String> {
        self.footer
            .then(|| format!("({rows} row{})", if rows == 1 { "" } else { "s" }))
    }
}

const HELP: &str = "\
SQL statements end with ';' and may span lines. Backslash commands take a line of their own:
  \\pset                 show the display settings
  \\pset null 'TEXT'     show NULL as TEXT (default NULL)
  \\pset footer [on|off] end result tables with (N rows) (default off)
  \\?                    this list
EXIT or QUIT ends the session.";

/// A value as typed: one bare word, or text in single quotes with `''` for a quote.
fn unquoted(value: &str) -> Option<String> {
    match value.strip_prefix('\'') {
        Some(rest) => {
            let inner = rest.strip_suffix('\'')?;
            (!inner.replace("''", "").contains('\'')).then(|| inner.replace("''", "'"))
        }
        None => {
            (!value.is_empty() && !value.contains(char::is_whitespace)).then(|| value.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pset_changes_and_shows_the_settings() {
        let mut display = Display::default();
        assert_eq!(
            display.command("\\pset null '(null)'"),
            "Null display is \"(null)\"."
        );
        assert_eq!(display.null, "(null)");
        assert_eq!(display.command("\\pset null ∅"), "Null display is \"∅\".");
        assert_eq!(
            display.command("\\pset null 'it''s'"),
            "Null display is \"it's\"."
        );
        assert_eq!(display.command("\\pset footer"), "Default footer is on.");
        assert_eq!(
            display.command("\\pset footer OFF"),
            "Default footer is off."
        );
        assert_eq!(
            display.command("\\pset"),
            "Null display is \"it's\".\nDefault footer is off."
        );
        assert!(
            display
                .command("\\pset null two words")
                .starts_with("ERROR 42601")
        );
        assert!(
            display
                .command("\\pset footer maybe")
                .starts_with("ERROR 42601")
        );
        assert!(
            display
                .command("\\pset border 2")
                .contains("no option 'border'")
        );
        assert!(display.command("\\d users").contains("unknown command \\d"));
    }

    #[test]
    fn footers_count_rows() {
        let mut display = Display::default();
        assert_eq!(display.footer(3), None);
        display.footer = true;
        assert_eq!(display.footer(1).as_deref(), Some("(1 row)"));
        assert_eq!(display.footer(0).as_deref(), Some("(0 rows)"));
    }
}
