//! PRIMARY KEY and UNIQUE enforcement for appends and updates.
//!
//! The keys are listed in the table configuration, which other Delta readers ignore:
//! [`PRIMARY_KEY_PROPERTY`] is a JSON array of column names (the columns themselves are
//! `nullable:false`), [`UNIQUE_PROPERTY`] a JSON array of such arrays. A write checks its keys
//! against each other and against the rows of every live file whose statistics overlap the range
//! of new keys — for ordered keys that is one file or none — before its commit. Such a write is
//! not blind: it read the table, so a concurrent commit makes it conflict (and retry) instead of
//! letting a duplicate in. As in standard SQL, a UNIQUE key with a NULL in it never collides.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::execution::TaskContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use futures::StreamExt;

use super::TableHandle;
use super::damage::execute_naming_damage;
use super::index::{IndexDef, KeyCodec, Probe, table_indexes};
use super::pruning::scalar_from_json;
use super::scan::{ParquetScan, live_file, parquet_scan};
use crate::table::TableError;
use crate::txlog::{Add, Snapshot, physical_name};

/// Table property holding the primary key columns.
pub const PRIMARY_KEY_PROPERTY: &str = "minidb.primaryKey";
/// Table property holding the UNIQUE constraints' column lists.
pub const UNIQUE_PROPERTY: &str = "minidb.unique";

/// Table property holding column defaults: a JSON object from column name to SQL expression.
pub const DEFAULTS_PROPERTY: &str = "minidb.defaults";

/// The DEFAULT expressions of `snapshot`'s columns, planned for DataFusion's INSERT and
/// simplified now: the table is resolved once per statement, so `now()` is the statement's time.
pub fn column_defaults(snapshot: &Snapshot) -> Result<HashMap<String, Expr>> {
    let Some(Some(json)) = snapshot.metadata().configuration.get(DEFAULTS_PROPERTY) else {
        return Ok(HashMap::new());
    };
    let texts: HashMap<String, String> = serde_json::from_str(json)
        .map_err(|e| TableError::Corrupt(format!("table property {DEFAULTS_PROPERTY}: {e}")))?;
    // Defaults are constant expressions: any session's functions plan them the same way.
    static PLANNER: OnceLock<SessionState> = OnceLock::new();
    let planner =
        PLANNER.get_or_init(|| SessionStateBuilder::new().with_default_features().build());
    let simplifier = ExprSimplifier::new(SimplifyContext::builder().with_current_time().build());
    texts
        .into_iter()
        .map(|(column, text)| {
            let expr = planner.create_logical_expr(&text, &DFSchema::empty())?;
            Ok((column, simplifier.simplify(expr)?))
        })
        .collect()
}

/// Most new keys a write looks up in an index one by one; a larger write reads the key
/// columns of the files whose key range overlaps its own instead.
const MAX_PROBED_KEYS: usize = 10_000;

/// Index probes for a write's new keys.
struct KeyProbes {
    probes: Vec<Probe>,
    /// Per probe, the (batch, row) of the new key it looks for.
    origins: Vec<(usize, usize)>,
}

/// The columns of the primary key of `snapshot`'s table, in key order; `None` without one.
pub fn primary_key(snapshot: &Snapshot) -> Result<Option<Vec<String>>> {
    let Some(Some(json)) = snapshot.metadata().configuration.get(PRIMARY_KEY_PROPERTY) else {
        return Ok(None);
    };
    serde_json::from_str(json).map(Some).map_err(|e| {
        TableError::Corrupt(format!("table property {PRIMARY_KEY_PROPERTY}: {e}")).into()
    })
}

/// One key of a table (its PRIMARY KEY or a UNIQUE constraint) and the values a write has seen.
pub struct KeyChecker {
    /// `PRIMARY KEY`, `UNIQUE` or `UNIQUE INDEX <name>`, for messages.
    kind: String,
    columns: Vec<String>,
    indices: Vec<usize>,
    converter: RowConverter,
    seen: HashSet<Box<[u8]>>,
    /// Smallest and largest new value of the first key column.
    range: Option<(ScalarValue, ScalarValue)>,
    /// An index on exactly the key's columns, which answers "does this key exist?".
    index: Option<(IndexDef, KeyCodec)>,
    /// The key columns of the new rows, kept to probe the index with.
    new_keys: Vec<Vec<ArrayRef>>,
}

impl KeyChecker {
    /// A checker for each key of `snapshot`'s table: the primary key first, then UNIQUE ones.
    pub fn for_table(snapshot: &Snapshot) -> Result<Vec<Self>> {
        let configuration = &snapshot.metadata().configuration;
        let property = |name: &str| configuration.get(name).cloned().flatten();
        let bad = |name: &str, e: serde_json::Error| {
            TableError::Corrupt(format!("table property {name}: {e}"))
        };
        let indexes = table_indexes(snapshot).map_err(TableError::from)?;
        let mut keys: Vec<Self> = Vec::new();
        if let Some(columns) = primary_key(snapshot)? {
            keys.push(Self::new(
                snapshot,
                "PRIMARY KEY".into(),
                columns,
                &indexes,
            )?);
        }
        if let Some(json) = property(UNIQUE_PROPERTY) {
            let lists: Vec<Vec<String>> =
                serde_json::from_str(&json).map_err(|e| bad(UNIQUE_PROPERTY, e))?;
            for columns in lists {
                keys.push(Self::new(snapshot, "UNIQUE".into(), columns, &indexes)?);
            }
        }
        for index in indexes.iter().filter(|i| i.unique) {
            if !keys.iter().any(|k| k.columns == index.columns) {
                let kind = format!("UNIQUE INDEX {}", index.name);
                keys.push(Self::new(snapshot, kind, index.columns.clone(), &indexes)?);
            }
        }
        Ok(keys)
    }

    /// A checker for the key columns `columns` of `snapshot`'s table, which need not be a key:
    /// a foreign key's columns in a child table, to find rows that reference given keys.
    pub fn for_columns(snapshot: &Snapshot, kind: &str, columns: Vec<String>) -> Result<Self> {
        let indexes = table_indexes(snapshot).map_err(TableError::from)?;
        Self::new(snapshot, kind.to_string(), columns, &indexes)
    }

    fn new(
        snapshot: &Snapshot,
        kind: String,
        columns: Vec<String>,
        indexes: &[IndexDef],
    ) -> Result<Self> {
        let schema = snapshot.schema();
        let indices = columns
            .iter()
            .map(|c| schema.index_of(c))
            .collect::<Result<Vec<_>, _>>()?;
        let fields = indices
            .iter()
            .map(|i| SortField::new(schema.field(*i).data_type().clone()))
            .collect();
        let index = match indexes.iter().find(|i| i.columns == columns) {
            Some(index) => {
                let types = index.key_types(schema).map_err(TableError::Corrupt)?;
                Some((index.clone(), KeyCodec::new(&types)?))
            }
            None => None,
        };
        Ok(Self {
            kind,
            columns,
            indices,
            converter: RowConverter::new(fields)?,
            seen: HashSet::new(),
            range: None,
            index,
            new_keys: Vec::new(),
        })
    }

    /// The key's column names.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Per row of the key columns `columns`, whether its key is among those recorded.
    pub fn contains(&self, columns: &[ArrayRef]) -> Result<Vec<bool>> {
        let rows = self.converter.convert_columns(columns)?;
        Ok(rows
            .iter()
            .map(|row| self.seen.contains(row.as_ref()))
            .collect())
    }

    fn key_columns(&self, batch: &RecordBatch) -> Vec<ArrayRef> {
        self.indices
            .iter()
            .map(|i| Arc::clone(batch.column(*i)))
            .collect()
    }

    /// Records the keys of new rows; fails on a key repeated within the statement.
    pub fn add_new(&mut self, batch: &RecordBatch) -> Result<()> {
        let columns = self.key_columns(batch);
        if self.index.is_some() && self.seen.len() <= MAX_PROBED_KEYS {
            self.new_keys.push(columns.clone());
        }
        let rows = self.converter.convert_columns(&columns)?;
        for (i, row) in rows.iter().enumerate() {
            if columns.iter().any(|c| c.is_null(i)) {
                continue;
            }
            if !self.seen.insert(row.as_ref().into()) {
                return Err(self.violation(&columns, i));
            }
            self.widen_range(ScalarValue::try_from_array(&columns[0], i)?);
        }
        Ok(())
    }

    /// Records keys to look for (key columns in the table's types); a key repeated or with a
    /// NULL in it is taken once or not at all.
    pub fn add_keys(&mut self, columns: &[ArrayRef]) -> Result<()> {
        if self.index.is_some() && self.seen.len() <= MAX_PROBED_KEYS {
            self.new_keys.push(columns.to_vec());
        }
        let rows = self.converter.convert_columns(columns)?;
        for (i, row) in rows.iter().enumerate() {
            if columns.iter().any(|c| c.is_null(i)) || !self.seen.insert(row.as_ref().into()) {
                continue;
            }
            self.widen_range(ScalarValue::try_from_array(&columns[0], i)?);
        }
        Ok(())
    }

    fn widen_range(&mut self, value: ScalarValue) {
        self.range = Some(match self.range.take() {
            None => (value.clone(), value),
            Some((lo, hi)) => (
                if value < lo { value.clone() } else { lo },
                if value > hi { value } else { hi },
            ),
        });
    }

    /// Fails if a live row of `snapshot` already has one of the new keys.
    pub async fn check_existing(
        &self,
        snapshot: &Snapshot,
        handle: &TableHandle,
        store_url: ObjectStoreUrl,
        context: Arc<TaskContext>,
    ) -> Result<()> {
        match self
            .find_existing(snapshot, handle, store_url, context)
            .await?
        {
            Some((columns, row)) => Err(self.violation(&columns, row)),
            None => Ok(()),
        }
    }

    /// The key columns and row of one of the recorded keys that a live row of `snapshot` has,
    /// if any does.
    pub async fn find_existing(
        &self,
        snapshot: &Snapshot,
        handle: &TableHandle,
        store_url: ObjectStoreUrl,
        context: Arc<TaskContext>,
    ) -> Result<Option<(Vec<ArrayRef>, usize)>> {
        let Some((lo, hi)) = &self.range else {
            return Ok(None);
        };
        let probes = match &self.index {
            Some((index, codec)) if self.seen.len() <= MAX_PROBED_KEYS => {
                Some((index, codec, self.probes(codec)?))
            }
            _ => None,
        };
        let schema: &SchemaRef = snapshot.schema();
        let first = physical_name(schema.field(self.indices[0]));
        let data_type = schema.field(self.indices[0]).data_type();
        let mut files = Vec::new();
        for (add, stats) in snapshot.files_with_stats() {
            let min = stats
                .min_values
                .get(first)
                .and_then(|v| scalar_from_json(v, data_type, false));
            let max = stats
                .max_values
                .get(first)
                .and_then(|v| scalar_from_json(v, data_type, true));
            let disjoint = max.is_some_and(|max| &max < lo) || min.is_some_and(|min| &min > hi);
            if disjoint {
                continue;
            }
            if let Some((index, codec, probes)) = &probes
                && let Some(found) = handle
                    .index_contains(index, codec, add, &probes.probes)
                    .await?
            {
                if found {
                    return self
                        .existing_key(handle, index, codec, add, probes)
                        .await
                        .map(Some);
                }
                continue;
            }
            files.push(live_file(handle, add, stats).await?);
        }
        if files.is_empty() {
            return Ok(None);
        }
        let plan = parquet_scan(ParquetScan {
            runtime: context.runtime_env(),
            store_url,
            schema: Arc::clone(schema).into(),
            files,
            projection: Some(self.indices.clone()),
            predicate: None,
            limit: None,
            partitions: 1,
            rows: None,
        })?;
        let mut stream = execute_naming_damage(&plan, 0, context)?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let columns = batch.columns().to_vec();
            let rows = self.converter.convert_columns(&columns)?;
            if let Some(i) = rows.iter().position(|row| self.seen.contains(row.as_ref())) {
                return Ok(Some((columns, i)));
            }
        }
        Ok(None)
    }

    /// One equality probe per new key without NULLs, and where each key came from.
    fn probes(&self, codec: &KeyCodec) -> Result<KeyProbes> {
        let mut probes = Vec::new();
        let mut origins = Vec::new();
        for (b, columns) in self.new_keys.iter().enumerate() {
            let keys = codec.keys().convert_columns(columns)?;
            let firsts = codec.first().convert_columns(&columns[..1])?;
            for i in 0..keys.num_rows() {
                if columns.iter().all(|c| c.is_valid(i)) {
                    probes.push(Probe::equal(keys.row(i).data(), firsts.row(i).data()));
                    origins.push((b, i));
                }
            }
        }
        Ok(KeyProbes { probes, origins })
    }

    /// The first new key that `add`'s file already holds.
    async fn existing_key(
        &self,
        handle: &TableHandle,
        index: &IndexDef,
        codec: &KeyCodec,
        add: &Add,
        KeyProbes { probes, origins }: &KeyProbes,
    ) -> Result<(Vec<ArrayRef>, usize)> {
        for (probe, (b, i)) in probes.iter().zip(origins) {
            let one = std::slice::from_ref(probe);
            if handle.index_contains(index, codec, add, one).await? == Some(true) {
                return Ok((self.new_keys[*b].clone(), *i));
            }
        }
        Err(
            TableError::Internal("an index reported a duplicate key it then could not find".into())
                .into(),
        )
    }

    fn violation(&self, columns: &[ArrayRef], row: usize) -> DataFusionError {
        DataFusionError::Execution(format!(
            "duplicate key violates {} ({}): ({}) already exists",
            self.kind,
            self.columns.join(", "),
            key_text(columns, row)
        ))
    }
}

/// The key at `row` of the key columns `columns`, for messages: `1, abc, NULL`.
pub fn key_text(columns: &[ArrayRef], row: usize) -> String {
    let options = FormatOptions::default().with_null("NULL");
    columns
        .iter()
        .map(|c| {
            ArrayFormatter::try_new(c.as_ref(), &options)
                .map(|f| f.value(row).to_string())
                .unwrap_or_else(|_| "?".into())
        })
        .collect::<Vec<_>>()
        .join(", ")
}
