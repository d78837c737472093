// Contract tests for the Guacamole emulator: one or more per rule of the
// spec's §12 "Emulator must" list (test names start with `rNN_`), driven
// with raw HTTP requests and asserting the statuses, bodies and error texts
// the spec gives. Run directly against the handler here, and over HTTPS
// through the lab by `guacamole_contract_https.rs`, which includes this file
// (so: plain `//` comments, no inner attributes).

mod guacamole_support;

use guacamole_support::{Guac, minutes};
use pve_guac_lab::guacamole::{
    ConnectionGroupSeed, ConnectionSeed, GuacVersion, GuacamoleSeed, LoginBanSeed, UserGroupSeed,
    UserSeed,
};
use serde_json::{Value, json};

fn is_upper_hex_64(t: &str) -> bool {
    t.len() == 64
        && t.chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
}

fn conn_body(name: &str, parent: Option<&str>) -> Value {
    let mut v =
        json!({"name": name, "protocol": "ssh", "parameters": {"hostname": "h"}, "attributes": {}});
    if let Some(p) = parent {
        v["parentIdentifier"] = json!(p);
    }
    v
}

// ---- rule 1: base path, token carriers, never 401 -------------------------

#[test]
fn r01_default_base_is_guacamole_api_and_outside_is_404() {
    let g = Guac::default_v16();
    assert_eq!(g.base, "/guacamole/api");
    let t = g.admin();
    g.get(&t, "/connections").assert_status(200);
    let r = g.raw(
        "GET",
        "/api/session/data/postgresql/connections",
        &[("Guacamole-Token", &t)],
        b"",
    );
    assert_eq!(r.status, 404);
    assert_eq!(g.raw("GET", "/guacamole/apix/tokens", &[], b"").status, 404);
}

#[test]
fn r01_base_path_api_is_selectable() {
    let g = Guac::new(GuacamoleSeed::default().base_path("/api"));
    assert_eq!(g.base, "/api");
    let r = g.raw(
        "POST",
        "/api/tokens",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"username=guacadmin&password=guacadmin",
    );
    assert_eq!(r.status, 200);
    let r = g.raw(
        "POST",
        "/guacamole/api/tokens",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"username=guacadmin&password=guacadmin",
    );
    assert_eq!(r.status, 404);
}

#[test]
fn r01_token_from_header_wins_over_query() {
    let g = Guac::default_v16();
    let t = g.admin();
    let path = g.data("/self");
    // Header valid, query bogus → header used.
    let r = g.send(
        "GET",
        &format!("{path}?token=BOGUS"),
        &[("Guacamole-Token", &t)],
        b"",
    );
    assert_eq!(r.status, 200);
    // Header bogus, query valid → header still wins → 403.
    let r = g.send(
        "GET",
        &format!("{path}?token={t}"),
        &[("Guacamole-Token", "BOGUS")],
        b"",
    );
    r.assert_error(403, "PERMISSION_DENIED", "Permission Denied.");
    // Query only, and an empty header counts as absent.
    assert_eq!(
        g.send("GET", &format!("{path}?token={t}"), &[], b"").status,
        200
    );
    assert_eq!(
        g.send(
            "GET",
            &format!("{path}?token={t}"),
            &[("Guacamole-Token", "")],
            b""
        )
        .status,
        200
    );
}

#[test]
fn r01_never_answers_401() {
    let g = Guac::default_v16();
    let t = g.admin();
    let probes = [
        g.send("GET", "/session/data/postgresql/connections", &[], b""),
        g.send(
            "GET",
            "/session/nothing/here",
            &[("Guacamole-Token", "X")],
            b"",
        ),
        g.login_form("username=guacadmin&password=wrong"),
        g.send("POST", "/tokens", &[], b""),
        g.send("DELETE", "/tokens/NOPE", &[], b""),
        g.get(&t, "/connections/999"),
        g.send("HEAD", "/session", &[], b""),
    ];
    for r in probes {
        assert_ne!(r.status, 401);
    }
}

// ---- rule 2: login ------------------------------------------------------

#[test]
fn r02_login_returns_token_user_and_data_sources() {
    let g = Guac::default_v16();
    let r = g.login_form("username=guacadmin&password=guacadmin");
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type(), Some("application/json"));
    let v = r.json();
    assert!(is_upper_hex_64(v["authToken"].as_str().unwrap()), "{v}");
    assert_eq!(v["username"], "guacadmin");
    assert_eq!(v["dataSource"], "postgresql");
    assert_eq!(
        v["availableDataSources"],
        json!(["postgresql", "postgresql-shared"])
    );
    // Every login is a new, independent session.
    let a = g.admin();
    let b = g.admin();
    assert_ne!(a, b);
    assert_eq!(g.server.sessions_of("guacadmin"), 3);
}

#[test]
fn r02_wrong_credentials_are_invalid_login_with_expected_fields() {
    let g = Guac::default_v16();
    for form in [
        "username=guacadmin&password=nope",
        "username=nobody&password=guacadmin",
    ] {
        let v = g
            .login_form(form)
            .assert_error(403, "INVALID_CREDENTIALS", "Invalid login");
        assert_eq!(
            v["expected"],
            json!([{"name": "username", "type": "USERNAME"}, {"name": "password", "type": "PASSWORD"}])
        );
        assert_eq!(
            v["translatableMessage"],
            json!({"key": "APP.TEXT_UNTRANSLATED", "variables": {"MESSAGE": "Invalid login"}})
        );
        assert!(v["patches"].is_null() && v.get("patches").is_some());
    }
}

#[test]
fn r02_basic_auth_is_used_only_without_both_form_fields() {
    let g = Guac::default_v16();
    let basic = "Basic Z3VhY2FkbWluOmd1YWNhZG1pbg=="; // guacadmin:guacadmin
    let form = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Authorization", basic),
    ];
    let r = g.send("POST", "/tokens", &form, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["username"], "guacadmin");
    // A present-but-empty field means the header is ignored.
    let r = g.send("POST", "/tokens", &form, b"username=");
    r.assert_error(403, "INVALID_CREDENTIALS", "Invalid login");
    // No credentials at all: no provider produced a specific failure.
    g.login_form("")
        .assert_error(403, "INVALID_CREDENTIALS", "Permission Denied.");
}

// ---- rule 3: sessions, expiry, login media type, logout -----------------

#[test]
fn r03_missing_or_unknown_token_is_permission_denied_capital_d() {
    let g = Guac::default_v16();
    let expected = json!({
        "message": "Permission Denied.",
        "translatableMessage": {"key": "APP.TEXT_UNTRANSLATED", "variables": {"MESSAGE": "Permission Denied."}},
        "statusCode": null, "expected": null, "patches": null, "type": "PERMISSION_DENIED",
    });
    for (path, token) in [
        ("/session/data/postgresql/connections", None),
        ("/session/data/postgresql/connections", Some("0123")),
        ("/session/data/postgresql/no/such/path", None),
        ("/session/whatever", Some("ABC")),
    ] {
        let headers: Vec<(&str, &str)> =
            token.map(|t| ("Guacamole-Token", t)).into_iter().collect();
        let r = g.send("GET", path, &headers, b"");
        assert_eq!(r.status, 403, "{path}");
        assert_eq!(r.json(), expected);
    }
}

#[test]
fn r03_session_expires_after_timeout_at_the_next_minute_sweep() {
    let g = Guac::new(GuacamoleSeed::default().session_timeout_minutes(10));
    g.advance(std::time::Duration::from_secs(30)); // log in half-way through a minute
    let t = g.admin();
    g.advance(minutes(10)); // 10:30 — deadline passed, but no sweep yet
    g.advance(std::time::Duration::from_secs(29)); // 10:59
    assert!(g.server.token_is_live(&t));
    g.advance(std::time::Duration::from_secs(1)); // 11:00 — the sweep runs
    g.get(&t, "/self")
        .assert_error(403, "PERMISSION_DENIED", "Permission Denied.");
}

#[test]
fn r03_v16_timer_reset_only_by_data_calls_not_head_session() {
    let g = Guac::new(GuacamoleSeed::default().session_timeout_minutes(5));
    let t = g.admin();
    g.advance(minutes(4));
    assert_eq!(
        g.send("HEAD", "/session", &[("Guacamole-Token", &t)], b"")
            .status,
        204
    );
    g.advance(minutes(2));
    // The HEAD at minute 4 did not keep the session alive past minute 5.
    assert_eq!(
        g.send("HEAD", "/session", &[("Guacamole-Token", &t)], b"")
            .status,
        403
    );
    g.get(&t, "/self").assert_status(403);

    let t = g.admin();
    for _ in 0..3 {
        g.advance(minutes(4));
        g.get(&t, "/connections/424242").assert_status(404); // failed data calls still count
    }
    g.get(&t, "/self").assert_status(200);
}

#[test]
fn r03_v15_timer_reset_by_any_session_call() {
    let g = Guac::new(
        GuacamoleSeed::default()
            .version(GuacVersion::V1_5)
            .session_timeout_minutes(5),
    );
    let t = g.admin();
    for _ in 0..3 {
        g.advance(minutes(4));
        // ≤1.5 has no HEAD handler: a valid token gets 405 (and refreshes).
        assert_eq!(
            g.send("HEAD", "/session", &[("Guacamole-Token", &t)], b"")
                .status,
            405
        );
    }
    g.get(&t, "/self").assert_status(200);
    assert_eq!(
        g.send("HEAD", "/session", &[("Guacamole-Token", "BAD")], b"")
            .status,
        403
    );
}

#[test]
fn r03_token_refresh_returns_same_token_and_resets_timer() {
    let g = Guac::new(GuacamoleSeed::default().session_timeout_minutes(5));
    let t = g.admin();
    g.advance(minutes(4));
    let r = g.login_form(&format!("token={t}&username=guacadmin&password=WRONG"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["authToken"], t.as_str());
    assert_eq!(r.json()["username"], "guacadmin");
    g.advance(minutes(4));
    g.get(&t, "/self").assert_status(200);
    // A dead token in the field is ignored: a fresh session is created.
    let r = g.login_form("token=DEAD&username=guacadmin&password=guacadmin");
    assert_eq!(r.status, 200);
    assert_ne!(r.json()["authToken"], "DEAD");
}

#[test]
fn r03_post_tokens_without_form_content_type_is_500() {
    let g = Guac::default_v16();
    let body = b"username=guacadmin&password=guacadmin";
    g.send("POST", "/tokens", &[], body).assert_error(
        500,
        "INTERNAL_ERROR",
        "Unexpected internal error",
    );
    g.send(
        "POST",
        "/tokens",
        &[("Content-Type", "application/json")],
        br#"{"username":"guacadmin","password":"guacadmin"}"#,
    )
    .assert_error(500, "INTERNAL_ERROR", "Unexpected internal error");
    let r = g.send(
        "POST",
        "/tokens",
        &[(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )],
        body,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn r03_delete_tokens_and_delete_session() {
    let g = Guac::default_v16();
    let t = g.admin();
    let r = g.send("DELETE", &format!("/tokens/{t}"), &[], b"");
    assert_eq!((r.status, r.body.len()), (204, 0));
    g.get(&t, "/self").assert_status(403);
    g.send("DELETE", &format!("/tokens/{t}"), &[], b"")
        .assert_error(404, "NOT_FOUND", "No such token.");

    let t = g.admin();
    assert_eq!(
        g.send("DELETE", "/session", &[("Guacamole-Token", &t)], b"")
            .status,
        204
    );
    g.get(&t, "/self").assert_status(403);
    g.send("DELETE", "/session", &[("Guacamole-Token", &t)], b"")
        .assert_error(403, "PERMISSION_DENIED", "Permission Denied.");
}

#[test]
fn r03_failed_login_destroys_the_carried_token() {
    let g = Guac::default_v16();
    let t = g.admin();
    let r = g.send(
        "POST",
        "/tokens",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Guacamole-Token", &t),
        ],
        b"username=guacadmin&password=wrong",
    );
    assert_eq!(r.status, 403);
    assert!(!g.server.token_is_live(&t));
}

// ---- rule 4: error shape, text/plain 400, framework responses ----------

#[test]
fn r04_error_body_has_patches_member_only_on_1_6() {
    for (v, has_patches) in [
        (GuacVersion::V1_4, false),
        (GuacVersion::V1_5, false),
        (GuacVersion::V1_6, true),
    ] {
        let g = Guac::with_version(v);
        let t = g.admin();
        let body = g
            .get(&t, "/connections/77")
            .assert_error(404, "NOT_FOUND", "Not found: \"77\"");
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut expected = vec![
            "expected",
            "message",
            "statusCode",
            "translatableMessage",
            "type",
        ];
        if has_patches {
            expected.push("patches");
        }
        let mut keys = keys;
        keys.sort();
        expected.sort();
        assert_eq!(keys, expected, "{v}");
        assert!(body["expected"].is_null());
    }
}

#[test]
fn r04_malformed_json_and_wrong_types_are_400_text_plain() {
    let g = Guac::default_v16();
    let t = g.admin();
    let hdr = [
        ("Guacamole-Token", t.as_str()),
        ("Content-Type", "application/json"),
    ];
    for body in [
        &b"{not json"[..],
        br#"{"name":"x","protocol":"ssh","attributes":{},"parameters":{"a":{"b":1}}}"#,
        br#"{"name":["x"],"protocol":"ssh","attributes":{}}"#,
    ] {
        let r = g.send("POST", &g.data("/connections"), &hdr, body);
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.content_type(), Some("text/plain"));
        assert!(!r.text().is_empty());
    }
    let r = g.post(
        &t,
        "/connectionGroups",
        &json!({"name": "g", "type": "organizational", "attributes": {}}),
    );
    assert_eq!((r.status, r.content_type()), (400, Some("text/plain")));
    // Numbers and booleans are coerced to strings.
    let r = g.post(&t, "/connections", &json!({"name": 5, "protocol": "ssh", "attributes": {}, "parameters": {"port": 22, "x": true}}));
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["identifier"].as_str().unwrap().to_string();
    assert_eq!(
        g.get(&t, &format!("/connections/{id}/parameters")).json(),
        json!({"port": "22", "x": "true"})
    );
}

#[test]
fn r04_framework_404_405_415_and_data_source_and_413() {
    let g = Guac::new(GuacamoleSeed::default().max_request_bytes(1000));
    let t = g.admin();
    assert_eq!(g.get(&t, "/nonsense").status, 404);
    assert_eq!(g.send("PUT", "/tokens", &[], b"").status, 405);
    assert_eq!(
        g.send(
            "POST",
            &g.data("/connections/1"),
            &[("Guacamole-Token", &t)],
            b""
        )
        .status,
        404
    );
    g.create_connection(&t, "c", "ROOT");
    assert_eq!(
        g.send(
            "POST",
            &g.data("/connections/1"),
            &[("Guacamole-Token", &t)],
            b""
        )
        .status,
        405
    );
    let r = g.send(
        "POST",
        &g.data("/connections"),
        &[("Guacamole-Token", &t), ("Content-Type", "text/plain")],
        br#"{"name":"x"}"#,
    );
    assert_eq!(r.status, 415);
    g.send(
        "GET",
        "/session/data/mysql/connections",
        &[("Guacamole-Token", &t)],
        b"",
    )
    .assert_error(
        404,
        "NOT_FOUND",
        "Session not associated with authentication provider \"mysql\".",
    );
    let big = vec![b'a'; 1001];
    g.send(
        "POST",
        &g.data("/connections"),
        &[
            ("Guacamole-Token", &t),
            ("Content-Type", "application/json"),
        ],
        &big,
    )
    .assert_error(413, "BAD_REQUEST", "Request body/entity too large.");
    // The -shared data source exists but holds nothing.
    assert_eq!(
        g.send(
            "GET",
            "/session/data/postgresql-shared/connections",
            &[("Guacamole-Token", &t)],
            b""
        )
        .json(),
        json!({})
    );
}

#[test]
fn r04_route_templates_are_set() {
    let g = Guac::default_v16();
    let t = g.admin();
    let id = g.create_connection(&t, "c", "ROOT");
    let r = g.put(&t, &format!("/connections/{id}"), &conn_body("c", None));
    if g.is_https() {
        return; // routes are visible to the handler only (the log has them)
    }
    assert_eq!(
        r.route.as_deref(),
        Some("PUT /session/data/{ds}/connections/{id}")
    );
    assert_eq!(
        g.login_form("username=a&password=b").route.as_deref(),
        Some("POST /tokens")
    );
}

// ---- rule 5: identifiers -----------------------------------------------

#[test]
fn r05_ids_are_numeric_strings_from_independent_never_reused_counters() {
    let g = Guac::default_v16();
    let t = g.admin();
    let g1 = g.create_group(&t, "G", "ROOT");
    let c1 = g.create_connection(&t, "a", "ROOT");
    let c2 = g.create_connection(&t, "b", &g1);
    assert_eq!((g1.as_str(), c1.as_str(), c2.as_str()), ("1", "1", "2"));
    g.delete(&t, &format!("/connections/{c2}"))
        .assert_status(204);
    let c3 = g.create_connection(&t, "c", "ROOT");
    assert_eq!(c3, "3", "deleted ids are never reused");
    let g2 = g.create_group(&t, "H", "ROOT");
    assert_eq!(g2, "2");
}

#[test]
fn r05_non_numeric_ids_are_not_found_and_leading_zeros_match() {
    let g = Guac::default_v16();
    let t = g.admin();
    for _ in 0..7 {
        g.create_connection(&t, &format!("c{}", rand_name()), "ROOT");
    }
    let r = g.get(&t, "/connections/007");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["identifier"], "7");
    g.get(&t, "/connections/abc")
        .assert_error(404, "NOT_FOUND", "Not found: \"abc\"");
    g.get(&t, "/connections/7a")
        .assert_error(404, "NOT_FOUND", "Not found: \"7a\"");
    g.delete(&t, "/connections/x")
        .assert_error(404, "NOT_FOUND", "Not found: \"x\"");
    g.put(&t, "/connections/x", &conn_body("n", None))
        .assert_error(404, "NOT_FOUND", "Not found: \"x\"");
}

fn rand_name() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

// ---- rule 6: connection object shape ------------------------------------

#[test]
fn r06_connection_views_have_no_parameters_and_all_attribute_keys() {
    let g = Guac::default_v16();
    let t = g.admin();
    let id = g.create_connection(&t, "web-01", "ROOT");
    let expected = json!({
        "name": "web-01", "identifier": id, "parentIdentifier": "ROOT", "protocol": "rdp",
        "attributes": {"max-connections": null, "max-connections-per-user": null, "weight": null,
            "failover-only": null, "guacd-hostname": null, "guacd-port": null, "guacd-encryption": null},
        "activeConnections": 0,
    });
    assert_eq!(g.get(&t, &format!("/connections/{id}")).json(), expected);
    assert_eq!(
        g.get(&t, "/connections").json(),
        json!({ id.clone(): expected.clone() })
    );
    assert_eq!(
        g.get(&t, "/connectionGroups/ROOT/tree").json()["childConnections"],
        json!([expected])
    );
}

#[test]
fn r06_last_active_only_when_configured() {
    let g = Guac::new(
        GuacamoleSeed::default()
            .connection(ConnectionSeed::new("used", "vnc").last_active_ms(1_717_171_717_000)),
    );
    let t = g.admin();
    assert_eq!(
        g.get(&t, "/connections/1").json()["lastActive"],
        json!(1_717_171_717_000u64)
    );
    let id = g.create_connection(&t, "fresh", "ROOT");
    assert!(
        g.get(&t, &format!("/connections/{id}"))
            .json()
            .get("lastActive")
            .is_none()
    );
}

// ---- rule 7: parameters --------------------------------------------------

#[test]
fn r07_parameters_flat_map_without_empty_values_and_put_replaces_all() {
    let g = Guac::default_v16();
    let t = g.admin();
    let r = g.post(&t, "/connections", &json!({
        "name": "p", "protocol": "rdp", "attributes": {},
        "parameters": {"hostname": "10.0.0.5", "port": "", "domain": null, "password": "s3cret"},
    }));
    let id = r.json()["identifier"].as_str().unwrap().to_string();
    let params = g.get(&t, &format!("/connections/{id}/parameters"));
    assert_eq!(
        params.json(),
        json!({"hostname": "10.0.0.5", "password": "s3cret"})
    );
    g.put(&t, &format!("/connections/{id}"), &json!({
        "name": "p", "protocol": "rdp", "attributes": {}, "parameters": {"hostname": "10.0.0.6"},
    }))
    .assert_status(204);
    assert_eq!(
        g.get(&t, &format!("/connections/{id}/parameters")).json(),
        json!({"hostname": "10.0.0.6"})
    );
    g.put(
        &t,
        &format!("/connections/{id}"),
        &json!({"name": "p", "protocol": "rdp", "attributes": {}, "parameters": {}}),
    )
    .assert_status(204);
    assert_eq!(
        g.get(&t, &format!("/connections/{id}/parameters")).json(),
        json!({})
    );
}

#[test]
fn r07_reading_parameters_needs_update_or_admin() {
    let g = Guac::new(
        GuacamoleSeed::default()
            .user(UserSeed::admin("guacadmin", "guacadmin"))
            .user(UserSeed::new("reader", "pw").connection_permission("1", "READ"))
            .user(
                UserSeed::new("editor", "pw")
                    .connection_permission("1", "READ")
                    .connection_permission("1", "UPDATE"),
            )
            .connection(ConnectionSeed::new("c", "ssh").parameter("hostname", "h")),
    );
    let reader = g.login("reader", "pw");
    g.get(&reader, "/connections/1").assert_status(200);
    g.get(&reader, "/connections/1/parameters").assert_error(
        403,
        "PERMISSION_DENIED",
        "Permission to read connection parameters denied.",
    );
    let editor = g.login("editor", "pw");
    assert_eq!(
        g.get(&editor, "/connections/1/parameters").json(),
        json!({"hostname": "h"})
    );
}

// ---- rule 8: POST echo, PUT/DELETE 204 ----------------------------------

#[test]
fn r08_post_echoes_request_with_identifier_and_filtered_attributes() {
    let g = Guac::default_v16();
    let t = g.admin();
    let r = g.post(&t, "/connections", &json!({
        "parentIdentifier": "ROOT", "name": "web-01", "protocol": "rdp",
        "parameters": {"hostname": "10.0.0.5", "port": "3389", "ignore-cert": "true", "security": "nla"},
        "attributes": {"max-connections": "", "guacd-encryption": null, "bogus": "x"},
    }));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({
            "name": "web-01", "identifier": "1", "parentIdentifier": "ROOT", "protocol": "rdp",
            "parameters": {"hostname": "10.0.0.5", "port": "3389", "ignore-cert": "true", "security": "nla"},
            "attributes": {"max-connections": "", "guacd-encryption": null}, "activeConnections": 0,
        })
    );
    // Absent parentIdentifier stays absent in the echo.
    let r = g.post(&t, "/connections", &conn_body("web-02", None));
    assert!(r.json().get("parentIdentifier").is_none());
    let r = g.put(&t, "/connections/1", &conn_body("web-01", None));
    assert_eq!((r.status, r.body.len()), (204, 0));
    let r = g.delete(&t, "/connections/1");
    assert_eq!((r.status, r.body.len()), (204, 0));
}

#[test]
fn r08_v14_echo_drops_null_attributes() {
    let g = Guac::with_version(GuacVersion::V1_4);
    let t = g.admin();
    let r = g.post(&t, "/connections", &json!({"name": "x", "protocol": "ssh", "attributes": {"weight": null, "max-connections": "3"}}));
    assert_eq!(r.json()["attributes"], json!({"max-connections": "3"}));
}

// ---- rule 9: 500 storage / null-handling failures -----------------------

#[test]
fn r09_missing_members_and_storage_limits_are_500() {
    let g = Guac::default_v16();
    let t = g.admin();
    let ise = |r: guacamole_support::Resp| {
        r.assert_error(500, "INTERNAL_ERROR", "Unexpected internal error");
    };
    ise(g.post(&t, "/connections", &json!({"name": "a", "protocol": "ssh"})));
    ise(g.post(
        &t,
        "/connections",
        &json!({"name": "a", "protocol": "ssh", "attributes": null}),
    ));
    ise(g.post(&t, "/connections", &json!({"name": "a", "attributes": {}})));
    ise(g.post(
        &t,
        "/connections",
        &json!({"name": "x".repeat(129), "protocol": "ssh", "attributes": {}}),
    ));
    ise(g.post(
        &t,
        "/connections",
        &json!({"name": "a", "protocol": "p".repeat(33), "attributes": {}}),
    ));
    ise(g.post(&t, "/connections", &conn_body("a", Some("99"))));
    ise(g.post(&t, "/connections", &conn_body("a", Some("zz"))));
    // A name taken at ROOT is no clash in an unknown parent: still 500.
    g.create_connection(&t, "at-root", "ROOT");
    ise(g.post(&t, "/connections", &conn_body("at-root", Some("99"))));
    ise(g.post(
        &t,
        "/connectionGroups",
        &json!({"name": "g", "attributes": {}}),
    ));
    ise(g.post(
        &t,
        "/connectionGroups",
        &json!({"name": "g", "type": "BALANCING"}),
    ));
    g.post(
        &t,
        "/connections",
        &json!({"name": "x".repeat(128), "protocol": "p".repeat(32), "attributes": {}}),
    )
    .assert_status(200);

    let id = g.create_connection(&t, "keep", "ROOT");
    let before = g.server.connection(&id).unwrap();
    ise(g.put(
        &t,
        &format!("/connections/{id}"),
        &json!({"name": "changed", "protocol": "ssh", "attributes": {}}),
    ));
    ise(g.put(
        &t,
        &format!("/connections/{id}"),
        &json!({"name": "changed", "protocol": "ssh", "parameters": {}}),
    ));
    ise(g.put(
        &t,
        &format!("/connections/{id}"),
        &json!({"name": "changed", "parameters": {}, "attributes": {}}),
    ));
    assert_eq!(g.server.connection(&id).unwrap(), before, "nothing changed");
}

#[test]
fn r09_empty_bodies_are_400_data_must_be_submitted() {
    let g = Guac::default_v16();
    let t = g.admin();
    let id = g.create_connection(&t, "c", "ROOT");
    let hdr = [
        ("Guacamole-Token", t.as_str()),
        ("Content-Type", "application/json"),
    ];
    g.send("POST", &g.data("/connections"), &hdr, b"")
        .assert_error(
            400,
            "BAD_REQUEST",
            "Data must be submitted when creating objects.",
        );
    g.send("PUT", &g.data(&format!("/connections/{id}")), &hdr, b"null")
        .assert_error(
            400,
            "BAD_REQUEST",
            "Data must be submitted when updating objects.",
        );
}

// ---- rule 10: uniqueness, blank names, PUT without parent ---------------

#[test]
fn r10_names_unique_per_parent_and_kind() {
    let g = Guac::default_v16();
    let t = g.admin();
    let grp = g.create_group(&t, "web-01", "ROOT"); // a group may share a connection's name
    g.create_connection(&t, "web-01", "ROOT");
    g.post(&t, "/connections", &conn_body("web-01", Some("ROOT")))
        .assert_error(
            400,
            "BAD_REQUEST",
            "The connection \"web-01\" already exists.",
        );
    g.post(&t, "/connections", &conn_body("web-01", Some(&grp)))
        .assert_status(200);
    g.post(&t, "/connections", &conn_body("Web-01", None))
        .assert_status(200); // case-sensitive
    g.post(
        &t,
        "/connectionGroups",
        &json!({"name": "web-01", "type": "ORGANIZATIONAL", "attributes": {}}),
    )
    .assert_error(
        400,
        "BAD_REQUEST",
        "The connection group \"web-01\" already exists.",
    );
    for blank in [json!(null), json!(""), json!("   ")] {
        let mut b = conn_body("x", None);
        b["name"] = blank.clone();
        g.post(&t, "/connections", &b).assert_error(
            400,
            "BAD_REQUEST",
            "Connection names must not be blank.",
        );
        g.post(
            &t,
            "/connectionGroups",
            &json!({"name": blank, "type": "ORGANIZATIONAL", "attributes": {}}),
        )
        .assert_error(
            400,
            "BAD_REQUEST",
            "Connection group names must not be blank.",
        );
    }
    // Leading/trailing spaces are kept verbatim.
    let r = g.post(&t, "/connections", &conn_body(" spaced ", None));
    let id = r.json()["identifier"].as_str().unwrap().to_string();
    assert_eq!(g.server.connection(&id).unwrap().name, " spaced ");
}

#[test]
fn r10_put_without_parent_moves_to_root_and_keeping_own_name_is_fine() {
    let g = Guac::default_v16();
    let t = g.admin();
    let grp = g.create_group(&t, "G", "ROOT");
    let id = g.create_connection(&t, "c", &grp);
    g.put(
        &t,
        &format!("/connections/{id}"),
        &conn_body("c", Some(&grp)),
    )
    .assert_status(204);
    g.put(&t, &format!("/connections/{id}"), &conn_body("c", None))
        .assert_status(204);
    assert_eq!(g.server.connection(&id).unwrap().parent, "ROOT");
    let sub = g.create_group(&t, "S", &grp);
    g.put(
        &t,
        &format!("/connectionGroups/{sub}"),
        &json!({"name": "S", "type": "ORGANIZATIONAL", "attributes": {}}),
    )
    .assert_status(204);
    assert_eq!(g.server.group(&sub).unwrap().parent, "ROOT");
}

// ---- rule 11: attributes -------------------------------------------------

#[test]
fn r11_connection_attribute_read_back_rules() {
    let g = Guac::default_v16();
    let t = g.admin();
    let r = g.post(
        &t,
        "/connections",
        &json!({"name": "a", "protocol": "rdp", "parameters": {}, "attributes": {
            "max-connections": "05", "max-connections-per-user": "lots", "weight": "3",
            "failover-only": "yes", "guacd-hostname": "", "guacd-port": "4822",
            "guacd-encryption": "tls", "not-in-schema": "dropped",
        }}),
    );
    let id = r.json()["identifier"].as_str().unwrap().to_string();
    let attrs = g.get(&t, &format!("/connections/{id}")).json()["attributes"].clone();
    assert_eq!(
        attrs,
        json!({
            "max-connections": "5", "max-connections-per-user": null, "weight": "3",
            "failover-only": null, "guacd-hostname": null, "guacd-port": "4822", "guacd-encryption": null,
        })
    );
    // Update: non-integers keep the previous value; absent keys are cleared.
    g.put(&t, &format!("/connections/{id}"), &json!({"name": "a", "protocol": "rdp", "parameters": {}, "attributes": {
        "max-connections": "many", "failover-only": "true", "guacd-encryption": "ssl", "guacd-hostname": "gd",
    }}))
    .assert_status(204);
    let attrs = g.get(&t, &format!("/connections/{id}")).json()["attributes"].clone();
    assert_eq!(
        attrs,
        json!({
            "max-connections": "5", "max-connections-per-user": null, "weight": null,
            "failover-only": "true", "guacd-hostname": "gd", "guacd-port": null, "guacd-encryption": "ssl",
        })
    );
}

#[test]
fn r11_group_attributes_and_session_affinity_empty_string() {
    let g = Guac::default_v16();
    let t = g.admin();
    let r = g.post(&t, "/connectionGroups", &json!({"name": "pool", "type": "BALANCING", "attributes": {"enable-session-affinity": "true", "max-connections": "x", "z": "1"}}));
    assert_eq!(
        r.json()["attributes"],
        json!({"enable-session-affinity": "true", "max-connections": "x"})
    );
    let id = r.json()["identifier"].as_str().unwrap().to_string();
    assert_eq!(
        g.get(&t, &format!("/connectionGroups/{id}")).json(),
        json!({
            "name": "pool", "identifier": id, "parentIdentifier": "ROOT", "type": "BALANCING", "activeConnections": 0,
            "attributes": {"max-connections": null, "max-connections-per-user": null, "enable-session-affinity": "true"},
        })
    );
    g.put(
        &t,
        &format!("/connectionGroups/{id}"),
        &json!({"name": "pool", "type": "ORGANIZATIONAL", "attributes": {}}),
    )
    .assert_status(204);
    let v = g.get(&t, &format!("/connectionGroups/{id}")).json();
    assert_eq!(v["attributes"]["enable-session-affinity"], "");
    assert_eq!(v["type"], "ORGANIZATIONAL");
}

// ---- rule 12: ROOT, tree, recursive delete --------------------------------

#[test]
fn r12_root_group_and_tree_omit_empty_children() {
    let g = Guac::default_v16();
    let t = g.admin();
    let root = json!({"name": "ROOT", "identifier": "ROOT", "type": "ORGANIZATIONAL", "activeConnections": 0, "attributes": {}});
    assert_eq!(g.get(&t, "/connectionGroups/ROOT").json(), root);
    assert_eq!(g.get(&t, "/connectionGroups/ROOT/tree").json(), root);
    assert_eq!(g.get(&t, "/connectionGroups").json(), json!({}));
    let servers = g.create_group(&t, "Servers", "ROOT");
    let empty = g.create_group(&t, "Empty", "ROOT");
    let c = g.create_connection(&t, "web-01", &servers);
    let tree = g.get(&t, "/connectionGroups/ROOT/tree").json();
    assert!(tree.get("childConnections").is_none());
    let kids = tree["childConnectionGroups"].as_array().unwrap();
    assert_eq!(kids.len(), 2);
    let s = kids
        .iter()
        .find(|k| k["identifier"] == servers.as_str())
        .unwrap();
    assert_eq!(s["childConnections"][0]["identifier"], c.as_str());
    assert!(s.get("childConnectionGroups").is_none());
    let e = kids
        .iter()
        .find(|k| k["identifier"] == empty.as_str())
        .unwrap();
    assert!(e.get("childConnections").is_none() && e.get("childConnectionGroups").is_none());
    let list = g.get(&t, "/connectionGroups").json();
    assert!(list.get("ROOT").is_none());
    assert_eq!(list.as_object().unwrap().len(), 2);
    // Subtree view.
    let sub = g
        .get(&t, &format!("/connectionGroups/{servers}/tree"))
        .json();
    assert_eq!(sub["childConnections"].as_array().unwrap().len(), 1);
}

#[test]
fn r12_group_delete_is_recursive_and_root_cannot_change() {
    let g = Guac::default_v16();
    let t = g.admin();
    let a = g.create_group(&t, "A", "ROOT");
    let b = g.create_group(&t, "B", &a);
    let c1 = g.create_connection(&t, "c1", &a);
    let c2 = g.create_connection(&t, "c2", &b);
    let keep = g.create_connection(&t, "keep", "ROOT");
    g.delete(&t, &format!("/connectionGroups/{a}"))
        .assert_status(204);
    for id in [&c1, &c2] {
        g.get(&t, &format!("/connections/{id}")).assert_status(404);
    }
    g.get(&t, &format!("/connectionGroups/{b}"))
        .assert_status(404);
    g.get(&t, &format!("/connections/{keep}"))
        .assert_status(200);
    let perms = g.get(&t, "/self/permissions").json();
    assert_eq!(
        perms["connectionPermissions"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec![&keep]
    );
    assert_eq!(perms["connectionGroupPermissions"], json!({}));
    let ise = |r: guacamole_support::Resp| {
        r.assert_error(500, "INTERNAL_ERROR", "Unexpected internal error");
    };
    ise(g.put(
        &t,
        "/connectionGroups/ROOT",
        &json!({"name": "ROOT", "type": "ORGANIZATIONAL", "attributes": {}}),
    ));
    ise(g.delete(&t, "/connectionGroups/ROOT"));
}

#[test]
fn r12_group_may_not_contain_itself_501() {
    let g = Guac::default_v16();
    let t = g.admin();
    let a = g.create_group(&t, "A", "ROOT");
    let b = g.create_group(&t, "B", &a);
    for parent in [&a, &b] {
        g.put(&t, &format!("/connectionGroups/{a}"), &json!({"name": "A", "parentIdentifier": parent, "type": "ORGANIZATIONAL", "attributes": {}}))
            .assert_error(501, "INTERNAL_ERROR", "A connection group may not contain itself.");
    }
    g.put(
        &t,
        &format!("/connectionGroups/{a}"),
        &json!({"name": "A", "parentIdentifier": "77", "type": "ORGANIZATIONAL", "attributes": {}}),
    )
    .assert_error(500, "INTERNAL_ERROR", "Unexpected internal error");
}

// ---- rule 13: directory PATCH --------------------------------------------

#[test]
fn r13_v15_patch_is_remove_only_and_not_atomic() {
    let g = Guac::with_version(GuacVersion::V1_5);
    let t = g.admin();
    let a = g.create_connection(&t, "a", "ROOT");
    let b = g.create_connection(&t, "b", "ROOT");
    let r = g.patch(&t, "/connections", &json!([]));
    assert_eq!((r.status, r.body.len()), (204, 0), "version probe");
    let r = g.patch(
        &t,
        "/connections",
        &json!([
            {"op": "remove", "path": format!("/{a}")},
            {"op": "remove", "path": "/424242"},
            {"op": "add", "path": "/", "value": "x"},
            {"op": "remove", "path": format!("/{b}")},
        ]),
    );
    r.assert_error(
        501,
        "INTERNAL_ERROR",
        "Only the \"remove\" operation is supported.",
    );
    assert!(
        g.server.connection(&a).is_none(),
        "earlier removal stays done"
    );
    assert!(g.server.connection(&b).is_some(), "later entries never ran");
    g.patch(&t, "/connections", &json!([{"op": "remove", "path": b}]))
        .assert_error(400, "BAD_REQUEST", "Patch paths must start with \"/\".");
    let r = g.patch(
        &t,
        "/connections",
        &json!([{"op": "add", "path": "/", "value": {"name": "n"}}]),
    );
    assert_eq!((r.status, r.content_type()), (400, Some("text/plain")));
    g.patch(
        &t,
        "/connections",
        &json!([{"op": "remove", "path": format!("/{b}")}]),
    )
    .assert_status(204);
    assert!(g.server.connection(&b).is_none());
}

#[test]
fn r13_v16_patch_applies_add_replace_remove_atomically() {
    let g = Guac::default_v16();
    let t = g.admin();
    let r = g.patch(&t, "/connections", &json!([]));
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"patches": []}));
    let seven = g.create_connection(&t, "seven", "ROOT");
    let nine = g.create_connection(&t, "nine", "ROOT");
    let r = g.patch(&t, "/connections", &json!([
        {"op": "add", "path": "/", "value": conn_body("new", None)},
        {"op": "replace", "path": format!("/{seven}"), "value": {"name": "seven", "protocol": "vnc", "parameters": {"port": "5900"}, "attributes": {"custom": "kept", "weight": "2"}}},
        {"op": "remove", "path": format!("/{nine}")},
        {"op": "remove", "path": "/424242"},
    ]));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"patches": [
            {"op": "add", "identifier": "3", "path": "/"},
            {"op": "replace", "identifier": seven, "path": format!("/{seven}")},
            {"op": "remove", "identifier": nine, "path": format!("/{nine}")},
            {"op": "remove", "identifier": "424242", "path": "/424242"},
        ]})
    );
    let c7 = g.server.connection(&seven).unwrap();
    assert_eq!(c7.protocol, "vnc");
    // replace does not filter attributes against the schema.
    assert_eq!(c7.attributes.get("custom"), Some(&Some("kept".to_string())));
    assert_eq!(
        g.get(&t, &format!("/connections/{seven}")).json()["attributes"]["custom"],
        "kept"
    );
    assert!(g.server.connection(&nine).is_none());
    assert!(g.server.find_connection("new").is_some());
}

#[test]
fn r13_v16_failed_patch_rolls_back_with_identifier_nulling_quirk() {
    let g = Guac::default_v16();
    let t = g.admin();
    let seven = g.create_connection(&t, "seven", "ROOT");
    let nine = g.create_connection(&t, "nine", "ROOT");
    let before = g.server.snapshot();
    let r = g.patch(
        &t,
        "/connections",
        &json!([
            {"op": "add", "path": "/", "value": conn_body("web-01", None)},
            {"op": "add", "path": "/", "value": conn_body("web-01", None)},
            {"op": "replace", "path": format!("/{seven}"), "value": conn_body("seven", None)},
            {"op": "remove", "path": format!("/{nine}")},
            {"op": "replace", "path": "/555", "value": conn_body("x", None)},
        ]),
    );
    let v = r.assert_error(400, "BAD_REQUEST", "The provided patches failed to apply.");
    assert_eq!(
        v["patches"],
        json!([
            {"op": "add", "identifier": null, "path": "/"},
            {"op": "add", "identifier": null, "path": "/",
             "error": {"key": "APP.TEXT_UNTRANSLATED", "variables": {"MESSAGE": "The connection \"web-01\" already exists."}}},
            {"op": "replace", "identifier": seven, "path": format!("/{seven}")},
            {"op": "remove", "identifier": null, "path": format!("/{nine}")},
            {"op": "replace", "identifier": "555", "path": "/555",
             "error": {"key": "APP.TEXT_UNTRANSLATED", "variables": {"MESSAGE": "Not found: \"555\""}}},
        ])
    );
    assert_eq!(g.server.snapshot(), before, "everything rolled back");
    // The rolled-back creation consumed id 3 (the failed duplicate none).
    assert_eq!(g.create_connection(&t, "after", "ROOT"), "4");
}

#[test]
fn r13_v16_patch_aborts_for_bad_path_unsupported_ops_and_internal_errors() {
    let g = Guac::default_v16();
    let t = g.admin();
    let id = g.create_connection(&t, "c", "ROOT");
    let before = g.server.snapshot();
    for op in ["test", "copy", "move"] {
        g.patch(&t, "/connections", &json!([{"op": op, "path": "/1"}])).assert_error(
            501,
            "INTERNAL_ERROR",
            &format!("Unsupported patch operation \"{op}\". Only add, replace, and remove are supported."),
        );
    }
    g.patch(&t, "/connections", &json!([{"op": "test", "path": "1"}]))
        .assert_error(400, "BAD_REQUEST", "Patch paths must start with \"/\".");
    g.patch(
        &t,
        "/connections",
        &json!([
            {"op": "remove", "path": format!("/{id}")},
            {"op": "add", "path": "/", "value": {"name": "n", "protocol": "ssh"}},
        ]),
    )
    .assert_error(500, "INTERNAL_ERROR", "Unexpected internal error");
    g.patch(&t, "/connections", &json!([{"op": "remove"}]))
        .assert_error(500, "INTERNAL_ERROR", "Unexpected internal error");
    g.patch(
        &t,
        "/connections",
        &json!([{"op": "remove", "path": "/abc"}]),
    )
    .assert_status(500);
    let r = g.patch(
        &t,
        "/connections",
        &json!([{"op": "remove", "path": "/1", "value": "1"}]),
    );
    assert_eq!((r.status, r.content_type()), (400, Some("text/plain")));
    let r = g.patch(
        &t,
        "/connections",
        &json!([{"op": "remove", "path": "/1", "extra": 1}]),
    );
    assert_eq!((r.status, r.content_type()), (400, Some("text/plain")));
    assert_eq!(g.server.snapshot(), before);
    // Groups: same machinery; removing a group is recursive.
    let grp = g.create_group(&t, "G", "ROOT");
    g.create_connection(&t, "inside", &grp);
    g.patch(
        &t,
        "/connectionGroups",
        &json!([{"op": "remove", "path": format!("/{grp}")}]),
    )
    .assert_status(200);
    assert!(g.server.find_connection("inside").is_none());
}

// ---- rule 14: creator grants ---------------------------------------------

#[test]
fn r14_creator_gets_full_rights_and_grants_vanish_with_the_object() {
    let g = Guac::new(
        GuacamoleSeed::default()
            .user(UserSeed::admin("guacadmin", "guacadmin"))
            .user(
                UserSeed::new("sync", "pw")
                    .system_permission("CREATE_CONNECTION")
                    .system_permission("CREATE_CONNECTION_GROUP"),
            ),
    );
    let t = g.login("sync", "pw");
    let grp = g.create_group(&t, "Proxmox", "ROOT");
    let c = g.create_connection(&t, "vm-100", &grp);
    let perms = g.get(&t, "/self/permissions").json();
    let all = json!(["READ", "UPDATE", "DELETE", "ADMINISTER"]);
    assert_eq!(
        perms["connectionPermissions"],
        json!({ c.clone(): all.clone() })
    );
    assert_eq!(
        perms["connectionGroupPermissions"],
        json!({ grp.clone(): all })
    );
    assert_eq!(
        perms["systemPermissions"],
        json!(["CREATE_CONNECTION", "CREATE_CONNECTION_GROUP"])
    );
    // The non-admin creator can now read, update and delete its own objects.
    g.get(&t, &format!("/connections/{c}/parameters"))
        .assert_status(200);
    g.put(
        &t,
        &format!("/connections/{c}"),
        &conn_body("vm-100", Some(&grp)),
    )
    .assert_status(204);
    g.delete(&t, &format!("/connections/{c}"))
        .assert_status(204);
    assert_eq!(
        g.get(&t, "/self/permissions").json()["connectionPermissions"],
        json!({})
    );
    // Admin example of §7.2.
    let a = g.admin();
    let ag = g.create_group(&a, "Servers", "ROOT");
    let ac = g.create_connection(&a, "web-01", &ag);
    let v = g.get(&a, "/self/permissions").json();
    assert_eq!(
        v,
        json!({
            "connectionPermissions": { ac: ["READ", "UPDATE", "DELETE", "ADMINISTER"] },
            "connectionGroupPermissions": { ag: ["READ", "UPDATE", "DELETE", "ADMINISTER"] },
            "sharingProfilePermissions": {}, "activeConnectionPermissions": {},
            "userPermissions": {"guacadmin": ["READ", "UPDATE", "ADMINISTER"]},
            "userGroupPermissions": {},
            "systemPermissions": ["CREATE_USER", "CREATE_USER_GROUP", "CREATE_CONNECTION",
                "CREATE_CONNECTION_GROUP", "CREATE_SHARING_PROFILE", "ADMINISTER"],
        })
    );
}

#[test]
fn r14_non_admin_rights_are_enforced() {
    let g = Guac::new(
        GuacamoleSeed::default()
            .user(UserSeed::admin("guacadmin", "guacadmin"))
            .user(UserSeed::new("sync", "pw").system_permission("CREATE_CONNECTION"))
            .user(UserSeed::new("nobody", "pw"))
            .connection_group(ConnectionGroupSeed::new("Office"))
            .connection(ConnectionSeed::new("hand-made", "vnc").parent("1")),
    );
    let t = g.login("sync", "pw");
    // Not readable → 404 (not 403); not listed.
    g.get(&t, "/connections/1")
        .assert_error(404, "NOT_FOUND", "Not found: \"1\"");
    assert_eq!(g.get(&t, "/connections").json(), json!({}));
    assert_eq!(
        g.get(&t, "/connectionGroups/ROOT/tree")
            .json()
            .get("childConnectionGroups"),
        None
    );
    // Creating inside a group without UPDATE on it → 403.
    g.post(&t, "/connections", &conn_body("x", Some("1")))
        .assert_error(403, "PERMISSION_DENIED", "Permission denied.");
    g.post(&t, "/connections", &conn_body("x", Some("999")))
        .assert_error(403, "PERMISSION_DENIED", "Permission denied.");
    g.post(
        &t,
        "/connectionGroups",
        &json!({"name": "g", "type": "ORGANIZATIONAL", "attributes": {}}),
    )
    .assert_error(403, "PERMISSION_DENIED", "Permission denied.");
    let n = g.login("nobody", "pw");
    g.post(&n, "/connections", &conn_body("x", None))
        .assert_error(403, "PERMISSION_DENIED", "Permission denied.");
    // READ without UPDATE/DELETE.
    g.server.grant_connection(
        "nobody",
        "1",
        pve_guac_lab::guacamole::ObjectPermission::Read,
    );
    g.put(&n, "/connections/1", &conn_body("hand-made", Some("1")))
        .assert_error(403, "PERMISSION_DENIED", "Permission denied.");
    g.delete(&n, "/connections/1")
        .assert_error(403, "PERMISSION_DENIED", "Permission denied.");
    // ?permission= filter for non-admins.
    assert_eq!(
        g.get(&n, "/connections?permission=READ")
            .json()
            .as_object()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        g.get(&n, "/connections?permission=UPDATE").json(),
        json!({})
    );
    assert_eq!(g.get(&n, "/connections?permission=bogus").status, 404);
}

// ---- rule 15: permission and membership PATCH ------------------------------

#[test]
fn r15_permission_patch_grants_and_revokes() {
    let g = Guac::new(
        GuacamoleSeed::default()
            .user(UserSeed::admin("guacadmin", "guacadmin"))
            .user(UserSeed::new("alice", "pw"))
            .user_group(UserGroupSeed::new("ops")),
    );
    let t = g.admin();
    let grp = g.create_group(&t, "G", "ROOT");
    let c = g.create_connection(&t, "c", &grp);
    let body = json!([
        {"op": "add", "path": format!("/connectionPermissions/{c}"), "value": "READ"},
        {"op": "add", "path": format!("/connectionGroupPermissions/{grp}"), "value": "READ"},
        {"op": "add", "path": "/systemPermissions", "value": "CREATE_CONNECTION"},
    ]);
    for target in ["/userGroups/ops/permissions", "/users/alice/permissions"] {
        let r = g.patch(&t, target, &body);
        assert_eq!((r.status, r.body.len()), (204, 0), "{}", r.text());
        g.patch(&t, target, &body).assert_status(204); // idempotent
        let v = g.get(&t, target).json();
        assert_eq!(v["connectionPermissions"], json!({ c.clone(): ["READ"] }));
        assert_eq!(
            v["connectionGroupPermissions"],
            json!({ grp.clone(): ["READ"] })
        );
        assert!(
            v["systemPermissions"]
                .as_array()
                .unwrap()
                .contains(&json!("CREATE_CONNECTION"))
        );
    }
    // Add and remove of the same permission in one request: removed.
    g.patch(
        &t,
        "/users/alice/permissions",
        &json!([
            {"op": "remove", "path": format!("/connectionPermissions/{c}"), "value": "READ"},
            {"op": "add", "path": format!("/connectionPermissions/{c}"), "value": "READ"},
            {"op": "remove", "path": "/connectionPermissions/999", "value": "DELETE"},
        ]),
    )
    .assert_status(204);
    assert_eq!(
        g.get(&t, "/users/alice/permissions").json()["connectionPermissions"],
        json!({})
    );
}

#[test]
fn r15_permission_patch_errors() {
    let g = Guac::new(
        GuacamoleSeed::default()
            .user(UserSeed::admin("guacadmin", "guacadmin"))
            .user(UserSeed::new("alice", "pw")),
    );
    let t = g.admin();
    let c = g.create_connection(&t, "c", "ROOT");
    let p = "/users/alice/permissions";
    let cp = format!("/connectionPermissions/{c}");
    let ise = |r: guacamole_support::Resp| {
        r.assert_error(500, "INTERNAL_ERROR", "Unexpected internal error");
    };
    ise(g.patch(&t, p, &json!([{"op": "add", "path": cp, "value": "read"}])));
    ise(g.patch(&t, p, &json!([{"op": "add", "path": cp}])));
    ise(g.patch(
        &t,
        p,
        &json!([{"op": "add", "path": "/connectionPermissions/999", "value": "READ"}]),
    ));
    ise(g.patch(
        &t,
        p,
        &json!([{"op": "replace", "path": cp, "value": "bogus"}]),
    )); // value before op
    g.patch(
        &t,
        p,
        &json!([{"op": "replace", "path": cp, "value": "READ"}]),
    )
    .assert_error(
        400,
        "BAD_REQUEST",
        "Unsupported patch operation: \"replace\"",
    );
    g.patch(
        &t,
        p,
        &json!([{"op": "add", "path": "/bogusPermissions/1", "value": "READ"}]),
    )
    .assert_error(
        400,
        "BAD_REQUEST",
        "Unsupported patch path: \"/bogusPermissions/1\"",
    );
    // Validation happens before anything is applied.
    g.patch(
        &t,
        p,
        &json!([
            {"op": "add", "path": cp, "value": "READ"},
            {"op": "add", "path": "/nope", "value": "READ"},
        ]),
    )
    .assert_status(400);
    assert_eq!(g.get(&t, p).json()["connectionPermissions"], json!({}));
    g.patch(&t, "/users/ghost/permissions", &json!([]))
        .assert_error(404, "NOT_FOUND", "Not found: \"ghost\"");
    g.patch(&t, "/userGroups/ghost/permissions", &json!([]))
        .assert_error(404, "NOT_FOUND", "Not found: \"ghost\"");
    // A non-admin without UPDATE on the user / ADMINISTER on the object is refused.
    let a = g.login("alice", "pw");
    g.patch(
        &a,
        "/users/alice/permissions",
        &json!([{"op": "add", "path": cp, "value": "READ"}]),
    )
    .assert_error(403, "PERMISSION_DENIED", "Permission denied.");
}

#[test]
fn r15_membership_patch_and_inherited_permissions() {
    let g = Guac::new(
        GuacamoleSeed::default()
            .user(UserSeed::admin("guacadmin", "guacadmin"))
            .user(UserSeed::new("alice", "pw"))
            .user_group(UserGroupSeed::new("ops").connection_permission("1", "READ"))
            .user_group(
                UserGroupSeed::new("staff")
                    .member_user_group("ops")
                    .system_permission("CREATE_CONNECTION"),
            )
            .connection(ConnectionSeed::new("c", "ssh")),
    );
    let t = g.admin();
    let r = g.patch(
        &t,
        "/userGroups/ops/memberUsers",
        &json!([{"op": "add", "path": "/", "value": "alice"}]),
    );
    assert_eq!((r.status, r.body.len()), (204, 0));
    assert_eq!(
        g.get(&t, "/userGroups/ops/memberUsers").json(),
        json!(["alice"])
    );
    assert_eq!(g.get(&t, "/users/alice/userGroups").json(), json!(["ops"]));
    assert_eq!(
        g.get(&t, "/userGroups/ops/userGroups").json(),
        json!(["staff"])
    );
    let eff = g.get(&t, "/users/alice/effectivePermissions").json();
    assert_eq!(eff["connectionPermissions"], json!({"1": ["READ"]}));
    assert_eq!(eff["systemPermissions"], json!(["CREATE_CONNECTION"]));
    assert_eq!(
        g.get(&t, "/users/alice/permissions").json()["connectionPermissions"],
        json!({})
    );
    let a = g.login("alice", "pw");
    g.get(&a, "/connections/1").assert_status(200);
    g.patch(
        &t,
        "/userGroups/ops/memberUsers",
        &json!([{"op": "add", "path": "/x", "value": "alice"}]),
    )
    .assert_error(400, "BAD_REQUEST", "Unsupported patch path: \"/x\"");
    g.patch(
        &t,
        "/userGroups/ops/memberUsers",
        &json!([{"op": "replace", "path": "/", "value": "alice"}]),
    )
    .assert_error(
        400,
        "BAD_REQUEST",
        "Unsupported patch operation: \"replace\"",
    );
    g.patch(
        &t,
        "/users/alice/userGroups",
        &json!([{"op": "remove", "path": "/", "value": "ops"}]),
    )
    .assert_status(204);
    g.get(&a, "/connections/1").assert_status(404);
}

// ---- rule 16: effective permissions of the admin, AUDIT -------------------

#[test]
fn r16_admin_effective_permissions_and_audit_per_version() {
    for v in [GuacVersion::V1_4, GuacVersion::V1_5, GuacVersion::V1_6] {
        let g = Guac::new(
            GuacamoleSeed::default()
                .version(v)
                .user(UserSeed::admin("guacadmin", "guacadmin"))
                .user(UserSeed::new("bob", "pw")),
        );
        let t = g.admin();
        let eff = g.get(&t, "/self/effectivePermissions").json();
        assert_eq!(
            eff["systemPermissions"],
            json!([
                "CREATE_USER",
                "CREATE_USER_GROUP",
                "CREATE_CONNECTION",
                "CREATE_CONNECTION_GROUP",
                "CREATE_SHARING_PROFILE",
                "ADMINISTER"
            ])
        );
        let r = g.patch(
            &t,
            "/users/bob/permissions",
            &json!([{"op": "add", "path": "/systemPermissions", "value": "AUDIT"}]),
        );
        if v == GuacVersion::V1_6 {
            r.assert_status(204);
            assert_eq!(
                g.get(&t, "/users/bob/permissions").json()["systemPermissions"],
                json!(["AUDIT"])
            );
        } else {
            r.assert_error(500, "INTERNAL_ERROR", "Unexpected internal error");
        }
    }
}

// ---- rule 17: no protocol/parameter validation, 4096-char limit ----------

#[test]
fn r17_protocols_and_parameter_names_are_not_validated() {
    let g = Guac::default_v16();
    let t = g.admin();
    let r = g.post(
        &t,
        "/connections",
        &json!({"name": "odd", "protocol": "quantum", "attributes": {},
        "parameters": {"no-such-param": "v", "hostname": "h"}}),
    );
    let id = r.json()["identifier"].as_str().unwrap().to_string();
    assert_eq!(
        g.get(&t, &format!("/connections/{id}")).json()["protocol"],
        "quantum"
    );
    assert_eq!(
        g.get(&t, &format!("/connections/{id}/parameters")).json()["no-such-param"],
        "v"
    );
}

#[test]
fn r17_parameter_value_limit_per_version() {
    let ok = "x".repeat(4096);
    let long = "x".repeat(4097);
    let g = Guac::new(
        GuacamoleSeed::default()
            .user(UserSeed::admin("guacadmin", "guacadmin"))
            .user(UserSeed::new("nobody", "pw")),
    );
    let t = g.admin();
    let body = |v: &str| json!({"name": format!("n{}", v.len()), "protocol": "ssh", "attributes": {}, "parameters": {"private-key": v}});
    g.post(&t, "/connections", &body(&ok)).assert_status(200);
    let v = g.post(&t, "/connections", &body(&long)).assert_error(
        413,
        "BAD_REQUEST",
        "The value provided for connection parameter \"private-key\" exceeds the maximum allowed length.",
    );
    assert_eq!(
        v["translatableMessage"],
        json!({"key": "CONNECTION_PARAMETERS.DATABASE_PARAMETER_VALUE_TOO_LONG",
        "variables": {"MAX_SIZE": 4096, "PARAMETER_NAME": "private-key"}})
    );
    // Checked before permissions on 1.6.
    let n = g.login("nobody", "pw");
    assert_eq!(g.post(&n, "/connections", &body(&long)).status, 413);
    for v in [GuacVersion::V1_4, GuacVersion::V1_5] {
        let g = Guac::with_version(v);
        let t = g.admin();
        g.post(&t, "/connections", &body(&long)).assert_error(
            500,
            "INTERNAL_ERROR",
            "Unexpected internal error",
        );
    }
}

// ---- rule 18: version switch ----------------------------------------------

#[test]
fn r18_version_switch_toggles_behaviour_at_run_time() {
    let g = Guac::new(
        GuacamoleSeed::default()
            .user(UserSeed::admin("guacadmin", "guacadmin"))
            .user(UserSeed::new("bob", "pw").disabled()),
    );
    let t = g.admin();
    let long = json!({"name": "n", "protocol": "ssh", "attributes": {}, "parameters": {"p": "x".repeat(5000)}});
    let check = |v: GuacVersion| {
        g.server.set_version(v);
        let is16 = v == GuacVersion::V1_6;
        assert_eq!(g.server.version(), v);
        // Header tokens always work (≥1.4).
        g.get(&t, "/self").assert_status(200);
        // Directory PATCH mode.
        assert_eq!(
            g.patch(&t, "/connections", &json!([])).status,
            if is16 { 200 } else { 204 }
        );
        // `patches` member.
        assert_eq!(
            g.get(&t, "/connections/999")
                .json()
                .get("patches")
                .is_some(),
            is16
        );
        // HEAD /session.
        assert_eq!(
            g.send("HEAD", "/session", &[("Guacamole-Token", &t)], b"")
                .status,
            if is16 { 204 } else { 405 }
        );
        // Parameter-length error.
        assert_eq!(
            g.post(&t, "/connections", &long).status,
            if is16 { 413 } else { 500 }
        );
        // AUDIT.
        let r = g.patch(
            &t,
            "/users/bob/permissions",
            &json!([{"op": "add", "path": "/systemPermissions", "value": "AUDIT"}]),
        );
        assert_eq!(r.status, if is16 { 204 } else { 500 });
        // disabled representation.
        let bob = g.get(&t, "/users/bob").json();
        if is16 {
            assert_eq!(bob["disabled"], true);
            assert!(bob["attributes"].get("disabled").is_none());
            assert_eq!(g.get(&t, "/schema/userGroupAttributes").json(), json!([]));
        } else {
            assert!(bob.get("disabled").is_none());
            assert_eq!(bob["attributes"]["disabled"], "true");
            assert_ne!(g.get(&t, "/schema/userGroupAttributes").json(), json!([]));
        }
        let rdp_fields: usize = g.get(&t, "/schema/protocols").json()["rdp"]["connectionForms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["fields"].as_array().unwrap().len())
            .sum();
        assert_eq!(rdp_fields, if is16 { 88 } else { 81 });
    };
    check(GuacVersion::V1_5);
    check(GuacVersion::V1_6);
    check(GuacVersion::V1_4);
}

// ---- extras: users, schema, login ban --------------------------------------

#[test]
fn users_and_user_groups_crud() {
    let g = Guac::default_v16();
    let t = g.admin();
    let r = g.post(&t, "/users", &json!({"username": "sync", "password": "pw", "attributes": {"guac-full-name": "Sync", "junk": "x"}}));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"username": "sync", "password": "pw", "disabled": false, "attributes": {"guac-full-name": "Sync"}})
    );
    g.post(
        &t,
        "/users",
        &json!({"username": "sync", "password": "pw", "attributes": {}}),
    )
    .assert_error(400, "BAD_REQUEST", "User \"sync\" already exists.");
    g.post(&t, "/users", &json!({"username": "x", "password": "pw"}))
        .assert_status(500);
    let u = g.get(&t, "/users/sync").json();
    assert_eq!(u["attributes"]["guac-full-name"], "Sync");
    assert!(u.get("password").is_none());
    g.login("sync", "pw");
    g.post(&t, "/userGroups", &json!({"identifier": "ops"}))
        .assert_status(200);
    g.post(
        &t,
        "/userGroups",
        &json!({"identifier": "ops", "attributes": {}}),
    )
    .assert_error(400, "BAD_REQUEST", "Group \"ops\" already exists.");
    assert_eq!(
        g.get(&t, "/userGroups/ops").json(),
        json!({"identifier": "ops", "disabled": false, "attributes": {}})
    );
    g.delete(&t, "/users/sync").assert_status(204);
    g.get(&t, "/users/sync")
        .assert_error(404, "NOT_FOUND", "Not found: \"sync\"");
    g.login_form("username=sync&password=pw").assert_status(403);
}

#[test]
fn schema_endpoints() {
    let g = Guac::default_v16();
    let t = g.admin();
    let protos = g.get(&t, "/schema/protocols").json();
    for p in ["rdp", "vnc", "ssh", "telnet", "kubernetes"] {
        assert_eq!(protos[p]["name"], p);
    }
    let attrs = g.get(&t, "/schema/connectionAttributes").json();
    let names: Vec<&str> = attrs
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["concurrency", "load-balancing", "guacd"]);
    assert_eq!(
        g.get(&t, "/schema/connectionGroupAttributes").json()[0]["fields"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(g.get(&t, "/schema/userPreferenceAttributes").status, 200);
    g.server.set_version(GuacVersion::V1_5);
    assert_eq!(g.get(&t, "/schema/userPreferenceAttributes").status, 404);
}

#[test]
fn login_ban_extension_answers_429_on_1_6() {
    let g = Guac::new(GuacamoleSeed::default().login_ban(LoginBanSeed {
        max_attempts: 3,
        duration_secs: 300,
    }));
    for _ in 0..3 {
        g.login_form("username=guacadmin&password=bad")
            .assert_status(403);
    }
    let v = g
        .login_form("username=guacadmin&password=guacadmin")
        .assert_error(
            429,
            "BAD_REQUEST",
            "Too many failed authentication attempts.",
        );
    assert_eq!(
        v["translatableMessage"]["key"],
        "LOGIN.ERROR_TOO_MANY_ATTEMPTS"
    );
    g.advance(std::time::Duration::from_secs(301));
    g.login("guacadmin", "guacadmin");
    // Not installed (or not 1.6): never 429.
    let g = Guac::new(
        GuacamoleSeed::default()
            .version(GuacVersion::V1_5)
            .login_ban(LoginBanSeed::default()),
    );
    for _ in 0..8 {
        g.login_form("username=guacadmin&password=bad")
            .assert_status(403);
    }
}

#[test]
fn seed_from_yaml_and_state_api_hand_edits() {
    let yaml = r#"
version: "1.5"
base_path: /api
session_timeout_minutes: 5
users:
  - { username: admin, password: pw, admin: true }
  - { username: op, password: pw, system_permissions: [CREATE_CONNECTION] }
connection_groups:
  - { identifier: 4, name: Office }
connections:
  - { name: printer, protocol: vnc, parent: Office, parameters: { hostname: 192.0.2.1, port: "" } }
"#;
    let seed: GuacamoleSeed = serde_saphyr::from_str(yaml).expect("seed parses");
    assert_eq!(seed.version, GuacVersion::V1_5);
    let g = Guac::new(seed);
    assert_eq!(
        g.server.admin_credentials(),
        ("admin".to_string(), "pw".to_string())
    );
    let c = g.server.find_connection("printer").unwrap();
    assert_eq!((c.identifier.as_str(), c.parent.as_str()), ("1", "4"));
    assert_eq!(c.parameters.len(), 1, "empty values are not stored");
    assert!(g.server.rename_connection("1", "printer-2"));
    assert!(g.server.set_parameter("1", "port", Some("5901")));
    assert!(g.server.move_connection("1", "ROOT"));
    let t = g.login("admin", "pw");
    let v = g.get(&t, "/connections/1").json();
    assert_eq!(
        (v["name"].as_str(), v["parentIdentifier"].as_str()),
        (Some("printer-2"), Some("ROOT"))
    );
    assert_eq!(
        g.get(&t, "/connections/1/parameters").json()["port"],
        "5901"
    );
    assert!(g.server.expire_token(&t));
    g.get(&t, "/self").assert_status(403);
    let counts = g.server.counts();
    assert_eq!(
        (
            counts.connections,
            counts.groups,
            counts.users,
            counts.sessions
        ),
        (1, 1, 2, 0)
    );
    let bad: Result<GuacamoleSeed, _> = serde_saphyr::from_str("versio: 1.6\n");
    assert!(bad.is_err(), "unknown fields are rejected");
}

#[test]
fn documented_yaml_seed_example_loads() {
    // Kept in step with the example in `guacamole/seed.rs`'s module docs.
    let yaml = r#"
version: "1.6"
base_path: /guacamole/api
data_source: postgresql
session_timeout_minutes: 60
max_request_bytes: 2097152
login_ban: { max_attempts: 5, duration_secs: 300 }
users:
  - { username: guacadmin, password: guacadmin, admin: true }
  - username: sync
    password: secret
    system_permissions: [CREATE_CONNECTION, CREATE_CONNECTION_GROUP]
    connection_group_permissions: { "1": [READ, UPDATE] }
    connection_permissions: { "2": [READ] }
    attributes: { guac-full-name: Sync daemon }
    disabled: false
    last_active_ms: 1717171717000
user_groups:
  - identifier: ops
    member_users: [sync]
    member_user_groups: []
    connection_permissions: { "2": [READ] }
connection_groups:
  - { identifier: 1, name: Proxmox, type: ORGANIZATIONAL }
  - { name: Pool, parent: Proxmox, type: BALANCING, attributes: { enable-session-affinity: "true" } }
connections:
  - identifier: 2
    name: legacy-ssh
    protocol: ssh
    parent: "1"
    parameters: { hostname: 192.0.2.11, port: "22" }
    attributes: { max-connections: "2" }
    last_active_ms: 1717171717000
"#;
    let seed: GuacamoleSeed = serde_saphyr::from_str(yaml).expect("documented seed parses");
    let g = Guac::new(seed);
    let t = g.login("sync", "secret");
    let tree = g.get(&t, "/connectionGroups/ROOT/tree").json();
    let proxmox = &tree["childConnectionGroups"][0];
    assert_eq!(proxmox["name"], "Proxmox");
    assert_eq!(proxmox["childConnections"][0]["name"], "legacy-ssh");
    assert_eq!(
        proxmox["childConnections"][0]["lastActive"],
        json!(1_717_171_717_000u64)
    );
    assert_eq!(
        g.server.group("2").unwrap().attributes["enable-session-affinity"].as_deref(),
        Some("true")
    );
    assert!(
        g.post(&t, "/connections", &conn_body("new", Some("1")))
            .status
            == 200
    );
}

#[test]
fn directory_patch_on_users_and_user_groups() {
    let g = Guac::default_v16();
    let t = g.admin();
    let r = g.patch(
        &t,
        "/users",
        &json!([
            {"op": "add", "path": "/", "value": {"username": "alice", "password": "pw", "attributes": {}}},
            {"op": "add", "path": "/", "value": {"username": "bob", "password": "pw", "attributes": {}}},
        ]),
    );
    assert_eq!(
        r.json(),
        json!({"patches": [
            {"op": "add", "identifier": "alice", "path": "/"},
            {"op": "add", "identifier": "bob", "path": "/"},
        ]})
    );
    g.login("alice", "pw");
    let r = g.patch(
        &t,
        "/users",
        &json!([
            {"op": "remove", "path": "/bob"},
            {"op": "add", "path": "/", "value": {"username": "alice", "password": "x", "attributes": {}}},
        ]),
    );
    let v = r.assert_error(400, "BAD_REQUEST", "The provided patches failed to apply.");
    assert_eq!(
        v["patches"][0]["identifier"],
        Value::Null,
        "successful remove nulled"
    );
    assert_eq!(
        v["patches"][1]["error"]["variables"]["MESSAGE"],
        "User \"alice\" already exists."
    );
    g.get(&t, "/users/bob").assert_status(200);
    g.patch(
        &t,
        "/userGroups",
        &json!([{"op": "add", "path": "/", "value": {"identifier": "ops"}}]),
    )
    .assert_status(200);
    g.patch(
        &t,
        "/userGroups",
        &json!([{"op": "remove", "path": "/ops"}]),
    )
    .assert_status(200);
    g.get(&t, "/userGroups/ops")
        .assert_error(404, "NOT_FOUND", "Not found: \"ops\"");
    // ≤1.5: remove-only also applies to users.
    g.server.set_version(GuacVersion::V1_5);
    g.patch(&t, "/users", &json!([{"op": "remove", "path": "/bob"}]))
        .assert_status(204);
    g.get(&t, "/users/bob").assert_status(404);
}

#[test]
fn non_admin_tree_shows_only_readable_objects_and_filters_connections() {
    let g = Guac::new(
        GuacamoleSeed::default()
            .user(UserSeed::admin("guacadmin", "guacadmin"))
            .user(
                UserSeed::new("u", "pw")
                    .connection_group_permission("1", "READ")
                    .connection_permission("1", "READ")
                    .connection_permission("2", "READ")
                    .connection_permission("2", "UPDATE"),
            )
            .connection_group(ConnectionGroupSeed::new("Visible").identifier(1))
            .connection_group(ConnectionGroupSeed::new("Hidden").identifier(2))
            .connection(ConnectionSeed::new("a", "ssh").identifier(1).parent("1"))
            .connection(ConnectionSeed::new("b", "ssh").identifier(2).parent("1"))
            .connection(ConnectionSeed::new("c", "ssh").identifier(3).parent("1"))
            .connection(ConnectionSeed::new("d", "ssh").identifier(4).parent("2")),
    );
    let t = g.login("u", "pw");
    let tree = g.get(&t, "/connectionGroups/ROOT/tree").json();
    let groups = tree["childConnectionGroups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    let names: Vec<&str> = groups[0]["childConnections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    let filtered = g
        .get(&t, "/connectionGroups/ROOT/tree?permission=UPDATE")
        .json();
    assert_eq!(
        filtered["childConnectionGroups"][0]["childConnections"],
        json!([g.get(&t, "/connections/2").json()])
    );
    g.get(&t, "/connectionGroups/2")
        .assert_error(404, "NOT_FOUND", "Not found: \"2\"");
    assert_eq!(
        g.get(&t, "/connectionGroups")
            .json()
            .as_object()
            .unwrap()
            .len(),
        1
    );
}

// ---- rule 19: 1.6 directory PATCH collects every Guacamole error -----------

fn group_body(name: &str, parent: &str) -> Value {
    json!({"name": name, "parentIdentifier": parent, "type": "ORGANIZATIONAL", "attributes": {}})
}

#[test]
fn r19_v16_patch_collects_5xx_guacamole_errors_and_root_is_not_found() {
    let g = Guac::default_v16();
    let t = g.admin();
    let a = g.create_group(&t, "A", "ROOT");
    let b = g.create_group(&t, "B", &a);
    let before = g.server.snapshot();
    // Moving a group into its own descendant is a 501 Guacamole error: it is
    // collected like any other entry failure, and the request answers 400.
    let r = g.patch(
        &t,
        "/connectionGroups",
        &json!([
            {"op": "add", "path": "/", "value": group_body("C", "ROOT")},
            {"op": "replace", "path": format!("/{a}"), "value": group_body("A", &b)},
            {"op": "replace", "path": "/ROOT", "value": group_body("ROOT", "ROOT")},
        ]),
    );
    let v = r.assert_error(400, "BAD_REQUEST", "The provided patches failed to apply.");
    assert_eq!(
        v["patches"],
        json!([
            {"op": "add", "identifier": null, "path": "/"},
            {"op": "replace", "identifier": a, "path": format!("/{a}"),
             "error": {"key": "APP.TEXT_UNTRANSLATED", "variables": {"MESSAGE": "A connection group may not contain itself."}}},
            {"op": "replace", "identifier": "ROOT", "path": "/ROOT",
             "error": {"key": "APP.TEXT_UNTRANSLATED", "variables": {"MESSAGE": "Not found: \"ROOT\""}}},
        ])
    );
    assert_eq!(g.server.snapshot(), before, "everything rolled back");
    // A missing op falls through to "unsupported": the whole request is 501.
    g.patch(&t, "/connections", &json!([{"path": "/1"}]))
        .assert_error(
            501,
            "INTERNAL_ERROR",
            "Unsupported patch operation \"null\". Only add, replace, and remove are supported.",
        );
    // Non-Guacamole failures (here a storage constraint) still abort with 500.
    g.patch(
        &t,
        "/connections",
        &json!([{"op": "add", "path": "/", "value": {"name": "n", "protocol": "ssh"}}]),
    )
    .assert_error(500, "INTERNAL_ERROR", "Unexpected internal error");
    assert_eq!(g.server.snapshot(), before);
}

// ---- rule 20: permission PATCH, kind by kind --------------------------------

#[test]
fn r20_a_bad_identifier_leaves_none_of_its_kinds_grants_but_earlier_kinds_stay() {
    let g = Guac::new(
        GuacamoleSeed::default()
            .user(UserSeed::admin("guacadmin", "guacadmin"))
            .user(UserSeed::new("alice", "pw")),
    );
    let t = g.admin();
    let grp = g.create_group(&t, "G", "ROOT");
    let c = g.create_connection(&t, "c", &grp);
    let p = "/users/alice/permissions";
    // Connection grants come first (applied), then group grants: one insert
    // for the kind, which fails on 999 and takes the good one with it.
    g.patch(
        &t,
        p,
        &json!([
            {"op": "add", "path": format!("/connectionGroupPermissions/{grp}"), "value": "READ"},
            {"op": "add", "path": "/connectionGroupPermissions/999", "value": "READ"},
            {"op": "add", "path": format!("/connectionPermissions/{c}"), "value": "READ"},
        ]),
    )
    .assert_error(500, "INTERNAL_ERROR", "Unexpected internal error");
    let v = g.get(&t, p).json();
    assert_eq!(v["connectionPermissions"], json!({ c.clone(): ["READ"] }));
    assert_eq!(v["connectionGroupPermissions"], json!({}));
    // An empty identifier is taken verbatim and fails in storage: 500.
    g.patch(
        &t,
        p,
        &json!([{"op": "add", "path": "/connectionPermissions/", "value": "READ"}]),
    )
    .assert_error(500, "INTERNAL_ERROR", "Unexpected internal error");
    // A missing op ends in 500 (the switch on a null operation).
    g.patch(
        &t,
        p,
        &json!([{"path": format!("/connectionPermissions/{c}"), "value": "UPDATE"}]),
    )
    .assert_error(500, "INTERNAL_ERROR", "Unexpected internal error");
    assert_eq!(
        g.get(&t, p).json()["connectionPermissions"],
        json!({ c.clone(): ["READ"] })
    );
}

#[test]
fn r20_a_non_administrator_is_authorised_kind_by_kind() {
    let g = Guac::new(
        GuacamoleSeed::default()
            .user(UserSeed::admin("guacadmin", "guacadmin"))
            .user(UserSeed::new("sync", "pw"))
            .user(UserSeed::new("alice", "pw")),
    );
    let t = g.admin();
    let grp = g.create_group(&t, "G", "ROOT");
    let c = g.create_connection(&t, "c", &grp);
    // sync may see and edit alice and administer the connection, not the group.
    g.patch(
        &t,
        "/users/sync/permissions",
        &json!([
            {"op": "add", "path": "/userPermissions/alice", "value": "READ"},
            {"op": "add", "path": "/userPermissions/alice", "value": "UPDATE"},
            {"op": "add", "path": format!("/connectionPermissions/{c}"), "value": "ADMINISTER"},
        ]),
    )
    .assert_status(204);
    let s = g.login("sync", "pw");
    g.patch(
        &s,
        "/users/alice/permissions",
        &json!([
            {"op": "add", "path": format!("/connectionPermissions/{c}"), "value": "READ"},
            {"op": "add", "path": format!("/connectionGroupPermissions/{grp}"), "value": "READ"},
        ]),
    )
    .assert_error(403, "PERMISSION_DENIED", "Permission denied.");
    let v = g.get(&t, "/users/alice/permissions").json();
    assert_eq!(v["connectionPermissions"], json!({ c.clone(): ["READ"] }));
    assert_eq!(v["connectionGroupPermissions"], json!({}));
}
