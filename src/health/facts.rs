//! What the exporter learns from one cycle, taken from the engine's report
//! in one place so a change to the report touches only this file.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::reconcile::cycle::CycleReport;
use crate::reconcile::record::ActionResult;

/// Label of errors counted by a cycle that no failed action accounts for:
/// clusters not fully observed and connection parameters that could not be read.
pub(crate) const OBSERVE_INCOMPLETE: &str = "observe_incomplete";

/// The words of the journal's cycle event and of `STATUS=`
/// (`daemon::status::outcome_of`), plus `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CycleOutcome {
    /// Completed; nothing failed, nothing left over.
    Ok,
    /// Completed without errors; the change budget left work for later.
    Pending,
    /// Completed, but some action failed or some source was not fully read.
    Errors,
    /// Stopped before its end (e.g. Guacamole unreachable).
    Failed,
}

impl CycleOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CycleOutcome::Ok => "ok",
            CycleOutcome::Pending => "pending",
            CycleOutcome::Errors => "errors",
            CycleOutcome::Failed => "failed",
        }
    }

    /// Whether the cycle ran to its end (what readiness asks for).
    pub fn completed(self) -> bool {
        self != CycleOutcome::Failed
    }

    /// Whether it completed without errors (what "last success" means).
    pub fn clean(self) -> bool {
        matches!(self, CycleOutcome::Ok | CycleOutcome::Pending)
    }
}

/// One cycle, as the metrics and the readiness rule see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleFacts {
    pub outcome: CycleOutcome,
    pub duration: Duration,
    /// Error label → how many.
    pub errors: BTreeMap<String, u64>,
    /// `None` for a failed cycle.
    pub completed: Option<Completed>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// Changes made, by action (`create`, `update`, …).
    pub changes: [(&'static str, u64); 6],
    pub pending: usize,
    pub guests: usize,
    pub connections: usize,
}

impl CycleFacts {
    /// A cycle that ended with an error of this label.
    pub fn failed(label: &str, duration: Duration) -> CycleFacts {
        CycleFacts {
            outcome: CycleOutcome::Failed,
            duration,
            errors: BTreeMap::from([(label.to_owned(), 1)]),
            completed: None,
        }
    }

    pub fn from_report(report: &CycleReport) -> CycleFacts {
        let s = &report.summary;
        let mut errors: BTreeMap<String, u64> = BTreeMap::new();
        for result in &report.outcome.results {
            if let ActionResult::Failed { error, .. } = result {
                *errors.entry(error.clone()).or_default() += 1;
            }
        }
        let counted: u64 = errors.values().sum();
        let rest = (s.errors as u64).saturating_sub(counted);
        if rest > 0 {
            errors.insert(OBSERVE_INCOMPLETE.to_owned(), rest);
        }
        let wanted = &report.desired.connections;
        let guests: BTreeSet<_> = wanted.keys().map(|identity| &identity.guest).collect();
        let n = |v: usize| v as u64;
        let outcome = if s.errors > 0 {
            CycleOutcome::Errors
        } else if s.pending > 0 && !s.dry_run {
            CycleOutcome::Pending
        } else {
            CycleOutcome::Ok
        };
        CycleFacts {
            outcome,
            duration: Duration::from_millis(u64::try_from(report.duration_ms).unwrap_or(u64::MAX)),
            errors,
            completed: Some(Completed {
                changes: [
                    ("create", n(s.created)),
                    ("update", n(s.updated)),
                    ("delete", n(s.deleted)),
                    ("rewrite_notes", n(s.notes_rewritten)),
                    ("create_group", n(s.groups_created)),
                    ("delete_group", n(s.groups_deleted)),
                ],
                pending: s.pending,
                guests: guests.len(),
                connections: wanted.len(),
            }),
        }
    }
}
