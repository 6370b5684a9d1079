//! sqllogictest harness: runs MiniDB's own `tests/slt/*.slt` and the SQLite corpus in
//! `../shared/corpora/sqlite/` against the engine in process, one fresh data root per file, and
//! prints the pass rate of each file.
//!
//! Our own files must pass completely (on a temporary directory, the real local store). The
//! corpus files run on an in-memory store and must stay at or above the pass rate plain
//! DataFusion reaches on them (select1-3 ≥ 64%, index/random ≥ 99%).
//!
//! Results are rendered by the expected column type letters, as the corpus requires: `I`
//! integer, `R` with three decimals, `T` text with `(empty)` for the empty string, `NULL` for
//! nulls. Usage: `cargo test --test sqllogictest [-- FILTER]`.

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
                    .map(|(column, ty)| render(column.as_ref(), row, ty))
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
    let text = ArrayFormatter::try_new(column, &FormatOptions::default())?
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
}

/// The column cache of each file's engine: small enough that some files evict.
const COLUMN_CACHE_BYTES: u64 = 64 * 1024 * 1024;

async fn run_file(path: &Path, data: &str) -> FileResult {
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
            })
        }
    });
    runner.with_column_validator(|_, _| true);
    let records = sqllogictest::parse_file::<DefaultColumnType>(path)
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
    let mut result = FileResult {
        passed: 0,
        total: 0,
        first_failures: Vec::new(),
    };
    for record in records {
        let counted = matches!(&record, Record::Statement { .. } | Record::Query { .. });
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
                Err(e) if result.first_failures.len() < failures_shown() => {
                    result.first_failures.push(e.to_string());
                }
                Err(_) => {}
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

/// Minimum pass rate (percent) of a corpus file.
fn required_rate(path: &Path) -> f64 {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if name.starts_with("select") {
        64.0
    } else {
        99.0
    }
}

#[tokio::main]
async fn main() {
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let own = slt_files(&root.join("tests/slt"));
    let corpus_root = root.join("../shared/corpora/sqlite");
    let corpus = slt_files(&corpus_root);
    // The corpus bars must not pass by running nothing.
    if corpus.is_empty() {
        eprintln!(
            "no SQLite corpus at {}: the corpus bars cannot be checked",
            corpus_root.display()
        );
        std::process::exit(1);
    }
    let mut failed = Vec::new();
    for (path, is_own) in own
        .iter()
        .map(|p| (p, true))
        .chain(corpus.iter().map(|p| (p, false)))
    {
        let shown = path
            .strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string();
        if filter.as_deref().is_some_and(|f| !shown.contains(f)) {
            continue;
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let data = if is_own {
            dir.path().to_string_lossy().to_string()
        } else {
            "memory://".to_string()
        };
        let started = std::time::Instant::now();
        let result = run_file(path, &data).await;
        let rate = 100.0 * result.passed as f64 / result.total.max(1) as f64;
        let required = if is_own { 100.0 } else { required_rate(path) };
        println!(
            "{shown}: {}/{} passed ({rate:.1}%, required {required}%) in {:.1}s",
            result.passed,
            result.total,
            started.elapsed().as_secs_f64()
        );
        if rate < required {
            for failure in &result.first_failures {
                println!("  {}", failure.replace('\n', "\n  "));
            }
            failed.push(shown);
        }
    }
    if !failed.is_empty() {
        eprintln!("below the required pass rate: {}", failed.join(", "));
        std::process::exit(1);
    }
}
