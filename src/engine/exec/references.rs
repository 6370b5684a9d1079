//! Foreign keys from the parent's side: what a DELETE, UPDATE or MERGE that takes keys out of a
//! table does to the child rows that reference them.
//!
//! Before the parent's [`Mutation`] commits, [`Engine::referencing_changes`] reads the keys it
//! removes (values of deleted rows that no new row has again) and, for each child table's
//! foreign key on the parent:
//! - `NO ACTION` / `RESTRICT` (and any key whose columns the statement assigns, since MiniDB has
//!   no `ON UPDATE` actions): fails if a child row still holds one, found through the child's
//!   index on its key columns;
//! - `CASCADE` / `SET NULL`: plans the child's own change (rows found by their first key column,
//!   through the same index, then matched exactly), which may in turn remove keys of the child
//!   that grandchildren reference, handled the same way.
//!
//! The children's changes commit first, deepest first, then the parent's: a failure in between
//! leaves child rows deleted or set to NULL but never a row that references a missing key.
//! Inside a transaction they are staged like any statement's changes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::row::{RowConverter, SortField};
use datafusion::common::{Column, DataFusionError, ScalarValue};
use datafusion::datasource::provider_as_source;
use datafusion::execution::TaskContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, lit};
use datafusion::physical_plan::execute_stream;
use futures::StreamExt;
use futures::future::BoxFuture;

use super::dml::WriteTarget;
use super::{Engine, EngineError};
use crate::catalog::StatementReferences;
use crate::engine::running::task_context;
use crate::table::foreign_keys::{
    ForeignKey, OnDelete, ReferencedTable, ReferencedTables, foreign_keys, lock_order,
    referenced_by, still_referenced,
};
use crate::table::{
    DeltaTableProvider, FILE_INDEX_COLUMN, KeyChecker, Mutation, ROW_INDEX_COLUMN, key_text,
};

/// The changes a statement makes to child tables by `ON DELETE CASCADE | SET NULL`, in the order
/// they commit.
#[derive(Default)]
pub(super) struct Cascades {
    changes: Vec<(Mutation, &'static str, String)>,
    /// The child tables changed, held (and locked) until their commits.
    _opened: Vec<Arc<ReferencedTable>>,
}

impl Cascades {
    /// Commits (or stages) each child table's change.
    pub async fn commit(self, context: &Arc<TaskContext>) -> Result<(), EngineError> {
        for (mutation, operation, predicate) in self.changes {
            mutation
                .commit(operation, Some(predicate), Arc::clone(context))
                .await?;
        }
        Ok(())
    }
}

/// What the statement that changes a parent does to its rows.
#[derive(Clone, Copy)]
struct ParentChange<'a> {
    /// The columns it assigns (none for a DELETE).
    assigned: &'a HashSet<&'a str>,
    /// True for an UPDATE: every row it deletes comes back with new values, so a key none of
    /// whose columns it assigns cannot go away.
    replaces_rows: bool,
}

impl Engine {
    /// Checks and plans what `mutation` of `target` (assigning the `assigned` columns; an UPDATE
    /// when `replaces_rows`) does to the rows that reference the keys it removes; fails when a
    /// NO ACTION or RESTRICT key is still referenced. Commit the result before `mutation`.
    pub(super) async fn referencing_changes(
        &self,
        state: &SessionState,
        target: &WriteTarget,
        mutation: &Mutation,
        assigned: &HashSet<&str>,
        replaces_rows: bool,
        store_url: &ObjectStoreUrl,
    ) -> Result<Cascades, EngineError> {
        let mut cascades = Cascades::default();
        let parent = format!("{}.{}", target.database, target.table);
        let mut changed_tables = HashSet::from([parent.clone()]);
        let change = ParentChange {
            assigned,
            replaces_rows,
        };
        self.reference_actions(
            state,
            &target.references,
            &parent,
            mutation,
            change,
            store_url,
            &mut changed_tables,
            &mut cascades,
        )
        .await?;
        Ok(cascades)
    }

    /// The foreign key work for the keys `mutation` takes out of `parent`, added to `out`.
    #[allow(clippy::too_many_arguments)]
    fn reference_actions<'a>(
        &'a self,
        state: &'a SessionState,
        references: &'a Arc<StatementReferences>,
        parent: &'a str,
        mutation: &'a Mutation,
        change: ParentChange<'a>,
        store_url: &'a ObjectStoreUrl,
        changed_tables: &'a mut HashSet<String>,
        out: &'a mut Cascades,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let mut children = referenced_by(mutation.snapshot())?;
            if children.is_empty() {
                return Ok(());
            }
            lock_order(references.as_ref(), &mut children).await?;
            let context = task_context(state)?;
            let mut removed: HashMap<Vec<String>, Vec<Vec<ArrayRef>>> = HashMap::new();
            for child_name in children {
                // Checks read the child unlocked: its writers hold this parent's lock.
                let Some(child) = references.read(&child_name).await? else {
                    continue;
                };
                let keys = foreign_keys(&child.snapshot)?;
                for key in keys.iter().filter(|k| k.parent == parent) {
                    let assigns = key
                        .parent_columns
                        .iter()
                        .any(|c| change.assigned.contains(c.as_str()));
                    if change.replaces_rows && !assigns {
                        continue;
                    }
                    let keys_removed = match removed.get(&key.parent_columns) {
                        Some(keys) => keys.clone(),
                        None => {
                            let keys = mutation.removed_keys(&key.parent_columns, &context).await?;
                            removed.insert(key.parent_columns.clone(), keys.clone());
                            keys
                        }
                    };
                    if keys_removed.is_empty() {
                        continue;
                    }
                    let action = if assigns {
                        OnDelete::NoAction
                    } else {
                        key.on_delete
                    };
                    if matches!(action, OnDelete::NoAction | OnDelete::Restrict) {
                        let mut found = KeyChecker::for_columns(
                            &child.snapshot,
                            "FOREIGN KEY",
                            key.columns.clone(),
                        )?;
                        for columns in &keys_removed {
                            found.add_keys(columns)?;
                        }
                        let existing = found
                            .find_existing(
                                &child.snapshot,
                                &child.handle,
                                store_url.clone(),
                                Arc::clone(&context),
                            )
                            .await?;
                        if let Some((columns, row)) = existing {
                            let key_values = key_text(&columns, row);
                            return Err(
                                still_referenced(parent, key, &child_name, &key_values).into()
                            );
                        }
                        continue;
                    }
                    if !changed_tables.insert(child_name.clone()) {
                        return Err(EngineError::NotSupported(format!(
                            "ON DELETE {} reaching table {child_name} a second time in one \
                             statement (by two foreign keys, or two paths of them)",
                            action.sql()
                        )));
                    }
                    let set_null = action == OnDelete::SetNull;
                    // Changing the child needs its lock, and its newest commit under it.
                    let Some(child) = references.open(&child_name).await? else {
                        continue;
                    };
                    let child_change = self
                        .referencing_rows(
                            state,
                            references,
                            &child,
                            &child_name,
                            key,
                            &keys_removed,
                            set_null,
                            store_url,
                        )
                        .await?;
                    let nulled: HashSet<&str> = if set_null {
                        key.columns.iter().map(String::as_str).collect()
                    } else {
                        HashSet::new()
                    };
                    let grandchildren = ParentChange {
                        assigned: &nulled,
                        replaces_rows: set_null,
                    };
                    self.reference_actions(
                        state,
                        references,
                        &child_name,
                        &child_change,
                        grandchildren,
                        store_url,
                        changed_tables,
                        out,
                    )
                    .await?;
                    let operation = if set_null { "UPDATE" } else { "DELETE" };
                    let predicate = format!(
                        "ON DELETE {} of foreign key {} on {parent}",
                        action.sql(),
                        key.name
                    );
                    out.changes.push((child_change, operation, predicate));
                    out._opened.push(Arc::clone(&child));
                }
            }
            Ok(())
        })
    }

    /// The change of `child` that deletes (or, with `set_null`, sets `key`'s columns to NULL in)
    /// the rows whose `key` is one of `removed`.
    #[allow(clippy::too_many_arguments)]
    async fn referencing_rows(
        &self,
        state: &SessionState,
        references: &Arc<StatementReferences>,
        child: &ReferencedTable,
        child_name: &str,
        key: &ForeignKey,
        removed: &[Vec<ArrayRef>],
        set_null: bool,
        store_url: &ObjectStoreUrl,
    ) -> Result<Mutation, EngineError> {
        let schema = Arc::clone(child.snapshot.schema());
        let column = |name: &str| Expr::Column(Column::new_unqualified(name));
        let key_types = key
            .columns
            .iter()
            .map(|c| {
                Ok(SortField::new(
                    schema.field_with_name(c)?.data_type().clone(),
                ))
            })
            .collect::<Result<Vec<_>, DataFusionError>>()?;
        let converter = RowConverter::new(key_types).map_err(DataFusionError::from)?;
        let mut wanted: HashSet<Box<[u8]>> = HashSet::new();
        let mut firsts: HashSet<ScalarValue> = HashSet::new();
        for columns in removed {
            let rows = converter
                .convert_columns(columns)
                .map_err(DataFusionError::from)?;
            wanted.extend(rows.iter().map(|row| Box::<[u8]>::from(row.as_ref())));
            for i in 0..columns[0].len() {
                firsts.insert(ScalarValue::try_from_array(&columns[0], i)?);
            }
        }
        // The first key column's values let the child's index on the key find the rows; the
        // whole key is matched below.
        let filter = column(&key.columns[0]).in_list(firsts.into_iter().map(lit).collect(), false);
        let mut exprs = vec![column(FILE_INDEX_COLUMN), column(ROW_INDEX_COLUMN)];
        if set_null {
            for field in schema.fields() {
                exprs.push(if key.columns.contains(field.name()) {
                    lit(ScalarValue::try_from(field.data_type())?).alias(field.name())
                } else {
                    column(field.name())
                });
            }
        }
        let key_start = exprs.len();
        for (i, name) in key.columns.iter().enumerate() {
            exprs.push(column(name).alias(format!("__minidb_key_{i}")));
        }
        let provider = DeltaTableProvider::new(
            child_name.to_string(),
            Arc::clone(&child.handle),
            Arc::clone(&child.snapshot),
            store_url.clone(),
        )
        .with_row_addresses();
        let plan =
            LogicalPlanBuilder::scan(child_name, provider_as_source(Arc::new(provider)), None)?
                .filter(filter)?
                .project(exprs)?
                .build()?;
        let physical = state.create_physical_plan(&plan).await?;
        let assigned: HashSet<&str> = if set_null {
            key.columns.iter().map(String::as_str).collect()
        } else {
            HashSet::new()
        };
        let mut mutation = Mutation::new(
            Arc::clone(&child.handle),
            child.writer.clone(),
            Arc::clone(&child.snapshot),
            store_url.clone(),
            &assigned,
            Arc::clone(references) as Arc<dyn ReferencedTables>,
        )?;
        let values: Vec<usize> = (2..key_start).collect();
        let mut stream = execute_stream(physical, task_context(state)?)?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let rows = converter
                .convert_columns(&batch.columns()[key_start..])
                .map_err(DataFusionError::from)?;
            let matches: BooleanArray = rows
                .iter()
                .map(|row| Some(wanted.contains(row.as_ref())))
                .collect();
            let batch = filter_record_batch(&batch, &matches).map_err(DataFusionError::from)?;
            if batch.num_rows() == 0 {
                continue;
            }
            mutation.delete(batch.column(0), batch.column(1))?;
            if set_null {
                let nulled = batch.project(&values).map_err(DataFusionError::from)?;
                mutation.insert(nulled).await?;
            }
        }
        Ok(mutation)
    }
}
