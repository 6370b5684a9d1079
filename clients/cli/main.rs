//! `minidb-cli`: a terminal client for MiniDB over Flight SQL, with the habits of psql.
//!
//! Interactive (a terminal on stdin): a prompt naming the database (`shop=> `, `shop=*> ` inside
//! a transaction), line editing and history, statements ending at `;` across lines, results as
//! tables or expanded, backslash commands (`\\?` lists them), a pager for tall results, and a
//! running clock while a statement takes longer than a second; Ctrl-C cancels the running
//! statement (on the server too) and, pressed twice at the prompt, quits. Otherwise it runs
//! `-c` statements, a `-f` file or stdin. Exit codes: 0 all statements succeeded, 1 one
//! failed, 2 the server could not be reached, 3 `--on-error-stop` stopped the script, 4 the
//! server refused the session (login, or the `-d` database), 130 Ctrl-C stopped it.

mod commands;
mod output;
mod shell;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use arrow_flight::HandshakeRequest;
use arrow_flight::sql::client::FlightSqlServiceClient;
use clap::Parser;
use rustyline::DefaultEditor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use shell::{DATABASE_HEADER, Shell, Stopped, error_line};

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
    /// Stop a script (-c, -f, stdin, \\i) at its first failing statement, with exit code 3.
    #[arg(long)]
    on_error_stop: bool,
}

/// Exit codes, as the module documentation lists them.
const EXIT_FAILED: u8 = 1;
const EXIT_UNREACHABLE: u8 = 2;
const EXIT_STOPPED: u8 = 3;
const EXIT_REFUSED: u8 = 4;
/// 128 + SIGINT, as shells report a process Ctrl-C stopped.
const EXIT_INTERRUPTED: u8 = 130;

/// Why there is no session.
enum NoSession {
    /// The server could not be reached (exit code 2).
    Unreachable(String),
    /// The server answered but refused: a login, or the `-d` database (exit code 4).
    Refused(String),
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut shell = match connect(&args).await {
        Ok(shell) => shell,
        Err(NoSession::Unreachable(why)) => {
            eprintln!("minidb-cli: {why}");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
        Err(NoSession::Refused(why)) => {
            eprintln!("minidb-cli: {why}");
            return ExitCode::from(EXIT_REFUSED);
        }
    };
    let interactive =
        args.command.is_none() && args.file.is_none() && std::io::stdin().is_terminal();
    if interactive {
        shell.repl().await;
        return ExitCode::SUCCESS;
    }
    shell.catch_interrupts();
    let ran = if let Some(sql) = &args.command {
        shell.run_script(sql, None).await
    } else if let Some(path) = &args.file {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let source = path.display().to_string();
                shell.run_script(&text, Some(&source)).await
            }
            Err(e) => {
                eprintln!("minidb-cli: cannot read {}: {e}", path.display());
                return ExitCode::from(EXIT_FAILED);
            }
        }
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
                    return ExitCode::from(EXIT_FAILED);
                }
            }
        }
        shell.run_script(&text, Some("<stdin>")).await
    };
    shell.finish().await;
    ExitCode::from(match ran {
        Ok(true) => 0,
        Ok(false) => EXIT_FAILED,
        Err(Stopped::OnError) => EXIT_STOPPED,
        Err(Stopped::Interrupted) => EXIT_INTERRUPTED,
    })
}

async fn connect(args: &Args) -> Result<Shell, NoSession> {
    let address = format!("{}:{}", args.host, args.port);
    let unreachable =
        |why: String| NoSession::Unreachable(format!("cannot connect to {address}: {why}"));
    let tls = args.tls || args.tls_ca.is_some();
    let scheme = if tls { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
        .map_err(|e| unreachable(e.to_string()))?
        .connect_timeout(Duration::from_secs(10));
    if tls {
        let mut config = ClientTlsConfig::new().domain_name(args.host.clone());
        config = match &args.tls_ca {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| unreachable(format!("reading {}: {e}", path.display())))?;
                config.ca_certificate(Certificate::from_pem(pem))
            }
            None => config.with_webpki_roots(),
        };
        endpoint = endpoint
            .tls_config(config)
            .map_err(|e| unreachable(e.to_string()))?;
    }
    let channel = endpoint.connect().await.map_err(|e| {
        unreachable(format!(
            "{} (is the server running there? `minidb serve` starts one; --host and --port \
             choose another)",
            causes(&e)
        ))
    })?;
    let mut client = FlightSqlServiceClient::new(channel);
    match &args.user {
        Some(user) => {
            let password = match &args.password {
                Some(password) => password.clone(),
                None => ask_password(user).map_err(NoSession::Refused)?,
            };
            login(&mut client, user, &password)
                .await
                .map_err(|status| {
                    NoSession::Refused(format!("login failed: {}", status.message()))
                })?;
        }
        // Without a login, a server with users refuses every call: find out now, as the
        // first statement would, and say how to log in.
        None => {
            if let Err(e) = client.get_catalogs().await {
                return Err(match &e {
                    arrow_flight::error::FlightError::Tonic(status)
                        if status.code() == tonic::Code::Unauthenticated =>
                    {
                        NoSession::Refused(status.message().to_string())
                    }
                    _ => unreachable(error_line(&e)),
                });
            }
        }
    }
    let database = match &args.database {
        Some(database) => {
            // A statement that reads no table would run in a database that does not exist:
            // check it now, as psql does, so that a misspelt -d fails before anything runs.
            client
                .execute(format!("USE {database}"), None)
                .await
                .map_err(|e| NoSession::Refused(error_line(&e)))?;
            client.set_header(DATABASE_HEADER, database.clone());
            database.clone()
        }
        None => "default".to_string(),
    };
    Ok(Shell::new(client, database, args.on_error_stop))
}

/// An error and its causes on one line, each said once (tonic repeats a cause in the message
/// of the error it wraps).
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    text
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
