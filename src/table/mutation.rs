//! [`Mutation`]: the changes of one UPDATE, DELETE or MERGE, committed Merge-on-Read.
//!
//! A statement feeds the addresses of the rows it changes (file index in the snapshot, physical
//! row position in the file) and, for an UPDATE, the rows' new values. The commit then:
//!
//! 1. unions each touched file's old deletion vector with its newly deleted positions and writes
//!    the result to a fresh DV file (a file whose rows are all deleted is simply removed);
//! 2. writes the new values, if any, to one new data file;
//! 3. checks the primary key against the table as it will be after the commit, and the new
//!    rows' foreign keys against their parent tables (whose locks it holds until the commit);
//! 4. commits `remove` (old DV) + `add` (same file, new DV, `tightBounds:false`) per touched file,
//!    plus the new file's `add`, as one Delta commit that is not a blind append.
//!
//! The data files themselves are never rewritten, so the bytes written are proportional to the
//! rows changed, not to the size of the files they live in.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch};
use arrow::compute::filter;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use futures::StreamExt;
use roaring::RoaringTreemap;
use serde_json::{Value, json};

use super::constraints::{KeyChecker, primary_key};
use super::damage::execute_naming_damage;
use super::datafile::DataFilesWriter;
use super::error::external;
use super::foreign_keys::{ChildKeys, ReferencedTables, referenced_by};
use super::properties::declared;
use super::scan::{ParquetScan, indexed_file, parquet_scan, row_count_of};
use super::{TableHandle, UNIQUE_PROPERTY, Writer};
use crate::table::TableError;
use crate::txlog::{
    Action, Add, ENABLE_DELETION_VECTORS, FileStats, Operation, Remove, Snapshot,
    write_deletion_vector,
};

/// Encoded size at which an UPDATE's new rows go on in a new file.
const NEW_FILE_BYTES: usize = 128 * 1024 * 1024;

/// What a statement changes in one table, collected before anything is written.
pub struct Mutation {
    handle: Arc<TableHandle>,
    writer: Writer,
    snapshot: Arc<Snapshot>,
    store_url: ObjectStoreUrl,
    /// Newly deleted row positions, by the file's index in the snapshot.
    deleted: BTreeMap<usize, RoaringTreemap>,
    /// The writer of new rows, behind a mutex only so that a `&Mutation` can cross threads
    /// (the foreign key work reads it while the writer, which is not `Sync`, stays put).
    new_rows: Option<Mutex<DataFilesWriter>>,
    keys: Vec<KeyChecker>,
    /// The new rows' foreign keys, checked against the parent tables before the commit.
    child_keys: ChildKeys,
    /// Opens the tables foreign key checks read.
    references: Arc<dyn ReferencedTables>,
    /// For a table other tables reference: the new rows' values of each of its keys, so that a
    /// key a deleted row had and a new row has again does not count as removed.
    kept_keys: Vec<KeyChecker>,
    metrics: HashMap<String, Value>,
}

impl Mutation {
    /// A mutation of `snapshot` that assigns the `changed` columns (none for a DELETE).
    ///
    /// Rows whose key columns keep their values keep their keys, so a PRIMARY KEY, UNIQUE or
    /// FOREIGN KEY constraint is only checked when one of its columns is assigned.
    pub fn new(
        handle: Arc<TableHandle>,
        writer: Writer,
        snapshot: Arc<Snapshot>,
        store_url: ObjectStoreUrl,
        changed: &HashSet<&str>,
        references: Arc<dyn ReferencedTables>,
    ) -> Result<Self> {
        let mut keys = KeyChecker::for_table(&snapshot)?;
        keys.retain(|key| key.columns().iter().any(|c| changed.contains(c.as_str())));
        let name = handle.log().table_name();
        let child_keys = ChildKeys::for_table(&name, &snapshot, Some(&|c| changed.contains(c)))?;
        let mut kept_keys = Vec::new();
        if !referenced_by(&snapshot)?.is_empty() {
            let unique: Vec<Vec<String>> =
                declared(&snapshot, UNIQUE_PROPERTY)?.unwrap_or_default();
            for columns in primary_key(&snapshot)?.into_iter().chain(unique) {
                kept_keys.push(KeyChecker::for_columns(&snapshot, "KEY", columns)?);
            }
        }
        Ok(Self {
            handle,
            writer,
            snapshot,
            store_url,
            deleted: BTreeMap::new(),
            new_rows: None,
            keys,
            child_keys,
            references,
            kept_keys,
            metrics: HashMap::new(),
        })
    }

    /// The snapshot the mutation changes.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// The values of the key columns `columns` that the deleted rows had and no new row has,
    /// without NULLs, in batches of key columns: the keys the mutation takes out of the table.
    pub async fn removed_keys(
        &self,
        columns: &[String],
        context: &Arc<TaskContext>,
    ) -> Result<Vec<Vec<ArrayRef>>> {
        if self.deleted.is_empty() {
            return Ok(Vec::new());
        }
        let schema = self.snapshot.schema();
        let indices = columns
            .iter()
            .map(|c| schema.index_of(c))
            .collect::<Result<Vec<_>, _>>()?;
        let all: Vec<(&Add, &FileStats)> = self.snapshot.files_with_stats().collect();
        let mut files = Vec::new();
        for (index, positions) in &self.deleted {
            let (add, stats) = all
                .get(*index)
                .ok_or_else(|| TableError::Internal(format!("no file {index} in the snapshot")))?;
            if let Some((file, _)) =
                indexed_file(&self.handle, add, stats, positions.clone()).await?
            {
                files.push(file);
            }
        }
        if files.is_empty() {
            return Ok(Vec::new());
        }
        let plan = parquet_scan(ParquetScan {
            runtime: context.runtime_env(),
            store_url: self.store_url.clone(),
            schema: Arc::clone(schema).into(),
            files,
            projection: Some(indices),
            predicate: None,
            limit: None,
            partitions: 1,
            rows: None,
        })?;
        let kept = self.kept_keys.iter().find(|k| k.columns() == columns);
        let mut removed = Vec::new();
        let mut stream = execute_naming_damage(&plan, 0, Arc::clone(context))?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let mut columns = batch.columns().to_vec();
            let brought_back = match kept {
                Some(kept) => kept.contains(&columns)?,
                None => vec![false; batch.num_rows()],
            };
            // A key with a NULL in it references nothing (MATCH SIMPLE), so it is never removed.
            let gone = BooleanArray::from(
                (0..batch.num_rows())
                    .map(|i| !brought_back[i] && columns.iter().all(|c| c.is_valid(i)))
                    .collect::<Vec<_>>(),
            );
            columns = columns
                .iter()
                .map(|c| filter(c, &gone))
                .collect::<Result<_, _>>()
                .map_err(DataFusionError::from)?;
            if columns.first().is_some_and(|c| !c.is_empty()) {
                removed.push(columns);
            }
        }
        Ok(removed)
    }

    /// Marks rows deleted, given as parallel arrays of file indexes and row positions (Int64).
    /// Returns how many of them this mutation had marked already (a MERGE whose source matches
    /// one target row several times).
    pub fn delete(&mut self, files: &ArrayRef, rows: &ArrayRef) -> Result<u64> {
        let int64 = |array: &ArrayRef| {
            array
                .as_any()
                .downcast_ref::<Int64Array>()
                .cloned()
                .ok_or_else(|| TableError::Internal("row addresses must be Int64".into()))
        };
        let (files, rows) = (int64(files)?, int64(rows)?);
        let mut repeated = 0;
        for (file, row) in files.iter().zip(rows.iter()) {
            let (Some(file), Some(row)) = (file, row) else {
                return Err(TableError::Internal("NULL row address".into()).into());
            };
            let file = usize::try_from(file)
                .map_err(|_| TableError::Internal("negative file index".into()))?;
            let row = u64::try_from(row)
                .map_err(|_| TableError::Internal("negative row position".into()))?;
            if !self.deleted.entry(file).or_default().insert(row) {
                repeated += 1;
            }
        }
        Ok(repeated)
    }

    /// Sets operation metrics of the commit beyond the ones it counts itself (a MERGE's rows
    /// inserted, updated and deleted).
    pub fn report(&mut self, metric: &str, value: u64) {
        self.metrics.insert(metric.to_string(), json!(value));
    }

    /// Adds new rows (an UPDATE's new values), already converted to the table's types.
    pub async fn insert(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let schema = Arc::clone(self.snapshot.schema());
        // Re-labelling with the table schema checks the NOT NULL columns.
        let batch = RecordBatch::try_new(Arc::clone(&schema), batch.columns().to_vec())?;
        for key in self.keys.iter_mut() {
            key.add_new(&batch)?;
        }
        self.child_keys.add_new(&batch)?;
        for key in self.kept_keys.iter_mut() {
            let columns = key
                .columns()
                .iter()
                .map(|c| Ok(Arc::clone(batch.column(schema.index_of(c)?))))
                .collect::<Result<Vec<_>>>()?;
            key.add_keys(&columns)?;
        }
        let writer = match self.new_rows.as_mut() {
            Some(writer) => writer,
            None => self.new_rows.insert(Mutex::new(DataFilesWriter::try_new(
                Arc::clone(&self.snapshot),
                NEW_FILE_BYTES,
            )?)),
        };
        let writer = writer.get_mut().unwrap_or_else(|e| e.into_inner());
        writer.write(&self.handle, &batch).await
    }

    /// Writes deletion vectors and new rows, then commits them as one Delta commit (or stages
    /// them in the open transaction); a mutation with neither commits nothing. Returns the
    /// number of rows deleted (for an UPDATE: rows replaced by their new version).
    pub async fn commit(
        self,
        operation: &str,
        predicate: Option<String>,
        context: Arc<TaskContext>,
    ) -> Result<u64> {
        let rows: u64 = self.deleted.values().map(RoaringTreemap::len).sum();
        if rows == 0 && self.new_rows.is_none() {
            return Ok(0);
        }
        let files: Vec<&Add> = self.snapshot.files().collect();
        let store = self.handle.log().store();
        let root = self.handle.log().root();
        let now = chrono::Utc::now().timestamp_millis();
        let mut actions = if self.deleted.is_empty() {
            Vec::new()
        } else {
            deletion_vectors_enabled(&self.snapshot)
        };
        let mut bytes_written = 0u64;
        let (mut removed_files, mut vectors_added, mut vectors_removed) = (0usize, 0usize, 0usize);
        for (index, positions) in &self.deleted {
            let add = *files
                .get(*index)
                .ok_or_else(|| TableError::Internal(format!("no file {index} in the snapshot")))?;
            let mut deleted = match self.handle.deletion_vector(add).await? {
                Some(deleted) => deleted.as_ref().clone(),
                None => RoaringTreemap::new(),
            };
            deleted |= positions;
            let records = row_count_of(&self.handle, add).await?;
            actions.push(Action::Remove(Remove::of(add, now)));
            vectors_removed += usize::from(add.deletion_vector.is_some());
            if deleted.len() >= records {
                removed_files += 1;
                continue;
            }
            let (descriptor, written) = write_deletion_vector(store.as_ref(), root, &deleted)
                .await
                .map_err(external)?;
            bytes_written += written as u64;
            vectors_added += 1;
            actions.push(Action::Add(Add {
                stats: Some(loose_stats(add.stats.as_deref(), records)),
                data_change: true,
                deletion_vector: Some(descriptor),
                ..add.clone()
            }));
        }
        if !self.keys.is_empty() {
            // The keys must be unique in the table as it will be: without the replaced rows.
            let after = self
                .snapshot
                .advance(self.snapshot.version() + 1, actions.clone())
                .map_err(external)?;
            for key in &self.keys {
                key.check_existing(
                    &after,
                    &self.handle,
                    self.store_url.clone(),
                    Arc::clone(&context),
                )
                .await?;
            }
        }
        // The parents stay locked until the commit, so the keys found there stay there.
        let _parents = if self.child_keys.is_empty() {
            Vec::new()
        } else {
            self.child_keys
                .check(self.references.as_ref(), &self.store_url, &context)
                .await?
        };
        let mut added_files = 0usize;
        let mut added_rows = 0u64;
        if let Some(writer) = self.new_rows {
            let writer = writer.into_inner().unwrap_or_else(|e| e.into_inner());
            added_rows = writer.rows();
            for add in writer.finish(&self.handle).await? {
                bytes_written += add.size as u64;
                added_files += 1;
                actions.push(Action::Add(add));
            }
        }
        let mut parameters = HashMap::new();
        if let Some(predicate) = predicate {
            parameters.insert("predicate".to_string(), json!(predicate));
        }
        let mut metrics = HashMap::from([
            ("numRemovedFiles".to_string(), json!(removed_files)),
            ("numAddedFiles".to_string(), json!(added_files)),
            ("numDeletionVectorsAdded".to_string(), json!(vectors_added)),
            (
                "numDeletionVectorsRemoved".to_string(),
                json!(vectors_removed),
            ),
            ("numAddedBytes".to_string(), json!(bytes_written)),
        ]);
        if !self.metrics.is_empty() {
            metrics.extend(self.metrics);
        } else if added_rows > 0 {
            metrics.insert("numUpdatedRows".into(), json!(rows));
            metrics.insert("numOutputRows".into(), json!(added_rows));
        } else {
            metrics.insert("numDeletedRows".into(), json!(rows));
        }
        let operation = Operation {
            name: operation.to_string(),
            parameters,
            metrics,
            blind_append: false,
        };
        self.writer
            .apply(&self.snapshot, operation, actions)
            .await
            .map_err(external)?;
        Ok(rows)
    }
}

/// The actions that let `snapshot`'s table hold deletion vectors, if it cannot yet (a table
/// created by another engine): protocol reader 3 / writer 7 with `deletionVectors`, and
/// `delta.enableDeletionVectors=true`. They go first in the commit that adds the first DV.
pub(super) fn deletion_vectors_enabled(snapshot: &Snapshot) -> Vec<Action> {
    let mut actions = Vec::new();
    let protocol = snapshot.protocol();
    if !protocol.has_deletion_vectors() {
        actions.push(Action::Protocol(protocol.with_deletion_vectors()));
    }
    let metadata = snapshot.metadata();
    if metadata.configuration.get(ENABLE_DELETION_VECTORS) != Some(&Some("true".to_string())) {
        let mut metadata = metadata.clone();
        metadata
            .configuration
            .insert(ENABLE_DELETION_VECTORS.into(), Some("true".into()));
        actions.push(Action::Metadata(metadata));
    }
    actions
}

/// The stats of a file that now has a deletion vector: bounds stay valid but are no longer
/// tight, and `numRecords` (physical rows, deleted ones included) must be exact.
pub(super) fn loose_stats(stats: Option<&str>, records: u64) -> String {
    let mut object = stats
        .and_then(|s| serde_json::from_str::<serde_json::Map<String, Value>>(s).ok())
        .unwrap_or_default();
    object.insert("numRecords".into(), json!(records));
    object.insert("tightBounds".into(), json!(false));
    Value::Object(object).to_string()
}
