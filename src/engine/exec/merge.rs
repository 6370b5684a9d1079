//! `MERGE INTO` and `INSERT … ON CONFLICT`, Merge-on-Read.
//!
//! A MERGE is one query and one [`Mutation`]:
//!
//! 1. The statement is reduced to a [`Merge`]: target, source, ON condition and the WHEN
//!    clauses in order. `INSERT … ON CONFLICT` is reduced to the same ([`Merge::upsert`]): the
//!    proposed rows are the source, named `excluded`, joined to the target on the conflict key.
//! 2. The target is opened for writing as for UPDATE: the writer lock and the newest snapshot,
//!    or the transaction's snapshot.
//! 3. One query joins the target, with its row-address columns, to the source, which carries a
//!    constant column so that "no source row" can be told from a source row of NULLs: an inner
//!    join when every clause is `WHEN MATCHED`, the source's outer join for `WHEN NOT MATCHED`,
//!    the target's for `WHEN NOT MATCHED BY SOURCE`, a full join for both. For each joined row
//!    it computes which clause acts — the first whose kind and condition hold — and every
//!    column's value under that clause; rows no clause acts on are filtered out. New values are
//!    converted like INSERT values.
//! 4. Rows of UPDATE and DELETE clauses delete their target row (a target row reached twice is
//!    an error: the source matches it more than once); rows of UPDATE and INSERT clauses add
//!    their new values. Deletion vectors and the new file go into one commit.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::{AsArray, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::DataFusionError;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast};
use datafusion::physical_plan::execute_stream;
use datafusion::sql::sqlparser::ast::{self, VisitMut, VisitorMut};
use futures::StreamExt;

use super::declaration::declared;
use super::dml::{WriteTarget, assignments, quote};
use super::{Engine, EngineError, Outcome, Session};
use crate::catalog::CatalogError;
use crate::engine::insert::store;
use crate::engine::running::task_context;
use crate::engine::sql::{TableName, normalize, table_name};
use crate::table::foreign_keys::ReferencedTables;
use crate::table::{
    DEFAULTS_PROPERTY, FILE_INDEX_COLUMN, Mutation, PRIMARY_KEY_PROPERTY, ROW_INDEX_COLUMN,
    UNIQUE_PROPERTY, table_indexes,
};
use crate::txlog::Snapshot;

/// The source's constant column: NULL in a joined row means "no source row".
const SOURCE_MARK: &str = "__minidb_source";
/// The number (from 1) of the clause that acts on a joined row, 0 for none.
const CLAUSE_COLUMN: &str = "__minidb_clause";

/// Which rows a `WHEN` clause is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    Matched,
    NotMatched,
    NotMatchedBySource,
}

/// What a `WHEN` clause does; expressions are SQL text.
#[derive(Debug)]
enum Action {
    /// `UPDATE SET column = value, …`.
    Update(Vec<(String, String)>),
    Delete,
    /// `INSERT [(columns)] VALUES (values)`; no columns means every column in table order.
    Insert {
        columns: Vec<String>,
        values: Vec<String>,
    },
}

impl Action {
    fn deletes(&self) -> bool {
        matches!(self, Action::Update(_) | Action::Delete)
    }

    fn adds(&self) -> bool {
        matches!(self, Action::Update(_) | Action::Insert { .. })
    }
}

#[derive(Debug)]
struct Clause {
    when: When,
    condition: Option<String>,
    action: Action,
}

/// A MERGE (or an INSERT … ON CONFLICT) reduced to what MiniDB runs.
#[derive(Debug)]
pub(super) struct Merge {
    /// The statement, for error messages: `MERGE` or `INSERT … ON CONFLICT`.
    statement: &'static str,
    table: TableName,
    /// The target as written, with its alias.
    target: String,
    /// How the target's columns are qualified: its alias, or its name.
    target_alias: String,
    /// The source as written (a table or a derived table, with its alias).
    source: String,
    source_alias: String,
    on: String,
    clauses: Vec<Clause>,
}

/// Rows a MERGE inserted, updated and deleted.
#[derive(Debug, Default)]
struct Counts {
    inserted: u64,
    updated: u64,
    deleted: u64,
}

impl Merge {
    pub(super) fn new(merge: &ast::Merge) -> Result<Self, EngineError> {
        if merge.output.is_some() {
            return Err(unsupported("MERGE … OUTPUT"));
        }
        let ast::TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = &merge.table
        else {
            return Err(unsupported(&format!("MERGE INTO {}", merge.table)));
        };
        let table = table_name(name)?;
        let target_alias = match alias {
            Some(alias) => alias.name.to_string(),
            None => quote(&table.table),
        };
        let source_alias = match &merge.source {
            ast::TableFactor::Table {
                alias: None, name, ..
            } => quote(&table_name(name)?.table),
            ast::TableFactor::Table {
                alias: Some(alias), ..
            }
            | ast::TableFactor::Derived {
                alias: Some(alias), ..
            } => alias.name.to_string(),
            ast::TableFactor::Derived { alias: None, .. } => {
                return Err(EngineError::InvalidInput(
                    "the source of MERGE needs an alias: USING (SELECT …) AS s".into(),
                ));
            }
            other => return Err(unsupported(&format!("MERGE … USING {other}"))),
        };
        let mut clauses = Vec::with_capacity(merge.clauses.len());
        for clause in &merge.clauses {
            let when = match clause.clause_kind {
                ast::MergeClauseKind::Matched => When::Matched,
                ast::MergeClauseKind::NotMatched | ast::MergeClauseKind::NotMatchedByTarget => {
                    When::NotMatched
                }
                ast::MergeClauseKind::NotMatchedBySource => When::NotMatchedBySource,
            };
            let action = match &clause.action {
                ast::MergeAction::Update(update) => {
                    if update.update_predicate.is_some() || update.delete_predicate.is_some() {
                        return Err(unsupported("UPDATE … WHERE inside MERGE (use WHEN … AND)"));
                    }
                    Action::Update(text_assignments(&update.assignments)?)
                }
                ast::MergeAction::Delete { .. } => Action::Delete,
                ast::MergeAction::Insert(insert) => insert_action(insert)?,
            };
            if let Some(condition) = &clause.predicate {
                check_condition(condition)?;
            }
            clauses.push(Clause {
                when,
                condition: clause.predicate.as_ref().map(ToString::to_string),
                action,
            });
        }
        if clauses.is_empty() {
            return Err(EngineError::InvalidInput(
                "MERGE needs at least one WHEN clause".into(),
            ));
        }
        Ok(Self {
            statement: "MERGE",
            table,
            target: merge.table.to_string(),
            target_alias,
            source: merge.source.to_string(),
            source_alias,
            on: merge.on.to_string(),
            clauses,
        })
    }

    /// `INSERT INTO t [AS a] [(columns)] query ON CONFLICT [(key)] DO NOTHING | DO UPDATE SET …
    /// [WHERE …]` as a MERGE of the proposed rows, named `excluded`, into `t` on the conflict
    /// key. `snapshot` is the target's, whose keys the conflict target must name.
    pub(super) fn upsert(
        insert: &ast::Insert,
        table: TableName,
        snapshot: &Snapshot,
    ) -> Result<Self, EngineError> {
        let Some(ast::OnInsert::OnConflict(conflict)) = &insert.on else {
            return Err(DataFusionError::Internal("an upsert without ON CONFLICT".into()).into());
        };
        if insert.returning.is_some() {
            return Err(unsupported("INSERT … RETURNING"));
        }
        if insert.overwrite || insert.ignore || insert.or.is_some() || insert.replace_into {
            return Err(unsupported("INSERT OVERWRITE/IGNORE/OR … with ON CONFLICT"));
        }
        let Some(query) = &insert.source else {
            return Err(unsupported(
                "INSERT … ON CONFLICT without VALUES or a query",
            ));
        };
        let qualified = match &table.database {
            Some(database) => format!("{database}.{}", table.table),
            None => table.table.clone(),
        };
        let mut columns: Vec<String> = Vec::with_capacity(insert.columns.len());
        for column in &insert.columns {
            let Some(ast::ObjectNamePart::Identifier(ident)) = column.0.last() else {
                return Err(EngineError::InvalidInput(format!(
                    "bad column name {column}"
                )));
            };
            columns.push(normalize(ident));
        }
        if columns.is_empty() {
            columns = snapshot
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
        }
        let target_ident = match &insert.table_alias {
            Some(alias) => alias.alias.clone(),
            None => ast::Ident::with_quote('"', table.table.clone()),
        };
        let target_alias = target_ident.to_string();
        let target = match &insert.table_alias {
            Some(alias) => format!("{} AS {}", quote_name(&table), alias.alias),
            None => quote_name(&table),
        };

        let keys = table_keys(snapshot)?;
        if keys.is_empty() {
            return Err(EngineError::InvalidInput(format!(
                "ON CONFLICT needs a PRIMARY KEY or UNIQUE constraint, and {qualified} has none"
            )));
        }
        let conflict_keys: Vec<Vec<String>> = match &conflict.conflict_target {
            Some(ast::ConflictTarget::Columns(named)) => {
                let named: HashSet<String> = named.iter().map(normalize).collect();
                let Some(key) = keys
                    .iter()
                    .find(|key| key.iter().cloned().collect::<HashSet<_>>() == named)
                else {
                    let mut named: Vec<String> = named.into_iter().collect();
                    named.sort();
                    return Err(EngineError::InvalidInput(format!(
                        "there is no PRIMARY KEY or UNIQUE constraint on {qualified} matching \
                         ON CONFLICT ({}); its keys are {}",
                        named.join(", "),
                        keys.iter()
                            .map(|key| format!("({})", key.join(", ")))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                };
                vec![key.clone()]
            }
            Some(ast::ConflictTarget::OnConstraint(name)) => {
                return Err(unsupported(&format!("ON CONFLICT ON CONSTRAINT {name}")));
            }
            None if matches!(conflict.action, ast::OnConflictAction::DoUpdate(_)) => {
                return Err(EngineError::InvalidInput(
                    "ON CONFLICT DO UPDATE needs the conflict key: ON CONFLICT (column, …)".into(),
                ));
            }
            // Without a conflict target, every key whose columns are all inserted.
            None => {
                let inserted: Vec<Vec<String>> = keys
                    .iter()
                    .filter(|key| key.iter().all(|c| columns.contains(c)))
                    .cloned()
                    .collect();
                if inserted.is_empty() {
                    return Err(EngineError::InvalidInput(format!(
                        "ON CONFLICT DO NOTHING: no key of {qualified} is among the inserted columns"
                    )));
                }
                inserted
            }
        };
        let mut on = Vec::with_capacity(conflict_keys.len());
        for key in &conflict_keys {
            let mut equal = Vec::with_capacity(key.len());
            for column in key {
                if !columns.contains(column) {
                    return Err(EngineError::InvalidInput(format!(
                        "ON CONFLICT key column '{column}' is not among the inserted columns"
                    )));
                }
                let column = quote(column);
                equal.push(format!("{target_alias}.{column} = excluded.{column}"));
            }
            on.push(format!("({})", equal.join(" AND ")));
        }

        let mut clauses = Vec::with_capacity(2);
        if let ast::OnConflictAction::DoUpdate(update) = &conflict.action {
            // Unqualified columns name the target's row; the proposed row is `excluded`.
            let qualify = |expr: &ast::Expr| {
                let mut expr = expr.clone();
                let _ = expr.visit(&mut QualifyTarget {
                    target: target_ident.clone(),
                    depth: 0,
                });
                expr.to_string()
            };
            let set = assignments(&update.assignments)?
                .into_iter()
                .map(|(column, value)| (column, qualify(&value)))
                .collect();
            if let Some(condition) = &update.selection {
                check_condition(condition)?;
            }
            clauses.push(Clause {
                when: When::Matched,
                condition: update.selection.as_ref().map(qualify),
                action: Action::Update(set),
            });
        }
        clauses.push(Clause {
            when: When::NotMatched,
            condition: None,
            action: Action::Insert {
                values: columns
                    .iter()
                    .map(|c| format!("excluded.{}", quote(c)))
                    .collect(),
                columns: columns.clone(),
            },
        });
        let excluded_columns: Vec<String> = columns.iter().map(|c| quote(c)).collect();
        let listed = excluded_columns.join(", ");
        let source = match (&conflict.action, conflict_keys.as_slice()) {
            // As in PostgreSQL, of proposed rows sharing a key DO NOTHING inserts the first
            // (a row with a NULL in the key conflicts with none).
            (ast::OnConflictAction::DoNothing, [key]) => {
                let key: Vec<String> = key.iter().map(|c| quote(c)).collect();
                let nulls: Vec<String> = key.iter().map(|c| format!("{c} IS NULL")).collect();
                format!(
                    "(SELECT {listed} FROM (SELECT *, row_number() OVER (PARTITION BY {} ORDER BY \
                     \"__minidb_ordinal\") AS \"__minidb_first\" FROM (SELECT *, row_number() \
                     OVER () AS \"__minidb_ordinal\" FROM ({query}) AS proposed({listed})) AS \
                     numbered) AS ranked WHERE \"__minidb_first\" = 1 OR {}) AS excluded({listed})",
                    key.join(", "),
                    nulls.join(" OR ")
                )
            }
            _ => format!("({query}) AS excluded({listed})"),
        };
        Ok(Self {
            statement: "INSERT … ON CONFLICT DO UPDATE",
            table,
            target,
            target_alias,
            source,
            source_alias: "excluded".into(),
            on: on.join(" OR "),
            clauses,
        })
    }

    /// The query that finds the rows to change: row address, acting clause, and every column's
    /// value under it (in table order).
    fn query(
        &self,
        columns: &[String],
        defaults: &serde_json::Map<String, serde_json::Value>,
    ) -> String {
        let target = &self.target_alias;
        let source = &self.source_alias;
        let mark = quote(SOURCE_MARK);
        let file = quote(FILE_INDEX_COLUMN);
        let conditions: Vec<String> = self
            .clauses
            .iter()
            .map(|clause| {
                let kind = match clause.when {
                    When::Matched => {
                        format!("{target}.{file} IS NOT NULL AND {source}.{mark} IS NOT NULL")
                    }
                    When::NotMatched => format!("{target}.{file} IS NULL"),
                    When::NotMatchedBySource => format!("{source}.{mark} IS NULL"),
                };
                match &clause.condition {
                    Some(condition) => format!("({kind}) AND ({condition})"),
                    None => kind,
                }
            })
            .collect();
        let mut clause_number = String::from("CASE");
        for (number, condition) in conditions.iter().enumerate() {
            clause_number.push_str(&format!(" WHEN {condition} THEN {}", number + 1));
        }
        clause_number.push_str(" ELSE 0 END");
        let mut items = vec![
            format!("{target}.{file} AS {file}"),
            format!("{target}.{row} AS {row}", row = quote(ROW_INDEX_COLUMN)),
            format!("{clause_number} AS {}", quote(CLAUSE_COLUMN)),
        ];
        for (index, column) in columns.iter().enumerate() {
            let own = format!("{target}.{}", quote(column));
            let mut value = String::from("CASE");
            for (clause, condition) in self.clauses.iter().zip(&conditions) {
                let default = || match defaults.get(column).and_then(|d| d.as_str()) {
                    Some(default) => format!("({default})"),
                    None => "NULL".into(),
                };
                let new = match &clause.action {
                    Action::Update(set) => match set.iter().find(|(c, _)| c == column) {
                        Some((_, value)) if is_default(value) => default(),
                        Some((_, value)) => format!("({value})"),
                        None => own.clone(),
                    },
                    Action::Delete => own.clone(),
                    Action::Insert {
                        columns: named,
                        values,
                    } => {
                        let position = if named.is_empty() {
                            Some(index)
                        } else {
                            named.iter().position(|c| c == column)
                        };
                        match position {
                            Some(position) if !is_default(&values[position]) => {
                                format!("({})", values[position])
                            }
                            _ => default(),
                        }
                    }
                };
                value.push_str(&format!(" WHEN {condition} THEN {new}"));
            }
            value.push_str(" END");
            items.push(format!("{value} AS {}", quote(column)));
        }
        let has = |when| self.clauses.iter().any(|c| c.when == when);
        let join = match (has(When::NotMatched), has(When::NotMatchedBySource)) {
            (true, true) => "FULL JOIN",
            (true, false) => "RIGHT JOIN",
            (false, true) => "LEFT JOIN",
            (false, false) => "JOIN",
        };
        format!(
            "SELECT * FROM (SELECT {} FROM {} {join} (SELECT *, TRUE AS {mark} FROM {}) AS {source} \
             ON {}) AS \"__minidb_merge\" WHERE {} > 0",
            items.join(", "),
            self.target,
            self.source,
            self.on,
            quote(CLAUSE_COLUMN),
        )
    }

    /// Checks the columns the clauses name against the table's.
    fn check_columns(&self, columns: &[String], qualified: &str) -> Result<(), EngineError> {
        for clause in &self.clauses {
            let (named, values): (Vec<&String>, usize) = match &clause.action {
                Action::Update(set) => (set.iter().map(|(c, _)| c).collect(), set.len()),
                Action::Delete => continue,
                Action::Insert {
                    columns: named,
                    values,
                } if named.is_empty() => {
                    if values.len() != columns.len() {
                        return Err(EngineError::InvalidInput(format!(
                            "INSERT VALUES has {} values and {qualified} has {} columns",
                            values.len(),
                            columns.len()
                        )));
                    }
                    continue;
                }
                Action::Insert {
                    columns: named,
                    values,
                } => (named.iter().collect(), values.len()),
            };
            if named.len() != values {
                return Err(EngineError::InvalidInput(format!(
                    "INSERT names {} columns and gives {values} values",
                    named.len()
                )));
            }
            for column in named {
                if !columns.contains(column) {
                    return Err(EngineError::InvalidInput(format!(
                        "column '{column}' does not exist in table {qualified}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The columns whose values the statement may change (keys among them are checked).
    fn changed<'a>(&'a self, columns: &'a [String]) -> HashSet<&'a str> {
        let mut changed = HashSet::new();
        for clause in &self.clauses {
            match &clause.action {
                Action::Update(set) => changed.extend(set.iter().map(|(c, _)| c.as_str())),
                Action::Delete => {}
                Action::Insert { .. } => changed.extend(columns.iter().map(String::as_str)),
            }
        }
        changed
    }

    /// The columns its UPDATE clauses assign: the keys it can change (an insert removes none).
    fn updated(&self) -> HashSet<&str> {
        let mut updated = HashSet::new();
        for clause in &self.clauses {
            if let Action::Update(set) = &clause.action {
                updated.extend(set.iter().map(|(c, _)| c.as_str()));
            }
        }
        updated
    }
}

impl Engine {
    pub(super) async fn merge(
        &self,
        session: &Session,
        merge: &ast::Merge,
    ) -> Result<Outcome, EngineError> {
        let merge = Merge::new(merge)?;
        let target = self.write_target(session, &merge.table).await?;
        let counts = self.execute_merge(session, &merge, target).await?;
        Ok(Outcome::Merged {
            table: merge.table.table,
            inserted: counts.inserted,
            updated: counts.updated,
            deleted: counts.deleted,
        })
    }

    /// `INSERT … ON CONFLICT`: answers as an INSERT, counting the rows inserted or updated.
    pub(super) async fn upsert(
        &self,
        session: &Session,
        insert: &ast::Insert,
    ) -> Result<Outcome, EngineError> {
        let ast::TableObject::TableName(name) = &insert.table else {
            return Err(unsupported(&format!("INSERT INTO {}", insert.table)));
        };
        let name = table_name(name)?;
        let target = self.write_target(session, &name).await?;
        let merge = Merge::upsert(insert, name, &target.snapshot)?;
        let table = merge.table.table.clone();
        let counts = self.execute_merge(session, &merge, target).await?;
        Ok(Outcome::Inserted {
            table,
            rows: counts.inserted + counts.updated,
        })
    }

    async fn execute_merge(
        &self,
        session: &Session,
        merge: &Merge,
        target: WriteTarget,
    ) -> Result<Counts, EngineError> {
        let qualified = format!("{}.{}", target.database, target.table);
        let schema = Arc::clone(target.snapshot.schema());
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        merge.check_columns(&columns, &qualified)?;
        let defaults = declared(&target.snapshot, DEFAULTS_PROPERTY)?.unwrap_or_default();
        let (plan, state, store_url) = self
            .plan_on_target(session, &target, &merge.query(&columns, &defaults))
            .await?;
        let outputs = plan.schema().columns();
        let mut exprs: Vec<Expr> = outputs[..2].iter().cloned().map(Expr::Column).collect();
        exprs.push(cast(Expr::Column(outputs[2].clone()), DataType::Int64).alias(CLAUSE_COLUMN));
        for (output, field) in outputs[3..].iter().zip(schema.fields()) {
            exprs.push(store(Expr::Column(output.clone()), field).alias(field.name()));
        }
        let plan = LogicalPlanBuilder::from(plan).project(exprs)?.build()?;
        let physical = state.create_physical_plan(&plan).await?;

        let changed = merge.changed(&columns);
        let mut mutation = Mutation::new(
            Arc::clone(&target.handle),
            target.writer.clone(),
            Arc::clone(&target.snapshot),
            store_url.clone(),
            &changed,
            Arc::clone(&target.references) as Arc<dyn ReferencedTables>,
        )?;
        let mut counts = Counts::default();
        let values: Vec<usize> = (3..3 + columns.len()).collect();
        let mut stream = execute_stream(physical, task_context(&state)?)?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let numbers = batch.column(2).as_primitive::<Int64Type>();
            let mut deletes = Vec::with_capacity(batch.num_rows());
            let mut adds = Vec::with_capacity(batch.num_rows());
            for number in numbers.values() {
                let action = usize::try_from(*number - 1)
                    .ok()
                    .and_then(|i| merge.clauses.get(i))
                    .map(|clause| &clause.action)
                    .ok_or_else(|| {
                        DataFusionError::Internal(format!("no MERGE clause {number}"))
                    })?;
                match action {
                    Action::Update(_) => counts.updated += 1,
                    Action::Delete => counts.deleted += 1,
                    Action::Insert { .. } => counts.inserted += 1,
                }
                deletes.push(action.deletes());
                adds.push(action.adds());
            }
            let removed = filter_record_batch(&batch, &BooleanArray::from(deletes))
                .map_err(DataFusionError::from)?;
            if mutation.delete(removed.column(0), removed.column(1))? > 0 {
                return Err(EngineError::InvalidInput(format!(
                    "{} cannot affect a row a second time: a row of {qualified} matches more \
                     than one source row (make the source unique on the ON columns)",
                    merge.statement
                )));
            }
            let added = filter_record_batch(&batch, &BooleanArray::from(adds))
                .map_err(DataFusionError::from)?;
            mutation
                .insert(added.project(&values).map_err(DataFusionError::from)?)
                .await?;
        }
        mutation.report("numTargetRowsInserted", counts.inserted);
        mutation.report("numTargetRowsUpdated", counts.updated);
        mutation.report("numTargetRowsDeleted", counts.deleted);
        mutation.report("numOutputRows", counts.inserted + counts.updated);
        let context = task_context(&state)?;
        let cascades = self
            .referencing_changes(
                &state,
                &target,
                &mutation,
                &merge.updated(),
                false,
                &store_url,
            )
            .await?;
        cascades.commit(&context).await?;
        mutation
            .commit("MERGE", Some(merge.on.clone()), context)
            .await?;
        Ok(counts)
    }
}

/// Qualifies the unqualified column names of an `ON CONFLICT … DO UPDATE` expression with the
/// target's name, outside subqueries (whose names are their own); `DEFAULT` stays as it is.
struct QualifyTarget {
    target: ast::Ident,
    /// How many queries deep the visit is.
    depth: usize,
}

impl VisitorMut for QualifyTarget {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &mut ast::Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut ast::Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut ast::Expr) -> ControlFlow<()> {
        if self.depth == 0
            && let ast::Expr::Identifier(ident) = expr
            && !is_default(&ident.to_string())
        {
            *expr = ast::Expr::CompoundIdentifier(vec![self.target.clone(), ident.clone()]);
        }
        ControlFlow::Continue(())
    }
}

/// Whether a value as written is the keyword `DEFAULT` (the column's default, or NULL).
fn is_default(value: &str) -> bool {
    value.eq_ignore_ascii_case("DEFAULT")
}

/// Refuses a WHEN condition that calls a volatile function: the condition is evaluated once to
/// choose the clause and again for each column's value, which must agree.
fn check_condition(condition: &ast::Expr) -> Result<(), EngineError> {
    let mut volatile = None;
    let _ = ast::visit_expressions(condition, |expr| {
        if let ast::Expr::Function(function) = expr {
            let name = function.name.to_string().to_lowercase();
            if matches!(name.as_str(), "random" | "uuid") {
                volatile = Some(name);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    match volatile {
        Some(name) => Err(unsupported(&format!(
            "{name}() in a WHEN condition (a condition must give the same answer each time it is evaluated)"
        ))),
        None => Ok(()),
    }
}

/// `SET column = value, …` with the values as SQL text.
fn text_assignments(list: &[ast::Assignment]) -> Result<Vec<(String, String)>, EngineError> {
    Ok(assignments(list)?
        .into_iter()
        .map(|(column, value)| (column, value.to_string()))
        .collect())
}

/// `INSERT [(columns)] VALUES (values)` of a `WHEN NOT MATCHED` clause.
fn insert_action(insert: &ast::MergeInsertExpr) -> Result<Action, EngineError> {
    if insert.insert_predicate.is_some() {
        return Err(unsupported(
            "INSERT … WHERE inside MERGE (use WHEN NOT MATCHED AND …)",
        ));
    }
    let ast::MergeInsertKind::Values(values) = &insert.kind else {
        return Err(unsupported("INSERT ROW inside MERGE"));
    };
    let [row] = values.rows.as_slice() else {
        return Err(EngineError::InvalidInput(
            "INSERT inside MERGE takes one row of VALUES".into(),
        ));
    };
    let mut columns = Vec::with_capacity(insert.columns.len());
    for column in &insert.columns {
        let Some(ast::ObjectNamePart::Identifier(ident)) = column.0.last() else {
            return Err(EngineError::InvalidInput(format!(
                "bad column name {column}"
            )));
        };
        columns.push(normalize(ident));
    }
    Ok(Action::Insert {
        columns,
        values: row.iter().map(ToString::to_string).collect(),
    })
}

/// The table's keys: its primary key first, then its UNIQUE constraints and unique indexes.
fn table_keys(snapshot: &Snapshot) -> Result<Vec<Vec<String>>, EngineError> {
    let mut keys: Vec<Vec<String>> = Vec::new();
    if let Some(primary) = declared::<Vec<String>>(snapshot, PRIMARY_KEY_PROPERTY)? {
        keys.push(primary);
    }
    keys.extend(declared::<Vec<Vec<String>>>(snapshot, UNIQUE_PROPERTY)?.unwrap_or_default());
    for index in table_indexes(snapshot).map_err(CatalogError::from)? {
        if index.unique && !keys.contains(&index.columns) {
            keys.push(index.columns);
        }
    }
    Ok(keys)
}

/// `database.table` (or `table`), quoted.
fn quote_name(name: &TableName) -> String {
    match &name.database {
        Some(database) => format!("{}.{}", quote(database), quote(&name.table)),
        None => quote(&name.table),
    }
}

fn unsupported(what: &str) -> EngineError {
    EngineError::NotSupported(what.to_string())
}
