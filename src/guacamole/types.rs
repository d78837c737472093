//! The Guacamole objects the daemon reads and writes (spec §4, §5, §7).
//!
//! Read types (`Connection`, `ConnectionGroup`, `TreeGroup`) tolerate unknown
//! members and omitted optional ones; write types (`ConnectionSpec`,
//! `GroupSpec`) always serialise every member a full-replace `PUT` needs,
//! because an absent `parentIdentifier` moves the object to ROOT and an absent
//! `attributes`/`parameters` map makes the server fail with 500.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::secret::Secret;

/// Identifier of the root connection group.
pub const ROOT_GROUP: &str = "ROOT";

/// Attribute map of a connection or group. Values may be JSON `null`.
pub type Attributes = BTreeMap<String, Option<String>>;

/// Which directory an object lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    Connection,
    ConnectionGroup,
}

impl ObjectKind {
    /// Path segment of the directory under `/session/data/{ds}`.
    pub fn directory(self) -> &'static str {
        match self {
            ObjectKind::Connection => "connections",
            ObjectKind::ConnectionGroup => "connectionGroups",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Connection => "connection",
            ObjectKind::ConnectionGroup => "connection group",
        })
    }
}

/// A connection as returned by `GET /connections`, `/connections/{id}` and the
/// tree (never with parameters).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub identifier: String,
    pub name: String,
    /// Always present for connections; `ROOT` at the root.
    #[serde(default = "root_group")]
    pub parent_identifier: String,
    pub protocol: String,
    #[serde(default)]
    pub attributes: Attributes,
    #[serde(default)]
    pub active_connections: u64,
    /// Milliseconds since the epoch of the last use; absent if never used.
    #[serde(default)]
    pub last_active: Option<i64>,
}

fn root_group() -> String {
    ROOT_GROUP.to_owned()
}

/// `ORGANIZATIONAL` (a folder) or `BALANCING` (a load-balancing pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GroupType {
    Organizational,
    Balancing,
}

/// A connection group as returned by the list and single-object GETs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionGroup {
    pub identifier: String,
    pub name: String,
    /// Absent only for ROOT.
    #[serde(default)]
    pub parent_identifier: Option<String>,
    #[serde(rename = "type")]
    pub group_type: GroupType,
    #[serde(default)]
    pub attributes: Attributes,
    #[serde(default)]
    pub active_connections: u64,
}

/// A group with its readable descendants, from `GET /connectionGroups/{id}/tree`.
/// Empty child lists are omitted by the server; they deserialise as empty.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeGroup {
    #[serde(flatten)]
    pub group: ConnectionGroup,
    #[serde(default)]
    pub child_connections: Vec<Connection>,
    #[serde(default)]
    pub child_connection_groups: Vec<TreeGroup>,
}

impl TreeGroup {
    pub fn identifier(&self) -> &str {
        &self.group.identifier
    }

    /// Every connection in this group and its descendants, depth first.
    pub fn all_connections(&self) -> Vec<&Connection> {
        let mut out = Vec::new();
        self.walk(&mut |g| out.extend(g.child_connections.iter()));
        out
    }

    /// This group and every descendant group, depth first (self first).
    pub fn all_groups(&self) -> Vec<&TreeGroup> {
        let mut out = Vec::new();
        self.walk(&mut |g| out.push(g));
        out
    }

    /// The direct child group called `name`, if any.
    pub fn child_group(&self, name: &str) -> Option<&TreeGroup> {
        self.child_connection_groups
            .iter()
            .find(|g| g.group.name == name)
    }

    /// The group with this identifier anywhere in the tree.
    pub fn find_group(&self, identifier: &str) -> Option<&TreeGroup> {
        self.all_groups()
            .into_iter()
            .find(|g| g.group.identifier == identifier)
    }

    fn walk<'a>(&'a self, visit: &mut dyn FnMut(&'a TreeGroup)) {
        visit(self);
        for child in &self.child_connection_groups {
            child.walk(visit);
        }
    }
}

/// Connection parameters: a flat name → value map. Every value is held as a
/// [`Secret`] because the map mixes host names with passwords and private
/// keys; `Debug` therefore shows only the names.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Parameters(BTreeMap<String, Secret>);

impl Parameters {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Secret>) {
        self.0.insert(name.into(), value.into());
    }

    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.0.get(name)
    }

    pub fn remove(&mut self, name: &str) -> Option<Secret> {
        self.0.remove(name)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Secret)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The map as the server stores it: empty values are never stored (§4.8),
    /// so compare desired parameters with this form of them.
    pub fn without_empty(&self) -> Parameters {
        Parameters(
            self.0
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    /// Names of the parameters whose values differ between the two maps
    /// (present in one only, or different): safe to log.
    pub fn changed_names(&self, other: &Parameters) -> Vec<String> {
        let mut names: Vec<String> = self
            .0
            .iter()
            .filter(|(k, v)| other.0.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .collect();
        names.extend(other.0.keys().filter(|k| !self.0.contains_key(*k)).cloned());
        names.sort();
        names
    }
}

impl fmt::Debug for Parameters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

impl<K: Into<String>, V: Into<Secret>> FromIterator<(K, V)> for Parameters {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Parameters(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl Serialize for Parameters {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v.expose())))
    }
}

impl<'de> Deserialize<'de> for Parameters {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Tolerate JSON null values (treated as "not stored").
        let raw = BTreeMap::<String, Option<String>>::deserialize(deserializer)?;
        Ok(Parameters(
            raw.into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, Secret::new(v))))
                .collect(),
        ))
    }
}

/// Everything a connection create or full-replace update sends. All members
/// are always serialised (see the module comment). An update replaces the
/// whole object: attributes left out are cleared, parameters left out are
/// deleted. Use only schema attribute keys (§9.1): a 1.6 PATCH `replace`
/// stores any key it is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSpec {
    pub name: String,
    pub parent_identifier: String,
    pub protocol: String,
    pub parameters: Parameters,
    pub attributes: Attributes,
}

impl ConnectionSpec {
    /// A spec with no attributes set (`attributes: {}` is still sent).
    pub fn new(
        name: impl Into<String>,
        parent_identifier: impl Into<String>,
        protocol: impl Into<String>,
        parameters: Parameters,
    ) -> Self {
        ConnectionSpec {
            name: name.into(),
            parent_identifier: parent_identifier.into(),
            protocol: protocol.into(),
            parameters,
            attributes: Attributes::new(),
        }
    }
}

/// Everything a group create or full-replace update sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSpec {
    pub name: String,
    pub parent_identifier: String,
    #[serde(rename = "type")]
    pub group_type: GroupType,
    pub attributes: Attributes,
}

impl GroupSpec {
    /// An organizational group with no attributes set.
    pub fn organizational(name: impl Into<String>, parent_identifier: impl Into<String>) -> Self {
        GroupSpec {
            name: name.into(),
            parent_identifier: parent_identifier.into(),
            group_type: GroupType::Organizational,
            attributes: Attributes::new(),
        }
    }
}

/// The successful `POST /tokens` answer. The token itself is a [`Secret`].
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthResult {
    #[serde(deserialize_with = "secret_string")]
    pub auth_token: Secret,
    pub username: String,
    pub data_source: String,
    #[serde(default)]
    pub available_data_sources: Vec<String>,
}

fn secret_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
    String::deserialize(deserializer).map(Secret::new)
}

/// Directory-PATCH capability of the server, detected with the `[]` probe (§6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerVersion {
    /// 1.4.x / 1.5.x: directory PATCH is remove-only and not atomic.
    UpTo1_5,
    /// 1.6+: atomic add/replace/remove batches.
    From1_6,
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerVersion::UpTo1_5 => "<=1.5",
            ServerVersion::From1_6 => ">=1.6",
        })
    }
}

/// Object permission types (§7.2), canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ObjectPermission {
    Read,
    Update,
    Delete,
    Administer,
}

impl ObjectPermission {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectPermission::Read => "READ",
            ObjectPermission::Update => "UPDATE",
            ObjectPermission::Delete => "DELETE",
            ObjectPermission::Administer => "ADMINISTER",
        }
    }
}

/// A permission set (`/permissions`, `/effectivePermissions`). Permission
/// names stay strings so a newer server's additions (e.g. `AUDIT`) never fail
/// the parse.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PermissionSet {
    pub connection_permissions: BTreeMap<String, Vec<String>>,
    pub connection_group_permissions: BTreeMap<String, Vec<String>>,
    pub sharing_profile_permissions: BTreeMap<String, Vec<String>>,
    pub active_connection_permissions: BTreeMap<String, Vec<String>>,
    pub user_permissions: BTreeMap<String, Vec<String>>,
    pub user_group_permissions: BTreeMap<String, Vec<String>>,
    pub system_permissions: Vec<String>,
}

impl PermissionSet {
    pub fn has_system(&self, permission: &str) -> bool {
        self.system_permissions.iter().any(|p| p == permission)
    }

    pub fn is_admin(&self) -> bool {
        self.has_system("ADMINISTER")
    }

    pub fn has_on_group(&self, group: &str, permission: ObjectPermission) -> bool {
        self.connection_group_permissions
            .get(group)
            .is_some_and(|ps| ps.iter().any(|p| p == permission.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_with_omitted_children_parses() {
        let json = r#"{"name":"ROOT","identifier":"ROOT","type":"ORGANIZATIONAL","activeConnections":0,
          "childConnectionGroups":[{"name":"Servers","identifier":"3","parentIdentifier":"ROOT",
            "type":"ORGANIZATIONAL","activeConnections":0,
            "childConnections":[{"name":"web-01","identifier":"7","parentIdentifier":"3","protocol":"rdp",
              "attributes":{"max-connections":null},"activeConnections":0,
              "sharingProfiles":[{"name":"s","identifier":"1","primaryConnectionIdentifier":"7","attributes":{}}]}],
            "attributes":{"max-connections":null,"max-connections-per-user":null,"enable-session-affinity":""}}],
          "attributes":{}}"#;
        let tree: TreeGroup = serde_json::from_str(json).unwrap();
        assert_eq!(tree.identifier(), "ROOT");
        assert_eq!(tree.group.parent_identifier, None);
        assert!(tree.child_connections.is_empty());
        let servers = tree.child_group("Servers").unwrap();
        assert_eq!(servers.group.parent_identifier.as_deref(), Some("ROOT"));
        assert_eq!(
            servers.group.attributes.get("enable-session-affinity"),
            Some(&Some(String::new()))
        );
        let all = tree.all_connections();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].parent_identifier, "3");
        assert_eq!(all[0].attributes.get("max-connections"), Some(&None));
        assert_eq!(tree.find_group("3").unwrap().group.name, "Servers");
        assert_eq!(tree.all_groups().len(), 2);
    }

    #[test]
    fn connection_spec_always_sends_parent_parameters_and_attributes() {
        let spec = ConnectionSpec::new("web-01", "ROOT", "rdp", Parameters::new());
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"name":"web-01","parentIdentifier":"ROOT","protocol":"rdp",
                               "parameters":{},"attributes":{}})
        );
        let g = serde_json::to_value(GroupSpec::organizational("pve", "ROOT")).unwrap();
        assert_eq!(
            g,
            serde_json::json!({"name":"pve","parentIdentifier":"ROOT","type":"ORGANIZATIONAL","attributes":{}})
        );
    }

    #[test]
    fn parameters_hide_values_in_debug_but_serialise_them() {
        let p: Parameters = [("hostname", "10.0.0.5"), ("password", "hunter2")]
            .into_iter()
            .collect();
        let dbg = format!("{p:?}");
        assert!(
            !dbg.contains("hunter2") && !dbg.contains("10.0.0.5"),
            "{dbg}"
        );
        assert!(dbg.contains("password"));
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"{"hostname":"10.0.0.5","password":"hunter2"}"#);
        let back: Parameters = serde_json::from_str(r#"{"hostname":"10.0.0.5","x":null}"#).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back.get("hostname").unwrap().expose(), "10.0.0.5");
    }

    #[test]
    fn parameters_compare_like_the_server_stores_them() {
        let desired: Parameters = [("hostname", "h"), ("port", ""), ("password", "a")]
            .into_iter()
            .collect();
        let stored: Parameters = [("hostname", "h"), ("password", "b"), ("extra", "1")]
            .into_iter()
            .collect();
        assert_eq!(desired.without_empty().len(), 2);
        assert_eq!(
            desired.without_empty().changed_names(&stored),
            vec!["extra".to_owned(), "password".to_owned()]
        );
    }

    #[test]
    fn permission_set_tolerates_unknown_system_permissions() {
        let json = r#"{"connectionPermissions":{},"connectionGroupPermissions":{"3":["READ","UPDATE"]},
            "sharingProfilePermissions":{},"activeConnectionPermissions":{},"userPermissions":{},
            "userGroupPermissions":{},"systemPermissions":["CREATE_CONNECTION","AUDIT"]}"#;
        let set: PermissionSet = serde_json::from_str(json).unwrap();
        assert!(set.has_system("CREATE_CONNECTION"));
        assert!(!set.is_admin());
        assert!(set.has_on_group("3", ObjectPermission::Update));
        assert!(!set.has_on_group("3", ObjectPermission::Administer));
    }
}
