//! Reads the permission sets of the users and user groups the grants
//! concern: one `GET …/permissions` each, concurrently. A 404 means the
//! user or group does not exist (the daemon never creates them).

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;

use super::model::Grantee;
use crate::guacamole::{GuacamoleClient, GuacamoleError, PermissionSet};

/// READ permissions a grantee holds directly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldReads {
    pub connections: BTreeSet<String>,
    pub groups: BTreeSet<String>,
}

impl HeldReads {
    pub fn from_set(set: &PermissionSet) -> HeldReads {
        let reads = |m: &BTreeMap<String, Vec<String>>| {
            m.iter()
                .filter(|(_, ps)| ps.iter().any(|p| p == "READ"))
                .map(|(id, _)| id.clone())
                .collect()
        };
        HeldReads {
            connections: reads(&set.connection_permissions),
            groups: reads(&set.connection_group_permissions),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GranteeState {
    Found(HeldReads),
    /// No such user or user group in Guacamole.
    Unknown,
    /// Its permissions could not be read this cycle (no secrets inside).
    Unreadable(String),
}

pub type GranteeStates = BTreeMap<Grantee, GranteeState>;

pub async fn observe_grantees(guac: &GuacamoleClient, who: &BTreeSet<Grantee>) -> GranteeStates {
    let reads = who.iter().map(|g| read(guac, g));
    who.iter().cloned().zip(join_all(reads).await).collect()
}

pub(crate) async fn read(guac: &GuacamoleClient, who: &Grantee) -> GranteeState {
    let result = match who {
        Grantee::User(n) => guac.user_permissions(n).await,
        Grantee::Group(n) => guac.user_group_permissions(n).await,
    };
    match result {
        Ok(set) => GranteeState::Found(HeldReads::from_set(&set)),
        Err(GuacamoleError::NotFound { .. }) => GranteeState::Unknown,
        Err(e) => GranteeState::Unreadable(format!("{e} ({})", e.label())),
    }
}
