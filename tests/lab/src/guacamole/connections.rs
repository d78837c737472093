//! Connection create / replace / delete with the database backend's check
//! order (§4.6–4.9) and storage rules (§4.8).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::attributes::{self, CONNECTION_KEYS, ConnectionAttributes, RawAttributes};
use super::body::ConnectionBody;
use super::errors::{Fail, GuacError};
use super::model::{Actor, Connection, ParentRef, Store, numeric_id};
use super::permissions::{ObjectKind, ObjectPermission, SystemPermission};
use super::seed::GuacVersion;

pub const MAX_NAME: usize = 128;
pub const MAX_PROTOCOL: usize = 32;
pub const MAX_PARAMETER_NAME: usize = 128;
pub const MAX_PARAMETER_VALUE: usize = 4096;

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn is_blank(name: Option<&str>) -> bool {
    name.is_none_or(|n| n.trim().is_empty())
}

/// 1.6: the first over-long parameter value is a 413 before any permission check.
fn check_parameter_lengths(params: &RawAttributes, version: GuacVersion) -> Result<(), GuacError> {
    if !version.is_1_6() {
        return Ok(());
    }
    match params
        .iter()
        .find(|(_, v)| v.as_deref().is_some_and(|v| chars(v) > MAX_PARAMETER_VALUE))
    {
        Some((name, _)) => Err(GuacError::parameter_too_long(name)),
        None => Ok(()),
    }
}

/// The rows that would be written: non-empty values only; storage limits
/// become 500s (≤1.5 also for over-long values).
fn stored_parameters(params: &RawAttributes) -> Result<BTreeMap<String, String>, GuacError> {
    let mut out = BTreeMap::new();
    for (name, value) in params {
        let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        if chars(name) > MAX_PARAMETER_NAME || chars(value) > MAX_PARAMETER_VALUE {
            return Err(GuacError::internal());
        }
        out.insert(name.clone(), value.to_string());
    }
    Ok(out)
}

/// Name and protocol constraints of the connection table.
fn check_storage(
    name: &str,
    protocol: Option<&str>,
    parent: ParentRef,
) -> Result<String, GuacError> {
    let protocol = protocol.ok_or_else(GuacError::internal)?;
    if chars(name) > MAX_NAME || chars(protocol) > MAX_PROTOCOL || parent == ParentRef::Unknown {
        return Err(GuacError::internal());
    }
    Ok(protocol.to_string())
}

fn parent_id(parent: ParentRef) -> Option<u64> {
    match parent {
        ParentRef::Group(id) => Some(id),
        _ => None,
    }
}

/// Non-admins need UPDATE on a non-root parent (unknown parents included).
fn may_use_parent(store: &Store, actor: &Actor, parent: ParentRef, raw: Option<&str>) -> bool {
    match parent {
        ParentRef::Root => true,
        ParentRef::Group(id) => store.may(
            actor,
            ObjectKind::ConnectionGroup,
            &id.to_string(),
            ObjectPermission::Update,
        ),
        ParentRef::Unknown => {
            actor.admin
                || raw.is_some_and(|r| {
                    store.may(
                        actor,
                        ObjectKind::ConnectionGroup,
                        r,
                        ObjectPermission::Update,
                    )
                })
        }
    }
}

/// The POST echo: the deserialised request with `identifier` and the
/// schema-filtered attributes; other members as sent.
fn echo(body: &ConnectionBody, id: u64, attrs: &RawAttributes, version: GuacVersion) -> Value {
    let mut m = Map::new();
    if let Some(n) = &body.name {
        m.insert("name".into(), json!(n));
    }
    m.insert("identifier".into(), json!(id.to_string()));
    if let Some(p) = &body.parent {
        m.insert("parentIdentifier".into(), json!(p));
    }
    if let Some(p) = &body.protocol {
        m.insert("protocol".into(), json!(p));
    }
    if let Some(params) = &body.parameters {
        let map: Map<String, Value> = params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String)))
            .collect();
        m.insert("parameters".into(), Value::Object(map));
    }
    let keep_nulls = version >= GuacVersion::V1_5;
    m.insert(
        "attributes".into(),
        Value::Object(attributes::echo(attrs, &CONNECTION_KEYS, keep_nulls)),
    );
    m.insert(
        "activeConnections".into(),
        json!(body.active_connections.unwrap_or(0)),
    );
    if let Some(t) = body.last_active {
        m.insert("lastActive".into(), json!(t));
    }
    Value::Object(m)
}

impl Store {
    /// `POST /connections` (and a 1.6 PATCH `add`): returns the new id and
    /// the echo. The id is consumed even if a later rollback discards it.
    pub fn create_connection(
        &mut self,
        actor: &Actor,
        body: Option<ConnectionBody>,
        version: GuacVersion,
    ) -> Result<(u64, Value), Fail> {
        let body = body.ok_or_else(|| {
            GuacError::bad_request("Data must be submitted when creating objects.")
        })?;
        let attrs = body.attributes.clone().ok_or_else(GuacError::internal)?;
        let params = body.parameters.clone().unwrap_or_default();
        check_parameter_lengths(&params, version)?;
        if !self.may_system(actor, SystemPermission::CreateConnection) {
            return Err(GuacError::denied().into());
        }
        let parent = self.resolve_parent(body.parent.as_deref());
        if !actor.admin && !may_use_parent(self, actor, parent, body.parent.as_deref()) {
            return Err(GuacError::denied().into());
        }
        let name = body
            .name
            .clone()
            .filter(|_| !is_blank(body.name.as_deref()));
        let name =
            name.ok_or_else(|| GuacError::bad_request("Connection names must not be blank."))?;
        // An unknown parent holds no names: the insert fails in storage (500).
        if parent != ParentRef::Unknown
            && self.connection_name_taken(parent_id(parent), &name, None)
        {
            return Err(GuacError::bad_request(format!(
                "The connection \"{name}\" already exists."
            ))
            .into());
        }
        let protocol = check_storage(&name, body.protocol.as_deref(), parent)?;
        let parameters = stored_parameters(&params)?;
        let attributes = ConnectionAttributes::default().replaced(&attrs)?;
        let id = self.next_connection_id;
        self.next_connection_id += 1;
        self.connections.insert(
            id,
            Connection {
                id,
                name,
                parent: parent_id(parent),
                protocol,
                parameters,
                attributes,
                extra_attributes: BTreeMap::new(),
                last_active: None,
            },
        );
        if let Some(user) = self.users.get_mut(&actor.username) {
            user.permissions
                .grant_all(ObjectKind::Connection, &id.to_string());
        }
        Ok((id, echo(&body, id, &attrs, version)))
    }

    /// `PUT /connections/{id}` (and a 1.6 PATCH `replace`, which keeps
    /// non-schema attributes: `filter_attributes = false`).
    pub fn update_connection(
        &mut self,
        actor: &Actor,
        id_text: &str,
        body: Option<ConnectionBody>,
        version: GuacVersion,
        filter_attributes: bool,
    ) -> Result<u64, Fail> {
        let current = self.readable_connection(actor, id_text)?.clone();
        let body = body.ok_or_else(|| {
            GuacError::bad_request("Data must be submitted when updating objects.")
        })?;
        let attrs = body.attributes.clone().ok_or_else(GuacError::internal)?;
        let params = body.parameters.clone().ok_or_else(GuacError::internal)?;
        check_parameter_lengths(&params, version)?;
        let id_key = current.id.to_string();
        if !self.may(
            actor,
            ObjectKind::Connection,
            &id_key,
            ObjectPermission::Update,
        ) {
            return Err(GuacError::denied().into());
        }
        let parent = self.resolve_parent(body.parent.as_deref());
        if !actor.admin && parent_id(parent) != current.parent {
            let old = current.parent.map_or(ParentRef::Root, ParentRef::Group);
            if !may_use_parent(self, actor, old, None)
                || !may_use_parent(self, actor, parent, body.parent.as_deref())
            {
                return Err(GuacError::denied().into());
            }
        }
        let name = body
            .name
            .clone()
            .filter(|_| !is_blank(body.name.as_deref()));
        let name =
            name.ok_or_else(|| GuacError::bad_request("Connection names must not be blank."))?;
        // An unknown parent holds no names: the insert fails in storage (500).
        if parent != ParentRef::Unknown
            && self.connection_name_taken(parent_id(parent), &name, Some(current.id))
        {
            return Err(GuacError::bad_request(format!(
                "The connection \"{name}\" already exists."
            ))
            .into());
        }
        let protocol = check_storage(&name, body.protocol.as_deref(), parent)?;
        let parameters = stored_parameters(&params)?;
        let attributes = current.attributes.replaced(&attrs)?;
        let extra_attributes = if filter_attributes {
            BTreeMap::new()
        } else {
            attributes::extras(&attrs, &CONNECTION_KEYS)
        };
        let stored = self
            .connections
            .get_mut(&current.id)
            .expect("looked up above under the same lock");
        stored.name = name;
        stored.parent = parent_id(parent);
        stored.protocol = protocol;
        stored.parameters = parameters;
        stored.attributes = attributes;
        stored.extra_attributes = extra_attributes;
        Ok(current.id)
    }

    /// `DELETE /connections/{id}`: 404 unless readable, 403 without DELETE.
    pub fn delete_connection(&mut self, actor: &Actor, id_text: &str) -> Result<(), Fail> {
        let id = self.readable_connection(actor, id_text)?.id;
        if !self.may(
            actor,
            ObjectKind::Connection,
            &id.to_string(),
            ObjectPermission::Delete,
        ) {
            return Err(GuacError::denied().into());
        }
        self.remove_connection(id);
        Ok(())
    }

    /// Directory-PATCH removal: unknown all-digit ids succeed silently,
    /// non-numeric ids fail in the database (500).
    pub fn patch_remove_connection(&mut self, actor: &Actor, id_text: &str) -> Result<(), Fail> {
        let id = self.patch_removal_target(actor, ObjectKind::Connection, id_text)?;
        self.remove_connection(id);
        Ok(())
    }

    /// The id a directory-PATCH `remove` acts on: DELETE permission is
    /// checked first (whether or not the object exists), then a non-numeric
    /// id fails in the database (500).
    pub(crate) fn patch_removal_target(
        &self,
        actor: &Actor,
        kind: ObjectKind,
        id_text: &str,
    ) -> Result<u64, Fail> {
        let key = numeric_id(id_text).map_or_else(|| id_text.to_string(), |n| n.to_string());
        if !self.may(actor, kind, &key, ObjectPermission::Delete) {
            return Err(GuacError::denied().into());
        }
        Ok(numeric_id(id_text).ok_or_else(GuacError::internal)?)
    }

    /// Drop a connection, its parameters and every grant on it.
    pub fn remove_connection(&mut self, id: u64) -> bool {
        let existed = self.connections.remove(&id).is_some();
        if existed {
            self.forget_object(ObjectKind::Connection, &id.to_string());
        }
        existed
    }
}
