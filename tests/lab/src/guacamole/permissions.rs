//! Permission sets (§7.2): object permissions per kind and system
//! permissions, with the canonical orders the server renders.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::seed::GuacVersion;

/// Object permission types, declared in canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectPermission {
    Read,
    Update,
    Delete,
    Administer,
}

impl ObjectPermission {
    pub const ALL: [ObjectPermission; 4] = [
        ObjectPermission::Read,
        ObjectPermission::Update,
        ObjectPermission::Delete,
        ObjectPermission::Administer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectPermission::Read => "READ",
            ObjectPermission::Update => "UPDATE",
            ObjectPermission::Delete => "DELETE",
            ObjectPermission::Administer => "ADMINISTER",
        }
    }

    /// Exact, case-sensitive names only.
    pub fn parse(text: &str) -> Option<ObjectPermission> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

/// System permission types, declared in canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SystemPermission {
    CreateUser,
    CreateUserGroup,
    CreateConnection,
    CreateConnectionGroup,
    CreateSharingProfile,
    /// 1.6+ only.
    Audit,
    Administer,
}

impl SystemPermission {
    pub const ALL: [SystemPermission; 7] = [
        SystemPermission::CreateUser,
        SystemPermission::CreateUserGroup,
        SystemPermission::CreateConnection,
        SystemPermission::CreateConnectionGroup,
        SystemPermission::CreateSharingProfile,
        SystemPermission::Audit,
        SystemPermission::Administer,
    ];

    /// What the default `guacadmin` holds.
    pub const ADMIN_SET: [SystemPermission; 6] = [
        SystemPermission::CreateUser,
        SystemPermission::CreateUserGroup,
        SystemPermission::CreateConnection,
        SystemPermission::CreateConnectionGroup,
        SystemPermission::CreateSharingProfile,
        SystemPermission::Administer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SystemPermission::CreateUser => "CREATE_USER",
            SystemPermission::CreateUserGroup => "CREATE_USER_GROUP",
            SystemPermission::CreateConnection => "CREATE_CONNECTION",
            SystemPermission::CreateConnectionGroup => "CREATE_CONNECTION_GROUP",
            SystemPermission::CreateSharingProfile => "CREATE_SHARING_PROFILE",
            SystemPermission::Audit => "AUDIT",
            SystemPermission::Administer => "ADMINISTER",
        }
    }

    /// Exact names; `AUDIT` exists in the enum only from 1.6 on.
    pub fn parse(text: &str, version: GuacVersion) -> Option<SystemPermission> {
        Self::ALL
            .into_iter()
            .filter(|p| *p != SystemPermission::Audit || version.is_1_6())
            .find(|p| p.as_str() == text)
    }
}

/// The six object-permission kinds of a permission set, in rendering order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    Connection,
    ConnectionGroup,
    SharingProfile,
    ActiveConnection,
    User,
    UserGroup,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 6] = [
        ObjectKind::Connection,
        ObjectKind::ConnectionGroup,
        ObjectKind::SharingProfile,
        ObjectKind::ActiveConnection,
        ObjectKind::User,
        ObjectKind::UserGroup,
    ];

    /// Member name in the permission set and path prefix in a PATCH.
    pub fn member(self) -> &'static str {
        match self {
            ObjectKind::Connection => "connectionPermissions",
            ObjectKind::ConnectionGroup => "connectionGroupPermissions",
            ObjectKind::SharingProfile => "sharingProfilePermissions",
            ObjectKind::ActiveConnection => "activeConnectionPermissions",
            ObjectKind::User => "userPermissions",
            ObjectKind::UserGroup => "userGroupPermissions",
        }
    }
}

/// Permissions granted to one user or user group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionSet {
    pub objects: BTreeMap<ObjectKind, BTreeMap<String, BTreeSet<ObjectPermission>>>,
    pub system: BTreeSet<SystemPermission>,
}

impl PermissionSet {
    pub fn has(&self, kind: ObjectKind, id: &str, perm: ObjectPermission) -> bool {
        self.objects
            .get(&kind)
            .and_then(|m| m.get(id))
            .is_some_and(|s| s.contains(&perm))
    }

    pub fn grant(&mut self, kind: ObjectKind, id: &str, perm: ObjectPermission) {
        self.objects
            .entry(kind)
            .or_default()
            .entry(id.to_string())
            .or_default()
            .insert(perm);
    }

    pub fn grant_all(&mut self, kind: ObjectKind, id: &str) {
        for p in ObjectPermission::ALL {
            self.grant(kind, id, p);
        }
    }

    pub fn revoke(&mut self, kind: ObjectKind, id: &str, perm: ObjectPermission) {
        if let Some(map) = self.objects.get_mut(&kind)
            && let Some(set) = map.get_mut(id)
        {
            set.remove(&perm);
            if set.is_empty() {
                map.remove(id);
            }
        }
    }

    /// Drop every grant that refers to a deleted object.
    pub fn forget(&mut self, kind: ObjectKind, id: &str) {
        if let Some(map) = self.objects.get_mut(&kind) {
            map.remove(id);
        }
    }

    pub fn merge(&mut self, other: &PermissionSet) {
        for (kind, map) in &other.objects {
            let mine = self.objects.entry(*kind).or_default();
            for (id, perms) in map {
                mine.entry(id.clone()).or_default().extend(perms);
            }
        }
        self.system.extend(&other.system);
    }

    /// The §7.2 JSON shape: all seven members, canonical orders.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        for kind in ObjectKind::ALL {
            let mut members = Map::new();
            if let Some(map) = self.objects.get(&kind) {
                for (id, perms) in map {
                    let list: Vec<&str> = perms.iter().map(|p| p.as_str()).collect();
                    members.insert(id.clone(), json!(list));
                }
            }
            out.insert(kind.member().into(), Value::Object(members));
        }
        let system: Vec<&str> = self.system.iter().map(|p| p.as_str()).collect();
        out.insert("systemPermissions".into(), json!(system));
        Value::Object(out)
    }
}
