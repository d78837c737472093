//! What the loop tells the world after every cycle: one `STATUS=` line for
//! `systemctl status`, and a [`DaemonStatus`] on a `watch` channel for
//! anyone in the process who wants more (the health and metrics listener).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::http::EndpointStats;
use crate::reconcile::cycle::CycleReport;

/// The latest picture of the daemon, published after every cycle, reload
/// and at shutdown. Cheap to clone (the report is shared).
#[derive(Debug, Clone)]
pub struct DaemonStatus {
    pub started_at: SystemTime,
    /// Cycles finished (successfully or not).
    pub cycles: u64,
    pub last: Option<Arc<CycleRecord>>,
    /// When the last cycle that ran to its end finished (for readiness).
    pub last_success: Option<SystemTime>,
    /// `sync.interval` in force.
    pub interval: Duration,
    pub dry_run: bool,
    /// Problems of the last reload attempt, when it was refused (the
    /// previous configuration stays in force); empty otherwise.
    pub reload_problems: Vec<String>,
    pub stopping: bool,
}

impl DaemonStatus {
    pub fn new(interval: Duration, dry_run: bool) -> Self {
        DaemonStatus {
            started_at: SystemTime::now(),
            cycles: 0,
            last: None,
            last_success: None,
            interval,
            dry_run,
            reload_problems: Vec::new(),
            stopping: false,
        }
    }
}

/// One finished cycle.
#[derive(Debug)]
pub struct CycleRecord {
    pub number: u64,
    pub finished_at: SystemTime,
    pub duration: Duration,
    /// `ok`, `errors` (some action or observation failed), `pending` (budget
    /// left work), `failed` (the cycle could not run: see `error`).
    pub outcome: &'static str,
    /// The cycle's report; `None` when it failed as a whole.
    pub report: Option<Arc<CycleReport>>,
    /// Label and text of a failed cycle (secret-free).
    pub error: Option<(&'static str, String)>,
    /// Requests per endpoint of every client since it was built.
    pub http: Vec<EndpointStats>,
}

/// The outcome word of a finished report.
pub fn outcome_of(report: &CycleReport) -> &'static str {
    let s = &report.summary;
    if s.errors > 0 {
        "errors"
    } else if s.pending > 0 && !s.dry_run {
        "pending"
    } else {
        "ok"
    }
}

/// Writes that a cycle made (or, in dry-run, would have made).
pub fn changes(report: &CycleReport) -> usize {
    let s = &report.summary;
    s.created + s.updated + s.deleted + s.notes_rewritten + s.groups_created + s.groups_deleted
}

/// The `STATUS=` line: time and outcome of the last cycle, guests,
/// connections, changes, pending, errors, degraded clusters, dry-run, and a
/// refused reload.
pub fn status_line(status: &DaemonStatus) -> String {
    let mut line = match status.last.as_deref() {
        None => "starting: first cycle running".to_owned(),
        Some(rec) => {
            let at = humantime::format_rfc3339_seconds(rec.finished_at);
            match (&rec.report, &rec.error) {
                (Some(r), _) => {
                    let degraded = if r.degraded_clusters.is_empty() {
                        "none".to_owned()
                    } else {
                        r.degraded_clusters.join(",")
                    };
                    format!(
                        "cycle {} at {at}: {}; {} guests, {} connections, {} changes, {} pending, {} errors, degraded clusters: {degraded}",
                        rec.number,
                        rec.outcome,
                        r.desired.present.len(),
                        r.desired.connections.len(),
                        changes(r),
                        r.summary.pending,
                        r.summary.errors,
                    )
                }
                (None, Some((label, message))) => {
                    format!("cycle {} at {at}: failed ({label}): {message}", rec.number)
                }
                (None, None) => format!("cycle {} at {at}: {}", rec.number, rec.outcome),
            }
        }
    };
    if status.dry_run {
        line.push_str("; dry run");
    }
    if let Some(first) = status.reload_problems.first() {
        line.push_str(&format!(
            "; RELOAD FAILED ({} problem(s)), previous configuration in force: {first}",
            status.reload_problems.len()
        ));
    }
    line.replace(['\n', '\r'], " ")
}
