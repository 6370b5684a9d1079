//! Backslash commands, as psql users type them: what each line asks for, the SQL that
//! answers the informational ones, and the help that lists them.

use std::path::PathBuf;

/// How results are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expanded {
    /// One row per line, as a table.
    Off,
    /// One line per column of each row.
    On,
    /// Expanded when the table would be wider than the terminal.
    Auto,
}

/// A backslash command.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Quit,
    Help,
    Timing(Option<bool>),
    Expanded(Option<Expanded>),
    /// `\pset` with an option and its value, if given.
    Pset(String, Option<String>),
    ListDatabases,
    /// `\d`, `\dt`, `\dv`: relations of the kinds named, whose names match the pattern.
    ListRelations {
        kinds: &'static [&'static str],
        pattern: Option<String>,
    },
    /// `\d name`.
    Describe(String),
    ListIndexes(Option<String>),
    Connect(String),
    /// `\o file`, or `\o` alone (back to the terminal).
    Output(Option<PathBuf>),
    Include(PathBuf),
}

const TABLES: &[&str] = &["TABLE"];
const VIEWS: &[&str] = &["VIEW"];
const RELATIONS: &[&str] = &["TABLE", "VIEW"];

/// What the backslash line `line` asks for, or why it is not understood.
pub fn parse(line: &str) -> Result<Command, String> {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or_default();
    let argument = words.next().map(str::to_string);
    let extra = words.next();
    let on_off = |argument: &Option<String>| -> Result<Option<bool>, String> {
        match argument.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None => Ok(None),
            Some("on") => Ok(Some(true)),
            Some("off") => Ok(Some(false)),
            Some(other) => Err(format!("{name} takes on or off, not '{other}'")),
        }
    };
    let required = |what: &str| {
        argument
            .clone()
            .ok_or_else(|| format!("{name} needs {what}: {name} {}", what.to_uppercase()))
    };
    if extra.is_some() && name != "\\pset" {
        return Err(format!("{name}: too many arguments"));
    }
    Ok(match name {
        "\\q" => Command::Quit,
        "\\?" | "\\help" | "\\h" => Command::Help,
        "\\timing" => Command::Timing(on_off(&argument)?),
        "\\x" => Command::Expanded(match argument.as_deref() {
            Some("auto") => Some(Expanded::Auto),
            _ => on_off(&argument)?.map(|on| if on { Expanded::On } else { Expanded::Off }),
        }),
        "\\pset" => {
            let option = required("an option (null, pager, expanded, timing)")?;
            let value = line
                .trim()
                .splitn(3, char::is_whitespace)
                .nth(2)
                .map(|v| v.trim().to_string());
            Command::Pset(option, value)
        }
        "\\l" | "\\list" => Command::ListDatabases,
        "\\d" => match argument {
            Some(name) => Command::Describe(name),
            None => Command::ListRelations {
                kinds: RELATIONS,
                pattern: None,
            },
        },
        "\\dt" => Command::ListRelations {
            kinds: TABLES,
            pattern: argument,
        },
        "\\dv" => Command::ListRelations {
            kinds: VIEWS,
            pattern: argument,
        },
        "\\di" => Command::ListIndexes(argument),
        "\\c" | "\\connect" => Command::Connect(required("a database")?),
        "\\o" | "\\out" => Command::Output(argument.map(PathBuf::from)),
        "\\i" | "\\include" => Command::Include(PathBuf::from(required("a file")?)),
        _ => return Err(format!("unknown command {name}; \\? lists the commands")),
    })
}

pub const HELP: &str = "\
General
  \\q                    quit (also EXIT, QUIT, Ctrl-D, or Ctrl-C twice at the prompt)
  \\?                    this list
Informational (PATTERN: * and ? wildcards; db.PATTERN looks in another database)
  \\l                    list databases
  \\d                    list tables and views
  \\d NAME               describe a table or view: columns, types, keys, defaults, indexes,
                        partitioning
  \\dt [PATTERN]         list tables
  \\dv [PATTERN]         list views
  \\di [PATTERN]         list indexes
Connection
  \\c DATABASE           switch to DATABASE (as USE DATABASE)
Formatting
  \\x [on|off|auto]      expanded display: a line per column (auto: when wider than the
                        terminal)
  \\pset null TEXT       show NULL as TEXT (quote it to include spaces: '(null)')
  \\pset pager [on|off]  page results taller than the terminal ($MINIDB_PAGER, $PAGER or less)
  \\timing [on|off]      show how long each statement takes
Input/Output
  \\i FILE               run the statements in FILE
  \\o [FILE]             send results to FILE; \\o alone sends them to the terminal again
Transactions
  BEGIN, COMMIT and ROLLBACK use Flight SQL's transactions; the prompt shows * inside one.";

/// A pattern's text as a SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A psql-style pattern (`*` any text, `?` one character, case-insensitive) as an anchored
/// regular expression literal.
fn regex(pattern: &str) -> String {
    let mut regex = String::from("^");
    for c in pattern.chars() {
        match c {
            '*' => regex.push_str(".*"),
            '?' => regex.push('.'),
            c if ".+()|[]{}^$\\".contains(c) => {
                regex.push('\\');
                regex.push(c);
            }
            c => regex.push(c),
        }
    }
    regex.push('$');
    literal(&regex)
}

/// The condition on `database_column` and `name_column` for a pattern typed in `database`:
/// `db.pattern` names another database.
fn matching(
    database: &str,
    pattern: Option<&str>,
    database_column: &str,
    name_column: &str,
) -> String {
    let (database, pattern) = match pattern.and_then(|p| p.split_once('.')) {
        Some((database, pattern)) => (database, Some(pattern)),
        None => (database, pattern),
    };
    let mut condition = format!("{database_column} = {}", literal(database));
    if let Some(pattern) = pattern {
        condition.push_str(&format!(" AND {name_column} ~* {}", regex(pattern)));
    }
    condition
}

/// The query that lists databases.
pub fn databases() -> String {
    "SELECT db_name AS name, table_count AS tables FROM sys.db_metadata ORDER BY db_name".into()
}

/// The query that lists relations of `kinds` in `database`.
pub fn relations(database: &str, kinds: &[&str], pattern: Option<&str>) -> String {
    let kinds: Vec<String> = kinds.iter().map(|k| literal(k)).collect();
    format!(
        "SELECT db_name AS database, table_name AS name, lower(table_type) AS type, \
         num_rows AS rows, size_bytes AS bytes FROM sys.table_metadata \
         WHERE {} AND table_type IN ({}) ORDER BY table_name",
        matching(database, pattern, "db_name", "table_name"),
        kinds.join(", ")
    )
}

/// The query that lists indexes in `database`.
pub fn indexes(database: &str, pattern: Option<&str>) -> String {
    format!(
        "SELECT db_name AS database, index_name AS name, table_name AS table, \
         string_agg(column_name, ', ' ORDER BY seq_in_index) AS columns, \
         bool_or(is_unique) AS is_unique, max(constraint_type) AS constraint_type \
         FROM sys.index_metadata WHERE {} \
         GROUP BY db_name, table_name, index_name ORDER BY table_name, index_name",
        matching(database, pattern, "db_name", "index_name")
    )
}

/// `name` (`table` or `db.table`) as its database and table, the database defaulting to
/// `database`.
pub fn qualified<'a>(database: &'a str, name: &'a str) -> (&'a str, &'a str) {
    name.split_once('.').unwrap_or((database, name))
}

/// The query for the indexes of one table, a line each.
pub fn table_indexes(database: &str, table: &str) -> String {
    format!(
        "SELECT index_name, max(constraint_type) AS constraint_type, bool_or(is_unique) AS \
         is_unique, string_agg(column_name, ', ' ORDER BY seq_in_index) AS columns \
         FROM sys.index_metadata WHERE db_name = {} AND table_name = {} \
         GROUP BY index_name ORDER BY index_name",
        literal(database),
        literal(table)
    )
}

/// The query for a relation's kind (`TABLE`, `VIEW`), a table's partitioning and a view's
/// definition.
pub fn table_details(database: &str, table: &str) -> String {
    format!(
        "SELECT table_type, partitioning, view_definition FROM sys.table_metadata \
         WHERE db_name = {} AND table_name = {}",
        literal(database),
        literal(table)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_as_psql_users_type_them() {
        assert_eq!(
            parse("\\x auto"),
            Ok(Command::Expanded(Some(Expanded::Auto)))
        );
        assert_eq!(parse("\\x"), Ok(Command::Expanded(None)));
        assert_eq!(parse("\\timing off"), Ok(Command::Timing(Some(false))));
        assert_eq!(
            parse("\\pset null '(no value)'"),
            Ok(Command::Pset("null".into(), Some("'(no value)'".into())))
        );
        assert_eq!(parse("\\d orders"), Ok(Command::Describe("orders".into())));
        assert_eq!(parse("\\c shop"), Ok(Command::Connect("shop".into())));
        assert_eq!(parse("\\o"), Ok(Command::Output(None)));
        assert!(parse("\\c").unwrap_err().contains("needs a database"));
        assert!(parse("\\x maybe").unwrap_err().contains("on or off"));
        assert!(parse("\\dt a b").unwrap_err().contains("too many"));
        assert!(parse("\\z").unwrap_err().contains("unknown command \\z"));
    }

    #[test]
    fn patterns_become_anchored_case_insensitive_regexes() {
        assert_eq!(
            matching("shop", Some("ord*"), "db", "name"),
            "db = 'shop' AND name ~* '^ord.*$'"
        );
        assert_eq!(
            matching("shop", Some("other.a?c"), "db", "name"),
            "db = 'other' AND name ~* '^a.c$'"
        );
        assert_eq!(matching("it's", None, "db", "name"), "db = 'it''s'");
        assert_eq!(regex("a.b'"), "'^a\\.b''$'");
    }
}
