//! Users, user groups and group memberships (§7.1, §7.4, §7.5).

use serde_json::{Map, Value, json};

use super::body::{PatchEntry, PatchOp, UserBody, UserGroupBody, string_of};
use super::errors::{Fail, GuacError};
use super::model::{Actor, Store, USER_KEYS, User, UserGroup};
use super::permissions::{ObjectKind, ObjectPermission, PermissionSet, SystemPermission};
use super::seed::GuacVersion;

fn user_attribute_allowed(key: &str, version: GuacVersion) -> bool {
    USER_KEYS.contains(&key) || (!version.is_1_6() && key == "disabled")
}

/// Which membership set a PATCH edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// `/users/{u}/userGroups`
    GroupsOfUser,
    /// `/userGroups/{g}/memberUsers`
    MemberUsers,
    /// `/userGroups/{g}/memberUserGroups`
    MemberGroups,
    /// `/userGroups/{g}/userGroups`
    ParentGroups,
}

impl Store {
    pub fn readable_user(&self, actor: &Actor, name: &str) -> Result<&User, GuacError> {
        self.users
            .get(name)
            .filter(|_| self.may(actor, ObjectKind::User, name, ObjectPermission::Read))
            .ok_or_else(|| GuacError::not_found(name))
    }

    pub fn readable_user_group(&self, actor: &Actor, name: &str) -> Result<&UserGroup, GuacError> {
        self.user_groups
            .get(name)
            .filter(|_| self.may(actor, ObjectKind::UserGroup, name, ObjectPermission::Read))
            .ok_or_else(|| GuacError::not_found(name))
    }

    pub fn create_user(
        &mut self,
        actor: &Actor,
        body: Option<UserBody>,
        version: GuacVersion,
    ) -> Result<(String, Value), Fail> {
        let body = body.ok_or_else(|| {
            GuacError::bad_request("Data must be submitted when creating objects.")
        })?;
        let attrs = body.attributes.clone().ok_or_else(GuacError::internal)?;
        if !self.may_system(actor, SystemPermission::CreateUser) {
            return Err(GuacError::denied().into());
        }
        let username = body
            .username
            .clone()
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| GuacError::bad_request("The username must not be blank."))?;
        if self.users.contains_key(&username) {
            return Err(
                GuacError::bad_request(format!("User \"{username}\" already exists.")).into(),
            );
        }
        let kept: Map<String, Value> = attrs
            .iter()
            .filter(|(k, _)| user_attribute_allowed(k, version))
            .filter(|(_, v)| version >= GuacVersion::V1_5 || v.is_some())
            .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String)))
            .collect();
        let disabled = if version.is_1_6() {
            body.disabled.unwrap_or(false)
        } else {
            attrs.get("disabled").and_then(|v| v.as_deref()) == Some("true")
        };
        let mut permissions = PermissionSet::default();
        permissions.grant(ObjectKind::User, &username, ObjectPermission::Read);
        self.users.insert(
            username.clone(),
            User {
                username: username.clone(),
                password: body.password.clone().unwrap_or_default(),
                disabled,
                attributes: stored_user_attributes(&attrs),
                permissions,
                last_active: None,
            },
        );
        if let Some(creator) = self.users.get_mut(&actor.username) {
            creator.permissions.grant_all(ObjectKind::User, &username);
        }
        let mut echo = Map::new();
        echo.insert("username".into(), json!(username));
        if let Some(p) = &body.password {
            echo.insert("password".into(), json!(p));
        }
        if version.is_1_6() {
            echo.insert("disabled".into(), json!(disabled));
        }
        echo.insert("attributes".into(), Value::Object(kept));
        Ok((username, Value::Object(echo)))
    }

    pub fn update_user(
        &mut self,
        actor: &Actor,
        name: &str,
        body: Option<UserBody>,
        version: GuacVersion,
    ) -> Result<(), Fail> {
        self.readable_user(actor, name)?;
        let body = body.ok_or_else(|| {
            GuacError::bad_request("Data must be submitted when updating objects.")
        })?;
        let attrs = body.attributes.clone().ok_or_else(GuacError::internal)?;
        if !self.may(actor, ObjectKind::User, name, ObjectPermission::Update) {
            return Err(GuacError::denied().into());
        }
        let user = self.users.get_mut(name).expect("looked up above");
        user.attributes = stored_user_attributes(&attrs);
        user.disabled = if version.is_1_6() {
            body.disabled.unwrap_or(false)
        } else {
            attrs.get("disabled").and_then(|v| v.as_deref()) == Some("true")
        };
        if let Some(p) = body.password {
            user.password = p;
        }
        Ok(())
    }

    pub fn delete_user(&mut self, actor: &Actor, name: &str, must_exist: bool) -> Result<(), Fail> {
        if must_exist {
            self.readable_user(actor, name)?;
        }
        if !self.may(actor, ObjectKind::User, name, ObjectPermission::Delete) {
            return Err(GuacError::denied().into());
        }
        if self.users.remove(name).is_some() {
            for g in self.user_groups.values_mut() {
                g.member_users.remove(name);
            }
            self.forget_object(ObjectKind::User, name);
        }
        Ok(())
    }

    pub fn create_user_group(
        &mut self,
        actor: &Actor,
        body: Option<UserGroupBody>,
        version: GuacVersion,
    ) -> Result<(String, Value), Fail> {
        let body = body.ok_or_else(|| {
            GuacError::bad_request("Data must be submitted when creating objects.")
        })?;
        // The group attribute schema is empty from 1.6 on, so only older
        // versions insist on an attribute map.
        if !version.is_1_6() && body.attributes.is_none() {
            return Err(GuacError::internal().into());
        }
        if !self.may_system(actor, SystemPermission::CreateUserGroup) {
            return Err(GuacError::denied().into());
        }
        let identifier = body
            .identifier
            .clone()
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| GuacError::bad_request("The group name must not be blank."))?;
        if self.user_groups.contains_key(&identifier) {
            return Err(
                GuacError::bad_request(format!("Group \"{identifier}\" already exists.")).into(),
            );
        }
        let disabled = group_disabled(&body, version);
        self.user_groups.insert(
            identifier.clone(),
            UserGroup {
                identifier: identifier.clone(),
                disabled,
                ..UserGroup::default()
            },
        );
        if let Some(creator) = self.users.get_mut(&actor.username) {
            creator
                .permissions
                .grant_all(ObjectKind::UserGroup, &identifier);
        }
        let attrs: Map<String, Value> = if version.is_1_6() {
            Map::new()
        } else {
            body.attributes
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, v)| k == "disabled" && (version >= GuacVersion::V1_5 || v.is_some()))
                .map(|(k, v)| (k, v.map_or(Value::Null, Value::String)))
                .collect()
        };
        let mut echo = Map::new();
        echo.insert("identifier".into(), json!(identifier));
        if version.is_1_6() {
            echo.insert("disabled".into(), json!(disabled));
        }
        echo.insert("attributes".into(), Value::Object(attrs));
        Ok((identifier, Value::Object(echo)))
    }

    pub fn update_user_group(
        &mut self,
        actor: &Actor,
        name: &str,
        body: Option<UserGroupBody>,
        version: GuacVersion,
    ) -> Result<(), Fail> {
        self.readable_user_group(actor, name)?;
        let body = body.ok_or_else(|| {
            GuacError::bad_request("Data must be submitted when updating objects.")
        })?;
        if !version.is_1_6() && body.attributes.is_none() {
            return Err(GuacError::internal().into());
        }
        if !self.may(actor, ObjectKind::UserGroup, name, ObjectPermission::Update) {
            return Err(GuacError::denied().into());
        }
        let disabled = group_disabled(&body, version);
        self.user_groups
            .get_mut(name)
            .expect("looked up above")
            .disabled = disabled;
        Ok(())
    }

    pub fn delete_user_group(
        &mut self,
        actor: &Actor,
        name: &str,
        must_exist: bool,
    ) -> Result<(), Fail> {
        if must_exist {
            self.readable_user_group(actor, name)?;
        }
        if !self.may(actor, ObjectKind::UserGroup, name, ObjectPermission::Delete) {
            return Err(GuacError::denied().into());
        }
        if self.user_groups.remove(name).is_some() {
            for g in self.user_groups.values_mut() {
                g.member_groups.remove(name);
            }
            self.forget_object(ObjectKind::UserGroup, name);
        }
        Ok(())
    }

    /// Current members of a membership set, sorted.
    pub fn membership(&self, kind: Membership, owner: &str) -> Vec<String> {
        match kind {
            Membership::GroupsOfUser => self
                .user_groups
                .values()
                .filter(|g| g.member_users.contains(owner))
                .map(|g| g.identifier.clone())
                .collect(),
            Membership::MemberUsers => self
                .user_groups
                .get(owner)
                .map(|g| g.member_users.iter().cloned().collect())
                .unwrap_or_default(),
            Membership::MemberGroups => self
                .user_groups
                .get(owner)
                .map(|g| g.member_groups.iter().cloned().collect())
                .unwrap_or_default(),
            Membership::ParentGroups => self
                .user_groups
                .values()
                .filter(|g| g.member_groups.contains(owner))
                .map(|g| g.identifier.clone())
                .collect(),
        }
    }

    /// `PATCH` on a membership set (§7.4): path must be `/`, op add/remove;
    /// everything is validated before anything changes.
    pub fn patch_membership(
        &mut self,
        actor: &Actor,
        kind: Membership,
        owner: &str,
        entries: &[PatchEntry],
    ) -> Result<(), Fail> {
        let mut changes = Vec::with_capacity(entries.len());
        for e in entries {
            let path = e.path.clone().unwrap_or_default();
            if path != "/" {
                return Err(
                    GuacError::bad_request(format!("Unsupported patch path: \"{path}\"")).into(),
                );
            }
            let value = string_of(Some(&e.value))?.ok_or_else(GuacError::internal)?;
            let add = match e.op {
                Some(PatchOp::Add) => true,
                Some(PatchOp::Remove) => false,
                other => {
                    let op = other.map_or("null", |o| o.as_str());
                    return Err(GuacError::bad_request(format!(
                        "Unsupported patch operation: \"{op}\""
                    ))
                    .into());
                }
            };
            changes.push((add, value));
        }
        let owner_kind = match kind {
            Membership::GroupsOfUser => ObjectKind::User,
            _ => ObjectKind::UserGroup,
        };
        if !self.may(actor, owner_kind, owner, ObjectPermission::Update) {
            return Err(GuacError::denied().into());
        }
        for (add, value) in changes {
            // (group that holds the member, member name, member is a user)
            let (group, member, is_user) = match kind {
                Membership::GroupsOfUser => (value, owner.to_string(), true),
                Membership::MemberUsers => (owner.to_string(), value, true),
                Membership::MemberGroups => (owner.to_string(), value, false),
                Membership::ParentGroups => (value, owner.to_string(), false),
            };
            let member_exists = if is_user {
                self.users.contains_key(&member)
            } else {
                self.user_groups.contains_key(&member)
            };
            let Some(g) = self.user_groups.get_mut(&group) else {
                if add {
                    return Err(GuacError::internal().into());
                }
                continue;
            };
            let set = if is_user {
                &mut g.member_users
            } else {
                &mut g.member_groups
            };
            if add {
                if !member_exists {
                    return Err(GuacError::internal().into());
                }
                set.insert(member);
            } else {
                set.remove(&member);
            }
        }
        Ok(())
    }
}

fn stored_user_attributes(
    attrs: &super::attributes::RawAttributes,
) -> std::collections::BTreeMap<String, String> {
    attrs
        .iter()
        .filter(|(k, _)| USER_KEYS.contains(&k.as_str()))
        .filter_map(|(k, v)| v.clone().filter(|v| !v.is_empty()).map(|v| (k.clone(), v)))
        .collect()
}

fn group_disabled(body: &UserGroupBody, version: GuacVersion) -> bool {
    if version.is_1_6() {
        body.disabled.unwrap_or(false)
    } else {
        body.attributes
            .as_ref()
            .and_then(|a| a.get("disabled"))
            .and_then(|v| v.as_deref())
            == Some("true")
    }
}
