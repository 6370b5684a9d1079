//! Deletion vectors: which physical rows of a data file are deleted (Delta `deletionVectors`).
//!
//! A deletion vector is a 64-bit Roaring bitmap of row positions, counted from 0 across all row
//! groups of the Parquet file. Its bytes (`RoaringBitmapArray`) are a little-endian magic number
//! followed by the portable 64-bit Roaring format. They live either inline in the log (Z85 text)
//! or in a DV file beside the data:
//!
//! ```text
//! u8 version = 1 | per DV: u32 BE size | size bytes (magic + bitmap) | u32 BE CRC-32 of them
//! ```
//!
//! The descriptor's `offset` points at the size prefix. MiniDB writes one fresh DV file per
//! touched data file (`deletion_vector_<uuid>.bin` in the table folder, `storageType: "u"`),
//! never appends to an existing one, and reads all three storage types peers write (`u`, `i`,
//! and `p` when the absolute path lies inside the table).

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use roaring::RoaringTreemap;
use serde::{Deserialize, Serialize};

use super::{DeltaLog, TxLogError};

/// First four bytes (little-endian) of a serialized `RoaringBitmapArray` in portable format.
const MAGIC: u32 = 1_681_511_377;
/// Version byte at the start of every DV file.
const FILE_VERSION: u8 = 1;

/// `add.deletionVector` / `remove.deletionVector`: where a file's deletion vector is stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletionVectorDescriptor {
    /// `u` (file named by a UUID, relative to the table), `i` (inline) or `p` (absolute path).
    pub storage_type: String,
    pub path_or_inline_dv: String,
    /// Byte offset of this DV's size prefix in its file; absent for inline DVs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i32>,
    /// Serialized bitmap size, magic included, size prefix and checksum excluded.
    pub size_in_bytes: i32,
    /// Number of deleted rows.
    pub cardinality: i64,
}

impl DeletionVectorDescriptor {
    /// Identifies the stored bitmap (the same DV file may hold several at different offsets).
    pub fn unique_id(&self) -> String {
        match self.offset {
            Some(offset) => format!("{}{}@{offset}", self.storage_type, self.path_or_inline_dv),
            None => format!("{}{}", self.storage_type, self.path_or_inline_dv),
        }
    }

    /// The DV file of a file in `log`'s table, for file-based storage types.
    pub fn file_path(&self, log: &DeltaLog) -> Result<Option<Path>, TxLogError> {
        let table_root = log.root();
        match self.storage_type.as_str() {
            "i" => Ok(None),
            "u" => {
                let encoded = &self.path_or_inline_dv;
                if encoded.len() < 20 || !encoded.is_char_boundary(encoded.len() - 20) {
                    return Err(self.corrupt("a 'u' deletion vector needs a 20-character UUID"));
                }
                let (prefix, id) = encoded.split_at(encoded.len() - 20);
                let bytes = z85::decode(id).map_err(|e| self.corrupt(&e))?;
                let uuid =
                    uuid::Uuid::from_slice(&bytes).map_err(|e| self.corrupt(&e.to_string()))?;
                let name = format!("deletion_vector_{uuid}.bin");
                let mut path = table_root.clone();
                if !prefix.is_empty() {
                    path = path.join(prefix);
                }
                Ok(Some(path.join(name.as_str())))
            }
            "p" => log.file_path(&self.path_or_inline_dv).map(Some),
            other => Err(TxLogError::Unsupported(format!(
                "deletion vector storage type '{other}'"
            ))),
        }
    }

    /// Reads and checks the bitmap this descriptor points at.
    pub async fn load(&self, log: &DeltaLog) -> Result<RoaringTreemap, TxLogError> {
        let store = log.store().as_ref();
        let table_root = log.root();
        let file = self.file_path(log)?;
        let damaged = |reason: &str| TxLogError::DamagedDeletionVector {
            location: match &file {
                Some(path) => {
                    let inside: Vec<_> = path
                        .prefix_match(table_root)
                        .map(|parts| parts.map(|p| p.as_ref().to_string()).collect())
                        .unwrap_or_default();
                    format!("'{}'", inside.join("/"))
                }
                None => "(inline in the log)".into(),
            },
            reason: reason.to_string(),
        };
        let size =
            usize::try_from(self.size_in_bytes).map_err(|_| damaged("negative sizeInBytes"))?;
        let bitmap = match &file {
            None => {
                let mut bytes = z85::decode(&self.path_or_inline_dv).map_err(|e| damaged(&e))?;
                if bytes.len() < size {
                    return Err(damaged("inline data shorter than sizeInBytes"));
                }
                bytes.truncate(size);
                decode_bitmap(&bytes).map_err(|e| damaged(&e))?
            }
            Some(path) => {
                let offset = u64::try_from(self.offset.unwrap_or(1))
                    .map_err(|_| damaged("negative offset"))?;
                let end = offset + 4 + size as u64 + 4;
                let framed = match store.get_range(path, offset..end).await {
                    Ok(framed) => framed,
                    Err(object_store::Error::NotFound { .. }) => {
                        return Err(damaged("the file is missing"));
                    }
                    Err(e) => {
                        // A range past the end is an error on some stores: tell that apart
                        // from a store that failed.
                        return match store.head(path).await {
                            Ok(meta) if meta.size < end => Err(damaged(&format!(
                                "the file is {} bytes, its descriptor reads up to byte {end}",
                                meta.size
                            ))),
                            _ => Err(e.into()),
                        };
                    }
                };
                if framed.len() as u64 != end - offset {
                    return Err(damaged(&format!(
                        "the file ends before byte {end} its descriptor names"
                    )));
                }
                let stored_size = u32::from_be_bytes(framed[0..4].try_into().unwrap_or_default());
                if stored_size as usize != size {
                    return Err(damaged(&format!(
                        "size prefix {stored_size} differs from sizeInBytes {size}"
                    )));
                }
                let data = &framed[4..4 + size];
                let crc = u32::from_be_bytes(framed[4 + size..].try_into().unwrap_or_default());
                if crc32fast::hash(data) != crc {
                    return Err(damaged("checksum mismatch"));
                }
                decode_bitmap(data).map_err(|e| damaged(&e))?
            }
        };
        if bitmap.len() != u64::try_from(self.cardinality).unwrap_or(u64::MAX) {
            return Err(damaged(&format!(
                "bitmap holds {} rows, cardinality says {}",
                bitmap.len(),
                self.cardinality
            )));
        }
        Ok(bitmap)
    }

    fn corrupt(&self, reason: &str) -> TxLogError {
        TxLogError::Corrupt {
            path: self.unique_id(),
            reason: format!("deletion vector: {reason}"),
        }
    }
}

/// Writes `bitmap` to a new DV file in the table folder; returns its descriptor and the number
/// of bytes written.
pub async fn write_deletion_vector(
    store: &dyn ObjectStore,
    table_root: &Path,
    bitmap: &RoaringTreemap,
) -> Result<(DeletionVectorDescriptor, usize), TxLogError> {
    let data = encode_bitmap(bitmap);
    let size = u32::try_from(data.len())
        .map_err(|_| TxLogError::Unsupported("a deletion vector over 4 GiB".into()))?;
    let mut file = Vec::with_capacity(1 + 4 + data.len() + 4);
    file.push(FILE_VERSION);
    file.extend_from_slice(&size.to_be_bytes());
    file.extend_from_slice(&data);
    file.extend_from_slice(&crc32fast::hash(&data).to_be_bytes());
    let uuid = uuid::Uuid::new_v4();
    let path = table_root
        .clone()
        .join(format!("deletion_vector_{uuid}.bin").as_str());
    let written = file.len();
    let options = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    store
        .put_opts(&path, PutPayload::from(file), options)
        .await?;
    let descriptor = DeletionVectorDescriptor {
        storage_type: "u".into(),
        path_or_inline_dv: z85::encode(uuid.as_bytes()),
        offset: Some(1),
        size_in_bytes: size as i32,
        cardinality: bitmap.len() as i64,
    };
    Ok((descriptor, written))
}

/// Serializes a bitmap as a `RoaringBitmapArray`: LE magic, then the portable 64-bit format.
pub fn encode_bitmap(bitmap: &RoaringTreemap) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4 + bitmap.serialized_size());
    bytes.extend_from_slice(&MAGIC.to_le_bytes());
    bitmap
        .serialize_into(&mut bytes)
        .expect("writing into a Vec cannot fail");
    bytes
}

/// Parses a `RoaringBitmapArray` in portable format.
pub fn decode_bitmap(bytes: &[u8]) -> Result<RoaringTreemap, String> {
    let Some((magic, rest)) = bytes.split_first_chunk::<4>() else {
        return Err("shorter than its magic number".into());
    };
    let magic = u32::from_le_bytes(*magic);
    if magic != MAGIC {
        return Err(format!("unknown magic number {magic}"));
    }
    RoaringTreemap::deserialize_from(rest).map_err(|e| e.to_string())
}

/// Z85 as Delta uses it: big-endian 4-byte blocks, input zero-padded to a multiple of 4.
mod z85 {
    const ALPHABET: &[u8; 85] =
        b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(4) * 5);
        for chunk in bytes.chunks(4) {
            let mut block = [0u8; 4];
            block[..chunk.len()].copy_from_slice(chunk);
            let mut value = u32::from_be_bytes(block);
            let mut chars = [0u8; 5];
            for c in chars.iter_mut().rev() {
                *c = ALPHABET[(value % 85) as usize];
                value /= 85;
            }
            out.extend(chars.iter().map(|&c| c as char));
        }
        out
    }

    pub fn decode(text: &str) -> Result<Vec<u8>, String> {
        let text = text.as_bytes();
        if !text.len().is_multiple_of(5) {
            return Err(format!("Z85 text of {} characters", text.len()));
        }
        let mut out = Vec::with_capacity(text.len() / 5 * 4);
        for chunk in text.chunks(5) {
            let mut value: u64 = 0;
            for &c in chunk {
                let digit = ALPHABET
                    .iter()
                    .position(|&a| a == c)
                    .ok_or_else(|| format!("'{}' is not a Z85 character", c as char))?;
                value = value * 85 + digit as u64;
            }
            let value = u32::try_from(value).map_err(|_| "Z85 block overflows".to_string())?;
            out.extend_from_slice(&value.to_be_bytes());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use object_store::memory::InMemory;

    /// Spark's DV file for rows {0, 9} (delta-kernel-rs test table `table-with-dv-small`).
    const SPARK_FILE: [u8; 45] = [
        0x01, 0x00, 0x00, 0x00, 0x24, 0xd1, 0xd3, 0x39, 0x64, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3a, 0x30, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x00, 0x2a, 0x67, 0x18, 0x46,
    ];

    #[test]
    fn encodes_spark_bytes_exactly() {
        let bitmap: RoaringTreemap = [0u64, 9].into_iter().collect();
        assert_eq!(encode_bitmap(&bitmap), SPARK_FILE[5..41]);
        assert_eq!(crc32fast::hash(&SPARK_FILE[5..41]), 0x2a67_1846);
    }

    #[tokio::test]
    async fn reads_a_spark_dv_file() {
        let store = Arc::new(InMemory::new());
        let log = DeltaLog::new(store.clone(), Path::from("db/t"));
        let descriptor = DeletionVectorDescriptor {
            storage_type: "u".into(),
            path_or_inline_dv: "vBn[lx{q8@P<9BNH/isA".into(),
            offset: Some(1),
            size_in_bytes: 36,
            cardinality: 2,
        };
        let path = descriptor.file_path(&log).unwrap().unwrap();
        assert!(
            path.as_ref().starts_with("db/t/deletion_vector_61d16c75-"),
            "{path}"
        );
        store
            .put(&path, PutPayload::from(SPARK_FILE.to_vec()))
            .await
            .unwrap();
        let bitmap = descriptor.load(&log).await.unwrap();
        assert_eq!(bitmap.iter().collect::<Vec<_>>(), [0, 9]);
        // The same file named by its absolute URI (a shallow clone's 'p' descriptor).
        let clone = DeltaLog::new(store, Path::from("db/c"))
            .with_base(url::Url::parse("file:///data").unwrap());
        let uri = clone.absolute_uri(&path).unwrap();
        assert!(
            uri.starts_with("file:///data/db/t/deletion_vector_61d16c75-"),
            "{uri}"
        );
        let absolute = DeletionVectorDescriptor {
            storage_type: "p".into(),
            path_or_inline_dv: uri,
            ..descriptor
        };
        assert_eq!(absolute.file_path(&clone).unwrap(), Some(path));
        let bitmap = absolute.load(&clone).await.unwrap();
        assert_eq!(bitmap.iter().collect::<Vec<_>>(), [0, 9]);
    }

    #[tokio::test]
    async fn reads_kernels_inline_vector() {
        let descriptor = DeletionVectorDescriptor {
            storage_type: "i".into(),
            path_or_inline_dv: "^Bg9^0rr910000000000iXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L".into(),
            offset: None,
            size_in_bytes: 44,
            cardinality: 6,
        };
        let log = DeltaLog::new(Arc::new(InMemory::new()), Path::from("t"));
        let bitmap = descriptor.load(&log).await.unwrap();
        assert_eq!(bitmap.iter().collect::<Vec<_>>(), [3, 4, 7, 11, 18, 29]);
        // Zero padding, as Delta expects, reproduces the same text.
        assert_eq!(
            z85::encode(&encode_bitmap(&bitmap)),
            descriptor.path_or_inline_dv
        );
    }

    #[tokio::test]
    async fn written_vectors_read_back_and_detect_corruption() {
        let store = Arc::new(InMemory::new());
        let root = Path::from("db/t");
        let log = DeltaLog::new(store.clone(), root.clone());
        let bitmap: RoaringTreemap = (0u64..100_000).step_by(3).chain([5_000_000_000]).collect();
        let (descriptor, written) = write_deletion_vector(store.as_ref(), &root, &bitmap)
            .await
            .unwrap();
        assert_eq!(descriptor.cardinality, bitmap.len() as i64);
        assert_eq!(written, 1 + 4 + descriptor.size_in_bytes as usize + 4);
        assert_eq!(descriptor.load(&log).await.unwrap(), bitmap);

        let path = descriptor.file_path(&log).unwrap().unwrap();
        let mut bytes = store
            .get(&path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        bytes[20] ^= 0xff;
        store.put(&path, PutPayload::from(bytes)).await.unwrap();
        let error = descriptor.load(&log).await.unwrap_err();
        assert!(error.to_string().contains("checksum"), "{error}");
    }

    #[test]
    fn descriptors_use_delta_field_names() {
        let json = r#"{"storageType":"u","pathOrInlineDv":"ab^-aqEH.-t@S}K{vb[*k^","offset":1,"sizeInBytes":36,"cardinality":2}"#;
        let descriptor: DeletionVectorDescriptor = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&descriptor).unwrap(), json);
        let log = DeltaLog::new(Arc::new(InMemory::new()), Path::from("t"));
        let path = descriptor.file_path(&log).unwrap().unwrap();
        assert_eq!(
            path.as_ref(),
            "t/ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin"
        );
    }
}
