//! `PATCH …/permissions` on users and user groups (§7.3): the whole list is
//! validated first (path, then value, then op per entry), then applied kind
//! by kind, adds before removes — not one transaction across kinds.

use super::body::{PatchEntry, PatchOp, string_of};
use super::errors::{Fail, GuacError};
use super::model::{Actor, Store, numeric_id};
use super::permissions::{ObjectKind, ObjectPermission, PermissionSet, SystemPermission};
use super::seed::GuacVersion;

/// Whose permission set is being edited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantee {
    User(String),
    UserGroup(String),
}

#[derive(Debug, Clone)]
enum Change {
    Object {
        kind: ObjectKind,
        id: String,
        perm: ObjectPermission,
        add: bool,
    },
    System {
        perm: SystemPermission,
        add: bool,
    },
}

fn parse_entry(e: &PatchEntry, version: GuacVersion) -> Result<Change, GuacError> {
    let path = e.path.clone().unwrap_or_default();
    let target = if path == "/systemPermissions" {
        None
    } else {
        let found = ObjectKind::ALL.into_iter().find_map(|kind| {
            path.strip_prefix('/')
                .and_then(|p| p.strip_prefix(kind.member()))
                .and_then(|p| p.strip_prefix('/'))
                .filter(|id| !id.is_empty())
                .map(|id| (kind, id.to_string()))
        });
        match found {
            Some(t) => Some(t),
            None => {
                return Err(GuacError::bad_request(format!(
                    "Unsupported patch path: \"{path}\""
                )));
            }
        }
    };
    let value = string_of(Some(&e.value))
        .ok()
        .flatten()
        .ok_or_else(GuacError::internal)?;
    let op_is_add = |op: Option<PatchOp>| match op {
        Some(PatchOp::Add) => Ok(true),
        Some(PatchOp::Remove) => Ok(false),
        other => Err(GuacError::bad_request(format!(
            "Unsupported patch operation: \"{}\"",
            other.map_or("null", |o| o.as_str())
        ))),
    };
    match target {
        None => {
            let perm = SystemPermission::parse(&value, version).ok_or_else(GuacError::internal)?;
            Ok(Change::System {
                perm,
                add: op_is_add(e.op)?,
            })
        }
        Some((kind, id)) => {
            let perm = ObjectPermission::parse(&value).ok_or_else(GuacError::internal)?;
            Ok(Change::Object {
                kind,
                id,
                perm,
                add: op_is_add(e.op)?,
            })
        }
    }
}

impl Store {
    /// The object an id refers to exists (ids of database objects compare
    /// numerically; sharing profiles and active connections never exist here).
    fn grant_target_exists(&self, kind: ObjectKind, id: &str) -> Option<String> {
        match kind {
            ObjectKind::Connection => numeric_id(id)
                .filter(|n| self.connections.contains_key(n))
                .map(|n| n.to_string()),
            ObjectKind::ConnectionGroup => numeric_id(id)
                .filter(|n| self.groups.contains_key(n))
                .map(|n| n.to_string()),
            ObjectKind::User => self.users.contains_key(id).then(|| id.to_string()),
            ObjectKind::UserGroup => self.user_groups.contains_key(id).then(|| id.to_string()),
            ObjectKind::SharingProfile | ObjectKind::ActiveConnection => None,
        }
    }

    fn grantee_set(&mut self, who: &Grantee) -> Option<&mut PermissionSet> {
        match who {
            Grantee::User(u) => self.users.get_mut(u).map(|u| &mut u.permissions),
            Grantee::UserGroup(g) => self.user_groups.get_mut(g).map(|g| &mut g.permissions),
        }
    }

    pub fn patch_permissions(
        &mut self,
        actor: &Actor,
        who: &Grantee,
        entries: &[PatchEntry],
        version: GuacVersion,
    ) -> Result<(), Fail> {
        let changes = entries
            .iter()
            .map(|e| parse_entry(e, version))
            .collect::<Result<Vec<_>, _>>()?;
        if !actor.admin {
            let (kind, name) = match who {
                Grantee::User(u) => (ObjectKind::User, u),
                Grantee::UserGroup(g) => (ObjectKind::UserGroup, g),
            };
            let may_edit = self.may(actor, kind, name, ObjectPermission::Update);
            let may_grant_all = changes.iter().all(|c| match c {
                Change::Object { kind, id, .. } => {
                    let key = match kind {
                        ObjectKind::Connection | ObjectKind::ConnectionGroup => {
                            numeric_id(id).map_or_else(|| id.clone(), |n| n.to_string())
                        }
                        _ => id.clone(),
                    };
                    self.may(actor, *kind, &key, ObjectPermission::Administer)
                }
                Change::System { .. } => false,
            });
            if !may_edit || !may_grant_all {
                return Err(GuacError::denied().into());
            }
        }
        for kind in ObjectKind::ALL {
            for add in [true, false] {
                for change in &changes {
                    let Change::Object {
                        kind: k,
                        id,
                        perm,
                        add: a,
                    } = change
                    else {
                        continue;
                    };
                    if *k != kind || *a != add {
                        continue;
                    }
                    let key = match self.grant_target_exists(kind, id) {
                        Some(key) => key,
                        None if add => return Err(GuacError::internal().into()),
                        None => id.clone(),
                    };
                    let set = self
                        .grantee_set(who)
                        .ok_or_else(|| GuacError::not_found("?"))?;
                    if add {
                        set.grant(kind, &key, *perm);
                    } else {
                        set.revoke(kind, &key, *perm);
                    }
                }
            }
        }
        let set = self
            .grantee_set(who)
            .ok_or_else(|| GuacError::not_found("?"))?;
        for add in [true, false] {
            for change in &changes {
                if let Change::System { perm, add: a } = change
                    && *a == add
                {
                    if add {
                        set.system.insert(*perm);
                    } else {
                        set.system.remove(perm);
                    }
                }
            }
        }
        Ok(())
    }
}
