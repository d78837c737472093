//! Wished grants + observed permission sets + the record of what the daemon
//! granted → grant and revoke actions. Pure.
//!
//! - A wished READ that is missing is granted (and recorded once done).
//! - A wished READ already held is left alone; if nobody recorded it, a
//!   person granted it, and it is never revoked.
//! - A recorded READ no source names any more is revoked — unless its
//!   connection is kept as it is this cycle (held guest, grace period):
//!   then nothing about it changes.
//! - Records of objects or grantees that are gone are forgotten.

use std::collections::{BTreeMap, BTreeSet};

use super::desire::GrantWish;
use super::model::{GrantChange, GrantOp, GrantSource, GrantTarget, Grantee};
use super::observe::{GranteeState, GranteeStates, HeldReads};
use crate::reconcile::model::{Desired, GroupPath, Identity, ManagedTree};
use crate::reconcile::plan::{Action, Plan, PlannedAction};
use crate::state::State;

pub struct GrantInputs<'a> {
    pub wish: &'a GrantWish,
    pub want: &'a Desired,
    pub tree: &'a ManagedTree,
    pub st: &'a State,
    pub states: &'a GranteeStates,
}

/// A record entry to drop without a request (its object or grantee is gone,
/// or a person revoked the permission).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forget {
    Connection { grantee: Grantee, id: String },
    Group { grantee: Grantee, id: String },
    Grantee(Grantee),
}

#[derive(Debug, Clone, Default)]
pub struct GrantPlan {
    /// Moved into the cycle's plan by `plan_stage`.
    pub actions: Vec<PlannedAction>,
    /// Moved into `Plan::forget_grants` by `plan_stage`.
    pub forget: Vec<Forget>,
    /// Unknown users or groups (by the block or rule naming them), and
    /// permission sets that could not be read.
    pub problems: Vec<String>,
    /// Permission sets that could not be read: the cycle did not converge.
    pub errors: usize,
    /// Per desired connection: `user:NAME` / `group:NAME`, marked
    /// `(pending)` or `(unknown)` where not in place, for `list`.
    pub access: BTreeMap<Identity, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Connection(Identity),
    Group(GroupPath),
}

/// What one grantee should hold, with the reasons.
type Wanted = BTreeMap<Place, (GrantTarget, Vec<String>)>;

pub fn plan_grants(inputs: &GrantInputs<'_>, plan: &Plan) -> GrantPlan {
    let mut out = GrantPlan::default();
    let ids = connection_ids(plan);
    let wanted = wanted_by_grantee(inputs, &ids);
    let protected = protected(inputs, plan);
    let deleting = deleting(plan);
    let recorded: BTreeSet<Grantee> = inputs
        .st
        .grants
        .keys()
        .filter_map(|k| Grantee::parse_key(k))
        .collect();
    let everyone: BTreeSet<&Grantee> = wanted.keys().chain(recorded.iter()).collect();
    for grantee in everyone {
        let empty = Wanted::new();
        let wants = wanted.get(grantee).unwrap_or(&empty);
        match inputs.states.get(grantee) {
            Some(GranteeState::Found(held)) => {
                grant_missing(grantee, wants, held, &mut out);
                revoke_unwanted(
                    inputs, grantee, wants, held, &protected, &deleting, &mut out,
                );
            }
            Some(GranteeState::Unknown) => {
                if recorded.contains(grantee) {
                    out.forget.push(Forget::Grantee(grantee.clone()));
                }
                report_unknown(inputs.wish, grantee, &mut out);
            }
            Some(GranteeState::Unreadable(error)) => {
                out.errors += 1;
                out.problems.push(format!(
                    "access: the permissions of {grantee} could not be read: {error}; its grants wait"
                ));
            }
            None => {}
        }
    }
    out.access = access_view(inputs, &out);
    out
}

/// The identifier of every desired connection that already exists.
fn connection_ids(plan: &Plan) -> BTreeMap<Identity, String> {
    let mut ids: BTreeMap<Identity, String> = plan.unchanged.iter().cloned().collect();
    for a in &plan.actions {
        if let Action::Update { identity, id, .. } = &a.action {
            ids.insert(identity.clone(), id.clone());
        }
    }
    ids
}

fn wanted_by_grantee(
    inputs: &GrantInputs<'_>,
    ids: &BTreeMap<Identity, String>,
) -> BTreeMap<Grantee, Wanted> {
    let tree = inputs.tree;
    let mut out: BTreeMap<Grantee, Wanted> = BTreeMap::new();
    for (identity, grantees) in &inputs.wish.connections {
        let Some(conn) = inputs.want.connections.get(identity) else {
            continue;
        };
        for (grantee, sources) in grantees {
            let wants = out.entry(grantee.clone()).or_default();
            let reasons: Vec<String> = sources.iter().map(GrantSource::to_string).collect();
            wants.insert(
                Place::Connection(identity.clone()),
                (
                    GrantTarget::Connection {
                        identity: Some(identity.clone()),
                        name: conn.name.clone(),
                        id: ids.get(identity).cloned(),
                    },
                    reasons,
                ),
            );
            for depth in 0..=conn.group.len() {
                let path = conn.group[..depth].to_vec();
                let id = if depth == 0 {
                    tree.root_id.clone()
                } else {
                    tree.groups.get(&path).map(|g| g.id.clone())
                };
                let entry = wants
                    .entry(Place::Group(path.clone()))
                    .or_insert_with(|| (GrantTarget::Group { path, id }, Vec::new()));
                let why = format!("holds {identity}, which {grantee} may use");
                if entry.1.len() < 3 {
                    entry.1.push(why);
                }
            }
        }
    }
    out
}

/// Connections kept exactly as they are this cycle, and the groups above
/// them: their recorded grants stay untouched.
struct Protected {
    connections: BTreeSet<String>,
    groups_of: BTreeMap<String, Vec<String>>,
}

fn protected(inputs: &GrantInputs<'_>, plan: &Plan) -> Protected {
    let tree = inputs.tree;
    let connections: BTreeSet<String> = plan.kept.iter().map(|k| k.id.clone()).collect();
    let mut groups_of = BTreeMap::new();
    for id in &connections {
        let Some(c) = tree.connections.get(id) else {
            continue;
        };
        let mut groups: Vec<String> = tree.root_id.iter().cloned().collect();
        for depth in 1..=c.group.len() {
            if let Some(g) = tree.groups.get(&c.group[..depth]) {
                groups.push(g.id.clone());
            }
        }
        groups_of.insert(id.clone(), groups);
    }
    Protected {
        connections,
        groups_of,
    }
}

/// Connections and groups this plan deletes: Guacamole drops their
/// permissions itself.
fn deleting(plan: &Plan) -> BTreeSet<String> {
    plan.actions
        .iter()
        .filter_map(|a| match &a.action {
            Action::Delete { id, .. } => Some(format!("c{id}")),
            Action::DeleteGroup { id, .. } => Some(format!("g{id}")),
            _ => None,
        })
        .collect()
}

fn grant_missing(grantee: &Grantee, wants: &Wanted, held: &HeldReads, out: &mut GrantPlan) {
    for (target, reasons) in wants.values() {
        let has = match target {
            GrantTarget::Connection { id: Some(id), .. } => held.connections.contains(id),
            GrantTarget::Group { id: Some(id), .. } => held.groups.contains(id),
            _ => false,
        };
        if has {
            continue;
        }
        out.actions.push(PlannedAction {
            action: Action::Grant(GrantChange {
                op: GrantOp::Grant,
                grantee: grantee.clone(),
                target: target.clone(),
            }),
            reason: if target.is_group() {
                format!("visibility in the tree: {}", reasons.join("; "))
            } else {
                format!("named by {}", reasons.join(", "))
            },
        });
    }
}

fn revoke_unwanted(
    inputs: &GrantInputs<'_>,
    grantee: &Grantee,
    wants: &Wanted,
    held: &HeldReads,
    protected: &Protected,
    deleting: &BTreeSet<String>,
    out: &mut GrantPlan,
) {
    let Some(record) = inputs.st.grants.get(&grantee.key()) else {
        return;
    };
    let tree = inputs.tree;
    // Connections and groups are numbered independently: keep them apart.
    let wanted = |groups: bool| -> BTreeSet<&str> {
        wants
            .values()
            .filter(|(t, _)| t.is_group() == groups)
            .filter_map(|(t, _)| t.id())
            .collect()
    };
    let (wanted_connections, wanted_groups) = (wanted(false), wanted(true));
    let kept_here: BTreeSet<&String> = record
        .connections
        .iter()
        .filter(|id| protected.connections.contains(*id))
        .collect();
    let kept_groups: BTreeSet<&String> = kept_here
        .iter()
        .flat_map(|id| protected.groups_of.get(*id).into_iter().flatten())
        .collect();
    for id in &record.connections {
        if wanted_connections.contains(id.as_str()) || kept_here.contains(id) {
            continue;
        }
        if deleting.contains(&format!("c{id}")) {
            continue;
        }
        let Some(conn) = tree.find(id).filter(|_| held.connections.contains(id)) else {
            out.forget.push(Forget::Connection {
                grantee: grantee.clone(),
                id: id.clone(),
            });
            continue;
        };
        let identity = inputs
            .st
            .connections
            .iter()
            .find(|(_, o)| o.id == *id)
            .and_then(|(k, _)| Identity::parse_key(k));
        out.actions.push(PlannedAction {
            action: Action::Grant(GrantChange {
                op: GrantOp::Revoke,
                grantee: grantee.clone(),
                target: GrantTarget::Connection {
                    identity,
                    name: conn.name.clone(),
                    id: Some(id.clone()),
                },
            }),
            reason: format!("no access rule or notes name {grantee} for it any more"),
        });
    }
    let group_path: BTreeMap<&str, GroupPath> = tree
        .groups
        .values()
        .map(|g| (g.id.as_str(), g.path.clone()))
        .chain(tree.root_id.as_deref().map(|r| (r, Vec::new())))
        .collect();
    for id in &record.groups {
        if wanted_groups.contains(id.as_str()) || kept_groups.contains(id) {
            continue;
        }
        if deleting.contains(&format!("g{id}")) {
            continue;
        }
        let Some(path) = group_path
            .get(id.as_str())
            .filter(|_| held.groups.contains(id))
        else {
            out.forget.push(Forget::Group {
                grantee: grantee.clone(),
                id: id.clone(),
            });
            continue;
        };
        out.actions.push(PlannedAction {
            action: Action::Grant(GrantChange {
                op: GrantOp::Revoke,
                grantee: grantee.clone(),
                target: GrantTarget::Group {
                    path: path.clone(),
                    id: Some(id.clone()),
                },
            }),
            reason: format!("no connection below it is granted to {grantee} any more"),
        });
    }
}

fn report_unknown(wish: &GrantWish, grantee: &Grantee, out: &mut GrantPlan) {
    let mut sources: BTreeMap<String, Vec<&Identity>> = BTreeMap::new();
    for (identity, grantees) in &wish.connections {
        for source in grantees.get(grantee).into_iter().flatten() {
            let at = match source {
                GrantSource::Rule { description, .. } => description.clone(),
                GrantSource::Notes { block, line } => {
                    format!("guest {} notes block {block} (line {line})", identity.guest)
                }
            };
            sources.entry(at).or_default().push(identity);
        }
    }
    for (at, identities) in sources {
        out.problems.push(format!(
            "access: {at}: {grantee} does not exist in Guacamole; not granted on {} connection(s) \
             (the other grants still apply)",
            identities.len()
        ));
    }
}

fn access_view(inputs: &GrantInputs<'_>, out: &GrantPlan) -> BTreeMap<Identity, Vec<String>> {
    let pending: BTreeSet<(Grantee, Identity)> = out
        .actions
        .iter()
        .filter_map(|a| match &a.action {
            Action::Grant(change) if change.op == GrantOp::Grant => change
                .identity()
                .map(|i| (change.grantee.clone(), i.clone())),
            _ => None,
        })
        .collect();
    let mut view = BTreeMap::new();
    for (identity, grantees) in &inputs.wish.connections {
        let items = grantees
            .keys()
            .map(|g| {
                let state = match inputs.states.get(g) {
                    Some(GranteeState::Unknown) => " (unknown)",
                    Some(GranteeState::Unreadable(_)) => " (unreadable)",
                    _ if pending.contains(&(g.clone(), identity.clone())) => " (pending)",
                    _ => "",
                };
                format!("{}{state}", g.key())
            })
            .collect();
        view.insert(identity.clone(), items);
    }
    view
}
