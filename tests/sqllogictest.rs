//! sqllogictest harness: runs MiniDB's own `tests/slt/*.slt`, the SQLite corpus in
//! `../shared/corpora/sqlite/` and the DuckDB subset in `../shared/corpora/duckdb/` against the
//! engine in process, one fresh data root per file, and prints the pass rate of each file and,
//! per corpus, what still fails grouped by cause.
//!
//! Our own files must pass completely (on a temporary directory, the real local store). The
//! corpus files run on an in-memory store and must stay at or above their bars: select1-3
//! pass completely (plain DataFusion passes 64%; MiniDB's unnesting of correlated subqueries
//! makes up the rest), index/random ≥ 99%.
//!
//! Every corpus file must also pass at least as many records as `tests/corpus-passing.txt`
//! records for it, so no record that passed regresses unnoticed (the bar only goes up:
//! `SLT_WRITE_BARS=1` records what the files that ran pass now). DuckDB statements MiniDB has
//! not (PRAGMA, DuckDB-only functions) count as failures, never as passes.
//!
//! SQLite results are rendered by the expected column type letters, as that corpus requires:
//! `I` integer, `R` with three decimals, `T` text with `(empty)` for the empty string, `NULL`
//! for nulls. DuckDB results are rendered as text and compared cell by cell, numbers with a
//! relative tolerance of 1e-6, rows of a query without ORDER BY in any order. Usage:
//! `cargo test --test sqllogictest [-- FILTER]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::TryStreamExt;
use minidb::engine::{Engine, Outcome, Session};
use minidb::storage::DataStore;
use sqllogictest::{DBOutput, DefaultColumnType, QueryExpect, Record};

/// Column types the current query expects, shared between the harness and the connection.
type ExpectedTypes = Arc<Mutex<Vec<DefaultColumnType>>>;

struct MiniDb {
    engine: Arc<Engine>,
    session: Session,
    expected: ExpectedTypes,
    corpus: Corpus,
}

/// Whose files these are, which decides how results render and what a file must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Corpus {
    Own,
    Sqlite,
    DuckDb,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SltError(String);

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for MiniDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let error = |e: &dyn std::fmt::Display| SltError(e.to_string());
        let outcome = self
            .engine
            .execute(&mut self.session, sql)
            .await
            .map_err(|e| error(&e))?;
        let batches: Vec<RecordBatch> = match outcome {
            Outcome::Rows(stream) => stream.try_collect().await.map_err(|e| error(&e))?,
            Outcome::Listing(_, batch) => vec![batch],
            other => return Ok(DBOutput::StatementComplete(other.affected_rows())),
        };
        let expected = self.expected.lock().unwrap().clone();
        let width = batches.first().map_or(0, |b| b.num_columns());
        let types: Vec<DefaultColumnType> = (0..width)
            .map(|i| expected.get(i).cloned().unwrap_or(DefaultColumnType::Any))
            .collect();
        let mut rows = Vec::new();
        for batch in &batches {
            for row in 0..batch.num_rows() {
                let cells = batch
                    .columns()
                    .iter()
                    .zip(&types)
                    .map(|(column, ty)| match self.corpus {
                        Corpus::DuckDb => render_text(column.as_ref(), row),
                        _ => render(column.as_ref(), row, ty),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| error(&e))?;
                rows.push(cells);
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "minidb"
    }
}

/// One cell, rendered the way the expected type letter asks.
fn render(
    column: &dyn Array,
    row: usize,
    ty: &DefaultColumnType,
) -> Result<String, arrow::error::ArrowError> {
    if column.is_null(row) {
        return Ok("NULL".into());
    }
    let float = || -> Option<f64> {
        let value = arrow::compute::cast(&column.slice(row, 1), &DataType::Float64).ok()?;
        Some(
            value
                .as_primitive::<arrow::datatypes::Float64Type>()
                .value(0),
        )
    };
    let text = ArrayFormatter::try_new(column, &FormatOptions::default().with_null("NULL"))?
        .value(row)
        .to_string();
    let is_text = matches!(
        column.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    Ok(match ty {
        // SQLite reads a number from text by its numeric prefix ('12ab' is 12, 'ab' is 0).
        DefaultColumnType::Integer if is_text => {
            format!("{}", numeric_prefix(&text).trunc() as i64)
        }
        DefaultColumnType::FloatingPoint if is_text => format!("{:.3}", numeric_prefix(&text)),
        DefaultColumnType::FloatingPoint => float().map_or(text, |v| format!("{v:.3}")),
        DefaultColumnType::Integer
            if column.data_type().is_floating()
                || matches!(column.data_type(), DataType::Decimal128(..)) =>
        {
            float().map_or(text, |v| format!("{}", v.trunc() as i64))
        }
        DefaultColumnType::Text if text.is_empty() => "(empty)".into(),
        _ => text,
    })
}

/// One cell as text, `NULL` for nulls and `(empty)` for the empty string (DuckDB's rendering).
fn render_text(column: &dyn Array, row: usize) -> Result<String, arrow::error::ArrowError> {
    if column.is_null(row) {
        return Ok("NULL".into());
    }
    let text = ArrayFormatter::try_new(column, &FormatOptions::default().with_null("NULL"))?
        .value(row)
        .to_string();
    Ok(if text.is_empty() {
        "(empty)".into()
    } else {
        text
    })
}

/// DuckDB's comparison: the same rows, cell by cell (expected cells are tab-separated), numbers
/// equal within a relative 1e-6, a boolean equal to `1`/`0` as DuckDB's files write it too.
fn tolerant_validator(
    _normalizer: sqllogictest::Normalizer,
    actual: &[Vec<String>],
    expected: &[String],
) -> bool {
    let close = |a: &str, e: &str| match (a.parse::<f64>(), e.parse::<f64>()) {
        (Ok(a), Ok(e)) => a == e || (a - e).abs() <= 1e-6 * a.abs().max(e.abs()).max(1.0),
        _ => matches!((a, e), ("true", "1") | ("false", "0")),
    };
    actual.len() == expected.len()
        && actual.iter().zip(expected).all(|(row, line)| {
            let mut cells: Vec<&str> = line.split('\t').collect();
            if cells.len() != row.len() {
                cells = line.split_whitespace().collect();
            }
            cells.len() == row.len()
                && row
                    .iter()
                    .zip(&cells)
                    .all(|(a, e)| a.trim() == e.trim() || close(a.trim(), e.trim()))
        })
}

/// The number at the start of `text`, as SQLite converts text to a number.
fn numeric_prefix(text: &str) -> f64 {
    let text = text.trim_start();
    let end = (0..=text.len())
        .rev()
        .find(|&i| text.is_char_boundary(i) && text[..i].parse::<f64>().is_ok())
        .unwrap_or(0);
    text[..end].parse().unwrap_or(0.0)
}

/// Pass/fail counts of one file.
struct FileResult {
    passed: usize,
    total: usize,
    first_failures: Vec<String>,
    /// Failures by cause (the error's first line, numbers and quoted names taken out).
    causes: BTreeMap<String, usize>,
}

/// What a failure is about, for grouping: its message's first line without the specifics.
fn cause(error: &str) -> String {
    let line = error
        .lines()
        .find(|l| l.contains("failed:") || l.contains("mismatch") || l.contains("error"))
        .unwrap_or_else(|| error.lines().next().unwrap_or_default());
    let mut out = String::new();
    let mut quoted = None;
    for c in line.trim().chars() {
        match (quoted, c) {
            (Some(q), c) if c == q => {
                quoted = None;
                out.push('…');
                out.push(c);
            }
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => {
                quoted = Some(c);
                out.push(c);
            }
            (None, c) if c.is_ascii_digit() => {
                if !out.ends_with('N') {
                    out.push('N');
                }
            }
            (None, c) => out.push(c),
        }
    }
    out.chars().take(160).collect()
}

/// The column cache of each file's engine: small enough that some files evict.
const COLUMN_CACHE_BYTES: u64 = 64 * 1024 * 1024;

async fn run_file(path: &Path, data: &str, corpus: Corpus) -> FileResult {
    let engine = Arc::new(
        // Scans go through the column cache, as on a server with its defaults.
        Engine::open(
            DataStore::open(data)
                .expect("test data root opens")
                .with_column_cache(COLUMN_CACHE_BYTES),
        )
        .await
        .expect("engine opens on a fresh data root"),
    );
    let expected: ExpectedTypes = Arc::default();
    let shared = Arc::clone(&expected);
    let mut runner = sqllogictest::Runner::new(move || {
        let engine = Arc::clone(&engine);
        let expected = Arc::clone(&shared);
        async move {
            Ok(MiniDb {
                engine,
                session: Session::default(),
                expected,
                corpus,
            })
        }
    });
    runner.with_column_validator(|_, _| true);
    if corpus == Corpus::DuckDb {
        runner.with_validator(tolerant_validator);
    }
    let records = sqllogictest::parse_file::<DefaultColumnType>(path)
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
    let mut result = FileResult {
        passed: 0,
        total: 0,
        first_failures: Vec::new(),
        causes: BTreeMap::new(),
    };
    for mut record in records {
        let counted = matches!(&record, Record::Statement { .. } | Record::Query { .. });
        // SQL orders rows only by ORDER BY; DuckDB's files sometimes expect the order DuckDB
        // happens to produce, so rows of a query without one are compared in any order.
        if corpus == Corpus::DuckDb
            && let Record::Query {
                sql,
                expected:
                    QueryExpect::Results {
                        sort_mode: sort_mode @ None,
                        results,
                        ..
                    },
                ..
            } = &mut record
            && !sql.to_lowercase().contains("order by")
        {
            *sort_mode = Some(sqllogictest::SortMode::RowSort);
            results.sort_unstable();
        }
        if let Record::Query {
            expected: QueryExpect::Results { types, .. },
            ..
        } = &record
        {
            *expected.lock().unwrap() = types.clone();
        }
        let outcome = runner.run_async(record).await;
        if counted {
            result.total += 1;
            match outcome {
                Ok(_) => result.passed += 1,
                Err(e) => {
                    let text = e.to_string();
                    *result.causes.entry(cause(&text)).or_default() += 1;
                    if result.first_failures.len() < failures_shown() {
                        result.first_failures.push(text);
                    }
                }
            }
        }
    }
    result
}

fn slt_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "slt") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// How many failures of a file to print (`SLT_SHOW_FAILURES`, default 3).
fn failures_shown() -> usize {
    std::env::var("SLT_SHOW_FAILURES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// Minimum pass rate (percent) of a corpus file: what it passes now, so nothing regresses.
fn required_rate(path: &Path) -> f64 {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if name.starts_with("select") {
        100.0
    } else {
        99.0
    }
}

/// Where the corpus files' bars are kept: per file, the records it must pass.
const BARS: &str = "tests/corpus-passing.txt";

/// The bars of `BARS`, by path relative to the corpora folder.
fn recorded_bars(root: &Path) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(root.join(BARS)).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (path, passed) = l.rsplit_once(' ')?;
            Some((path.trim().to_string(), passed.trim().parse().ok()?))
        })
        .collect()
}

/// The files of a corpus; a missing corpus stops the run (its bars must not pass with no files).
fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let files = slt_files(dir);
    if files.is_empty() {
        eprintln!("no corpus at {}: its bars cannot be checked", dir.display());
        std::process::exit(1);
    }
    files
}

#[tokio::main]
async fn main() {
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpora = root.join("../shared/corpora");
    let files: Vec<(PathBuf, Corpus)> = slt_files(&root.join("tests/slt"))
        .into_iter()
        .map(|p| (p, Corpus::Own))
        .chain(
            corpus_files(&corpora.join("sqlite"))
                .into_iter()
                .map(|p| (p, Corpus::Sqlite)),
        )
        .chain(
            corpus_files(&corpora.join("duckdb"))
                .into_iter()
                .map(|p| (p, Corpus::DuckDb)),
        )
        .collect();
    let bars = recorded_bars(root);
    let mut passing = BTreeMap::new();
    let mut causes: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();
    let mut totals: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut failed = Vec::new();
    for (path, corpus) in &files {
        let shown = path
            .strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string();
        if filter.as_deref().is_some_and(|f| !shown.contains(f)) {
            continue;
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let data = match corpus {
            Corpus::Own => dir.path().to_string_lossy().to_string(),
            _ => "memory://".to_string(),
        };
        let started = std::time::Instant::now();
        let result = run_file(path, &data, *corpus).await;
        let rate = 100.0 * result.passed as f64 / result.total.max(1) as f64;
        let (below, bar) = if *corpus == Corpus::Own {
            (result.passed < result.total, "required 100%".to_string())
        } else {
            let key = path
                .strip_prefix(&corpora)
                .unwrap_or(path)
                .display()
                .to_string();
            let required = bars.get(&key).copied().unwrap_or(0);
            passing.insert(key, result.passed);
            let floor = match corpus {
                Corpus::Sqlite => required_rate(path),
                _ => 0.0,
            };
            (
                result.passed < required || rate < floor,
                format!("required {required} passed and {floor}%"),
            )
        };
        println!(
            "{shown}: {}/{} passed ({rate:.1}%, {bar}) in {:.1}s",
            result.passed,
            result.total,
            started.elapsed().as_secs_f64()
        );
        if below {
            for failure in &result.first_failures {
                println!("  {}", failure.replace('\n', "\n  "));
            }
            failed.push(shown);
        }
        let name = match corpus {
            Corpus::Own => continue,
            Corpus::Sqlite => "SQLite corpus",
            Corpus::DuckDb => "DuckDB corpus",
        };
        let total = totals.entry(name).or_default();
        total.0 += result.passed;
        total.1 += result.total;
        let grouped = causes.entry(name).or_default();
        for (cause, count) in result.causes {
            *grouped.entry(cause).or_default() += count;
        }
    }
    for (corpus, grouped) in &causes {
        let mut ranked: Vec<(&String, &usize)> = grouped.iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let (passed, total) = totals.get(corpus).copied().unwrap_or_default();
        println!(
            "{corpus}: {passed}/{total} records pass ({:.1}%); failing, by cause:",
            100.0 * passed as f64 / total.max(1) as f64
        );
        for (cause, count) in ranked.into_iter().take(15) {
            println!("  {count:6}  {cause}");
        }
    }
    // `SLT_WRITE_BARS=1` records what each corpus file that ran passes now as its bar.
    if std::env::var_os("SLT_WRITE_BARS").is_some() {
        // The comments stay; the first says what the file is.
        let old = std::fs::read_to_string(root.join(BARS)).unwrap_or_default();
        let mut text: String = old
            .lines()
            .filter(|l| l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        if text.is_empty() {
            text.push_str(
                "# Records each corpus file must pass (tests/sqllogictest.rs); only raise them.\n",
            );
        }
        let mut all = bars.clone();
        all.extend(passing);
        for (path, passed) in &all {
            text.push_str(&format!("{path} {passed}\n"));
        }
        std::fs::write(root.join(BARS), text).expect("bars file is writable");
    }
    if !failed.is_empty() {
        eprintln!("below the required pass rate: {}", failed.join(", "));
        std::process::exit(1);
    }
}
