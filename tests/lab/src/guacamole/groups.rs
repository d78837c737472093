//! Connection groups (§5): create / replace / recursive delete, the
//! self-containment rule, and the tree view (built in one pass over the
//! store, so it stays linear in the number of objects).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::attributes::{self, GROUP_KEYS, GroupAttributes};
use super::body::GroupBody;
use super::connections::MAX_NAME;
use super::errors::{Fail, GuacError};
use super::model::{
    Actor, Connection, Group, ParentRef, Store, connection_json, group_json, root_json,
};
use super::permissions::{ObjectKind, ObjectPermission, SystemPermission};
use super::seed::GuacVersion;

fn is_blank(name: Option<&str>) -> bool {
    name.is_none_or(|n| n.trim().is_empty())
}

fn parent_id(parent: ParentRef) -> Option<u64> {
    match parent {
        ParentRef::Group(id) => Some(id),
        _ => None,
    }
}

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

fn echo(body: &GroupBody, id: u64, version: GuacVersion) -> Value {
    let mut m = Map::new();
    if let Some(n) = &body.name {
        m.insert("name".into(), json!(n));
    }
    m.insert("identifier".into(), json!(id.to_string()));
    if let Some(p) = &body.parent {
        m.insert("parentIdentifier".into(), json!(p));
    }
    if let Some(t) = body.group_type {
        m.insert("type".into(), json!(t.as_str()));
    }
    let attrs = body.attributes.clone().unwrap_or_default();
    m.insert(
        "attributes".into(),
        Value::Object(attributes::echo(
            &attrs,
            &GROUP_KEYS,
            version >= GuacVersion::V1_5,
        )),
    );
    m.insert(
        "activeConnections".into(),
        json!(body.active_connections.unwrap_or(0)),
    );
    Value::Object(m)
}

/// Filter for `?permission=…` on list and tree views (non-admins only).
#[derive(Debug, Clone, Default)]
pub struct PermissionFilter(pub Vec<ObjectPermission>);

impl PermissionFilter {
    pub fn admits(&self, store: &Store, actor: &Actor, kind: ObjectKind, id: &str) -> bool {
        if actor.admin {
            return true;
        }
        if !store.may(actor, kind, id, ObjectPermission::Read) {
            return false;
        }
        self.0.is_empty() || self.0.iter().any(|p| store.may(actor, kind, id, *p))
    }
}

impl Store {
    pub fn create_group(
        &mut self,
        actor: &Actor,
        body: Option<GroupBody>,
        version: GuacVersion,
    ) -> Result<(u64, Value), Fail> {
        let body = body.ok_or_else(|| {
            GuacError::bad_request("Data must be submitted when creating objects.")
        })?;
        let attrs = body.attributes.clone().ok_or_else(GuacError::internal)?;
        if !self.may_system(actor, SystemPermission::CreateConnectionGroup) {
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
        let name = name
            .ok_or_else(|| GuacError::bad_request("Connection group names must not be blank."))?;
        // An unknown parent holds no names: the insert fails in storage (500).
        if parent != ParentRef::Unknown && self.group_name_taken(parent_id(parent), &name, None) {
            return Err(GuacError::bad_request(format!(
                "The connection group \"{name}\" already exists."
            ))
            .into());
        }
        let group_type = body.group_type.ok_or_else(GuacError::internal)?;
        if name.chars().count() > MAX_NAME || parent == ParentRef::Unknown {
            return Err(GuacError::internal().into());
        }
        let id = self.next_group_id;
        self.next_group_id += 1;
        self.groups.insert(
            id,
            Group {
                id,
                name,
                parent: parent_id(parent),
                group_type,
                attributes: GroupAttributes::default().replaced(&attrs),
                extra_attributes: BTreeMap::new(),
            },
        );
        if let Some(user) = self.users.get_mut(&actor.username) {
            user.permissions
                .grant_all(ObjectKind::ConnectionGroup, &id.to_string());
        }
        Ok((id, echo(&body, id, version)))
    }

    /// True when `candidate` is `group` or lies below it.
    fn is_within(&self, candidate: Option<u64>, group: u64) -> bool {
        let mut cursor = candidate;
        let mut steps = 0usize;
        while let Some(id) = cursor {
            if id == group {
                return true;
            }
            steps += 1;
            if steps > self.groups.len() {
                return true; // corrupt cycle: refuse rather than loop
            }
            cursor = self.groups.get(&id).and_then(|g| g.parent);
        }
        false
    }

    pub fn update_group(
        &mut self,
        actor: &Actor,
        id_text: &str,
        body: Option<GroupBody>,
        filter_attributes: bool,
    ) -> Result<u64, Fail> {
        if id_text == "ROOT" {
            return Err(GuacError::internal().into());
        }
        let current = self.readable_group(actor, id_text)?.clone();
        let body = body.ok_or_else(|| {
            GuacError::bad_request("Data must be submitted when updating objects.")
        })?;
        let attrs = body.attributes.clone().ok_or_else(GuacError::internal)?;
        if !self.may(
            actor,
            ObjectKind::ConnectionGroup,
            &current.id.to_string(),
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
        let name = name
            .ok_or_else(|| GuacError::bad_request("Connection group names must not be blank."))?;
        // An unknown parent holds no names: the insert fails in storage (500).
        if parent != ParentRef::Unknown
            && self.group_name_taken(parent_id(parent), &name, Some(current.id))
        {
            return Err(GuacError::bad_request(format!(
                "The connection group \"{name}\" already exists."
            ))
            .into());
        }
        if self.is_within(parent_id(parent), current.id) {
            return Err(
                GuacError::unsupported("A connection group may not contain itself.").into(),
            );
        }
        let group_type = body.group_type.ok_or_else(GuacError::internal)?;
        if name.chars().count() > MAX_NAME || parent == ParentRef::Unknown {
            return Err(GuacError::internal().into());
        }
        let extra_attributes = if filter_attributes {
            BTreeMap::new()
        } else {
            attributes::extras(&attrs, &GROUP_KEYS)
        };
        let stored = self.groups.get_mut(&current.id).expect("looked up above");
        stored.name = name;
        stored.parent = parent_id(parent);
        stored.group_type = group_type;
        stored.attributes = current.attributes.replaced(&attrs);
        stored.extra_attributes = extra_attributes;
        Ok(current.id)
    }

    pub fn delete_group(&mut self, actor: &Actor, id_text: &str) -> Result<(), Fail> {
        if id_text == "ROOT" {
            return Err(GuacError::internal().into());
        }
        let id = self.readable_group(actor, id_text)?.id;
        if !self.may(
            actor,
            ObjectKind::ConnectionGroup,
            &id.to_string(),
            ObjectPermission::Delete,
        ) {
            return Err(GuacError::denied().into());
        }
        self.remove_group_recursive(id);
        Ok(())
    }

    /// Directory-PATCH removal (see `patch_remove_connection`).
    pub fn patch_remove_group(&mut self, actor: &Actor, id_text: &str) -> Result<(), Fail> {
        let id = self.patch_removal_target(actor, ObjectKind::ConnectionGroup, id_text)?;
        self.remove_group_recursive(id);
        Ok(())
    }

    /// Delete a group with every descendant group and connection (and the
    /// grants on all of them). Returns how many objects went away.
    pub fn remove_group_recursive(&mut self, id: u64) -> usize {
        if !self.groups.contains_key(&id) {
            return 0;
        }
        let mut children: HashMap<u64, Vec<u64>> = HashMap::new();
        for g in self.groups.values() {
            if let Some(p) = g.parent {
                children.entry(p).or_default().push(g.id);
            }
        }
        let mut doomed_groups = vec![id];
        let mut i = 0;
        while i < doomed_groups.len() {
            if let Some(kids) = children.get(&doomed_groups[i]) {
                doomed_groups.extend(kids);
            }
            i += 1;
        }
        let doomed_set: std::collections::HashSet<u64> = doomed_groups.iter().copied().collect();
        let doomed_connections: Vec<u64> = self
            .connections
            .values()
            .filter(|c| c.parent.is_some_and(|p| doomed_set.contains(&p)))
            .map(|c| c.id)
            .collect();
        let removed = doomed_groups.len() + doomed_connections.len();
        for c in doomed_connections {
            self.remove_connection(c);
        }
        for g in doomed_groups {
            self.groups.remove(&g);
            self.forget_object(ObjectKind::ConnectionGroup, &g.to_string());
        }
        removed
    }

    /// `GET /connectionGroups/{id}/tree`: children omitted when empty.
    pub fn tree_json(&self, actor: &Actor, root: Option<u64>, filter: &PermissionFilter) -> Value {
        let mut conns: HashMap<Option<u64>, Vec<&Connection>> = HashMap::new();
        for c in self.connections.values() {
            if filter.admits(self, actor, ObjectKind::Connection, &c.id.to_string()) {
                conns.entry(c.parent).or_default().push(c);
            }
        }
        let mut groups: HashMap<Option<u64>, Vec<&Group>> = HashMap::new();
        for g in self.groups.values() {
            if self.may(
                actor,
                ObjectKind::ConnectionGroup,
                &g.id.to_string(),
                ObjectPermission::Read,
            ) {
                groups.entry(g.parent).or_default().push(g);
            }
        }
        let top = match root {
            None => root_json(),
            Some(id) => group_json(&self.groups[&id]),
        };
        // Depth-first build; the depth cap guards against a corrupt parent cycle.
        fn fill(
            node: &mut Value,
            id: Option<u64>,
            conns: &HashMap<Option<u64>, Vec<&Connection>>,
            groups: &HashMap<Option<u64>, Vec<&Group>>,
            depth: usize,
        ) {
            if let Some(list) = conns.get(&id) {
                node["childConnections"] =
                    Value::Array(list.iter().map(|c| connection_json(c)).collect());
            }
            if let Some(list) = groups.get(&id)
                && depth < 10_000
            {
                let kids = list
                    .iter()
                    .map(|g| {
                        let mut child = group_json(g);
                        fill(&mut child, Some(g.id), conns, groups, depth + 1);
                        child
                    })
                    .collect();
                node["childConnectionGroups"] = Value::Array(kids);
            }
        }
        let mut top = top;
        fill(&mut top, root, &conns, &groups, 0);
        top
    }
}
