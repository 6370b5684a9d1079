//! Views: named queries, stored one JSON object per view at `<database>/_views/<name>.json`.
//!
//! A view is planned again by every statement that reads it (`provider.rs`), so it always reads
//! its base tables as they are now; nothing about it is cached. The `_views` folder cannot be a
//! table (names cannot start with `_`), and a view and a table never share a name: creating
//! either checks for the other. Two servers racing to create the same view: exactly one
//! succeeds (the object is created only if absent); `OR REPLACE` overwrites.

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::{Catalog, CatalogError, validate_name};
use crate::txlog::commit_point;

/// Folder of a database holding its views.
const VIEWS_FOLDER: &str = "_views";

/// A stored view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewDef {
    pub name: String,
    /// The view's query as SQL that DataFusion's parser reads (the engine stores it after its
    /// own rewrites, such as time travel, have run).
    pub query: String,
    /// The column names `CREATE VIEW v (a, b)` gives; empty for the query's own.
    #[serde(default)]
    pub columns: Vec<String>,
    #[serde(rename = "createdTime")]
    pub created_time: i64,
}

fn view_path(db: &str, name: &str) -> Path {
    Path::from(db)
        .join(VIEWS_FOLDER)
        .join(format!("{name}.json"))
}

impl Catalog {
    /// Stores a view; with `replace`, over an existing view of that name.
    pub async fn create_view(
        &self,
        db: &str,
        view: &ViewDef,
        replace: bool,
    ) -> Result<(), CatalogError> {
        validate_name(&view.name)?;
        self.require_database(db).await?;
        let qualified = format!("{db}.{}", view.name);
        if self.log(db, &view.name).exists().await? {
            return Err(CatalogError::TableExists(qualified));
        }
        let body = serde_json::to_string(view).map_err(|e| CatalogError::Corrupt {
            what: qualified.clone(),
            reason: e.to_string(),
        })?;
        let mode = if replace {
            PutMode::Overwrite
        } else {
            PutMode::Create
        };
        let options = PutOptions {
            mode,
            ..Default::default()
        };
        commit_point::reached();
        match self
            .store
            .object_store()
            .put_opts(&view_path(db, &view.name), PutPayload::from(body), options)
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => {
                Err(CatalogError::ViewExists(qualified))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a view.
    pub async fn drop_view(&self, db: &str, name: &str) -> Result<(), CatalogError> {
        validate_name(name)?;
        self.require_database(db).await?;
        let qualified = format!("{db}.{name}");
        let path = view_path(db, name);
        match self.store.object_store().head(&path).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => {
                return Err(CatalogError::ViewNotFound(qualified));
            }
            Err(e) => return Err(e.into()),
        }
        match self.store.object_store().delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The views of a database, sorted by name.
    pub async fn views(&self, db: &str) -> Result<Vec<String>, CatalogError> {
        validate_name(db)?;
        self.require_database(db).await?;
        let folder = Path::from(db).join(VIEWS_FOLDER);
        let mut names: Vec<String> = self
            .store
            .object_store()
            .list(Some(&folder))
            .try_filter_map(|meta| async move {
                Ok(meta
                    .location
                    .filename()
                    .and_then(|f| f.strip_suffix(".json"))
                    .filter(|n| validate_name(n).is_ok())
                    .map(str::to_string))
            })
            .try_collect()
            .await?;
        names.sort();
        Ok(names)
    }

    /// The view `db.name`; `None` when there is none.
    pub async fn view(&self, db: &str, name: &str) -> Result<Option<ViewDef>, CatalogError> {
        if validate_name(db).is_err() || validate_name(name).is_err() {
            return Ok(None);
        }
        let bytes = match self.store.object_store().get(&view_path(db, name)).await {
            Ok(object) => object.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CatalogError::Corrupt {
                what: format!("view {db}.{name}"),
                reason: e.to_string(),
            })
    }
}
