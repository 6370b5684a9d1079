//! The data root: one object store and the URL it was opened from.
//!
//! Local directories are opened with `LocalFileSystem`, whose `PutMode::Create` is an atomic
//! create (a staged file hard-linked into place), which is what Delta commits need, wrapped so
//! every put is fsynced before it is acknowledged.
//!
//! Every backend is wrapped in a [`MeteredStore`] that counts the bytes it moves; a bucket's
//! can also be wrapped in a [`CachedStore`] ([`DataStore::with_read_cache`]), outside the meter,
//! so that the meter counts what crosses the network.
//!
//! `s3://bucket/prefix` opens an S3-compatible bucket with object_store's AWS client, whose
//! `PutMode::Create` is a conditional PUT (`If-None-Match: *`): of two servers committing the
//! same log version, the store accepts one and answers the other 412, so several servers can
//! share one bucket. Settings come from [`S3Settings`], then the standard `AWS_*` environment.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, RetryConfig};
use url::Url;

use super::StorageError;
use super::cache::{CacheSettings, CachedStore, ReadCache};
use super::columns::ColumnCache;
use super::durable::SyncedLocalStore;
use super::metered::MeteredStore;

/// Scheme and authority under which the store is registered with the query engine.
const ENGINE_STORE_URL: &str = "minidb://data/";

/// The object store holding every database, with paths relative to the data root.
#[derive(Debug, Clone)]
pub struct DataStore {
    store: Arc<dyn ObjectStore>,
    root: Url,
    cache: Option<Arc<ReadCache>>,
    columns: Option<Arc<ColumnCache>>,
}

/// How to reach an S3-compatible bucket; anything left `None` comes from the standard `AWS_*`
/// environment variables (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, …).
#[derive(Clone, Default)]
pub struct S3Settings {
    /// The service's URL, e.g. `http://127.0.0.1:8333` for a local S3 server; AWS by default.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow a plain-HTTP endpoint (off by default: credentials would cross the network in clear).
    pub allow_http: bool,
    /// How often a failed request is retried (with exponential backoff); object_store's 10 when
    /// `None`. Requests are retried only where that is safe: reads, and writes that are
    /// idempotent or conditional.
    pub max_retries: Option<usize>,
    /// How long after its first attempt a request is retried at most; object_store's 3 minutes
    /// when `None`.
    pub retry_timeout: Option<Duration>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .field("max_retries", &self.max_retries)
            .field("retry_timeout", &self.retry_timeout)
            .finish()
    }
}

impl DataStore {
    /// Opens a data root given as a directory path or an object-store URL
    /// (`file:///abs/dir`, `memory://`). A missing local directory is created.
    pub fn open(location: &str) -> Result<Self, StorageError> {
        Self::open_with(location, &S3Settings::default())
    }

    /// Opens a data root as [`DataStore::open`] does, also accepting `s3://bucket[/prefix]`,
    /// reached with `s3`.
    pub fn open_with(location: &str, s3: &S3Settings) -> Result<Self, StorageError> {
        let Self { store, root, .. } = Self::open_backend(location, s3)?;
        Ok(Self {
            store: Arc::new(MeteredStore::new(store)),
            root,
            cache: None,
            columns: None,
        })
    }

    /// This store with reads of its immutable objects cached as `settings` say.
    pub fn with_read_cache(self, settings: &CacheSettings) -> Result<Self, StorageError> {
        let cache = Arc::new(ReadCache::new(settings)?);
        Ok(Self {
            store: Arc::new(CachedStore::new(self.store, Arc::clone(&cache))),
            root: self.root,
            cache: Some(cache),
            columns: self.columns,
        })
    }

    /// This store with a cache of up to `bytes` of decoded column chunks (none when 0).
    pub fn with_column_cache(self, bytes: u64) -> Self {
        Self {
            columns: (bytes > 0).then(|| Arc::new(ColumnCache::new(bytes))),
            ..self
        }
    }

    /// The cache of decoded column chunks, when there is one.
    pub fn column_cache(&self) -> Option<&Arc<ColumnCache>> {
        self.columns.as_ref()
    }

    /// The read cache, when reads go through one.
    pub fn read_cache(&self) -> Option<&Arc<ReadCache>> {
        self.cache.as_ref()
    }

    /// Whether the data root is reached over the network (an S3 bucket), where a read cache pays.
    /// Deletes the files puts staged and never finished (a process killed mid-write leaves
    /// them) that are older than `older_than`, when the root is a local directory; returns how
    /// many. Object stores have no such files.
    pub async fn remove_stale_staged_files(
        &self,
        older_than: Duration,
    ) -> Result<usize, StorageError> {
        if self.root.scheme() != "file" {
            return Ok(0);
        }
        let Ok(dir) = self.root.to_file_path() else {
            return Ok(0);
        };
        let removed = tokio::task::spawn_blocking(move || {
            super::durable::remove_stale_staged_files(&dir, older_than)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
        for path in &removed {
            tracing::info!(path = %path.display(), "removed a staged file a killed write left");
        }
        Ok(removed.len())
    }

    pub fn is_remote(&self) -> bool {
        self.root.scheme() == "s3"
    }

    fn open_backend(location: &str, s3: &S3Settings) -> Result<Self, StorageError> {
        let invalid = |reason: String| StorageError::InvalidLocation {
            location: location.to_string(),
            reason,
        };
        match Url::parse(location) {
            Ok(url) if url.scheme() == "memory" => Ok(Self {
                store: Arc::new(InMemory::new()),
                root: url,
                cache: None,
                columns: None,
            }),
            Ok(url) if url.scheme() == "file" => {
                let dir = url
                    .to_file_path()
                    .map_err(|()| invalid("not a local file URL".into()))?;
                Self::open_dir(&dir.to_string_lossy())
            }
            Ok(url) if url.scheme() == "s3" => Self::open_s3(url, s3),
            // A single letter is a Windows drive, anything else an unsupported backend.
            Ok(url) if url.scheme().len() > 1 => Err(invalid(format!(
                "unsupported scheme '{}' (use a directory, file://, s3:// or memory://)",
                url.scheme()
            ))),
            _ => Self::open_dir(location),
        }
    }

    fn open_dir(dir: &str) -> Result<Self, StorageError> {
        let unusable = |e: std::io::Error| StorageError::InvalidLocation {
            location: dir.to_string(),
            reason: format!("{e}; --data must name a directory this user can create or write to"),
        };
        std::fs::create_dir_all(dir).map_err(unusable)?;
        let dir = std::fs::canonicalize(dir).map_err(unusable)?;
        let store = SyncedLocalStore::new(LocalFileSystem::new_with_prefix(&dir)?);
        let root = Url::from_directory_path(&dir).map_err(|()| StorageError::InvalidLocation {
            location: dir.display().to_string(),
            reason: "not an absolute path".into(),
        })?;
        Ok(Self {
            store: Arc::new(store),
            root,
            cache: None,
            columns: None,
        })
    }

    fn open_s3(url: Url, settings: &S3Settings) -> Result<Self, StorageError> {
        let bucket = url.host_str().filter(|b| !b.is_empty()).ok_or_else(|| {
            StorageError::InvalidLocation {
                location: url.to_string(),
                reason: "an S3 location names its bucket: s3://bucket[/prefix]".into(),
            }
        })?;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &settings.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &settings.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if settings.allow_http {
            builder = builder.with_allow_http(true);
        }
        let defaults = RetryConfig::default();
        builder = builder.with_retry(RetryConfig {
            max_retries: settings.max_retries.unwrap_or(defaults.max_retries),
            retry_timeout: settings.retry_timeout.unwrap_or(defaults.retry_timeout),
            ..defaults
        });
        let bucket_store = Arc::new(builder.build()?);
        let prefix = url.path().trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            bucket_store
        } else {
            Arc::new(PrefixStore::new(bucket_store, Path::from(prefix)))
        };
        Ok(Self {
            store,
            root: url,
            cache: None,
            columns: None,
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
