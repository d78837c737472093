//! Contract tests of the Proxmox VE emulator, one (or more) per rule of
//! `spec/proxmox-api.md` §13, at the handler level: constructed requests
//! straight into a node's handler, answers checked as the spec gives them
//! (status, reason phrase, headers, body, error texts). The end-to-end
//! versions over HTTPS are in `proxmox_e2e.rs`.

mod proxmox_common;

use std::time::Duration;

use proxmox_common::*;
use pve_guac_lab::clock::Clock;
use pve_guac_lab::proxmox::{
    AgentState, ClusterSeed, GuestSeed, LxcInterfacesShape, SeedStatus, ShutdownBehaviour,
};
use serde_json::{Value, json};

fn is_upid(s: &str, node: &str, kind: &str, id: &str, user: &str) -> bool {
    let f: Vec<&str> = s.split(':').collect();
    let hex = |x: &str, n: usize| {
        x.len() == n
            && x.bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    };
    f.len() == 9
        && f[0] == "UPID"
        && f[1] == node
        && hex(f[2], 8)
        && (hex(f[3], 8) || hex(f[3], 9))
        && hex(f[4], 8)
        && f[5] == kind
        && f[6] == id
        && f[7] == user
        && f[8].is_empty()
}

const SYNC: &str = "sync@pve!pve-guac-sync";

// ---------------------------------------------------------------- rule 1

#[tokio::test]
async fn rule01_json_envelope_headers_and_merged_parameters() {
    let pve = Pve::example();
    let a = pve.call("GET", "/version").await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("Content-Type"),
        Some("application/json;charset=UTF-8")
    );
    assert_eq!(a.header("Server"), Some("pve-api-daemon/3.0"));
    assert_eq!(a.header("Cache-Control"), Some("max-age=0"));
    assert_eq!(a.header("Pragma"), Some("no-cache"));
    assert!(a.header("Expires").is_some());
    assert_eq!(
        a.data(),
        json!({"version": "9.1.6", "release": "9.1", "repoid": "0123456789abcdef"})
    );
    assert!(!a.close);
    assert!(!a.text().contains(": "), "compact JSON");

    // Query and form body are merged; the query wins.
    let req = request(
        "PUT",
        "/api2/json/nodes/pve1/qemu/100/config?description=from-query",
        &[
            ("Authorization", &pve.auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"description=from-body",
    );
    let a = pve.send("pve1", req).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json(), json!({"data": null}));
    assert_eq!(pve.cluster.notes(100).as_deref(), Some("from-query"));

    // A body without Content-Type is form data.
    let req = request(
        "PUT",
        "/api2/json/nodes/pve1/qemu/100/config",
        &[("Authorization", &pve.auth)],
        b"description=no%20type",
    );
    assert_eq!(pve.send("pve1", req).await.status, 200);
    assert_eq!(pve.cluster.notes(100).as_deref(), Some("no type"));

    // JSON bodies, with real JSON booleans.
    let a = pve
        .json(
            "PUT",
            "/nodes/pve1/lxc/200/config",
            json!({"description": "json body", "onboot": true}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let cfg = pve.cluster.config(200).unwrap();
    assert_eq!(cfg["description"], "json body\n");
    assert_eq!(cfg["onboot"], 1);

    // Chunked bodies and bodies on GET are refused with 501.
    let mut req = request(
        "PUT",
        "/api2/json/nodes/pve1/qemu/100/config",
        &[("Authorization", &pve.auth)],
        b"description=x",
    );
    req.chunked = true;
    let a = pve.send("pve1", req).await;
    assert_eq!(
        (a.status, a.reason()),
        (501, "chunked transfer encoding not supported")
    );
    assert!(a.close);
    let req = request(
        "GET",
        "/api2/json/version",
        &[("Authorization", &pve.auth)],
        b"a=1",
    );
    let a = pve.send("pve1", req).await;
    assert_eq!(
        (a.status, a.reason()),
        (501, "Unexpected content for method 'GET'")
    );
    let req = request(
        "DELETE",
        "/api2/json/version",
        &[("Authorization", &pve.auth)],
        b"a=1",
    );
    assert_eq!(
        pve.send("pve1", req).await.reason(),
        "Unexpected content for method 'DELETE'"
    );

    // Other body types → 506.
    let req = request(
        "PUT",
        "/api2/json/nodes/pve1/qemu/100/config",
        &[("Authorization", &pve.auth), ("Content-Type", "text/plain")],
        b"description=x",
    );
    assert_eq!(pve.send("pve1", req).await.status, 506);
}

// ---------------------------------------------------------------- rule 2

#[tokio::test]
async fn rule02_token_header_forms_are_accepted() {
    let pve = Pve::example();
    let secret = pve_guac_lab::proxmox::EXAMPLE_TOKEN_SECRET;
    for header in [
        format!("PVEAPIToken={SYNC}={secret}"),
        format!("PVEAPIToken {SYNC}={secret}"),
        format!("PVEAPIToken   {SYNC}={secret}"),
        format!("Other stuff PVEAPIToken={SYNC}={secret}; trailing"),
        format!("PVEAPIToken=sync%40pve%21pve-guac-sync={secret}"),
    ] {
        let req = request(
            "GET",
            "/api2/json/version",
            &[("Authorization", &header)],
            b"",
        );
        let a = pve.send("pve1", req).await;
        assert_eq!(a.status, 200, "{header}: {}", a.reason());
    }
    // No CSRF token is needed for token writes.
    let a = pve
        .form(
            "POST",
            "/nodes/pve1/qemu/105/config",
            &[("description", "x")],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
}

#[tokio::test]
async fn rule02_failures_are_empty_bodied_401s() {
    let pve = Pve::with_seed(restricted_seed());
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "No ticket"),
        (Some("Basic dXNlcjpwYXNz".into()), "No ticket"),
        (
            Some(format!(
                "PVEAPIToken={SYNC}=00000000-0000-4000-8000-000000000000"
            )),
            "Authentication failed!",
        ),
        (
            Some("PVEAPIToken=sync@pve!nope=00000000-0000-4000-8000-000000000000".into()),
            "Authentication failed!",
        ),
        (
            Some("PVEAPIToken=sync@pve!old=44444444-4444-4444-8444-444444444444".into()),
            "Authentication failed!",
        ),
        (
            Some("PVEAPIToken=nobody@pve!tok=x".into()),
            "Authentication failed!",
        ),
    ];
    for (header, reason) in cases {
        let headers: Vec<(&str, &str)> = header
            .iter()
            .map(|h| ("Authorization", h.as_str()))
            .collect();
        let a = pve
            .send("pve1", request("GET", "/api2/json/version", &headers, b""))
            .await;
        assert_eq!((a.status, a.reason()), (401, reason), "{header:?}");
        assert!(a.body.is_none(), "401 has a close-delimited empty body");
        assert!(a.header("Content-Type").is_none());
        assert!(a.header("Content-Length").is_none());
        assert!(a.close);
    }
}

#[tokio::test]
async fn rule02_legacy_401_texts_follow_the_old_order_and_split_at_the_last_equals() {
    let pve = Pve::with_seed(restricted_seed());
    pve.cluster.set_legacy_auth_texts(true);
    let cases = [
        (
            format!("PVEAPIToken={SYNC}"),
            "no tokenid specified".to_string(),
        ),
        (
            format!("PVEAPIToken={SYNC}=wrong=x"),
            format!(
                "'{SYNC}=wrong' is not a valid token ID - not able to split into user and token parts"
            ),
        ),
        (
            "PVEAPIToken=nobody@pve!tok=x".into(),
            "no such user ('nobody@pve')".into(),
        ),
        (
            "PVEAPIToken=off@pve!t1=x".into(),
            "user 'off@pve' is disabled".into(),
        ),
        (
            "PVEAPIToken=sync@pve!nope=x".into(),
            "no such token 'nope' for user 'sync@pve'".into(),
        ),
        (
            "PVEAPIToken=sync@pve!old=44444444-4444-4444-8444-444444444444".into(),
            "token 'old' access expired".into(),
        ),
        (
            format!("PVEAPIToken={SYNC}=x"),
            "invalid token value!".into(),
        ),
    ];
    for (header, reason) in cases {
        let a = pve
            .send(
                "pve1",
                request(
                    "GET",
                    "/api2/json/version",
                    &[("Authorization", &header)],
                    b"",
                ),
            )
            .await;
        assert_eq!((a.status, a.reason()), (401, reason.as_str()));
    }
}

#[tokio::test]
async fn rule02_failed_authentication_waits_three_seconds_on_the_lab_clock() {
    let seed = ClusterSeed::example("lab"); // delay on (the default)
    let pve = Pve::with_clock(seed, Clock::new(1000.0));
    let before = pve.clock.elapsed();
    let a = pve
        .send("pve1", request("GET", "/api2/json/version", &[], b""))
        .await;
    assert_eq!(a.status, 401);
    assert!(pve.clock.elapsed() - before >= Duration::from_secs(3));

    // Off: answered at once even on a frozen clock.
    let fast = Pve::example();
    let a = tokio::time::timeout(
        Duration::from_secs(2),
        fast.send("pve1", request("GET", "/api2/json/version", &[], b"")),
    )
    .await
    .expect("no delay when switched off");
    assert_eq!(a.status, 401);
}

// ---------------------------------------------------------------- rule 3

#[tokio::test]
async fn rule03_privsep_intersects_owner_and_token_privileges() {
    let mut pve = Pve::with_seed(restricted_seed());
    pve.auth = SEP_TOKEN.into();
    assert_eq!(
        pve.call("GET", "/nodes/pve1/qemu/100/config").await.status,
        200
    );
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/qemu/100/config",
            &[("description", "x")],
        )
        .await;
    a.assert_error(403, "Permission check failed (/vms/100, VM.Config.Options)");

    pve.auth = FULL_TOKEN.into();
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/qemu/100/config",
            &[("description", "x")],
        )
        .await;
    assert_eq!(
        a.status,
        200,
        "privsep=0 has the owner's privileges: {}",
        a.text()
    );
}

#[tokio::test]
async fn rule03_permission_is_checked_before_parameters_and_any_of_lists_use_pipes() {
    let mut pve = Pve::with_seed(restricted_seed());
    pve.auth = ONLY100_TOKEN.into();
    let a = pve.call("GET", "/nodes/pve1/qemu/abc/config").await;
    a.assert_error(403, "Permission check failed (/vms/abc, VM.Audit)");
    let a = pve
        .form("PUT", "/nodes/pve1/qemu/100/config", &[("onboot", "true")])
        .await;
    a.assert_error(
        403,
        "Permission check failed (/vms/100, VM.Config.Disk|VM.Config.CDROM|VM.Config.CPU|VM.Config.Memory|VM.Config.Network|VM.Config.HWType|VM.Config.Options|VM.Config.Cloudinit)",
    );
    let a = pve
        .call("GET", "/nodes/pve1/qemu/100/agent/network-get-interfaces")
        .await;
    a.assert_error(
        403,
        "Permission check failed (/vms/100, VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted)",
    );
    let a = pve
        .form("POST", "/nodes/pve1/qemu/100/agent", &[("command", "ping")])
        .await;
    a.assert_error(
        403,
        "Permission check failed (/vms/100, VM.GuestAgent.Unrestricted|VM.GuestAgent.Unrestricted)",
    );
    let a = pve.call("GET", "/cluster/status").await;
    a.assert_error(403, "Permission check failed (/, Sys.Audit)");
}

#[tokio::test]
async fn rule03_lists_are_filtered_silently_by_vm_audit() {
    let mut pve = Pve::with_seed(restricted_seed());
    pve.auth = ONLY100_TOKEN.into();
    let vmids = |v: Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["vmid"].as_u64())
            .collect()
    };
    let a = pve.call("GET", "/cluster/resources?type=vm").await;
    assert_eq!(a.status, 200);
    assert_eq!(vmids(a.data()), vec![100]);
    assert_eq!(
        vmids(pve.call("GET", "/nodes/pve1/qemu").await.data()),
        vec![100]
    );
    assert_eq!(pve.call("GET", "/nodes/pve1/lxc").await.data(), json!([]));

    // PVE 8: the agent needs VM.Monitor, VM.GuestAgent.* does not exist.
    let mut pve8 = Pve::with_seed(restricted_seed().version("8.4.1"));
    pve8.auth = ONLY100_TOKEN.into();
    let a = pve8
        .call("GET", "/nodes/pve1/qemu/100/agent/network-get-interfaces")
        .await;
    a.assert_error(403, "Permission check failed (/vms/100, VM.Monitor)");
}

// ---------------------------------------------------------------- rule 4

#[tokio::test]
async fn rule04_access_permissions_maps_paths_to_privileges() {
    let pve = Pve::with_seed(restricted_seed());
    let a = pve.call("GET", "/access/permissions?path=/vms/100").await;
    assert_eq!(a.status, 200);
    let data = a.data();
    let obj = data.as_object().unwrap();
    assert_eq!(obj.len(), 1);
    let privs = obj["/vms/100"].as_object().unwrap();
    assert_eq!(privs["VM.Audit"], 1);
    assert_eq!(privs["VM.Config.Options"], 1);
    assert!(!privs.contains_key("VM.Monitor"), "unknown on PVE 9");

    let a = pve.call("GET", "/access/permissions").await;
    let data = a.data();
    for p in ["/", "/vms", "/nodes", "/access", "/storage"] {
        assert!(data.get(p).is_some(), "{p} in {data}");
    }
    assert!(
        data.as_object().unwrap().values().all(|m| m
            .as_object()
            .unwrap()
            .values()
            .all(|v| v == 0 || v == 1))
    );

    let mut one = Pve::with_seed(restricted_seed());
    one.auth = ONLY100_TOKEN.into();
    let a = one.call("GET", "/access/permissions?path=/vms/101").await;
    assert_eq!(a.data(), json!({"/vms/101": {}}));
    let a = one.call("GET", "/access/permissions?path=/vms/100").await;
    assert_eq!(a.data(), json!({"/vms/100": {"VM.Audit": 1}}));
    let a = one.call("GET", "/access/permissions?userid=root@pam").await;
    a.assert_error(403, "Permission check failed (/access, Sys.Audit)");
    let a = one
        .call(
            "GET",
            "/access/permissions?userid=one@pve!only100&path=/vms/100",
        )
        .await;
    assert_eq!(a.status, 200);
}

// ---------------------------------------------------------------- rule 5

#[tokio::test]
async fn rule05_error_envelope_current_and_legacy() {
    let pve = Pve::example().with_root_token();
    let a = pve.call("GET", "/nodes/pve1/qemu/999/config").await;
    a.assert_error(
        500,
        "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist",
    );
    assert_eq!(a.json()["data"], Value::Null);

    let a = pve.call("GET", "/nodes/pve1/qemu/abc/config").await;
    assert_eq!(
        a.json(),
        json!({"data": null, "message": "Parameter verification failed.\n",
               "errors": {"vmid": "type check ('integer') failed - got 'abc'"}})
    );
    assert_eq!(a.reason(), "Parameter verification failed.");

    pve.cluster.set_legacy_error_body(true);
    let a = pve.call("GET", "/nodes/pve1/qemu/999/config").await;
    assert_eq!(a.json(), json!({"data": null}));
    assert_eq!(
        a.reason(),
        "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist"
    );
    let a = pve.call("GET", "/nodes/pve1/qemu/abc/config").await;
    assert_eq!(
        a.json(),
        json!({"data": null, "errors": {"vmid": "type check ('integer') failed - got 'abc'"}})
    );

    // Servers before January 2025 default to the legacy body.
    let old = Pve::with_seed(
        ClusterSeed::example("lab")
            .version("8.2.4")
            .auth_delay(false),
    )
    .with_root_token();
    assert_eq!(
        old.call("GET", "/nodes/pve1/qemu/999/config").await.json(),
        json!({"data": null})
    );
}

#[tokio::test]
async fn rule05_unknown_paths_are_501_not_implemented() {
    let pve = Pve::example();
    let a = pve.call("GET", "/nodes/pve1/qemu/100/foo").await;
    a.assert_error(501, "Method 'GET /nodes/pve1/qemu/100/foo' not implemented");
    let a = pve
        .form(
            "POST",
            "/nodes/pve1/lxc/200/config",
            &[("description", "x")],
        )
        .await;
    a.assert_error(
        501,
        "Method 'POST /nodes/pve1/lxc/200/config' not implemented",
    );
}

// ---------------------------------------------------------------- rule 6

#[tokio::test]
async fn rule06_vmid_integer_and_boolean_validation() {
    let pve = Pve::example().with_root_token();
    for bad in ["99", "0100", "%2B100", "1000000000"] {
        let a = pve
            .call("GET", &format!("/nodes/pve1/qemu/{bad}/config"))
            .await;
        assert_eq!(a.status, 400, "{bad}");
        assert_eq!(
            a.param_error("vmid"),
            "invalid format - value does not look like a valid VM ID\n"
        );
    }
    let a = pve.call("GET", "/nodes/pve1/qemu/999999999/config").await;
    assert_eq!(a.status, 500, "a valid VMID reaches the method");

    let a = pve
        .form("PUT", "/nodes/pve1/qemu/100/config", &[("onboot", "true")])
        .await;
    assert_eq!(
        a.param_error("onboot"),
        "type check ('boolean') failed - got 'true'"
    );
    let a = pve
        .json(
            "PUT",
            "/nodes/pve1/qemu/100/config",
            json!({"onboot": true}),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(pve.cluster.config(100).unwrap()["onboot"], 1);

    let a = pve
        .form("PUT", "/nodes/pve1/qemu/100/config", &[("cores", "abc")])
        .await;
    assert_eq!(
        a.param_error("cores"),
        "type check ('integer') failed - got 'abc'"
    );
    let a = pve
        .form("PUT", "/nodes/pve1/qemu/100/config", &[("nonsense", "1")])
        .await;
    assert_eq!(
        a.param_error("nonsense"),
        "property is not defined in schema and the schema does not allow additional properties"
    );
    assert_eq!(pve.call("GET", "/version?_dc=12345").await.status, 200);
    let a = pve.call("GET", "/cluster/resources?type=qemu").await;
    assert_eq!(
        a.param_error("type"),
        "value 'qemu' does not have a value in the enumeration 'vm, storage, node, sdn'"
    );
    let a = pve
        .form(
            "POST",
            "/nodes/pve1/qemu/100/config",
            &[("description", "x"), ("background_delay", "31")],
        )
        .await;
    assert_eq!(
        a.param_error("background_delay"),
        "value must have a maximum value of 30"
    );
    let a = pve.form("POST", "/nodes/pve1/qemu/100/agent", &[]).await;
    assert_eq!(
        a.param_error("command"),
        "property is missing and it is not optional"
    );
}

#[tokio::test]
async fn rule06_description_is_limited_to_8192_characters() {
    let pve = Pve::example();
    let ok: String = "é".repeat(8192);
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/qemu/100/config",
            &[("description", &ok)],
        )
        .await;
    assert_eq!(a.status, 200, "8192 characters (16 KiB of UTF-8) are fine");
    let long: String = "a".repeat(8193);
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/qemu/100/config",
            &[("description", &long)],
        )
        .await;
    assert_eq!(
        a.param_error("description"),
        "value may only be 8192 characters long"
    );
}

// ---------------------------------------------------------------- rule 7

#[tokio::test]
async fn rule07_digest_changes_on_every_config_change_and_guards_writes() {
    let pve = Pve::example();
    let d0 = pve.digest("pve1", "qemu", 100).await;
    assert_eq!(d0.len(), 40);
    assert!(
        d0.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );

    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/qemu/100/config",
            &[("description", "v1"), ("digest", &d0)],
        )
        .await;
    assert_eq!(a.status, 200);
    let d1 = pve.digest("pve1", "qemu", 100).await;
    assert_ne!(d0, d1);
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/qemu/100/config",
            &[("description", "v2"), ("digest", &d0)],
        )
        .await;
    a.assert_error(500, "checksum mismatch (file change by other user?)");
    assert_eq!(pve.cluster.notes(100).as_deref(), Some("v1"));

    // Lock set and cleared by "a backup" change the digest.
    pve.cluster.set_lock(100, Some("backup"));
    let d2 = pve.digest("pve1", "qemu", 100).await;
    assert_ne!(d1, d2);
    pve.cluster.set_lock(100, None);
    assert_ne!(d2, pve.digest("pve1", "qemu", 100).await);

    // Too long a digest is a parameter error.
    let long = "a".repeat(41);
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/qemu/100/config",
            &[("description", "x"), ("digest", &long)],
        )
        .await;
    assert_eq!(
        a.param_error("digest"),
        "value may only be 40 characters long"
    );
}

#[tokio::test]
async fn rule07_check_order_vm_digest_before_lock_ct_lock_before_digest() {
    let pve = Pve::example();
    let wrong = "0".repeat(40);
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/qemu/108/config",
            &[("description", "x"), ("digest", &wrong)],
        )
        .await;
    a.assert_error(500, "checksum mismatch (file change by other user?)");
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/qemu/108/config",
            &[("description", "x")],
        )
        .await;
    a.assert_error(500, "VM is locked (backup)");

    pve.cluster.set_lock(200, Some("backup"));
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/lxc/200/config",
            &[("description", "x"), ("digest", &wrong)],
        )
        .await;
    a.assert_error(500, "CT is locked (backup)");
    pve.cluster.set_lock(200, None);
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/lxc/200/config",
            &[("description", "x"), ("digest", &wrong)],
        )
        .await;
    a.assert_error(
        500,
        "detected modified configuration - file changed by other user? Try again.",
    );
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/lxc/200/config",
            &[("description", "x"), ("skiplock", "1")],
        )
        .await;
    assert_eq!(
        a.param_error("skiplock"),
        "property is not defined in schema and the schema does not allow additional properties"
    );
}

#[tokio::test]
async fn rule07_value_checks_come_first_for_vms_and_last_for_cts() {
    let root = Pve::example().with_root_token();
    let a = root
        .form(
            "PUT",
            "/nodes/pve1/qemu/108/config",
            &[("net5", "bridge=vmbr0")],
        )
        .await;
    assert_eq!(a.status, 400, "VM: value format before the lock");
    assert!(a.param_error("net5").starts_with("invalid format - "));
    root.cluster.set_lock(200, Some("backup"));
    let a = root
        .form(
            "PUT",
            "/nodes/pve1/lxc/200/config",
            &[("net5", "bridge=vmbr0")],
        )
        .await;
    a.assert_error(500, "CT is locked (backup)");
    root.cluster.set_lock(200, None);
    let a = root
        .form(
            "PUT",
            "/nodes/pve1/lxc/200/config",
            &[("net5", "bridge=vmbr0")],
        )
        .await;
    assert_eq!(a.status, 400);
}

#[tokio::test]
async fn rule07_delete_and_empty_writes() {
    let pve = Pve::example();
    let a = pve
        .form("PUT", "/nodes/pve1/qemu/100/config", &[("delete", "foo")])
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.param_error("delete"), "unknown option 'foo'");
    let a = pve
        .form("PUT", "/nodes/pve2/qemu/103/config", &[("delete", "tags")])
        .await;
    assert_eq!(a.status, 200, "deleting an unset key is fine: {}", a.text());
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/qemu/100/config",
            &[("delete", "description")],
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(pve.cluster.notes(100), None);
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/qemu/100/config",
            &[("tags", "a"), ("delete", "tags")],
        )
        .await;
    assert_eq!(
        a.param_error("delete"),
        "you can't use '-tags' and -delete tags' at the same time"
    );
    let a = pve.form("PUT", "/nodes/pve1/qemu/100/config", &[]).await;
    a.assert_error(500, "no options specified");
    let d = pve.digest("pve1", "qemu", 100).await;
    let a = pve
        .form("PUT", "/nodes/pve1/qemu/100/config", &[("digest", &d)])
        .await;
    a.assert_error(500, "no options specified");
    let a = pve.form("PUT", "/nodes/pve1/lxc/200/config", &[]).await;
    a.assert_error(500, "no options specified");
}

#[tokio::test]
async fn rule07_pending_changes_are_applied_at_start_and_change_the_digest() {
    let pve = Pve::example();
    let a = pve
        .form("PUT", "/nodes/pve2/qemu/103/config", &[("agent", "1")])
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        pve.cluster.guest(103).unwrap().pending,
        vec!["agent".to_string()]
    );
    let cur = pve
        .call("GET", "/nodes/pve2/qemu/103/config?current=1")
        .await
        .data();
    assert!(
        cur.get("agent").is_none(),
        "current config has no agent yet"
    );
    let d_pending = pve.digest("pve2", "qemu", 103).await;
    pve.cluster.set_status(103, SeedStatus::Stopped);
    assert_eq!(pve.digest("pve2", "qemu", 103).await, d_pending);
    let a = pve
        .form("POST", "/nodes/pve2/qemu/103/status/start", &[])
        .await;
    assert_eq!(a.status, 200);
    pve.advance(5.0);
    let g = pve.cluster.guest(103).unwrap();
    assert!(g.pending.is_empty());
    assert_eq!(g.agent_config.as_deref(), Some("1"));
    assert_ne!(g.digest, d_pending);
}

// ---------------------------------------------------------------- rule 8

#[tokio::test]
async fn rule08_description_storage_matches_the_table() {
    let pve = Pve::example();
    let table = [
        ("a\nb", Some("a\nb"), Some("a\nb\n")),
        ("a\n\nb\n\n\n", Some("a\n\nb"), Some("a\n\nb\n")),
        ("  x  \n", Some("  x"), Some("  x  \n")),
        (
            "\nfirst line empty",
            Some("\nfirst line empty"),
            Some("\nfirst line empty\n"),
        ),
        ("50%25 done", Some("50%25 done"), Some("50%25 done\n")),
        ("x\r\ny", Some("x\r\ny"), Some("x\r\ny\n")),
        ("", None, None),
        ("0", None, None),
        ("   ", None, Some("   \n")),
    ];
    for (input, vm, ct) in table {
        pve.cluster.set_notes(100, "previous");
        pve.cluster.set_notes(200, "previous");
        let a = pve
            .form(
                "PUT",
                "/nodes/pve1/qemu/100/config",
                &[("description", input)],
            )
            .await;
        assert_eq!(a.status, 200);
        let a = pve
            .form(
                "PUT",
                "/nodes/pve1/lxc/200/config",
                &[("description", input)],
            )
            .await;
        assert_eq!(a.status, 200);
        let vm_read = pve.call("GET", "/nodes/pve1/qemu/100/config").await.data();
        let ct_read = pve.call("GET", "/nodes/pve1/lxc/200/config").await.data();
        assert_eq!(vm_read["description"].as_str(), vm, "VM {input:?}");
        assert_eq!(ct_read["description"].as_str(), ct, "CT {input:?}");
    }
    // Only line breaks: no change on a VM, removed on a CT.
    pve.cluster.set_notes(100, "keep me");
    pve.cluster.set_notes(200, "gone");
    pve.form(
        "PUT",
        "/nodes/pve1/qemu/100/config",
        &[("description", "\n\n")],
    )
    .await;
    pve.form(
        "PUT",
        "/nodes/pve1/lxc/200/config",
        &[("description", "\n\n")],
    )
    .await;
    assert_eq!(pve.cluster.notes(100).as_deref(), Some("keep me"));
    assert_eq!(pve.cluster.notes(200), None);
}

#[tokio::test]
async fn rule08_running_guests_apply_notes_at_once_and_locked_guests_refuse() {
    let pve = Pve::example();
    assert_eq!(pve.cluster.guest(100).unwrap().status, "running");
    pve.form(
        "PUT",
        "/nodes/pve1/qemu/100/config",
        &[("description", "now")],
    )
    .await;
    let cur = pve
        .call("GET", "/nodes/pve1/qemu/100/config?current=1")
        .await
        .data();
    assert_eq!(cur["description"], "now", "no pending state for notes");
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/qemu/108/config",
            &[("description", "x")],
        )
        .await;
    a.assert_error(500, "VM is locked (backup)");
    pve.cluster.set_lock(201, Some("mounted"));
    let a = pve
        .form("PUT", "/nodes/pve2/lxc/201/config", &[("description", "x")])
        .await;
    a.assert_error(500, "CT is locked (mounted)");
    // Older releases decode percent escapes on read.
    let old = Pve::with_seed(
        ClusterSeed::example("lab")
            .version("8.1.4")
            .auth_delay(false),
    );
    old.form(
        "PUT",
        "/nodes/pve1/qemu/100/config",
        &[("description", "50%25 done")],
    )
    .await;
    let read = old.call("GET", "/nodes/pve1/qemu/100/config").await.data();
    assert_eq!(read["description"], "50% done");
}

// ---------------------------------------------------------------- rule 9

#[tokio::test]
async fn rule09_put_is_sync_post_returns_a_qmconfig_upid() {
    let pve = Pve::example();
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/qemu/100/config",
            &[("description", "put")],
        )
        .await;
    assert_eq!(a.json(), json!({"data": null}));

    let a = pve
        .form(
            "POST",
            "/nodes/pve1/qemu/100/config",
            &[("description", "post")],
        )
        .await;
    assert_eq!(a.status, 200);
    let upid = a.data().as_str().unwrap().to_string();
    assert!(is_upid(&upid, "pve1", "qmconfig", "100", SYNC), "{upid}");
    assert_eq!(pve.cluster.notes(100).as_deref(), Some("post"));
    pve.advance(1.0);
    assert_eq!(pve.task(&upid).await["exitstatus"], "OK");

    // Pre-checks of POST are synchronous.
    let wrong = "0".repeat(40);
    let a = pve
        .form(
            "POST",
            "/nodes/pve1/qemu/100/config",
            &[("description", "x"), ("digest", &wrong)],
        )
        .await;
    a.assert_error(500, "checksum mismatch (file change by other user?)");
    let a = pve
        .form(
            "POST",
            "/nodes/pve1/qemu/108/config",
            &[("description", "x")],
        )
        .await;
    a.assert_error(500, "VM is locked (backup)");
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/qemu/100/config",
            &[("description", "x"), ("skiplock", "1")],
        )
        .await;
    assert_eq!(a.param_error("skiplock"), "Only root may use this option.");
}

#[tokio::test]
async fn rule09_post_with_background_delay_returns_null_when_done() {
    let pve = Pve::with_clock(
        ClusterSeed::example("lab").auth_delay(false),
        Clock::new(200.0),
    );
    let a = pve
        .form(
            "POST",
            "/nodes/pve1/qemu/100/config",
            &[("description", "bg"), ("background_delay", "5")],
        )
        .await;
    assert_eq!(a.json(), json!({"data": null}), "{}", a.text());
    assert_eq!(pve.cluster.notes(100).as_deref(), Some("bg"));
}

// ---------------------------------------------------------------- rule 10

#[tokio::test]
async fn rule10_upids_and_task_status() {
    let pve = Pve::example();
    let a = pve
        .form("POST", "/nodes/pve3/qemu/104/status/start", &[])
        .await;
    let upid = a.data().as_str().unwrap().to_string();
    assert!(is_upid(&upid, "pve3", "qmstart", "104", SYNC), "{upid}");
    let st = pve.task(&upid).await;
    assert_eq!(st["status"], "running");
    assert_eq!(st["user"], "sync@pve");
    assert_eq!(st["tokenid"], "pve-guac-sync");
    assert_eq!(st["type"], "qmstart");
    assert_eq!(st["id"], "104");
    assert!(st["pid"].is_u64() && st["pstart"].is_u64() && st["starttime"].is_u64());
    assert!(st.get("exitstatus").is_none());
    pve.advance(1.5);
    let st = pve.task(&upid).await;
    assert_eq!(
        (st["status"].as_str(), st["exitstatus"].as_str()),
        (Some("stopped"), Some("OK"))
    );

    let a = pve
        .call("GET", &format!("/nodes/pve3/tasks/{}/log", enc(&upid)))
        .await;
    assert_eq!(a.status, 200);
    let lines = a.data();
    assert_eq!(lines.as_array().unwrap().last().unwrap()["t"], "TASK OK");
    assert_eq!(a.json()["total"], lines.as_array().unwrap().len());

    let a = pve.call("GET", "/nodes/pve3/tasks/not-a-upid/status").await;
    assert_eq!(a.param_error("upid"), "unable to parse worker upid");
    let a = pve.call("GET", "/nodes/pve3/tasks/not-a-upid/log").await;
    assert_eq!(a.param_error("upid"), "unable to parse worker upid");
    let unknown = "UPID:pve3:00000001:00000002:00000003:qmstart:104:sync@pve!pve-guac-sync:";
    let a = pve
        .call("GET", &format!("/nodes/pve3/tasks/{}/status", enc(unknown)))
        .await;
    assert_eq!(a.param_error("upid"), "no such task");
    let a = pve
        .call("GET", &format!("/nodes/pve3/tasks/{}/log", enc(unknown)))
        .await;
    assert_eq!(
        a.data(),
        json!([{"n": 1, "t": "unable to open file - No such file or directory"}])
    );
    let a = pve
        .call("GET", &format!("/nodes/pve1/tasks/{}/status", enc(&upid)))
        .await;
    assert_eq!(
        a.param_error("upid"),
        "no such task",
        "a task lives on its node"
    );

    // Someone else's task needs Sys.Audit on the node.
    let mut other = Pve::with_seed(restricted_seed());
    let upid = other
        .form("POST", "/nodes/pve3/qemu/104/status/start", &[])
        .await
        .data();
    other.auth = ONLY100_TOKEN.into();
    let a = other
        .call(
            "GET",
            &format!("/nodes/pve3/tasks/{}/status", enc(upid.as_str().unwrap())),
        )
        .await;
    a.assert_error(403, "Permission check failed (/nodes/pve3, Sys.Audit)");
}

// ---------------------------------------------------------------- rule 11

async fn task_result(pve: &Pve, path: &str, form: &[(&str, &str)], wait: f64) -> String {
    let a = pve.form("POST", path, form).await;
    assert_eq!(a.status, 200, "{path}: {} {}", a.reason(), a.text());
    let upid = a.data().as_str().unwrap().to_string();
    pve.advance(wait);
    let st = pve.task(&upid).await;
    assert_eq!(st["status"], "stopped", "{path}");
    st["exitstatus"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn rule11_vm_start_fails_inside_the_task_in_order() {
    let pve = Pve::example();
    assert_eq!(
        task_result(&pve, "/nodes/pve1/qemu/100/status/start", &[], 1.0).await,
        "VM 100 already running"
    );
    assert_eq!(
        task_result(&pve, "/nodes/pve1/qemu/999/status/start", &[], 1.0).await,
        "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist"
    );
    assert_eq!(
        task_result(&pve, "/nodes/pve1/qemu/105/status/start", &[], 1.0).await,
        "you can't start a vm if it's a template"
    );
    pve.cluster.set_lock(100, Some("snapshot"));
    assert_eq!(
        task_result(&pve, "/nodes/pve1/qemu/100/status/start", &[], 1.0).await,
        "VM is locked (snapshot)",
        "running and locked reports the lock"
    );
    assert_eq!(
        task_result(&pve, "/nodes/pve1/qemu/108/status/start", &[], 1.0).await,
        "OK",
        "backup lock: resume"
    );
    assert_eq!(
        task_result(&pve, "/nodes/pve3/qemu/104/status/start", &[], 2.0).await,
        "OK"
    );
    assert_eq!(pve.cluster.guest(104).unwrap().status, "running");
    assert_eq!(pve.cluster.started_guests(), vec![104]);
    assert_eq!(pve.cluster.power_counters().start, 6);
}

#[tokio::test]
async fn rule11_vm_shutdown_and_stop() {
    let pve = Pve::example();
    assert_eq!(
        task_result(&pve, "/nodes/pve3/qemu/104/status/shutdown", &[], 1.0).await,
        "OK"
    );
    assert_eq!(
        task_result(&pve, "/nodes/pve1/qemu/999/status/shutdown", &[], 1.0).await,
        "unable to find configuration file for VM 999 on node 'pve1'"
    );
    assert_eq!(
        task_result(&pve, "/nodes/pve1/qemu/999/status/stop", &[], 1.0).await,
        "unable to find configuration file for VM 999 on node 'pve1'"
    );
    assert_eq!(
        task_result(&pve, "/nodes/pve1/qemu/108/status/stop", &[], 1.0).await,
        "VM is locked (backup)"
    );
    assert_eq!(
        task_result(&pve, "/nodes/pve1/qemu/100/status/shutdown", &[], 5.0).await,
        "OK"
    );
    assert_eq!(pve.cluster.guest(100).unwrap().status, "stopped");
    assert_eq!(
        task_result(&pve, "/nodes/pve1/qemu/101/status/stop", &[], 1.0).await,
        "OK"
    );
    assert_eq!(pve.cluster.stopped_guests(), vec![100, 101]);

    let a = pve
        .form("POST", "/nodes/pve2/qemu/107/status/shutdown", &[])
        .await;
    a.assert_error(500, "VM is paused - cannot shutdown");
    let a = pve
        .form(
            "POST",
            "/nodes/pve2/qemu/107/status/shutdown",
            &[("forceStop", "1")],
        )
        .await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn rule11_shutdown_timeout_and_force_stop() {
    let pve = Pve::example();
    let mut stubborn = GuestSeed::vm(110, "stubborn", "pve1").running();
    stubborn.shutdown = ShutdownBehaviour::Ignore;
    pve.cluster.add_guest(stubborn);
    assert_eq!(
        task_result(
            &pve,
            "/nodes/pve1/qemu/110/status/shutdown",
            &[("timeout", "10")],
            10.5
        )
        .await,
        "VM quit/powerdown failed - got timeout"
    );
    assert_eq!(pve.cluster.guest(110).unwrap().status, "running");
    assert_eq!(
        task_result(
            &pve,
            "/nodes/pve1/qemu/110/status/shutdown",
            &[("timeout", "10"), ("forceStop", "1")],
            11.0
        )
        .await,
        "OK"
    );
    assert_eq!(pve.cluster.guest(110).unwrap().status, "stopped");
    // Default timeout is 60 s.
    pve.cluster.set_status(110, SeedStatus::Running);
    let a = pve
        .form("POST", "/nodes/pve1/qemu/110/status/shutdown", &[])
        .await;
    let upid = a.data().as_str().unwrap().to_string();
    pve.advance(59.0);
    assert_eq!(pve.task(&upid).await["status"], "running");
    pve.advance(1.5);
    assert_eq!(
        pve.task(&upid).await["exitstatus"],
        "VM quit/powerdown failed - got timeout"
    );
}

#[tokio::test]
async fn rule11_power_tasks_wait_for_the_config_lock_and_overrule_shutdown() {
    let pve = Pve::example();
    let mut stubborn = GuestSeed::vm(110, "stubborn", "pve1").running();
    stubborn.shutdown = ShutdownBehaviour::Ignore;
    pve.cluster.add_guest(stubborn);
    let shutdown = pve
        .form("POST", "/nodes/pve1/qemu/110/status/shutdown", &[])
        .await
        .data();
    pve.advance(1.0);
    // A plain stop waits 10 s for the lock held by the 60 s shutdown.
    let stop = pve
        .form("POST", "/nodes/pve1/qemu/110/status/stop", &[])
        .await
        .data();
    pve.advance(9.0);
    assert_eq!(pve.task(stop.as_str().unwrap()).await["status"], "running");
    pve.advance(1.5);
    assert_eq!(
        pve.task(stop.as_str().unwrap()).await["exitstatus"],
        "can't lock file '/var/lock/qemu-server/lock-110.conf' - got timeout"
    );
    assert_eq!(pve.cluster.guest(110).unwrap().status, "running");
    // overrule-shutdown aborts the shutdown task and stops at once.
    let a = pve
        .form(
            "POST",
            "/nodes/pve1/qemu/110/status/stop",
            &[("overrule-shutdown", "1")],
        )
        .await;
    let stop = a.data().as_str().unwrap().to_string();
    assert_eq!(
        pve.task(shutdown.as_str().unwrap()).await["exitstatus"],
        "interrupted by signal"
    );
    pve.advance(1.0);
    assert_eq!(pve.task(&stop).await["exitstatus"], "OK");
    assert_eq!(pve.cluster.guest(110).unwrap().status, "stopped");

    // A stop right after a clean shutdown waits for it, then finds the VM off.
    let shutdown = pve
        .form("POST", "/nodes/pve1/qemu/100/status/shutdown", &[])
        .await
        .data();
    let stop = pve
        .form("POST", "/nodes/pve1/qemu/100/status/stop", &[])
        .await
        .data();
    pve.advance(5.0);
    assert_eq!(
        pve.task(shutdown.as_str().unwrap()).await["exitstatus"],
        "OK"
    );
    assert_eq!(pve.task(stop.as_str().unwrap()).await["exitstatus"], "OK");
    let stops: Vec<String> = pve
        .cluster
        .power_history()
        .into_iter()
        .filter(|e| e.vmid == 100)
        .map(|e| e.cause)
        .collect();
    assert_eq!(
        stops,
        vec!["qmshutdown".to_string()],
        "the shutdown powered it off"
    );
}

#[tokio::test]
async fn rule11_container_power_errors_are_synchronous() {
    let pve = Pve::example();
    let a = pve
        .form("POST", "/nodes/pve1/lxc/200/status/start", &[])
        .await;
    a.assert_error(500, "CT 200 already running");
    let a = pve
        .form("POST", "/nodes/pve2/lxc/201/status/shutdown", &[])
        .await;
    a.assert_error(500, "CT 201 not running");
    let a = pve
        .form("POST", "/nodes/pve1/lxc/299/status/stop", &[])
        .await;
    a.assert_error(500, "CT 299 not running");
    assert_eq!(
        task_result(&pve, "/nodes/pve1/lxc/299/status/start", &[], 1.0).await,
        "Configuration file 'nodes/pve1/lxc/299.conf' does not exist"
    );
    let a = pve
        .form("POST", "/nodes/pve2/lxc/201/status/start", &[])
        .await;
    let upid = a.data().as_str().unwrap().to_string();
    assert!(is_upid(&upid, "pve2", "vzstart", "201", SYNC));
    pve.advance(2.0);
    assert_eq!(pve.cluster.guest(201).unwrap().status, "running");
    assert_eq!(
        task_result(&pve, "/nodes/pve2/lxc/201/status/stop", &[], 1.0).await,
        "OK"
    );
}

#[tokio::test]
async fn rule11_ha_tasks_end_before_the_state_changes() {
    let pve = Pve::example();
    pve.cluster
        .add_guest(GuestSeed::vm(111, "ha-vm", "pve1").ha());
    let a = pve
        .form("POST", "/nodes/pve1/qemu/111/status/start", &[])
        .await;
    let upid = a.data().as_str().unwrap().to_string();
    assert!(is_upid(&upid, "pve1", "hastart", "111", SYNC), "{upid}");
    pve.advance(1.0);
    assert_eq!(pve.task(&upid).await["exitstatus"], "OK");
    assert_eq!(
        pve.cluster.guest(111).unwrap().status,
        "stopped",
        "HA applies later"
    );
    pve.advance(3.0);
    assert_eq!(pve.cluster.guest(111).unwrap().status, "running");
}

// ---------------------------------------------------------------- rule 12

#[tokio::test]
async fn rule12_status_current_reports_agent_only_when_configured() {
    let pve = Pve::example();
    let s = pve
        .call("GET", "/nodes/pve1/qemu/100/status/current")
        .await
        .data();
    assert_eq!(
        (s["status"].as_str(), s["qmpstatus"].as_str()),
        (Some("running"), Some("running"))
    );
    assert_eq!(s["agent"], 1);
    assert_eq!(s["ha"], json!({"managed": 0}));
    assert!(s["pid"].is_u64());
    let s = pve
        .call("GET", "/nodes/pve1/qemu/101/status/current")
        .await
        .data();
    assert_eq!(s["agent"], 1, "enabled=1,… counts as enabled");
    let s = pve
        .call("GET", "/nodes/pve2/qemu/103/status/current")
        .await
        .data();
    assert!(s.get("agent").is_none());
    let s = pve
        .call("GET", "/nodes/pve2/qemu/107/status/current")
        .await
        .data();
    assert_eq!(
        (s["status"].as_str(), s["qmpstatus"].as_str()),
        (Some("running"), Some("paused"))
    );
    let s = pve
        .call("GET", "/nodes/pve3/qemu/104/status/current")
        .await
        .data();
    assert_eq!(
        (s["status"].as_str(), s["qmpstatus"].as_str()),
        (Some("stopped"), Some("stopped"))
    );
    assert!(s.get("pid").is_none());
    pve.form("PUT", "/nodes/pve3/qemu/104/config", &[("agent", "0")])
        .await;
    let s = pve
        .call("GET", "/nodes/pve3/qemu/104/status/current")
        .await
        .data();
    assert!(s.get("agent").is_none(), "agent: 0 is not enabled");
    let s = pve
        .call("GET", "/nodes/pve1/lxc/200/status/current")
        .await
        .data();
    assert_eq!(s["type"], "lxc");
    assert!(s.get("qmpstatus").is_none() && s.get("agent").is_none());
    let a = pve.call("GET", "/nodes/pve2/qemu/100/status/current").await;
    a.assert_error(
        500,
        "Configuration file 'nodes/pve2/qemu-server/100.conf' does not exist",
    );
}

// ---------------------------------------------------------------- rule 13

#[tokio::test]
async fn rule13_agent_errors_in_order() {
    let pve = Pve::example();
    let path = |node: &str, v: u32| format!("/nodes/{node}/qemu/{v}/agent/network-get-interfaces");
    pve.call("GET", &path("pve1", 999)).await.assert_error(
        500,
        "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist",
    );
    pve.call("GET", &path("pve2", 103))
        .await
        .assert_error(500, "No QEMU guest agent configured");
    pve.call("GET", &path("pve3", 104))
        .await
        .assert_error(500, "VM 104 is not running");

    // agent: 0 fails at once (a frozen clock would hang a delayed answer).
    pve.cluster
        .add_guest(GuestSeed::vm(112, "agent-off", "pve1").running().agent("0"));
    let a = tokio::time::timeout(Duration::from_secs(2), pve.call("GET", &path("pve1", 112)))
        .await
        .expect("immediate answer for agent: 0");
    a.assert_error(500, "QEMU guest agent is not running");

    // A silent agent costs the 3 s ping timeout.
    let (a, took) = pve.call_advancing("GET", &path("pve2", 102)).await;
    a.assert_error(500, "QEMU guest agent is not running");
    assert!(took >= Duration::from_secs(3), "{took:?}");

    pve.cluster.set_agent_state(100, AgentState::Hang);
    let (a, took) = pve.call_advancing("GET", &path("pve1", 100)).await;
    a.assert_error(
        500,
        "VM 100 qga command 'guest-network-get-interfaces' failed - got timeout",
    );
    assert!(took >= Duration::from_secs(5));
    pve.cluster.set_agent_state(100, AgentState::TransportError);
    pve.call("GET", &path("pve1", 100)).await.assert_error(
        500,
        "VM 100 qga command 'guest-network-get-interfaces' failed - Connection reset by peer",
    );
    pve.cluster.set_agent_state(100, AgentState::CommandError);
    let a = pve.call("GET", &path("pve1", 100)).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.data(),
        json!({"result": {"error": {"class": "CommandNotFound",
            "desc": "Command guest-network-get-interfaces has been disabled"}}})
    );
    // The static index needs no privilege and ignores the VM.
    let a = pve.call("GET", "/nodes/pve1/qemu/999/agent").await;
    assert_eq!(a.status, 200);
    assert!(
        a.data()
            .as_array()
            .unwrap()
            .contains(&json!({"name": "network-get-interfaces"}))
    );
}

#[tokio::test]
async fn rule13_agent_interfaces_and_the_pending_agent_rule() {
    let pve = Pve::example();
    let a = pve
        .call("GET", "/nodes/pve1/qemu/101/agent/network-get-interfaces")
        .await;
    assert_eq!(a.status, 200);
    let list = a.data()["result"].as_array().unwrap().clone();
    assert_eq!(list[0]["name"], "lo");
    let eth = &list[1];
    assert_eq!(
        eth["hardware-address"], "bc:24:11:5a:3c:11",
        "lower-case MACs"
    );
    let addrs = eth["ip-addresses"].as_array().unwrap();
    assert!(
        addrs.contains(
            &json!({"ip-address": "192.0.2.11", "ip-address-type": "ipv4", "prefix": 24})
        )
    );
    assert!(
        addrs
            .iter()
            .any(|x| x["ip-address"].as_str().unwrap().starts_with("fe80::"))
    );
    assert!(eth["statistics"]["rx-bytes"].is_u64());
    assert!(
        list[2].get("ip-addresses").is_none(),
        "second NIC without addresses"
    );
    let docker = pve
        .call("GET", "/nodes/pve3/qemu/106/agent/network-get-interfaces")
        .await
        .data();
    let names: Vec<&str> = docker["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["lo", "ens18", "docker0", "tun0"]);
    let ping = pve
        .form("POST", "/nodes/pve1/qemu/100/agent/ping", &[])
        .await;
    assert_eq!(ping.data(), json!({"result": {}}));

    // Adding `agent: 1` to a running VM is pending: still "not configured".
    pve.form("PUT", "/nodes/pve2/qemu/103/config", &[("agent", "1")])
        .await;
    assert_eq!(
        pve.call("GET", "/nodes/pve2/qemu/103/config").await.data()["agent"],
        "1"
    );
    pve.call("GET", "/nodes/pve2/qemu/103/agent/network-get-interfaces")
        .await
        .assert_error(500, "No QEMU guest agent configured");
    let s = pve
        .call("GET", "/nodes/pve2/qemu/103/status/current")
        .await
        .data();
    assert!(s.get("agent").is_none());
}

#[tokio::test]
async fn rule13_agent_answers_only_after_its_boot_delay() {
    let pve = Pve::example();
    pve.form("POST", "/nodes/pve3/qemu/104/status/start", &[])
        .await;
    pve.advance(2.0);
    let (a, _) = pve
        .call_advancing("GET", "/nodes/pve3/qemu/104/agent/network-get-interfaces")
        .await;
    a.assert_error(500, "QEMU guest agent is not running");
    pve.advance(30.0);
    let a = pve
        .call("GET", "/nodes/pve3/qemu/104/agent/network-get-interfaces")
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
}

// ---------------------------------------------------------------- rule 14

#[tokio::test]
async fn rule14_lxc_interfaces() {
    let pve = Pve::example();
    let a = pve.call("GET", "/nodes/pve1/lxc/200/interfaces").await;
    assert_eq!(a.status, 200);
    let list = a.data().as_array().unwrap().clone();
    assert_eq!(list[0]["name"], "lo");
    assert_eq!(list[0]["inet"], "127.0.0.1/8");
    let eth0 = &list[1];
    assert_eq!(eth0["name"], "eth0");
    assert_eq!(eth0["hwaddr"], "bc:24:11:9f:3a:1c");
    assert_eq!(eth0["hardware-address"], "bc:24:11:9f:3a:1c");
    assert_eq!(eth0["inet"], "192.0.2.50/24");
    assert_eq!(
        eth0["inet6"], "fe80::be24:11ff:fe9f:3a1c/64",
        "last IPv6 address"
    );
    let addrs = eth0["ip-addresses"].as_array().unwrap();
    assert!(
        addrs.contains(
            &json!({"ip-address-type": "inet", "ip-address": "192.0.2.50", "prefix": 24})
        )
    );
    assert!(addrs.contains(
        &json!({"ip-address-type": "inet6", "ip-address": "2001:db8::50", "prefix": 64})
    ));
    // DHCP: the config says dhcp, the kernel has an address.
    let cfg = pve.call("GET", "/nodes/pve1/lxc/200/config").await.data();
    assert!(cfg["net0"].as_str().unwrap().contains("ip=dhcp"));
    assert!(cfg["net0"].as_str().unwrap().starts_with("name=eth0,"));

    let mon = pve
        .call("GET", "/nodes/pve3/lxc/202/interfaces")
        .await
        .data();
    let eth1 = &mon.as_array().unwrap()[2];
    assert_eq!(eth1["ip-addresses"], json!([]));
    assert!(eth1.get("inet").is_none() && eth1.get("inet6").is_none());

    assert_eq!(
        pve.call("GET", "/nodes/pve2/lxc/201/interfaces")
            .await
            .json(),
        json!({"data": null})
    );
    assert_eq!(
        pve.call("GET", "/nodes/pve1/lxc/299/interfaces")
            .await
            .json(),
        json!({"data": null})
    );

    let mut seed = ClusterSeed::example("lab").auth_delay(false);
    seed.options.lxc_interfaces_shape = LxcInterfacesShape::Legacy;
    let old = Pve::with_seed(seed);
    let list = old
        .call("GET", "/nodes/pve1/lxc/200/interfaces")
        .await
        .data();
    let keys: Vec<&String> = list[1].as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["hwaddr", "inet", "inet6", "name"]);

    let mut one = Pve::with_seed(restricted_seed());
    one.auth = ONLY100_TOKEN.into();
    one.call("GET", "/nodes/pve1/lxc/200/interfaces")
        .await
        .assert_error(403, "Permission check failed (/vms/200, VM.Audit)");
}

// ---------------------------------------------------------------- rule 15

fn entry(list: &Value, vmid: u64) -> Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["vmid"] == vmid)
        .cloned()
        .unwrap_or_else(|| panic!("no {vmid}"))
}

#[tokio::test]
async fn rule15_resources_use_qmp_states_and_lag_behind() {
    let pve = Pve::example();
    let list = pve.call("GET", "/cluster/resources?type=vm").await.data();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"] == "qemu" || e["type"] == "lxc")
    );
    assert_eq!(entry(&list, 107)["status"], "paused");
    assert_eq!(entry(&list, 105)["template"], 1);
    assert_eq!(entry(&list, 100)["tags"], "prod;web");
    assert_eq!(entry(&list, 108)["lock"], "backup");
    assert_eq!(entry(&list, 100)["pool"], "prod");
    assert_eq!(entry(&list, 200)["id"], "lxc/200");

    pve.cluster.set_resources_lag(Duration::from_secs(10));
    pve.form("POST", "/nodes/pve1/qemu/100/status/stop", &[])
        .await;
    pve.advance(1.0);
    let cur = pve
        .call("GET", "/nodes/pve1/qemu/100/status/current")
        .await
        .data();
    assert_eq!(cur["status"], "stopped");
    let list = pve.call("GET", "/cluster/resources?type=vm").await.data();
    assert_eq!(entry(&list, 100)["status"], "running", "lagging");
    pve.advance(10.0);
    let list = pve.call("GET", "/cluster/resources?type=vm").await.data();
    assert_eq!(entry(&list, 100)["status"], "stopped");

    let root = Pve {
        auth: ROOT_TOKEN.into(),
        ..Pve::example()
    };
    let all = root.call("GET", "/cluster/resources").await.data();
    for t in ["node", "storage", "pool", "sdn", "qemu", "lxc"] {
        assert!(
            all.as_array().unwrap().iter().any(|e| e["type"] == t),
            "{t}"
        );
    }
}

#[tokio::test]
async fn rule15_offline_node_guests_go_stale_then_unknown() {
    let pve = Pve::example();
    pve.cluster.set_node_online("pve3", false);
    let list = pve.call("GET", "/cluster/resources?type=vm").await.data();
    assert_eq!(entry(&list, 106)["name"], "docker01", "stale values first");
    pve.advance(301.0);
    let e = entry(
        &pve.call("GET", "/cluster/resources?type=vm").await.data(),
        106,
    );
    assert_eq!(e["status"], "unknown");
    assert!(e.get("name").is_none() && e.get("uptime").is_none() && e.get("template").is_none());
    assert_eq!(
        (e["node"].as_str(), e["id"].as_str()),
        (Some("pve3"), Some("qemu/106"))
    );
    let nodes = pve.call("GET", "/nodes").await.data();
    let n3 = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "pve3")
        .unwrap()
        .clone();
    let mut keys: Vec<&String> = n3.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        vec!["id", "node", "ssl_fingerprint", "status", "type"]
    );
}

// ---------------------------------------------------------------- rule 16

#[tokio::test]
async fn rule16_offline_nodes_give_595_after_the_permission_check() {
    let pve = Pve::with_seed(restricted_seed());
    pve.cluster.set_node_online("pve3", false);
    let a = pve.call("GET", "/nodes/pve3/qemu/104/config").await;
    assert_eq!((a.status, a.reason()), (595, "No route to host"));
    assert!(a.body.is_none() && a.header("Content-Type").is_none() && a.close);
    let a = pve.call("GET", "/nodes/pve3/qemu/abc/config").await;
    assert_eq!(a.status, 595, "parameters are validated on the target node");
    let mut one = Pve {
        auth: ONLY100_TOKEN.into(),
        ..Pve::with_seed(restricted_seed())
    };
    one.cluster.set_node_online("pve3", false);
    one.call("GET", "/nodes/pve3/qemu/104/config")
        .await
        .assert_error(403, "Permission check failed (/vms/104, VM.Audit)");
    one.auth = sync_token();
    // Cluster-wide calls keep working and show the node offline.
    let nodes = pve.call("GET", "/nodes").await.data();
    assert!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["node"] == "pve3" && n["status"] == "offline")
    );
    let st = pve.call("GET", "/cluster/status").await.data();
    let st = st.as_array().unwrap();
    assert_eq!(
        st[0],
        json!({"type": "cluster", "id": "cluster", "name": "lab", "nodes": 3, "version": 5, "quorate": 1})
    );
    assert!(st.iter().any(|e| e["name"] == "pve3" && e["online"] == 0));
    assert!(st.iter().any(|e| e["name"] == "pve1" && e["local"] == 1));
}

#[tokio::test]
async fn rule16_unknown_nodes_localhost_and_quorum() {
    let pve = Pve::example();
    pve.call("GET", "/nodes/nosuch/qemu").await.assert_error(
        500,
        "hostname lookup 'nosuch' failed - failed to get address info for: nosuch: Name or service not known",
    );
    let a = pve.call_at("pve2", "GET", "/nodes/localhost/qemu").await;
    let vmids: Vec<u64> = a
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["vmid"].as_u64().unwrap())
        .collect();
    assert_eq!(vmids, vec![102, 103, 107]);

    pve.cluster.set_node_quorate("pve1", Some(false));
    pve.form("POST", "/nodes/pve1/qemu/101/status/start", &[])
        .await
        .assert_error(500, "cluster not ready - no quorum?");
    pve.form("POST", "/nodes/pve1/lxc/200/status/start", &[])
        .await
        .assert_error(500, "CT 200 already running");
    pve.cluster.add_guest(GuestSeed::ct(203, "ct-off", "pve1"));
    pve.form("POST", "/nodes/pve1/lxc/203/status/start", &[])
        .await
        .assert_error(500, "cluster not ready - no quorum?");
    pve.form(
        "PUT",
        "/nodes/pve1/qemu/100/config",
        &[("description", "x")],
    )
    .await
    .assert_error(500, "cluster not ready - no quorum?");
    // Majority rule: two of three nodes offline → no quorum anywhere.
    pve.cluster.set_node_quorate("pve1", None);
    pve.cluster.set_node_online("pve2", false);
    pve.cluster.set_node_online("pve3", false);
    let st = pve.call("GET", "/cluster/status").await.data();
    assert_eq!(st[0]["quorate"], 0);
}

// ---------------------------------------------------------------- rule 17

#[tokio::test]
async fn rule17_oversized_bodies_and_connection_close() {
    let pve = Pve::example();
    let mut req = request(
        "PUT",
        "/api2/json/nodes/pve1/qemu/100/config",
        &[("Authorization", &pve.auth)],
        b"",
    );
    req.oversized = true;
    let a = pve.send("pve1", req).await;
    assert_eq!((a.status, a.reason()), (501, "for data too large"));
    assert_eq!(a.text(), "for data too large");
    assert!(a.header("Content-Type").unwrap().starts_with("text/plain"));
    assert!(a.close);
    for (status, path) in [
        (400, "/nodes/pve1/qemu/abc/config"),
        (500, "/nodes/pve1/qemu/999/config"),
        (501, "/nope"),
    ] {
        let a = pve.call("GET", path).await;
        assert_eq!(a.status, status);
        assert!(a.close, "{status} closes");
    }
    assert!(!pve.call("GET", "/version").await.close);
    let a = pve
        .send("pve1", request("PATCH", "/api2/json/version", &[], b""))
        .await;
    assert_eq!(
        (a.status, a.reason()),
        (501, "method 'PATCH' not available")
    );
    assert!(
        a.body.is_none(),
        "checked before authentication, empty body"
    );
}

// ---------------------------------------------------------------- rule 18

#[tokio::test]
async fn rule18_never_404_or_429() {
    let pve = Pve::example();
    for path in [
        "/nope",
        "/nodes/pve1/nope",
        "/nodes/pve1/qemu/100/status/reboot",
        "/cluster/nope/deeper",
    ] {
        let a = pve.call("GET", path).await;
        assert_eq!(a.status, 501, "{path}");
    }
    let a = pve.send("pve1", request("GET", "/", &[], b"")).await;
    assert_eq!((a.status, a.reason()), (501, "no such uri"));
    let a = pve.send("pve1", request("GET", "/api2/", &[], b"")).await;
    assert_eq!(
        (a.status, a.reason()),
        (501, "no such uri"),
        "before authentication"
    );
    let a = pve
        .send(
            "pve1",
            request(
                "GET",
                "/api2/yaml/version",
                &[("Authorization", &pve.auth)],
                b"",
            ),
        )
        .await;
    assert_eq!(
        (a.status, a.reason()),
        (501, "no formatter for uri /version, yaml")
    );
    let a = pve
        .send("pve1", request("GET", "/api2/yaml/version", &[], b""))
        .await;
    assert_eq!(
        a.status, 401,
        "the formatter is checked after authentication"
    );
    for _ in 0..300 {
        let a = pve.call("GET", "/cluster/resources").await;
        assert_eq!(a.status, 200);
    }
}

// ---------------------------------------------------------------- rule 19

#[tokio::test]
async fn rule19_answers_carry_the_route_template_for_the_request_log() {
    let pve = Pve::example();
    let a = pve.call("GET", "/nodes/pve1/qemu/100/config").await;
    assert_eq!(
        a.route.as_deref(),
        Some("GET /nodes/{node}/qemu/{vmid}/config")
    );
    let a = pve
        .form("POST", "/nodes/pve3/qemu/104/status/start", &[])
        .await;
    assert_eq!(
        a.route.as_deref(),
        Some("POST /nodes/{node}/qemu/{vmid}/status/start")
    );
    let upid = a.data().as_str().unwrap().to_string();
    let a = pve
        .call("GET", &format!("/nodes/pve3/tasks/{}/status", enc(&upid)))
        .await;
    assert_eq!(
        a.route.as_deref(),
        Some("GET /nodes/{node}/tasks/{upid}/status")
    );
    let a = pve
        .send("pve1", request("GET", "/api2/json/version", &[], b""))
        .await;
    assert_eq!(
        a.route.as_deref(),
        Some("GET /version"),
        "401s are counted per route too"
    );
}

// ---------------------------------------------------------------- extras

#[tokio::test]
async fn digest_race_injection_makes_the_next_write_fail() {
    let pve = Pve::example();
    let d = pve.digest("pve1", "qemu", 100).await;
    pve.cluster.inject_digest_race(100, "edited by a human");
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/qemu/100/config",
            &[("description", "daemon"), ("digest", &d)],
        )
        .await;
    a.assert_error(500, "checksum mismatch (file change by other user?)");
    assert_eq!(pve.cluster.notes(100).as_deref(), Some("edited by a human"));
    let d2 = pve.digest("pve1", "qemu", 100).await;
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/qemu/100/config",
            &[("description", "daemon"), ("digest", &d2)],
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(pve.cluster.config_writes(100), 1);
}

#[tokio::test]
async fn config_writes_wait_for_a_task_holding_the_config_lock() {
    let pve = Pve::example();
    let mut stubborn = GuestSeed::vm(113, "slow", "pve1").running();
    stubborn.shutdown = ShutdownBehaviour::Ignore;
    pve.cluster.add_guest(stubborn);
    pve.form(
        "POST",
        "/nodes/pve1/qemu/113/status/shutdown",
        &[("timeout", "30")],
    )
    .await;
    let auth = pve.auth.clone();
    let cluster = pve.cluster.clone();
    let write = tokio::spawn(async move {
        let req = request(
            "PUT",
            "/api2/json/nodes/pve1/qemu/113/config",
            &[("Authorization", &auth)],
            b"description=x",
        );
        let a: Answer = cluster.handler("pve1").handle(req).await.into();
        a
    });
    for _ in 0..200 {
        if write.is_finished() {
            break;
        }
        pve.advance(0.25);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let a = write.await.unwrap();
    a.assert_error(
        500,
        "can't lock file '/var/lock/qemu-server/lock-113.conf' - got timeout",
    );
}

#[tokio::test]
async fn seed_round_trips_through_yaml_and_rejects_unknown_keys() {
    let seed = ClusterSeed::example("lab");
    let json = serde_json::to_string(&seed).unwrap();
    let back: ClusterSeed = serde_json::from_str(&json).unwrap();
    assert_eq!(back.guests.len(), seed.guests.len());
    let yaml = "name: x\nnodes:\n  - name: pve1\nguests:\n  - vmid: 100\n    type: qemu\n    node: pve1\n    bogus: 1\n";
    assert!(serde_saphyr::from_str::<ClusterSeed>(yaml).is_err());
    let ok = "name: x\nnodes:\n  - name: pve1\nguests:\n  - vmid: 100\n    type: lxc\n    node: pve1\n    status: running\n";
    let s: ClusterSeed = serde_saphyr::from_str(ok).unwrap();
    assert_eq!(s.guests[0].status, SeedStatus::Running);
}

#[tokio::test]
async fn thousands_of_guests_stay_fast() {
    let mut seed = ClusterSeed::example("big").auth_delay(false);
    for i in 0..5000u32 {
        seed.guests.push(GuestSeed::vm(
            1000 + i,
            &format!("vm{i}"),
            ["pve1", "pve2", "pve3"][(i % 3) as usize],
        ));
    }
    let pve = Pve::with_seed(seed);
    let mut spent = Duration::ZERO;
    for _ in 0..5 {
        let start = std::time::Instant::now();
        let a = pve.call("GET", "/cluster/resources?type=vm").await;
        spent += start.elapsed();
        assert_eq!(a.data().as_array().unwrap().len(), 5012);
    }
    let per_call = spent / 5;
    println!("GET /cluster/resources with 5012 guests: {per_call:?} per call");
    assert!(per_call < Duration::from_millis(500), "{per_call:?}");

    // Handler throughput for per-guest calls (one task, i.e. one core).
    let start = std::time::Instant::now();
    let n = 2000u32;
    for i in 0..n {
        let a = pve
            .call(
                "GET",
                &format!("/nodes/pve1/qemu/{}/config", 1000 + (i % 1667) * 3),
            )
            .await;
        assert_eq!(a.status, 200);
    }
    let rate = f64::from(n) / start.elapsed().as_secs_f64();
    println!("GET .../config with 5012 guests: {rate:.0} requests/s (handler level, one core)");
}

#[tokio::test]
async fn repeated_path_parameters_and_tickets() {
    let pve = Pve::example();
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/qemu/100/config",
            &[("vmid", "101"), ("description", "x")],
        )
        .await;
    assert_eq!(
        a.param_error("vmid"),
        "duplicate parameter (already defined in URI) with conflicting values!"
    );
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/qemu/100/config",
            &[("vmid", "100"), ("description", "x")],
        )
        .await;
    assert_eq!(a.status, 200, "same value is fine: {}", a.text());
    let a = pve
        .call("GET", "/nodes/pve1/qemu/100/config?node=pve2")
        .await;
    assert_eq!(a.status, 400);
    // A ticket cookie wins over the token (and the lab has no valid tickets).
    let req = request(
        "GET",
        "/api2/json/version",
        &[
            ("Authorization", &pve.auth),
            ("Cookie", "PVEAuthCookie=PVE:root@pam:0000"),
        ],
        b"",
    );
    assert_eq!(pve.send("pve1", req).await.status, 401);
}

#[tokio::test]
async fn node_stats_need_sys_audit_and_standalone_status() {
    let mut one = Pve::with_seed(restricted_seed());
    one.auth = ONLY100_TOKEN.into();
    let nodes = one.call("GET", "/nodes").await.data();
    let n1 = &nodes.as_array().unwrap()[0];
    assert_eq!(
        (n1["node"].as_str(), n1["status"].as_str()),
        (Some("pve1"), Some("online"))
    );
    assert!(n1.get("cpu").is_none() && n1.get("maxmem").is_none());
    let pve = Pve::example();
    let n1 = pve.call("GET", "/nodes").await.data()[0].clone();
    assert!(n1["cpu"].is_f64() && n1["maxmem"].is_u64() && n1["uptime"].is_u64());

    let mut seed = ClusterSeed::new("solo")
        .node("pve1")
        .auth_delay(false)
        .with_root_defaults();
    seed.standalone = true;
    let solo = Pve {
        auth: ROOT_TOKEN.into(),
        ..Pve::with_seed(seed)
    };
    let st = solo.call("GET", "/cluster/status").await.data();
    assert_eq!(
        st,
        json!([{"type": "node", "id": "node/pve1", "name": "pve1", "nodeid": 0,
                "ip": "192.0.2.11", "local": 1, "online": 1, "level": ""}])
    );
}

trait RootDefaults {
    fn with_root_defaults(self) -> Self;
}

impl RootDefaults for ClusterSeed {
    /// The root token the helpers use.
    fn with_root_defaults(self) -> Self {
        self.token(
            pve_guac_lab::proxmox::TokenSeed::new(
                "root@pam",
                "lab",
                "c0ffee00-1234-4abc-9def-0123456789ab",
            )
            .privsep(false),
        )
    }
}

#[tokio::test]
async fn lists_nets_legacy_agent_network_and_migration() {
    let pve = Pve::example();
    pve.cluster.add_guest(GuestSeed {
        name: None,
        ..GuestSeed::vm(120, "", "pve1")
    });
    let list = pve.call("GET", "/nodes/pve1/qemu").await.data();
    let e = entry(&list, 120);
    assert_eq!(e["name"], "VM 120");
    assert!(e.get("type").is_none(), "no type field in VM lists");
    assert_eq!(entry(&list, 105)["template"], 1);
    let cts = pve.call("GET", "/nodes/pve1/lxc").await.data();
    assert_eq!(entry(&cts, 200)["type"], "lxc");

    // A NIC written without MAC gets a generated upper-case one (needs
    // VM.Config.Network, which the sync token lacks).
    let a = pve
        .form(
            "PUT",
            "/nodes/pve1/qemu/100/config",
            &[("net1", "virtio,bridge=vmbr1")],
        )
        .await;
    a.assert_error(403, "Permission check failed (/vms/100, VM.Config.Network)");
    let root = Pve {
        auth: ROOT_TOKEN.into(),
        ..Pve::with_seed(ClusterSeed::example("lab").auth_delay(false))
    };
    let a = root
        .form(
            "PUT",
            "/nodes/pve1/qemu/100/config",
            &[("net1", "virtio,bridge=vmbr1,firewall=1")],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let net1 = root.cluster.config(100).unwrap()["net1"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        net1.starts_with("virtio=BC:24:11:") && net1.ends_with(",bridge=vmbr1,firewall=1"),
        "{net1}"
    );
    assert_eq!(net1[7..24], net1[7..24].to_ascii_uppercase());

    // Legacy agent endpoint: PVE 9 wants VM.GuestAgent.Unrestricted.
    let a = pve
        .form("POST", "/nodes/pve1/qemu/100/agent", &[("command", "ping")])
        .await;
    assert_eq!(a.status, 403);
    let a = root
        .form(
            "POST",
            "/nodes/pve1/qemu/100/agent",
            &[("command", "network-get-interfaces")],
        )
        .await;
    assert_eq!(a.status, 200);
    assert!(a.data()["result"].is_array());

    // Node network: bridges only with SDN rights, type filter, changes.
    let all = pve.call("GET", "/nodes/pve1/network").await.data();
    let ifaces: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["iface"].as_str().unwrap())
        .collect();
    assert_eq!(ifaces, vec!["vmbr0", "vmbr1", "eno1", "eno2"]);
    assert_eq!(all[0]["cidr"], "192.0.2.11/24");
    assert_eq!(all[0]["netmask"], "24");
    let bridges = pve
        .call("GET", "/nodes/pve1/network?type=any_bridge")
        .await
        .data();
    assert_eq!(bridges.as_array().unwrap().len(), 2);
    let mut one = Pve::with_seed(restricted_seed());
    one.auth = ONLY100_TOKEN.into();
    let seen = one.call("GET", "/nodes/pve1/network").await.data();
    assert!(seen.as_array().unwrap().iter().all(|i| i["type"] == "eth"));
    let mut seed = ClusterSeed::example("lab").auth_delay(false);
    seed.nodes[0].pending_network_changes = Some("--- a\n+++ b\n".into());
    let changed = Pve::with_seed(seed);
    let a = changed.call("GET", "/nodes/pve1/network").await;
    assert_eq!(a.json()["changes"], "--- a\n+++ b\n");

    // After a migration the old node no longer has the config.
    pve.cluster.migrate_guest(100, "pve2");
    pve.call("GET", "/nodes/pve1/qemu/100/config")
        .await
        .assert_error(
            500,
            "Configuration file 'nodes/pve1/qemu-server/100.conf' does not exist",
        );
    assert_eq!(
        pve.call("GET", "/nodes/pve2/qemu/100/config").await.status,
        200
    );
}

#[tokio::test]
async fn revoked_expired_and_disabled_credentials_give_401() {
    let pve = Pve::example();
    assert_eq!(pve.call("GET", "/version").await.status, 200);
    let now = pve.clock.unix_secs();
    pve.cluster.set_token_expire(SYNC, now - 1);
    assert_eq!(
        pve.call("GET", "/version").await.reason(),
        "Authentication failed!"
    );
    pve.cluster.set_token_expire(SYNC, 0);
    pve.cluster.set_user_enabled("sync@pve", false);
    assert_eq!(pve.call("GET", "/version").await.status, 401);
    pve.cluster.set_user_enabled("sync@pve", true);
    assert_eq!(pve.call("GET", "/version").await.status, 200);
    assert!(pve.cluster.revoke_token(SYNC));
    assert_eq!(pve.call("GET", "/version").await.status, 401);
}

// ---------------------------------------------------------------- rule 20

const POOLED: &str = "PVEAPIToken=pooled@pve!desk=0d0d0d0d-1111-4222-8333-444444444444";

/// `pooled@pve` holds PVEVMAdmin on `/vms`; its privsep token `desk` is
/// granted only through pool `desk`, which holds guest 100 (101 is outside).
fn pool_seed() -> ClusterSeed {
    ClusterSeed::new("lab")
        .node("pve1")
        .auth_delay(false)
        .pool("desk")
        .guest(GuestSeed::vm(100, "in-pool", "pve1").running().pool("desk"))
        .guest(GuestSeed::vm(101, "outside", "pve1").running())
        .user("pooled@pve")
        .token(pve_guac_lab::proxmox::TokenSeed::new(
            "pooled@pve",
            "desk",
            "0d0d0d0d-1111-4222-8333-444444444444",
        ))
        .acl("/vms", "pooled@pve", "PVEVMAdmin")
        .acl("/pool/desk", "pooled@pve!desk", "PVEVMUser")
}

#[tokio::test]
async fn rule20_privsep_token_pool_roles_meet_the_owners_path_privileges() {
    let mut pve = Pve::with_seed(pool_seed());
    pve.auth = POOLED.into();
    // (token path roles ∪ token pool roles) ∩ (owner's privileges on the path).
    let a = pve.call("GET", "/nodes/pve1/qemu/100/config").await;
    assert_eq!(a.status, 200, "{}", a.text());
    let a = pve.call("GET", "/nodes/pve1/qemu/101/config").await;
    a.assert_error(403, "Permission check failed (/vms/101, VM.Audit)");
    let listed: Vec<u64> = pve
        .call("GET", "/cluster/resources?type=vm")
        .await
        .data()
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["vmid"].as_u64())
        .collect();
    assert_eq!(listed, vec![100]);
    // Pool-derived privileges carry propagate flag 0; PVEVMUser lacks
    // VM.Config.Options, so the intersection lacks it too.
    let a = pve.call("GET", "/access/permissions?path=/vms/100").await;
    let privs = a.data()["/vms/100"].as_object().unwrap().clone();
    assert_eq!(privs["VM.Audit"], 0, "{privs:?}");
    assert_eq!(privs["VM.PowerMgmt"], 0, "{privs:?}");
    assert!(!privs.contains_key("VM.Config.Options"), "{privs:?}");
}

#[tokio::test]
async fn rule20_pool_roles_of_a_user_are_flagged_zero_and_never_beat_path_roles() {
    let seed = ClusterSeed::new("lab")
        .node("pve1")
        .auth_delay(false)
        .pool("desk")
        .guest(GuestSeed::vm(100, "in-pool", "pve1").pool("desk"))
        .user("pooled@pve")
        .token(
            pve_guac_lab::proxmox::TokenSeed::new(
                "pooled@pve",
                "desk",
                "0d0d0d0d-1111-4222-8333-444444444444",
            )
            .privsep(false),
        )
        .acl("/pool/desk", "pooled@pve", "PVEVMUser")
        .acl("/vms/100", "pooled@pve", "PVEAuditor");
    let mut pve = Pve::with_seed(seed);
    pve.auth = POOLED.into();
    let a = pve.call("GET", "/access/permissions?path=/vms/100").await;
    let privs = a.data()["/vms/100"].as_object().unwrap().clone();
    // VM.Audit is in both roles: the path role (propagating) sets it to 1.
    assert_eq!(privs["VM.Audit"], 1, "{privs:?}");
    // VM.PowerMgmt only comes from the pool: flag 0.
    assert_eq!(privs["VM.PowerMgmt"], 0, "{privs:?}");

    // A NoAccess among the pool roles trumps the regular ACL.
    let seed = pool_seed().acl("/pool/desk", "pooled@pve", "NoAccess").acl(
        "/pool/desk",
        "pooled@pve",
        "PVEVMUser",
    );
    let mut pve = Pve::with_seed(seed);
    pve.auth = POOLED.into();
    let a = pve.call("GET", "/access/permissions?path=/vms/100").await;
    assert_eq!(a.data(), json!({"/vms/100": {}}));
}

#[tokio::test]
async fn rule20_no_access_replaces_every_other_role_at_its_level() {
    let seed = ClusterSeed::new("lab")
        .node("pve1")
        .auth_delay(false)
        .guest(GuestSeed::vm(100, "a", "pve1"))
        .user("pooled@pve")
        .token(
            pve_guac_lab::proxmox::TokenSeed::new(
                "pooled@pve",
                "desk",
                "0d0d0d0d-1111-4222-8333-444444444444",
            )
            .privsep(false),
        )
        .acl("/vms/100", "pooled@pve", "PVEVMUser")
        .acl("/vms/100", "pooled@pve", "NoAccess");
    let mut pve = Pve::with_seed(seed);
    pve.auth = POOLED.into();
    let a = pve.call("GET", "/nodes/pve1/qemu/100/config").await;
    a.assert_error(403, "Permission check failed (/vms/100, VM.Audit)");
    let a = pve.call("GET", "/access/permissions?path=/vms/100").await;
    assert_eq!(a.data(), json!({"/vms/100": {}}));
}

#[tokio::test]
async fn rule20_access_permissions_lists_every_node_of_the_acl_tree() {
    let seed = ClusterSeed::example("lab")
        .auth_delay(false)
        .user("other@pve")
        .acl("/sdn/zones/localnetwork/vmbr0", "other@pve", "PVEAuditor")
        .acl("/mapping/pci/gpu0", "other@pve", "PVEAuditor");
    let pve = Pve::with_seed(seed).with_root_token();
    let data = pve.call("GET", "/access/permissions").await.data();
    let paths: Vec<&str> = data
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for p in [
        "/",
        "/sdn/zones",
        "/sdn/zones/localnetwork",
        "/sdn/zones/localnetwork/vmbr0",
        "/mapping",
        "/mapping/pci",
        "/mapping/pci/gpu0",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    // Empty maps are dropped, but `path=` always answers its one key.
    let mut pve = Pve::with_seed(pool_seed());
    pve.auth = POOLED.into();
    let data = pve.call("GET", "/access/permissions").await.data();
    assert!(data.get("/vms/101").is_none(), "{data}");
    assert_eq!(data["/vms/100"]["VM.Audit"], 0, "{data}");
    let a = pve.call("GET", "/access/permissions?path=/vms/101").await;
    assert_eq!(a.data(), json!({"/vms/101": {}}));
}

// ---------------------------------------------------------------- rule 21

#[tokio::test]
async fn rule21_form_and_query_split_on_semicolons_and_cut_at_raw_equals() {
    let pve = Pve::example().with_root_token();
    let put = |body: &'static str| {
        request(
            "PUT",
            "/api2/json/nodes/pve1/qemu/100/config",
            &[
                ("Authorization", ROOT_TOKEN),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        )
    };
    // A raw `;` starts a new pair: `b` is an unknown parameter.
    let a = pve.send("pve1", put("description=a;b=c")).await;
    assert_eq!(a.status, 400, "{}", a.text());
    assert_eq!(
        a.param_error("b"),
        "property is not defined in schema and the schema does not allow additional properties"
    );
    // A raw `=` inside a value cuts it there.
    let a = pve.send("pve1", put("description=pass=x%3By")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(pve.cluster.notes(100).as_deref(), Some("pass"));
    // Encoded, both survive.
    let a = pve.send("pve1", put("description=a%3Bb%3Dc%26d")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(pve.cluster.notes(100).as_deref(), Some("a;b=c&d"));
    // A key without `=` is a parameter: unknown → 400.
    let a = pve.send("pve1", put("description=x&bogus")).await;
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(a.json()["errors"].get("bogus").is_some(), "{}", a.text());
    // The query string is decoded the same way.
    let a = pve
        .call("GET", "/nodes/pve1/qemu/100/config?current=1;bogus=1")
        .await;
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(a.json()["errors"].get("bogus").is_some(), "{}", a.text());
    // A repeated key becomes a list, which a string parameter refuses.
    let a = pve.send("pve1", put("description=a&description=b")).await;
    assert_eq!(a.status, 400, "{}", a.text());
    assert_eq!(
        a.param_error("description"),
        "type check ('string') failed - got ARRAY"
    );
}
