//! A session with the server: statements, transactions, backslash commands, scripts and the
//! interactive loop.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use arrow_flight::error::FlightError;
use arrow_flight::sql::EndTransaction;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::{Action, CancelFlightInfoRequest, FlightInfo};
use bytes::Bytes;
use futures::{FutureExt, TryStreamExt};
use minidb::protocol::text::{Piece, StatementSplitter};
use prost::Message;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;
use tokio::sync::Notify;
use tonic::transport::Channel;

use crate::commands::{self, Command, Expanded};
use crate::output::{self, Output};

/// Header that names the database statements run in (set by `USE`).
pub const DATABASE_HEADER: &str = "x-minidb-database";

/// The SQLSTATE of a transaction the server no longer holds.
const NO_ACTIVE_TRANSACTION: &str = "25P01";

/// Why a script stopped before its end.
pub enum Stopped {
    /// Ctrl-C.
    Interrupted,
    /// A statement failed and `--on-error-stop` is set.
    OnError,
}

/// How a statement or command ended.
enum Ran {
    Ok,
    Failed,
    /// Ctrl-C stopped it (the server was told to cancel it).
    Interrupted,
    Quit,
}

/// Why a statement has no answer to print.
enum Stop {
    /// The error line to print: `ERROR <SQLSTATE>: <message>`.
    Failed(String),
    Interrupted,
}

/// What a statement answered.
enum Answer {
    Rows(Arc<Schema>, Vec<RecordBatch>),
    /// A statement without rows, and the rows it changed.
    Done(i64),
}

/// What a step of a statement came to: its value, or a Ctrl-C first.
enum Raced<T> {
    Done(T),
    Interrupted,
}

/// What a statement is to the client: most go to the server as they are; transaction control
/// becomes Flight SQL's transaction calls.
enum Kind {
    Sql,
    Begin,
    End(EndTransaction),
}

/// A connection, the state of its session, and the settings the user toggled.
pub struct Shell {
    client: FlightSqlServiceClient<Channel>,
    /// The database statements run in (for the prompt and the `\d` commands).
    database: String,
    /// The Flight SQL transaction statements run in, after `BEGIN`.
    transaction: Option<Bytes>,
    timing: bool,
    /// Whether to show a running clock for slow statements (stderr is a terminal).
    clock: bool,
    output: Output,
    on_error_stop: bool,
    /// A permit for every Ctrl-C (SIGINT) received while no line was being read.
    interrupts: Arc<Notify>,
}

impl Shell {
    pub fn new(
        client: FlightSqlServiceClient<Channel>,
        database: String,
        on_error_stop: bool,
    ) -> Self {
        Self {
            client,
            database,
            transaction: None,
            timing: false,
            clock: std::io::stderr().is_terminal(),
            output: Output::default(),
            on_error_stop,
            interrupts: Arc::new(Notify::new()),
        }
    }

    /// Counts Ctrl-C presses (SIGINT) from now on: while a statement runs, one stops it. At the
    /// interactive prompt the line editor reads Ctrl-C as a key instead. Called after the line
    /// editor is made, whose own SIGINT handler would otherwise replace this one (this one
    /// passes the signal on to it).
    pub fn catch_interrupts(&self) {
        let notify = Arc::clone(&self.interrupts);
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                notify.notify_one();
            }
        });
    }

    /// Runs every statement and backslash command in `text`; false if any failed. Errors name
    /// `source` and the line their statement starts on, when a source is given. Ctrl-C stops
    /// the statement running and the ones after it, and so does a failure with
    /// `--on-error-stop`.
    pub async fn run_script(&mut self, text: &str, source: Option<&str>) -> Result<bool, Stopped> {
        let mut splitter = StatementSplitter::default();
        let mut ok = true;
        let mut start = 0;
        let lines = text.lines().map(|l| format!("{l}\n"));
        // A last statement without its `;` still runs.
        for (number, line) in lines.chain([";\n".to_string()]).enumerate() {
            let location = |start: usize| source.map(|s| format!("{s}:{}: ", start + 1));
            let ran = if splitter.is_idle() && line.trim_start().starts_with('\\') {
                vec![Box::pin(self.command(line.trim(), location(number))).await]
            } else {
                if splitter.is_idle() {
                    start = number;
                }
                let mut ran = Vec::new();
                for piece in splitter.push_line(&line) {
                    ran.push(self.run_piece(piece, location(start)).await);
                    // The next statement starts on this line, after this one's `;`.
                    start = number;
                }
                ran
            };
            for ran in ran {
                match ran {
                    Ran::Ok => {}
                    Ran::Failed if self.on_error_stop => return Err(Stopped::OnError),
                    Ran::Failed => ok = false,
                    Ran::Interrupted => return Err(Stopped::Interrupted),
                    Ran::Quit => return Ok(ok),
                }
            }
        }
        Ok(ok)
    }

    /// The prompt: the database, `*` inside a transaction, `=>` for a new statement and `->`
    /// for its next line.
    fn prompt(&self, continuing: bool) -> String {
        let transaction = if self.transaction.is_some() { "*" } else { "" };
        match continuing {
            false => format!("{}={transaction}> ", self.database),
            true => format!("{}{transaction}-> ", self.database),
        }
    }

    /// The interactive loop; history is written after every line entered.
    pub async fn repl(&mut self) {
        let mut editor = match DefaultEditor::new() {
            Ok(editor) => editor,
            Err(e) => {
                eprintln!("minidb-cli: no line editor: {e}");
                return;
            }
        };
        self.catch_interrupts();
        let history =
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".minidb_history"));
        if let Some(path) = &history {
            let _ = editor.load_history(path);
        }
        println!(
            "minidb-cli {} — end statements with ';', \\? lists the commands, \\q quits",
            env!("CARGO_PKG_VERSION")
        );
        let remember = |editor: &mut DefaultEditor, entry: &str| {
            let _ = editor.add_history_entry(entry);
            if let Some(path) = &history {
                let _ = editor.append_history(path);
            }
        };
        let mut splitter = StatementSplitter::default();
        let mut entered = String::new();
        let mut interrupted = false;
        // The line editor's SIGINT handler saw the Ctrl-C that stopped a statement too; its
        // next read reports it, and that report is not a key pressed at the prompt.
        let mut stale_interrupt = false;
        loop {
            let line = editor.readline(&self.prompt(!splitter.is_idle()));
            if std::mem::take(&mut stale_interrupt)
                && matches!(line, Err(ReadlineError::Interrupted))
            {
                continue;
            }
            if !matches!(line, Err(ReadlineError::Interrupted)) {
                interrupted = false;
            }
            match line {
                Ok(line) => {
                    if splitter.is_idle() && line.trim_start().starts_with('\\') {
                        let command = line.trim();
                        remember(&mut editor, command);
                        if matches!(self.command(command, None).await, Ran::Quit) {
                            break;
                        }
                        continue;
                    }
                    entered.push_str(&line);
                    entered.push('\n');
                    for piece in splitter.push_line(&format!("{line}\n")) {
                        remember(&mut editor, entered.trim());
                        entered.clear();
                        if matches!(&piece, Piece::Statement(s) if is_exit(s)) {
                            self.finish().await;
                            return;
                        }
                        // A Ctrl-C pressed while no statement ran is not meant for this one.
                        while self.interrupts.notified().now_or_never().is_some() {}
                        stale_interrupt =
                            matches!(self.run_piece(piece, None).await, Ran::Interrupted);
                    }
                }
                Err(ReadlineError::Interrupted) if interrupted => break,
                Err(ReadlineError::Interrupted) => {
                    // Ctrl-C drops the statement being typed; a second one in a row quits.
                    splitter = StatementSplitter::default();
                    entered.clear();
                    interrupted = true;
                    println!("(Ctrl-C again, \\q or Ctrl-D to quit)");
                }
                Err(ReadlineError::Eof) => break,
                Err(e) => {
                    eprintln!("minidb-cli: {e}");
                    break;
                }
            }
        }
        self.finish().await;
    }

    /// Before leaving: a transaction still open is rolled back (and said so), rather than
    /// left for the server to expire.
    pub async fn finish(&mut self) {
        if let Some(id) = self.transaction.take() {
            let _ = self
                .client
                .end_transaction(id, EndTransaction::Rollback)
                .await;
            eprintln!("minidb-cli: the open transaction was rolled back");
        }
    }

    /// Runs a backslash command.
    async fn command(&mut self, line: &str, location: Option<String>) -> Ran {
        let command = match commands::parse(line) {
            Ok(command) => command,
            Err(e) => {
                eprintln!("{}ERROR: {e}", location.unwrap_or_default());
                return Ran::Failed;
            }
        };
        match command {
            Command::Quit => return Ran::Quit,
            Command::Help => println!("{}", commands::HELP),
            Command::Timing(setting) => {
                self.timing = setting.unwrap_or(!self.timing);
                println!("Timing is {}.", on_off(self.timing));
            }
            Command::Expanded(setting) => {
                self.output.expanded = setting.unwrap_or(match self.output.expanded {
                    Expanded::Off => Expanded::On,
                    _ => Expanded::Off,
                });
                println!(
                    "Expanded display is {}.",
                    match self.output.expanded {
                        Expanded::On => "on",
                        Expanded::Off => "off",
                        Expanded::Auto => "used automatically",
                    }
                );
            }
            Command::Pset(option, value) => return self.pset(&option, value.as_deref()),
            Command::ListDatabases => return self.show(&commands::databases(), location).await,
            Command::ListRelations { kinds, pattern } => {
                let sql = commands::relations(&self.database, kinds, pattern.as_deref());
                return self.show(&sql, location).await;
            }
            Command::ListIndexes(pattern) => {
                let sql = commands::indexes(&self.database, pattern.as_deref());
                return self.show(&sql, location).await;
            }
            Command::Describe(name) => return self.describe(&name, location).await,
            Command::Connect(database) => {
                return self.run(&format!("USE {database}"), location).await;
            }
            Command::Output(path) => {
                if let Err(e) = self.output.send_to(path.as_deref()) {
                    let path = path.unwrap_or_default();
                    eprintln!("ERROR: cannot write {}: {e}", path.display());
                    return Ran::Failed;
                }
            }
            Command::Include(path) => return self.include(&path).await,
        }
        Ran::Ok
    }

    fn pset(&mut self, option: &str, value: Option<&str>) -> Ran {
        match (option, value) {
            ("null", Some(value)) => {
                self.output.null = unquoted(value);
                println!("Null display is \"{}\".", self.output.null);
            }
            ("null", None) => println!("Null display is \"{}\".", self.output.null),
            ("pager", value) => {
                self.output.pager = match value.map(str::to_ascii_lowercase).as_deref() {
                    Some("on") => true,
                    Some("off") => false,
                    None => !self.output.pager,
                    Some(other) => {
                        eprintln!("ERROR: \\pset pager takes on or off, not '{other}'");
                        return Ran::Failed;
                    }
                };
                println!("Pager usage is {}.", on_off(self.output.pager));
            }
            (other, _) => {
                eprintln!("ERROR: \\pset has no option '{other}' (null, pager)");
                return Ran::Failed;
            }
        }
        Ran::Ok
    }

    /// `\i`: the statements of a file, whose errors name it and their line.
    async fn include(&mut self, path: &Path) -> Ran {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("ERROR: cannot read {}: {e}", path.display());
                return Ran::Failed;
            }
        };
        let source = path.display().to_string();
        match Box::pin(self.run_script(&text, Some(&source))).await {
            Ok(true) => Ran::Ok,
            Ok(false) | Err(Stopped::OnError) => Ran::Failed,
            Err(Stopped::Interrupted) => Ran::Interrupted,
        }
    }

    /// `\d name`: the columns (DESCRIBE), then the indexes, partitioning or view definition.
    async fn describe(&mut self, name: &str, location: Option<String>) -> Ran {
        match self.description(name).await {
            Ok(text) => {
                self.output.print(&text);
                Ran::Ok
            }
            Err(stop) => self.report(stop, location),
        }
    }

    async fn description(&mut self, name: &str) -> Result<String, Stop> {
        let (database, table) = commands::qualified(&self.database, name);
        let (database, table) = (database.to_string(), table.to_string());
        let columns = self.answer(&format!("DESCRIBE {name}")).await?;
        let details = self
            .rows(&commands::table_details(&database, &table))
            .await?;
        let details = cells(&details)?;
        let kind = match details.first().map(|row| row[0].as_str()) {
            Some("VIEW") => "View",
            _ => "Table",
        };
        let mut text = format!("{kind} \"{database}.{table}\"\n{columns}");
        let indexes = self
            .rows(&commands::table_indexes(&database, &table))
            .await?;
        let indexes = cells(&indexes)?;
        if !indexes.is_empty() {
            text.push_str("\nIndexes:");
        }
        for index in indexes {
            let [name, constraint, unique, columns] = &index[..] else {
                continue;
            };
            let kind = match (constraint.as_str(), unique.as_str()) {
                ("", "true") => " UNIQUE".to_string(),
                ("", _) => String::new(),
                (constraint, _) => format!(" {constraint}"),
            };
            text.push_str(&format!("\n    \"{name}\"{kind} ({columns})"));
        }
        for row in details {
            let [_, partitioning, view] = &row[..] else {
                continue;
            };
            if !partitioning.is_empty() {
                text.push_str(&format!("\nPartitioned by: {partitioning}"));
            }
            if !view.is_empty() {
                text.push_str(&format!("\nView definition: {view}"));
            }
        }
        Ok(text)
    }

    /// Runs a query of a backslash command and prints its rows.
    async fn show(&mut self, sql: &str, location: Option<String>) -> Ran {
        match self.answer(sql).await {
            Ok(text) => {
                self.output.print(&text);
                Ran::Ok
            }
            Err(stop) => self.report(stop, location),
        }
    }

    async fn run_piece(&mut self, piece: Piece, location: Option<String>) -> Ran {
        match piece {
            Piece::TooLong => {
                eprintln!("{}ERROR: statement too long", location.unwrap_or_default());
                Ran::Failed
            }
            Piece::Statement(sql) if is_exit(&sql) => Ran::Quit,
            Piece::Statement(sql) => self.run(&sql, location).await,
        }
    }

    /// Runs one statement and prints its answer.
    async fn run(&mut self, sql: &str, location: Option<String>) -> Ran {
        let started = Instant::now();
        let clock = self.clock.then(|| tokio::spawn(running_clock(started)));
        let result = match kind(sql) {
            Kind::Sql => self.answer(sql).await,
            Kind::Begin => self.begin().await,
            Kind::End(action) => self.end(action).await,
        };
        if let Some(clock) = clock {
            clock.abort();
            eprint!("\r\x1b[K");
        }
        let ran = match result {
            Ok(text) => {
                self.output.print(&text);
                if let Some(database) = used_database(sql) {
                    self.client.set_header(DATABASE_HEADER, database.clone());
                    self.database = database;
                }
                Ran::Ok
            }
            Err(stop) => self.report(stop, location),
        };
        if self.timing {
            println!("Time: {:.3} ms", started.elapsed().as_secs_f64() * 1000.0);
        }
        ran
    }

    /// Prints why a statement stopped; a transaction the server no longer holds is dropped.
    fn report(&mut self, stop: Stop, location: Option<String>) -> Ran {
        let location = location.unwrap_or_default();
        match stop {
            Stop::Failed(line) => {
                eprintln!("{location}{line}");
                let rolled_back =
                    line.starts_with("ERROR 40") || line.contains(NO_ACTIVE_TRANSACTION);
                if rolled_back && self.transaction.take().is_some() {
                    eprintln!("The transaction was rolled back.");
                }
                Ran::Failed
            }
            Stop::Interrupted => {
                eprintln!("{location}ERROR 57014: canceling statement due to user request");
                Ran::Interrupted
            }
        }
    }

    async fn begin(&mut self) -> Result<String, Stop> {
        if self.transaction.is_some() {
            return Err(Stop::Failed(
                "ERROR 25001: a transaction is already open; COMMIT or ROLLBACK it first".into(),
            ));
        }
        let id = self
            .client
            .begin_transaction()
            .await
            .map_err(|e| Stop::Failed(error_line(&e)))?;
        self.transaction = Some(id);
        Ok("Transaction started".into())
    }

    async fn end(&mut self, action: EndTransaction) -> Result<String, Stop> {
        let Some(id) = self.transaction.take() else {
            return Ok("No transaction is open, nothing done".into());
        };
        self.client
            .end_transaction(id, action)
            .await
            .map_err(|e| Stop::Failed(error_line(&e)))?;
        Ok(match action {
            EndTransaction::Commit => "Transaction committed",
            _ => "Transaction rolled back",
        }
        .into())
    }

    /// `step`, unless Ctrl-C comes first (then `step` is dropped, which ends its call).
    async fn race<T>(interrupts: &Notify, step: impl Future<Output = T>) -> Raced<T> {
        tokio::select! {
            value = step => Raced::Done(value),
            () = interrupts.notified() => Raced::Interrupted,
        }
    }

    /// What a statement answers, ready to print.
    async fn answer(&mut self, sql: &str) -> Result<String, Stop> {
        match self.call(sql).await? {
            Answer::Done(n) if n > 0 => Ok(format!("OK, {n} row(s) affected")),
            Answer::Done(_) => Ok("OK".into()),
            Answer::Rows(schema, batches) => self
                .output
                .render(&schema, &batches)
                .map_err(|e| Stop::Failed(format!("ERROR: {e}"))),
        }
    }

    /// The rows of a query the client runs for itself.
    async fn rows(&mut self, sql: &str) -> Result<Vec<RecordBatch>, Stop> {
        match self.call(sql).await? {
            Answer::Rows(_, batches) => Ok(batches),
            Answer::Done(_) => Ok(Vec::new()),
        }
    }

    /// Runs a statement. Ctrl-C ends the call under way: the server stops a statement whose
    /// call its client dropped, and a query started for a DoGet is also cancelled by name
    /// (CancelFlightInfo).
    async fn call(&mut self, sql: &str) -> Result<Answer, Stop> {
        let call = self
            .client
            .execute(sql.to_string(), self.transaction.clone());
        let info = match Self::race(&self.interrupts, call).await {
            Raced::Done(info) => info.map_err(|e| Stop::Failed(error_line(&e)))?,
            Raced::Interrupted => return Err(Stop::Interrupted),
        };
        let schema = info
            .clone()
            .try_decode_schema()
            .map_err(|e| Stop::Failed(error_line(&e.into())))?;
        if schema.fields().is_empty() {
            // A statement without rows ran at GetFlightInfo; its count is in total_records.
            return Ok(Answer::Done(info.total_records));
        }
        let fetch = fetch(&mut self.client, &info);
        match Self::race(&self.interrupts, fetch).await {
            Raced::Done(batches) => {
                let batches = batches.map_err(|e| Stop::Failed(error_line(&e)))?;
                Ok(Answer::Rows(Arc::new(schema), batches))
            }
            Raced::Interrupted => {
                let request = CancelFlightInfoRequest::new(info);
                let action = Action::new("CancelFlightInfo", request.encode_to_vec());
                // The dropped DoGet already stopped the query; this covers one not yet read.
                let _ = self.client.do_action(action).await;
                Err(Stop::Interrupted)
            }
        }
    }
}

/// Every batch of every endpoint of `info`.
async fn fetch(
    client: &mut FlightSqlServiceClient<Channel>,
    info: &FlightInfo,
) -> Result<Vec<RecordBatch>, FlightError> {
    let mut batches = Vec::new();
    for endpoint in &info.endpoint {
        let Some(ticket) = endpoint.ticket.clone() else {
            continue;
        };
        let stream = client.do_get(ticket).await?;
        batches.extend(stream.try_collect::<Vec<_>>().await?);
    }
    Ok(batches)
}

/// The cells of `batches` as text, NULL as empty text.
fn cells(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, Stop> {
    output::cells(batches, &arrow::util::display::FormatOptions::default())
        .map_err(|e| Stop::Failed(format!("ERROR: {e}")))
}

/// The line that reports a failed call: `ERROR <SQLSTATE>: <the server's message>`, without
/// transport noise (`ERROR: …` when the server sent no code).
pub fn error_line(error: &FlightError) -> String {
    match error {
        FlightError::Tonic(status) => match status.metadata().get("sqlstate") {
            Some(code) => format!(
                "ERROR {}: {}",
                code.to_str().unwrap_or_default(),
                status.message()
            ),
            None => format!("ERROR: {}", status.message()),
        },
        FlightError::Arrow(arrow::error::ArrowError::IpcError(text)) => format!("ERROR: {text}"),
        other => format!("ERROR: {other}"),
    }
}

/// Shows the time a statement has been running, after its first second.
async fn running_clock(started: Instant) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let spinner = ['|', '/', '-', '\\'];
    for turn in 0.. {
        eprint!(
            "\r{} running {:.1} s",
            spinner[turn % spinner.len()],
            started.elapsed().as_secs_f64()
        );
        let _ = std::io::Write::flush(&mut std::io::stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether `sql` is transaction control, which the client turns into Flight SQL calls.
fn kind(sql: &str) -> Kind {
    let words: Vec<String> = sql
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words[..] {
        ["begin"] | ["begin", "transaction" | "work"] | ["start", "transaction"] => Kind::Begin,
        ["commit" | "end"] | ["commit" | "end", "transaction" | "work"] => {
            Kind::End(EndTransaction::Commit)
        }
        ["rollback" | "abort"] | ["rollback" | "abort", "transaction" | "work"] => {
            Kind::End(EndTransaction::Rollback)
        }
        _ => Kind::Sql,
    }
}

/// The database a `USE db` statement switches to.
fn used_database(sql: &str) -> Option<String> {
    let mut words = sql.split_whitespace();
    let first = words.next()?;
    let name = words.next()?;
    (first.eq_ignore_ascii_case("use") && words.next().is_none())
        .then(|| name.trim_end_matches(';').trim_matches('"').to_string())
}

/// A `\pset` value as typed: in single quotes (`''` for a quote) or bare.
fn unquoted(value: &str) -> String {
    match value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        Some(inner) => inner.replace("''", "'"),
        None => value.to_string(),
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

fn is_exit(sql: &str) -> bool {
    ["exit", "quit"].contains(&sql.trim().to_ascii_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_control_is_recognised_in_its_spellings() {
        assert!(matches!(kind("BEGIN"), Kind::Begin));
        assert!(matches!(kind("start transaction;"), Kind::Begin));
        assert!(matches!(
            kind("Commit Work"),
            Kind::End(EndTransaction::Commit)
        ));
        assert!(matches!(kind("END"), Kind::End(EndTransaction::Commit)));
        assert!(matches!(kind("abort"), Kind::End(EndTransaction::Rollback)));
        assert!(matches!(kind("ROLLBACK TO SAVEPOINT a"), Kind::Sql));
        assert!(matches!(kind("SELECT 'begin'"), Kind::Sql));
    }
}
