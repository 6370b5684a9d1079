//! What the server's own maintenance did: the runs of background compaction, kept in memory
//! for `sys.compactions` and the admin service.
//!
//! The durable record is the Delta log itself (every compaction is an `OPTIMIZE` commit); this
//! adds what the log cannot say: which runs were automatic, how long they took, and the ones
//! that failed.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::table::OptimizeReport;

/// Runs remembered; older ones are forgotten first.
const KEPT_RUNS: usize = 1000;

/// One compaction of one table.
#[derive(Debug, Clone)]
pub struct CompactionRun {
    pub database: String,
    pub table: String,
    /// `interval` (the background schedule) or `manual` (the admin service's trigger).
    pub trigger: &'static str,
    /// Why the table qualified, e.g. `12 small files`.
    pub reason: String,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    /// What OPTIMIZE did, or why it failed.
    pub outcome: Result<OptimizeReport, String>,
}

/// Recent compaction runs and pass counters.
#[derive(Debug, Default)]
pub struct MaintenanceLog {
    runs: Mutex<VecDeque<CompactionRun>>,
    passes: AtomicU64,
    last_pass_ms: AtomicI64,
}

impl MaintenanceLog {
    pub fn record(&self, run: CompactionRun) {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        if runs.len() == KEPT_RUNS {
            runs.pop_front();
        }
        runs.push_back(run);
    }

    /// Counts a finished pass over every table.
    pub fn pass_finished(&self, at_ms: i64) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.last_pass_ms.store(at_ms, Ordering::Relaxed);
    }

    /// Remembered runs, oldest first.
    pub fn runs(&self) -> Vec<CompactionRun> {
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.iter().cloned().collect()
    }

    /// Passes finished since the server started.
    pub fn passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }

    /// When the last pass finished (milliseconds since the epoch), 0 before the first.
    pub fn last_pass_ms(&self) -> i64 {
        self.last_pass_ms.load(Ordering::Relaxed)
    }
}
