//! `minidb-cli`: a terminal client for MiniDB over Flight SQL.
//!
//! Interactive (a terminal on stdin): a `SQL>` prompt with line editing and history, statements
//! ending at `;` across lines, results as tables, `\timing`, and a running clock on stderr while
//! a statement takes longer than a second; Ctrl-C cancels the running statement (on the server
//! too) and, pressed twice at the prompt, quits. Otherwise it runs `-c` statements, a `-f` file
//! or stdin, and exits with 1 if any statement failed (2 if it cannot connect, log in or use
//! the `-d` database, 130 if Ctrl-C stopped it).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::util::display::FormatOptions;
use arrow::util::pretty::pretty_format_batches_with_options;
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::{Action, CancelFlightInfoRequest, FlightInfo, HandshakeRequest};
use clap::Parser;
use futures::{FutureExt, TryStreamExt};
use minidb::protocol::text::{Piece, StatementSplitter};
use prost::Message;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;
use tokio::sync::Notify;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// Header that names the database statements run in (set by `USE`).
const DATABASE_HEADER: &str = "x-minidb-database";

#[derive(Parser)]
#[command(
    name = "minidb-cli",
    version,
    about = "Terminal client for MiniDB (Flight SQL)"
)]
struct Args {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Flight SQL port.
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// Connect over TLS (system-independent public roots, or --tls-ca).
    #[arg(long)]
    tls: bool,
    /// PEM file of the CA that signed the server's certificate (implies --tls).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// User to log in as (the server must have users configured).
    #[arg(long, short = 'u')]
    user: Option<String>,
    /// Password for --user (else MINIDB_PASSWORD, else asked for on the terminal).
    #[arg(long, env = "MINIDB_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Database to start in.
    #[arg(long, short = 'd')]
    database: Option<String>,
    /// Run these statements and exit.
    #[arg(short = 'c', long = "command")]
    command: Option<String>,
    /// Run the statements of this file and exit.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
}

/// Exit code of a script stopped by Ctrl-C (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = 130;

/// A script was stopped by Ctrl-C.
struct Interrupted;

/// A connection and the settings the user toggled.
struct Shell {
    client: FlightSqlServiceClient<Channel>,
    timing: bool,
    /// Whether to show a running clock for slow statements (stderr is a terminal).
    clock: bool,
    /// A permit for every Ctrl-C (SIGINT) received while no line was being read.
    interrupts: Arc<Notify>,
}

/// How a statement ended.
enum Ran {
    Ok,
    Failed,
    /// Ctrl-C stopped it (the server was told to cancel it).
    Interrupted,
}

/// Why a statement has no answer to print.
enum Stop {
    /// The error line to print: `ERROR <SQLSTATE>: <message>`.
    Failed(String),
    Interrupted,
}

/// What a step of a statement came to: its value, or a Ctrl-C first.
enum Raced<T> {
    Done(T),
    Interrupted,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut shell = match connect(&args).await {
        Ok(shell) => shell,
        Err(e) => {
            eprintln!(
                "minidb-cli: cannot connect to {}:{}: {e}",
                args.host, args.port
            );
            return ExitCode::from(2);
        }
    };
    let interactive =
        args.command.is_none() && args.file.is_none() && std::io::stdin().is_terminal();
    if !interactive {
        shell.catch_interrupts();
    }
    let ran = if let Some(sql) = &args.command {
        shell.run_text(sql).await
    } else if let Some(path) = &args.file {
        match std::fs::read_to_string(path) {
            Ok(text) => shell.run_text(&text).await,
            Err(e) => {
                eprintln!("minidb-cli: {}: {e}", path.display());
                Ok(false)
            }
        }
    } else if interactive {
        shell.repl().await;
        Ok(true)
    } else {
        let mut text = String::new();
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(line) => {
                    text.push_str(&line);
                    text.push('\n');
                }
                Err(e) => {
                    eprintln!("minidb-cli: reading stdin: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        shell.run_text(&text).await
    };
    match ran {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(Interrupted) => ExitCode::from(EXIT_INTERRUPTED),
    }
}

async fn connect(args: &Args) -> Result<Shell, String> {
    let tls = args.tls || args.tls_ca.is_some();
    let scheme = if tls { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{}:{}", args.host, args.port))
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(10));
    if tls {
        let mut config = ClientTlsConfig::new().domain_name(args.host.clone());
        config = match &args.tls_ca {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                config.ca_certificate(Certificate::from_pem(pem))
            }
            None => config.with_webpki_roots(),
        };
        endpoint = endpoint.tls_config(config).map_err(|e| e.to_string())?;
    }
    let channel = endpoint.connect().await.map_err(|e| describe(&e))?;
    let mut client = FlightSqlServiceClient::new(channel);
    if let Some(user) = &args.user {
        let password = match &args.password {
            Some(password) => password.clone(),
            None => ask_password(user)?,
        };
        login(&mut client, user, &password)
            .await
            .map_err(|status| format!("login failed: {}", status.message()))?;
    }
    if let Some(database) = &args.database {
        // A statement that reads no table would run in a database that does not exist: check
        // it now, as psql does, so that a misspelt -d fails before anything runs.
        client
            .execute(format!("USE {database}"), None)
            .await
            .map_err(|e| error_line(&e))?;
        client.set_header(DATABASE_HEADER, database.clone());
    }
    Ok(Shell {
        client,
        timing: false,
        clock: std::io::stderr().is_terminal(),
        interrupts: Arc::new(Notify::new()),
    })
}

/// Logs in with a Basic Handshake and keeps the bearer token the server answers with.
async fn login(
    client: &mut FlightSqlServiceClient<Channel>,
    user: &str,
    password: &str,
) -> Result<(), tonic::Status> {
    let mut request = tonic::Request::new(futures::stream::empty::<HandshakeRequest>());
    let credentials = minidb::auth::basic_credentials(user, password);
    let header = format!("Basic {credentials}")
        .parse()
        .map_err(|_| tonic::Status::invalid_argument("user names and passwords must be ASCII"))?;
    request.metadata_mut().insert("authorization", header);
    let response = client.inner_mut().handshake(request).await?;
    let token = response
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| tonic::Status::unauthenticated("the server sent no token"))?;
    client.set_token(token.to_string());
    Ok(())
}

/// Reads a password from the terminal (echoed: rustyline has no hidden input).
fn ask_password(user: &str) -> Result<String, String> {
    let mut editor = DefaultEditor::new().map_err(|e| e.to_string())?;
    editor
        .readline(&format!("Password for {user}: "))
        .map_err(|e| format!("no password: {e}"))
}

impl Shell {
    /// Counts Ctrl-C presses (SIGINT) from now on: while a statement runs, one stops it. At the
    /// interactive prompt the line editor reads Ctrl-C as a key instead. Called after the line
    /// editor is made, whose own SIGINT handler would otherwise replace this one (this one
    /// passes the signal on to it).
    fn catch_interrupts(&self) {
        let notify = Arc::clone(&self.interrupts);
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                notify.notify_one();
            }
        });
    }

    /// Runs every statement in `text`; false if any failed. Ctrl-C stops the statement
    /// running and the ones after it.
    async fn run_text(&mut self, text: &str) -> Result<bool, Interrupted> {
        let mut splitter = StatementSplitter::default();
        let mut ok = true;
        let mut lines: Vec<String> = text.lines().map(|l| format!("{l}\n")).collect();
        // A last statement without its `;` still runs.
        lines.push(";\n".into());
        for line in lines {
            if splitter.is_idle() && line.trim_start().starts_with('\\') {
                ok &= self.meta(line.trim());
                continue;
            }
            for piece in splitter.push_line(&line) {
                match self.run_piece(piece).await {
                    Ran::Ok => {}
                    Ran::Failed => ok = false,
                    Ran::Interrupted => return Err(Interrupted),
                }
            }
        }
        Ok(ok)
    }

    /// The interactive loop.
    async fn repl(&mut self) {
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
            "minidb-cli {} — end statements with ';', \\timing toggles timing, \\q quits",
            env!("CARGO_PKG_VERSION")
        );
        let mut splitter = StatementSplitter::default();
        let mut entered = String::new();
        let mut interrupted = false;
        // The line editor's SIGINT handler saw the Ctrl-C that stopped a statement too; its
        // next read reports it, and that report is not a key pressed at the prompt.
        let mut stale_interrupt = false;
        loop {
            let prompt = if splitter.is_idle() { "SQL> " } else { "  -> " };
            let line = editor.readline(prompt);
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
                        let _ = editor.add_history_entry(command);
                        if command == "\\q" {
                            break;
                        }
                        self.meta(command);
                        continue;
                    }
                    entered.push_str(&line);
                    entered.push('\n');
                    for piece in splitter.push_line(&format!("{line}\n")) {
                        let _ = editor.add_history_entry(entered.trim());
                        entered.clear();
                        if matches!(&piece, Piece::Statement(s) if is_exit(s)) {
                            save(&mut editor, &history);
                            return;
                        }
                        // A Ctrl-C pressed while no statement ran is not meant for this one.
                        while self.interrupts.notified().now_or_never().is_some() {}
                        stale_interrupt = matches!(self.run_piece(piece).await, Ran::Interrupted);
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
        save(&mut editor, &history);
    }

    /// A backslash command; false if it was not understood.
    fn meta(&mut self, command: &str) -> bool {
        let mut words = command.split_whitespace();
        match (words.next(), words.next()) {
            (Some("\\timing"), setting) => {
                self.timing = match setting {
                    Some("on") => true,
                    Some("off") => false,
                    _ => !self.timing,
                };
                println!("Timing is {}.", if self.timing { "on" } else { "off" });
                true
            }
            (Some("\\q"), _) => true,
            (Some("\\?" | "\\help"), _) => {
                println!("\\timing [on|off]  show how long each statement takes");
                println!("\\q                quit (also EXIT or Ctrl-D)");
                true
            }
            _ => {
                eprintln!("ERROR: unknown command {command}; \\? lists the commands");
                false
            }
        }
    }

    async fn run_piece(&mut self, piece: Piece) -> Ran {
        match piece {
            Piece::TooLong => {
                eprintln!("ERROR: statement too long");
                Ran::Failed
            }
            Piece::Statement(sql) if is_exit(&sql) => Ran::Ok,
            Piece::Statement(sql) => self.run(&sql).await,
        }
    }

    /// Runs one statement and prints its answer.
    async fn run(&mut self, sql: &str) -> Ran {
        let started = Instant::now();
        let clock = self.clock.then(|| tokio::spawn(running_clock(started)));
        let result = self.answer(sql).await;
        if let Some(clock) = clock {
            clock.abort();
            eprint!("\r\x1b[K");
        }
        let ran = match result {
            Ok(text) => {
                println!("{text}");
                if let Some(database) = used_database(sql) {
                    self.client.set_header(DATABASE_HEADER, database);
                }
                Ran::Ok
            }
            Err(Stop::Failed(line)) => {
                eprintln!("{line}");
                Ran::Failed
            }
            Err(Stop::Interrupted) => {
                eprintln!("ERROR 57014: canceling statement due to user request");
                Ran::Interrupted
            }
        };
        if self.timing {
            println!("Time: {:.3} ms", started.elapsed().as_secs_f64() * 1000.0);
        }
        ran
    }

    /// `step`, unless Ctrl-C comes first (then `step` is dropped, which ends its call).
    async fn race<T>(interrupts: &Notify, step: impl Future<Output = T>) -> Raced<T> {
        tokio::select! {
            value = step => Raced::Done(value),
            () = interrupts.notified() => Raced::Interrupted,
        }
    }

    /// What a statement answers, ready to print. Ctrl-C ends the call under way: the server
    /// stops a statement whose call its client dropped, and a query started for a DoGet is
    /// also cancelled by name (CancelFlightInfo).
    async fn answer(&mut self, sql: &str) -> Result<String, Stop> {
        let call = self.client.execute(sql.to_string(), None);
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
            return Ok(match info.total_records {
                n if n > 0 => format!("OK, {n} row(s) affected"),
                _ => "OK".to_string(),
            });
        }
        let fetch = fetch(&mut self.client, &info);
        let batches = match Self::race(&self.interrupts, fetch).await {
            Raced::Done(batches) => batches.map_err(|e| Stop::Failed(error_line(&e)))?,
            Raced::Interrupted => {
                let request = CancelFlightInfoRequest::new(info);
                let action = Action::new("CancelFlightInfo", request.encode_to_vec());
                // The dropped DoGet already stopped the query; this covers one not yet read.
                let _ = self.client.do_action(action).await;
                return Err(Stop::Interrupted);
            }
        };
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows == 0 {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Ok(format!("{}\n(0 rows)", names.join(" | ")));
        }
        // NULL is spelled out, as over :7205, so `[NULL]` and `[]` differ.
        let options = FormatOptions::default().with_null("NULL");
        let table = pretty_format_batches_with_options(&batches, &options)
            .map_err(|e| Stop::Failed(format!("ERROR: {e}")))?;
        Ok(format!(
            "{table}\n({rows} row{})",
            if rows == 1 { "" } else { "s" }
        ))
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

/// The line that reports a failed call: `ERROR <SQLSTATE>: <the server's message>`, without
/// transport noise (`ERROR: …` when the server sent no code).
fn error_line(error: &FlightError) -> String {
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

/// A transport error with its causes (tonic's own message is only "transport error").
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
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
        let _ = std::io::stderr().flush();
        tokio::time::sleep(Duration::from_millis(100)).await;
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

fn is_exit(sql: &str) -> bool {
    ["exit", "quit"].contains(&sql.trim().to_ascii_lowercase().as_str())
}

fn save(editor: &mut DefaultEditor, history: &Option<PathBuf>) {
    if let Some(path) = history {
        let _ = editor.save_history(path);
    }
}
