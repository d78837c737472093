//! What the emulated Guacamole server starts with: version, base path, data
//! source, users, user groups, connection groups and connections. Loadable from
//! YAML/JSON (serde, unknown keys rejected) and buildable from Rust tests.
//!
//! A complete YAML example (every key optional; these are the defaults
//! except where noted):
//!
//! ```yaml
//! version: "1.6"              # 1.4 | 1.5 | 1.6
//! base_path: /guacamole/api   # or /api
//! data_source: postgresql     # postgresql-shared is added automatically
//! session_timeout_minutes: 60 # api-session-timeout
//! max_request_bytes: 2097152  # api-max-request-size (413 above)
//! login_ban: { max_attempts: 5, duration_secs: 300 }   # default: absent (1.6 only)
//! users:                      # default: guacadmin/guacadmin, admin
//!   - { username: guacadmin, password: guacadmin, admin: true }
//!   - username: sync
//!     password: secret
//!     system_permissions: [CREATE_CONNECTION, CREATE_CONNECTION_GROUP]
//!     connection_group_permissions: { "1": [READ, UPDATE] }
//!     connection_permissions: { "2": [READ] }
//!     attributes: { guac-full-name: Sync daemon }
//!     disabled: false
//!     last_active_ms: 1717171717000     # lastActive; omitted when absent
//! user_groups:
//!   - identifier: ops
//!     member_users: [sync]
//!     member_user_groups: []
//!     connection_permissions: { "2": [READ] }
//! connection_groups:          # parents first; ids assigned in order if absent
//!   - { identifier: 1, name: Proxmox, type: ORGANIZATIONAL }
//!   - { name: Pool, parent: Proxmox, type: BALANCING, attributes: { enable-session-affinity: "true" } }
//! connections:                # parent: group id or name; absent = ROOT
//!   - identifier: 2
//!     name: legacy-ssh
//!     protocol: ssh
//!     parent: "1"
//!     parameters: { hostname: 192.0.2.11, port: "22" }
//!     attributes: { max-connections: "2" }
//!     last_active_ms: 1717171717000
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The emulated Guacamole release line. Switches everything listed in the
/// spec's version table (§11): directory PATCH mode, the `patches` error
/// member, `HEAD /session`, the parameter-length error, `AUDIT`, how
/// `disabled` is represented, protocol forms, the null-attribute echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum GuacVersion {
    V1_4,
    /// The latest 1.5.x (≥ 1.5.2: explicit-null attributes are echoed).
    V1_5,
    #[default]
    V1_6,
}

impl GuacVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            GuacVersion::V1_4 => "1.4",
            GuacVersion::V1_5 => "1.5",
            GuacVersion::V1_6 => "1.6",
        }
    }

    /// Parse `1.4`, `1.5`, `1.6` (a patch suffix such as `1.5.5` is accepted).
    pub fn parse(text: &str) -> Option<GuacVersion> {
        let mut parts = text.trim().split('.');
        let (major, minor) = (parts.next()?, parts.next()?);
        match (major, minor) {
            ("1", "4") => Some(GuacVersion::V1_4),
            ("1", "5") => Some(GuacVersion::V1_5),
            ("1", "6") => Some(GuacVersion::V1_6),
            _ => None,
        }
    }

    pub(crate) fn is_1_6(self) -> bool {
        self >= GuacVersion::V1_6
    }
}

impl fmt::Display for GuacVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for GuacVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for GuacVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // YAML writes `1.5` as a float; accept it as well as the string form.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(f64),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Text(t) => t,
            Raw::Number(n) => format!("{n:.1}"),
        };
        GuacVersion::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unsupported Guacamole version {text:?} (expected 1.4, 1.5 or 1.6)"
            ))
        })
    }
}

/// The optional login-ban extension (1.6+): after `max_attempts` failed
/// logins from one address, that address gets 429 for `duration_secs`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LoginBanSeed {
    pub max_attempts: u32,
    pub duration_secs: u64,
}

impl Default for LoginBanSeed {
    fn default() -> Self {
        LoginBanSeed {
            max_attempts: 5,
            duration_secs: 300,
        }
    }
}

/// Whole-server seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuacamoleSeed {
    pub version: GuacVersion,
    /// Everything is served below this path; must end in `/api`.
    pub base_path: String,
    /// The database data source (`postgresql`); `<ds>-shared` is added to
    /// `availableDataSources` automatically.
    pub data_source: String,
    /// `api-session-timeout` in minutes of inactivity.
    pub session_timeout_minutes: u64,
    /// `api-max-request-size`: larger bodies get 413.
    pub max_request_bytes: usize,
    /// Install the login-ban extension (only honoured for 1.6).
    pub login_ban: Option<LoginBanSeed>,
    /// Users; empty means the default `guacadmin`/`guacadmin` administrator.
    pub users: Vec<UserSeed>,
    pub user_groups: Vec<UserGroupSeed>,
    /// Connection groups, parents before children.
    pub connection_groups: Vec<ConnectionGroupSeed>,
    pub connections: Vec<ConnectionSeed>,
}

impl Default for GuacamoleSeed {
    fn default() -> Self {
        GuacamoleSeed {
            version: GuacVersion::default(),
            base_path: "/guacamole/api".into(),
            data_source: "postgresql".into(),
            session_timeout_minutes: 60,
            max_request_bytes: 2_097_152,
            login_ban: None,
            users: Vec::new(),
            user_groups: Vec::new(),
            connection_groups: Vec::new(),
            connections: Vec::new(),
        }
    }
}

impl GuacamoleSeed {
    /// A small realistic installation: the default admin, an operator with
    /// `CREATE_CONNECTION` only, an `ops` user group, and a few hand-made
    /// connections and groups that a sync tool must leave alone.
    pub fn example() -> Self {
        GuacamoleSeed::default()
            .user(UserSeed::admin("guacadmin", "guacadmin"))
            .user(
                UserSeed::new("operator", "operator")
                    .system_permission("CREATE_CONNECTION")
                    .connection_permission("1", "READ"),
            )
            .user_group(UserGroupSeed::new("ops").member_user("operator"))
            .connection_group(ConnectionGroupSeed::new("Office").identifier(1))
            .connection(
                ConnectionSeed::new("printer-admin", "vnc")
                    .identifier(1)
                    .parent("1")
                    .parameter("hostname", "192.0.2.10")
                    .parameter("port", "5900"),
            )
            .connection(
                ConnectionSeed::new("legacy-ssh", "ssh")
                    .identifier(2)
                    .parameter("hostname", "192.0.2.11")
                    .parameter("port", "22"),
            )
    }

    pub fn version(mut self, version: GuacVersion) -> Self {
        self.version = version;
        self
    }

    pub fn base_path(mut self, base: impl Into<String>) -> Self {
        self.base_path = base.into();
        self
    }

    pub fn data_source(mut self, ds: impl Into<String>) -> Self {
        self.data_source = ds.into();
        self
    }

    pub fn session_timeout_minutes(mut self, minutes: u64) -> Self {
        self.session_timeout_minutes = minutes;
        self
    }

    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes;
        self
    }

    pub fn login_ban(mut self, ban: LoginBanSeed) -> Self {
        self.login_ban = Some(ban);
        self
    }

    pub fn user(mut self, user: UserSeed) -> Self {
        self.users.push(user);
        self
    }

    pub fn user_group(mut self, group: UserGroupSeed) -> Self {
        self.user_groups.push(group);
        self
    }

    pub fn connection_group(mut self, group: ConnectionGroupSeed) -> Self {
        self.connection_groups.push(group);
        self
    }

    pub fn connection(mut self, connection: ConnectionSeed) -> Self {
        self.connections.push(connection);
        self
    }
}

/// One user. `admin: true` grants `ADMINISTER` plus the five `CREATE_*`
/// system permissions, like the default `guacadmin`.
#[derive(Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct UserSeed {
    pub username: String,
    pub password: String,
    pub admin: bool,
    pub disabled: bool,
    /// Extra system permissions (`CREATE_CONNECTION`, …).
    pub system_permissions: Vec<String>,
    /// Connection id → permissions (`READ`, `UPDATE`, `DELETE`, `ADMINISTER`).
    pub connection_permissions: BTreeMap<String, Vec<String>>,
    /// Connection-group id → permissions.
    pub connection_group_permissions: BTreeMap<String, Vec<String>>,
    /// Schema attributes (`guac-full-name`, …).
    pub attributes: BTreeMap<String, String>,
    /// Epoch milliseconds reported as `lastActive` (omitted when unset).
    pub last_active_ms: Option<u64>,
}

impl fmt::Debug for UserSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserSeed")
            .field("username", &self.username)
            .field("password", &"***")
            .field("admin", &self.admin)
            .field("system_permissions", &self.system_permissions)
            .finish_non_exhaustive()
    }
}

impl UserSeed {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        UserSeed {
            username: username.into(),
            password: password.into(),
            ..UserSeed::default()
        }
    }

    pub fn admin(username: impl Into<String>, password: impl Into<String>) -> Self {
        UserSeed {
            admin: true,
            ..UserSeed::new(username, password)
        }
    }

    pub fn disabled(mut self) -> Self {
        self.disabled = true;
        self
    }

    pub fn system_permission(mut self, perm: &str) -> Self {
        self.system_permissions.push(perm.into());
        self
    }

    pub fn connection_permission(mut self, id: &str, perm: &str) -> Self {
        self.connection_permissions
            .entry(id.into())
            .or_default()
            .push(perm.into());
        self
    }

    pub fn connection_group_permission(mut self, id: &str, perm: &str) -> Self {
        self.connection_group_permissions
            .entry(id.into())
            .or_default()
            .push(perm.into());
        self
    }

    pub fn attribute(mut self, key: &str, value: &str) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    pub fn last_active_ms(mut self, ms: u64) -> Self {
        self.last_active_ms = Some(ms);
        self
    }
}

/// One user group with its members and permissions.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct UserGroupSeed {
    pub identifier: String,
    pub disabled: bool,
    pub member_users: Vec<String>,
    pub member_user_groups: Vec<String>,
    pub system_permissions: Vec<String>,
    pub connection_permissions: BTreeMap<String, Vec<String>>,
    pub connection_group_permissions: BTreeMap<String, Vec<String>>,
}

impl UserGroupSeed {
    pub fn new(identifier: impl Into<String>) -> Self {
        UserGroupSeed {
            identifier: identifier.into(),
            ..UserGroupSeed::default()
        }
    }

    pub fn disabled(mut self) -> Self {
        self.disabled = true;
        self
    }

    pub fn member_user(mut self, username: &str) -> Self {
        self.member_users.push(username.into());
        self
    }

    pub fn member_user_group(mut self, group: &str) -> Self {
        self.member_user_groups.push(group.into());
        self
    }

    pub fn system_permission(mut self, perm: &str) -> Self {
        self.system_permissions.push(perm.into());
        self
    }

    pub fn connection_permission(mut self, id: &str, perm: &str) -> Self {
        self.connection_permissions
            .entry(id.into())
            .or_default()
            .push(perm.into());
        self
    }

    pub fn connection_group_permission(mut self, id: &str, perm: &str) -> Self {
        self.connection_group_permissions
            .entry(id.into())
            .or_default()
            .push(perm.into());
        self
    }
}

/// `ORGANIZATIONAL` or `BALANCING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum GroupType {
    #[default]
    #[serde(rename = "ORGANIZATIONAL")]
    Organizational,
    #[serde(rename = "BALANCING")]
    Balancing,
}

impl GroupType {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupType::Organizational => "ORGANIZATIONAL",
            GroupType::Balancing => "BALANCING",
        }
    }
}

/// A pre-existing connection group. `identifier` is assigned in order when
/// absent; `parent` names the parent group by identifier (or, failing that,
/// by name); absent means ROOT.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionGroupSeed {
    pub identifier: Option<u64>,
    pub name: String,
    pub parent: Option<String>,
    #[serde(rename = "type")]
    pub group_type: GroupType,
    pub attributes: BTreeMap<String, String>,
}

impl ConnectionGroupSeed {
    pub fn new(name: impl Into<String>) -> Self {
        ConnectionGroupSeed {
            name: name.into(),
            ..ConnectionGroupSeed::default()
        }
    }

    pub fn identifier(mut self, id: u64) -> Self {
        self.identifier = Some(id);
        self
    }

    pub fn parent(mut self, parent: impl Into<String>) -> Self {
        self.parent = Some(parent.into());
        self
    }

    pub fn balancing(mut self) -> Self {
        self.group_type = GroupType::Balancing;
        self
    }

    pub fn attribute(mut self, key: &str, value: &str) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }
}

/// A pre-existing connection (e.g. made by hand in the UI).
#[derive(Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionSeed {
    pub identifier: Option<u64>,
    pub name: String,
    pub protocol: String,
    pub parent: Option<String>,
    pub parameters: BTreeMap<String, String>,
    pub attributes: BTreeMap<String, String>,
    /// Epoch milliseconds reported as `lastActive` (omitted when unset).
    pub last_active_ms: Option<u64>,
}

impl fmt::Debug for ConnectionSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Parameters may hold passwords: print only their names.
        f.debug_struct("ConnectionSeed")
            .field("identifier", &self.identifier)
            .field("name", &self.name)
            .field("protocol", &self.protocol)
            .field("parent", &self.parent)
            .field("parameters", &self.parameters.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ConnectionSeed {
    pub fn new(name: impl Into<String>, protocol: impl Into<String>) -> Self {
        ConnectionSeed {
            name: name.into(),
            protocol: protocol.into(),
            ..ConnectionSeed::default()
        }
    }

    pub fn identifier(mut self, id: u64) -> Self {
        self.identifier = Some(id);
        self
    }

    pub fn parent(mut self, parent: impl Into<String>) -> Self {
        self.parent = Some(parent.into());
        self
    }

    pub fn parameter(mut self, name: &str, value: &str) -> Self {
        self.parameters.insert(name.into(), value.into());
        self
    }

    pub fn attribute(mut self, key: &str, value: &str) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    pub fn last_active_ms(mut self, ms: u64) -> Self {
        self.last_active_ms = Some(ms);
        self
    }
}
