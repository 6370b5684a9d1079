//! [`DeltaTableProvider`]: one table at one snapshot, as a DataFusion `TableProvider`.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, Result, not_impl_err};
use datafusion::datasource::TableType;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;

use super::pruning::FilePruningStats;
use super::scan::{DeltaScanExec, FileCounts, ParquetScan, data_file, parquet_scan};
use super::{DeltaSink, TableHandle};
use crate::txlog::{Add, FileStats, Snapshot};

/// A Delta table pinned to the snapshot its statement resolved.
#[derive(Debug)]
pub struct DeltaTableProvider {
    name: String,
    handle: Arc<TableHandle>,
    snapshot: Arc<Snapshot>,
    store_url: ObjectStoreUrl,
}

impl DeltaTableProvider {
    pub fn new(
        name: String,
        handle: Arc<TableHandle>,
        snapshot: Arc<Snapshot>,
        store_url: ObjectStoreUrl,
    ) -> Self {
        Self {
            name,
            handle,
            snapshot,
            store_url,
        }
    }

    /// The files a scan with `filters` must read: those whose statistics may match.
    fn select_files(&self, state: &dyn Session, filters: &[Expr]) -> Result<Vec<&Add>> {
        let files: Vec<(&Add, &FileStats)> = self.snapshot.files_with_stats().collect();
        let Some(predicate) = conjunction(filters.iter().cloned()) else {
            return Ok(files.into_iter().map(|(add, _)| add).collect());
        };
        let schema = self.schema();
        let df_schema = DFSchema::try_from(Arc::clone(&schema))?;
        let physical = state.create_physical_expr(predicate, &df_schema)?;
        let Some(pruning) = PruningPredicateBuilder::new()
            .with_file_schema(Arc::clone(&schema))
            .build(physical)
        else {
            return Ok(files.into_iter().map(|(add, _)| add).collect());
        };
        let stats: Vec<&FileStats> = files.iter().map(|(_, stats)| *stats).collect();
        let keep = pruning.prune(&FilePruningStats::new(&schema, &stats))?;
        Ok(files
            .into_iter()
            .zip(keep)
            .filter_map(|((add, _), keep)| keep.then_some(add))
            .collect())
    }
}

#[async_trait]
impl TableProvider for DeltaTableProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(self.snapshot.schema())
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Statistics only skip whole files; DataFusion still filters the rows it reads.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !self.snapshot.metadata().partition_columns.is_empty() {
            return not_impl_err!("reading partitioned Delta tables is not supported yet");
        }
        let selected = self.select_files(state, filters)?;
        let counts = FileCounts {
            in_snapshot: self.snapshot.files().len(),
            after_stats: selected.len(),
        };
        let mut files = Vec::with_capacity(selected.len());
        for add in selected {
            if add.deletion_vector.is_some() {
                return not_impl_err!(
                    "reading files with deletion vectors is not supported yet (table {})",
                    self.name
                );
            }
            files.push(data_file(self.handle.log().root(), add)?);
        }
        let schema = self.schema();
        let input: Arc<dyn ExecutionPlan> = if files.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(schema.project(p)?),
                None => schema,
            };
            Arc::new(EmptyExec::new(projected))
        } else {
            let predicate = match conjunction(filters.iter().cloned()) {
                Some(predicate) => {
                    let df_schema = DFSchema::try_from(Arc::clone(&schema))?;
                    Some(state.create_physical_expr(predicate, &df_schema)?)
                }
                None => None,
            };
            parquet_scan(ParquetScan {
                runtime: state.runtime_env().clone(),
                store_url: self.store_url.clone(),
                schema,
                files,
                projection: projection.cloned(),
                predicate,
                limit,
                partitions: state.config().target_partitions(),
            })?
        };
        Ok(Arc::new(DeltaScanExec::new(
            self.name.clone(),
            self.snapshot.version(),
            counts,
            input,
        )))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return not_impl_err!("INSERT {insert_op} is not supported; use INSERT INTO");
        }
        let sink = DeltaSink::new(
            self.name.clone(),
            Arc::clone(&self.handle),
            Arc::clone(&self.snapshot),
            self.store_url.clone(),
        );
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}
