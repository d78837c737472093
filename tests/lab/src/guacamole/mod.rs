//! A stateful emulator of Apache Guacamole's REST API with the database
//! (PostgreSQL) authentication backend, versions 1.4 / 1.5 / 1.6, following
//! `spec/guacamole-api.md` (its §12 "emulator must" list in particular).
//!
//! [`GuacamoleServer`] owns the emulated database and the sessions; its
//! [`handler`](GuacamoleServer::handler) plugs into the lab's HTTPS server,
//! and its state API lets tests read and edit the database the way an
//! operator would in the web UI.

mod attributes;
mod body;
mod connections;
mod errors;
mod grants;
mod groups;
mod model;
mod patch;
mod permissions;
mod routes;
mod schema;
mod seed;
mod sessions;
mod users;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

pub use errors::{ErrorType, GuacError};
pub use permissions::{ObjectPermission, SystemPermission};
pub use seed::{
    ConnectionGroupSeed, ConnectionSeed, GroupType, GuacVersion, GuacamoleSeed, LoginBanSeed,
    UserGroupSeed, UserSeed,
};

use crate::clock::Clock;
use crate::http::{Handler, Request, Response};
use model::{Store, numeric_id, parent_json};
use permissions::ObjectKind;
use sessions::{Bans, Sessions};

/// Server settings that requests consult (some switchable at run time).
#[derive(Debug, Clone)]
struct Config {
    version: GuacVersion,
    base_path: String,
    data_source: String,
    session_timeout: Duration,
    max_request_bytes: usize,
    login_ban: Option<LoginBanSeed>,
}

/// Everything behind the one lock: requests are short and CPU-only.
#[derive(Debug)]
struct Inner {
    config: Config,
    store: Store,
    sessions: Sessions,
    bans: Bans,
}

/// A seed the emulator cannot load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Guacamole seed: {0}")]
pub struct SeedError(pub String);

impl SeedError {
    pub fn label(&self) -> &'static str {
        "guacamole_seed"
    }
}

/// One connection as stored (test view). `Debug` hides parameter values.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionView {
    pub identifier: String,
    pub name: String,
    /// `"ROOT"` or a group identifier.
    pub parent: String,
    pub protocol: String,
    pub parameters: BTreeMap<String, String>,
    /// As a GET renders them (schema keys with `None` when unset, plus any
    /// non-schema keys a 1.6 PATCH `replace` stored).
    pub attributes: BTreeMap<String, Option<String>>,
}

impl fmt::Debug for ConnectionView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionView")
            .field("identifier", &self.identifier)
            .field("name", &self.name)
            .field("parent", &self.parent)
            .field("protocol", &self.protocol)
            .field("parameters", &self.parameters.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// One connection group as stored (test view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub identifier: String,
    pub name: String,
    pub parent: String,
    pub group_type: GroupType,
    pub attributes: BTreeMap<String, Option<String>>,
}

/// Object counts, for scale tests and assertions that nothing else changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ObjectCounts {
    pub connections: usize,
    pub groups: usize,
    pub users: usize,
    pub user_groups: usize,
    pub sessions: usize,
}

/// Whole-database snapshot: connections and groups sorted by numeric id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuacSnapshot {
    pub connections: Vec<ConnectionView>,
    pub groups: Vec<GroupView>,
}

fn attr_map(value: serde_json::Map<String, Value>) -> BTreeMap<String, Option<String>> {
    value
        .into_iter()
        .map(|(k, v)| (k, v.as_str().map(str::to_string)))
        .collect()
}

fn connection_view(c: &model::Connection) -> ConnectionView {
    let Value::Object(mut json) = model::connection_json(c) else {
        unreachable!("connections render as objects")
    };
    let attributes = match json.remove("attributes") {
        Some(Value::Object(m)) => attr_map(m),
        _ => BTreeMap::new(),
    };
    ConnectionView {
        identifier: c.id.to_string(),
        name: c.name.clone(),
        parent: parent_json(c.parent),
        protocol: c.protocol.clone(),
        parameters: c.parameters.clone(),
        attributes,
    }
}

fn group_view(g: &model::Group) -> GroupView {
    let attributes = match model::group_json(g).get("attributes") {
        Some(Value::Object(m)) => attr_map(m.clone()),
        _ => BTreeMap::new(),
    };
    GroupView {
        identifier: g.id.to_string(),
        name: g.name.clone(),
        parent: parent_json(g.parent),
        group_type: g.group_type,
        attributes,
    }
}

/// The emulated Guacamole web application.
pub struct GuacamoleServer {
    clock: Clock,
    admin: (String, String),
    inner: Mutex<Inner>,
}

impl fmt::Debug for GuacamoleServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.lock();
        f.debug_struct("GuacamoleServer")
            .field("version", &g.config.version)
            .field("base_path", &g.config.base_path)
            .field("connections", &g.store.connections.len())
            .finish_non_exhaustive()
    }
}

struct GuacHandler(Arc<GuacamoleServer>);

impl Handler for GuacHandler {
    fn handle(&self, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>> {
        Box::pin(async move { self.0.respond(&req) })
    }
}

impl GuacamoleServer {
    /// Build from a seed. Panics on an invalid seed (see [`Self::try_new`]).
    pub fn new(seed: GuacamoleSeed, clock: Clock) -> Arc<Self> {
        Self::try_new(seed, clock).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_new(seed: GuacamoleSeed, clock: Clock) -> Result<Arc<Self>, SeedError> {
        let base = seed.base_path.trim_end_matches('/').to_string();
        if !base.starts_with('/') || !base.ends_with("/api") {
            return Err(SeedError(format!(
                "base_path {:?} must start with '/' and end in /api",
                seed.base_path
            )));
        }
        if seed.data_source.is_empty() {
            return Err(SeedError("data_source must not be empty".into()));
        }
        let store = Store::from_seed(&seed).map_err(SeedError)?;
        let admin = seed
            .users
            .iter()
            .find(|u| u.admin)
            .or(seed.users.first())
            .map(|u| (u.username.clone(), u.password.clone()))
            .unwrap_or_else(|| ("guacadmin".into(), "guacadmin".into()));
        Ok(Arc::new(GuacamoleServer {
            clock,
            admin,
            inner: Mutex::new(Inner {
                config: Config {
                    version: seed.version,
                    base_path: base,
                    data_source: seed.data_source.clone(),
                    session_timeout: Duration::from_secs(seed.session_timeout_minutes * 60),
                    max_request_bytes: seed.max_request_bytes,
                    login_ban: seed.login_ban.clone(),
                },
                store,
                sessions: Sessions::default(),
                bans: Bans::default(),
            }),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The request handler for the lab's HTTPS server.
    pub fn handler(self: &Arc<Self>) -> Arc<dyn Handler> {
        Arc::new(GuacHandler(Arc::clone(self)))
    }

    /// Answer one request synchronously (what the handler does; also handy
    /// for tests without sockets). Sets `Response::route`.
    pub fn respond(&self, req: &Request) -> Response {
        let now = self.clock.elapsed();
        let mut inner = self.lock();
        let version = inner.config.version;
        let (route, result) = routes::dispatch(&mut inner, now, req);
        let mut response = result.unwrap_or_else(|fail| fail.into_response(version));
        response.route = Some(route);
        response
    }

    /// e.g. `/guacamole/api`.
    pub fn base_path(&self) -> String {
        self.lock().config.base_path.clone()
    }

    /// The seeded administrator (first `admin: true` user; default
    /// `guacadmin`/`guacadmin`).
    pub fn admin_credentials(&self) -> (String, String) {
        self.admin.clone()
    }

    pub fn data_source(&self) -> String {
        self.lock().config.data_source.clone()
    }

    pub fn version(&self) -> GuacVersion {
        self.lock().config.version
    }

    /// Switch the emulated release at run time (as after an upgrade).
    pub fn set_version(&self, version: GuacVersion) {
        self.lock().config.version = version;
    }

    pub fn set_session_timeout_minutes(&self, minutes: u64) {
        self.lock().config.session_timeout = Duration::from_secs(minutes * 60);
    }

    // ---- reading state -------------------------------------------------

    /// Every connection and group, sorted by id.
    pub fn snapshot(&self) -> GuacSnapshot {
        let g = self.lock();
        GuacSnapshot {
            connections: g.store.connections.values().map(connection_view).collect(),
            groups: g.store.groups.values().map(group_view).collect(),
        }
    }

    pub fn connections(&self) -> Vec<ConnectionView> {
        self.lock()
            .store
            .connections
            .values()
            .map(connection_view)
            .collect()
    }

    pub fn connection(&self, id: &str) -> Option<ConnectionView> {
        let g = self.lock();
        numeric_id(id)
            .and_then(|n| g.store.connections.get(&n))
            .map(connection_view)
    }

    /// First connection with this name (any parent).
    pub fn find_connection(&self, name: &str) -> Option<ConnectionView> {
        let g = self.lock();
        g.store
            .connections
            .values()
            .find(|c| c.name == name)
            .map(connection_view)
    }

    /// Stored parameters of a connection (`None` if it does not exist).
    pub fn parameters(&self, id: &str) -> Option<BTreeMap<String, String>> {
        self.connection(id).map(|c| c.parameters)
    }

    pub fn groups(&self) -> Vec<GroupView> {
        self.lock().store.groups.values().map(group_view).collect()
    }

    pub fn group(&self, id: &str) -> Option<GroupView> {
        let g = self.lock();
        numeric_id(id)
            .and_then(|n| g.store.groups.get(&n))
            .map(group_view)
    }

    pub fn find_group(&self, name: &str) -> Option<GroupView> {
        let g = self.lock();
        g.store
            .groups
            .values()
            .find(|x| x.name == name)
            .map(group_view)
    }

    /// The full tree from ROOT as an administrator sees it (`/tree` JSON).
    pub fn tree(&self) -> Value {
        let g = self.lock();
        let mut actor = g.store.actor("");
        actor.admin = true;
        g.store
            .tree_json(&actor, None, &groups::PermissionFilter::default())
    }

    /// A user's direct permission set as `/users/{u}/permissions` renders it.
    pub fn permissions(&self, username: &str) -> Option<Value> {
        let g = self.lock();
        g.store.users.get(username).map(|u| u.permissions.to_json())
    }

    /// Direct + inherited permissions (`/effectivePermissions`).
    pub fn effective_permissions(&self, username: &str) -> Value {
        self.lock().store.effective_permissions(username).to_json()
    }

    pub fn user_group_permissions(&self, group: &str) -> Option<Value> {
        let g = self.lock();
        g.store
            .user_groups
            .get(group)
            .map(|x| x.permissions.to_json())
    }

    pub fn usernames(&self) -> Vec<String> {
        self.lock().store.users.keys().cloned().collect()
    }

    pub fn counts(&self) -> ObjectCounts {
        let mut g = self.lock();
        let (now, timeout) = (self.clock.elapsed(), g.config.session_timeout);
        g.sessions.sweep(now, timeout);
        ObjectCounts {
            connections: g.store.connections.len(),
            groups: g.store.groups.len(),
            users: g.store.users.len(),
            user_groups: g.store.user_groups.len(),
            sessions: g.sessions.len(),
        }
    }

    // ---- hand edits (as an operator in the web UI) ---------------------

    /// Create a connection outside the API (no creator grants). Returns its id.
    pub fn add_connection(&self, seed: ConnectionSeed) -> Result<String, SeedError> {
        let mut g = self.lock();
        let parent = match seed.parent.as_deref() {
            None | Some("ROOT") => None,
            Some(p) => Some(
                numeric_id(p)
                    .filter(|n| g.store.groups.contains_key(n))
                    .or_else(|| g.store.groups.values().find(|x| x.name == p).map(|x| x.id))
                    .ok_or_else(|| SeedError(format!("unknown parent group {p:?}")))?,
            ),
        };
        if g.store.connection_name_taken(parent, &seed.name, None) {
            return Err(SeedError(format!(
                "connection {:?} already exists",
                seed.name
            )));
        }
        let id = seed.identifier.unwrap_or(g.store.next_connection_id);
        if g.store.connections.contains_key(&id) {
            return Err(SeedError(format!("connection id {id} is taken")));
        }
        let raw = seed
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        let attributes = attributes::ConnectionAttributes::default()
            .replaced(&raw)
            .map_err(|_| SeedError("invalid attributes".into()))?;
        g.store.connections.insert(
            id,
            model::Connection {
                id,
                name: seed.name,
                parent,
                protocol: seed.protocol,
                parameters: seed
                    .parameters
                    .into_iter()
                    .filter(|(_, v)| !v.is_empty())
                    .collect(),
                attributes,
                extra_attributes: BTreeMap::new(),
                last_active: seed.last_active_ms,
            },
        );
        g.store.next_connection_id = g.store.next_connection_id.max(id + 1);
        Ok(id.to_string())
    }

    /// Create a connection group outside the API. Returns its id.
    pub fn add_group(&self, seed: ConnectionGroupSeed) -> Result<String, SeedError> {
        let mut g = self.lock();
        let parent = match seed.parent.as_deref() {
            None | Some("ROOT") => None,
            Some(p) => Some(
                numeric_id(p)
                    .filter(|n| g.store.groups.contains_key(n))
                    .or_else(|| g.store.groups.values().find(|x| x.name == p).map(|x| x.id))
                    .ok_or_else(|| SeedError(format!("unknown parent group {p:?}")))?,
            ),
        };
        if g.store.group_name_taken(parent, &seed.name, None) {
            return Err(SeedError(format!("group {:?} already exists", seed.name)));
        }
        let id = seed.identifier.unwrap_or(g.store.next_group_id);
        if g.store.groups.contains_key(&id) {
            return Err(SeedError(format!("group id {id} is taken")));
        }
        let raw = seed
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        g.store.groups.insert(
            id,
            model::Group {
                id,
                name: seed.name,
                parent,
                group_type: seed.group_type,
                attributes: attributes::GroupAttributes::default().replaced(&raw),
                extra_attributes: BTreeMap::new(),
            },
        );
        g.store.next_group_id = g.store.next_group_id.max(id + 1);
        Ok(id.to_string())
    }

    fn edit_connection(&self, id: &str, edit: impl FnOnce(&mut model::Connection)) -> bool {
        let mut g = self.lock();
        match numeric_id(id).and_then(|n| g.store.connections.get_mut(&n)) {
            Some(c) => {
                edit(c);
                true
            }
            None => false,
        }
    }

    /// Rename a connection (no uniqueness check: the UI would refuse a
    /// clash, tests may want one). Returns false if it does not exist.
    pub fn rename_connection(&self, id: &str, name: &str) -> bool {
        self.edit_connection(id, |c| c.name = name.to_string())
    }

    /// Set (`Some`) or remove (`None` or empty) one parameter.
    pub fn set_parameter(&self, id: &str, name: &str, value: Option<&str>) -> bool {
        self.edit_connection(id, |c| match value.filter(|v| !v.is_empty()) {
            Some(v) => {
                c.parameters.insert(name.to_string(), v.to_string());
            }
            None => {
                c.parameters.remove(name);
            }
        })
    }

    /// Set connection attributes as the UI's form would (a full replace of
    /// the attribute set, with the read-back rules of spec §9.1).
    pub fn set_attributes(&self, id: &str, attributes: &[(&str, &str)]) -> bool {
        let map: attributes::RawAttributes = attributes
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect();
        self.edit_connection(id, |c| {
            if let Ok(replaced) = c.attributes.replaced(&map) {
                c.attributes = replaced;
            }
        })
    }

    pub fn set_protocol(&self, id: &str, protocol: &str) -> bool {
        self.edit_connection(id, |c| c.protocol = protocol.to_string())
    }

    /// Move a connection to `parent` (`"ROOT"` or an existing group id).
    pub fn move_connection(&self, id: &str, parent: &str) -> bool {
        let target = match parent {
            "ROOT" => None,
            p => match numeric_id(p).filter(|n| self.lock().store.groups.contains_key(n)) {
                Some(n) => Some(n),
                None => return false,
            },
        };
        self.edit_connection(id, |c| c.parent = target)
    }

    /// Delete a connection (and the grants on it).
    pub fn delete_connection(&self, id: &str) -> bool {
        let mut g = self.lock();
        numeric_id(id).is_some_and(|n| g.store.remove_connection(n))
    }

    pub fn rename_group(&self, id: &str, name: &str) -> bool {
        let mut g = self.lock();
        match numeric_id(id).and_then(|n| g.store.groups.get_mut(&n)) {
            Some(x) => {
                x.name = name.to_string();
                true
            }
            None => false,
        }
    }

    /// Move a group (refuses cycles and unknown parents).
    pub fn move_group(&self, id: &str, parent: &str) -> bool {
        let mut g = self.lock();
        let Some(n) = numeric_id(id).filter(|n| g.store.groups.contains_key(n)) else {
            return false;
        };
        let target = match parent {
            "ROOT" => None,
            p => match numeric_id(p).filter(|x| g.store.groups.contains_key(x)) {
                Some(x) => Some(x),
                None => return false,
            },
        };
        let mut cursor = target;
        while let Some(c) = cursor {
            if c == n {
                return false;
            }
            cursor = g.store.groups.get(&c).and_then(|x| x.parent);
        }
        g.store.groups.get_mut(&n).expect("checked").parent = target;
        true
    }

    /// Delete a group with everything below it; returns objects removed.
    pub fn delete_group(&self, id: &str) -> usize {
        let mut g = self.lock();
        numeric_id(id).map_or(0, |n| g.store.remove_group_recursive(n))
    }

    /// Add a user (as an administrator would). Fails if it exists.
    pub fn add_user(&self, seed: UserSeed) -> Result<(), SeedError> {
        let mut g = self.lock();
        if g.store.users.contains_key(&seed.username) {
            return Err(SeedError(format!("user {:?} exists", seed.username)));
        }
        let one = GuacamoleSeed {
            users: vec![seed],
            ..GuacamoleSeed::default()
        };
        let built = Store::from_seed(&one).map_err(SeedError)?;
        g.store.users.extend(built.users);
        Ok(())
    }

    pub fn set_password(&self, username: &str, password: &str) -> bool {
        let mut g = self.lock();
        match g.store.users.get_mut(username) {
            Some(u) => {
                u.password = password.to_string();
                true
            }
            None => false,
        }
    }

    pub fn set_user_disabled(&self, username: &str, disabled: bool) -> bool {
        let mut g = self.lock();
        match g.store.users.get_mut(username) {
            Some(u) => {
                u.disabled = disabled;
                true
            }
            None => false,
        }
    }

    /// Grant a user an object permission on a connection.
    pub fn grant_connection(&self, username: &str, id: &str, perm: ObjectPermission) -> bool {
        let mut g = self.lock();
        match g.store.users.get_mut(username) {
            Some(u) => {
                u.permissions.grant(ObjectKind::Connection, id, perm);
                true
            }
            None => false,
        }
    }

    /// Grant a user an object permission on a connection group.
    pub fn grant_group(&self, username: &str, id: &str, perm: ObjectPermission) -> bool {
        let mut g = self.lock();
        match g.store.users.get_mut(username) {
            Some(u) => {
                u.permissions.grant(ObjectKind::ConnectionGroup, id, perm);
                true
            }
            None => false,
        }
    }

    /// Grant or revoke a system permission of a user.
    pub fn set_system_permission(
        &self,
        username: &str,
        perm: SystemPermission,
        held: bool,
    ) -> bool {
        let mut g = self.lock();
        match g.store.users.get_mut(username) {
            Some(u) => {
                if held {
                    u.permissions.system.insert(perm);
                } else {
                    u.permissions.system.remove(&perm);
                }
                true
            }
            None => false,
        }
    }

    // ---- sessions ------------------------------------------------------

    /// End one session as if it had expired. Returns whether it existed.
    pub fn expire_token(&self, token: &str) -> bool {
        self.lock().sessions.remove(token)
    }

    /// End every session (as a server restart does). Returns how many.
    pub fn expire_all_tokens(&self) -> usize {
        self.lock().sessions.clear()
    }

    /// End every session of one user. Returns how many.
    pub fn revoke_user_sessions(&self, username: &str) -> usize {
        self.lock().sessions.remove_user(username)
    }

    /// Live sessions (after the expiry sweep up to now).
    pub fn session_count(&self) -> usize {
        self.counts().sessions
    }

    /// Live sessions of one user.
    pub fn sessions_of(&self, username: &str) -> usize {
        let mut g = self.lock();
        let (now, timeout) = (self.clock.elapsed(), g.config.session_timeout);
        g.sessions.sweep(now, timeout);
        g.sessions.count_for(username)
    }

    /// Whether a token names a live session (does not refresh it).
    pub fn token_is_live(&self, token: &str) -> bool {
        let mut g = self.lock();
        let (now, timeout) = (self.clock.elapsed(), g.config.session_timeout);
        g.sessions.sweep(now, timeout);
        g.sessions.get(token).is_some()
    }

    /// Pretend a session was last used `idle_for` ago (virtual time).
    pub fn make_idle(&self, token: &str, idle_for: Duration) -> bool {
        let now = self.clock.elapsed();
        self.lock()
            .sessions
            .set_last_active(token, now.saturating_sub(idle_for))
    }
}
