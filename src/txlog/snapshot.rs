//! A table's state at one version, reconstructed by replaying its commits in order.

use std::sync::Arc;

use arrow::datatypes::{DataType, FieldRef, Fields, SchemaRef};
use imbl::{HashMap, OrdMap};
use serde::Deserialize;
use serde_json::Value;

use super::{
    Action, Add, Metadata, Protocol, Remove, TxLogError, arrow_schema_from_delta, physical_name,
    physical_schema,
};

/// Reader features whose semantics MiniDB honours when scanning.
const SUPPORTED_READER_FEATURES: &[&str] = &[
    "deletionVectors",
    "timestampNtz",
    "columnMapping",
    "typeWidening",
    "typeWidening-preview",
];

/// The table property choosing column mapping's mode: `none`, `name` or `id`.
pub const COLUMN_MAPPING_MODE: &str = "delta.columnMapping.mode";

/// Protocol, metadata and live data files of a table at `version`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    version: i64,
    protocol: Protocol,
    metadata: Metadata,
    schema: SchemaRef,
    /// The schema as the data files hold it (physical names); `schema` itself without column
    /// mapping.
    file_schema: SchemaRef,
    files: LiveFiles,
}

/// A live data file and its statistics, parsed once when the file is added.
#[derive(Debug, Clone)]
struct LiveFile {
    add: Add,
    stats: Arc<FileStats>,
}

/// Live data files in the order they were added (so a scan of a small table returns rows in
/// insertion order), addressable by path.
///
/// Persistent maps: every commit's snapshot is the previous one plus a few changes, and shares
/// everything else with it, so advancing a table of many files costs a few tree nodes instead of
/// a copy of its whole file list.
#[derive(Debug, Clone, Default)]
struct LiveFiles {
    by_order: OrdMap<u64, Arc<LiveFile>>,
    order_of: HashMap<String, u64>,
    next: u64,
}

impl LiveFiles {
    fn add(&mut self, add: Add, stats: Arc<FileStats>) {
        // A file re-added (e.g. with a new deletion vector) keeps its place.
        let order = match self.order_of.get(&add.path) {
            Some(order) => *order,
            None => {
                self.next += 1;
                self.order_of.insert(add.path.clone(), self.next);
                self.next
            }
        };
        self.by_order
            .insert(order, Arc::new(LiveFile { add, stats }));
    }

    fn remove(&mut self, path: &str) {
        if let Some(order) = self.order_of.remove(path) {
            self.by_order.remove(&order);
        }
    }
}

impl Snapshot {
    /// Replays commits `0..=n`, given in version order, into a snapshot.
    pub(crate) fn replay(
        table: &str,
        commits: impl IntoIterator<Item = (i64, Vec<Action>)>,
    ) -> Result<Self, TxLogError> {
        let mut protocol = None;
        let mut metadata = None;
        let mut files = LiveFiles::default();
        let mut version = -1;
        for (v, actions) in commits {
            version = v;
            apply(&mut files, &mut protocol, &mut metadata, actions);
        }
        let corrupt = |reason: &str| TxLogError::Corrupt {
            path: table.to_string(),
            reason: reason.to_string(),
        };
        let protocol = protocol.ok_or_else(|| corrupt("no protocol action"))?;
        let metadata = metadata.ok_or_else(|| corrupt("no metaData action"))?;
        Self::new(version, protocol, metadata, files)
    }

    fn new(
        version: i64,
        protocol: Protocol,
        metadata: Metadata,
        files: LiveFiles,
    ) -> Result<Self, TxLogError> {
        check_readable(&protocol, &metadata)?;
        let schema = Arc::new(arrow_schema_from_delta(&metadata.schema_string)?);
        check_nested_names(schema.fields())?;
        let file_schema = match physical_schema(&schema) {
            physical if physical == *schema => Arc::clone(&schema),
            physical => Arc::new(physical),
        };
        Ok(Self {
            version,
            protocol,
            metadata,
            schema,
            file_schema,
            files,
        })
    }

    /// The snapshot after applying one more commit.
    pub(crate) fn advance(&self, version: i64, actions: Vec<Action>) -> Result<Self, TxLogError> {
        let mut files = self.files.clone();
        let mut protocol = Some(self.protocol.clone());
        let mut metadata = Some(self.metadata.clone());
        apply(&mut files, &mut protocol, &mut metadata, actions);
        // Both were Some before `apply`, which only ever replaces them.
        let (Some(protocol), Some(metadata)) = (protocol, metadata) else {
            unreachable!("apply never clears protocol or metadata")
        };
        Self::new(version, protocol, metadata, files)
    }

    pub fn version(&self) -> i64 {
        self.version
    }

    pub fn protocol(&self) -> &Protocol {
        &self.protocol
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The table schema in Arrow form.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The schema as the data files hold it: the columns under their physical names when
    /// column mapping is on (the same schema as [`Snapshot::schema`] otherwise).
    pub fn file_schema(&self) -> &SchemaRef {
        &self.file_schema
    }

    /// Live data files, oldest first.
    pub fn files(&self) -> impl ExactSizeIterator<Item = &Add> {
        self.files.by_order.values().map(|f| &f.add)
    }

    /// The live file at `path`, if any.
    pub fn file(&self, path: &str) -> Option<&Add> {
        let order = self.files.order_of.get(path)?;
        self.files.by_order.get(order).map(|f| &f.add)
    }

    /// The actions that turn `base` into this snapshot's set of files: a `remove` (carrying
    /// `base`'s deletion vector) for every file that left or whose deletion vector changed, and
    /// an `add` for every file that arrived or changed, after any protocol or metadata change.
    /// Used to commit a transaction's changes,
    /// staged over `base`, as one commit.
    pub fn changes_since(&self, base: &Snapshot, timestamp: i64) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.protocol != base.protocol {
            actions.push(Action::Protocol(self.protocol.clone()));
        }
        if self.metadata != base.metadata {
            actions.push(Action::Metadata(self.metadata.clone()));
        }
        for old in base.files() {
            let now = self.file(&old.path);
            if now.is_some_and(|add| add.deletion_vector == old.deletion_vector) {
                continue;
            }
            actions.push(Action::Remove(Remove::of(old, timestamp)));
        }
        for add in self.files() {
            let before = base.file(&add.path);
            if before.is_none_or(|old| old.deletion_vector != add.deletion_vector) {
                actions.push(Action::Add(add.clone()));
            }
        }
        actions
    }

    /// Live data files with their parsed statistics, oldest first.
    pub fn files_with_stats(&self) -> impl ExactSizeIterator<Item = (&Add, &FileStats)> {
        self.files
            .by_order
            .values()
            .map(|f| (&f.add, f.stats.as_ref()))
    }
}

fn apply(
    files: &mut LiveFiles,
    protocol: &mut Option<Protocol>,
    metadata: &mut Option<Metadata>,
    actions: Vec<Action>,
) {
    let adds: Vec<&Add> = actions.iter().filter_map(Action::as_add).collect();
    let mut stats = parsed_stats(&adds).into_iter();
    for action in actions {
        match action {
            Action::Protocol(p) => *protocol = Some(p),
            Action::Metadata(m) => *metadata = Some(m),
            Action::Add(add) => {
                let stats = stats.next().unwrap_or_default();
                files.add(add, stats);
            }
            Action::Remove(remove) => files.remove(&remove.path),
            Action::CommitInfo(_) | Action::Other(..) => {}
        }
    }
}

/// The statistics of `adds`, in order. A checkpoint's thousands of files are parsed on every
/// core: parsing their JSON is most of what opening a table of many files costs.
fn parsed_stats(adds: &[&Add]) -> Vec<Arc<FileStats>> {
    const FILES_PER_THREAD: usize = 2048;
    let parse = |adds: &[&Add]| -> Vec<Arc<FileStats>> {
        adds.iter().map(|a| Arc::new(FileStats::of(a))).collect()
    };
    if adds.len() < 2 * FILES_PER_THREAD {
        return parse(adds);
    }
    // Asked only here: it reads the process's CPU quota, which would cost every commit.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(adds.len() / FILES_PER_THREAD);
    if threads <= 1 {
        return parse(adds);
    }
    let chunk = adds.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut chunks = adds.chunks(chunk);
        let first = chunks.next().unwrap_or_default();
        let others: Vec<_> = chunks.map(|c| scope.spawn(move || parse(c))).collect();
        let mut stats = parse(first);
        for other in others {
            stats.extend(
                other
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            );
        }
        stats
    })
}

/// Refuses column mapping that renames a field inside a struct, list or map: MiniDB resolves
/// physical names of top-level columns only (its own tables keep nested fields' names).
fn check_nested_names(fields: &Fields) -> Result<(), TxLogError> {
    for field in fields {
        let nested: Vec<&FieldRef> = match field.data_type() {
            DataType::Struct(inner) => inner.iter().collect(),
            DataType::List(element) => vec![element],
            DataType::Map(entries, _) => vec![entries],
            _ => continue,
        };
        for inner in nested {
            if physical_name(inner) != inner.name() {
                return Err(TxLogError::Unsupported(format!(
                    "column mapping that renames the nested field '{}' of column '{}'",
                    inner.name(),
                    field.name()
                )));
            }
            check_nested_names(&Fields::from(vec![Arc::clone(inner)]))?;
        }
    }
    Ok(())
}

fn check_readable(protocol: &Protocol, metadata: &Metadata) -> Result<(), TxLogError> {
    if protocol.min_reader_version > 3 {
        return Err(TxLogError::Unsupported(format!(
            "Delta reader version {}",
            protocol.min_reader_version
        )));
    }
    let mode = metadata
        .configuration
        .get(COLUMN_MAPPING_MODE)
        .cloned()
        .flatten();
    if let Some(mode) = mode.filter(|m| m != "none" && m != "name") {
        return Err(TxLogError::Unsupported(format!(
            "Delta column mapping mode '{mode}' (MiniDB reads mode 'name')"
        )));
    }
    for feature in protocol.reader_features.iter().flatten() {
        if !SUPPORTED_READER_FEATURES.contains(&feature.as_str()) {
            return Err(TxLogError::Unsupported(format!(
                "Delta reader feature '{feature}'"
            )));
        }
    }
    Ok(())
}

/// The `stats` JSON of an `add` action.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileStats {
    #[serde(default)]
    pub num_records: Option<u64>,
    #[serde(default)]
    pub min_values: ColumnValues,
    #[serde(default)]
    pub max_values: ColumnValues,
    #[serde(default)]
    pub null_count: ColumnValues,
}

impl FileStats {
    /// Parses an add's stats; absent or malformed stats mean "unknown" (never skip the file).
    pub fn of(add: &Add) -> Self {
        add.stats
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default()
    }
}

/// One statistic's value per column (`minValues`, `maxValues` or `nullCount`), sorted by
/// column name.
///
/// A table keeps one of these per statistic per live file, so it is a sorted vector: a B-tree
/// map allocates a node for eleven entries however few it holds, which made the statistics of
/// a many-file table several times the size of everything else about it.
#[derive(Debug, Clone, Default)]
pub struct ColumnValues(Vec<(Box<str>, Value)>);

impl ColumnValues {
    /// The value recorded for `column`, if any.
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.0
            .binary_search_by(|(name, _)| name.as_ref().cmp(column))
            .ok()
            .map(|i| &self.0[i].1)
    }
}

impl<'de> Deserialize<'de> for ColumnValues {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ColumnValues;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of per-column values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ColumnValues, A::Error> {
                let mut values: Vec<(Box<str>, Value)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((name, value)) = map.next_entry::<String, Value>()? {
                    values.push((name.into_boxed_str(), value));
                }
                // JSON objects with a repeated key keep the last value, as a map would.
                values.reverse();
                values.sort_by(|a, b| a.0.cmp(&b.0));
                values.dedup_by(|later, earlier| later.0 == earlier.0);
                values.shrink_to_fit();
                Ok(ColumnValues(values))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txlog::DeletionVectorDescriptor;

    fn table() -> Vec<Action> {
        vec![
            Action::Protocol(Protocol {
                min_reader_version: 3,
                min_writer_version: 7,
                reader_features: Some(vec!["deletionVectors".into()]),
                writer_features: Some(vec!["deletionVectors".into()]),
            }),
            Action::Metadata(crate::txlog::actions::test_table_metadata()),
        ]
    }

    fn add(path: &str, dv: Option<i64>) -> Add {
        Add {
            path: path.into(),
            partition_values: Default::default(),
            size: 10,
            modification_time: 0,
            data_change: true,
            stats: None,
            tags: None,
            deletion_vector: dv.map(|cardinality| DeletionVectorDescriptor {
                storage_type: "u".into(),
                path_or_inline_dv: format!("dv{cardinality:0>18}"),
                offset: Some(1),
                size_in_bytes: 40,
                cardinality,
            }),
        }
    }

    fn remove(path: &str) -> Action {
        Action::Remove(Remove {
            path: path.into(),
            deletion_timestamp: Some(1),
            data_change: true,
            extended_file_metadata: None,
            partition_values: None,
            size: None,
            tags: None,
            deletion_vector: None,
        })
    }

    #[test]
    fn staged_changes_collapse_into_their_net_difference() {
        let mut commit = table();
        commit.extend([Action::Add(add("a", None)), Action::Add(add("b", None))]);
        let base = Snapshot::replay("t", [(0, commit)]).unwrap();
        // Statement 1: a gets a DV, c is added. Statement 2: a's DV grows, c is deleted again,
        // d is added. b is untouched.
        let staged = base
            .advance(
                0,
                vec![
                    remove("a"),
                    Action::Add(add("a", Some(1))),
                    Action::Add(add("c", None)),
                ],
            )
            .unwrap()
            .advance(
                0,
                vec![
                    remove("a"),
                    Action::Add(add("a", Some(2))),
                    remove("c"),
                    Action::Add(add("d", None)),
                ],
            )
            .unwrap();
        let changes = staged.changes_since(&base, 7);
        let summary: Vec<String> = changes
            .iter()
            .map(|a| match a {
                Action::Remove(r) => format!(
                    "-{}:{:?}",
                    r.path,
                    r.deletion_vector.as_ref().map(|d| d.cardinality)
                ),
                Action::Add(a) => format!(
                    "+{}:{:?}",
                    a.path,
                    a.deletion_vector.as_ref().map(|d| d.cardinality)
                ),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(summary, ["-a:None", "+a:Some(2)", "+d:None"]);
        // Replaying the net difference on the base gives the staged state.
        let replayed = base.advance(1, changes).unwrap();
        let files = |s: &Snapshot| -> Vec<(String, Option<i64>)> {
            let mut v: Vec<_> = s
                .files()
                .map(|a| {
                    (
                        a.path.clone(),
                        a.deletion_vector.as_ref().map(|d| d.cardinality),
                    )
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(files(&replayed), files(&staged));
    }

    #[test]
    fn metadata_changes_are_part_of_the_difference() {
        let base = Snapshot::replay("t", [(0, table())]).unwrap();
        let mut metadata = base.metadata().clone();
        metadata
            .configuration
            .insert("delta.enableDeletionVectors".into(), Some("true".into()));
        let staged = base
            .advance(0, vec![Action::Metadata(metadata.clone())])
            .unwrap();
        assert_eq!(staged.changes_since(&base, 1), [Action::Metadata(metadata)]);
        assert!(base.changes_since(&base, 1).is_empty());
    }
}
