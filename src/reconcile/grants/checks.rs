//! `test-auth` for access grants: every user and user group the
//! configuration names exists, and the service account may change their
//! permissions (Guacamole: UPDATE on the user or group, and ADMINISTER on
//! each connection and group granted — the daemon holds that on what it
//! creates; on an existing managed root group it must be granted).

use std::collections::BTreeSet;

use super::model::Grantee;
use super::observe::{GranteeState, read};
use crate::config::AccessSettings;
use crate::guacamole::{
    GuacamoleClient, GuacamoleError, ObjectPermission, PermissionCheck, PermissionSet, ROOT_GROUP,
};

/// Every user and user group the configuration names (rules and
/// `notes_may_grant`).
pub fn named_grantees(access: &AccessSettings) -> BTreeSet<Grantee> {
    let rules = access.rules.iter().flat_map(|r| {
        let users = r.users.iter().cloned().map(Grantee::User);
        users.chain(r.groups.iter().cloned().map(Grantee::Group))
    });
    let notes = access
        .notes_users
        .iter()
        .cloned()
        .map(Grantee::User)
        .chain(access.notes_groups.iter().cloned().map(Grantee::Group));
    rules.chain(notes).collect()
}

pub async fn check_access(
    guac: &GuacamoleClient,
    access: &AccessSettings,
    root_group_name: &str,
) -> Result<Vec<PermissionCheck>, GuacamoleError> {
    let who = named_grantees(access);
    if who.is_empty() {
        return Ok(Vec::new());
    }
    let perms = guac.effective_permissions().await?;
    let mut checks = Vec::new();
    for grantee in &who {
        let state = read(guac, grantee).await;
        checks.push(grantee_check(&perms, grantee, &state));
    }
    if !perms.is_admin()
        && let Some(root) = guac.find_group(ROOT_GROUP, root_group_name).await?
    {
        let granted = perms.has_on_group(&root.identifier, ObjectPermission::Administer);
        checks.push(PermissionCheck {
            permission: format!(
                "ADMINISTER on connection group {:?} ({})",
                root.name, root.identifier
            ),
            needed_for: "granting READ on the managed root group".to_owned(),
            granted,
            detail: if granted {
                "granted".to_owned()
            } else {
                "missing: grant ADMINISTER on the managed root group".to_owned()
            },
        });
    }
    Ok(checks)
}

fn grantee_check(
    perms: &PermissionSet,
    grantee: &Grantee,
    state: &GranteeState,
) -> PermissionCheck {
    let (kind, held) = match grantee {
        Grantee::User(n) => ("user", perms.user_permissions.get(n)),
        Grantee::Group(n) => ("user group", perms.user_group_permissions.get(n)),
    };
    let name = grantee.name();
    let may_update = held.is_some_and(|ps| ps.iter().any(|p| p == "UPDATE"));
    let (granted, detail) = match state {
        GranteeState::Unknown => (
            false,
            format!(
                "missing: {kind} {name:?} does not exist in Guacamole (the daemon never creates it)"
            ),
        ),
        GranteeState::Unreadable(e) => (
            false,
            format!(
                "missing: its permissions cannot be read ({e}); grant READ and UPDATE on {kind} {name:?}"
            ),
        ),
        GranteeState::Found(_) if perms.is_admin() => (true, "granted via ADMINISTER".to_owned()),
        GranteeState::Found(_) if may_update => (true, "granted".to_owned()),
        GranteeState::Found(_) => (
            false,
            format!("missing: grant UPDATE on {kind} {name:?} (or ADMINISTER)"),
        ),
    };
    PermissionCheck {
        permission: format!("UPDATE on {kind} {name:?}"),
        needed_for: "granting it READ on synced connections (access)".to_owned(),
        granted,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::grants::HeldReads;

    #[test]
    fn says_which_permission_is_missing() {
        let perms = PermissionSet {
            user_permissions: [(
                "alice".to_owned(),
                vec!["READ".to_owned(), "UPDATE".to_owned()],
            )]
            .into(),
            user_group_permissions: [("students".to_owned(), vec!["READ".to_owned()])].into(),
            ..PermissionSet::default()
        };
        let found = GranteeState::Found(HeldReads::default());
        let alice = grantee_check(&perms, &Grantee::User("alice".into()), &found);
        assert!(alice.granted, "{alice}");
        let students = grantee_check(&perms, &Grantee::Group("students".into()), &found);
        assert!(!students.granted);
        assert_eq!(
            students.to_string(),
            "FAIL UPDATE on user group \"students\": granting it READ on synced connections \
             (access) (missing: grant UPDATE on user group \"students\" (or ADMINISTER))"
        );
        let nope = grantee_check(
            &perms,
            &Grantee::Group("nope".into()),
            &GranteeState::Unknown,
        );
        assert!(!nope.granted);
        assert!(nope.detail.contains("\"nope\" does not exist"), "{nope}");
        let admin = PermissionSet {
            system_permissions: vec!["ADMINISTER".to_owned()],
            ..PermissionSet::default()
        };
        assert!(grantee_check(&admin, &Grantee::Group("students".into()), &found).granted);
    }
}
