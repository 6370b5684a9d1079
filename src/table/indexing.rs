//! `CREATE INDEX` and `DROP INDEX` on one table.
//!
//! Creating an index reads the key columns of every live data file, writes one segment per
//! file, and commits the new index definition together with the files re-added
//! (`dataChange:false`) with their segment tags: one commit, so no snapshot has the index
//! without its segments. A UNIQUE index first checks the live rows for duplicates. Dropping an
//! index commits the definitions without it; its segments are no longer read (tags of an index
//! that is not declared are ignored) and are left for VACUUM.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::compute::concat;
use datafusion::common::Result;
use datafusion::execution::TaskContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use futures::TryStreamExt;
use roaring::RoaringTreemap;
use serde_json::json;

use super::TableHandle;
use super::constraints::key_text;
use super::damage::execute_naming_damage;
use super::datafile::upload_segment;
use super::error::external;
use super::index::{IndexDef, KeyCodec, table_indexes, with_indexes};
use super::scan::{ParquetScan, data_file, parquet_scan};
use crate::table::TableError;
use crate::txlog::{Action, Add, Operation, Snapshot};

/// Creates `index` on the table, building its segments over the existing rows. Returns `false`
/// (and changes nothing) when the table already has an index of that name.
pub async fn create_index(
    handle: &Arc<TableHandle>,
    table: &str,
    index: IndexDef,
    store_url: ObjectStoreUrl,
    context: Arc<TaskContext>,
) -> Result<bool> {
    let _turn = handle.lock_for_write().await.map_err(external)?;
    let snapshot = handle.refresh().await.map_err(external)?;
    let mut indexes = table_indexes(&snapshot).map_err(external)?;
    if indexes.iter().any(|i| i.name == index.name) {
        return Ok(false);
    }
    let schema = snapshot.schema();
    let types = index.key_types(schema).map_err(|e| {
        TableError::Invalid(format!(
            "cannot create index {} on {table}: {e}",
            index.name
        ))
    })?;
    let mut distinct = HashSet::new();
    if let Some(twice) = index.columns.iter().find(|c| !distinct.insert(*c)) {
        return Err(TableError::Invalid(format!(
            "index {} names column '{twice}' twice",
            index.name
        ))
        .into());
    }
    let codec = KeyCodec::new(&types)?;
    let columns = index
        .columns
        .iter()
        .map(|c| schema.index_of(c))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = HashSet::new();
    indexes.push(index.clone());
    let mut actions = vec![Action::Metadata(with_indexes(
        snapshot.metadata(),
        &indexes,
    ))];
    for add in snapshot.files() {
        let keys = key_columns(handle, &snapshot, add, &columns, &store_url, &context).await?;
        if index.unique {
            let deleted = match handle.deletion_vector(add).await? {
                Some(deleted) => deleted.as_ref().clone(),
                None => RoaringTreemap::new(),
            };
            let rows = codec.keys().convert_columns(&keys)?;
            for (i, row) in rows.iter().enumerate() {
                let live = !deleted.contains(i as u64) && keys.iter().all(|k| k.is_valid(i));
                if live && !seen.insert(row.owned()) {
                    return Err(TableError::Invalid(format!(
                        "cannot create UNIQUE index {} on {table}: key ({}) appears more than once",
                        index.name,
                        key_text(&keys, i)
                    ))
                    .into());
                }
            }
        }
        let segment = upload_segment(handle, &index, &codec, &keys).await?;
        let mut indexed = Add {
            data_change: false,
            ..add.clone()
        };
        index.tag_segment(&mut indexed, &segment);
        actions.push(Action::Add(indexed));
    }
    let operation = Operation {
        name: "CREATE INDEX".into(),
        parameters: HashMap::from([
            ("name".into(), json!(index.name)),
            ("columns".into(), json!(index.columns)),
            ("unique".into(), json!(index.unique)),
        ]),
        metrics: HashMap::from([("numIndexedFiles".into(), json!(actions.len() - 1))]),
        blind_append: false,
    };
    handle
        .commit(&snapshot, operation, actions)
        .await
        .map_err(external)?;
    Ok(true)
}

/// Drops the index called `name`. Returns `false` when the table has no such index.
pub async fn drop_index(handle: &Arc<TableHandle>, table: &str, name: &str) -> Result<bool> {
    let _turn = handle.lock_for_write().await.map_err(external)?;
    let snapshot = handle.refresh().await.map_err(external)?;
    let mut indexes = table_indexes(&snapshot).map_err(external)?;
    let Some(position) = indexes.iter().position(|i| i.name == name) else {
        return Ok(false);
    };
    if let Some(constraint) = &indexes[position].constraint {
        return Err(TableError::Invalid(format!(
            "index {name} enforces the {constraint} of {table} and cannot be dropped"
        ))
        .into());
    }
    indexes.remove(position);
    let operation = Operation {
        name: "DROP INDEX".into(),
        parameters: HashMap::from([("name".into(), json!(name))]),
        metrics: HashMap::new(),
        blind_append: false,
    };
    let metadata = with_indexes(snapshot.metadata(), &indexes);
    handle
        .commit(&snapshot, operation, vec![Action::Metadata(metadata)])
        .await
        .map_err(external)?;
    Ok(true)
}

/// The columns at `columns` of every physical row of `add`'s data file (deleted rows too), in
/// file order.
async fn key_columns(
    handle: &TableHandle,
    snapshot: &Snapshot,
    add: &Add,
    columns: &[usize],
    store_url: &ObjectStoreUrl,
    context: &Arc<TaskContext>,
) -> Result<Vec<ArrayRef>> {
    let plan = parquet_scan(ParquetScan {
        runtime: context.runtime_env(),
        store_url: store_url.clone(),
        schema: Arc::clone(snapshot.schema()).into(),
        files: vec![data_file(handle.log(), add)?],
        projection: Some(columns.to_vec()),
        predicate: None,
        limit: None,
        partitions: 1,
        rows: None,
    })?;
    let batches: Vec<RecordBatch> = execute_naming_damage(&plan, 0, Arc::clone(context))?
        .try_collect()
        .await?;
    (0..columns.len())
        .map(|c| {
            let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            if parts.is_empty() {
                let field = snapshot.schema().field(columns[c]);
                return Ok(arrow::array::new_empty_array(field.data_type()));
            }
            Ok(concat(&parts)?)
        })
        .collect()
}
