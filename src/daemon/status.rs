//! What the loop tells the world after every cycle: one `STATUS=` line for
//! `systemctl status`, and a [`DaemonStatus`] on a `watch` channel for
//! anyone in the process who wants more (the health and metrics listener).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::http::EndpointStats;
use crate::reconcile::cycle::CycleReport;
use crate::reconcile::record::ActionResult;

/// Finished cycles kept for the status page's timeline.
pub const CYCLE_HISTORY: usize = 24;
/// Audit events (actions and their results) kept for the status page.
pub const AUDIT_HISTORY: usize = 50;

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
    /// `sync.max_changes_per_cycle` in force.
    pub max_changes_per_cycle: usize,
    /// The last [`CYCLE_HISTORY`] cycles, oldest first.
    pub history: VecDeque<CycleBrief>,
    /// The last [`AUDIT_HISTORY`] audit events, oldest first.
    pub audit: VecDeque<AuditEntry>,
    /// Per configured cluster, what the last cycles saw of it.
    pub clusters: BTreeMap<String, ClusterStatus>,
    /// The report of the last cycle that ran to its end (a failed cycle
    /// after it leaves this in place).
    pub last_report: Option<Arc<CycleReport>>,
}

/// One finished cycle, as the timeline shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleBrief {
    pub number: u64,
    pub finished_at: SystemTime,
    pub duration: Duration,
    pub outcome: &'static str,
    pub changes: usize,
    pub pending: usize,
    pub errors: usize,
    /// Label of a cycle that failed as a whole.
    pub error: Option<&'static str>,
}

/// One action and what became of it: the fields of the journal's audit
/// event, never a parameter value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub cycle: u64,
    pub at: SystemTime,
    pub action: &'static str,
    /// `done`, `failed`, `deferred`, `dry_run`.
    pub result: &'static str,
    /// `cluster/vmid`.
    pub guest: Option<String>,
    pub connection: Option<String>,
    pub reason: String,
    /// `label: message` of a failure (secret-free by the apply layer's rule).
    pub error: Option<String>,
}

/// A cluster across cycles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterStatus {
    /// Each endpoint (`host:port`) and whether its last attempt got an
    /// answer (`None`: not tried yet).
    pub endpoints: Vec<(String, Option<bool>)>,
    /// Guests listed by the last cycle that reached it.
    pub guests: usize,
    /// Connections its guests' notes ask for.
    pub connections: usize,
    /// Whether the last cycle observed it completely.
    pub complete: bool,
    /// When a cycle last observed it completely.
    pub last_complete: Option<SystemTime>,
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
            max_changes_per_cycle: 0,
            history: VecDeque::new(),
            audit: VecDeque::new(),
            clusters: BTreeMap::new(),
            last_report: None,
        }
    }

    /// Folds a finished cycle into the timeline, the audit ring and the
    /// per-cluster view. `endpoints`: each cluster's endpoint reachability
    /// now.
    pub fn absorb(
        &mut self,
        record: &CycleRecord,
        endpoints: BTreeMap<String, Vec<(String, Option<bool>)>>,
    ) {
        push_bounded(&mut self.history, CycleBrief::of(record), CYCLE_HISTORY);
        if let Some(report) = &record.report {
            for entry in audit_entries(report, record.finished_at) {
                push_bounded(&mut self.audit, entry, AUDIT_HISTORY);
            }
            self.absorb_clusters(report, record.finished_at);
            self.last_report = Some(Arc::clone(report));
        }
        // Clusters a reload removed leave the page.
        self.clusters.retain(|name, _| endpoints.contains_key(name));
        for (name, list) in endpoints {
            self.clusters.entry(name).or_default().endpoints = list;
        }
    }

    fn absorb_clusters(&mut self, report: &CycleReport, at: SystemTime) {
        let want = &report.desired;
        for name in &want.clusters {
            let c = self.clusters.entry(name.clone()).or_default();
            c.complete = want.complete_clusters.contains(name);
            if c.complete {
                c.last_complete = Some(at);
            }
            let listed = want.present.iter().filter(|g| &g.cluster == name).count();
            // A cluster not reached this cycle keeps the counts it last had.
            if c.complete || listed > 0 {
                c.guests = listed;
                c.connections = want
                    .connections
                    .keys()
                    .filter(|i| &i.guest.cluster == name)
                    .count();
            }
        }
    }
}

impl CycleBrief {
    fn of(record: &CycleRecord) -> CycleBrief {
        let (changes, pending, errors) = match &record.report {
            Some(r) => (changes(r), r.summary.pending, r.summary.errors),
            None => (0, 0, 1),
        };
        CycleBrief {
            number: record.number,
            finished_at: record.finished_at,
            duration: record.duration,
            outcome: record.outcome,
            changes,
            pending,
            errors,
            error: record.error.as_ref().map(|(label, _)| *label),
        }
    }
}

/// The audit events of a report's actions, in plan order.
fn audit_entries(report: &CycleReport, at: SystemTime) -> Vec<AuditEntry> {
    let results = &report.outcome.results;
    report
        .plan
        .actions
        .iter()
        .zip(results)
        .map(|(planned, result)| {
            let a = &planned.action;
            let (word, error) = match result {
                ActionResult::Done { .. } => ("done", None),
                ActionResult::DryRun => ("dry_run", None),
                ActionResult::Deferred => ("deferred", None),
                ActionResult::Failed { error, message } => {
                    ("failed", Some(format!("{error}: {message}")))
                }
            };
            AuditEntry {
                cycle: report.cycle,
                at,
                action: a.kind(),
                result: word,
                guest: a.guest().map(ToString::to_string),
                connection: a
                    .connection_name()
                    .map(str::to_owned)
                    .or_else(|| a.identity().map(ToString::to_string)),
                reason: planned.reason.clone(),
                error,
            }
        })
        .collect()
}

fn push_bounded<T>(ring: &mut VecDeque<T>, item: T, cap: usize) {
    while ring.len() >= cap {
        ring.pop_front();
    }
    ring.push_back(item);
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
