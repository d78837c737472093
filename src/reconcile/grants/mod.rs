//! Access: READ on each managed connection (and the managed groups above
//! it) for exactly the users and user groups its sources name — the
//! `access.rules` of the configuration and the block's `access` key. Only
//! grants the daemon made (kept in the state file) are ever revoked.
//!
//! desire (pure) → observe (one read per grantee) → plan (pure, actions
//! join the cycle's plan) → apply (one permission PATCH per grantee) →
//! record.

mod apply;
mod checks;
mod desire;
mod model;
mod observe;
mod plan;
mod record;

use std::collections::BTreeSet;

pub use apply::{GrantApplyContext, apply_grants};
pub use checks::{check_access, named_grantees};
pub use desire::{GrantWish, desire_grants};
pub use model::{GrantChange, GrantOp, GrantSource, GrantTarget, Grantee};
pub use observe::{GranteeState, GranteeStates, HeldReads, observe_grantees};
pub use plan::{Forget, GrantInputs, GrantPlan, plan_grants};
pub use record::record_grants;

use super::desire::ClusterObservation;
use super::model::{Desired, ManagedTree};
use super::plan::{Action, Plan};
use crate::config::AccessSettings;
use crate::guacamole::GuacamoleClient;
use crate::state::State;

/// The grant part of one cycle up to planning: wishes, one permission read
/// per grantee involved (none when nothing is wished or recorded), and the
/// grant actions merged into `plan` after the connection writes.
pub async fn plan_stage(
    guac: &GuacamoleClient,
    observed: &[ClusterObservation],
    want: &Desired,
    tree: &ManagedTree,
    st: &State,
    access: &AccessSettings,
    plan: &mut Plan,
) -> GrantPlan {
    let wish = desire_grants(observed, want, access);
    let mut who: BTreeSet<Grantee> = wish.grantees();
    who.extend(st.grants.keys().filter_map(|k| Grantee::parse_key(k)));
    let states = if who.is_empty() {
        GranteeStates::new()
    } else {
        observe_grantees(guac, &who).await
    };
    let inputs = GrantInputs {
        wish: &wish,
        want,
        tree,
        st,
        states: &states,
    };
    let mut grants = plan_grants(&inputs, plan);
    let mut problems: Vec<String> = wish.refused.iter().map(|p| p.message.clone()).collect();
    problems.append(&mut grants.problems);
    grants.problems = problems;
    merge(plan, std::mem::take(&mut grants.actions));
    plan.forget_grants = std::mem::take(&mut grants.forget);
    grants
}

/// Grants go after the connection writes they need and before note
/// rewrites and deletes, so the change budget reaches them in that order.
fn merge(plan: &mut Plan, actions: Vec<super::plan::PlannedAction>) {
    let at = plan
        .actions
        .iter()
        .position(|a| {
            matches!(
                a.action,
                Action::RewriteNotes { .. } | Action::Delete { .. } | Action::DeleteGroup { .. }
            )
        })
        .unwrap_or(plan.actions.len());
    plan.actions.splice(at..at, actions);
}
