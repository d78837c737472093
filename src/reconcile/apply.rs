//! Executes a plan within the change budget: groups (parents first), then
//! creates and updates, note rewrites, deletes, and empty groups last. On
//! Guacamole 1.6 each stage goes out as atomic directory PATCH batches. In
//! dry-run every write becomes a log line. Every write is an audit event.
//! After each stage the caller hears the results so far (to record
//! ownership at once) and may stop the rest (shutdown): a stage already sent
//! is always finished, the ones after it are deferred.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;
use tracing::warn;

use super::model::{GroupPath, NotesRewrite, display_path};
use super::notes_write::NotesWriter;
use super::plan::{Action, Plan, PlannedAction};
use super::record::{ActionResult, Outcome};
use crate::guacamole::{
    ConnectionSpec, DirectoryOp, GroupSpec, GuacamoleClient, OpResult, Parameters,
};
use crate::telemetry::{AuditEvent, audit as audit_event};

/// How much one cycle may change.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub max_changes: usize,
}

pub struct ApplyContext<'a> {
    pub guacamole: &'a GuacamoleClient,
    pub notes: &'a dyn NotesWriter,
    /// Identifier of the managed root group.
    pub root_id: String,
    /// Existing managed sub-groups by path.
    pub groups: BTreeMap<GroupPath, String>,
    pub dry_run: bool,
    /// The cycle's number, for audit events.
    pub cycle: u64,
}

/// Told the results so far after each write stage; `false` stops: the
/// actions of later stages are deferred to a later cycle.
pub type AfterStage<'h> = &'h mut (dyn FnMut(&[Option<ActionResult>]) -> bool + Send);

/// The write stages, in order.
#[derive(Debug, Clone, Copy)]
enum Stage {
    CreateGroups,
    CreateAndUpdate,
    Grants,
    RewriteNotes,
    Delete,
    DeleteGroups,
}

const STAGES: [Stage; 6] = [
    Stage::CreateGroups,
    Stage::CreateAndUpdate,
    Stage::Grants,
    Stage::RewriteNotes,
    Stage::Delete,
    Stage::DeleteGroups,
];

pub async fn apply(
    plan: &Plan,
    budget: Budget,
    mut cx: ApplyContext<'_>,
    after_stage: AfterStage<'_>,
) -> Outcome {
    let n = plan.actions.len();
    let mut results: Vec<Option<ActionResult>> = vec![None; n];
    for slot in results.iter_mut().skip(budget.max_changes) {
        *slot = Some(ActionResult::Deferred);
    }
    if cx.dry_run {
        for (i, a) in plan.actions.iter().enumerate() {
            if results[i].is_none() {
                audit(a, &ActionResult::DryRun, cx.cycle);
                results[i] = Some(ActionResult::DryRun);
            }
        }
        return finish(plan, results);
    }
    for stage in STAGES {
        run_stage(stage, plan, &mut results, &mut cx).await;
        if !after_stage(&results) {
            break;
        }
    }
    finish(plan, results)
}

async fn run_stage(
    stage: Stage,
    plan: &Plan,
    results: &mut [Option<ActionResult>],
    cx: &mut ApplyContext<'_>,
) {
    match stage {
        Stage::CreateGroups => create_groups(plan, results, cx).await,
        Stage::CreateAndUpdate => {
            let pick = |a: &PlannedAction| {
                matches!(a.action, Action::Create { .. } | Action::Update { .. })
            };
            run_directory_stage(plan, results, cx, pick).await;
        }
        Stage::Grants => grant_access(plan, results, cx).await,
        Stage::RewriteNotes => rewrite_notes(plan, results, cx.notes, cx.cycle).await,
        Stage::Delete => {
            let pick = |a: &PlannedAction| matches!(a.action, Action::Delete { .. });
            run_directory_stage(plan, results, cx, pick).await;
        }
        Stage::DeleteGroups => {
            defer_groups_still_in_use(plan, results);
            let pick = |a: &PlannedAction| matches!(a.action, Action::DeleteGroup { .. });
            run_directory_stage(plan, results, cx, pick).await;
        }
    }
}

/// Permission grants and revokes, once the connections and groups they
/// are on exist.
async fn grant_access(plan: &Plan, results: &mut [Option<ActionResult>], cx: &ApplyContext<'_>) {
    let gx = super::grants::GrantApplyContext {
        guacamole: cx.guacamole,
        root_id: &cx.root_id,
        groups: &cx.groups,
    };
    for (i, result) in super::grants::apply_grants(plan, results, &gx).await {
        audit(&plan.actions[i], &result, cx.cycle);
        results[i] = Some(result);
    }
}

/// Note rewrites touch different guests, so they go out together (the
/// Proxmox client's limits still pace them).
async fn rewrite_notes(
    plan: &Plan,
    results: &mut [Option<ActionResult>],
    notes: &dyn NotesWriter,
    cycle: u64,
) {
    let pending: Vec<(usize, &NotesRewrite)> = plan
        .actions
        .iter()
        .enumerate()
        .filter(|(i, _)| results[*i].is_none())
        .filter_map(|(i, a)| match &a.action {
            Action::RewriteNotes { rewrite } => Some((i, rewrite)),
            _ => None,
        })
        .collect();
    let written = join_all(pending.iter().map(|(_, r)| notes.write(r))).await;
    for ((i, _), outcome) in pending.into_iter().zip(written) {
        let result = match outcome {
            Ok(()) => ActionResult::Done { id: None },
            Err(e) => ActionResult::Failed {
                error: e.label().to_owned(),
                message: e.to_string(),
            },
        };
        audit(&plan.actions[i], &result, cycle);
        results[i] = Some(result);
    }
}

fn finish(plan: &Plan, results: Vec<Option<ActionResult>>) -> Outcome {
    debug_assert_eq!(plan.actions.len(), results.len());
    Outcome {
        results: results
            .into_iter()
            .map(|r| r.unwrap_or(ActionResult::Deferred))
            .collect(),
    }
}

/// Group creates go depth by depth, since a child needs its parent's id.
async fn create_groups(
    plan: &Plan,
    results: &mut [Option<ActionResult>],
    cx: &mut ApplyContext<'_>,
) {
    let mut depth = 1;
    loop {
        let mut idx = Vec::new();
        let mut ops = Vec::new();
        let mut any_deeper = false;
        for (i, a) in plan.actions.iter().enumerate() {
            let Action::CreateGroup { path } = &a.action else {
                continue;
            };
            if results[i].is_some() {
                continue;
            }
            if path.len() > depth {
                any_deeper = true;
                continue;
            }
            match parent_id(cx, &path[..path.len() - 1]) {
                Some(parent) => {
                    idx.push(i);
                    ops.push(DirectoryOp::CreateGroup(GroupSpec::organizational(
                        path[path.len() - 1].clone(),
                        parent,
                    )));
                }
                None => results[i] = Some(ActionResult::Deferred),
            }
        }
        if !ops.is_empty() {
            let outcome = send(cx.guacamole, ops).await;
            for (k, i) in idx.into_iter().enumerate() {
                let result = outcome[k].clone();
                if let (ActionResult::Done { id: Some(id) }, Action::CreateGroup { path }) =
                    (&result, &plan.actions[i].action)
                {
                    cx.groups.insert(path.clone(), id.clone());
                }
                audit(&plan.actions[i], &result, cx.cycle);
                results[i] = Some(result);
            }
        }
        if !any_deeper {
            break;
        }
        depth += 1;
    }
}

fn parent_id(cx: &ApplyContext<'_>, path: &[String]) -> Option<String> {
    if path.is_empty() {
        Some(cx.root_id.clone())
    } else {
        cx.groups.get(path).cloned()
    }
}

/// Sends the not-yet-decided actions that `pick` selects as one batch.
async fn run_directory_stage(
    plan: &Plan,
    results: &mut [Option<ActionResult>],
    cx: &ApplyContext<'_>,
    pick: impl Fn(&PlannedAction) -> bool,
) {
    let mut idx = Vec::new();
    let mut ops = Vec::new();
    for (i, a) in plan.actions.iter().enumerate() {
        if results[i].is_some() || !pick(a) {
            continue;
        }
        match directory_op(&a.action, cx) {
            Some(op) => {
                idx.push(i);
                ops.push(op);
            }
            // Its group could not be created this cycle.
            None => results[i] = Some(ActionResult::Deferred),
        }
    }
    if ops.is_empty() {
        return;
    }
    let outcome = send(cx.guacamole, ops).await;
    for (k, i) in idx.into_iter().enumerate() {
        audit(&plan.actions[i], &outcome[k], cx.cycle);
        results[i] = Some(outcome[k].clone());
    }
}

fn directory_op(action: &Action, cx: &ApplyContext<'_>) -> Option<DirectoryOp> {
    Some(match action {
        Action::Create { connection, .. } | Action::Update { connection, .. } => {
            let mut parameters = Parameters::new();
            for (k, v) in connection.params.iter() {
                parameters.insert(k.clone(), v.expose());
            }
            let spec = ConnectionSpec::new(
                connection.name.clone(),
                parent_id(cx, &connection.group)?,
                connection.protocol.clone(),
                parameters,
            );
            match action {
                Action::Update { id, attributes, .. } => DirectoryOp::UpdateConnection {
                    identifier: id.clone(),
                    spec: ConnectionSpec {
                        attributes: attributes.clone(),
                        ..spec
                    },
                },
                _ => DirectoryOp::CreateConnection(spec),
            }
        }
        Action::Delete { id, .. } => DirectoryOp::DeleteConnection {
            identifier: id.clone(),
        },
        Action::DeleteGroup { id, .. } => DirectoryOp::DeleteGroup {
            identifier: id.clone(),
        },
        Action::CreateGroup { .. } | Action::RewriteNotes { .. } | Action::Grant(_) => {
            return None;
        }
    })
}

/// Applies a batch; on 1.6 entries rolled back because a sibling failed are
/// sent once more without the failed ones, so one bad entry cannot hold up
/// the rest of the cycle.
async fn send(guac: &GuacamoleClient, ops: Vec<DirectoryOp>) -> Vec<ActionResult> {
    let mut results = convert(guac.apply_batch(ops.clone()).await, ops.len());
    let retry: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_none())
        .map(|(i, _)| i)
        .collect();
    if !retry.is_empty() {
        let again: Vec<DirectoryOp> = retry.iter().map(|i| ops[*i].clone()).collect();
        let second = convert(guac.apply_batch(again).await, retry.len());
        for (k, i) in retry.into_iter().enumerate() {
            results[i] = second[k].clone();
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(ActionResult::Deferred))
        .collect()
}

/// `None` marks an entry that was rolled back and may be retried.
fn convert(
    outcome: Result<crate::guacamole::BatchOutcome, crate::guacamole::GuacamoleError>,
    len: usize,
) -> Vec<Option<ActionResult>> {
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            warn!(error = %e, "Guacamole batch not sent");
            return vec![
                Some(ActionResult::Failed {
                    error: e.label().to_owned(),
                    message: e.to_string(),
                });
                len
            ];
        }
    };
    outcome
        .results
        .into_iter()
        .map(|r| match r {
            OpResult::Applied { identifier } => Some(ActionResult::Done {
                id: Some(identifier),
            }),
            OpResult::Failed { error } | OpResult::Unknown { error } => {
                Some(ActionResult::Failed {
                    error: error.label().to_owned(),
                    message: error.to_string(),
                })
            }
            OpResult::RolledBack => None,
            OpResult::NotAttempted => Some(ActionResult::Deferred),
        })
        .collect()
}

/// A group a connection was to be deleted from or moved out of, where that
/// did not happen (budget, failure), must not be deleted: Guacamole deletes
/// groups recursively.
fn defer_groups_still_in_use(plan: &Plan, results: &mut [Option<ActionResult>]) {
    let mut busy: BTreeSet<GroupPath> = BTreeSet::new();
    for (i, a) in plan.actions.iter().enumerate() {
        let leaves = match &a.action {
            Action::Delete { group, .. } => Some(group),
            Action::Update {
                from_group: Some(group),
                ..
            } => Some(group),
            _ => None,
        };
        if let Some(group) = leaves
            && !matches!(results[i], Some(ActionResult::Done { .. }))
        {
            busy.insert(group.clone());
        }
    }
    for (i, a) in plan.actions.iter().enumerate() {
        if let Action::DeleteGroup { path, .. } = &a.action
            && results[i].is_none()
            && busy.iter().any(|g| g.starts_with(path))
        {
            results[i] = Some(ActionResult::Deferred);
        }
    }
}

fn audit(a: &PlannedAction, result: &ActionResult, cycle: u64) {
    let (outcome, error) = match result {
        ActionResult::Done { .. } => ("done", None),
        ActionResult::DryRun => ("dry_run", None),
        ActionResult::Deferred => ("deferred", None),
        ActionResult::Failed { error, message } => ("failed", Some(format!("{error}: {message}"))),
    };
    let id = match result {
        ActionResult::Done { id: Some(id) } => Some(id.as_str()),
        _ => a.action.guacamole_id(),
    };
    let guest = a.action.guest();
    let message = match result {
        ActionResult::DryRun => format!("dry-run: would {}", a.action.describe()),
        ActionResult::Failed { .. } => format!("{} failed", a.action.describe()),
        _ => a.action.describe(),
    };
    audit_event(&AuditEvent {
        action: a.action.kind(),
        result: outcome,
        cycle,
        cluster: guest.map(|g| g.cluster.as_str()),
        vmid: guest.map(|g| g.vmid),
        guest: guest.map(ToString::to_string),
        identity: a.action.identity().map(ToString::to_string),
        guacamole_id: id,
        group: a.action.group().map(|p| display_path(p)),
        reason: &a.reason,
        error,
        message,
    });
}
