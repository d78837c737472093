//! What the daemon's Guacamole account must be allowed to do (for
//! `test-auth`), and permission grants on users and user groups (§7.3).

use serde_json::{Value, json};

use super::types::{ObjectPermission, PermissionSet};

/// One permission `test-auth` verifies before any change is attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionCheck {
    /// The permission needed, as Guacamole names it (e.g. `CREATE_CONNECTION`,
    /// `UPDATE on connection group "pve" (3)`).
    pub permission: String,
    /// What the daemon needs it for.
    pub needed_for: String,
    pub granted: bool,
    /// How it is granted (`ADMINISTER` covers everything), or why it is missing.
    pub detail: String,
}

impl std::fmt::Display for PermissionCheck {
    /// One `test-auth` line: `ok   CREATE_CONNECTION: creating connections … (granted)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {} ({})",
            if self.granted { "ok  " } else { "FAIL" },
            self.permission,
            self.needed_for,
            self.detail
        )
    }
}

/// The managed root group as found under ROOT, if it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedGroup {
    pub identifier: String,
    pub name: String,
}

/// Evaluates the checks from `/self/effectivePermissions`:
/// `CREATE_CONNECTION` and `CREATE_CONNECTION_GROUP` (or `ADMINISTER`), and
/// `UPDATE`/`ADMINISTER` on the managed root group when it exists (when it
/// does not, `CREATE_CONNECTION_GROUP` lets the daemon create it and the
/// creator is granted full rights on it).
pub fn evaluate(
    perms: &PermissionSet,
    root_group_name: &str,
    managed: Option<&ManagedGroup>,
) -> Vec<PermissionCheck> {
    let admin = perms.is_admin();
    let system = |name: &str, needed_for: &str| {
        let (granted, detail) = if admin {
            (true, "granted via ADMINISTER".to_owned())
        } else if perms.has_system(name) {
            (true, "granted".to_owned())
        } else {
            (
                false,
                format!("missing: grant the system permission {name} or ADMINISTER"),
            )
        };
        PermissionCheck {
            permission: name.to_owned(),
            needed_for: needed_for.to_owned(),
            granted,
            detail,
        }
    };
    let mut checks = vec![
        system("CREATE_CONNECTION", "creating connections for guests"),
        system(
            "CREATE_CONNECTION_GROUP",
            "creating the managed root group and its sub-groups",
        ),
    ];
    let group_check = match managed {
        Some(group) => {
            let on_group = |p| perms.has_on_group(&group.identifier, p);
            let (granted, detail) = if admin {
                (true, "granted via ADMINISTER".to_owned())
            } else if on_group(ObjectPermission::Administer) {
                (true, "granted (ADMINISTER on the group)".to_owned())
            } else if on_group(ObjectPermission::Update) {
                (true, "granted (UPDATE on the group)".to_owned())
            } else {
                (
                    false,
                    format!(
                        "missing: grant UPDATE or ADMINISTER on connection group {:?} ({})",
                        group.name, group.identifier
                    ),
                )
            };
            PermissionCheck {
                permission: format!(
                    "UPDATE on connection group {:?} ({})",
                    group.name, group.identifier
                ),
                needed_for: "creating, updating and moving connections inside the managed group"
                    .to_owned(),
                granted,
                detail,
            }
        }
        None => {
            let create = admin || perms.has_system("CREATE_CONNECTION_GROUP");
            PermissionCheck {
                permission: format!("CREATE_CONNECTION_GROUP for group {root_group_name:?}"),
                needed_for: format!(
                    "creating the managed root group {root_group_name:?} (it does not exist yet)"
                ),
                granted: create,
                detail: if create {
                    "granted; the daemon will create the group and own it".to_owned()
                } else {
                    format!(
                        "missing: the group {root_group_name:?} does not exist (or is not visible) \
                         and the account may not create it"
                    )
                },
            }
        }
    };
    checks.push(group_check);
    checks
}

/// Add or remove a permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermissionOp {
    Grant,
    Revoke,
}

/// The object a permission refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionTarget {
    Connection(String),
    ConnectionGroup(String),
}

/// One entry of a permission PATCH (`/users/{u}/permissions`,
/// `/userGroups/{g}/permissions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionChange {
    pub op: PermissionOp,
    pub target: PermissionTarget,
    pub permission: ObjectPermission,
}

impl PermissionChange {
    pub fn grant(target: PermissionTarget, permission: ObjectPermission) -> Self {
        PermissionChange {
            op: PermissionOp::Grant,
            target,
            permission,
        }
    }

    pub fn revoke(target: PermissionTarget, permission: ObjectPermission) -> Self {
        PermissionChange {
            op: PermissionOp::Revoke,
            target,
            permission,
        }
    }

    pub fn patch_entry(&self) -> Value {
        let op = match self.op {
            PermissionOp::Grant => "add",
            PermissionOp::Revoke => "remove",
        };
        let path = match &self.target {
            PermissionTarget::Connection(id) => format!("/connectionPermissions/{id}"),
            PermissionTarget::ConnectionGroup(id) => format!("/connectionGroupPermissions/{id}"),
        };
        json!({"op": op, "path": path, "value": self.permission.as_str()})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(system: &[&str], groups: &[(&str, &[&str])]) -> PermissionSet {
        PermissionSet {
            system_permissions: system.iter().map(|s| s.to_string()).collect(),
            connection_group_permissions: groups
                .iter()
                .map(|(id, ps)| (id.to_string(), ps.iter().map(|p| p.to_string()).collect()))
                .collect(),
            ..PermissionSet::default()
        }
    }

    fn managed() -> ManagedGroup {
        ManagedGroup {
            identifier: "3".into(),
            name: "pve".into(),
        }
    }

    #[test]
    fn admin_passes_everything() {
        let checks = evaluate(&set(&["ADMINISTER"], &[]), "pve", Some(&managed()));
        assert_eq!(checks.len(), 3);
        assert!(checks.iter().all(|c| c.granted), "{checks:?}");
        assert!(checks[0].detail.contains("ADMINISTER"));
    }

    #[test]
    fn delegated_account_needs_update_on_the_existing_group() {
        let perms = set(
            &["CREATE_CONNECTION", "CREATE_CONNECTION_GROUP"],
            &[("3", &["READ"])],
        );
        let checks = evaluate(&perms, "pve", Some(&managed()));
        assert!(checks[0].granted && checks[1].granted);
        assert!(!checks[2].granted);
        assert!(checks[2].permission.contains("UPDATE"));
        assert!(
            checks[2].detail.contains("\"pve\" (3)"),
            "{}",
            checks[2].detail
        );

        let perms = set(
            &["CREATE_CONNECTION", "CREATE_CONNECTION_GROUP"],
            &[("3", &["READ", "UPDATE"])],
        );
        assert!(
            evaluate(&perms, "pve", Some(&managed()))
                .iter()
                .all(|c| c.granted)
        );
    }

    #[test]
    fn missing_group_needs_create_connection_group() {
        let perms = set(&["CREATE_CONNECTION"], &[]);
        let checks = evaluate(&perms, "pve", None);
        assert!(checks[0].granted);
        assert!(!checks[1].granted);
        assert_eq!(checks[1].permission, "CREATE_CONNECTION_GROUP");
        assert!(checks[1].detail.contains("CREATE_CONNECTION_GROUP"));
        assert!(!checks[2].granted);
        assert!(checks[2].needed_for.contains("\"pve\""));
    }

    #[test]
    fn nothing_granted() {
        let checks = evaluate(&PermissionSet::default(), "pve", None);
        assert!(checks.iter().all(|c| !c.granted));
        assert_eq!(
            checks[0].to_string(),
            "FAIL CREATE_CONNECTION: creating connections for guests \
             (missing: grant the system permission CREATE_CONNECTION or ADMINISTER)"
        );
    }

    #[test]
    fn permission_patch_entries() {
        let grant = PermissionChange::grant(
            PermissionTarget::Connection("7".into()),
            ObjectPermission::Read,
        );
        assert_eq!(
            grant.patch_entry(),
            json!({"op":"add","path":"/connectionPermissions/7","value":"READ"})
        );
        let revoke = PermissionChange::revoke(
            PermissionTarget::ConnectionGroup("3".into()),
            ObjectPermission::Update,
        );
        assert_eq!(
            revoke.patch_entry(),
            json!({"op":"remove","path":"/connectionGroupPermissions/3","value":"UPDATE"})
        );
    }
}
