//! Request parameters (§1.1): query and body merged (query wins), typed the
//! way the server's JSON-schema validator types them, with its exact texts.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::errors::ApiError;
use crate::http::Request;

/// A raw parameter value: form/query strings or JSON body values.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Str(String),
    Bool(bool),
    Num(serde_json::Number),
    /// A form/query key given more than once: the server builds an array.
    Many(Vec<String>),
}

impl Raw {
    /// The value as the validator quotes it in error texts.
    fn shown(&self) -> String {
        match self {
            Raw::Str(s) => s.clone(),
            Raw::Bool(b) => if *b { "1" } else { "0" }.into(),
            Raw::Num(n) => n.to_string(),
            Raw::Many(_) => "ARRAY".into(),
        }
    }
}

/// Decode form bodies and query strings as pve-http-server does
/// (`PVE/APIServer/AnyEvent.pm` `decode_urlencoded`): pairs split on `&` and
/// `;`; each pair split on `=` Perl-style, so the value ends at a second raw
/// `=` and an empty or missing value is undefined; `+` is a space; a key given
/// twice collects its defined values into an array.
pub fn decode_urlencoded(raw: &[u8]) -> BTreeMap<String, Option<Raw>> {
    let mut out: BTreeMap<String, Option<Raw>> = BTreeMap::new();
    let mut pairs: Vec<&[u8]> = raw.split(|b| *b == b'&' || *b == b';').collect();
    // Perl's split drops trailing empty fields.
    while pairs.last().is_some_and(|p| p.is_empty()) {
        pairs.pop();
    }
    for pair in pairs {
        let mut fields: Vec<&[u8]> = pair.split(|b| *b == b'=').collect();
        while fields.last().is_some_and(|f| f.is_empty()) {
            fields.pop();
        }
        let key = fields.first().map(|k| form_decode(k)).unwrap_or_default();
        let Some(value) = fields.get(1).map(|v| form_decode(v)) else {
            out.insert(key, None);
            continue;
        };
        let merged = match out.remove(&key).flatten() {
            None => Raw::Str(value),
            Some(Raw::Many(mut all)) => {
                all.push(value);
                Raw::Many(all)
            }
            Some(old) => Raw::Many(vec![old.shown(), value]),
        };
        out.insert(key, Some(merged));
    }
    out
}

fn form_decode(raw: &[u8]) -> String {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

/// Why the body could not be turned into parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// 506: a content type other than form or JSON.
    UnsupportedType(String),
    /// 400: JSON that is not an object.
    BadJson,
}

/// Merged parameters of one request (path parameters included).
#[derive(Debug, Clone, Default)]
pub struct Params {
    map: BTreeMap<String, Raw>,
    /// Form/query keys present without a defined value (`key`, `key=`):
    /// the schema rejects unknown ones and skips the type check of known
    /// ones; a handler sees an empty string (so `description=` clears notes).
    undefined: BTreeSet<String>,
}

/// What a parameter must look like.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Bool,
    Int { min: Option<i64>, max: Option<i64> },
    Str { max_len: Option<usize> },
    Enum(&'static [&'static str]),
    Vmid,
    Node,
}

pub const STR: Kind = Kind::Str { max_len: None };
pub const INT: Kind = Kind::Int {
    min: None,
    max: None,
};

impl Params {
    /// Merge body and query (query wins, `_dc` dropped). Path parameters are
    /// added by [`Params::with_path`].
    pub fn from_request(req: &Request) -> Result<Params, BodyError> {
        let mut params = Params::default();
        if !req.body.is_empty() {
            let ct = req
                .header("content-type")
                .unwrap_or("application/x-www-form-urlencoded");
            let mime = ct
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            match mime.as_str() {
                "application/x-www-form-urlencoded" | "" => {
                    for (k, v) in decode_urlencoded(&req.body) {
                        params.set(k, v);
                    }
                }
                "application/json" => {
                    let v: Value =
                        serde_json::from_slice(&req.body).map_err(|_| BodyError::BadJson)?;
                    let Value::Object(obj) = v else {
                        return Err(BodyError::BadJson);
                    };
                    for (k, v) in obj {
                        let raw = match v {
                            Value::String(s) => Raw::Str(s),
                            Value::Bool(b) => Raw::Bool(b),
                            Value::Number(n) => Raw::Num(n),
                            Value::Null => continue,
                            other => Raw::Str(other.to_string()),
                        };
                        params.set(k, Some(raw));
                    }
                }
                _ => return Err(BodyError::UnsupportedType(mime)),
            }
        }
        for (k, v) in decode_urlencoded(req.query.as_bytes()) {
            params.set(k, v);
        }
        params.map.remove("_dc");
        params.undefined.remove("_dc");
        Ok(params)
    }

    /// A later source (the query) replaces the key, defined or not.
    fn set(&mut self, key: String, value: Option<Raw>) {
        match value {
            Some(v) => {
                self.undefined.remove(&key);
                self.map.insert(key, v);
            }
            None => {
                self.map.insert(key.clone(), Raw::Str(String::new()));
                self.undefined.insert(key);
            }
        }
    }

    /// Add the path parameters; a body/query parameter repeating one with a
    /// different value is a 400.
    pub fn with_path(mut self, path: &[(&str, String)]) -> Result<Params, ApiError> {
        let mut errors = BTreeMap::new();
        for (name, value) in path {
            if let Some(given) = self.map.get(*name)
                && given.shown() != *value
            {
                errors.insert(
                    name.to_string(),
                    "duplicate parameter (already defined in URI) with conflicting values!"
                        .to_string(),
                );
            }
            self.map.insert(name.to_string(), Raw::Str(value.clone()));
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(ApiError::Param(errors))
        }
    }

    /// Check every parameter against `schema` (plus `extra` for open-ended
    /// key sets such as config options). All bad parameters are reported.
    pub fn validate(
        &self,
        schema: &[(&str, Kind, bool)],
        extra: &dyn Fn(&str) -> Option<Kind>,
    ) -> Result<(), ApiError> {
        let mut errors = BTreeMap::new();
        for (name, raw) in &self.map {
            let kind = schema
                .iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, k, _)| *k)
                .or_else(|| extra(name));
            match kind {
                None => {
                    errors.insert(
                        name.clone(),
                        "property is not defined in schema and the schema does not allow additional properties".to_string(),
                    );
                }
                // An undefined value passes the type check (`check_prop`).
                Some(_) if self.undefined.contains(name) => {}
                Some(kind) => {
                    if let Err(text) = check(kind, raw) {
                        errors.insert(name.clone(), text);
                    }
                }
            }
        }
        for (name, _, required) in schema {
            if *required && (!self.map.contains_key(*name) || self.undefined.contains(*name)) {
                errors.insert(
                    name.to_string(),
                    "property is missing and it is not optional".to_string(),
                );
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Param(errors))
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// The value as a string (booleans as `1`/`0`).
    pub fn str(&self, name: &str) -> Option<String> {
        self.map.get(name).map(Raw::shown)
    }

    /// A validated boolean.
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.map.get(name).map(|r| match r {
            Raw::Bool(b) => *b,
            other => other.shown() == "1",
        })
    }

    /// A validated integer.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.map
            .get(name)
            .and_then(|r| r.shown().parse::<i64>().ok())
    }

    pub fn raw(&self, name: &str) -> Option<&Raw> {
        self.map.get(name)
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.map.keys()
    }
}

fn is_integer_text(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// One value against one kind: type → format → maxLength → min/max → enum.
fn check(kind: Kind, raw: &Raw) -> Result<(), String> {
    let shown = raw.shown();
    if let Raw::Many(_) = raw {
        let ty = match kind {
            Kind::Bool => "boolean",
            Kind::Int { .. } | Kind::Vmid => "integer",
            Kind::Str { .. } | Kind::Enum(_) | Kind::Node => "string",
        };
        return Err(format!("type check ('{ty}') failed - got ARRAY"));
    }
    match kind {
        Kind::Bool => match raw {
            Raw::Bool(_) => Ok(()),
            _ if shown == "1" || shown == "0" => Ok(()),
            _ => Err(format!("type check ('boolean') failed - got '{shown}'")),
        },
        Kind::Int { min, max } => {
            let ok_type = match raw {
                Raw::Num(n) => n.is_i64() || n.is_u64(),
                Raw::Str(s) => is_integer_text(s),
                Raw::Bool(_) => true,
                Raw::Many(_) => false,
            };
            if !ok_type {
                return Err(format!("type check ('integer') failed - got '{shown}'"));
            }
            let v: i64 = shown.parse().unwrap_or(i64::MAX);
            if let Some(min) = min
                && v < min
            {
                return Err(format!("value must have a minimum value of {min}"));
            }
            if let Some(max) = max
                && v > max
            {
                return Err(format!("value must have a maximum value of {max}"));
            }
            Ok(())
        }
        Kind::Str { max_len } => {
            if let Some(max) = max_len
                && shown.chars().count() > max
            {
                return Err(format!("value may only be {max} characters long"));
            }
            Ok(())
        }
        Kind::Enum(values) => {
            if values.contains(&shown.as_str()) {
                Ok(())
            } else {
                Err(format!(
                    "value '{shown}' does not have a value in the enumeration '{}'",
                    values.join(", ")
                ))
            }
        }
        Kind::Vmid => {
            let ok_type = match raw {
                Raw::Num(n) => n.is_i64() || n.is_u64(),
                Raw::Str(s) => is_integer_text(s),
                Raw::Bool(_) => true,
                Raw::Many(_) => false,
            };
            if !ok_type {
                return Err(format!("type check ('integer') failed - got '{shown}'"));
            }
            if valid_vmid_text(&shown) {
                Ok(())
            } else {
                Err("invalid format - value does not look like a valid VM ID\n".into())
            }
        }
        Kind::Node => {
            if valid_node_name(&shown) {
                Ok(())
            } else {
                Err("invalid format - value does not look like a valid node name\n".to_string())
            }
        }
    }
}

/// `[1-9]` followed by 2–8 digits: 100 … 999999999, no sign, no leading 0.
pub fn valid_vmid_text(s: &str) -> bool {
    let b = s.as_bytes();
    (3..=9).contains(&b.len()) && (b'1'..=b'9').contains(&b[0]) && b.iter().all(u8::is_ascii_digit)
}

/// Letters/digits/hyphen, not starting or ending with a hyphen.
pub fn valid_node_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmid_texts() {
        for bad in ["99", "0100", "+100", "1000000000"] {
            assert_eq!(
                check(Kind::Vmid, &Raw::Str(bad.into())).unwrap_err(),
                "invalid format - value does not look like a valid VM ID\n",
                "{bad}"
            );
        }
        assert_eq!(
            check(Kind::Vmid, &Raw::Str("abc".into())).unwrap_err(),
            "type check ('integer') failed - got 'abc'"
        );
        assert!(check(Kind::Vmid, &Raw::Str("999999999".into())).is_ok());
    }

    #[test]
    fn booleans_only_one_and_zero_in_forms() {
        assert!(check(Kind::Bool, &Raw::Str("1".into())).is_ok());
        assert_eq!(
            check(Kind::Bool, &Raw::Str("true".into())).unwrap_err(),
            "type check ('boolean') failed - got 'true'"
        );
        assert!(check(Kind::Bool, &Raw::Bool(true)).is_ok());
    }
}
