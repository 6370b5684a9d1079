//! Showing results: as a table or expanded (a line per column), NULL as the text chosen, and
//! where the text goes — the terminal, through a pager when it is taller than the screen, or a
//! file chosen with `\o`.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use arrow::util::pretty::pretty_format_batches_with_options;

use crate::commands::Expanded;

/// The pager used when neither `MINIDB_PAGER` nor `PAGER` names one: chopped long lines
/// (scroll sideways), colours kept, the screen left as it is on exit.
const DEFAULT_PAGER: &str = "less -SRX";

/// Display settings and the destination of results.
pub struct Output {
    pub expanded: Expanded,
    /// The text shown for NULL (`NULL` by default, so `[NULL]` and `[]` differ).
    pub null: String,
    /// Whether results taller than the terminal go through a pager.
    pub pager: bool,
    /// The file `\o` sends results to.
    file: Option<File>,
}

impl Default for Output {
    fn default() -> Self {
        Self {
            expanded: Expanded::Off,
            null: "NULL".into(),
            pager: true,
            file: None,
        }
    }
}

impl Output {
    /// A result set as text, with a `(N rows)` line under it.
    pub fn render(&self, schema: &Schema, batches: &[RecordBatch]) -> Result<String, ArrowError> {
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let footer = format!("({rows} row{})", if rows == 1 { "" } else { "s" });
        if rows == 0 {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Ok(format!("{}\n{footer}", names.join(" | ")));
        }
        let options = FormatOptions::default().with_null(&self.null);
        let expanded = match self.expanded {
            Expanded::On => true,
            Expanded::Off => false,
            Expanded::Auto => {
                let table = pretty_format_batches_with_options(batches, &options)?.to_string();
                let width = table.lines().next().map_or(0, |l| l.chars().count());
                match terminal_size() {
                    Some((columns, _)) if width > columns => true,
                    _ => return Ok(format!("{table}\n{footer}")),
                }
            }
        };
        let body = if expanded {
            records(batches, &options)?
        } else {
            pretty_format_batches_with_options(batches, &options)?.to_string()
        };
        Ok(format!("{body}\n{footer}"))
    }

    /// Sends results to `path` from now on, or to the terminal again with `None`.
    pub fn send_to(&mut self, path: Option<&Path>) -> std::io::Result<()> {
        self.file = path.map(File::create).transpose()?;
        Ok(())
    }

    /// Prints `text` (and a newline) where results go.
    pub fn print(&mut self, text: &str) {
        if let Some(file) = &mut self.file {
            if let Err(e) = writeln!(file, "{text}") {
                eprintln!("minidb-cli: writing the \\o file: {e}");
            }
            return;
        }
        if self.pager && taller_than_the_terminal(text) && page(text).is_ok() {
            return;
        }
        println!("{text}");
    }
}

/// Each row as a block of `column | value` lines under a `-[ RECORD n ]` rule, as psql's
/// expanded display.
fn records(batches: &[RecordBatch], options: &FormatOptions) -> Result<String, ArrowError> {
    let Some(first) = batches.first() else {
        return Ok(String::new());
    };
    let schema = first.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let name_width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let rows = cells(batches, options)?;
    let value_width = rows
        .iter()
        .flatten()
        .map(|v| v.chars().count())
        .max()
        .unwrap_or(0);
    let mut blocks = Vec::new();
    for (number, values) in rows.into_iter().enumerate() {
        let title = format!("-[ RECORD {} ]", number + 1);
        let rule_width = (name_width + 3 + value_width).max(title.chars().count());
        let mut block = format!("{title}{}", "-".repeat(rule_width - title.chars().count()));
        for (name, value) in names.iter().zip(values) {
            let pad = name_width - name.chars().count();
            block.push_str(&format!("\n{name}{} | {value}", " ".repeat(pad)));
        }
        blocks.push(block);
    }
    Ok(blocks.join("\n"))
}

/// The cells of `batches` as text, row by row.
pub fn cells(
    batches: &[RecordBatch],
    options: &FormatOptions,
) -> Result<Vec<Vec<String>>, ArrowError> {
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
            );
        }
    }
    Ok(rows)
}

/// The terminal's columns and rows, when standard output is one.
fn terminal_size() -> Option<(usize, usize)> {
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        return None;
    }
    let size = rustix::termios::tcgetwinsize(stdout).ok()?;
    (size.ws_col > 0 && size.ws_row > 0).then(|| (size.ws_col.into(), size.ws_row.into()))
}

fn taller_than_the_terminal(text: &str) -> bool {
    terminal_size().is_some_and(|(_, rows)| text.lines().count() >= rows)
}

/// Shows `text` through the pager, and waits for the user to leave it.
fn page(text: &str) -> std::io::Result<()> {
    let pager = std::env::var("MINIDB_PAGER")
        .or_else(|_| std::env::var("PAGER"))
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_PAGER.to_string());
    let mut child = Command::new("sh")
        .args(["-c", &pager])
        .stdin(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        // A pager quit before reading everything closes its end: not an error.
        let _ = writeln!(stdin, "{text}");
    }
    child.wait()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("customer", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("Alice"), None])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn expanded_display_prints_a_block_per_row() {
        let output = Output {
            expanded: Expanded::On,
            null: "∅".into(),
            ..Output::default()
        };
        let batch = batch();
        assert_eq!(
            output.render(&batch.schema(), &[batch]).unwrap(),
            "-[ RECORD 1 ]---\nid       | 1\ncustomer | Alice\n\
             -[ RECORD 2 ]---\nid       | 2\ncustomer | ∅\n(2 rows)"
        );
    }

    #[test]
    fn tables_end_with_a_row_count() {
        let batch = batch();
        let text = Output::default()
            .render(&batch.schema(), std::slice::from_ref(&batch))
            .unwrap();
        assert!(
            text.ends_with("| 2  | NULL     |\n+----+----------+\n(2 rows)"),
            "{text}"
        );
        let empty = batch.slice(0, 0);
        assert_eq!(
            Output::default().render(&batch.schema(), &[empty]).unwrap(),
            "id | customer\n(0 rows)"
        );
    }
}
