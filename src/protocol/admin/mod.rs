//! MiniDB's admin gRPC service (`minidb.v1.AdminService`), served beside Flight SQL.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::engine::Engine;

/// Code generated from `proto/minidb/v1/admin.proto`.
pub mod proto {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("minidb.v1");
}

use proto::admin_service_server::AdminService;
use proto::{GetStatusRequest, GetStatusResponse};

pub use proto::admin_service_server::AdminServiceServer;

/// Answers admin calls from the engine's state.
pub struct Admin {
    engine: Arc<Engine>,
}

impl Admin {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl AdminService for Admin {
    async fn get_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        let catalog = self.engine.catalog();
        let storage_error = |e: crate::catalog::CatalogError| Status::internal(e.to_string());
        let databases = catalog.databases().await.map_err(storage_error)?;
        let tables = catalog.table_count().await.map_err(storage_error)?;
        Ok(Response::new(GetStatusResponse {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.engine.uptime().as_secs(),
            storage_root: catalog.store().root_url().to_string(),
            database_count: databases.len() as u64,
            table_count: tables as u64,
        }))
    }
}
