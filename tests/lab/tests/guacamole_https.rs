//! End-to-end contract checks of the Guacamole emulator over HTTPS through
//! the lab's real listener, with a plain `reqwest` client trusting only the
//! lab certificate: wire-level statuses, headers, bodies, the request log.

use std::time::Duration;

use pve_guac_lab::guacamole::{ConnectionSeed, GuacVersion, GuacamoleSeed};
use pve_guac_lab::{Lab, LabSeed};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

async fn lab_with(guacamole: GuacamoleSeed) -> Lab {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seed = LabSeed {
        clusters: Vec::new(),
        guacamole,
        clock_scale: 0.0, // frozen: tests step time with advance()
        ..LabSeed::default()
    };
    Lab::start(seed).await.expect("lab starts")
}

fn client(lab: &Lab) -> Client {
    let cert = reqwest::Certificate::from_pem(lab.cert_pem().as_bytes()).unwrap();
    Client::builder()
        .tls_certs_only([cert])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn login(c: &Client, base: &str, user: &str, pass: &str) -> reqwest::Response {
    c.post(format!("{base}/tokens"))
        .form(&[("username", user), ("password", pass)])
        .send()
        .await
        .unwrap()
}

async fn token(c: &Client, base: &str) -> String {
    let r = login(c, base, "guacadmin", "guacadmin").await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["authToken"]
        .as_str()
        .unwrap()
        .to_string()
}

fn ctype(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn https_login_crud_patch_and_errors() {
    let lab = lab_with(GuacamoleSeed::default()).await;
    let c = client(&lab);
    let base = lab.guacamole_url();
    assert!(base.ends_with("/guacamole/api"), "{base}");

    // Rule 2: login over the wire.
    let r = login(&c, &base, "guacadmin", "guacadmin").await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let t = v["authToken"].as_str().unwrap().to_string();
    assert_eq!(t.len(), 64);
    assert_eq!(
        v["availableDataSources"],
        json!(["postgresql", "postgresql-shared"])
    );

    let r = login(&c, &base, "guacadmin", "wrong").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["type"].as_str(), v["message"].as_str()),
        (Some("INVALID_CREDENTIALS"), Some("Invalid login"))
    );

    // Rule 1/3: token via header; missing token → 403 "Permission Denied.".
    let ds = format!("{base}/session/data/postgresql");
    let r = c.get(format!("{ds}/connections")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "Permission Denied."
    );

    // Rule 8: create (200 echo), update (204 empty), tree, delete.
    let r = c
        .post(format!("{ds}/connections"))
        .header("Guacamole-Token", &t)
        .json(
            &json!({"name": "web-01", "parentIdentifier": "ROOT", "protocol": "rdp",
            "parameters": {"hostname": "10.0.0.5", "password": "pw"}, "attributes": {}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let id = r.json::<Value>().await.unwrap()["identifier"]
        .as_str()
        .unwrap()
        .to_string();
    let r = c
        .put(format!("{ds}/connections/{id}"))
        .header("Guacamole-Token", &t)
        .json(&json!({"name": "web-01", "protocol": "rdp", "parameters": {"hostname": "10.0.0.6"}, "attributes": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.bytes().await.unwrap().len(), 0);
    assert_eq!(
        lab.guacamole().parameters(&id).unwrap()["hostname"],
        "10.0.0.6"
    );

    // Rule 13: 1.6 PATCH version probe and a batch.
    let r = c
        .patch(format!("{ds}/connections"))
        .header("Guacamole-Token", &t)
        .json(&json!([{"op": "remove", "path": format!("/{id}")}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"patches": [{"op": "remove", "identifier": id, "path": format!("/{id}")}]})
    );

    // Rule 4: malformed JSON → 400 text/plain on the wire.
    let r = c
        .post(format!("{ds}/connections"))
        .header("Guacamole-Token", &t)
        .header("Content-Type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(ctype(&r).unwrap().starts_with("text/plain"));

    // HEAD /session (1.6): 204, no body.
    let r = c
        .request(Method::HEAD, format!("{base}/session"))
        .header("Guacamole-Token", &t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // Request log: routes are templates; passwords and tokens are redacted.
    let counts = lab.request_counts();
    assert_eq!(counts.get("POST /tokens"), Some(&2), "{counts:?}");
    assert_eq!(
        counts.get("PUT /session/data/{ds}/connections/{id}"),
        Some(&1),
        "{counts:?}"
    );
    let logged = lab.requests();
    let login_entry = logged.iter().find(|r| r.route == "POST /tokens").unwrap();
    assert_eq!(login_entry.param("password"), Some("***"));
    let create = logged
        .iter()
        .find(|r| r.route == "POST /session/data/{ds}/connections" && r.status == 200)
        .unwrap();
    assert_eq!(
        create.json.as_ref().unwrap()["parameters"]["password"],
        "***"
    );
    assert!(
        logged
            .iter()
            .all(|r| !r.query.contains(&t) && !r.path.contains(&t))
    );

    // Logout ends the session.
    let r = c
        .delete(format!("{base}/session"))
        .header("Guacamole-Token", &t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(!lab.guacamole().token_is_live(&t));
    lab.shutdown().await;
}

#[tokio::test]
async fn https_base_path_api_version_1_5_expiry_and_413() {
    let lab = lab_with(
        GuacamoleSeed::default()
            .base_path("/api")
            .version(GuacVersion::V1_5)
            .session_timeout_minutes(1)
            .max_request_bytes(4096)
            .connection(ConnectionSeed::new("hand-made", "vnc").parameter("hostname", "h")),
    )
    .await;
    let c = client(&lab);
    let base = lab.guacamole_url();
    assert!(
        base.ends_with("/api") && !base.contains("/guacamole"),
        "{base}"
    );
    let t = token(&c, &base).await;
    let ds = format!("{base}/session/data/postgresql");

    // ?token= works too; 1.5 PATCH probe answers 204 empty.
    let r = c
        .get(format!("{ds}/connections?token={t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["1"]["name"], "hand-made");
    let r = c
        .patch(format!("{ds}/connections"))
        .header("Guacamole-Token", &t)
        .json(&json!([]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // Error bodies have no `patches` member before 1.6.
    let r = c
        .get(format!("{ds}/connections/9"))
        .header("Guacamole-Token", &t)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["message"], "Not found: \"9\"");
    assert!(v.get("patches").is_none() && v.get("statusCode").is_some());

    // api-max-request-size → 413 JSON error.
    let r = c
        .post(format!("{ds}/connections"))
        .header("Guacamole-Token", &t)
        .header("Content-Type", "application/json")
        .body(vec![b' '; 5000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "Request body/entity too large."
    );

    // Inactivity expiry on the lab clock.
    lab.clock().advance(Duration::from_secs(121));
    let r = c
        .get(format!("{ds}/self"))
        .header("Guacamole-Token", &t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Outside the base path: 404.
    let r = c
        .get(format!("{}/guacamole/api/tokens", lab.guacamole_origin()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    lab.shutdown().await;
}
