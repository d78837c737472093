//! The plain data of access grants: who (a Guacamole user or user group),
//! on what (a managed connection or a managed group above one), from which
//! source, and the grant or revoke the plan makes of it.

use std::fmt;

use serde::Serialize;

use crate::reconcile::model::{GroupPath, Identity, display_path};

/// A Guacamole user or user group that gets READ on connections.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Grantee {
    User(String),
    Group(String),
}

impl Grantee {
    /// `user:alice` / `group:students`: the state file's key and `list`'s form.
    pub fn key(&self) -> String {
        match self {
            Grantee::User(n) => format!("user:{n}"),
            Grantee::Group(n) => format!("group:{n}"),
        }
    }

    pub fn parse_key(key: &str) -> Option<Grantee> {
        match key.split_once(':')? {
            ("user", n) if !n.is_empty() => Some(Grantee::User(n.to_owned())),
            ("group", n) if !n.is_empty() => Some(Grantee::Group(n.to_owned())),
            _ => None,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Grantee::User(n) | Grantee::Group(n) => n,
        }
    }
}

impl fmt::Display for Grantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grantee::User(n) => write!(f, "user {n:?}"),
            Grantee::Group(n) => write!(f, "user group {n:?}"),
        }
    }
}

/// Why a grantee should have READ on a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum GrantSource {
    /// `access.rules[number - 1]`, described as the operator wrote it.
    Rule { number: usize, description: String },
    /// The `access` key of a credential block in the guest's notes.
    Notes { block: usize, line: usize },
}

impl fmt::Display for GrantSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantSource::Rule { description, .. } => f.write_str(description),
            GrantSource::Notes { block, line } => {
                write!(f, "notes block {block} (line {line}) access")
            }
        }
    }
}

/// The object a READ permission is on. `id` is `None` for an object this
/// cycle creates: apply fills it in once Guacamole has named it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "object", rename_all = "snake_case")]
pub enum GrantTarget {
    Connection {
        /// `None` only for a connection the daemon no longer knows by
        /// identity (its revokes).
        identity: Option<Identity>,
        name: String,
        id: Option<String>,
    },
    /// A managed group (the empty path is the managed root group).
    Group { path: GroupPath, id: Option<String> },
}

impl GrantTarget {
    pub fn id(&self) -> Option<&str> {
        match self {
            GrantTarget::Connection { id, .. } | GrantTarget::Group { id, .. } => id.as_deref(),
        }
    }

    pub fn is_group(&self) -> bool {
        matches!(self, GrantTarget::Group { .. })
    }
}

impl fmt::Display for GrantTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = |id: &Option<String>| match id {
            Some(id) => format!("id {id}"),
            None => "new".to_owned(),
        };
        match self {
            GrantTarget::Connection {
                identity: Some(identity),
                name,
                id: i,
            } => write!(f, "connection {identity} \"{name}\" ({})", id(i)),
            GrantTarget::Connection { name, id: i, .. } => {
                write!(f, "connection \"{name}\" ({})", id(i))
            }
            GrantTarget::Group { path, id: i } if path.is_empty() => {
                write!(f, "the managed root group ({})", id(i))
            }
            GrantTarget::Group { path, id: i } => {
                write!(f, "group {} ({})", display_path(path), id(i))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantOp {
    Grant,
    Revoke,
}

/// One READ permission to add or remove: one entry of a permission PATCH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantChange {
    pub op: GrantOp,
    pub grantee: Grantee,
    pub target: GrantTarget,
}

impl GrantChange {
    pub fn kind(&self) -> &'static str {
        match self.op {
            GrantOp::Grant => "grant",
            GrantOp::Revoke => "revoke",
        }
    }

    pub fn describe(&self) -> String {
        match self.op {
            GrantOp::Grant => format!("grant READ on {} to {}", self.target, self.grantee),
            GrantOp::Revoke => format!("revoke READ on {} from {}", self.target, self.grantee),
        }
    }

    pub fn identity(&self) -> Option<&Identity> {
        match &self.target {
            GrantTarget::Connection { identity, .. } => identity.as_ref(),
            GrantTarget::Group { .. } => None,
        }
    }

    pub fn group(&self) -> Option<&GroupPath> {
        match &self.target {
            GrantTarget::Group { path, .. } => Some(path),
            GrantTarget::Connection { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grantee_keys_parse_back() {
        for g in [
            Grantee::User("alice".into()),
            Grantee::Group("lab:students".into()),
        ] {
            assert_eq!(Grantee::parse_key(&g.key()), Some(g));
        }
        assert_eq!(Grantee::parse_key("role:x"), None);
        assert_eq!(Grantee::parse_key("user:"), None);
    }
}
