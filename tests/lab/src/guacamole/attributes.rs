//! The database backend's connection and group attributes (§9): how written
//! values are parsed (leniently) and how they read back.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::errors::GuacError;

/// Keys of the connection attribute schema, in form order.
pub const CONNECTION_KEYS: [&str; 7] = [
    "max-connections",
    "max-connections-per-user",
    "weight",
    "failover-only",
    "guacd-hostname",
    "guacd-port",
    "guacd-encryption",
];

/// Keys of the connection-group attribute schema.
pub const GROUP_KEYS: [&str; 3] = [
    "max-connections",
    "max-connections-per-user",
    "enable-session-affinity",
];

/// Attribute map as submitted: values may be null.
pub type RawAttributes = BTreeMap<String, Option<String>>;

/// A numeric attribute: blank/null/absent clears it, an integer sets it, and
/// anything else is ignored (the previous value stays).
fn numeric(previous: Option<i32>, submitted: Option<&Option<String>>) -> Option<i32> {
    match submitted.and_then(|v| v.as_deref()) {
        None | Some("") => None,
        // Like Java's Integer.parseInt: no trimming, optional sign.
        Some(text) => text.parse::<i32>().ok().or(previous),
    }
}

fn text_of(submitted: Option<&Option<String>>) -> Option<&str> {
    submitted.and_then(|v| v.as_deref())
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionAttributes {
    pub max_connections: Option<i32>,
    pub max_connections_per_user: Option<i32>,
    pub weight: Option<i32>,
    pub failover_only: bool,
    pub guacd_hostname: Option<String>,
    pub guacd_port: Option<i32>,
    pub guacd_encryption: Option<String>,
}

impl ConnectionAttributes {
    /// The stored attributes after a create (previous = default) or a full
    /// replace from `map`.
    pub fn replaced(&self, map: &RawAttributes) -> Result<ConnectionAttributes, GuacError> {
        let hostname = match text_of(map.get("guacd-hostname")) {
            None | Some("") => None,
            Some(h) if h.chars().count() > 512 => return Err(GuacError::internal()),
            Some(h) => Some(h.to_string()),
        };
        Ok(ConnectionAttributes {
            max_connections: numeric(self.max_connections, map.get("max-connections")),
            max_connections_per_user: numeric(
                self.max_connections_per_user,
                map.get("max-connections-per-user"),
            ),
            weight: numeric(self.weight, map.get("weight")),
            failover_only: text_of(map.get("failover-only")) == Some("true"),
            guacd_hostname: hostname,
            guacd_port: numeric(self.guacd_port, map.get("guacd-port")),
            guacd_encryption: match text_of(map.get("guacd-encryption")) {
                Some(v @ ("none" | "ssl")) => Some(v.to_string()),
                _ => None,
            },
        })
    }

    /// All seven keys, `null` when unset; `failover-only` is `"true"`/null.
    pub fn to_json(&self) -> Map<String, Value> {
        let num = |v: Option<i32>| v.map_or(Value::Null, |n| Value::String(n.to_string()));
        let txt = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
        let mut m = Map::new();
        m.insert("max-connections".into(), num(self.max_connections));
        m.insert(
            "max-connections-per-user".into(),
            num(self.max_connections_per_user),
        );
        m.insert("weight".into(), num(self.weight));
        m.insert(
            "failover-only".into(),
            if self.failover_only {
                Value::String("true".into())
            } else {
                Value::Null
            },
        );
        m.insert("guacd-hostname".into(), txt(&self.guacd_hostname));
        m.insert("guacd-port".into(), num(self.guacd_port));
        m.insert("guacd-encryption".into(), txt(&self.guacd_encryption));
        m
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupAttributes {
    pub max_connections: Option<i32>,
    pub max_connections_per_user: Option<i32>,
    pub session_affinity: bool,
}

impl GroupAttributes {
    pub fn replaced(&self, map: &RawAttributes) -> GroupAttributes {
        GroupAttributes {
            max_connections: numeric(self.max_connections, map.get("max-connections")),
            max_connections_per_user: numeric(
                self.max_connections_per_user,
                map.get("max-connections-per-user"),
            ),
            session_affinity: text_of(map.get("enable-session-affinity")) == Some("true"),
        }
    }

    /// All three keys; `enable-session-affinity` is `"true"` or `""`.
    pub fn to_json(&self) -> Map<String, Value> {
        let num = |v: Option<i32>| v.map_or(Value::Null, |n| Value::String(n.to_string()));
        let mut m = Map::new();
        m.insert("max-connections".into(), num(self.max_connections));
        m.insert(
            "max-connections-per-user".into(),
            num(self.max_connections_per_user),
        );
        m.insert(
            "enable-session-affinity".into(),
            Value::String(if self.session_affinity { "true" } else { "" }.into()),
        );
        m
    }
}

/// Attribute keys outside the schema with non-null values (stored only by a
/// 1.6 directory-PATCH `replace`, which does not filter).
pub fn extras(map: &RawAttributes, schema: &[&str]) -> BTreeMap<String, String> {
    map.iter()
        .filter(|(k, _)| !schema.contains(&k.as_str()))
        .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
        .collect()
}

/// The POST echo's attribute map: schema keys present in the request; null
/// values dropped unless the version keeps them (1.5.2+).
pub fn echo(map: &RawAttributes, schema: &[&str], keep_nulls: bool) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| schema.contains(&k.as_str()))
        .filter(|(_, v)| keep_nulls || v.is_some())
        .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String)))
        .collect()
}
