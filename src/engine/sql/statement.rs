//! [`Statement`]: one SQL statement, parsed once and typed, and the facts about each kind that
//! the engine needs before running it.

use arrow::datatypes::SchemaRef;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast;

use super::names::{TableName, table_name};
use crate::engine::{EngineError, Outcome, SYSTEM_DATABASE};
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
    /// `CREATE TABLE [IF NOT EXISTS] t [SHALLOW | DEEP] CLONE source [VERSION AS OF n |
    /// TIMESTAMP AS OF …]`; the source's name may carry the version time travel encoded.
    CloneTable {
        name: TableName,
        source: TableName,
        if_not_exists: bool,
        shallow: bool,
    },
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
    /// `SHOW CREATE TABLE t` (a view too).
    ShowCreateTable(TableName),
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
    /// `FSCK REPAIR TABLE t [DRY RUN]`.
    Fsck {
        table: TableName,
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
    /// `MERGE INTO target USING source ON … WHEN …`.
    Merge(Box<ast::Merge>),
    /// `INSERT … ON CONFLICT …`, which MiniDB runs as a MERGE.
    Upsert(Box<ast::Insert>),
    /// `CANCEL QUERY id`: stops a statement `sys.queries` lists.
    CancelQuery(u64),
    /// `SET statement_timeout = …` / `TO …`; `None` (`DEFAULT`, or `RESET statement_timeout`)
    /// goes back to the server's `--statement-timeout-ms`, zero turns it off.
    SetStatementTimeout(Option<std::time::Duration>),
    /// `SHOW statement_timeout`.
    ShowStatementTimeout,
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
                ast::Statement::Merge(merge) => Statement::Merge(Box::new(merge)),
                ast::Statement::Insert(insert)
                    if matches!(insert.on, Some(ast::OnInsert::OnConflict(_))) =>
                {
                    Statement::Upsert(Box::new(insert))
                }
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
                | Statement::CloneTable { .. }
                | Statement::DropTable { .. }
                | Statement::CreateView(_)
                | Statement::DropView { .. }
                | Statement::CreateIndex { .. }
                | Statement::DropIndex { .. }
                | Statement::Optimize { .. }
                | Statement::Analyze { .. }
                | Statement::Vacuum { .. }
                | Statement::Fsck { .. }
        )
    }

    /// Whether the statement runs without waiting for a slot of `--max-concurrent-queries`:
    /// it ends a transaction, changes the session, stops another statement, or is a query of
    /// the `sys` tables only — so a full server can still be watched and relieved.
    pub fn skips_admission(&self) -> bool {
        match self {
            Statement::CancelQuery(_)
            | Statement::SetStatementTimeout(_)
            | Statement::ShowStatementTimeout
            | Statement::Use(_)
            | Statement::Begin
            | Statement::Commit
            | Statement::Rollback => true,
            Statement::Query(query) => reads_only_system_tables(query),
            _ => false,
        }
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
            | Statement::ShowCreateTable(_)
            | Statement::ShowIndexes(_)
            | Statement::ShowStatementTimeout => Answer::Listing,
            Statement::Optimize { .. } => Answer::Report(Outcome::optimize_schema()),
            Statement::Analyze { .. } => Answer::Report(Outcome::analyze_schema()),
            Statement::Vacuum { .. } => Answer::Report(Outcome::vacuum_schema()),
            Statement::Fsck { .. } => Answer::Report(Outcome::fsck_schema()),
            Statement::DescribeHistory(_) => Answer::Report(Outcome::history_schema()),
            _ => Answer::Message,
        }
    }
}

/// Whether every table `query` names is in the `sys` schema (and it names at least one).
fn reads_only_system_tables(query: &DFStatement) -> bool {
    let DFStatement::Statement(statement) = query else {
        return false;
    };
    let mut tables = 0;
    let mut others = 0;
    let _ = ast::visit_relations(statement.as_ref(), |name| {
        tables += 1;
        let parts: Vec<&str> = name
            .0
            .iter()
            .filter_map(|part| part.as_ident().map(|ident| ident.value.as_str()))
            .collect();
        let schema = parts.len().checked_sub(2).map(|i| parts[i]);
        if !schema.is_some_and(|s| s.eq_ignore_ascii_case(SYSTEM_DATABASE)) {
            others += 1;
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    tables > 0 && others == 0
}

/// The error for a statement MiniDB does not run, named by its first two words.
fn not_supported(text: &str) -> EngineError {
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    EngineError::NotSupported(format!("{} statements", words.join(" ").to_uppercase()))
}
