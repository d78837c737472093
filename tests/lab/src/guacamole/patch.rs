//! Directory PATCH (§6): remove-only and non-atomic up to 1.5; atomic
//! add/replace/remove with a per-entry outcome list from 1.6 on.

use serde_json::{Map, Value, json};

use super::body::{
    ConnectionBody, GroupBody, PatchEntry, PatchOp, UserBody, UserGroupBody, parse_patches,
};
use super::errors::{Fail, GuacError};
use super::model::Store;
use super::seed::GuacVersion;

/// The directory a PATCH is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directory {
    Connections,
    ConnectionGroups,
    Users,
    UserGroups,
}

/// A parsed `value` of a 1.6 entry, typed by directory.
#[derive(Debug, Clone)]
enum Object {
    Connection(Option<ConnectionBody>),
    Group(Option<GroupBody>),
    User(Option<UserBody>),
    UserGroup(Option<UserGroupBody>),
}

fn parse_value(dir: Directory, v: &Value) -> Result<Object, Fail> {
    if v.is_string() || v.is_number() || v.is_boolean() || v.is_array() {
        return Err(Fail::BadJson(
            "Cannot construct instance of directory object: no String-argument \
             constructor/factory method to deserialize from a non-object value"
                .into(),
        ));
    }
    Ok(match dir {
        Directory::Connections => Object::Connection(ConnectionBody::parse(v)?),
        Directory::ConnectionGroups => Object::Group(GroupBody::parse(v)?),
        Directory::Users => Object::User(UserBody::parse(v)?),
        Directory::UserGroups => Object::UserGroup(UserGroupBody::parse(v)?),
    })
}

fn remove(store: &mut Store, user: &str, dir: Directory, id: &str) -> Result<(), Fail> {
    let actor = store.actor(user);
    match dir {
        Directory::Connections => store.patch_remove_connection(&actor, id),
        Directory::ConnectionGroups => store.patch_remove_group(&actor, id),
        Directory::Users => store.delete_user(&actor, id, false),
        Directory::UserGroups => store.delete_user_group(&actor, id, false),
    }
}

/// Apply a directory PATCH. `Ok(None)` is a 204, `Ok(Some(body))` a 200.
pub fn apply(
    store: &mut Store,
    user: &str,
    dir: Directory,
    raw: &Value,
    version: GuacVersion,
) -> Result<Option<Value>, Fail> {
    let entries = parse_patches(raw)?;
    if version.is_1_6() {
        apply_atomic(store, user, dir, &entries, version).map(Some)
    } else {
        apply_remove_only(store, user, dir, &entries).map(|_| None)
    }
}

/// ≤1.5: entries one by one; earlier removals stay if a later one fails.
fn apply_remove_only(
    store: &mut Store,
    user: &str,
    dir: Directory,
    entries: &[PatchEntry],
) -> Result<(), Fail> {
    if let Some(bad) = entries
        .iter()
        .find(|e| e.value.is_object() || e.value.is_array())
    {
        return Err(Fail::BadJson(format!(
            "Cannot deserialize value of type `java.lang.String` from {}",
            if bad.value.is_object() {
                "Object value"
            } else {
                "Array value"
            }
        )));
    }
    for e in entries {
        if e.op != Some(PatchOp::Remove) {
            return Err(
                GuacError::unsupported("Only the \"remove\" operation is supported.").into(),
            );
        }
        let path = e.path.clone().ok_or_else(GuacError::internal)?;
        let Some(id) = path.strip_prefix('/') else {
            return Err(GuacError::bad_request("Patch paths must start with \"/\".").into());
        };
        remove(store, user, dir, id)?;
    }
    Ok(())
}

/// One entry's outcome in the response.
struct Outcome {
    op: PatchOp,
    identifier: Option<String>,
    path: String,
    error: Option<GuacError>,
}

impl Outcome {
    fn to_json(&self, null_identifier: bool) -> Value {
        let mut m = Map::new();
        m.insert("op".into(), json!(self.op.as_str()));
        let id = if null_identifier {
            None
        } else {
            self.identifier.clone()
        };
        m.insert("identifier".into(), id.map_or(Value::Null, Value::String));
        m.insert("path".into(), json!(self.path));
        if let Some(e) = &self.error {
            m.insert("error".into(), e.translatable());
        }
        Value::Object(m)
    }
}

/// 1.6: everything on a working copy; committed only if every entry worked.
/// Ids handed out on the way stay consumed even when rolled back.
fn apply_atomic(
    store: &mut Store,
    user: &str,
    dir: Directory,
    entries: &[PatchEntry],
    version: GuacVersion,
) -> Result<Value, Fail> {
    let values = entries
        .iter()
        .map(|e| parse_value(dir, &e.value))
        .collect::<Result<Vec<_>, _>>()?;
    let mut work = store.clone();
    let result = run_entries(&mut work, user, dir, entries, values, version);
    let keep_counters = |store: &mut Store, work: &Store| {
        store.next_connection_id = work.next_connection_id;
        store.next_group_id = work.next_group_id;
    };
    match result {
        Err(abort) => {
            keep_counters(store, &work);
            Err(abort)
        }
        Ok(outcomes) if outcomes.iter().any(|o| o.error.is_some()) => {
            keep_counters(store, &work);
            let patches: Vec<Value> = outcomes
                .iter()
                .map(|o| {
                    let succeeded_add_or_remove =
                        o.error.is_none() && matches!(o.op, PatchOp::Add | PatchOp::Remove);
                    o.to_json(succeeded_add_or_remove)
                })
                .collect();
            let e = GuacError::bad_request("The provided patches failed to apply.");
            Err(e.with_patches(Value::Array(patches)).into())
        }
        Ok(outcomes) => {
            *store = work;
            let patches: Vec<Value> = outcomes.iter().map(|o| o.to_json(false)).collect();
            Ok(json!({ "patches": patches }))
        }
    }
}

fn run_entries(
    work: &mut Store,
    user: &str,
    dir: Directory,
    entries: &[PatchEntry],
    values: Vec<Object>,
    version: GuacVersion,
) -> Result<Vec<Outcome>, Fail> {
    let mut outcomes = Vec::with_capacity(entries.len());
    for (e, value) in entries.iter().zip(values) {
        let path = e.path.clone().ok_or_else(GuacError::internal)?;
        let Some(id) = path.strip_prefix('/').map(str::to_string) else {
            return Err(GuacError::bad_request("Patch paths must start with \"/\".").into());
        };
        // A missing op falls through to the "unsupported" branch like
        // test/copy/move: the whole request fails with 501.
        let op = match e.op {
            Some(op @ (PatchOp::Add | PatchOp::Replace | PatchOp::Remove)) => op,
            other => {
                return Err(GuacError::unsupported(format!(
                    "Unsupported patch operation \"{}\". Only add, replace, and remove are supported.",
                    other.map_or("null", PatchOp::as_str)
                ))
                .into());
            }
        };
        let actor = work.actor(user);
        let result: Result<Option<String>, Fail> = match (op, value) {
            (PatchOp::Add, Object::Connection(b)) => work
                .create_connection(&actor, b, version)
                .map(|(id, _)| Some(id.to_string())),
            (PatchOp::Add, Object::Group(b)) => work
                .create_group(&actor, b, version)
                .map(|(id, _)| Some(id.to_string())),
            (PatchOp::Add, Object::User(b)) => {
                work.create_user(&actor, b, version).map(|(id, _)| Some(id))
            }
            (PatchOp::Add, Object::UserGroup(b)) => work
                .create_user_group(&actor, b, version)
                .map(|(id, _)| Some(id)),
            (PatchOp::Replace, Object::Connection(b)) => work
                .update_connection(&actor, &id, b, version, false)
                .map(|n| Some(n.to_string())),
            // The directory holds no ROOT object (only `getRootConnectionGroup` does).
            (PatchOp::Replace, Object::Group(_)) if id == "ROOT" => {
                Err(GuacError::not_found(&id).into())
            }
            (PatchOp::Replace, Object::Group(b)) => work
                .update_group(&actor, &id, b, false)
                .map(|n| Some(n.to_string())),
            (PatchOp::Replace, Object::User(b)) => work
                .update_user(&actor, &id, b, version)
                .map(|_| Some(id.clone())),
            (PatchOp::Replace, Object::UserGroup(b)) => work
                .update_user_group(&actor, &id, b, version)
                .map(|_| Some(id.clone())),
            (_, _) => remove(work, user, dir, &id).map(|_| Some(id.clone())),
        };
        match result {
            Ok(identifier) => outcomes.push(Outcome {
                op,
                identifier,
                path,
                error: None,
            }),
            // Every Guacamole error is collected, whatever its status
            // (`createPatchFailure`); only failures outside Guacamole's
            // exception types (storage, null handling) abort with 500.
            Err(Fail::Api(err)) if !err.is_unexpected() => outcomes.push(Outcome {
                op,
                identifier: (op != PatchOp::Add).then(|| id.clone()),
                path,
                error: Some(err),
            }),
            Err(abort) => return Err(abort),
        }
    }
    Ok(outcomes)
}
