//! What the status page and `/status.json` show, built from the daemon's
//! latest [`DaemonStatus`]: one plain serialisable value, so the page, the
//! JSON and `pve-guac-sync status` can never disagree. Only names, counts,
//! labels and times go in; never a parameter value, a password or a note.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::daemon::status::{AuditEntry, CycleBrief, DaemonStatus, changes};
use crate::reconcile::cycle::CycleReport;
use crate::reconcile::record::ActionResult;

/// Rows per list (pending, held, block errors); the JSON says how many
/// were left out.
pub(crate) const MAX_ROWS: usize = 100;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct StatusView {
    /// `ok`, `degraded`, `failing` or `starting`.
    pub state: &'static str,
    /// Why, in one line (empty when ok).
    pub reason: String,
    pub generated_at: String,
    pub started_at: String,
    pub dry_run: bool,
    pub interval_s: u64,
    pub cycles: u64,
    pub last_success: Option<Moment>,
    pub budget: Budget,
    pub managed: Managed,
    pub history: Vec<CycleRow>,
    pub clusters: Vec<ClusterRow>,
    pub pending: Vec<PendingRow>,
    pub pending_left_out: usize,
    pub held: Vec<HeldRow>,
    pub block_errors: Vec<BlockErrorRow>,
    pub block_errors_left_out: usize,
    pub power_ups_in_flight: Vec<String>,
    /// Most recent first.
    pub audit: Vec<AuditRow>,
    pub reload_problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Moment {
    pub at: String,
    pub age_s: u64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Budget {
    pub max_changes_per_cycle: usize,
    /// Changes the last completed cycle made (or, in dry-run, would have).
    pub used_last_cycle: usize,
    pub pending: usize,
    /// The last cycle stopped at the budget.
    pub exhausted: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Managed {
    pub guests: usize,
    pub connections: usize,
    pub guests_listed: usize,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct CycleRow {
    pub number: u64,
    pub finished: Moment,
    pub duration_ms: u64,
    pub outcome: &'static str,
    pub changes: usize,
    pub pending: usize,
    pub errors: usize,
    pub error: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClusterRow {
    pub name: String,
    pub endpoints: Vec<EndpointRow>,
    pub endpoints_up: usize,
    pub guests: usize,
    pub connections: usize,
    pub complete: bool,
    pub last_complete: Option<Moment>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct EndpointRow {
    pub endpoint: String,
    /// `up`, `down` or `untried`.
    pub state: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PendingRow {
    pub action: &'static str,
    pub guest: Option<String>,
    pub connection: Option<String>,
    pub reason: String,
    /// Why it waits.
    pub waits_for: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct HeldRow {
    pub guest: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct BlockErrorRow {
    pub guest: String,
    pub guest_name: String,
    pub block: usize,
    pub line: usize,
    pub key: Option<&'static str>,
    pub label: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct AuditRow {
    pub cycle: u64,
    pub at: String,
    pub action: &'static str,
    pub result: &'static str,
    pub guest: Option<String>,
    pub connection: Option<String>,
    pub reason: String,
    pub error: Option<String>,
}

/// Everything the view needs besides the status itself.
pub(crate) struct Context<'a> {
    pub now: SystemTime,
    /// The readiness rule's verdict.
    pub ready: Result<(), String>,
    pub power_ups: Vec<String>,
    pub status: Option<&'a DaemonStatus>,
}

pub(crate) fn build(cx: Context<'_>) -> StatusView {
    let now = cx.now;
    let moment = |t: SystemTime| Moment {
        at: humantime::format_rfc3339_seconds(t).to_string(),
        age_s: now.duration_since(t).unwrap_or(Duration::ZERO).as_secs(),
    };
    let Some(status) = cx.status else {
        return empty(now, cx.ready, cx.power_ups);
    };
    let last_report = status.last_report.as_deref();
    let (state, reason) = assess(status, &cx.ready);
    let mut view = StatusView {
        state,
        reason,
        generated_at: humantime::format_rfc3339_seconds(now).to_string(),
        started_at: humantime::format_rfc3339_seconds(status.started_at).to_string(),
        dry_run: status.dry_run,
        interval_s: status.interval.as_secs(),
        cycles: status.cycles,
        last_success: status.last_success.map(moment),
        budget: budget(status, last_report),
        managed: last_report.map(managed).unwrap_or_default(),
        history: status
            .history
            .iter()
            .map(|c| cycle_row(c, &moment))
            .collect(),
        clusters: status
            .clusters
            .iter()
            .map(|(name, c)| ClusterRow {
                name: name.clone(),
                endpoints_up: c
                    .endpoints
                    .iter()
                    .filter(|(_, up)| *up == Some(true))
                    .count(),
                endpoints: c
                    .endpoints
                    .iter()
                    .map(|(e, up)| EndpointRow {
                        endpoint: e.clone(),
                        state: match up {
                            Some(true) => "up",
                            Some(false) => "down",
                            None => "untried",
                        },
                    })
                    .collect(),
                guests: c.guests,
                connections: c.connections,
                complete: c.complete,
                last_complete: c.last_complete.map(moment),
            })
            .collect(),
        pending: Vec::new(),
        pending_left_out: 0,
        held: Vec::new(),
        block_errors: Vec::new(),
        block_errors_left_out: 0,
        power_ups_in_flight: cx.power_ups,
        audit: status
            .audit
            .iter()
            .rev()
            .map(|a| audit_row(a, &moment))
            .collect(),
        reload_problems: status.reload_problems.clone(),
    };
    // Pending work and block errors describe the latest completed cycle.
    if let Some(r) = last_report {
        fill_from_report(&mut view, r, status.max_changes_per_cycle);
    }
    view
}

fn empty(now: SystemTime, ready: Result<(), String>, power_ups: Vec<String>) -> StatusView {
    let at = humantime::format_rfc3339_seconds(now).to_string();
    StatusView {
        state: "starting",
        reason: ready.err().unwrap_or_default(),
        generated_at: at.clone(),
        started_at: at,
        dry_run: false,
        interval_s: 0,
        cycles: 0,
        last_success: None,
        budget: Budget {
            max_changes_per_cycle: 0,
            used_last_cycle: 0,
            pending: 0,
            exhausted: false,
        },
        managed: Managed::default(),
        history: Vec::new(),
        clusters: Vec::new(),
        pending: Vec::new(),
        pending_left_out: 0,
        held: Vec::new(),
        block_errors: Vec::new(),
        block_errors_left_out: 0,
        power_ups_in_flight: power_ups,
        audit: Vec::new(),
        reload_problems: Vec::new(),
    }
}

/// Overall state and why: `failing` when the readiness rule fails or the
/// last cycle failed as a whole; `degraded` when it completed with errors,
/// left work pending, found bad notes blocks or a reload was refused.
pub(crate) fn assess(status: &DaemonStatus, ready: &Result<(), String>) -> (&'static str, String) {
    if status.stopping {
        return ("failing", "shutting down".to_owned());
    }
    let Some(last) = status.last.as_deref() else {
        return ("starting", "first cycle running".to_owned());
    };
    if let Err(why) = ready {
        return ("failing", why.clone());
    }
    if let Some((label, message)) = &last.error {
        return (
            "failing",
            format!("cycle {} failed ({label}): {message}", last.number),
        );
    }
    let mut reasons = Vec::new();
    if let Some(r) = last.report.as_deref() {
        let s = &r.summary;
        if s.errors > 0 {
            reasons.push(format!("{} error(s) in cycle {}", s.errors, last.number));
        }
        if !r.degraded_clusters.is_empty() {
            reasons.push(format!(
                "cluster(s) not fully observed: {}",
                r.degraded_clusters.join(", ")
            ));
        }
        if s.pending > 0 && !s.dry_run {
            reasons.push(format!("{} change(s) pending", s.pending));
        }
        let guests: std::collections::BTreeSet<_> =
            r.desired.block_errors.iter().map(|b| &b.guest).collect();
        if !guests.is_empty() {
            reasons.push(format!("{} guest(s) with block errors", guests.len()));
        }
    }
    if !status.reload_problems.is_empty() {
        reasons.push("reload refused; the previous configuration is in force".to_owned());
    }
    if reasons.is_empty() {
        ("ok", String::new())
    } else {
        ("degraded", reasons.join("; "))
    }
}

fn budget(status: &DaemonStatus, report: Option<&CycleReport>) -> Budget {
    let used = report.map_or(0, changes);
    let pending = report.map_or(0, |r| r.summary.pending);
    Budget {
        max_changes_per_cycle: status.max_changes_per_cycle,
        used_last_cycle: used,
        pending,
        exhausted: pending > 0 && used >= status.max_changes_per_cycle,
    }
}

fn managed(r: &CycleReport) -> Managed {
    let guests: std::collections::BTreeSet<_> =
        r.desired.connections.keys().map(|i| &i.guest).collect();
    Managed {
        guests: guests.len(),
        connections: r.desired.connections.len(),
        guests_listed: r.desired.present.len(),
    }
}

fn cycle_row(c: &CycleBrief, moment: &impl Fn(SystemTime) -> Moment) -> CycleRow {
    CycleRow {
        number: c.number,
        finished: moment(c.finished_at),
        duration_ms: u64::try_from(c.duration.as_millis()).unwrap_or(u64::MAX),
        outcome: c.outcome,
        changes: c.changes,
        pending: c.pending,
        errors: c.errors,
        error: c.error,
    }
}

fn audit_row(a: &AuditEntry, moment: &impl Fn(SystemTime) -> Moment) -> AuditRow {
    AuditRow {
        cycle: a.cycle,
        at: moment(a.at).at,
        action: a.action,
        result: a.result,
        guest: a.guest.clone(),
        connection: a.connection.clone(),
        reason: a.reason.clone(),
        error: a.error.clone(),
    }
}

fn fill_from_report(view: &mut StatusView, r: &CycleReport, budget: usize) {
    let failed = r
        .outcome
        .results
        .iter()
        .any(|x| matches!(x, ActionResult::Failed { .. }));
    let waits_for = if r.summary.dry_run {
        "dry run: logged, not applied"
    } else if changes(r) >= budget {
        "the change budget of this cycle was used up"
    } else if failed {
        "an earlier action it needs failed"
    } else {
        "a later cycle"
    };
    let waiting = r
        .plan
        .actions
        .iter()
        .zip(&r.outcome.results)
        .filter(|(_, res)| matches!(res, ActionResult::Deferred | ActionResult::DryRun));
    for (planned, _) in waiting {
        if view.pending.len() == MAX_ROWS {
            view.pending_left_out += 1;
            continue;
        }
        let a = &planned.action;
        view.pending.push(PendingRow {
            action: a.kind(),
            guest: a.guest().map(ToString::to_string),
            connection: a.connection_name().map(str::to_owned),
            reason: planned.reason.clone(),
            waits_for,
        });
    }
    view.held = r
        .desired
        .held
        .iter()
        .take(MAX_ROWS)
        .map(|(g, why)| HeldRow {
            guest: g.to_string(),
            reason: why.as_str(),
        })
        .collect();
    for b in &r.desired.block_errors {
        if view.block_errors.len() == MAX_ROWS {
            view.block_errors_left_out += 1;
            continue;
        }
        view.block_errors.push(BlockErrorRow {
            guest: b.guest.to_string(),
            guest_name: b.guest_name.clone(),
            block: b.block,
            line: b.line,
            key: b.key,
            label: b.label,
            message: b.message.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::daemon::CycleRecord;

    fn failed_cycle(number: u64) -> Arc<CycleRecord> {
        Arc::new(CycleRecord {
            number,
            finished_at: SystemTime::now(),
            duration: Duration::from_millis(5),
            outcome: "failed",
            report: None,
            error: Some(("guacamole_unreachable", "connection refused".into())),
            http: Vec::new(),
        })
    }

    #[test]
    fn the_state_follows_the_last_cycle_readiness_and_reloads() {
        let mut s = DaemonStatus::new(Duration::from_secs(60), false);
        assert_eq!(assess(&s, &Err("no cycle".into())).0, "starting");
        s.last = Some(failed_cycle(1));
        assert_eq!(
            assess(&s, &Ok(())),
            (
                "failing",
                "cycle 1 failed (guacamole_unreachable): connection refused".into()
            )
        );
        let stale = "the last completed cycle ended 4m ago".to_owned();
        assert_eq!(assess(&s, &Err(stale.clone())), ("failing", stale));
        s.last = Some(Arc::new(CycleRecord {
            outcome: "ok",
            error: None,
            ..Arc::into_inner(failed_cycle(2)).unwrap()
        }));
        assert_eq!(assess(&s, &Ok(())), ("ok", String::new()));
        s.reload_problems = vec!["c.yaml:3: bad".into()];
        assert_eq!(assess(&s, &Ok(())).0, "degraded");
        s.stopping = true;
        assert_eq!(assess(&s, &Ok(())), ("failing", "shutting down".into()));
    }

    #[test]
    fn the_timeline_keeps_the_last_cycles_only() {
        let mut s = DaemonStatus::new(Duration::from_secs(60), false);
        for n in 1..=30 {
            s.absorb(&failed_cycle(n), Default::default());
        }
        let v = build(Context {
            now: SystemTime::now(),
            ready: Ok(()),
            power_ups: Vec::new(),
            status: Some(&s),
        });
        let numbers: Vec<u64> = v.history.iter().map(|c| c.number).collect();
        assert_eq!(numbers, (7..=30).collect::<Vec<_>>());
        assert_eq!(v.history[0].error, Some("guacamole_unreachable"));
    }
}
