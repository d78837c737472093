//! After apply: the record of grants the daemon made follows what happened.
//! Grants done are added, revokes done removed; permissions on deleted
//! connections and groups (Guacamole drops those itself) and the entries the
//! plan found gone are forgotten.

use super::model::{GrantOp, GrantTarget, Grantee};
use super::plan::Forget;
use crate::reconcile::plan::{Action, Plan};
use crate::reconcile::record::{ActionResult, Outcome};
use crate::state::{GrantRecord, State};

pub fn record_grants(plan: &Plan, outcome: &Outcome, forget: &[Forget], st: &mut State) {
    for (a, result) in plan.actions.iter().zip(&outcome.results) {
        let ActionResult::Done { id } = result else {
            continue;
        };
        match &a.action {
            Action::Grant(change) => {
                let Some(id) = id.clone().or_else(|| change.target.id().map(str::to_owned)) else {
                    continue;
                };
                let record = st.grants.entry(change.grantee.key()).or_default();
                let set = match change.target {
                    GrantTarget::Connection { .. } => &mut record.connections,
                    GrantTarget::Group { .. } => &mut record.groups,
                };
                match change.op {
                    GrantOp::Grant => set.insert(id),
                    GrantOp::Revoke => set.remove(&id),
                };
            }
            Action::Delete { id, .. } => each(st, |r| {
                r.connections.remove(id);
            }),
            Action::DeleteGroup { id, .. } => each(st, |r| {
                r.groups.remove(id);
            }),
            _ => {}
        }
    }
    for f in forget {
        match f {
            Forget::Grantee(g) => {
                st.grants.remove(&g.key());
            }
            Forget::Connection { grantee, id } => {
                if let Some(r) = st.grants.get_mut(&grantee.key()) {
                    r.connections.remove(id);
                }
            }
            Forget::Group { grantee, id } => {
                if let Some(r) = st.grants.get_mut(&grantee.key()) {
                    r.groups.remove(id);
                }
            }
        }
    }
    st.grants
        .retain(|k, r| !r.is_empty() && Grantee::parse_key(k).is_some());
}

fn each(st: &mut State, mut f: impl FnMut(&mut GrantRecord)) {
    for r in st.grants.values_mut() {
        f(r);
    }
}
