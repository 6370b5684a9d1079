//! Accepting text-protocol connections and running their sessions.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use bytes::BytesMut;
use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::display::Display;
use super::format::{self, AsciiTable, cells};
use super::framing::{MAX_STATEMENT_BYTES, Piece, StatementSplitter};
use super::shorthand;
use crate::auth::Authenticator;
use crate::engine::{
    Engine, EngineError, FEATURE_NOT_SUPPORTED, INVALID_AUTHORIZATION, INVALID_PASSWORD, Outcome,
    PROGRAM_LIMIT_EXCEEDED, SYNTAX_ERROR, Session, TOO_MANY_CONNECTIONS,
};
use crate::metrics::{Protocol, metrics};

/// Rows used to size a result table's columns before the first rows are sent.
const WIDTH_SAMPLE_ROWS: usize = 1000;

const PROMPT: &str = "SQL> ";

/// Serves connections from `listener` until `shutdown` fires, then waits for open sessions to
/// finish their current statement and close. Beyond `max_sessions` open sessions (0: no
/// limit), a new connection is told why and closed.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    auth: Option<Arc<Authenticator>>,
    max_sessions: usize,
    shutdown: CancellationToken,
) {
    let sessions = TaskTracker::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((mut socket, peer)) if max_sessions > 0 && sessions.len() >= max_sessions => {
                    debug!(%peer, "text session refused: too many sessions");
                    let refusal = format!(
                        "ERROR {TOO_MANY_CONNECTIONS}: too many sessions: {max_sessions} are open \
                         (--max-sessions); try again later\n"
                    );
                    sessions.spawn(async move {
                        let _ = socket.write_all(refusal.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    });
                }
                Ok((socket, peer)) => {
                    debug!(%peer, "text session opened");
                    let engine = Arc::clone(&engine);
                    let auth = auth.clone();
                    let shutdown = shutdown.clone();
                    sessions.spawn(async move {
                        let _open = metrics().session(Protocol::Text);
                        if let Err(e) = run_session(socket, engine, auth, shutdown).await {
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
    auth: Option<Arc<Authenticator>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // Answers and prompts are small writes: without NODELAY, Nagle's algorithm holds the prompt
    // back until the client's delayed ACK (~40 ms per statement).
    socket.set_nodelay(true)?;
    let (mut reader, mut writer) = socket.into_split();
    let login_hint = if auth.is_some() {
        "\nLog in first: LOGIN <user> <password>;\n"
    } else {
        ""
    };
    let greeting = format!(
        "MiniDB {} — end statements with ';', EXIT to quit\n{login_hint}\n{PROMPT}",
        env!("CARGO_PKG_VERSION")
    );
    let mut login = Login::default();
    writer.write_all(greeting.as_bytes()).await?;
    let hangup = CancellationToken::new();
    let mut session = Session::default()
        .with_origin("text", None)
        .with_hangup(hangup.clone());
    let mut splitter = StatementSplitter::default();
    let mut display = Display::default();
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
            // A backslash line outside a statement is a display command, not SQL.
            let pieces = if splitter.is_idle() && text.trim_start().starts_with('\\') {
                let answer = display.command(&text);
                writer.write_all(format!("{answer}\n").as_bytes()).await?;
                Vec::new()
            } else {
                splitter.push_line(&text)
            };
            for piece in pieces {
                let statement = match piece {
                    Piece::TooLong => {
                        let text = format!(
                            "ERROR {PROGRAM_LIMIT_EXCEEDED}: statement longer than {MAX_STATEMENT_BYTES} bytes\n"
                        );
                        writer.write_all(text.as_bytes()).await?;
                        continue;
                    }
                    Piece::Statement(s) => s,
                };
                if ["exit", "quit"].contains(&statement.to_ascii_lowercase().as_str()) {
                    writer.write_all("Bye 👋\n".as_bytes()).await?;
                    return writer.shutdown().await;
                }
                if let Some(answer) = login.check(auth.as_deref(), &statement) {
                    session = session.with_origin("text", login.user.clone());
                    writer.write_all(answer.as_bytes()).await?;
                    if login.failures >= MAX_LOGIN_FAILURES {
                        return writer.shutdown().await;
                    }
                    continue;
                }
                let run = run_statement(&engine, &mut session, &display, &statement, &mut writer);
                if !watching_for_hangup(run, &mut reader, &mut input, &hangup).await? {
                    // The client is gone: the statement was stopped, nothing more runs.
                    return Ok(());
                }
            }
            match splitter.continuation() {
                None => writer.write_all(format!("\n{PROMPT}").as_bytes()).await?,
                // Only when the client waits: lines it already sent get no prompt each.
                Some(more) if !input.contains(&b'\n') => {
                    writer.write_all(more.as_bytes()).await?;
                }
                Some(_) => {}
            }
        }
        if input.len() > MAX_STATEMENT_BYTES {
            input.clear();
            skipping_long_line = true;
            let text = format!(
                "ERROR {PROGRAM_LIMIT_EXCEEDED}: line longer than {MAX_STATEMENT_BYTES} bytes, ignored\n"
            );
            writer.write_all(text.as_bytes()).await?;
        }
    }
}

/// Drives `run` (a statement) while reading what the client sends meanwhile into `input`, for
/// the statements after it. If the client closes the connection, `hangup` stops the statement
/// at once (as `CANCEL QUERY` would; one past its commit finishes) and, once it has ended,
/// false is returned: a closed connection leaves nothing running.
async fn watching_for_hangup(
    run: impl Future<Output = std::io::Result<()>>,
    reader: &mut OwnedReadHalf,
    input: &mut BytesMut,
    hangup: &CancellationToken,
) -> std::io::Result<bool> {
    tokio::pin!(run);
    let mut open = true;
    loop {
        tokio::select! {
            done = &mut run => return done.map(|()| open),
            // Past a statement's worth of pipelined input, the client waits for this one.
            read = reader.read_buf(input), if open && input.len() <= MAX_STATEMENT_BYTES => {
                if !matches!(read, Ok(n) if n > 0) {
                    open = false;
                    hangup.cancel();
                }
            }
        }
    }
}

/// Failed logins after which a connection is closed.
const MAX_LOGIN_FAILURES: u32 = 3;

/// Where a connection stands with authentication.
#[derive(Default)]
struct Login {
    user: Option<String>,
    failures: u32,
}

impl Login {
    /// The answer to `statement` when it is a login or must wait for one; `None` when the
    /// statement may run.
    fn check(&mut self, auth: Option<&Authenticator>, statement: &str) -> Option<String> {
        let words: Vec<&str> = statement.split_whitespace().collect();
        let is_login = words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("login"));
        let Some(auth) = auth else {
            return is_login.then(|| {
                format!(
                    "ERROR {FEATURE_NOT_SUPPORTED}: authentication is not enabled on this server\n"
                )
            });
        };
        if !is_login {
            return self
                .user
                .is_none()
                .then(|| {
                format!(
                    "ERROR {INVALID_AUTHORIZATION}: authentication required: LOGIN <user> <password>;\n"
                )
            });
        }
        let [_, user, password] = words[..] else {
            return Some(format!(
                "ERROR {SYNTAX_ERROR}: usage: LOGIN <user> <password>;\n"
            ));
        };
        match auth.login(user, &unquote(password)) {
            Ok(_) => {
                self.user = Some(user.to_string());
                Some(format!("Logged in as {user}\n"))
            }
            Err(e) => {
                self.failures += 1;
                if self.failures >= MAX_LOGIN_FAILURES {
                    Some(format!(
                        "ERROR {INVALID_PASSWORD}: {e}; too many failed logins, bye\n"
                    ))
                } else {
                    Some(format!("ERROR {INVALID_PASSWORD}: {e}\n"))
                }
            }
        }
    }
}

/// A password as typed: bare, or in single quotes with `''` for a quote.
fn unquote(word: &str) -> String {
    match word.strip_prefix('\'').and_then(|w| w.strip_suffix('\'')) {
        Some(inner) => inner.replace("''", "'"),
        None => word.to_string(),
    }
}

/// Runs one statement and writes its answer (or `ERROR <SQLSTATE>: …`).
async fn run_statement(
    engine: &Engine,
    session: &mut Session,
    display: &Display,
    statement: &str,
    writer: &mut OwnedWriteHalf,
) -> std::io::Result<()> {
    let started = Instant::now();
    let sql = shorthand::expand(statement);
    let sql = sql.as_deref().unwrap_or(statement);
    let result = match engine.execute(session, sql).await {
        Ok(Outcome::Rows(stream)) => write_rows(stream, display, writer).await?,
        Ok(Outcome::Listing(listing, batch)) => format::listing(&listing, &batch, display)
            .map_err(|e| EngineError::DataFusion(e.into())),
        Ok(other) => Ok(format::message(&other).unwrap_or_default()),
        Err(e) => Err(e),
    };
    metrics().statement(Protocol::Text, result.is_ok(), started.elapsed());
    let text = match result {
        Ok(text) if text.is_empty() || text.ends_with('\n') => text,
        Ok(text) => format!("{text}\n"),
        Err(e) => format!("ERROR {}: {e}\n", e.sqlstate()),
    };
    writer.write_all(text.as_bytes()).await
}

/// Streams a result set as an ASCII table. The outer error is the connection's; the inner one
/// is the query's (reported after whatever rows were already sent).
async fn write_rows(
    mut stream: datafusion::execution::SendableRecordBatchStream,
    display: &Display,
    writer: &mut OwnedWriteHalf,
) -> std::io::Result<Result<String, EngineError>> {
    if format::is_explain(&stream.schema()) {
        return Ok(match stream.try_collect::<Vec<_>>().await {
            Ok(batches) => {
                format::explain_text(&batches).map_err(|e| EngineError::DataFusion(e.into()))
            }
            Err(e) => Err(e.into()),
        });
    }
    let mut sample: Vec<Vec<String>> = Vec::new();
    let mut table: Option<AsciiTable> = None;
    let mut count = 0;
    while let Some(batch) = stream.next().await {
        let rows = match batch.and_then(|b| Ok(cells(&b, display)?)) {
            Ok(rows) => rows,
            Err(e) => {
                if let Some(mut t) = table {
                    writer.write_all(t.take_text().as_bytes()).await?;
                }
                return Ok(Err(e.into()));
            }
        };
        count += rows.len();
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
    let mut text = table.finish();
    if let Some(footer) = display.footer(count) {
        text.push_str(&footer);
    }
    Ok(Ok(text))
}
