//! Accepting text-protocol connections and running their sessions.

use std::sync::Arc;

use arrow::array::RecordBatch;
use bytes::BytesMut;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::format::{self, AsciiTable, cells};
use super::framing::{MAX_STATEMENT_BYTES, Piece, StatementSplitter};
use super::shorthand;
use crate::engine::{Engine, EngineError, Outcome, Session};

/// Rows used to size a result table's columns before the first rows are sent.
const WIDTH_SAMPLE_ROWS: usize = 1000;

const PROMPT: &str = "SQL> ";

/// Serves connections from `listener` until `shutdown` fires, then waits for open sessions to
/// finish their current statement and close.
pub async fn serve(listener: TcpListener, engine: Arc<Engine>, shutdown: CancellationToken) {
    let sessions = TaskTracker::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    debug!(%peer, "text session opened");
                    let engine = Arc::clone(&engine);
                    let shutdown = shutdown.clone();
                    sessions.spawn(async move {
                        if let Err(e) = run_session(socket, engine, shutdown).await {
                            debug!(%peer, error = %e, "text session ended with an I/O error");
                        }
                        debug!(%peer, "text session closed");
                    });
                }
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    warn!(error = %e, "accepting a text connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
    sessions.close();
    info!(
        open = sessions.len(),
        "text protocol stopped accepting; waiting for sessions"
    );
    sessions.wait().await;
}

async fn run_session(
    socket: TcpStream,
    engine: Arc<Engine>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // Answers and prompts are small writes: without NODELAY, Nagle's algorithm holds the prompt
    // back until the client's delayed ACK (~40 ms per statement).
    socket.set_nodelay(true)?;
    let (mut reader, mut writer) = socket.into_split();
    let greeting = format!(
        "MiniDB {} — end statements with ';', EXIT to quit\n\n{PROMPT}",
        env!("CARGO_PKG_VERSION")
    );
    writer.write_all(greeting.as_bytes()).await?;
    let mut session = Session::default();
    let mut splitter = StatementSplitter::default();
    let mut input = BytesMut::with_capacity(8 * 1024);
    let mut skipping_long_line = false;
    loop {
        let read = tokio::select! {
            _ = shutdown.cancelled() => {
                writer.write_all("\nServer shutting down. Bye 👋\n".as_bytes()).await?;
                return writer.shutdown().await;
            }
            read = reader.read_buf(&mut input) => read?,
        };
        if read == 0 {
            return Ok(());
        }
        while let Some(newline) = input.iter().position(|b| *b == b'\n') {
            let line = input.split_to(newline + 1);
            // The tail of an over-long line (already reported) is dropped.
            let text = if std::mem::take(&mut skipping_long_line) {
                String::new()
            } else {
                String::from_utf8_lossy(&line).into_owned()
            };
            for piece in splitter.push_line(&text) {
                let statement = match piece {
                    Piece::TooLong => {
                        let text =
                            format!("ERROR: statement longer than {MAX_STATEMENT_BYTES} bytes\n");
                        writer.write_all(text.as_bytes()).await?;
                        continue;
                    }
                    Piece::Statement(s) => s,
                };
                if ["exit", "quit"].contains(&statement.to_ascii_lowercase().as_str()) {
                    writer.write_all("Bye 👋\n".as_bytes()).await?;
                    return writer.shutdown().await;
                }
                run_statement(&engine, &mut session, &statement, &mut writer).await?;
            }
            if splitter.is_idle() {
                writer.write_all(format!("\n{PROMPT}").as_bytes()).await?;
            }
        }
        if input.len() > MAX_STATEMENT_BYTES {
            input.clear();
            skipping_long_line = true;
            let text = format!("ERROR: line longer than {MAX_STATEMENT_BYTES} bytes, ignored\n");
            writer.write_all(text.as_bytes()).await?;
        }
    }
}

/// Runs one statement and writes its answer (or `ERROR: …`).
async fn run_statement(
    engine: &Engine,
    session: &mut Session,
    statement: &str,
    writer: &mut OwnedWriteHalf,
) -> std::io::Result<()> {
    let sql = shorthand::expand(statement);
    let sql = sql.as_deref().unwrap_or(statement);
    let result = match engine.execute(session, sql).await {
        Ok(Outcome::Rows(stream)) => write_rows(stream, writer).await?,
        Ok(Outcome::Listing(listing, batch)) => {
            format::listing(&listing, &batch).map_err(|e| EngineError::DataFusion(e.into()))
        }
        Ok(other) => Ok(format::message(&other).unwrap_or_default()),
        Err(e) => Err(e),
    };
    let text = match result {
        Ok(text) if text.is_empty() || text.ends_with('\n') => text,
        Ok(text) => format!("{text}\n"),
        Err(e) => format!("ERROR: {e}\n"),
    };
    writer.write_all(text.as_bytes()).await
}

/// Streams a result set as an ASCII table. The outer error is the connection's; the inner one
/// is the query's (reported after whatever rows were already sent).
async fn write_rows(
    mut stream: datafusion::execution::SendableRecordBatchStream,
    writer: &mut OwnedWriteHalf,
) -> std::io::Result<Result<String, EngineError>> {
    let mut sample: Vec<Vec<String>> = Vec::new();
    let mut table: Option<AsciiTable> = None;
    while let Some(batch) = stream.next().await {
        let rows = match batch.and_then(|b| Ok(cells(&b)?)) {
            Ok(rows) => rows,
            Err(e) => {
                if let Some(mut t) = table {
                    writer.write_all(t.take_text().as_bytes()).await?;
                }
                return Ok(Err(e.into()));
            }
        };
        match table.as_mut() {
            Some(t) => {
                t.push_rows(&rows);
                writer.write_all(t.take_text().as_bytes()).await?;
            }
            None => {
                sample.extend(rows);
                if sample.len() >= WIDTH_SAMPLE_ROWS {
                    let header = RecordBatch::new_empty(stream.schema());
                    let mut t = AsciiTable::new(&header, &sample);
                    t.push_rows(&std::mem::take(&mut sample));
                    writer.write_all(t.take_text().as_bytes()).await?;
                    table = Some(t);
                }
            }
        }
    }
    let mut table = table.unwrap_or_else(|| {
        let header = RecordBatch::new_empty(stream.schema());
        AsciiTable::new(&header, &sample)
    });
    table.push_rows(&sample);
    Ok(Ok(table.finish()))
}
