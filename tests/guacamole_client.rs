//! The Guacamole client against the lab's Guacamole emulator: login and base
//! path detection, object lifecycle, typed errors, 1.6 atomic batches and the
//! 1.5 per-object fallback, transparent re-login, permission checks.

use std::sync::Arc;
use std::time::Duration;

use pve_guac_lab::guacamole::{GuacVersion, GuacamoleSeed, UserSeed};
use pve_guac_lab::{FaultAction, FaultRule, Lab, LabSeed, RecordedRequest, RequestMark};
use pve_guac_sync::guacamole::{
    BatchMode, ConnectionSpec, DirectoryOp, GroupSpec, GuacamoleClient, GuacamoleClientConfig,
    GuacamoleError, ObjectKind, ObjectPermission, OpResult, Parameters, PermissionChange,
    PermissionTarget, ROOT_GROUP, ServerVersion,
};
use pve_guac_sync::http::{HttpConfig, TlsMode};
use pve_guac_sync::secret::Secret;

const DS: &str = "/guacamole/api/session/data/postgresql";

async fn lab_with(seed: GuacamoleSeed) -> Lab {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut lab_seed = LabSeed::with_clusters(Vec::new());
    lab_seed.guacamole = seed;
    Lab::start(lab_seed).await.expect("lab starts")
}

fn config(lab: &Lab, url: &str, username: &str, password: &str) -> GuacamoleClientConfig {
    let mut http = HttpConfig::new("guacamole", TlsMode::PinnedSha256(lab.fingerprint_bytes()));
    http.request_timeout = Duration::from_secs(10);
    http.retry.max_attempts = 2;
    http.retry.base = Duration::from_millis(10);
    http.retry.cap = Duration::from_millis(100);
    GuacamoleClientConfig {
        url: url.parse().expect("url"),
        base_path: None,
        username: username.to_owned(),
        password: Secret::new(password),
        data_source: None,
        http,
    }
}

fn client(lab: &Lab, url: &str, username: &str, password: &str) -> GuacamoleClient {
    GuacamoleClient::new(config(lab, url, username, password)).expect("client builds")
}

fn admin(lab: &Lab) -> GuacamoleClient {
    client(lab, &lab.guacamole_url(), "guacadmin", "guacadmin")
}

fn since(lab: &Lab, mark: RequestMark) -> Vec<RecordedRequest> {
    lab.requests_since(mark)
        .into_iter()
        .filter(|r| r.server == "guacamole")
        .collect()
}

/// `METHOD path status` per request, data-source prefix shortened to `{ds}`.
fn lines(reqs: &[RecordedRequest]) -> Vec<String> {
    reqs.iter()
        .map(|r| format!("{} {} {}", r.method, r.path.replace(DS, "{ds}"), r.status))
        .collect()
}

fn params(pairs: &[(&str, &str)]) -> Parameters {
    pairs.iter().map(|(k, v)| (*k, *v)).collect()
}

fn rdp(name: &str, parent: &str, host: &str) -> ConnectionSpec {
    ConnectionSpec::new(
        name,
        parent,
        "rdp",
        params(&[
            ("hostname", host),
            ("port", "3389"),
            ("password", "hunter2"),
        ]),
    )
}

/// The token never appears in a URL (path or query) the server saw.
fn assert_token_never_in_urls(lab: &Lab) {
    for r in lab.requests() {
        assert!(r.query.is_empty(), "query sent: {} {}", r.method, r.path);
        assert!(!r.path.contains("/tokens/"), "token in path: {}", r.path);
    }
}

#[tokio::test]
async fn login_finds_guacamole_api_and_logs_out() {
    let lab = lab_with(GuacamoleSeed::default()).await;
    let client = client(&lab, &lab.guacamole_origin(), "guacadmin", "guacadmin");
    let mark = lab.request_mark();
    let info = client.login().await.expect("login");
    assert_eq!(
        info.base_url.as_str(),
        format!("{}/guacamole/api", lab.guacamole_origin())
    );
    assert_eq!(info.username, "guacadmin");
    assert_eq!(info.data_source, "postgresql");
    assert!(
        info.available_data_sources
            .contains(&"postgresql".to_owned())
    );
    let reqs = since(&lab, mark);
    assert_eq!(lines(&reqs), ["POST /guacamole/api/tokens 200"]);
    assert_eq!(reqs[0].param("username"), Some("guacadmin"));
    assert_eq!(reqs[0].param("password"), Some("***"));
    assert_eq!(lab.guacamole().sessions_of("guacadmin"), 1);

    // A second call reuses the session.
    client.login().await.expect("login again");
    assert_eq!(client.login_count(), 1);

    let mark = lab.request_mark();
    client.logout().await.expect("logout");
    assert_eq!(
        lines(&since(&lab, mark)),
        ["DELETE /guacamole/api/session 204"]
    );
    assert_eq!(lab.guacamole().sessions_of("guacadmin"), 0);
    // Logging out twice is harmless and sends nothing.
    let mark = lab.request_mark();
    client.logout().await.expect("second logout");
    assert!(since(&lab, mark).is_empty());
    assert_token_never_in_urls(&lab);
}

#[tokio::test]
async fn login_falls_back_to_root_context_api() {
    let lab = lab_with(GuacamoleSeed::default().base_path("/api")).await;
    let client = client(&lab, &lab.guacamole_origin(), "guacadmin", "guacadmin");
    let mark = lab.request_mark();
    let info = client.login().await.expect("login");
    assert_eq!(
        info.base_url.as_str(),
        format!("{}/api", lab.guacamole_origin())
    );
    assert_eq!(
        lines(&since(&lab, mark)),
        ["POST /guacamole/api/tokens 404", "POST /api/tokens 200"]
    );
    client.list_connections().await.expect("list under /api");

    // A re-login goes straight to the base found the first time.
    lab.guacamole().expire_all_tokens();
    let mark = lab.request_mark();
    client.list_groups().await.expect("list after re-login");
    assert_eq!(
        lines(&since(&lab, mark)),
        [
            "GET /api/session/data/postgresql/connectionGroups 403",
            "POST /api/tokens 200",
            "GET /api/session/data/postgresql/connectionGroups 200"
        ]
    );
}

#[tokio::test]
async fn explicit_or_unknown_base_paths() {
    let lab = lab_with(GuacamoleSeed::default().base_path("/remote/api")).await;
    // Auto-detection tries the two usual places and says so.
    let lost = client(&lab, &lab.guacamole_origin(), "guacadmin", "guacadmin");
    let err = lost.login().await.expect_err("no API at the usual places");
    assert_eq!(err.label(), "base_path_not_found");
    let text = err.to_string();
    assert!(text.contains("/guacamole/api (HTTP 404)"), "{text}");
    assert!(text.contains("/api (HTTP 404)"), "{text}");

    // A URL ending in /api is used as is; an explicit base_path too.
    let direct = client(&lab, &lab.guacamole_url(), "guacadmin", "guacadmin");
    direct.login().await.expect("url ending in /api");
    let mut cfg = config(&lab, &lab.guacamole_origin(), "guacadmin", "guacadmin");
    cfg.base_path = Some("/remote/api".into());
    let explicit = GuacamoleClient::new(cfg).unwrap();
    let info = explicit.login().await.expect("explicit base path");
    assert!(info.base_url.as_str().ends_with("/remote/api"));
}

#[tokio::test]
async fn login_failures_are_typed_and_hold_no_secrets() {
    let lab = lab_with(GuacamoleSeed::default()).await;
    let wrong = client(&lab, &lab.guacamole_url(), "guacadmin", "not-the-password");
    let err = wrong.login().await.expect_err("wrong password");
    assert!(
        matches!(&err, GuacamoleError::InvalidCredentials { message } if message == "Invalid login"),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?} {wrong:?}").contains("not-the-password"));
    assert_eq!(wrong.login_count(), 0);

    let mut cfg = config(&lab, &lab.guacamole_url(), "guacadmin", "guacadmin");
    cfg.data_source = Some("mysql".into());
    let err = GuacamoleClient::new(cfg)
        .unwrap()
        .login()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, GuacamoleError::UnknownDataSource { data_source } if data_source == "mysql"),
        "{err:?}"
    );
    let mut cfg = config(&lab, &lab.guacamole_url(), "guacadmin", "guacadmin");
    cfg.data_source = Some("postgresql".into());
    GuacamoleClient::new(cfg)
        .unwrap()
        .list_connections()
        .await
        .expect("explicit data source");
}

#[tokio::test]
async fn connection_and_group_lifecycle() {
    let lab = lab_with(GuacamoleSeed::default()).await;
    let guac = lab.guacamole();
    let client = admin(&lab);

    let gid = client
        .create_group(&GroupSpec::organizational("pve-sync", ROOT_GROUP))
        .await
        .expect("create group");
    assert_eq!(guac.group(&gid).unwrap().parent, "ROOT");

    let mut spec = rdp("web-01", &gid, "10.0.0.5");
    spec.parameters.insert("domain", ""); // empty values are not stored
    let mark = lab.request_mark();
    let cid = client
        .create_connection(&spec)
        .await
        .expect("create connection");
    let create = &since(&lab, mark)[0];
    assert_eq!(create.status, 200);
    let sent = create.json.as_ref().expect("json body");
    assert_eq!(sent["attributes"], serde_json::json!({}));
    assert_eq!(sent["parentIdentifier"], serde_json::json!(gid));

    let stored = guac.connection(&cid).expect("stored");
    assert_eq!(
        (stored.name.as_str(), stored.parent.as_str()),
        ("web-01", gid.as_str())
    );
    assert_eq!(stored.parameters.len(), 3);

    let got = client.get_connection(&cid).await.expect("get");
    assert_eq!(got.name, "web-01");
    assert_eq!(got.parent_identifier, gid);
    assert_eq!(got.protocol, "rdp");
    assert_eq!(got.attributes.get("max-connections"), Some(&None));
    let p = client.parameters(&cid).await.expect("parameters");
    assert_eq!(p, spec.parameters.without_empty());
    assert_eq!(p.get("password").unwrap().expose(), "hunter2");

    let tree = client.tree(&gid).await.expect("tree");
    assert_eq!(tree.child_connections.len(), 1);
    assert_eq!(tree.child_connections[0].identifier, cid);
    let root = client.tree(ROOT_GROUP).await.expect("root tree");
    assert_eq!(root.find_group(&gid).unwrap().group.name, "pve-sync");
    assert!(root.all_connections().iter().any(|c| c.identifier == cid));
    assert!(client.list_connections().await.unwrap().contains_key(&cid));
    assert!(client.list_groups().await.unwrap().contains_key(&gid));
    assert_eq!(
        client
            .find_group(ROOT_GROUP, "pve-sync")
            .await
            .unwrap()
            .unwrap()
            .identifier,
        gid
    );

    // Full replace: fewer parameters, an attribute, and a move to ROOT.
    let sub = client
        .create_group(&GroupSpec::organizational("node-a", &gid))
        .await
        .expect("sub-group");
    let mut replaced = ConnectionSpec::new(
        "web-01 (renamed)",
        &sub,
        "rdp",
        params(&[("hostname", "10.0.0.6")]),
    );
    replaced
        .attributes
        .insert("max-connections".into(), Some("2".into()));
    client
        .update_connection(&cid, &replaced)
        .await
        .expect("update");
    let stored = guac.connection(&cid).unwrap();
    assert_eq!(stored.name, "web-01 (renamed)");
    assert_eq!(stored.parent, sub);
    assert_eq!(stored.parameters.keys().collect::<Vec<_>>(), ["hostname"]);
    assert_eq!(
        stored.attributes.get("max-connections"),
        Some(&Some("2".into()))
    );

    // Group full replace: renamed, children untouched.
    client
        .update_group(&sub, &GroupSpec::organizational("node-b", &gid))
        .await
        .expect("update group");
    assert_eq!(guac.group(&sub).unwrap().name, "node-b");
    assert_eq!(guac.connection(&cid).unwrap().parent, sub);

    client.delete_connection(&cid).await.expect("delete");
    assert!(guac.connection(&cid).is_none());
    let again = client.delete_connection(&cid).await.unwrap_err();
    assert_eq!(again.label(), "not_found");

    // Group deletion is recursive.
    let inner = client
        .create_connection(&rdp("inner", &sub, "10.0.0.7"))
        .await
        .unwrap();
    client.delete_group(&gid).await.expect("delete group");
    assert!(guac.group(&gid).is_none() && guac.group(&sub).is_none());
    assert!(guac.connection(&inner).is_none());
    assert_token_never_in_urls(&lab);
}

#[tokio::test]
async fn spec_errors_are_typed() {
    let lab = lab_with(GuacamoleSeed::default()).await;
    let client = admin(&lab);
    let gid = client
        .create_group(&GroupSpec::organizational("pve-sync", ROOT_GROUP))
        .await
        .unwrap();
    client
        .create_connection(&rdp("dup", &gid, "h"))
        .await
        .unwrap();

    match client.create_connection(&rdp("dup", &gid, "h")).await {
        Err(GuacamoleError::DuplicateName { kind, name }) => {
            assert_eq!((kind, name.as_str()), (ObjectKind::Connection, "dup"));
        }
        other => panic!("{other:?}"),
    }
    match client
        .create_group(&GroupSpec::organizational("pve-sync", ROOT_GROUP))
        .await
    {
        Err(GuacamoleError::DuplicateName { kind, name }) => {
            assert_eq!(
                (kind, name.as_str()),
                (ObjectKind::ConnectionGroup, "pve-sync")
            );
        }
        other => panic!("{other:?}"),
    }
    // Same name in another parent is fine.
    client
        .create_connection(&rdp("dup", ROOT_GROUP, "h"))
        .await
        .unwrap();

    let err = client
        .create_connection(&rdp("orphan", "999", "h"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, GuacamoleError::UnknownParent { parent } if parent == "999"),
        "{err:?}"
    );
    let err = client.get_connection("424242").await.unwrap_err();
    assert!(
        matches!(&err, GuacamoleError::NotFound { message } if message == "Not found: \"424242\""),
        "{err:?}"
    );
    assert_eq!(
        client.parameters("424242").await.unwrap_err().label(),
        "not_found"
    );
    assert_eq!(
        client.tree("424242").await.unwrap_err().label(),
        "not_found"
    );

    let child = client
        .create_group(&GroupSpec::organizational("child", &gid))
        .await
        .unwrap();
    let err = client
        .update_group(&gid, &GroupSpec::organizational("pve-sync", &child))
        .await
        .unwrap_err();
    assert!(
        matches!(err, GuacamoleError::GroupContainsItself),
        "{err:?}"
    );

    let blank = client
        .create_connection(&rdp("  ", &gid, "h"))
        .await
        .unwrap_err();
    assert!(
        matches!(&blank, GuacamoleError::BadRequest { message } if message == "Connection names must not be blank."),
        "{blank:?}"
    );

    let secret = "s".repeat(5000);
    let long = ConnectionSpec::new("long", &gid, "ssh", params(&[("password", &secret)]));
    let err = client.create_connection(&long).await.unwrap_err();
    assert!(
        matches!(&err, GuacamoleError::ParameterValueTooLong { parameter } if parameter == "password"),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains(&secret));
}

#[tokio::test]
async fn batch_on_1_6_is_one_atomic_patch_per_directory() {
    let lab = lab_with(GuacamoleSeed::default()).await;
    let guac = lab.guacamole();
    let client = admin(&lab);
    let gid = client
        .create_group(&GroupSpec::organizational("pve-sync", ROOT_GROUP))
        .await
        .unwrap();
    let old = client
        .create_connection(&rdp("old", &gid, "h1"))
        .await
        .unwrap();
    let doomed = client
        .create_connection(&rdp("doomed", &gid, "h2"))
        .await
        .unwrap();

    let mark = lab.request_mark();
    let outcome = client
        .apply_batch(vec![
            DirectoryOp::CreateGroup(GroupSpec::organizational("node-a", &gid)),
            DirectoryOp::CreateConnection(rdp("a", &gid, "10.0.0.1")),
            DirectoryOp::CreateConnection(rdp("b", &gid, "10.0.0.2")),
            DirectoryOp::UpdateConnection {
                identifier: old.clone(),
                spec: rdp("old (renamed)", &gid, "10.0.0.3"),
            },
            DirectoryOp::DeleteConnection {
                identifier: doomed.clone(),
            },
        ])
        .await
        .expect("batch");
    assert_eq!(outcome.mode, BatchMode::AtomicPatch);
    assert!(outcome.all_applied(), "{outcome:?}");
    assert!(outcome.stopped_by.is_none());
    let ids: Vec<String> = outcome
        .results
        .iter()
        .map(|r| match r {
            OpResult::Applied { identifier } => identifier.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(guac.group(&ids[0]).unwrap().name, "node-a");
    assert_eq!(guac.connection(&ids[1]).unwrap().name, "a");
    assert_eq!(guac.connection(&ids[2]).unwrap().name, "b");
    assert_eq!(ids[3], old);
    assert_eq!(
        guac.connection(&old).unwrap().parameters["hostname"],
        "10.0.0.3"
    );
    assert!(guac.connection(&doomed).is_none());
    // The version probe, then one PATCH per directory: nothing else.
    assert_eq!(
        lines(&since(&lab, mark)),
        [
            "PATCH {ds}/connections 200",
            "PATCH {ds}/connectionGroups 200",
            "PATCH {ds}/connections 200"
        ]
    );

    // One failing entry: the server applies nothing, the client says which.
    let before = guac.snapshot();
    let mark = lab.request_mark();
    let outcome = client
        .apply_batch(vec![
            DirectoryOp::CreateConnection(rdp("c", &gid, "10.0.0.4")),
            DirectoryOp::CreateConnection(rdp("a", &gid, "10.0.0.5")),
            DirectoryOp::UpdateConnection {
                identifier: old.clone(),
                spec: rdp("old", &gid, "10.0.0.6"),
            },
            DirectoryOp::DeleteConnection {
                identifier: ids[2].clone(),
            },
        ])
        .await
        .expect("batch answered");
    assert_eq!(guac.snapshot(), before, "an atomic batch changed something");
    let labels: Vec<&str> = outcome.results.iter().map(OpResult::label).collect();
    assert_eq!(
        labels,
        ["rolled_back", "failed", "rolled_back", "rolled_back"]
    );
    match &outcome.results[1] {
        OpResult::Failed {
            error: GuacamoleError::DuplicateName { kind, name },
        } => assert_eq!((*kind, name.as_str()), (ObjectKind::Connection, "a")),
        other => panic!("{other:?}"),
    }
    assert!(outcome.stopped_by.is_none());
    assert_eq!(lines(&since(&lab, mark)), ["PATCH {ds}/connections 400"]);
    let sent = since(&lab, mark)[0].json.clone().unwrap();
    assert_eq!(
        sent[3],
        serde_json::json!({"op": "remove", "path": format!("/{}", ids[2])})
    );
}

#[tokio::test]
async fn batch_on_1_5_uses_one_call_per_object() {
    batch_per_object(GuacVersion::V1_5).await;
}

#[tokio::test]
async fn batch_on_1_4_uses_one_call_per_object() {
    batch_per_object(GuacVersion::V1_4).await;
}

async fn batch_per_object(version: GuacVersion) {
    let lab = lab_with(GuacamoleSeed::default().version(version)).await;
    let guac = lab.guacamole();
    let client = admin(&lab);
    assert_eq!(
        client.server_version().await.unwrap(),
        ServerVersion::UpTo1_5
    );
    let gid = client
        .create_group(&GroupSpec::organizational("pve-sync", ROOT_GROUP))
        .await
        .unwrap();
    let old = client
        .create_connection(&rdp("old", &gid, "h1"))
        .await
        .unwrap();
    let doomed = client
        .create_connection(&rdp("doomed", &gid, "h2"))
        .await
        .unwrap();

    let mark = lab.request_mark();
    let outcome = client
        .apply_batch(vec![
            DirectoryOp::CreateConnection(rdp("a", &gid, "10.0.0.1")),
            DirectoryOp::CreateConnection(rdp("old", &gid, "10.0.0.2")), // duplicate
            DirectoryOp::UpdateConnection {
                identifier: old.clone(),
                spec: rdp("old", &gid, "10.0.0.3"),
            },
            DirectoryOp::DeleteConnection {
                identifier: doomed.clone(),
            },
            DirectoryOp::DeleteConnection {
                identifier: "424242".into(), // already gone
            },
        ])
        .await
        .expect("batch");
    assert_eq!(outcome.mode, BatchMode::PerObject);
    let labels: Vec<&str> = outcome.results.iter().map(OpResult::label).collect();
    assert_eq!(
        labels,
        ["applied", "failed", "applied", "applied", "applied"]
    );
    assert_eq!(outcome.failures()[0].1.label(), "duplicate_name");
    let OpResult::Applied { identifier: a } = &outcome.results[0] else {
        unreachable!()
    };
    assert_eq!(guac.connection(a).unwrap().name, "a");
    assert_eq!(
        guac.connection(&old).unwrap().parameters["hostname"],
        "10.0.0.3"
    );
    assert!(guac.connection(&doomed).is_none());
    // Version known from this session: no probe. Creates and updates are
    // one call each, sent together (any order); the removals one PATCH.
    let reqs = since(&lab, mark);
    let mut calls = lines(&reqs[..3]);
    calls.sort();
    assert_eq!(
        calls,
        [
            "POST {ds}/connections 200",
            "POST {ds}/connections 400",
            format!("PUT {{ds}}/connections/{old} 204").as_str(),
        ]
    );
    assert_eq!(lines(&reqs[3..]), ["PATCH {ds}/connections 204"]);
    assert_eq!(
        reqs[3].json,
        Some(serde_json::json!([
            {"op": "remove", "path": format!("/{doomed}")},
            {"op": "remove", "path": "/424242"}
        ]))
    );
}

/// A 1.5 lab whose Guacamole answers every request after `latency`, and a
/// group to create connections in.
async fn slow_1_5(latency: Duration, concurrency: usize) -> (Lab, GuacamoleClient, String) {
    let lab = lab_with(GuacamoleSeed::default().version(GuacVersion::V1_5)).await;
    let mut cfg = config(&lab, &lab.guacamole_url(), "guacadmin", "guacadmin");
    cfg.http.concurrency = std::num::NonZeroUsize::new(concurrency).unwrap();
    let client = GuacamoleClient::new(cfg).unwrap();
    let gid = client
        .create_group(&GroupSpec::organizational("pve-sync", ROOT_GROUP))
        .await
        .unwrap();
    client.server_version().await.unwrap();
    lab.faults("guacamole").set_latency(latency, Duration::ZERO);
    (lab, client, gid)
}

#[tokio::test]
async fn per_object_calls_on_1_5_overlap_up_to_the_client_concurrency() {
    let (lab, client, gid) = slow_1_5(Duration::from_millis(300), 4).await;
    let names: Vec<String> = (0..8).map(|i| format!("c{i}")).collect();
    let ops = names
        .iter()
        .map(|n| DirectoryOp::CreateConnection(rdp(n, &gid, "10.0.0.1")))
        .collect();
    let started = std::time::Instant::now();
    let outcome = client.apply_batch(ops).await.unwrap();
    let took = started.elapsed();
    // One at a time this takes 8 × 300 ms; four at a time about 600 ms.
    assert!(took < Duration::from_millis(1800), "{took:?}");
    // Results in input order.
    for (name, result) in names.iter().zip(&outcome.results) {
        let OpResult::Applied { identifier } = result else {
            panic!("{outcome:?}")
        };
        assert_eq!(&lab.guacamole().connection(identifier).unwrap().name, name);
    }
    assert_eq!(client.http().concurrency(), 4);
}

#[tokio::test]
async fn a_broken_call_on_1_5_stops_what_has_not_started_and_lets_the_rest_finish() {
    let (lab, client, gid) = slow_1_5(Duration::ZERO, 2).await;
    let first = client
        .create_connection(&rdp("first", &gid, "10.0.0.1"))
        .await
        .unwrap();
    // The update breaks at once (and again when repeated); the create
    // beside it is still on its way and finishes.
    lab.faults("guacamole")
        .add(FaultRule::reset().method("PUT"));
    lab.faults("guacamole")
        .add(FaultRule::delay(Duration::from_millis(400)).method("POST"));
    let mut ops = vec![
        DirectoryOp::UpdateConnection {
            identifier: first.clone(),
            spec: rdp("first", &gid, "10.0.0.9"),
        },
        DirectoryOp::CreateConnection(rdp("beside", &gid, "10.0.0.2")),
    ];
    for i in 0..4 {
        ops.push(DirectoryOp::CreateConnection(rdp(
            &format!("later{i}"),
            &gid,
            "10.0.0.3",
        )));
    }
    let mark = lab.request_mark();
    let outcome = client.apply_batch(ops).await.unwrap();
    let labels: Vec<&str> = outcome.results.iter().map(OpResult::label).collect();
    assert_eq!(
        labels,
        [
            "unknown",
            "applied",
            "not_attempted",
            "not_attempted",
            "not_attempted",
            "not_attempted"
        ],
        "{:?}",
        lines(&since(&lab, mark))
    );
    assert!(outcome.stopped_by.is_some());
    let posts = since(&lab, mark)
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 1);
}

#[tokio::test]
async fn removals_on_1_5_refused_as_a_patch_are_deleted_one_by_one() {
    let (lab, client, gid) = slow_1_5(Duration::ZERO, 4).await;
    let a = client
        .create_connection(&rdp("a", &gid, "10.0.0.1"))
        .await
        .unwrap();
    let b = client
        .create_connection(&rdp("b", &gid, "10.0.0.2"))
        .await
        .unwrap();
    lab.faults("guacamole")
        .add(FaultRule::error(500).method("PATCH").times(1));
    let mark = lab.request_mark();
    let outcome = client
        .apply_batch(vec![
            DirectoryOp::DeleteConnection {
                identifier: a.clone(),
            },
            DirectoryOp::DeleteConnection {
                identifier: b.clone(),
            },
            DirectoryOp::DeleteGroup {
                identifier: gid.clone(),
            },
        ])
        .await
        .unwrap();
    assert!(outcome.all_applied(), "{outcome:?}");
    let mut sent = lines(&since(&lab, mark));
    sent[1..3].sort();
    assert_eq!(
        sent,
        [
            "PATCH {ds}/connections 500".to_owned(),
            format!("DELETE {{ds}}/connections/{a} 204"),
            format!("DELETE {{ds}}/connections/{b} 204"),
            "PATCH {ds}/connectionGroups 204".to_owned(),
        ]
    );
    assert!(lab.guacamole().connection(&a).is_none());
}

#[tokio::test]
async fn version_is_probed_again_after_a_server_restart() {
    let lab = lab_with(GuacamoleSeed::default()).await;
    let client = admin(&lab);
    let mark = lab.request_mark();
    assert_eq!(
        client.server_version().await.unwrap(),
        ServerVersion::From1_6
    );
    assert_eq!(
        client.server_version().await.unwrap(),
        ServerVersion::From1_6
    );
    let reqs = since(&lab, mark);
    assert_eq!(
        lines(&reqs),
        [
            "POST /guacamole/api/tokens 200",
            "PATCH {ds}/connections 200"
        ]
    );
    assert_eq!(reqs[1].json, Some(serde_json::json!([])));

    // A downgrade (restart: all sessions gone) is noticed.
    lab.guacamole().set_version(GuacVersion::V1_5);
    lab.guacamole().expire_all_tokens();
    client.list_connections().await.expect("re-login");
    assert_eq!(
        client.server_version().await.unwrap(),
        ServerVersion::UpTo1_5
    );

    // Downgraded under a live session: the refused PATCH is noticed and the
    // batch is applied one object at a time instead.
    lab.guacamole().set_version(GuacVersion::V1_6);
    client.list_connections().await.unwrap();
    lab.guacamole().expire_all_tokens();
    client.list_connections().await.expect("re-login on 1.6");
    assert_eq!(
        client.server_version().await.unwrap(),
        ServerVersion::From1_6
    );
    lab.guacamole().set_version(GuacVersion::V1_5);
    let outcome = client
        .apply_batch(vec![DirectoryOp::CreateConnection(rdp(
            "x", ROOT_GROUP, "h",
        ))])
        .await
        .unwrap();
    assert!(outcome.all_applied(), "{outcome:?}");
    assert_eq!(
        client.server_version().await.unwrap(),
        ServerVersion::UpTo1_5
    );
}

#[tokio::test]
async fn expired_token_means_one_transparent_relogin() {
    let lab = lab_with(GuacamoleSeed::default()).await;
    let client = Arc::new(admin(&lab));
    client.list_connections().await.expect("first call");
    assert_eq!(client.login_count(), 1);

    // Idle past api-session-timeout (60 min) on the lab clock.
    lab.clock().advance(Duration::from_secs(2 * 3600));
    let mark = lab.request_mark();
    client.list_connections().await.expect("after expiry");
    assert_eq!(
        lines(&since(&lab, mark)),
        [
            "GET {ds}/connections 403",
            "POST /guacamole/api/tokens 200",
            "GET {ds}/connections 200"
        ]
    );
    assert_eq!(client.login_count(), 2);

    // Concurrent callers that all see the expiry share one re-login.
    lab.guacamole().expire_all_tokens();
    let mark = lab.request_mark();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.list_groups().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().expect("concurrent call");
    }
    let logins = since(&lab, mark)
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/tokens"))
        .count();
    assert_eq!(logins, 1);
    assert_eq!(client.login_count(), 3);
    assert_eq!(lab.guacamole().sessions_of("guacadmin"), 1);

    // Logging out of a session the server already ended is not an error.
    lab.guacamole().expire_all_tokens();
    client.logout().await.expect("logout after expiry");
    assert_token_never_in_urls(&lab);
}

#[tokio::test]
async fn a_token_refused_again_is_not_retried_forever() {
    let lab = lab_with(GuacamoleSeed::default()).await;
    let client = admin(&lab);
    client.login().await.unwrap();
    lab.faults("guacamole").add(FaultRule {
        method: Some("GET".into()),
        path_prefix: Some(format!("{DS}/connections")),
        path_contains: None,
        node: None,
        probability: None,
        count: None,
        action: FaultAction::Error {
            status: 403,
            reason: Some("Permission Denied.".into()),
            body: None,
            content_type: None,
            close: None,
        },
    });
    let mark = lab.request_mark();
    let err = client.list_connections().await.unwrap_err();
    assert!(matches!(err, GuacamoleError::InvalidToken), "{err:?}");
    assert_eq!(
        lines(&since(&lab, mark)),
        [
            "GET {ds}/connections 403",
            "POST /guacamole/api/tokens 200",
            "GET {ds}/connections 403"
        ]
    );
}

fn seed_with_operator() -> GuacamoleSeed {
    GuacamoleSeed::default()
        .user(UserSeed::admin("guacadmin", "guacadmin"))
        .user(UserSeed::new("operator", "operator-pw").system_permission("CREATE_CONNECTION"))
}

#[tokio::test]
async fn real_permission_denial_is_reported_not_retried() {
    let lab = lab_with(seed_with_operator()).await;
    let operator = client(&lab, &lab.guacamole_url(), "operator", "operator-pw");
    operator.login().await.unwrap();
    let mark = lab.request_mark();
    let err = operator
        .create_group(&GroupSpec::organizational("pve-sync", ROOT_GROUP))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, GuacamoleError::PermissionDenied { message } if message == "Permission denied."),
        "{err:?}"
    );
    assert_eq!(
        lines(&since(&lab, mark)),
        ["POST {ds}/connectionGroups 403"]
    );
    assert_eq!(operator.login_count(), 1);

    // READ on a connection does not allow reading its parameters.
    let admin = admin(&lab);
    let cid = admin
        .create_connection(&rdp("shared", ROOT_GROUP, "h"))
        .await
        .unwrap();
    admin
        .change_user_permissions(
            "operator",
            &[PermissionChange::grant(
                PermissionTarget::Connection(cid.clone()),
                ObjectPermission::Read,
            )],
        )
        .await
        .unwrap();
    operator.get_connection(&cid).await.expect("readable now");
    let err = operator.parameters(&cid).await.unwrap_err();
    assert!(
        matches!(&err, GuacamoleError::PermissionDenied { message }
            if message == "Permission to read connection parameters denied."),
        "{err:?}"
    );
}

#[tokio::test]
async fn permission_checks_and_grants() {
    let lab = lab_with(seed_with_operator()).await;
    let admin = admin(&lab);
    let operator = client(&lab, &lab.guacamole_url(), "operator", "operator-pw");

    let checks = admin.check_permissions("pve-sync").await.unwrap();
    assert_eq!(checks.len(), 3);
    assert!(checks.iter().all(|c| c.granted), "{checks:?}");

    let checks = operator.check_permissions("pve-sync").await.unwrap();
    let granted: Vec<(&str, bool)> = checks
        .iter()
        .map(|c| (c.permission.as_str(), c.granted))
        .collect();
    assert_eq!(
        granted,
        [
            ("CREATE_CONNECTION", true),
            ("CREATE_CONNECTION_GROUP", false),
            ("CREATE_CONNECTION_GROUP for group \"pve-sync\"", false)
        ]
    );

    // The group exists and the operator may update it: that suffices.
    let gid = admin
        .create_group(&GroupSpec::organizational("pve-sync", ROOT_GROUP))
        .await
        .unwrap();
    let grants = [
        PermissionChange::grant(
            PermissionTarget::ConnectionGroup(gid.clone()),
            ObjectPermission::Read,
        ),
        PermissionChange::grant(
            PermissionTarget::ConnectionGroup(gid.clone()),
            ObjectPermission::Update,
        ),
    ];
    admin
        .change_user_permissions("operator", &grants)
        .await
        .unwrap();
    let direct = lab.guacamole().permissions("operator").unwrap();
    assert_eq!(
        direct["connectionGroupPermissions"][gid.as_str()],
        serde_json::json!(["READ", "UPDATE"])
    );
    let checks = operator.check_permissions("pve-sync").await.unwrap();
    assert!(checks[2].granted, "{checks:?}");
    assert!(checks[2].permission.contains(&format!("({gid})")));

    // The operator can now create connections in it.
    operator
        .create_connection(&rdp("by-operator", &gid, "h"))
        .await
        .expect("operator creates in the managed group");

    // Revoking UPDATE is reflected too.
    admin
        .change_user_permissions(
            "operator",
            &[PermissionChange::revoke(
                PermissionTarget::ConnectionGroup(gid.clone()),
                ObjectPermission::Update,
            )],
        )
        .await
        .unwrap();
    let checks = operator.check_permissions("pve-sync").await.unwrap();
    assert!(!checks[2].granted);
    assert!(
        checks[2].detail.contains("UPDATE or ADMINISTER"),
        "{}",
        checks[2].detail
    );

    // User-group grants use the same body.
    let err = admin
        .change_user_group_permissions("no-such-group", &grants)
        .await
        .unwrap_err();
    assert_eq!(err.label(), "not_found");
}

#[tokio::test]
async fn a_batch_refused_as_a_whole_is_applied_one_by_one() {
    let lab = lab_with(GuacamoleSeed::default().max_request_bytes(64 * 1024)).await;
    let guac = lab.guacamole();
    let client = admin(&lab);

    // An unknown parent fails the whole 1.6 request with a bare 500: the
    // client isolates the bad entry instead of blocking the others.
    let mark = lab.request_mark();
    let outcome = client
        .apply_batch(vec![
            DirectoryOp::CreateConnection(rdp("a", ROOT_GROUP, "h")),
            DirectoryOp::CreateConnection(rdp("b", "999", "h")),
            DirectoryOp::CreateConnection(rdp("c", ROOT_GROUP, "h")),
        ])
        .await
        .unwrap();
    let labels: Vec<&str> = outcome.results.iter().map(OpResult::label).collect();
    assert_eq!(labels, ["applied", "failed", "applied"], "{outcome:?}");
    assert!(matches!(
        &outcome.results[1],
        OpResult::Failed { error: GuacamoleError::UnknownParent { parent } } if parent == "999"
    ));
    assert!(guac.find_connection("a").is_some() && guac.find_connection("c").is_some());
    assert!(guac.find_connection("b").is_none());
    let sent = lines(&since(&lab, mark));
    assert_eq!(
        &sent[..5],
        [
            "POST /guacamole/api/tokens 200",
            "PATCH {ds}/connections 200",
            "PATCH {ds}/connections 500",
            "POST {ds}/connections 200",
            "POST {ds}/connections 500"
        ]
    );

    // A batch over the server's request size limit (413) goes one by one too.
    let big = "x".repeat(3000);
    let ops: Vec<DirectoryOp> = (0..30)
        .map(|i| {
            DirectoryOp::CreateConnection(ConnectionSpec::new(
                format!("big-{i}"),
                ROOT_GROUP,
                "ssh",
                params(&[("hostname", "h"), ("private-key", &big)]),
            ))
        })
        .collect();
    let mark = lab.request_mark();
    let outcome = client.apply_batch(ops).await.unwrap();
    assert!(outcome.all_applied(), "{outcome:?}");
    let reqs = since(&lab, mark);
    assert_eq!(lines(&reqs)[0], "PATCH {ds}/connections 413");
    assert_eq!(reqs.len(), 31);
    assert_eq!(guac.counts().connections, 32);
}

#[tokio::test]
async fn a_declined_login_is_not_repeated() {
    // A login ban answers 429: repeating the login would only extend it.
    let lab = lab_with(GuacamoleSeed::default()).await;
    lab.faults("guacamole").add(
        FaultRule::retry_after(429, 0)
            .method("POST")
            .path_contains("/tokens")
            .times(5),
    );
    let mark = lab.request_mark();
    let err = admin(&lab).login().await.unwrap_err();
    let logins = since(&lab, mark)
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/tokens"))
        .count();
    assert_eq!(logins, 1, "{err}");
}

#[tokio::test]
async fn a_429_during_base_detection_stops_and_says_so() {
    // An origin-only URL makes the client detect the API base; a rate limit
    // on the first candidate must not send the credentials on to the next.
    let lab = lab_with(GuacamoleSeed::default().base_path("/api")).await;
    lab.faults("guacamole").add(
        FaultRule::retry_after(429, 30)
            .method("POST")
            .path_contains("/tokens")
            .times(5),
    );
    let c = client(&lab, &lab.guacamole_origin(), "guacadmin", "guacadmin");
    let mark = lab.request_mark();
    let err = c.login().await.unwrap_err();
    assert_eq!(err.label(), "rate_limited", "{err}");
    assert!(err.to_string().contains("429"), "{err}");
    assert_eq!(
        lines(&since(&lab, mark)),
        ["POST /guacamole/api/tokens 429"]
    );
}

/// A fault answering `status` with `body` (JSON) to matching requests.
fn answer(status: u16, body: &str, method: &str, path: &str) -> FaultRule {
    let mut rule = FaultRule::error(status).method(method).path_contains(path);
    if let FaultAction::Error {
        body: b,
        content_type,
        ..
    } = &mut rule.action
    {
        *b = Some(body.to_owned());
        *content_type = Some("application/json".into());
    }
    rule
}

#[tokio::test]
async fn a_gateway_error_on_a_patch_never_resends_its_entries_one_by_one() {
    // A 502/504 from a proxy says nothing about whether the batch applied:
    // sending its entries again could duplicate them. The outcome is
    // unknown and the batch stops, so the next cycle re-reads the tree.
    for status in [502, 504] {
        let lab = lab_with(GuacamoleSeed::default()).await;
        let client = admin(&lab);
        let gid = client
            .create_group(&GroupSpec::organizational("pve-sync", ROOT_GROUP))
            .await
            .unwrap();
        client.server_version().await.unwrap(); // the probe is a PATCH too
        lab.faults("guacamole").add(
            FaultRule::error(status)
                .method("PATCH")
                .path_contains("/connections")
                .times(1),
        );
        let mark = lab.request_mark();
        let outcome = client
            .apply_batch(vec![
                DirectoryOp::CreateConnection(rdp("a", &gid, "10.0.0.1")),
                DirectoryOp::CreateConnection(rdp("b", &gid, "10.0.0.2")),
            ])
            .await
            .expect("batch answered");
        let labels: Vec<&str> = outcome.results.iter().map(OpResult::label).collect();
        assert_eq!(
            labels,
            ["unknown", "unknown"],
            "{status}: {outcome:?} {:?}",
            lines(&since(&lab, mark))
        );
        assert!(outcome.stopped_by.is_some());
        let sent: Vec<String> = lines(&since(&lab, mark))
            .into_iter()
            .filter(|l| !l.starts_with("GET"))
            .collect();
        assert_eq!(
            sent,
            [format!("PATCH {{ds}}/connections {status}")],
            "no per-object resend"
        );
    }
}

#[tokio::test]
async fn server_errors_that_echo_the_request_never_carry_its_secrets() {
    let lab = lab_with(GuacamoleSeed::default()).await;
    let client = admin(&lab);
    let echo = r#"{"message":"Unrecognized field \"x\" in {\"parameters\":{\"password\":\"hunter2\"}}","type":"BAD_REQUEST","translatableMessage":null,"statusCode":null,"expected":null,"patches":null}"#;
    lab.faults("guacamole")
        .add(answer(400, echo, "POST", "/connections").times(1));
    let err = client
        .create_connection(&rdp("a", ROOT_GROUP, "10.0.0.1"))
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("***"), "{shown}");

    client.server_version().await.unwrap(); // the probe is a PATCH too
    lab.faults("guacamole")
        .add(answer(400, echo, "PATCH", "/connections").times(1));
    let outcome = client
        .apply_batch(vec![DirectoryOp::CreateConnection(rdp(
            "b", ROOT_GROUP, "10.0.0.2",
        ))])
        .await
        .unwrap();
    let shown = format!("{outcome:?} {}", outcome.results[0].label());
    for r in &outcome.results {
        if let OpResult::Failed { error } | OpResult::Unknown { error } = r {
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
    }
    assert!(!shown.contains("hunter2"), "{shown}");
}
