//! `PATCH …/permissions` on users and user groups (§7.3): the whole list is
//! parsed first (path, then value, then op per entry), then applied kind by
//! kind, adds before removes — not one transaction across kinds. As 1.6.0
//! `PermissionSetResource.patchPermissions` + JDBC
//! `ModeledObjectPermissionService.createPermissions`/`deletePermissions`:
//! each (kind, add|remove) batch is authorised on its own and written by one
//! statement, so a bad identifier leaves none of that batch applied while
//! earlier batches stay.

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
    // A missing path or op is dereferenced as null by the server: 500.
    let path = e.path.clone().ok_or_else(GuacError::internal)?;
    let target = if path == "/systemPermissions" {
        None
    } else {
        let found = ObjectKind::ALL.into_iter().find_map(|kind| {
            path.strip_prefix('/')
                .and_then(|p| p.strip_prefix(kind.member()))
                .and_then(|p| p.strip_prefix('/'))
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
        Some(other) => Err(GuacError::bad_request(format!(
            "Unsupported patch operation: \"{}\"",
            other.as_str()
        ))),
        None => Err(GuacError::internal()),
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
        for kind in ObjectKind::ALL {
            for add in [true, false] {
                let batch: Vec<(&str, ObjectPermission)> = changes
                    .iter()
                    .filter_map(|c| match c {
                        Change::Object {
                            kind: k,
                            id,
                            perm,
                            add: a,
                        } if *k == kind && *a == add => Some((id.as_str(), *perm)),
                        _ => None,
                    })
                    .collect();
                if !batch.is_empty() {
                    self.apply_object_batch(actor, who, kind, add, &batch)?;
                }
            }
        }
        for add in [true, false] {
            let batch: Vec<SystemPermission> = changes
                .iter()
                .filter_map(|c| match c {
                    Change::System { perm, add: a } if *a == add => Some(*perm),
                    _ => None,
                })
                .collect();
            if batch.is_empty() {
                continue;
            }
            // Only administrators may alter system permissions.
            if !actor.admin {
                return Err(GuacError::denied().into());
            }
            let set = self
                .grantee_set(who)
                .ok_or_else(|| GuacError::not_found("?"))?;
            for perm in batch {
                if add {
                    set.system.insert(perm);
                } else {
                    set.system.remove(&perm);
                }
            }
        }
        Ok(())
    }

    /// One `createPermissions`/`deletePermissions` call: authorised as a
    /// whole, then one statement — any bad identifier fails all of it.
    fn apply_object_batch(
        &mut self,
        actor: &Actor,
        who: &Grantee,
        kind: ObjectKind,
        add: bool,
        batch: &[(&str, ObjectPermission)],
    ) -> Result<(), Fail> {
        if !self.may_alter(actor, who, kind, batch) {
            return Err(GuacError::denied().into());
        }
        let keys = batch
            .iter()
            .map(|(id, _)| self.statement_key(kind, id, add))
            .collect::<Option<Vec<String>>>()
            .ok_or_else(GuacError::internal)?;
        let set = self
            .grantee_set(who)
            .ok_or_else(|| GuacError::not_found("?"))?;
        for (key, (_, perm)) in keys.iter().zip(batch) {
            if add {
                set.grant(kind, key, *perm);
            } else {
                set.revoke(kind, key, *perm);
            }
        }
        Ok(())
    }

    /// `canAlterPermissions`: a non-administrator needs UPDATE on the grantee
    /// and ADMINISTER on every object of the batch.
    fn may_alter(
        &self,
        actor: &Actor,
        who: &Grantee,
        kind: ObjectKind,
        batch: &[(&str, ObjectPermission)],
    ) -> bool {
        if actor.admin {
            return true;
        }
        let (grantee_kind, name) = match who {
            Grantee::User(u) => (ObjectKind::User, u),
            Grantee::UserGroup(g) => (ObjectKind::UserGroup, g),
        };
        self.may(actor, grantee_kind, name, ObjectPermission::Update)
            && batch.iter().all(|(id, _)| {
                let key = match kind {
                    ObjectKind::Connection | ObjectKind::ConnectionGroup => {
                        numeric_id(id).map_or_else(|| id.to_string(), |n| n.to_string())
                    }
                    _ => id.to_string(),
                };
                self.may(actor, kind, &key, ObjectPermission::Administer)
            })
    }

    /// The key a grant is stored under, or `None` where the statement fails
    /// in storage: an insert naming a missing object, or a connection /
    /// group id (empty included) that is not an integer.
    fn statement_key(&self, kind: ObjectKind, id: &str, add: bool) -> Option<String> {
        if let Some(key) = self.grant_target_exists(kind, id) {
            return Some(key);
        }
        let integer_ids = matches!(kind, ObjectKind::Connection | ObjectKind::ConnectionGroup);
        if add || (integer_ids && numeric_id(id).is_none()) {
            None
        } else {
            Some(id.to_string())
        }
    }
}
