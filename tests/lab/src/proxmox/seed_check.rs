//! Whole-seed consistency checks of a [`ClusterSeed`] (serde checks each
//! field on its own).

use std::collections::BTreeSet;

use super::auth::split_token_id;
use super::params::{valid_node_name, valid_vmid_text};
use super::privs::{PrivCatalog, PrivSet};
use super::seed::ClusterSeed;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterSeedError {
    #[error("cluster {cluster:?}: node name {node:?} is invalid or appears twice")]
    Node { cluster: String, node: String },
    #[error("cluster {cluster:?}: guest {vmid}: {problem}")]
    Guest {
        cluster: String,
        vmid: u32,
        problem: String,
    },
    #[error("cluster {cluster:?}: token {token:?}: {problem}")]
    Token {
        cluster: String,
        token: String,
        problem: String,
    },
    #[error("cluster {cluster:?}: role {role:?}: invalid privilege {privilege:?}")]
    Role {
        cluster: String,
        role: String,
        privilege: String,
    },
    #[error("cluster {cluster:?}: ACL on {path:?}: {problem}")]
    Acl {
        cluster: String,
        path: String,
        problem: String,
    },
}

impl ClusterSeedError {
    pub fn label(&self) -> &'static str {
        match self {
            ClusterSeedError::Node { .. } => "seed_node",
            ClusterSeedError::Guest { .. } => "seed_guest",
            ClusterSeedError::Token { .. } => "seed_token",
            ClusterSeedError::Role { .. } => "seed_role",
            ClusterSeedError::Acl { .. } => "seed_acl",
        }
    }
}

impl ClusterSeed {
    /// Check cross-references: unique valid node names and VMIDs, guests on
    /// known nodes and pools, token owners, known privileges and roles.
    pub fn validate(&self) -> Result<(), ClusterSeedError> {
        let cluster = self.name.clone();
        let mut nodes = BTreeSet::new();
        for n in &self.nodes {
            if !valid_node_name(&n.name) || !nodes.insert(n.name.as_str()) {
                return Err(ClusterSeedError::Node {
                    cluster,
                    node: n.name.clone(),
                });
            }
        }
        let pools: BTreeSet<&str> = self.pools.iter().map(|p| p.name.as_str()).collect();
        let mut vmids = BTreeSet::new();
        for g in &self.guests {
            let problem = if !valid_vmid_text(&g.vmid.to_string()) {
                Some("VMID must be 100 … 999999999".to_string())
            } else if !vmids.insert(g.vmid) {
                Some("VMID appears twice".into())
            } else if !nodes.contains(g.node.as_str()) {
                Some(format!("unknown node {:?}", g.node))
            } else {
                g.pool
                    .as_deref()
                    .filter(|p| !pools.contains(p))
                    .map(|p| format!("unknown pool {p:?}"))
            };
            if let Some(problem) = problem {
                return Err(ClusterSeedError::Guest {
                    cluster,
                    vmid: g.vmid,
                    problem,
                });
            }
        }
        let users: BTreeSet<&str> = self
            .users
            .iter()
            .map(|u| u.userid.as_str())
            .chain(["root@pam"])
            .collect();
        let mut tokens = BTreeSet::new();
        for t in &self.tokens {
            let id = t.full_id();
            let problem = if split_token_id(&id).is_none() {
                Some("not a valid token id (user@realm!name)".to_string())
            } else if !users.contains(t.userid.as_str()) {
                Some(format!("unknown owner {:?}", t.userid))
            } else if !tokens.insert(id.clone()) {
                Some("appears twice".into())
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ClusterSeedError::Token {
                    cluster,
                    token: id,
                    problem,
                });
            }
        }
        for r in &self.roles {
            if let Some(p) = r.privs.iter().find(|p| PrivSet::bit(p).is_none()) {
                return Err(ClusterSeedError::Role {
                    cluster,
                    role: r.name.clone(),
                    privilege: p.clone(),
                });
            }
        }
        let catalog = PrivCatalog { major: 9 };
        for a in &self.acls {
            let subjects = [&a.user, &a.group, &a.token]
                .iter()
                .filter(|s| s.is_some())
                .count();
            let known_role = catalog.builtin_role(&a.role).is_some()
                || self.roles.iter().any(|r| r.name == a.role);
            let problem = if subjects != 1 {
                Some("needs exactly one of user, group, token".to_string())
            } else if !known_role {
                Some(format!("unknown role {:?}", a.role))
            } else if !a.path.starts_with('/') {
                Some("path must start with /".into())
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ClusterSeedError::Acl {
                    cluster,
                    path: a.path.clone(),
                    problem,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxmox::seed::GuestSeed;

    #[test]
    fn example_is_valid_and_mistakes_are_named() {
        assert_eq!(ClusterSeed::example("lab").validate(), Ok(()));
        let bad = ClusterSeed::example("lab").guest(GuestSeed::vm(100, "dup", "pve1"));
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("VMID appears twice")
        );
        let bad = ClusterSeed::example("lab").guest(GuestSeed::vm(300, "x", "pve9"));
        assert_eq!(bad.validate().unwrap_err().label(), "seed_guest");
        let bad = ClusterSeed::example("lab").acl("/", "sync@pve", "NoSuchRole");
        assert_eq!(bad.validate().unwrap_err().label(), "seed_acl");
        let bad = ClusterSeed::example("lab").role("R", &["VM.Bogus"]);
        assert_eq!(bad.validate().unwrap_err().label(), "seed_role");
    }
}
