//! Request bodies parsed the way Guacamole's JSON framework does: unknown
//! properties ignored, numbers/booleans coerced to strings, and wrong types or
//! malformed JSON rejected with a parser message (400 text/plain).

use std::collections::BTreeMap;

use serde_json::Value;

use super::attributes::RawAttributes;
use super::errors::Fail;
use super::seed::GroupType;

/// Parse raw bytes; an empty body reads as JSON `null`.
pub fn parse_json(bytes: &[u8]) -> Result<Value, Fail> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes).map_err(|e| {
        Fail::BadJson(format!(
            "Unexpected character or end-of-input while parsing JSON: {e}"
        ))
    })
}

fn type_error(expected: &str, got: &Value) -> Fail {
    let found = match got {
        Value::Array(_) => "Array value (token `JsonToken.START_ARRAY`)",
        Value::Object(_) => "Object value (token `JsonToken.START_OBJECT`)",
        _ => "value",
    };
    Fail::BadJson(format!(
        "Cannot deserialize value of type `{expected}` from {found}"
    ))
}

/// A string-typed property: null stays absent, scalars are coerced.
pub fn string_of(v: Option<&Value>) -> Result<Option<String>, Fail> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(type_error("java.lang.String", other)),
    }
}

/// A `Map<String, String>` property whose values may be null.
pub fn string_map(v: Option<&Value>) -> Result<Option<RawAttributes>, Fail> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => {
            let mut out = BTreeMap::new();
            for (k, v) in map {
                out.insert(k.clone(), string_of(Some(v))?);
            }
            Ok(Some(out))
        }
        Some(other) => Err(type_error(
            "java.util.Map<java.lang.String,java.lang.String>",
            other,
        )),
    }
}

fn integer_of(v: Option<&Value>) -> Result<Option<i64>, Fail> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| type_error("int", &Value::Null)),
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| Fail::BadJson(format!("Cannot deserialize value of type `int` from String \"{s}\": not a valid `int` value"))),
        Some(other) => Err(type_error("int", other)),
    }
}

fn object_of(v: &Value, what: &str) -> Result<Option<serde_json::Map<String, Value>>, Fail> {
    match v {
        Value::Null => Ok(None),
        Value::Object(m) => Ok(Some(m.clone())),
        other => Err(type_error(what, other)),
    }
}

/// `APIConnection` as deserialised from a request.
#[derive(Clone, Default, PartialEq)]
pub struct ConnectionBody {
    pub name: Option<String>,
    pub parent: Option<String>,
    pub protocol: Option<String>,
    pub parameters: Option<RawAttributes>,
    pub attributes: Option<RawAttributes>,
    pub active_connections: Option<i64>,
    pub last_active: Option<i64>,
}

impl std::fmt::Debug for ConnectionBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Parameters hold secrets: names only.
        f.debug_struct("ConnectionBody")
            .field("name", &self.name)
            .field("parent", &self.parent)
            .field("protocol", &self.protocol)
            .field(
                "parameters",
                &self
                    .parameters
                    .as_ref()
                    .map(|p| p.keys().collect::<Vec<_>>()),
            )
            .finish_non_exhaustive()
    }
}

impl ConnectionBody {
    /// `None` for a JSON `null` (or empty) body.
    pub fn parse(v: &Value) -> Result<Option<ConnectionBody>, Fail> {
        let Some(m) = object_of(v, "org.apache.guacamole.rest.connection.APIConnection")? else {
            return Ok(None);
        };
        Ok(Some(ConnectionBody {
            name: string_of(m.get("name"))?,
            parent: string_of(m.get("parentIdentifier"))?,
            protocol: string_of(m.get("protocol"))?,
            parameters: string_map(m.get("parameters"))?,
            attributes: string_map(m.get("attributes"))?,
            active_connections: integer_of(m.get("activeConnections"))?,
            last_active: integer_of(m.get("lastActive"))?,
        }))
    }
}

/// `APIConnectionGroup` as deserialised from a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupBody {
    pub name: Option<String>,
    pub parent: Option<String>,
    pub group_type: Option<GroupType>,
    pub attributes: Option<RawAttributes>,
    pub active_connections: Option<i64>,
}

impl GroupBody {
    pub fn parse(v: &Value) -> Result<Option<GroupBody>, Fail> {
        let Some(m) = object_of(
            v,
            "org.apache.guacamole.rest.connectiongroup.APIConnectionGroup",
        )?
        else {
            return Ok(None);
        };
        let group_type = match m.get("type") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s == "ORGANIZATIONAL" => Some(GroupType::Organizational),
            Some(Value::String(s)) if s == "BALANCING" => Some(GroupType::Balancing),
            Some(other) => {
                return Err(Fail::BadJson(format!(
                    "Cannot deserialize value of type `org.apache.guacamole.net.auth.ConnectionGroup$Type` from {other}: not one of the values accepted for Enum class: [ORGANIZATIONAL, BALANCING]"
                )));
            }
        };
        Ok(Some(GroupBody {
            name: string_of(m.get("name"))?,
            parent: string_of(m.get("parentIdentifier"))?,
            group_type,
            attributes: string_map(m.get("attributes"))?,
            active_connections: integer_of(m.get("activeConnections"))?,
        }))
    }
}

/// `APIUser` as deserialised from a request.
#[derive(Clone, Default, PartialEq)]
pub struct UserBody {
    pub username: Option<String>,
    pub password: Option<String>,
    pub disabled: Option<bool>,
    pub attributes: Option<RawAttributes>,
}

impl std::fmt::Debug for UserBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserBody")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

fn bool_of(v: Option<&Value>) -> Result<Option<bool>, Fail> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
        Some(other) => Err(type_error("boolean", other)),
    }
}

impl UserBody {
    pub fn parse(v: &Value) -> Result<Option<UserBody>, Fail> {
        let Some(m) = object_of(v, "org.apache.guacamole.rest.user.APIUser")? else {
            return Ok(None);
        };
        Ok(Some(UserBody {
            username: string_of(m.get("username"))?,
            password: string_of(m.get("password"))?,
            disabled: bool_of(m.get("disabled"))?,
            attributes: string_map(m.get("attributes"))?,
        }))
    }
}

/// `APIUserGroup` as deserialised from a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserGroupBody {
    pub identifier: Option<String>,
    pub disabled: Option<bool>,
    pub attributes: Option<RawAttributes>,
}

impl UserGroupBody {
    pub fn parse(v: &Value) -> Result<Option<UserGroupBody>, Fail> {
        let Some(m) = object_of(v, "org.apache.guacamole.rest.usergroup.APIUserGroup")? else {
            return Ok(None);
        };
        Ok(Some(UserGroupBody {
            identifier: string_of(m.get("identifier"))?,
            disabled: bool_of(m.get("disabled"))?,
            attributes: string_map(m.get("attributes"))?,
        }))
    }
}

/// The JSON-Patch operations Guacamole's enum knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOp {
    Add,
    Remove,
    Replace,
    Copy,
    Move,
    Test,
}

impl PatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            PatchOp::Add => "add",
            PatchOp::Remove => "remove",
            PatchOp::Replace => "replace",
            PatchOp::Copy => "copy",
            PatchOp::Move => "move",
            PatchOp::Test => "test",
        }
    }
}

/// One `{"op","path","value"}` entry.
#[derive(Clone, PartialEq)]
pub struct PatchEntry {
    pub op: Option<PatchOp>,
    pub path: Option<String>,
    pub value: Value,
}

impl std::fmt::Debug for PatchEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `value` may be a whole connection with its secrets.
        f.debug_struct("PatchEntry")
            .field("op", &self.op)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Parse a patch array; unknown entry members or op names are parser errors.
pub fn parse_patches(v: &Value) -> Result<Vec<PatchEntry>, Fail> {
    let entries = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a,
        other => {
            return Err(type_error(
                "java.util.List<org.apache.guacamole.rest.patch.APIPatch>",
                other,
            ));
        }
    };
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Object(m) = entry else {
            return Err(type_error(
                "org.apache.guacamole.rest.patch.APIPatch",
                entry,
            ));
        };
        if let Some(unknown) = m
            .keys()
            .find(|k| !matches!(k.as_str(), "op" | "path" | "value"))
        {
            return Err(Fail::BadJson(format!(
                "Unrecognized field \"{unknown}\" (class org.apache.guacamole.rest.patch.APIPatch), not marked as ignorable"
            )));
        }
        let op = match m.get("op") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(match s.as_str() {
                "add" => PatchOp::Add,
                "remove" => PatchOp::Remove,
                "replace" => PatchOp::Replace,
                "copy" => PatchOp::Copy,
                "move" => PatchOp::Move,
                "test" => PatchOp::Test,
                other => {
                    return Err(Fail::BadJson(format!(
                        "Cannot deserialize value of type `org.apache.guacamole.rest.APIPatch$Operation` from String \"{other}\": not one of the values accepted for Enum class: [add, remove, replace, copy, move, test]"
                    )));
                }
            }),
            Some(other) => {
                return Err(type_error(
                    "org.apache.guacamole.rest.APIPatch$Operation",
                    other,
                ));
            }
        };
        out.push(PatchEntry {
            op,
            path: string_of(m.get("path"))?,
            value: m.get("value").cloned().unwrap_or(Value::Null),
        });
    }
    Ok(out)
}
