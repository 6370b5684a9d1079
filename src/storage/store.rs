//! The data root: one object store and the URL it was opened from.
//!
//! Local directories are opened with `LocalFileSystem`, whose `PutMode::Create` is an atomic
//! create (a staged file hard-linked into place), which is what Delta commits need, wrapped so
//! every put is fsynced before it is acknowledged.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use url::Url;

use super::StorageError;
use super::durable::SyncedLocalStore;

/// Scheme and authority under which the store is registered with the query engine.
const ENGINE_STORE_URL: &str = "minidb://data/";

/// The object store holding every database, with paths relative to the data root.
#[derive(Debug, Clone)]
pub struct DataStore {
    store: Arc<dyn ObjectStore>,
    root: Url,
}

impl DataStore {
    /// Opens a data root given as a directory path or an object-store URL
    /// (`file:///abs/dir`, `memory://`). A missing local directory is created.
    pub fn open(location: &str) -> Result<Self, StorageError> {
        let invalid = |reason: String| StorageError::InvalidLocation {
            location: location.to_string(),
            reason,
        };
        match Url::parse(location) {
            Ok(url) if url.scheme() == "memory" => Ok(Self {
                store: Arc::new(InMemory::new()),
                root: url,
            }),
            Ok(url) if url.scheme() == "file" => {
                let dir = url
                    .to_file_path()
                    .map_err(|()| invalid("not a local file URL".into()))?;
                Self::open_dir(&dir.to_string_lossy())
            }
            // A single letter is a Windows drive, anything else an unsupported backend.
            Ok(url) if url.scheme().len() > 1 => Err(invalid(format!(
                "unsupported scheme '{}' (use a directory, file:// or memory://)",
                url.scheme()
            ))),
            _ => Self::open_dir(location),
        }
    }

    fn open_dir(dir: &str) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir)?;
        let dir = std::fs::canonicalize(dir)?;
        let store = SyncedLocalStore::new(LocalFileSystem::new_with_prefix(&dir)?);
        let root = Url::from_directory_path(&dir).map_err(|()| StorageError::InvalidLocation {
            location: dir.display().to_string(),
            reason: "not an absolute path".into(),
        })?;
        Ok(Self {
            store: Arc::new(store),
            root,
        })
    }

    /// The object store, with paths relative to the data root.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The URL the data root was opened from, for status reports and logs.
    pub fn root_url(&self) -> &Url {
        &self.root
    }

    /// The URL under which the query engine finds this store; data file paths are relative to it.
    pub fn engine_url(&self) -> &'static str {
        ENGINE_STORE_URL
    }
}
