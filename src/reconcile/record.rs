//! After apply: fold what happened into the state (ownership, fingerprints,
//! absence clocks) and summarise the cycle. Pure over its inputs.

use serde::Serialize;

use super::model::{Desired, FingerprintKey, Identity};
use super::plan::{Action, Plan};
use crate::state::{OwnedConnection, State};

/// What became of one planned action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ActionResult {
    /// Done; `id` is the identifier Guacamole gave a created object.
    Done { id: Option<String> },
    /// Dry run: logged, not executed.
    DryRun,
    /// Left for a later cycle (change budget, or an earlier failure it needs).
    Deferred,
    /// Refused or failed; `error` is a stable label, `message` has no secrets.
    Failed { error: String, message: String },
}

/// Results in plan order (`results[i]` belongs to `plan.actions[i]`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub results: Vec<ActionResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CycleSummary {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub unchanged: usize,
    pub kept: usize,
    pub pending: usize,
    pub errors: usize,
    pub notes_rewritten: usize,
    pub groups_created: usize,
    pub groups_deleted: usize,
    /// READ permissions granted or revoked.
    pub grants_changed: usize,
    pub dry_run: bool,
}

pub fn record(
    plan: &Plan,
    outcome: &Outcome,
    want: &Desired,
    st: &mut State,
    now: u64,
) -> CycleSummary {
    let mut sum = CycleSummary {
        unchanged: plan.unchanged.len(),
        kept: plan.kept.len(),
        ..CycleSummary::default()
    };
    // Ownership learnt by adoption; parameters were read and compared, so
    // an unchanged adoptee is verified like any other.
    for (identity, id) in &plan.adopted {
        // One owner per connection: an identity taking over another's
        // connection (same guest, new user) replaces the old record.
        st.connections.retain(|_, o| o.id != *id);
        st.connections.insert(
            identity.key(),
            OwnedConnection {
                id: id.clone(),
                fingerprint: String::new(),
                verified_at: 0,
                name: String::new(),
                group: Vec::new(),
            },
        );
    }
    for (identity, id) in &plan.unchanged {
        if plan.verified.contains(identity) {
            st.connections.insert(
                identity.key(),
                owned(want, identity, id, &st.fingerprint_key, now),
            );
        }
    }

    for (planned, result) in plan.actions.iter().zip(&outcome.results) {
        match result {
            ActionResult::Done { id } => match &planned.action {
                Action::CreateGroup { .. } => sum.groups_created += 1,
                Action::DeleteGroup { .. } => sum.groups_deleted += 1,
                Action::Create { identity, .. } => {
                    sum.created += 1;
                    if let Some(id) = id {
                        let o = owned(want, identity, id, &st.fingerprint_key, now);
                        st.connections.insert(identity.key(), o);
                    }
                }
                Action::Update { identity, id, .. } => {
                    sum.updated += 1;
                    let o = owned(want, identity, id, &st.fingerprint_key, now);
                    st.connections.insert(identity.key(), o);
                }
                Action::Delete { identity, id, .. } => {
                    sum.deleted += 1;
                    if let Some(identity) = identity {
                        st.connections.remove(&identity.key());
                    }
                    st.orphan_since.remove(id);
                }
                Action::RewriteNotes { .. } => sum.notes_rewritten += 1,
                Action::Grant(_) => sum.grants_changed += 1,
            },
            ActionResult::DryRun => {
                sum.dry_run = true;
                sum.pending += 1;
            }
            ActionResult::Deferred => sum.pending += 1,
            ActionResult::Failed { .. } => sum.errors += 1,
        }
    }
    sum.pending += plan.actions.len().saturating_sub(outcome.results.len());

    for (guest, since) in &plan.absence.start {
        st.absent_since.entry(guest.to_string()).or_insert(*since);
    }
    for guest in &plan.absence.clear {
        st.absent_since.remove(&guest.to_string());
    }
    for (id, since) in &plan.absence.orphan_start {
        st.orphan_since.entry(id.clone()).or_insert(*since);
    }
    for id in &plan.absence.orphan_clear {
        st.orphan_since.remove(id);
    }
    super::grants::record_grants(plan, outcome, &plan.forget_grants, st);
    // A guest with nothing left to prune needs no absence clock.
    st.absent_since.retain(|guest, _| {
        st.connections
            .keys()
            .any(|k| k.starts_with(&format!("{guest}/")))
    });
    sum
}

/// What the state records for a connection just written or verified.
fn owned(
    want: &Desired,
    identity: &Identity,
    id: &str,
    key: &FingerprintKey,
    now: u64,
) -> OwnedConnection {
    let wish = want.connections.get(identity);
    OwnedConnection {
        id: id.to_owned(),
        fingerprint: wish.map(|c| c.params.fingerprint(key)).unwrap_or_default(),
        verified_at: now,
        name: wish.map(|c| c.name.clone()).unwrap_or_default(),
        group: wish.map(|c| c.group.clone()).unwrap_or_default(),
    }
}
