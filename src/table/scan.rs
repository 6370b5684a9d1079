//! `DeltaScanExec`: the Parquet scan of a Delta snapshot, with the file-skipping figures that
//! `EXPLAIN` shows.

use std::fmt;
use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

/// How many files of a snapshot a scan reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileCounts {
    /// Live files in the snapshot.
    pub in_snapshot: usize,
    /// Files left after skipping by per-file statistics.
    pub after_stats: usize,
}

/// Reads the files chosen for a scan (its only child does the Parquet work).
#[derive(Debug)]
pub struct DeltaScanExec {
    table: String,
    version: i64,
    counts: FileCounts,
    input: Arc<dyn ExecutionPlan>,
}

impl DeltaScanExec {
    pub fn new(
        table: String,
        version: i64,
        counts: FileCounts,
        input: Arc<dyn ExecutionPlan>,
    ) -> Self {
        Self {
            table,
            version,
            counts,
            input,
        }
    }

    pub fn counts(&self) -> FileCounts {
        self.counts
    }
}

impl DisplayAs for DeltaScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let FileCounts {
            in_snapshot,
            after_stats,
        } = self.counts;
        write!(
            f,
            "DeltaScanExec: table={}, version={}, files={after_stats}/{in_snapshot} ({} skipped by statistics)",
            self.table,
            self.version,
            in_snapshot - after_stats
        )
    }
}

impl ExecutionPlan for DeltaScanExec {
    fn name(&self) -> &str {
        "DeltaScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children.pop().ok_or_else(|| {
            datafusion::common::DataFusionError::Internal("DeltaScanExec needs one child".into())
        })?;
        Ok(Arc::new(Self {
            input,
            table: self.table.clone(),
            ..*self
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}
