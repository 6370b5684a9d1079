//! [`Statement`]: one SQL statement, parsed once and typed, and the facts about each kind that
//! the engine needs before running it.

use arrow::datatypes::SchemaRef;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast;

use super::names::{TableName, table_name};
use crate::engine::{EngineError, Outcome};
use crate::table::partitioning::Partitioning;

/// One statement, by kind. MiniDB runs every kind itself except queries and INSERT, which
/// DataFusion plans.
#[derive(Debug)]
pub enum Statement {
    CreateDatabase {
        name: String,
        if_not_exists: bool,
    },
    DropDatabase {
        name: String,
        if_exists: bool,
    },
    Use(String),
    ShowDatabases,
    ShowTables(Option<String>),
    /// `CREATE TABLE`, with the `PARTITION BY` clause MiniDB reads itself.
    CreateTable {
        create: Box<ast::CreateTable>,
        partitioning: Option<Partitioning>,
    },
    AlterTable(Box<ast::AlterTable>),
    DropTable {
        names: Vec<TableName>,
        if_exists: bool,
    },
    /// `CREATE [OR REPLACE] VIEW [IF NOT EXISTS] v [(c1, …)] AS query`.
    CreateView(Box<ast::CreateView>),
    /// `DROP VIEW [IF EXISTS] v1, …`.
    DropView {
        names: Vec<TableName>,
        if_exists: bool,
    },
    /// `DESCRIBE t`, `SHOW COLUMNS FROM t`.
    Describe(TableName),
    CreateIndex {
        name: String,
        table: TableName,
        columns: Vec<String>,
        unique: bool,
        if_not_exists: bool,
    },
    /// `DROP INDEX name [ON table]`; without a table, the index is looked for in the session's
    /// database.
    DropIndex {
        name: String,
        table: Option<TableName>,
        if_exists: bool,
    },
    ShowIndexes(TableName),
    /// `OPTIMIZE [TABLE] t [ZORDER BY (c1, …)]`.
    Optimize {
        table: TableName,
        zorder: Vec<String>,
    },
    /// `ANALYZE TABLE t [(c1, …)]`; no columns means all of them.
    Analyze {
        table: TableName,
        columns: Vec<String>,
    },
    /// `VACUUM [TABLE] t [RETAIN n HOURS] [DRY RUN]`.
    Vacuum {
        table: TableName,
        retain_hours: Option<u64>,
        dry_run: bool,
    },
    /// `DESCRIBE HISTORY t`.
    DescribeHistory(TableName),
    /// `BEGIN`, `START TRANSACTION`.
    Begin,
    Commit,
    Rollback,
    Update(Box<ast::Update>),
    Delete(Box<ast::Delete>),
    /// `INSERT`, planned by DataFusion.
    Insert(Box<DFStatement>),
    /// A query or `EXPLAIN`, planned by DataFusion.
    Query(Box<DFStatement>),
}

/// What a statement answers with, known before it runs.
#[derive(Debug)]
pub enum Answer {
    /// Rows of a query, streamed as they are produced.
    Rows,
    /// A listing of the catalog (databases, tables, columns, indexes), built when it runs.
    Listing,
    /// A report of maintenance work, in this schema; the work is done when the statement runs.
    Report(SchemaRef),
    /// A message (created, inserted, committed…).
    Message,
}

impl Statement {
    /// The typed statement DataFusion's parser produced; `partitioning` is the `PARTITION BY`
    /// clause cut out of the text before parsing, which only `CREATE TABLE` may have.
    pub(super) fn from_parsed(
        parsed: DFStatement,
        partitioning: Option<Partitioning>,
    ) -> Result<Self, EngineError> {
        let statement = match parsed {
            DFStatement::Statement(statement) => match *statement {
                ast::Statement::CreateTable(create) => {
                    return Ok(Statement::CreateTable {
                        create: Box::new(create),
                        partitioning,
                    });
                }
                ast::Statement::AlterTable(alter) => Statement::AlterTable(Box::new(alter)),
                ast::Statement::CreateView(create) => Statement::CreateView(Box::new(create)),
                ast::Statement::Drop {
                    object_type: ast::ObjectType::View,
                    if_exists,
                    names,
                    cascade: false,
                    temporary: false,
                    ..
                } => Statement::DropView {
                    names: names.iter().map(table_name).collect::<Result<_, _>>()?,
                    if_exists,
                },
                ast::Statement::StartTransaction { .. } => Statement::Begin,
                ast::Statement::Commit { .. } => Statement::Commit,
                ast::Statement::Rollback {
                    savepoint: None, ..
                } => Statement::Rollback,
                ast::Statement::Update(update) => Statement::Update(Box::new(update)),
                ast::Statement::Delete(delete) => Statement::Delete(Box::new(delete)),
                insert @ ast::Statement::Insert(_) => {
                    Statement::Insert(Box::new(DFStatement::Statement(Box::new(insert))))
                }
                query @ ast::Statement::Query(_) => {
                    Statement::Query(Box::new(DFStatement::Statement(Box::new(query))))
                }
                other => return Err(not_supported(&other.to_string())),
            },
            explain @ DFStatement::Explain(_) => Statement::Query(Box::new(explain)),
            other => return Err(not_supported(&other.to_string())),
        };
        if partitioning.is_some() {
            return Err(EngineError::InvalidInput(
                "PARTITION BY belongs to CREATE TABLE".into(),
            ));
        }
        Ok(statement)
    }

    /// True for statements that change databases, tables or their maintenance state.
    pub fn changes_catalog(&self) -> bool {
        matches!(
            self,
            Statement::CreateDatabase { .. }
                | Statement::DropDatabase { .. }
                | Statement::CreateTable { .. }
                | Statement::AlterTable(_)
                | Statement::DropTable { .. }
                | Statement::CreateView(_)
                | Statement::DropView { .. }
                | Statement::CreateIndex { .. }
                | Statement::DropIndex { .. }
                | Statement::Optimize { .. }
                | Statement::Analyze { .. }
                | Statement::Vacuum { .. }
        )
    }

    /// The statement as DataFusion's parser gave it, for the kinds DataFusion plans (to learn
    /// the types of their parameters); `None` for the others.
    pub fn for_planning(&self) -> Option<DFStatement> {
        match self {
            Statement::Query(parsed) | Statement::Insert(parsed) => Some(parsed.as_ref().clone()),
            Statement::Update(update) => Some(DFStatement::Statement(Box::new(
                ast::Statement::Update(update.as_ref().clone()),
            ))),
            Statement::Delete(delete) => Some(DFStatement::Statement(Box::new(
                ast::Statement::Delete(delete.as_ref().clone()),
            ))),
            _ => None,
        }
    }

    /// What the statement answers with.
    pub fn answer(&self) -> Answer {
        match self {
            Statement::Query(_) => Answer::Rows,
            Statement::ShowDatabases
            | Statement::ShowTables(_)
            | Statement::Describe(_)
            | Statement::ShowIndexes(_) => Answer::Listing,
            Statement::Optimize { .. } => Answer::Report(Outcome::optimize_schema()),
            Statement::Analyze { .. } => Answer::Report(Outcome::analyze_schema()),
            Statement::Vacuum { .. } => Answer::Report(Outcome::vacuum_schema()),
            Statement::DescribeHistory(_) => Answer::Report(Outcome::history_schema()),
            _ => Answer::Message,
        }
    }
}

/// The error for a statement MiniDB does not run, named by its first two words.
fn not_supported(text: &str) -> EngineError {
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    EngineError::NotSupported(format!("{} statements", words.join(" ").to_uppercase()))
}
