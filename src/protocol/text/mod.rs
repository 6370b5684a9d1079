//! The plain-text protocol: SQL in, ASCII tables and one-line messages out, over TCP.
//!
//! A connection is a session (its own current database). Statements end with `;`, may span
//! lines and several may share a line; `EXIT`/`QUIT` ends the session. Errors print
//! `ERROR <SQLSTATE>: <cause>` (`ERROR 42P01: table 'shop.ordrs' does not exist`) and the
//! session continues. A line starting with `\\` outside a statement is a display command
//! (`\\pset null '∅'`, `\\pset footer on`; see `display.rs`). Over-long lines, invalid UTF-8 and abrupt
//! disconnects only ever affect their own connection.

mod connection;
mod display;
mod format;
mod framing;
mod shorthand;

pub use connection::serve;
pub use framing::{Piece, StatementSplitter};

/// Whatever arrives on a text connection splits into statements and expands its shorthand
/// without a panic.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::framing::{Piece, StatementSplitter};
    use super::shorthand;
    use crate::fuzzing;

    fn lines() -> impl Strategy<Value = Vec<String>> {
        let piece = prop::sample::select(
            &[
                "INSERT", "CREATE", "t", "(", ")", ",", ";", "'", "\"", "`", "--", "/*", "*/", " ",
                "1", "x INT", "exit", "quit", "\\", "é", "\u{0}", "\r",
            ][..],
        );
        let line = prop_oneof![
            prop::collection::vec(piece, 0..12).prop_map(|p| p.concat()),
            any::<String>(),
        ];
        prop::collection::vec(line.prop_map(|l| l + "\n"), 0..8)
    }

    proptest! {
        #![proptest_config(fuzzing::config())]

        #[test]
        fn any_lines_split_and_expand_without_panic(lines in lines()) {
            let mut splitter = StatementSplitter::default();
            for line in &lines {
                for piece in splitter.push_line(line) {
                    if let Piece::Statement(sql) = piece {
                        let _ = shorthand::expand(&sql);
                    }
                }
            }
        }
    }
}
