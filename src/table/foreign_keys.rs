//! FOREIGN KEY: the declarations, and the check that a write's new rows reference existing keys.
//!
//! A child table lists its foreign keys in [`FOREIGN_KEYS_PROPERTY`]; the parent lists the child
//! tables that may reference it in [`REFERENCED_BY_PROPERTY`], written before the child table is
//! created, so a parent always knows every child that can exist (an entry whose table is gone or
//! no longer declares a key on the parent is ignored). The referenced columns are the parent's
//! PRIMARY KEY or a UNIQUE key, which has an index; the child gets an index on its foreign key
//! columns when it is created. So both directions of a check are index probes:
//!
//! - a write of child rows (INSERT, an UPDATE of key columns, MERGE) looks up each distinct new
//!   key in the parent before its commit ([`ChildKeys`]);
//! - a write that removes parent keys (DELETE, an UPDATE of key columns, MERGE) looks them up in
//!   each child and, per the key's `ON DELETE` action, fails, deletes the child rows or sets
//!   their key to NULL (the engine does that part, since it plans the child's changes).
//!
//! Concurrency: the tables a check reads are opened through [`ReferencedTables`], which in
//! pessimistic mode takes their writer locks until the statement ends (in a transaction, until
//! it ends), ancestors before descendants. A writer of child rows checks and commits while holding
//! the parent's lock, and a writer of the parent holds it from reading the rows it changes to
//! its commit, so the two take turns and neither can leave an orphan (the parent's writer reads
//! the children without locking them, unless it changes them). In optimistic mode there
//! are no locks: each check sees the newest commit, but a concurrent writer on another server
//! can slip between the check and the commit.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::row::{RowConverter, SortField};
use async_trait::async_trait;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::execution::TaskContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::constraints::key_text;
use super::damage::execute_naming_damage;
use super::error::external;
use super::index::{INDEXES_PROPERTY, IndexDef, KeyCodec, Probe, table_indexes};
use super::properties::declared;
use super::pruning::scalar_from_json;
use super::scan::{ParquetScan, live_file, parquet_scan};
use super::{TableError, TableHandle, Writer, WriterLock};
use crate::txlog::{Action, Add, FileStats, Operation, Snapshot, physical_name};

/// Table property of a child table: its foreign keys, a JSON array of [`ForeignKey`].
pub const FOREIGN_KEYS_PROPERTY: &str = "minidb.foreignKeys";

/// Table property of a parent table: the child tables (`database.table`) that may reference it.
pub const REFERENCED_BY_PROPERTY: &str = "minidb.referencedBy";

/// Most distinct new keys a write looks up in the parent's index one by one; a larger write
/// reads the key columns of the parent's files whose key range overlaps its own instead.
const MAX_PROBED_KEYS: usize = 10_000;

/// What a DELETE of a referenced parent row does to the rows that reference it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnDelete {
    /// Refuse (the default).
    #[serde(rename = "NO ACTION")]
    NoAction,
    /// Refuse; MiniDB checks every key at the end of each statement, so the same as NO ACTION.
    #[serde(rename = "RESTRICT")]
    Restrict,
    /// Delete the referencing rows too, in the same statement.
    #[serde(rename = "CASCADE")]
    Cascade,
    /// Set the referencing rows' key columns to NULL.
    #[serde(rename = "SET NULL")]
    SetNull,
}

impl OnDelete {
    /// The action as SQL writes it.
    pub fn sql(self) -> &'static str {
        match self {
            OnDelete::NoAction => "NO ACTION",
            OnDelete::Restrict => "RESTRICT",
            OnDelete::Cascade => "CASCADE",
            OnDelete::SetNull => "SET NULL",
        }
    }
}

/// One foreign key of a child table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForeignKey {
    /// The constraint's name, unique among the child table's constraints.
    pub name: String,
    /// The child's columns, in the order of `parent_columns`.
    pub columns: Vec<String>,
    /// The parent table, `database.table`.
    pub parent: String,
    /// The parent's PRIMARY KEY or UNIQUE key columns, in the key's order.
    pub parent_columns: Vec<String>,
    pub on_delete: OnDelete,
}

/// The foreign keys `snapshot`'s table declares.
pub fn foreign_keys(snapshot: &Snapshot) -> Result<Vec<ForeignKey>> {
    Ok(declared(snapshot, FOREIGN_KEYS_PROPERTY)?.unwrap_or_default())
}

/// The tables that may reference `snapshot`'s table (see [`REFERENCED_BY_PROPERTY`]).
pub fn referenced_by(snapshot: &Snapshot) -> Result<Vec<String>> {
    Ok(declared(snapshot, REFERENCED_BY_PROPERTY)?.unwrap_or_default())
}

/// Removes foreign keys from a table configuration being copied to a new table (`LIKE`, `CLONE`):
/// the copy neither references the parents (they do not list it) nor is referenced. The index
/// a foreign key had stays, as a plain index.
pub fn without_foreign_keys(configuration: &mut HashMap<String, Option<String>>) {
    configuration.remove(FOREIGN_KEYS_PROPERTY);
    configuration.remove(REFERENCED_BY_PROPERTY);
    let Some(Some(json)) = configuration.get(INDEXES_PROPERTY) else {
        return;
    };
    let Ok(mut indexes) = serde_json::from_str::<Vec<IndexDef>>(json) else {
        return;
    };
    for index in &mut indexes {
        if index.constraint.as_deref() == Some(FOREIGN_KEY_INDEX) {
            index.constraint = None;
        }
    }
    let json = serde_json::to_string(&indexes).expect("index definitions serialise");
    configuration.insert(INDEXES_PROPERTY.to_string(), Some(json));
}

/// The constraint kind of the index a child table gets on its foreign key columns.
pub const FOREIGN_KEY_INDEX: &str = "FOREIGN KEY";

/// Lists `child` among the tables that reference the parent behind `handle`, in a commit of the
/// parent's metadata unless it is listed already. The caller holds the parent's writer lock.
pub async fn list_child(handle: &TableHandle, child: &str) -> Result<()> {
    change_children(handle, "ADD FOREIGN KEY REFERENCE", |children| {
        if children.iter().any(|c| c == child) {
            return false;
        }
        children.push(child.to_string());
        true
    })
    .await
}

/// Takes `child` off the list of tables that reference the parent behind `handle` (the child is
/// dropped). The caller holds the parent's writer lock.
pub async fn unlist_child(handle: &TableHandle, child: &str) -> Result<()> {
    change_children(handle, "DROP FOREIGN KEY REFERENCE", |children| {
        let before = children.len();
        children.retain(|c| c != child);
        children.len() != before
    })
    .await
}

async fn change_children(
    handle: &TableHandle,
    operation: &str,
    change: impl FnOnce(&mut Vec<String>) -> bool,
) -> Result<()> {
    let snapshot = handle.refresh().await.map_err(external)?;
    let mut children = referenced_by(&snapshot)?;
    if !change(&mut children) {
        return Ok(());
    }
    let mut metadata = snapshot.metadata().clone();
    if children.is_empty() {
        metadata.configuration.remove(REFERENCED_BY_PROPERTY);
    } else {
        let json = serde_json::to_string(&children).expect("table names serialise");
        metadata
            .configuration
            .insert(REFERENCED_BY_PROPERTY.to_string(), Some(json));
    }
    let operation = Operation {
        name: operation.to_string(),
        parameters: HashMap::new(),
        metrics: HashMap::new(),
        blind_append: false,
    };
    handle
        .commit(&snapshot, operation, vec![Action::Metadata(metadata)])
        .await
        .map_err(external)?;
    Ok(())
}

/// A table a statement's foreign key work reads or changes, opened once per statement: the
/// snapshot the statement's writes are based on, where they go, and in pessimistic mode outside
/// a transaction the writer lock that keeps that snapshot the newest until the statement ends.
#[derive(Debug)]
pub struct ReferencedTable {
    pub handle: Arc<TableHandle>,
    pub snapshot: Arc<Snapshot>,
    pub writer: Writer,
    pub _turn: Option<WriterLock>,
}

/// Opens the tables a statement's foreign key checks and actions need.
#[async_trait]
pub trait ReferencedTables: Send + Sync + fmt::Debug {
    /// `qualified` (`database.table`) as the statement's writes see it; `None` when no such
    /// table exists. Opening the same table twice in a statement returns the first opening.
    async fn open(&self, qualified: &str) -> Result<Option<Arc<ReferencedTable>>>;

    /// `qualified` as [`ReferencedTables::open`] would give it, but outside a transaction
    /// without taking its writer lock: for a check that locks the statement already holds keep
    /// true (a parent's writer reading a child, whose writers all hold the parent's lock).
    async fn read(&self, qualified: &str) -> Result<Option<Arc<ReferencedTable>>>;

    /// How deep `qualified` sits among foreign keys: 0 without any, else one more than its
    /// deepest parent. Writers lock tables by increasing depth (then name), so ancestors before
    /// descendants and never in a ring.
    async fn depth(&self, qualified: &str) -> Result<usize>;
}

/// Sorts `tables` into the order their writer locks are taken in (see
/// [`ReferencedTables::depth`]), without duplicates.
pub async fn lock_order(references: &dyn ReferencedTables, tables: &mut Vec<String>) -> Result<()> {
    tables.sort_unstable();
    tables.dedup();
    if tables.len() < 2 {
        return Ok(());
    }
    let mut ordered = Vec::with_capacity(tables.len());
    for table in tables.drain(..) {
        ordered.push((references.depth(&table).await?, table));
    }
    ordered.sort();
    tables.extend(ordered.into_iter().map(|(_, table)| table));
    Ok(())
}

/// One foreign key of a write's target and the distinct keys its new rows hold.
#[derive(Debug)]
struct NewKeys {
    key: ForeignKey,
    indices: Vec<usize>,
    converter: RowConverter,
    /// Each distinct key without NULLs, and where it was first seen (batch, row).
    distinct: HashMap<Box<[u8]>, (usize, usize)>,
    /// The key columns of each batch that brought a new distinct key.
    batches: Vec<Vec<ArrayRef>>,
}

/// The foreign keys of a write's new rows, checked against the parent tables before it commits.
#[derive(Debug)]
pub struct ChildKeys {
    table: String,
    keys: Vec<NewKeys>,
}

impl ChildKeys {
    /// The foreign keys of `table` (as of `snapshot`) that a write changing the `changed`
    /// columns must check (every one for `None`, an INSERT).
    pub fn for_table(
        table: &str,
        snapshot: &Snapshot,
        changed: Option<&dyn Fn(&str) -> bool>,
    ) -> Result<Self> {
        let schema = snapshot.schema();
        let mut keys = Vec::new();
        for key in foreign_keys(snapshot)? {
            if let Some(changed) = changed
                && !key.columns.iter().any(|c| changed(c))
            {
                continue;
            }
            let indices = key
                .columns
                .iter()
                .map(|c| schema.index_of(c))
                .collect::<Result<Vec<_>, _>>()?;
            let fields = indices
                .iter()
                .map(|i| SortField::new(schema.field(*i).data_type().clone()))
                .collect();
            keys.push(NewKeys {
                key,
                indices,
                converter: RowConverter::new(fields)?,
                distinct: HashMap::new(),
                batches: Vec::new(),
            });
        }
        Ok(Self {
            table: table.to_string(),
            keys,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Records the keys of new rows (in the table's schema).
    pub fn add_new(&mut self, batch: &RecordBatch) -> Result<()> {
        for key in &mut self.keys {
            let columns: Vec<ArrayRef> = key
                .indices
                .iter()
                .map(|i| Arc::clone(batch.column(*i)))
                .collect();
            let rows = key.converter.convert_columns(&columns)?;
            let number = key.batches.len();
            let mut kept = false;
            for (i, row) in rows.iter().enumerate() {
                if columns.iter().any(|c| c.is_null(i)) {
                    continue;
                }
                if !key.distinct.contains_key(row.as_ref()) {
                    key.distinct.insert(row.as_ref().into(), (number, i));
                    kept = true;
                }
            }
            if kept {
                key.batches.push(columns);
            }
        }
        Ok(())
    }

    /// Fails, naming the constraint and the key, unless every new key exists in its parent.
    /// Returns the parent tables it opened: the caller keeps them until its commit, so the keys
    /// stay there.
    pub async fn check(
        &self,
        references: &dyn ReferencedTables,
        store_url: &ObjectStoreUrl,
        context: &Arc<TaskContext>,
    ) -> Result<Vec<Arc<ReferencedTable>>> {
        let mut parents: Vec<String> = self
            .keys
            .iter()
            .filter(|k| !k.distinct.is_empty())
            .map(|k| k.key.parent.clone())
            .collect();
        lock_order(references, &mut parents).await?;
        let mut opened = HashMap::new();
        for parent in parents {
            let table = references.open(&parent).await?.ok_or_else(|| {
                TableError::Invalid(format!(
                    "the table {parent} that {} references does not exist",
                    self.table
                ))
            })?;
            opened.insert(parent, table);
        }
        for key in self.keys.iter().filter(|k| !k.distinct.is_empty()) {
            let parent = &opened[key.key.parent.as_str()];
            if let Some((b, i)) = first_missing(parent, key, store_url, context).await? {
                return Err(TableError::Invalid(format!(
                    "insert or update on table {} violates foreign key {}: key ({})=({}) is not \
                     present in table {}",
                    self.table,
                    key.key.name,
                    key.key.columns.join(", "),
                    key_text(&key.batches[b], i),
                    key.key.parent
                ))
                .into());
            }
        }
        Ok(opened.into_values().collect())
    }
}

/// The first (in the order the write met them) of `keys`' distinct keys that no live row of
/// `parent` has, as (batch, row); `None` when all exist.
async fn first_missing(
    parent: &ReferencedTable,
    keys: &NewKeys,
    store_url: &ObjectStoreUrl,
    context: &Arc<TaskContext>,
) -> Result<Option<(usize, usize)>> {
    let snapshot = &parent.snapshot;
    let schema = snapshot.schema();
    let columns = &keys.key.parent_columns;
    let indices = columns
        .iter()
        .map(|c| schema.index_of(c))
        .collect::<Result<Vec<_>, _>>()?;
    let first = schema.field(indices[0]);
    let bound = |stats: &FileStats, max: bool| {
        let values = if max {
            &stats.max_values
        } else {
            &stats.min_values
        };
        values
            .get(physical_name(first))
            .and_then(|v| scalar_from_json(v, first.data_type(), max))
    };
    let files: Vec<(&Add, &FileStats, Option<ScalarValue>, Option<ScalarValue>)> = snapshot
        .files_with_stats()
        .map(|(add, stats)| (add, stats, bound(stats, false), bound(stats, true)))
        .collect();
    let may_hold = |lo: &Option<ScalarValue>, hi: &Option<ScalarValue>, value: &ScalarValue| {
        !(lo.as_ref().is_some_and(|lo| value < lo) || hi.as_ref().is_some_and(|hi| value > hi))
    };

    // Keys no index lookup found, and the files that could still hold them.
    let mut pending: HashMap<&[u8], (usize, usize)> = HashMap::new();
    let mut to_scan: BTreeSet<usize> = BTreeSet::new();
    let indexes = table_indexes(snapshot).map_err(TableError::from)?;
    let index = indexes.iter().find(|i| &i.columns == columns);
    match index {
        Some(index) if keys.distinct.len() <= MAX_PROBED_KEYS => {
            let types = index.key_types(schema).map_err(TableError::Corrupt)?;
            let codec = KeyCodec::new(&types)?;
            let encoded = keys
                .batches
                .iter()
                .map(|columns| {
                    Ok((
                        codec.keys().convert_columns(columns)?,
                        codec.first().convert_columns(&columns[..1])?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            for (row, &(b, i)) in &keys.distinct {
                let value = ScalarValue::try_from_array(&keys.batches[b][0], i)?;
                let probe = Probe::equal(encoded[b].0.row(i).data(), encoded[b].1.row(i).data());
                let mut found = false;
                let mut unindexed = Vec::new();
                for (f, (add, _, lo, hi)) in files.iter().enumerate() {
                    if !may_hold(lo, hi, &value) {
                        continue;
                    }
                    let one = std::slice::from_ref(&probe);
                    match parent
                        .handle
                        .index_contains(index, &codec, add, one)
                        .await?
                    {
                        Some(true) => {
                            found = true;
                            break;
                        }
                        Some(false) => {}
                        None => unindexed.push(f),
                    }
                }
                if !found {
                    pending.insert(row, (b, i));
                    to_scan.extend(unindexed);
                }
            }
        }
        _ => {
            let mut range: Option<(ScalarValue, ScalarValue)> = None;
            for (row, &(b, i)) in &keys.distinct {
                let value = ScalarValue::try_from_array(&keys.batches[b][0], i)?;
                range = Some(match range.take() {
                    None => (value.clone(), value),
                    Some((lo, hi)) => (
                        if value < lo { value.clone() } else { lo },
                        if value > hi { value } else { hi },
                    ),
                });
                pending.insert(row, (b, i));
            }
            if let Some((lo, hi)) = range {
                for (f, (_, _, file_lo, file_hi)) in files.iter().enumerate() {
                    let disjoint = file_hi.as_ref().is_some_and(|max| max < &lo)
                        || file_lo.as_ref().is_some_and(|min| min > &hi);
                    if !disjoint {
                        to_scan.insert(f);
                    }
                }
            }
        }
    }
    if !pending.is_empty() && !to_scan.is_empty() {
        let mut scanned = Vec::with_capacity(to_scan.len());
        for f in to_scan {
            let (add, stats, _, _) = files[f];
            scanned.push(live_file(&parent.handle, add, stats).await?);
        }
        let plan = parquet_scan(ParquetScan {
            runtime: context.runtime_env(),
            store_url: store_url.clone(),
            schema: Arc::clone(schema).into(),
            files: scanned,
            projection: Some(indices),
            predicate: None,
            limit: None,
            partitions: 1,
            rows: None,
        })?;
        let mut stream = execute_naming_damage(&plan, 0, Arc::clone(context))?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let rows = keys.converter.convert_columns(batch.columns())?;
            for row in rows.iter() {
                pending.remove(row.as_ref());
            }
            if pending.is_empty() {
                break;
            }
        }
    }
    Ok(pending.into_values().min())
}

/// The error of a DELETE or UPDATE of `parent` that would leave rows of `child` referencing a
/// key that is gone.
pub fn still_referenced(
    parent: &str,
    key: &ForeignKey,
    child: &str,
    found: &str,
) -> DataFusionError {
    TableError::Invalid(format!(
        "update or delete on table {parent} violates foreign key {} of table {child}: key ({})=({}) \
         is still referenced",
        key.name,
        key.parent_columns.join(", "),
        found
    ))
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_round_trip_in_the_property_format() {
        let key = ForeignKey {
            name: "orders_customer_fkey".into(),
            columns: vec!["customer".into()],
            parent: "shop.customers".into(),
            parent_columns: vec!["id".into()],
            on_delete: OnDelete::SetNull,
        };
        let json = serde_json::to_string(&[&key]).unwrap();
        assert_eq!(
            json,
            r#"[{"name":"orders_customer_fkey","columns":["customer"],"parent":"shop.customers","parentColumns":["id"],"onDelete":"SET NULL"}]"#
        );
        let back: Vec<ForeignKey> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, vec![key]);
        assert_eq!(OnDelete::NoAction.sql(), "NO ACTION");
    }
}
