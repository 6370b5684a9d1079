//! Damaged data files: files a table's log lists that storage no longer holds as the log
//! describes them — missing, truncated or replaced, not Parquet, a row group that does not
//! decode, a deletion vector that is missing or fails its checksum.
//!
//! Scans read through [`DamageChecking`], which turns a failed read into a [`Damage`] naming the
//! table, the file and the problem once storage confirms it (a store that merely failed is
//! reported as such, not as damage). `FSCK REPAIR TABLE t [DRY RUN]` ([`fsck`]) examines every
//! live file — size, footer, deletion vector, every row group decoded — and, unless it is a dry
//! run, commits the removal of the damaged ones: the table reads again, without their rows.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use arrow::error::ArrowError;
use bytes::Bytes;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::physical_plan::parquet::{
    DefaultParquetFileReaderFactory, ParquetFileReaderFactory,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt, stream};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use serde_json::json;

use super::TableHandle;
use super::error::external;
use super::scan::{WithPageIndex, data_file};
use crate::storage::parquet::{check_layout, reader_panicked};
use crate::table::TableError;
use crate::txlog::{Action, Add, LogRepair, Operation, Remove};

/// Files FSCK examines at once.
const CONCURRENT_CHECKS: usize = 4;

/// A data file of a table that cannot be read as the table's log describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// `database.table`.
    pub table: String,
    /// The file's path inside the table folder, as the log names it.
    pub file: String,
    /// What is wrong with it, as a predicate: "is missing: …".
    pub problem: String,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "data file '{}' of table {} {}; FSCK REPAIR TABLE {} removes it (and its rows) \
             from the table",
            self.file, self.table, self.problem, self.table
        )
    }
}

impl Damage {
    /// The damage `problem` of the data file at `location` (`database/table/…` from the store's
    /// root).
    pub fn at(location: &Path, problem: String) -> Self {
        let parts: Vec<String> = location.parts().map(|p| p.as_ref().to_string()).collect();
        let (table, file) = match parts.as_slice() {
            [database, table, file @ ..] if !file.is_empty() => {
                (format!("{database}.{table}"), file.join("/"))
            }
            _ => (String::new(), location.to_string()),
        };
        Self {
            table,
            file,
            problem,
        }
    }
}

/// What is wrong with the data file at `location`, which the log says has `size` bytes: it is
/// missing, has another size, or its footer or page index does not read. `None` when storage
/// shows nothing wrong (or cannot tell, because the store itself fails).
pub async fn examine(store: &Arc<dyn ObjectStore>, location: &Path, size: u64) -> Option<String> {
    match store.head(location).await {
        Err(object_store::Error::NotFound { .. }) => {
            return Some("is missing: the log lists it, storage has no such object".into());
        }
        Err(_) => return None,
        Ok(meta) if meta.size != size => {
            return Some(format!(
                "is {} bytes where the log says {size}: it was truncated or replaced",
                meta.size
            ));
        }
        Ok(_) => {}
    }
    let mut reader = reader(store, location, size).ok()?;
    let metadata = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Optional)
        .load_and_finish(&mut reader, size)
        .await;
    match metadata {
        Ok(metadata) => check_layout(&metadata, size)
            .err()
            .map(|problem| format!("does not read as Parquet: {problem}")),
        Err(e) if store_failed(&e) => None,
        Err(e) => Some(format!("does not read as Parquet: {}", parquet_cause(&e))),
    }
}

/// Whether `e` is the object store failing (or damage already found) rather than the bytes
/// failing to decode.
fn store_failed(e: &ParquetError) -> bool {
    match e {
        ParquetError::External(inner) => {
            inner.is::<object_store::Error>() || inner.is::<TableError>()
        }
        _ => false,
    }
}

/// A plain reader of the data file at `location`; the store's errors are `External`.
fn reader(store: &Arc<dyn ObjectStore>, location: &Path, size: u64) -> Result<WithPageIndex> {
    let reader = DefaultParquetFileReaderFactory::new(Arc::clone(store)).create_reader(
        0,
        PartitionedFile::new(location.to_string(), size),
        None,
        &ExecutionPlanMetricsSet::new(),
    )?;
    Ok(WithPageIndex(reader))
}

/// A Parquet error's message without the "Parquet error: " prefixes its layers add.
fn parquet_cause(e: &ParquetError) -> String {
    let mut text = e.to_string();
    while let Some(rest) = text.strip_prefix("Parquet error: ") {
        text = rest.to_string();
    }
    text
}

/// The error for row group `row_group` of the data file at `location` failing to decode; an
/// error of the store (or damage found while reading) passes through as it is.
pub fn undecodable(location: &Path, row_group: usize, e: ParquetError) -> DataFusionError {
    match e {
        e if store_failed(&e) => DataFusionError::ParquetError(Box::new(e)),
        e => TableError::Damaged(Damage::at(
            location,
            format!(
                "does not decode (row group {row_group}): {}",
                parquet_cause(&e)
            ),
        ))
        .into(),
    }
}

/// Runs partition `partition` of `plan`, a Parquet scan; when it fails as damaged bytes would
/// make it fail (the footer read fine, a page does not decode), the files of the partition are
/// examined and the first damaged one is named instead of the decoder's bare message.
pub fn execute_naming_damage(
    plan: &Arc<dyn ExecutionPlan>,
    partition: usize,
    context: Arc<TaskContext>,
) -> Result<SendableRecordBatchStream> {
    let files = plan
        .downcast_ref::<DataSourceExec>()
        .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
        .and_then(|config| {
            let group = config.file_groups.get(partition)?;
            let store = context
                .runtime_env()
                .object_store(&config.object_store_url)
                .ok()?;
            let files: Vec<(Path, u64)> = group
                .iter()
                .map(|file| (file.object_meta.location.clone(), file.object_meta.size))
                .collect();
            Some((store, files))
        });
    let stream = plan.execute(partition, context)?;
    let Some((store, files)) = files else {
        return Ok(stream);
    };
    let schema = stream.schema();
    let files: Arc<[(Path, u64)]> = files.into();
    let named = stream.then(move |batch| {
        let (store, files) = (Arc::clone(&store), Arc::clone(&files));
        async move {
            match batch {
                Err(e) if may_be_damage(&e) => Err(name_damage(&store, &files).await.unwrap_or(e)),
                other => other,
            }
        }
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, named)))
}

/// Whether `e` is the Parquet decoder failing on the bytes it was given.
fn may_be_damage(e: &DataFusionError) -> bool {
    match e.find_root() {
        DataFusionError::ParquetError(e) => !store_failed(e),
        DataFusionError::ArrowError(e, _) => matches!(e.as_ref(), ArrowError::ParquetError(_)),
        _ => false,
    }
}

/// The error for the first of `files` that is damaged, if any is.
async fn name_damage(
    store: &Arc<dyn ObjectStore>,
    files: &[(Path, u64)],
) -> Option<DataFusionError> {
    for (location, size) in files {
        let problem = match examine(store, location, *size).await {
            Some(problem) => Some(problem),
            None => undecodable_file(store, location, *size)
                .await
                .ok()
                .flatten(),
        };
        if let Some(problem) = problem {
            return Some(TableError::Damaged(Damage::at(location, problem)).into());
        }
    }
    None
}

/// Runs `decode` over a data file's bytes; a panic of the Parquet reader becomes a decode error
/// (see [`reader_panicked`]).
pub async fn guarded<T>(
    decode: impl Future<Output = parquet::errors::Result<T>>,
) -> parquet::errors::Result<T> {
    AssertUnwindSafe(decode)
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(ParquetError::General(reader_panicked(panic.as_ref()))))
}

/// Makes the readers of another factory report damaged files as [`Damage`].
#[derive(Debug)]
pub struct DamageChecking {
    inner: Arc<dyn ParquetFileReaderFactory>,
    store: Arc<dyn ObjectStore>,
}

impl DamageChecking {
    pub fn new(inner: Arc<dyn ParquetFileReaderFactory>, store: Arc<dyn ObjectStore>) -> Self {
        Self { inner, store }
    }
}

impl ParquetFileReaderFactory for DamageChecking {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let location = file.object_meta.location.clone();
        let size = file.object_meta.size;
        let inner = self
            .inner
            .create_reader(partition_index, file, metadata_size_hint, metrics)?;
        Ok(Box::new(CheckedReader {
            inner,
            store: Arc::clone(&self.store),
            location,
            size,
        }))
    }
}

/// A reader whose failures name the damaged file, once storage confirms the damage.
struct CheckedReader {
    inner: Box<dyn AsyncFileReader + Send>,
    store: Arc<dyn ObjectStore>,
    location: Path,
    size: u64,
}

/// `e`, or the damage of the data file at `location` behind it.
async fn explain(
    store: Arc<dyn ObjectStore>,
    location: Path,
    size: u64,
    e: ParquetError,
) -> ParquetError {
    match examine(&store, &location, size).await {
        Some(problem) => ParquetError::External(Box::new(TableError::Damaged(Damage::at(
            &location, problem,
        )))),
        None => e,
    }
}

impl CheckedReader {
    /// Runs `read` on the inner reader; its failure is explained.
    fn checked<'a, T: Send + 'a>(
        &'a mut self,
        read: impl FnOnce(
            &'a mut Box<dyn AsyncFileReader + Send>,
        ) -> BoxFuture<'a, parquet::errors::Result<T>>,
    ) -> BoxFuture<'a, parquet::errors::Result<T>> {
        let store = Arc::clone(&self.store);
        let location = self.location.clone();
        let size = self.size;
        let read = read(&mut self.inner);
        async move {
            match read.await {
                Ok(value) => Ok(value),
                Err(e) => Err(explain(store, location, size, e).await),
            }
        }
        .boxed()
    }
}

impl AsyncFileReader for CheckedReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.checked(|inner| inner.get_bytes(range))
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        self.checked(|inner| inner.get_byte_ranges(ranges))
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        let location = self.location.clone();
        let size = self.size;
        let read = self.checked(|inner| inner.get_metadata(options));
        async move {
            let metadata = read.await?;
            // A footer describing bytes outside the file would make the reader panic.
            check_layout(&metadata, size).map_err(|problem| {
                ParquetError::External(Box::new(TableError::Damaged(Damage::at(
                    &location,
                    format!("does not read as Parquet: {problem}"),
                ))))
            })?;
            Ok(metadata)
        }
        .boxed()
    }
}

/// One damaged file `FSCK REPAIR TABLE` found, and what it did about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file's path inside the table folder.
    pub file: String,
    pub problem: String,
    pub action: String,
}

impl From<LogRepair> for Finding {
    fn from(repair: LogRepair) -> Self {
        Self {
            file: repair.file,
            problem: repair.problem,
            action: repair.action.to_string(),
        }
    }
}

/// Repairs the data files of the table behind `handle` (its log is repaired first, see
/// `Catalog::repair_log`), or with `dry_run` only reports what it would do: every live data
/// file is examined and the damaged ones are removed in one commit.
pub async fn fsck(handle: &Arc<TableHandle>, dry_run: bool) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let snapshot = handle.refresh().await.map_err(external)?;
    let damaged: Vec<(Add, Damage)> = stream::iter(snapshot.files().cloned())
        .map(|add| async move {
            let damage = check(handle, &add).await?;
            Ok::<_, DataFusionError>(damage.map(|d| (add, d)))
        })
        .buffered(CONCURRENT_CHECKS)
        .try_filter_map(|found| futures::future::ready(Ok(found)))
        .try_collect()
        .await?;
    let action = if dry_run { "would remove" } else { "removed" };
    findings.extend(damaged.iter().map(|(_, damage)| Finding {
        file: damage.file.clone(),
        problem: damage.problem.clone(),
        action: action.to_string(),
    }));
    if dry_run || damaged.is_empty() {
        return Ok(findings);
    }
    let now = chrono::Utc::now().timestamp_millis();
    let actions: Vec<Action> = damaged
        .iter()
        .map(|(add, _)| Action::Remove(Remove::of(add, now)))
        .collect();
    let operation = Operation {
        name: "FSCK".into(),
        parameters: HashMap::new(),
        metrics: HashMap::from([("numRemovedFiles".into(), json!(damaged.len()))]),
        blind_append: false,
    };
    handle
        .commit(&snapshot, operation, actions)
        .await
        .map_err(external)?;
    Ok(findings)
}

/// The damage of one live file, if it has any: storage's view of it, its deletion vector, then
/// every row group decoded.
async fn check(handle: &TableHandle, add: &Add) -> Result<Option<Damage>> {
    let file = data_file(handle.log(), add)?;
    let location = &file.object_meta.location;
    let store = handle.log().store();
    let size = file.object_meta.size;
    if let Some(problem) = examine(store, location, size).await {
        return Ok(Some(Damage::at(location, problem)));
    }
    match handle.deletion_vector(add).await {
        Err(TableError::Damaged(damage)) => return Ok(Some(damage)),
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    Ok(undecodable_file(store, location, size)
        .await?
        .map(|problem| Damage::at(location, problem)))
}

/// What keeps the data file at `location` (`size` bytes, its footer sound) from decoding
/// whole, if anything.
async fn undecodable_file(
    store: &Arc<dyn ObjectStore>,
    location: &Path,
    size: u64,
) -> Result<Option<String>> {
    let reader = reader(store, location, size)?;
    let decoded = async {
        let mut batches = ParquetRecordBatchStreamBuilder::new(reader)
            .await?
            .build()?;
        while batches.try_next().await?.is_some() {}
        Ok::<_, ParquetError>(())
    };
    match guarded(decoded).await {
        Ok(()) => Ok(None),
        Err(e) if store_failed(&e) => Err(DataFusionError::ParquetError(Box::new(e))),
        Err(e) => Ok(Some(format!("does not decode: {}", parquet_cause(&e)))),
    }
}

/// A damaged data file gets a problem, never a panic: a small Parquet file mutated, through
/// the checks of scans and FSCK.
#[cfg(test)]
mod fuzz {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use object_store::memory::InMemory;
    use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
    use proptest::prelude::*;

    use super::{Result, examine, undecodable_file};
    use crate::fuzzing;
    use crate::storage::parquet::encode_batches;

    fn seed() -> Vec<u8> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from_iter_values(0..300)),
                Arc::new(StringArray::from_iter(
                    (0..300).map(|i| (i % 7 > 0).then(|| format!("v{i}"))),
                )),
            ],
        )
        .expect("a valid batch");
        encode_batches(schema, &[batch])
            .expect("encodes")
            .bytes
            .to_vec()
    }

    /// What a check of the data file `bytes` finds wrong with it, if anything.
    async fn problem(bytes: Vec<u8>) -> Result<Option<String>> {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let location = object_store::path::Path::from("db/t/part-0.parquet");
        let size = bytes.len() as u64;
        store
            .put(&location, PutPayload::from(bytes))
            .await
            .expect("stored");
        match examine(&store, &location, size).await {
            Some(problem) => Ok(Some(problem)),
            None => undecodable_file(&store, &location, size).await,
        }
    }

    /// Damaged data files kept in `tests/fuzz/data_file/` are found damaged, with a reason.
    #[tokio::test]
    async fn kept_data_files_are_found_damaged() {
        for (name, bytes) in fuzzing::kept_inputs("data_file") {
            let found = problem(bytes).await;
            assert!(matches!(found, Ok(Some(_))), "{name}: {found:?}");
        }
    }

    proptest! {
        #![proptest_config(fuzzing::config())]

        #[test]
        fn data_files_decode_or_fail(bytes in fuzzing::mutated(seed())) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            let _ = runtime.block_on(problem(bytes));
        }
    }
}
