//! Rendering outcomes as text: ASCII tables and the seed's one-line messages.
//!
//! A table's columns are as wide as their widest cell on a terminal (East Asian wide characters
//! and emoji count two, combining marks none); newlines, carriage returns and tabs inside a cell
//! print as `\n`, `\r` and `\t`, so every row stays one line. `EXPLAIN` prints its plans as
//! indented text rather than as a table.

use arrow::array::RecordBatch;
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use unicode_width::UnicodeWidthStr;

use super::display::Display;
use crate::engine::{Listing, Outcome};

/// The one-line (or short) message for an outcome that is not a result set.
pub fn message(outcome: &Outcome) -> Option<String> {
    Some(match outcome {
        Outcome::DatabaseCreated(name) => format!("Database created: {name}"),
        Outcome::DatabaseDropped(name) => format!("Dropped database: {name}"),
        Outcome::UsingDatabase(name) => format!("Using database: {name}"),
        Outcome::TableCreated(name) => format!("Table created: {name}"),
        Outcome::TableCreatedAs { table, rows } => {
            format!("Table created: {table} ({rows} row(s))")
        }
        Outcome::TableCloned {
            table,
            source,
            version,
        } => format!("Table created: {table} (deep clone of {source} at version {version})"),
        Outcome::TableDropped(name) => format!("Dropped table: {name}"),
        Outcome::ViewCreated(name) => format!("View created: {name}"),
        Outcome::ViewDropped(name) => format!("Dropped view: {name}"),
        Outcome::IndexCreated(name) => format!("Index created: {name}"),
        Outcome::IndexDropped(name) => format!("Dropped index: {name}"),
        Outcome::TableAltered { table, change } => format!("Table altered: {table} ({change})"),
        Outcome::Inserted { table, rows: 1 } => format!("Inserted into {table}"),
        Outcome::Inserted { table, rows } => format!("Inserted {rows} row(s) into {table}"),
        Outcome::Deleted { table, rows } => format!("Deleted {rows} row(s) from {table}"),
        Outcome::Updated { table, rows } => format!("Updated {rows} row(s) in {table}"),
        Outcome::Merged {
            table,
            inserted,
            updated,
            deleted,
        } => format!(
            "Merged into {table}: {inserted} row(s) inserted, {updated} updated, {deleted} deleted"
        ),
        Outcome::TransactionStarted => "Transaction started".into(),
        Outcome::TransactionCommitted => "Transaction committed".into(),
        Outcome::TransactionRolledBack => "Transaction rolled back".into(),
        Outcome::NothingToDo(text) => format!("{text}, nothing done"),
        Outcome::QueryCancelled(id) => format!("Query {id} cancelled"),
        Outcome::SettingChanged(setting) => format!("Set {setting}"),
        Outcome::Rows(_) | Outcome::Listing(..) => return None,
    })
}

/// SHOW DATABASES / SHOW TABLES as bulleted lists; DESCRIBE as a table.
pub fn listing(
    listing: &Listing,
    batch: &RecordBatch,
    display: &Display,
) -> Result<String, ArrowError> {
    let names = || -> Result<Vec<String>, ArrowError> {
        Ok(cells(batch, display)?
            .into_iter()
            .filter_map(|mut row| row.pop())
            .collect())
    };
    Ok(match listing {
        Listing::Databases => bullets("Databases:", &names()?, "(no databases)"),
        Listing::Tables { database } => bullets(
            &format!("Tables in {database}:"),
            &names()?,
            "(no tables left)",
        ),
        Listing::Statements => names()?
            .iter()
            .map(|statement| format!("{statement};"))
            .collect::<Vec<_>>()
            .join("\n"),
        Listing::Columns { .. } | Listing::Indexes { .. } | Listing::Report => {
            let rows = cells(batch, display)?;
            let mut table = AsciiTable::new(batch, &rows);
            table.push_rows(&rows);
            table.finish()
        }
    })
}

fn bullets(title: &str, names: &[String], empty: &str) -> String {
    if names.is_empty() {
        return empty.to_string();
    }
    let mut text = title.to_string();
    for name in names {
        text.push_str("\n - ");
        text.push_str(name);
    }
    text
}

/// The cells of a batch, formatted as text, row by row.
pub fn cells(batch: &RecordBatch, display: &Display) -> Result<Vec<Vec<String>>, ArrowError> {
    let options = FormatOptions::default().with_null(&display.null);
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|row| {
            formatters
                .iter()
                .map(|f| escaped(f.value(row).to_string()))
                .collect()
        })
        .collect())
}

/// A cell's text on one line: control characters that would break the grid, escaped.
fn escaped(text: String) -> String {
    if !text.contains(['\n', '\r', '\t']) {
        return text;
    }
    text.replace('\n', "\\n")
        .replace('\r', "\\r")
        .replace('\t', "\\t")
}

/// How many terminal columns `text` takes.
fn width(text: &str) -> usize {
    text.width()
}

/// Whether a result is `EXPLAIN`'s: a plan type and a plan per row.
pub fn is_explain(schema: &arrow::datatypes::Schema) -> bool {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    names == ["plan_type", "plan"]
}

/// `EXPLAIN`'s rows as text: each plan type, then its plan indented under it.
pub fn explain_text(batches: &[RecordBatch]) -> Result<String, ArrowError> {
    let options = FormatOptions::default();
    let mut text = String::new();
    for batch in batches {
        let kinds = ArrayFormatter::try_new(batch.column(0).as_ref(), &options)?;
        let plans = ArrayFormatter::try_new(batch.column(1).as_ref(), &options)?;
        for row in 0..batch.num_rows() {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&format!("{}:\n", kinds.value(row)));
            for line in plans.value(row).to_string().lines() {
                text.push_str(&format!("  {line}\n"));
            }
        }
    }
    Ok(text)
}

/// An ASCII table whose column widths are fixed by its header and first rows. A later row that
/// is wider widens its columns and draws the header again above it, so a long result streams
/// without being held in memory and its grid never breaks.
pub struct AsciiTable {
    header: Vec<String>,
    widths: Vec<usize>,
    text: String,
}

impl AsciiTable {
    /// Starts a table for `batch`'s columns, sized to fit the header and `sample` rows.
    pub fn new(batch: &RecordBatch, sample: &[Vec<String>]) -> Self {
        let header: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let widths = header
            .iter()
            .enumerate()
            .map(|(i, h)| {
                sample
                    .iter()
                    .map(|row| width(&row[i]))
                    .chain([width(h)])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut table = Self {
            header,
            widths,
            text: String::new(),
        };
        table.heading();
        table
    }

    fn heading(&mut self) {
        self.border();
        let header = std::mem::take(&mut self.header);
        self.row(&header);
        self.header = header;
        self.border();
    }

    fn border(&mut self) {
        self.text.push('+');
        for width in &self.widths {
            self.text.push_str(&"-".repeat(width + 2));
            self.text.push('+');
        }
        self.text.push('\n');
    }

    fn row(&mut self, cells: &[String]) {
        self.text.push('|');
        for (cell, width) in cells.iter().zip(&self.widths) {
            let pad = width.saturating_sub(self::width(cell));
            self.text.push(' ');
            self.text.push_str(cell);
            self.text.push_str(&" ".repeat(pad + 1));
            self.text.push('|');
        }
        self.text.push('\n');
    }

    pub fn push_rows(&mut self, rows: &[Vec<String>]) {
        for row in rows {
            let widths: Vec<usize> = row
                .iter()
                .zip(&self.widths)
                .map(|(cell, column)| width(cell).max(*column))
                .collect();
            if widths != self.widths {
                self.border();
                self.widths = widths;
                self.heading();
            }
            self.row(row);
        }
    }

    /// Takes the text rendered so far (to send it while more rows come).
    pub fn take_text(&mut self) -> String {
        std::mem::take(&mut self.text)
    }

    /// The closing border.
    pub fn finish(mut self) -> String {
        self.border();
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn renders_like_the_seed_transcript() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("Alice"), None])),
            ],
        )
        .unwrap();
        let rows = cells(&batch, &Display::default()).unwrap();
        let mut table = AsciiTable::new(&batch, &rows);
        table.push_rows(&rows);
        assert_eq!(
            table.finish(),
            "+----+-------+\n| id | name  |\n+----+-------+\n| 1  | Alice |\n| 2  | NULL  |\n+----+-------+\n"
        );
    }

    fn strings(values: &[&str]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(values.to_vec()))]).unwrap()
    }

    #[test]
    fn wide_characters_count_two_columns_and_newlines_stay_on_their_row() {
        let batch = strings(&["日本", "é", "a\tb\nc", "🦀"]);
        let rows = cells(&batch, &Display::default()).unwrap();
        let mut table = AsciiTable::new(&batch, &rows);
        table.push_rows(&rows);
        assert_eq!(
            table.finish(),
            "+---------+\n| s       |\n+---------+\n| 日本    |\n| é       |\n| a\\tb\\nc |\n| 🦀      |\n+---------+\n"
        );
    }

    #[test]
    fn a_wider_row_later_draws_the_header_again() {
        let first = strings(&["ab"]);
        let mut table = AsciiTable::new(&first, &cells(&first, &Display::default()).unwrap());
        table.push_rows(&cells(&first, &Display::default()).unwrap());
        table.push_rows(&cells(&strings(&["abcd", "x"]), &Display::default()).unwrap());
        assert_eq!(
            table.finish(),
            "+----+\n| s  |\n+----+\n| ab |\n+----+\n+------+\n| s    |\n+------+\n| abcd |\n| x    |\n+------+\n"
        );
    }
}
