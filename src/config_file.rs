//! The optional TOML configuration file of `minidb serve`.
//!
//! Its keys are the long names of the command's flags (`flight-addr` or `flight_addr`), its
//! values strings, numbers or booleans:
//!
//! ```toml
//! data = "s3://lake/minidb"
//! s3-endpoint = "http://127.0.0.1:8333"
//! compaction-interval-ms = 30000
//! ```
//!
//! A setting given on the command line wins over its environment variable, which wins over
//! the file. The file's settings become extra `--name=value` arguments for the flags that
//! neither the command line nor the environment set, so clap checks them exactly as it checks
//! the command line.

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

/// The configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("{0}")]
    Syntax(#[from] toml::de::Error),
    #[error(
        "unknown setting '{0}' (settings are the long flag names that `minidb serve --help` lists)"
    )]
    UnknownSetting(String),
    #[error("setting '{0}' must be a string, a number or a boolean")]
    UnsupportedValue(String),
    #[error("setting '{0}' cannot be set in the configuration file")]
    NotInFile(String),
}

/// The arguments that apply `text` (a TOML file) to `command`, given the `matches` its command
/// line and environment produced: one `--name=value` per setting they left unset.
pub fn file_arguments(
    command: &Command,
    matches: &ArgMatches,
    text: &str,
) -> Result<Vec<String>, ConfigFileError> {
    let table: toml::Table = text.parse()?;
    let mut arguments = Vec::new();
    for (key, value) in table {
        let name = key.replace('_', "-");
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some(name.as_str()))
            .ok_or_else(|| ConfigFileError::UnknownSetting(key.clone()))?;
        if arg.get_id() == "config" {
            return Err(ConfigFileError::NotInFile(key));
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => return Err(ConfigFileError::UnsupportedValue(key)),
        };
        let set_elsewhere = matches!(
            matches.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if !set_elsewhere {
            arguments.push(format!("--{name}={value}"));
        }
    }
    Ok(arguments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Arg;

    fn command() -> Command {
        Command::new("serve")
            .arg(Arg::new("config").long("config"))
            .arg(Arg::new("data").long("data").default_value("./data"))
            .arg(
                Arg::new("flight_addr")
                    .long("flight-addr")
                    .env("TEST_CONFIG_FILE_FLIGHT_ADDR"),
            )
            .arg(Arg::new("interval").long("interval-ms"))
    }

    fn arguments(argv: &[&str], text: &str) -> Result<Vec<String>, ConfigFileError> {
        let command = command();
        let matches = command.clone().try_get_matches_from(argv).unwrap();
        file_arguments(&command, &matches, text)
    }

    #[test]
    fn the_file_fills_what_the_command_line_leaves_unset() {
        let text = "data = \"s3://lake/x\"\nflight_addr = \"0.0.0.0:1\"\ninterval-ms = 250\n";
        let mut got = arguments(&["serve", "--flight-addr", "127.0.0.1:2"], text).unwrap();
        got.sort();
        assert_eq!(got, ["--data=s3://lake/x", "--interval-ms=250"]);
    }

    #[test]
    fn mistakes_are_named() {
        let unknown = arguments(&["serve"], "dta = \"x\"").unwrap_err();
        assert!(
            unknown.to_string().contains("unknown setting 'dta'"),
            "{unknown}"
        );
        let table = arguments(&["serve"], "data = { a = 1 }").unwrap_err();
        assert!(table.to_string().contains("'data' must be"), "{table}");
        let nested = arguments(&["serve"], "config = \"other.toml\"").unwrap_err();
        assert!(nested.to_string().contains("'config'"), "{nested}");
        assert!(matches!(
            arguments(&["serve"], "data = ").unwrap_err(),
            ConfigFileError::Syntax(_)
        ));
    }
}
