//! The seed's shorthand forms, accepted on the text protocol only:
//!
//! - `CREATE TABLE users id,name,age` → `CREATE TABLE users (id VARCHAR, name VARCHAR, age VARCHAR)`
//! - `INSERT INTO users id=1 name=Alice age=25` → `INSERT INTO users (id, name, age) VALUES ('1', 'Alice', '25')`
//!
//! Values become string literals and are converted to the column types like any INSERT. A value
//! may be quoted, with `'…'` or `"…"` (a doubled quote inside stands for one), to hold spaces or
//! quotes: `name='O''Brien'`, `name="Zoë"`; the quotes are not part of it.

/// Rewrites a shorthand statement into standard SQL; `None` when `sql` is not shorthand.
pub fn expand(sql: &str) -> Option<String> {
    let mut words = sql.split_whitespace();
    let (first, second) = (words.next()?, words.next()?);
    if first.eq_ignore_ascii_case("create") && second.eq_ignore_ascii_case("table") {
        create_table(sql)
    } else if first.eq_ignore_ascii_case("insert") && second.eq_ignore_ascii_case("into") {
        insert(sql)
    } else {
        None
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `table` or `database.table`.
fn is_table_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() <= 2 && parts.iter().all(|p| is_identifier(p))
}

/// Everything after the first `n` whitespace-separated words.
fn after_words(sql: &str, n: usize) -> &str {
    let mut rest = sql.trim_start();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    rest
}

fn create_table(sql: &str) -> Option<String> {
    let name = sql.split_whitespace().nth(2)?;
    let rest = after_words(sql, 3);
    if !is_table_name(name) || rest.is_empty() {
        return None;
    }
    let columns: Vec<&str> = rest.split(',').map(str::trim).collect();
    let keyword = ["as", "like"].contains(&columns[0].to_ascii_lowercase().as_str());
    if keyword || !columns.iter().all(|c| is_identifier(c)) {
        return None;
    }
    let defs: Vec<String> = columns.iter().map(|c| format!("{c} VARCHAR")).collect();
    Some(format!("CREATE TABLE {name} ({})", defs.join(", ")))
}

fn insert(sql: &str) -> Option<String> {
    let name = sql.split_whitespace().nth(2)?;
    if !is_table_name(name) {
        return None;
    }
    let mut rest = after_words(sql, 3);
    let (mut columns, mut values) = (Vec::new(), Vec::new());
    while !rest.is_empty() {
        let (column, after) = rest.split_once('=')?;
        let column = column.trim();
        if !is_identifier(column) {
            return None;
        }
        let after = after.trim_start();
        let (value, remainder) = match after.chars().next() {
            Some(quote @ ('\'' | '"')) => unquoted(&after[1..], quote)?,
            _ => {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                (after[..end].to_string(), &after[end..])
            }
        };
        columns.push(column.to_string());
        values.push(format!("'{}'", value.replace('\'', "''")));
        rest = remainder.trim_start();
    }
    if columns.is_empty() {
        return None;
    }
    Some(format!(
        "INSERT INTO {name} ({}) VALUES ({})",
        columns.join(", "),
        values.join(", ")
    ))
}

/// The value of a quoted shorthand value whose opening `quote` is already read, and the text
/// after its closing quote; a doubled quote inside stands for one. `None` when it never closes.
fn unquoted(text: &str, quote: char) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != quote {
            value.push(c);
        } else if chars.next_if(|(_, next)| *next == quote).is_some() {
            value.push(quote);
        } else {
            return Some((value, &text[i + c.len_utf8()..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_shorthand_expands() {
        assert_eq!(
            expand("CREATE TABLE users id,name,age").unwrap(),
            "CREATE TABLE users (id VARCHAR, name VARCHAR, age VARCHAR)"
        );
        assert_eq!(
            expand("INSERT INTO users id=1 name=Alice age=25").unwrap(),
            "INSERT INTO users (id, name, age) VALUES ('1', 'Alice', '25')"
        );
        assert_eq!(
            expand("insert into users id=3 name='O Brien' age=4").unwrap(),
            "INSERT INTO users (id, name, age) VALUES ('3', 'O Brien', '4')"
        );
    }

    #[test]
    fn quoted_values_lose_their_quotes() {
        assert_eq!(
            expand("INSERT INTO users name='O''Brien' city=\"Zoë's \"\"place\"\"\"").unwrap(),
            "INSERT INTO users (name, city) VALUES ('O''Brien', 'Zoë''s \"place\"')"
        );
        assert_eq!(
            expand("INSERT INTO users name=\"Zoë\"").unwrap(),
            "INSERT INTO users (name) VALUES ('Zoë')"
        );
        assert_eq!(expand("INSERT INTO users name='open"), None);
    }

    #[test]
    fn qualified_names_are_accepted() {
        assert_eq!(
            expand("CREATE TABLE shop.t a,b").unwrap(),
            "CREATE TABLE shop.t (a VARCHAR, b VARCHAR)"
        );
        assert_eq!(
            expand("INSERT INTO shop.t a=1").unwrap(),
            "INSERT INTO shop.t (a) VALUES ('1')"
        );
        assert_eq!(expand("CREATE TABLE a.b.c x"), None);
    }

    #[test]
    fn standard_sql_is_left_alone() {
        assert_eq!(expand("CREATE TABLE t (a INT)"), None);
        assert_eq!(expand("CREATE TABLE t AS SELECT 1"), None);
        assert_eq!(expand("INSERT INTO t VALUES (1)"), None);
        assert_eq!(expand("INSERT INTO t (a) VALUES (1)"), None);
        assert_eq!(expand("SELECT 1"), None);
    }
}
