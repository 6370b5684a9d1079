//! MiniDB's admin gRPC service (`minidb.v1.AdminService`), served beside Flight SQL.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::engine::{CompactionRun, Compactor, Engine};

/// Code generated from `proto/minidb/v1/admin.proto`.
pub mod proto {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("minidb.v1");
}

use proto::admin_service_server::AdminService;
use proto::{
    GetCompactionStatusRequest, GetCompactionStatusResponse, GetStatusRequest, GetStatusResponse,
    TriggerCompactionRequest, TriggerCompactionResponse,
};

/// Runs `GetCompactionStatus` reports at most.
const RECENT_RUNS: usize = 100;

pub use proto::admin_service_server::AdminServiceServer;

/// Answers admin calls from the engine's state.
pub struct Admin {
    engine: Arc<Engine>,
    compactor: Arc<Compactor>,
}

impl Admin {
    pub fn new(engine: Arc<Engine>, compactor: Arc<Compactor>) -> Self {
        Self { engine, compactor }
    }
}

fn run_message(run: CompactionRun) -> proto::CompactionRun {
    let (report, error) = match run.outcome {
        Ok(report) => (report, String::new()),
        Err(error) => (Default::default(), error),
    };
    proto::CompactionRun {
        database: run.database,
        table: run.table,
        trigger: run.trigger.to_string(),
        reason: run.reason,
        started_at_ms: run.started_at_ms,
        finished_at_ms: run.finished_at_ms,
        files_removed: report.files_removed as u64,
        files_added: report.files_added as u64,
        rows_purged: report.rows_purged,
        deletion_vectors_removed: report.deletion_vectors_removed as u64,
        version: report.version.unwrap_or(-1),
        error,
    }
}

#[tonic::async_trait]
impl AdminService for Admin {
    async fn get_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        let status = self
            .engine
            .catalog_status()
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(GetStatusResponse {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.engine.uptime().as_secs(),
            storage_root: status.storage_root,
            database_count: status.databases as u64,
            table_count: status.tables as u64,
        }))
    }

    async fn get_compaction_status(
        &self,
        _request: Request<GetCompactionStatusRequest>,
    ) -> Result<Response<GetCompactionStatusResponse>, Status> {
        let options = self.compactor.options();
        let history = self.engine.compaction_history(RECENT_RUNS);
        Ok(Response::new(GetCompactionStatusResponse {
            scheduled: options.interval.is_some(),
            interval_ms: options
                .interval
                .map_or(0, |i| u64::try_from(i.as_millis()).unwrap_or(u64::MAX)),
            min_small_files: options.min_small_files as u64,
            deleted_ratio: options.deleted_ratio,
            passes: history.passes,
            last_pass_at_ms: history.last_pass_ms,
            recent_runs: history.runs.into_iter().map(run_message).collect(),
        }))
    }

    async fn trigger_compaction(
        &self,
        _request: Request<TriggerCompactionRequest>,
    ) -> Result<Response<TriggerCompactionResponse>, Status> {
        let runs = self.compactor.run_pass("manual").await;
        Ok(Response::new(TriggerCompactionResponse {
            runs: runs.into_iter().map(run_message).collect(),
        }))
    }
}
