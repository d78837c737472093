//! Request dispatch: base path, tokens, session resolution (with the
//! per-version inactivity-timer rules), data sources, and every resource
//! path. Each arm names its endpoint template for the request log.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::body::{ConnectionBody, GroupBody, UserBody, UserGroupBody, parse_json, parse_patches};
use super::errors::{ErrorType, Fail, GuacError};
use super::grants::Grantee;
use super::groups::PermissionFilter;
use super::model::{Actor, connection_json, group_json, root_json, user_group_json, user_json};
use super::patch::{self, Directory};
use super::permissions::{ObjectKind, ObjectPermission};
use super::schema;
use super::users::Membership;
use super::{Config, Inner};
use crate::http::{Request, Response, parse_form};

type Routed = (String, Result<Response, Fail>);

fn json_ok(value: Value) -> Result<Response, Fail> {
    Ok(Response::json(200, &value))
}

fn no_content() -> Result<Response, Fail> {
    Ok(Response::new(204))
}

fn route_name(method: &str, template: &str) -> String {
    format!("{method} {template}")
}

/// `Guacamole-Token` header (non-empty) wins over `?token=`.
pub fn token_of(req: &Request) -> Option<String> {
    if let Some(h) = req.header("guacamole-token").filter(|h| !h.is_empty()) {
        return Some(h.to_string());
    }
    req.query_pairs()
        .into_iter()
        .find(|(k, v)| k == "token" && !v.is_empty())
        .map(|(_, v)| v)
}

/// The JSON entity of a POST/PUT/PATCH: 415 for a body of another media
/// type, 400 text/plain when unparsable, `null` when empty.
fn json_body(req: &Request) -> Result<Value, Fail> {
    if req.body.is_empty() {
        return Ok(Value::Null);
    }
    let is_json = req.header("content-type").is_some_and(|ct| {
        ct.trim()
            .to_ascii_lowercase()
            .starts_with("application/json")
    });
    if !is_json {
        return Err(Fail::UnsupportedMediaType);
    }
    parse_json(&req.body)
}

fn permission_filter(req: &Request) -> Result<PermissionFilter, Fail> {
    let mut perms = Vec::new();
    for (k, v) in req.query_pairs() {
        if k == "permission" {
            perms.push(ObjectPermission::parse(&v).ok_or(Fail::NoResource)?);
        }
    }
    Ok(PermissionFilter(perms))
}

pub fn dispatch(inner: &mut Inner, now: Duration, req: &Request) -> Routed {
    let base = inner.config.base_path.clone();
    let Some(rest) = req.path.strip_prefix(base.as_str()) else {
        return (
            route_name(&req.method, "(outside base)"),
            Err(Fail::NoResource),
        );
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return (
            route_name(&req.method, "(outside base)"),
            Err(Fail::NoResource),
        );
    }
    if req.oversized || req.body.len() > inner.config.max_request_bytes {
        return (
            route_name(&req.method, "(too large)"),
            Err(GuacError::too_large().into()),
        );
    }
    let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let segs: Vec<&str> = match segs.as_slice() {
        [head @ .., ""] => head.to_vec(),
        _ => segs,
    };
    let method = req.method.as_str();
    match segs.as_slice() {
        ["tokens"] => (
            route_name(method, "/tokens"),
            if method == "POST" {
                login(inner, now, req)
            } else {
                Err(Fail::MethodNotAllowed)
            },
        ),
        ["tokens", token] => (
            route_name(method, "/tokens/{token}"),
            if method == "DELETE" {
                inner.sessions.sweep(now, inner.config.session_timeout);
                if inner.sessions.remove(token) {
                    no_content()
                } else {
                    Err(GuacError::new(404, ErrorType::NotFound, "No such token.").into())
                }
            } else {
                Err(Fail::MethodNotAllowed)
            },
        ),
        ["session", more @ ..] => session(inner, now, req, more),
        ["patches"] | ["languages"] if method == "GET" => (
            route_name(method, &format!("/{}", segs[0])),
            json_ok(if segs[0] == "patches" {
                json!([])
            } else {
                json!({"en": "English"})
            }),
        ),
        _ => (route_name(method, "(unknown)"), Err(Fail::NoResource)),
    }
}

fn login(inner: &mut Inner, now: Duration, req: &Request) -> Result<Response, Fail> {
    let is_form = req.header("content-type").is_some_and(|ct| {
        ct.trim()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    if !is_form {
        return Err(GuacError::internal().into());
    }
    let ip = req.peer.ip();
    let ban = inner
        .config
        .login_ban
        .clone()
        .filter(|_| inner.config.version.is_1_6());
    if let Some(b) = &ban
        && inner.bans.is_banned(
            ip,
            now,
            b.max_attempts,
            Duration::from_secs(b.duration_secs),
        )
    {
        return Err(GuacError::banned().into());
    }
    let form = parse_form(&req.body);
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    inner.sessions.sweep(now, inner.config.session_timeout);
    if let Some(token) = field("token")
        && let Some(session) = inner.sessions.get(&token)
    {
        let username = session.username.clone();
        inner.sessions.touch(&token, now);
        return json_ok(auth_result(&inner.config, &token, &username));
    }
    let (username, password) = if field("username").is_none() && field("password").is_none() {
        basic_credentials(req).map_or((None, None), |(u, p)| (Some(u), Some(p)))
    } else {
        (field("username"), field("password"))
    };
    let valid = match (&username, &password) {
        (Some(u), Some(p)) => inner
            .store
            .users
            .get(u)
            .is_some_and(|user| !user.disabled && &user.password == p),
        _ => false,
    };
    if valid {
        let username = username.unwrap_or_default();
        inner.bans.record_success(ip);
        let token = inner.sessions.create(&username, now);
        return json_ok(auth_result(&inner.config, &token, &username));
    }
    // A failed login also ends the session of any token it carried.
    if let Some(t) = token_of(req) {
        inner.sessions.remove(&t);
    }
    if ban.is_some() {
        inner.bans.record_failure(ip, now);
    }
    Err(if username.is_none() {
        GuacError::no_auth()
    } else {
        GuacError::invalid_login()
    }
    .into())
}

fn basic_credentials(req: &Request) -> Option<(String, String)> {
    use base64::Engine;
    let header = req.header("authorization")?;
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn auth_result(config: &Config, token: &str, username: &str) -> Value {
    json!({
        "authToken": token,
        "username": username,
        "dataSource": config.data_source,
        "availableDataSources": [config.data_source, format!("{}-shared", config.data_source)],
    })
}

fn session(inner: &mut Inner, now: Duration, req: &Request, segs: &[&str]) -> Routed {
    let method = req.method.as_str();
    let template_hint = match segs {
        [] => "/session".to_string(),
        ["data", ds, ..] if *ds == inner.config.data_source => "/session/data/{ds}".into(),
        _ => "/session/…".into(),
    };
    inner.sessions.sweep(now, inner.config.session_timeout);
    let Some(token) = token_of(req).filter(|t| inner.sessions.get(t).is_some()) else {
        return (
            route_name(method, &template_hint),
            Err(GuacError::session_denied().into()),
        );
    };
    let username = inner
        .sessions
        .get(&token)
        .map(|s| s.username.clone())
        .unwrap_or_default();
    let version = inner.config.version;
    // ≤1.5: any resolution refreshes; 1.6: only use of the session's data.
    let uses_data = matches!(
        segs.first(),
        Some(&"data") | Some(&"ext") | Some(&"tunnels")
    );
    if !version.is_1_6() || uses_data {
        inner.sessions.touch(&token, now);
    }
    match segs {
        [] => (
            route_name(method, "/session"),
            match method {
                "DELETE" => {
                    inner.sessions.remove(&token);
                    no_content()
                }
                "HEAD" if version.is_1_6() => no_content(),
                _ => Err(Fail::MethodNotAllowed),
            },
        ),
        ["data", ds, rest @ ..] => {
            let ds = ds.to_string();
            if ds == inner.config.data_source {
                let is_head = method == "HEAD";
                let effective = if is_head { "GET" } else { method };
                let (route, mut result) = data(inner, &username, effective, req, rest);
                if is_head && let Ok(r) = &mut result {
                    r.body = crate::http::Body::Bytes(Vec::new());
                }
                (route.replacen(effective, method, 1), result)
            } else if ds == format!("{}-shared", inner.config.data_source) {
                shared_data(inner, &username, method, rest)
            } else {
                (
                    route_name(method, "/session/data/{ds}"),
                    Err(GuacError::new(
                        404,
                        ErrorType::NotFound,
                        format!("Session not associated with authentication provider \"{ds}\"."),
                    )
                    .into()),
                )
            }
        }
        _ => (route_name(method, "/session/…"), Err(Fail::NoResource)),
    }
}

/// The `-shared` data source only serves sharing links: empty directories.
fn shared_data(inner: &Inner, username: &str, method: &str, segs: &[&str]) -> Routed {
    let route = route_name(
        method,
        &format!("/session/data/{{ds}}-shared/{}", segs.join("/")),
    );
    let result = match (method, segs) {
        ("GET", ["connections"] | ["connectionGroups"] | ["users"] | ["userGroups"]) => {
            json_ok(json!({}))
        }
        ("GET", ["connectionGroups", "ROOT"] | ["connectionGroups", "ROOT", "tree"]) => {
            json_ok(root_json())
        }
        ("GET", ["self"]) => json_ok(json!({"username": username, "attributes": {}})),
        ("GET", ["self", "permissions" | "effectivePermissions"]) => {
            json_ok(super::permissions::PermissionSet::default().to_json())
        }
        ("GET", _) => Err(Fail::NoResource),
        _ => {
            let _ = inner;
            Err(GuacError::denied().into())
        }
    };
    (route, result)
}

fn data(inner: &mut Inner, username: &str, method: &str, req: &Request, segs: &[&str]) -> Routed {
    let version = inner.config.version;
    let actor = inner.store.actor(username);
    let store = &mut inner.store;
    let p = |t: &str| route_name(method, &format!("/session/data/{{ds}}{t}"));
    match segs {
        ["connections"] => (
            p("/connections"),
            match method {
                "GET" => permission_filter(req).and_then(|f| {
                    let map: Map<String, Value> = store
                        .connections
                        .values()
                        .filter(|c| {
                            f.admits(store, &actor, ObjectKind::Connection, &c.id.to_string())
                        })
                        .map(|c| (c.id.to_string(), connection_json(c)))
                        .collect();
                    json_ok(Value::Object(map))
                }),
                "POST" => json_body(req)
                    .and_then(|v| ConnectionBody::parse(&v))
                    .and_then(|b| store.create_connection(&actor, b, version))
                    .and_then(|(_, echo)| json_ok(echo)),
                "PATCH" => directory_patch(store, username, Directory::Connections, req, version),
                _ => Err(Fail::MethodNotAllowed),
            },
        ),
        ["connections", id] => (
            p("/connections/{id}"),
            (|| {
                let current = store.readable_connection(&actor, id)?;
                match method {
                    "GET" => json_ok(connection_json(current)),
                    "PUT" => {
                        let body = ConnectionBody::parse(&json_body(req)?)?;
                        store.update_connection(&actor, id, body, version, true)?;
                        no_content()
                    }
                    "DELETE" => {
                        store.delete_connection(&actor, id)?;
                        no_content()
                    }
                    _ => Err(Fail::MethodNotAllowed),
                }
            })(),
        ),
        ["connections", id, "parameters"] => (
            p("/connections/{id}/parameters"),
            (|| {
                let c = store.readable_connection(&actor, id)?;
                if method != "GET" {
                    return Err(Fail::MethodNotAllowed);
                }
                if !store.may(
                    &actor,
                    ObjectKind::Connection,
                    &c.id.to_string(),
                    ObjectPermission::Update,
                ) {
                    return Err(GuacError::new(
                        403,
                        ErrorType::PermissionDenied,
                        "Permission to read connection parameters denied.",
                    )
                    .into());
                }
                json_ok(json!(c.parameters))
            })(),
        ),
        ["connections", id, sub @ ("sharingProfiles" | "history")] => (
            p(&format!("/connections/{{id}}/{sub}")),
            (|| {
                store.readable_connection(&actor, id)?;
                match method {
                    "GET" if *sub == "history" => json_ok(json!([])),
                    "GET" => json_ok(json!({})),
                    _ => Err(Fail::MethodNotAllowed),
                }
            })(),
        ),
        ["connectionGroups"] => (
            p("/connectionGroups"),
            match method {
                "GET" => permission_filter(req).and_then(|f| {
                    let map: Map<String, Value> = store
                        .groups
                        .values()
                        .filter(|g| {
                            f.admits(
                                store,
                                &actor,
                                ObjectKind::ConnectionGroup,
                                &g.id.to_string(),
                            )
                        })
                        .map(|g| (g.id.to_string(), group_json(g)))
                        .collect();
                    json_ok(Value::Object(map))
                }),
                "POST" => json_body(req)
                    .and_then(|v| GroupBody::parse(&v))
                    .and_then(|b| store.create_group(&actor, b, version))
                    .and_then(|(_, echo)| json_ok(echo)),
                "PATCH" => {
                    directory_patch(store, username, Directory::ConnectionGroups, req, version)
                }
                _ => Err(Fail::MethodNotAllowed),
            },
        ),
        ["connectionGroups", id] => (
            p("/connectionGroups/{id}"),
            (|| {
                let group = if *id == "ROOT" {
                    None
                } else {
                    Some(store.readable_group(&actor, id)?.clone())
                };
                match method {
                    "GET" => json_ok(group.as_ref().map_or_else(root_json, group_json)),
                    "PUT" => {
                        let body = GroupBody::parse(&json_body(req)?)?;
                        store.update_group(&actor, id, body, true)?;
                        no_content()
                    }
                    "DELETE" => {
                        store.delete_group(&actor, id)?;
                        no_content()
                    }
                    _ => Err(Fail::MethodNotAllowed),
                }
            })(),
        ),
        ["connectionGroups", id, "tree"] => (
            p("/connectionGroups/{id}/tree"),
            (|| {
                let root = if *id == "ROOT" {
                    None
                } else {
                    Some(store.readable_group(&actor, id)?.id)
                };
                if method != "GET" {
                    return Err(Fail::MethodNotAllowed);
                }
                let filter = permission_filter(req)?;
                json_ok(store.tree_json(&actor, root, &filter))
            })(),
        ),
        ["users"] => (
            p("/users"),
            match method {
                "GET" => {
                    let map: Map<String, Value> = store
                        .users
                        .values()
                        .filter(|u| {
                            store.may(
                                &actor,
                                ObjectKind::User,
                                &u.username,
                                ObjectPermission::Read,
                            )
                        })
                        .map(|u| (u.username.clone(), user_json(u, version)))
                        .collect();
                    json_ok(Value::Object(map))
                }
                "POST" => json_body(req)
                    .and_then(|v| UserBody::parse(&v))
                    .and_then(|b| store.create_user(&actor, b, version))
                    .and_then(|(_, echo)| json_ok(echo)),
                "PATCH" => directory_patch(store, username, Directory::Users, req, version),
                _ => Err(Fail::MethodNotAllowed),
            },
        ),
        ["users", name, rest @ ..] => {
            let route = p(&format!("/users/{{username}}{}", suffix(rest)));
            (
                route,
                user_routes(store, &actor, method, req, name, rest, version, false),
            )
        }
        ["self", rest @ ..] => {
            let route = p(&format!("/self{}", suffix(rest)));
            (
                route,
                user_routes(store, &actor, method, req, username, rest, version, true),
            )
        }
        ["userGroups"] => (
            p("/userGroups"),
            match method {
                "GET" => {
                    let map: Map<String, Value> = store
                        .user_groups
                        .values()
                        .filter(|g| {
                            store.may(
                                &actor,
                                ObjectKind::UserGroup,
                                &g.identifier,
                                ObjectPermission::Read,
                            )
                        })
                        .map(|g| (g.identifier.clone(), user_group_json(g, version)))
                        .collect();
                    json_ok(Value::Object(map))
                }
                "POST" => json_body(req)
                    .and_then(|v| UserGroupBody::parse(&v))
                    .and_then(|b| store.create_user_group(&actor, b, version))
                    .and_then(|(_, echo)| json_ok(echo)),
                "PATCH" => directory_patch(store, username, Directory::UserGroups, req, version),
                _ => Err(Fail::MethodNotAllowed),
            },
        ),
        ["userGroups", name, rest @ ..] => (
            p(&format!("/userGroups/{{group}}{}", suffix(rest))),
            (|| {
                let group = store.readable_user_group(&actor, name)?.clone();
                match (method, rest) {
                    ("GET", []) => json_ok(user_group_json(&group, version)),
                    ("PUT", []) => {
                        let body = UserGroupBody::parse(&json_body(req)?)?;
                        store.update_user_group(&actor, name, body, version)?;
                        no_content()
                    }
                    ("DELETE", []) => {
                        store.delete_user_group(&actor, name, true)?;
                        no_content()
                    }
                    ("GET", ["permissions"]) => json_ok(group.permissions.to_json()),
                    ("PATCH", ["permissions"]) => {
                        let entries = parse_patches(&json_body(req)?)?;
                        store.patch_permissions(
                            &actor,
                            &Grantee::UserGroup(name.to_string()),
                            &entries,
                            version,
                        )?;
                        no_content()
                    }
                    (m, [set @ ("memberUsers" | "memberUserGroups" | "userGroups")]) => {
                        let kind = match *set {
                            "memberUsers" => Membership::MemberUsers,
                            "memberUserGroups" => Membership::MemberGroups,
                            _ => Membership::ParentGroups,
                        };
                        match m {
                            "GET" => json_ok(json!(store.membership(kind, name))),
                            "PATCH" => {
                                let entries = parse_patches(&json_body(req)?)?;
                                store.patch_membership(&actor, kind, name, &entries)?;
                                no_content()
                            }
                            _ => Err(Fail::MethodNotAllowed),
                        }
                    }
                    (_, [] | ["permissions"]) => Err(Fail::MethodNotAllowed),
                    _ => Err(Fail::NoResource),
                }
            })(),
        ),
        ["schema", what] => (
            p(&format!("/schema/{what}")),
            (|| {
                let value = match *what {
                    "protocols" => schema::protocols(version),
                    "connectionAttributes" => schema::connection_attributes(),
                    "connectionGroupAttributes" => schema::connection_group_attributes(),
                    "userAttributes" => schema::user_attributes(version),
                    "userGroupAttributes" => schema::user_group_attributes(version),
                    "sharingProfileAttributes" => json!([]),
                    "userPreferenceAttributes" if version.is_1_6() => json!([]),
                    _ => return Err(Fail::NoResource),
                };
                if method != "GET" {
                    return Err(Fail::MethodNotAllowed);
                }
                json_ok(value)
            })(),
        ),
        ["sharingProfiles"] | ["activeConnections"] => (
            p(&format!("/{}", segs[0])),
            match method {
                "GET" => json_ok(json!({})),
                _ => Err(Fail::MethodNotAllowed),
            },
        ),
        _ => (p("/(unknown)"), Err(Fail::NoResource)),
    }
}

fn suffix(rest: &[&str]) -> String {
    rest.iter().map(|s| format!("/{s}")).collect()
}

/// `/users/{username}/…` and `/self/…` (which needs no READ on oneself).
#[allow(clippy::too_many_arguments)]
fn user_routes(
    store: &mut super::model::Store,
    actor: &Actor,
    method: &str,
    req: &Request,
    name: &str,
    rest: &[&str],
    version: super::seed::GuacVersion,
    is_self: bool,
) -> Result<Response, Fail> {
    (|| {
        let user = if is_self {
            store
                .users
                .get(name)
                .cloned()
                .ok_or_else(|| GuacError::not_found(name))?
        } else {
            store.readable_user(actor, name)?.clone()
        };
        match (method, rest) {
            ("GET", []) => json_ok(user_json(&user, version)),
            ("PUT", []) => {
                let body = UserBody::parse(&json_body(req)?)?;
                store.update_user(actor, name, body, version)?;
                no_content()
            }
            ("DELETE", []) if !is_self => {
                store.delete_user(actor, name, true)?;
                no_content()
            }
            ("GET", ["permissions"]) => json_ok(user.permissions.to_json()),
            ("PATCH", ["permissions"]) => {
                let entries = parse_patches(&json_body(req)?)?;
                store.patch_permissions(
                    actor,
                    &Grantee::User(name.to_string()),
                    &entries,
                    version,
                )?;
                no_content()
            }
            ("GET", ["effectivePermissions"]) => {
                json_ok(store.effective_permissions(name).to_json())
            }
            ("GET", ["userGroups"]) => {
                json_ok(json!(store.membership(Membership::GroupsOfUser, name)))
            }
            ("PATCH", ["userGroups"]) => {
                let entries = parse_patches(&json_body(req)?)?;
                store.patch_membership(actor, Membership::GroupsOfUser, name, &entries)?;
                no_content()
            }
            (_, [] | ["permissions"] | ["effectivePermissions"] | ["userGroups"]) => {
                Err(Fail::MethodNotAllowed)
            }
            _ => Err(Fail::NoResource),
        }
    })()
}

fn directory_patch(
    store: &mut super::model::Store,
    username: &str,
    dir: Directory,
    req: &Request,
    version: super::seed::GuacVersion,
) -> Result<Response, Fail> {
    let raw = json_body(req)?;
    match patch::apply(store, username, dir, &raw, version)? {
        Some(body) => json_ok(body),
        None => no_content(),
    }
}
