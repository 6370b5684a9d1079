//! The Delta Lake transaction log: actions, snapshots and commits.
//!
//! A table is a directory whose `_delta_log/` holds commits `{version:020}.json`, each a list of
//! newline-delimited JSON actions. Life of a commit:
//!
//! 1. A writer reads a [`Snapshot`] at version `v` (protocol, metadata, live files).
//! 2. It writes its data files, which are invisible until referenced by the log.
//! 3. [`DeltaLog::commit`] writes `{v+1:020}.json` with `PutMode::Create`: the object store makes
//!    the create atomic and exclusive, so exactly one writer wins each version.
//! 4. A loser reads the winning commits and retries at the next version when the Delta conflict
//!    rules allow it (write-serializable: a blind append never conflicts with another append, and
//!    an UPDATE/DELETE moves past concurrent blind appends), or fails with
//!    [`TxLogError::Conflict`], which tells the user to retry.
//!
//! A crash before step 3 leaves only unreferenced files (orphans for VACUUM); a crash after it
//! leaves a complete commit. This layer never imports DataFusion or tonic.

mod actions;
mod checkpoint;
pub mod commit_point;
mod dv;
mod error;
mod file_columns;
mod log;
mod schema;
mod snapshot;

#[cfg(test)]
pub(crate) use actions::test_table_metadata;
pub use actions::{
    Action, Add, CommitInfo, ENABLE_DELETION_VECTORS, Format, Metadata, Protocol, Remove,
    STATISTICS_PROPERTY,
};
pub use dv::{DeletionVectorDescriptor, write_deletion_vector};
pub use error::TxLogError;
pub use log::{
    CleanUp, CommitFile, DeltaLog, LogRepair, MIN_READABLE_VERSION, Operation, SET_ASIDE_DIR,
    VACUUM_OPERATION,
};
pub use schema::{
    CHAR_VARCHAR_TYPE, COLUMN_MAPPING_ID, DeclaredLength, PHYSICAL_NAME, TYPE_CHANGES,
    arrow_schema_from_delta, declared_length, delta_schema_string, delta_type_name, is_mapped,
    physical_name, physical_schema, unmapped,
};
pub use snapshot::{COLUMN_MAPPING_MODE, FileStats, Snapshot};

/// What storage hands the log decoders — commit lines, checkpoints, deletion vectors — decodes
/// or fails with an error, never a panic: valid inputs mutated, and arbitrary bytes.
#[cfg(test)]
mod fuzz {
    use bytes::Bytes;
    use proptest::prelude::*;
    use roaring::RoaringTreemap;

    use super::checkpoint;
    use super::dv::{decode_bitmap, encode_bitmap};
    use crate::fuzzing;

    const COMMIT: &str = concat!(
        r#"{"add":{"path":"part-0.parquet","partitionValues":{},"size":512,"#,
        r#""modificationTime":1,"dataChange":true,"stats":"{\"numRecords\":3}","#,
        r#""deletionVector":{"storageType":"u","pathOrInlineDv":"ab^-aqEH.-t@S}K{vb[*k^","#,
        r#""offset":1,"sizeInBytes":36,"cardinality":2}}}"#,
    );

    fn checkpoint_seed() -> Vec<u8> {
        let actions = vec![super::Action::from_json_line(COMMIT).expect("a valid add")];
        checkpoint::encode(&actions)
            .map(|b| b.to_vec())
            .unwrap_or_default()
    }

    fn bitmap_seed() -> Vec<u8> {
        encode_bitmap(&RoaringTreemap::from_iter([1u64, 7, 1 << 33]))
    }

    /// Damaged checkpoints kept in `tests/fuzz/checkpoint/` decode (one damaged only in the
    /// embedded Arrow schema, which the decoder skips) or fail with a reason.
    #[test]
    fn kept_checkpoints_decode_or_fail_with_a_reason() {
        for (name, bytes) in fuzzing::kept_inputs("checkpoint") {
            let outcome = checkpoint::decode(Bytes::from(bytes), checkpoint::Read::All);
            assert!(
                outcome.as_ref().is_ok_and(|actions| !actions.is_empty())
                    || outcome.as_ref().is_err_and(|reason| !reason.is_empty()),
                "{name}: {outcome:?}"
            );
        }
    }

    proptest! {
        #![proptest_config(fuzzing::config())]

        #[test]
        fn commit_lines_decode_or_fail(line in prop_oneof![
            fuzzing::mutated(COMMIT.as_bytes().to_vec())
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            any::<String>(),
        ]) {
            let _ = super::Action::from_json_line(&line);
        }

        #[test]
        fn checkpoints_decode_or_fail(bytes in prop_oneof![
            fuzzing::mutated(checkpoint_seed()),
            prop::collection::vec(any::<u8>(), 0..512),
        ]) {
            let _ = checkpoint::decode(Bytes::from(bytes), checkpoint::Read::All);
        }

        #[test]
        fn deletion_vectors_decode_or_fail(bytes in prop_oneof![
            fuzzing::mutated(bitmap_seed()),
            prop::collection::vec(any::<u8>(), 0..256),
        ]) {
            let _ = decode_bitmap(&bytes);
        }
    }
}
