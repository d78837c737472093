//! Sends the planned grants and revokes: one permission `PATCH` per user or
//! user group, holding all of its entries (adds and removes together).
//! Targets created earlier in the same cycle get their identifiers here.
//! When a `PATCH` fails, the grantee's permissions are read back and each
//! entry is judged by what is really held: Guacamole applies a permission
//! PATCH kind by kind, so part of it may have taken effect.

use std::collections::BTreeMap;

use futures_util::future::join_all;

use super::model::{GrantChange, GrantOp, GrantTarget, Grantee};
use super::observe::{GranteeState, read};
use crate::guacamole::{
    GuacamoleClient, GuacamoleError, ObjectPermission, PermissionChange, PermissionTarget,
};
use crate::reconcile::model::{GroupPath, Identity};
use crate::reconcile::plan::{Action, Plan};
use crate::reconcile::record::ActionResult;

/// Where apply stands when the grants go out.
pub struct GrantApplyContext<'a> {
    pub guacamole: &'a GuacamoleClient,
    pub root_id: &'a str,
    pub groups: &'a BTreeMap<GroupPath, String>,
}

/// Results for the grant actions not yet decided, by plan index. A `Done`
/// carries the identifier of the object the permission is on.
pub async fn apply_grants(
    plan: &Plan,
    results: &[Option<ActionResult>],
    cx: &GrantApplyContext<'_>,
) -> Vec<(usize, ActionResult)> {
    let created = created_ids(plan, results);
    let mut decided = Vec::new();
    let mut batches: BTreeMap<&Grantee, Vec<(usize, &GrantChange, String)>> = BTreeMap::new();
    for (i, a) in plan.actions.iter().enumerate() {
        let Action::Grant(change) = &a.action else {
            continue;
        };
        if results[i].is_some() {
            continue;
        }
        match resolve(&change.target, &created, cx) {
            Some(id) => batches
                .entry(&change.grantee)
                .or_default()
                .push((i, change, id)),
            // Its connection or group was not created (budget, failure).
            None => decided.push((i, ActionResult::Deferred)),
        }
    }
    let sent = join_all(
        batches
            .into_iter()
            .map(|(grantee, entries)| send(cx.guacamole, grantee, entries)),
    )
    .await;
    decided.extend(sent.into_iter().flatten());
    decided
}

fn created_ids(plan: &Plan, results: &[Option<ActionResult>]) -> BTreeMap<Identity, String> {
    plan.actions
        .iter()
        .zip(results)
        .filter_map(|(a, r)| match (&a.action, r) {
            (Action::Create { identity, .. }, Some(ActionResult::Done { id: Some(id) })) => {
                Some((identity.clone(), id.clone()))
            }
            _ => None,
        })
        .collect()
}

fn resolve(
    target: &GrantTarget,
    created: &BTreeMap<Identity, String>,
    cx: &GrantApplyContext<'_>,
) -> Option<String> {
    if let Some(id) = target.id() {
        return Some(id.to_owned());
    }
    match target {
        GrantTarget::Connection { identity, .. } => created.get(identity.as_ref()?).cloned(),
        GrantTarget::Group { path, .. } if path.is_empty() => {
            (!cx.root_id.is_empty()).then(|| cx.root_id.to_owned())
        }
        GrantTarget::Group { path, .. } => cx.groups.get(path).cloned(),
    }
}

fn permission_change(change: &GrantChange, id: &str) -> PermissionChange {
    let target = match change.target {
        GrantTarget::Connection { .. } => PermissionTarget::Connection(id.to_owned()),
        GrantTarget::Group { .. } => PermissionTarget::ConnectionGroup(id.to_owned()),
    };
    match change.op {
        GrantOp::Grant => PermissionChange::grant(target, ObjectPermission::Read),
        GrantOp::Revoke => PermissionChange::revoke(target, ObjectPermission::Read),
    }
}

async fn send(
    guac: &GuacamoleClient,
    grantee: &Grantee,
    entries: Vec<(usize, &GrantChange, String)>,
) -> Vec<(usize, ActionResult)> {
    let body: Vec<PermissionChange> = entries
        .iter()
        .map(|(_, change, id)| permission_change(change, id))
        .collect();
    let sent = match grantee {
        Grantee::User(n) => guac.change_user_permissions(n, &body).await,
        Grantee::Group(n) => guac.change_user_group_permissions(n, &body).await,
    };
    let done = |id: &String| ActionResult::Done {
        id: Some(id.clone()),
    };
    let error = match sent {
        Ok(()) => return entries.iter().map(|(i, _, id)| (*i, done(id))).collect(),
        Err(e) => e,
    };
    let failed = |e: &GuacamoleError| ActionResult::Failed {
        error: e.label().to_owned(),
        message: format!("permissions of {grantee}: {e}"),
    };
    let GranteeState::Found(held) = read(guac, grantee).await else {
        return entries
            .iter()
            .map(|(i, _, _)| (*i, failed(&error)))
            .collect();
    };
    entries
        .iter()
        .map(|(i, change, id)| {
            let holds = match change.target {
                GrantTarget::Connection { .. } => held.connections.contains(id),
                GrantTarget::Group { .. } => held.groups.contains(id),
            };
            let took_effect = holds == (change.op == GrantOp::Grant);
            (
                *i,
                if took_effect {
                    done(id)
                } else {
                    failed(&error)
                },
            )
        })
        .collect()
}
