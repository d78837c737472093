//! The emulated database: connections, connection groups, users and user
//! groups with their permission grants. Pure data and lookups; the
//! operations on each object kind live in their own modules.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::attributes::{ConnectionAttributes, GroupAttributes};
use super::errors::GuacError;
use super::permissions::{ObjectKind, ObjectPermission, PermissionSet, SystemPermission};
use super::seed::{GroupType, GuacVersion, GuacamoleSeed, UserSeed};

#[derive(Clone)]
pub struct Connection {
    pub id: u64,
    pub name: String,
    /// `None` = ROOT.
    pub parent: Option<u64>,
    pub protocol: String,
    pub parameters: BTreeMap<String, String>,
    pub attributes: ConnectionAttributes,
    /// Non-schema attributes (only a 1.6 PATCH `replace` stores these).
    pub extra_attributes: BTreeMap<String, String>,
    pub last_active: Option<u64>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Parameters hold passwords and keys: names only.
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("parent", &self.parent)
            .field("protocol", &self.protocol)
            .field("parameters", &self.parameters.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: u64,
    pub name: String,
    pub parent: Option<u64>,
    pub group_type: GroupType,
    pub attributes: GroupAttributes,
    pub extra_attributes: BTreeMap<String, String>,
}

#[derive(Clone)]
pub struct User {
    pub username: String,
    pub password: String,
    pub disabled: bool,
    /// Stored schema attributes (never null).
    pub attributes: BTreeMap<String, String>,
    pub permissions: PermissionSet,
    pub last_active: Option<u64>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("username", &self.username)
            .field("password", &"***")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default)]
pub struct UserGroup {
    pub identifier: String,
    pub disabled: bool,
    pub permissions: PermissionSet,
    pub member_users: BTreeSet<String>,
    pub member_groups: BTreeSet<String>,
}

/// User attribute schema of the database backend (`disabled` is an
/// attribute only before 1.6).
pub const USER_KEYS: [&str; 10] = [
    "guac-full-name",
    "guac-email-address",
    "guac-organization",
    "guac-organizational-role",
    "expired",
    "access-window-start",
    "access-window-end",
    "valid-from",
    "valid-until",
    "timezone",
];

/// Where a parent reference points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentRef {
    Root,
    Group(u64),
    Unknown,
}

/// Who is making a request: the user and the groups it inherits from.
/// Checks go through [`Store::may`] so no permission set is copied per
/// request (a sync account can hold thousands of creator grants).
#[derive(Debug, Clone)]
pub struct Actor {
    pub username: String,
    pub admin: bool,
    pub groups: Vec<String>,
}

/// Parse a database id: all digits, compared numerically (`"007"` is 7).
pub fn numeric_id(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

pub fn parent_json(parent: Option<u64>) -> String {
    parent.map_or_else(|| "ROOT".to_string(), |p| p.to_string())
}

#[derive(Debug, Clone, Default)]
pub struct Store {
    pub connections: BTreeMap<u64, Connection>,
    pub groups: BTreeMap<u64, Group>,
    pub users: BTreeMap<String, User>,
    pub user_groups: BTreeMap<String, UserGroup>,
    pub next_connection_id: u64,
    pub next_group_id: u64,
}

fn seed_perms(
    system: &[String],
    connections: &BTreeMap<String, Vec<String>>,
    groups: &BTreeMap<String, Vec<String>>,
) -> Result<PermissionSet, String> {
    let mut set = PermissionSet::default();
    for s in system {
        let p = SystemPermission::parse(s, GuacVersion::V1_6)
            .ok_or_else(|| format!("unknown system permission {s:?}"))?;
        set.system.insert(p);
    }
    for (kind, map) in [
        (ObjectKind::Connection, connections),
        (ObjectKind::ConnectionGroup, groups),
    ] {
        for (id, perms) in map {
            // Database ids compare numerically: "007" is connection 7.
            let id = numeric_id(id).map_or_else(|| id.clone(), |n| n.to_string());
            for p in perms {
                let p = ObjectPermission::parse(p)
                    .ok_or_else(|| format!("unknown object permission {p:?}"))?;
                set.grant(kind, &id, p);
            }
        }
    }
    Ok(set)
}

impl Store {
    /// Build the database from a seed; errors name the offending entry.
    pub fn from_seed(seed: &GuacamoleSeed) -> Result<Store, String> {
        let mut store = Store {
            next_connection_id: 1,
            next_group_id: 1,
            ..Store::default()
        };
        for g in &seed.connection_groups {
            let id = g.identifier.unwrap_or(store.next_group_id);
            if store.groups.contains_key(&id) {
                return Err(format!("duplicate connection group id {id}"));
            }
            let parent = store.seed_parent(g.parent.as_deref())?;
            let raw = g
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect();
            store.groups.insert(
                id,
                Group {
                    id,
                    name: g.name.clone(),
                    parent,
                    group_type: g.group_type,
                    attributes: GroupAttributes::default().replaced(&raw),
                    extra_attributes: BTreeMap::new(),
                },
            );
            store.next_group_id = store.next_group_id.max(id + 1);
        }
        for c in &seed.connections {
            let id = c.identifier.unwrap_or(store.next_connection_id);
            if store.connections.contains_key(&id) {
                return Err(format!("duplicate connection id {id}"));
            }
            let parent = store.seed_parent(c.parent.as_deref())?;
            let raw = c
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect();
            store.connections.insert(
                id,
                Connection {
                    id,
                    name: c.name.clone(),
                    parent,
                    protocol: c.protocol.clone(),
                    parameters: c
                        .parameters
                        .iter()
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    attributes: ConnectionAttributes::default()
                        .replaced(&raw)
                        .map_err(|_| format!("connection {:?}: bad attributes", c.name))?,
                    extra_attributes: BTreeMap::new(),
                    last_active: c.last_active_ms,
                },
            );
            store.next_connection_id = store.next_connection_id.max(id + 1);
        }
        let default_admin = [UserSeed::admin("guacadmin", "guacadmin")];
        let users: &[UserSeed] = if seed.users.is_empty() {
            &default_admin
        } else {
            &seed.users
        };
        for u in users {
            let mut perms = seed_perms(
                &u.system_permissions,
                &u.connection_permissions,
                &u.connection_group_permissions,
            )
            .map_err(|e| format!("user {:?}: {e}", u.username))?;
            if u.admin {
                perms.system.extend(SystemPermission::ADMIN_SET);
                // Like the default guacadmin: full rights on itself but DELETE.
                for p in [
                    ObjectPermission::Read,
                    ObjectPermission::Update,
                    ObjectPermission::Administer,
                ] {
                    perms.grant(ObjectKind::User, &u.username, p);
                }
            } else {
                perms.grant(ObjectKind::User, &u.username, ObjectPermission::Read);
            }
            store.users.insert(
                u.username.clone(),
                User {
                    username: u.username.clone(),
                    password: u.password.clone(),
                    disabled: u.disabled,
                    attributes: u.attributes.clone(),
                    permissions: perms,
                    last_active: u.last_active_ms,
                },
            );
        }
        for g in &seed.user_groups {
            let perms = seed_perms(
                &g.system_permissions,
                &g.connection_permissions,
                &g.connection_group_permissions,
            )
            .map_err(|e| format!("user group {:?}: {e}", g.identifier))?;
            store.user_groups.insert(
                g.identifier.clone(),
                UserGroup {
                    identifier: g.identifier.clone(),
                    disabled: g.disabled,
                    permissions: perms,
                    member_users: g.member_users.iter().cloned().collect(),
                    member_groups: g.member_user_groups.iter().cloned().collect(),
                },
            );
        }
        Ok(store)
    }

    fn seed_parent(&self, parent: Option<&str>) -> Result<Option<u64>, String> {
        match parent {
            None | Some("ROOT") => Ok(None),
            Some(p) => {
                if let Some(id) = numeric_id(p).filter(|id| self.groups.contains_key(id)) {
                    return Ok(Some(id));
                }
                self.groups
                    .values()
                    .find(|g| g.name == p)
                    .map(|g| Some(g.id))
                    .ok_or_else(|| format!("unknown parent group {p:?}"))
            }
        }
    }

    pub fn resolve_parent(&self, parent: Option<&str>) -> ParentRef {
        match parent {
            None | Some("ROOT") => ParentRef::Root,
            Some(p) => match numeric_id(p) {
                Some(id) if self.groups.contains_key(&id) => ParentRef::Group(id),
                _ => ParentRef::Unknown,
            },
        }
    }

    /// The user groups whose permissions `username` inherits: direct
    /// memberships, then the groups containing those, transitively; disabled
    /// groups contribute nothing.
    pub fn groups_of_user(&self, username: &str) -> BTreeSet<String> {
        let mut found: BTreeSet<String> = self
            .user_groups
            .values()
            .filter(|g| !g.disabled && g.member_users.contains(username))
            .map(|g| g.identifier.clone())
            .collect();
        let mut frontier: Vec<String> = found.iter().cloned().collect();
        while let Some(child) = frontier.pop() {
            for g in self.user_groups.values() {
                if !g.disabled
                    && g.member_groups.contains(&child)
                    && found.insert(g.identifier.clone())
                {
                    frontier.push(g.identifier.clone());
                }
            }
        }
        found
    }

    pub fn effective_permissions(&self, username: &str) -> PermissionSet {
        let mut set = self
            .users
            .get(username)
            .map(|u| u.permissions.clone())
            .unwrap_or_default();
        for g in self.groups_of_user(username) {
            if let Some(group) = self.user_groups.get(&g) {
                set.merge(&group.permissions);
            }
        }
        set
    }

    pub fn actor(&self, username: &str) -> Actor {
        let mut actor = Actor {
            username: username.to_string(),
            admin: false,
            groups: self.groups_of_user(username).into_iter().collect(),
        };
        actor.admin = self.holds_system(&actor, SystemPermission::Administer);
        actor
    }

    /// The actor's own and inherited permission sets.
    fn sets_of<'a>(&'a self, actor: &'a Actor) -> impl Iterator<Item = &'a PermissionSet> + 'a {
        self.users
            .get(&actor.username)
            .map(|u| &u.permissions)
            .into_iter()
            .chain(
                actor
                    .groups
                    .iter()
                    .filter_map(|g| self.user_groups.get(g).map(|g| &g.permissions)),
            )
    }

    fn holds_system(&self, actor: &Actor, perm: SystemPermission) -> bool {
        self.sets_of(actor).any(|s| s.system.contains(&perm))
    }

    /// Admins may do anything; others need the permission directly or via
    /// a group.
    pub fn may(&self, actor: &Actor, kind: ObjectKind, id: &str, perm: ObjectPermission) -> bool {
        actor.admin || self.sets_of(actor).any(|s| s.has(kind, id, perm))
    }

    pub fn may_system(&self, actor: &Actor, perm: SystemPermission) -> bool {
        actor.admin || self.holds_system(actor, perm)
    }

    /// Every permission set in the database (users and user groups).
    pub fn all_permission_sets(&mut self) -> impl Iterator<Item = &mut PermissionSet> {
        self.users
            .values_mut()
            .map(|u| &mut u.permissions)
            .chain(self.user_groups.values_mut().map(|g| &mut g.permissions))
    }

    /// Remove every grant referring to a deleted object.
    pub fn forget_object(&mut self, kind: ObjectKind, id: &str) {
        for set in self.all_permission_sets() {
            set.forget(kind, id);
        }
    }

    pub fn connection_name_taken(
        &self,
        parent: Option<u64>,
        name: &str,
        except: Option<u64>,
    ) -> bool {
        self.connections
            .values()
            .any(|c| c.parent == parent && c.name == name && Some(c.id) != except)
    }

    pub fn group_name_taken(&self, parent: Option<u64>, name: &str, except: Option<u64>) -> bool {
        self.groups
            .values()
            .any(|g| g.parent == parent && g.name == name && Some(g.id) != except)
    }

    /// Look up a connection the actor may read (404 otherwise).
    pub fn readable_connection(&self, actor: &Actor, id: &str) -> Result<&Connection, GuacError> {
        numeric_id(id)
            .and_then(|n| self.connections.get(&n))
            .filter(|c| {
                self.may(
                    actor,
                    ObjectKind::Connection,
                    &c.id.to_string(),
                    ObjectPermission::Read,
                )
            })
            .ok_or_else(|| GuacError::not_found(id))
    }

    /// Look up a group (not ROOT) the actor may read (404 otherwise).
    pub fn readable_group(&self, actor: &Actor, id: &str) -> Result<&Group, GuacError> {
        numeric_id(id)
            .and_then(|n| self.groups.get(&n))
            .filter(|g| {
                self.may(
                    actor,
                    ObjectKind::ConnectionGroup,
                    &g.id.to_string(),
                    ObjectPermission::Read,
                )
            })
            .ok_or_else(|| GuacError::not_found(id))
    }
}

/// §4.2: no parameters, `parentIdentifier` always, seven attribute keys.
pub fn connection_json(c: &Connection) -> Value {
    let mut attributes = c.attributes.to_json();
    for (k, v) in &c.extra_attributes {
        attributes.insert(k.clone(), Value::String(v.clone()));
    }
    let mut m = Map::new();
    m.insert("name".into(), json!(c.name));
    m.insert("identifier".into(), json!(c.id.to_string()));
    m.insert("parentIdentifier".into(), json!(parent_json(c.parent)));
    m.insert("protocol".into(), json!(c.protocol));
    m.insert("attributes".into(), Value::Object(attributes));
    m.insert("activeConnections".into(), json!(0));
    if let Some(t) = c.last_active {
        m.insert("lastActive".into(), json!(t));
    }
    Value::Object(m)
}

/// §5.1 without children.
pub fn group_json(g: &Group) -> Value {
    let mut attributes = g.attributes.to_json();
    for (k, v) in &g.extra_attributes {
        attributes.insert(k.clone(), Value::String(v.clone()));
    }
    json!({
        "name": g.name,
        "identifier": g.id.to_string(),
        "parentIdentifier": parent_json(g.parent),
        "type": g.group_type.as_str(),
        "activeConnections": 0,
        "attributes": attributes,
    })
}

/// §5.2: ROOT has no parent and no attributes.
pub fn root_json() -> Value {
    json!({
        "name": "ROOT",
        "identifier": "ROOT",
        "type": "ORGANIZATIONAL",
        "activeConnections": 0,
        "attributes": {},
    })
}

/// §7.5: `disabled` top-level on 1.6, an attribute before.
pub fn user_json(u: &User, version: GuacVersion) -> Value {
    let mut attributes = Map::new();
    for key in USER_KEYS {
        attributes.insert(
            key.into(),
            u.attributes.get(key).map_or(Value::Null, |v| json!(v)),
        );
    }
    let mut m = Map::new();
    m.insert("username".into(), json!(u.username));
    if version.is_1_6() {
        m.insert("disabled".into(), json!(u.disabled));
    } else {
        attributes.insert(
            "disabled".into(),
            if u.disabled {
                json!("true")
            } else {
                Value::Null
            },
        );
    }
    m.insert("attributes".into(), Value::Object(attributes));
    if let Some(t) = u.last_active {
        m.insert("lastActive".into(), json!(t));
    }
    Value::Object(m)
}

pub fn user_group_json(g: &UserGroup, version: GuacVersion) -> Value {
    if version.is_1_6() {
        json!({"identifier": g.identifier, "disabled": g.disabled, "attributes": {}})
    } else {
        json!({
            "identifier": g.identifier,
            "attributes": {"disabled": if g.disabled { json!("true") } else { Value::Null }},
        })
    }
}
