//! The typed Proxmox client against the lab's emulated cluster: every call
//! the daemon makes and every error of the spec it must type.

use std::time::{Duration, Instant};

use pve_guac_lab::proxmox::{
    AgentState, ClusterSeed, EXAMPLE_TOKEN_ID, EXAMPLE_TOKEN_SECRET, ShutdownBehaviour, TokenSeed,
};
use pve_guac_lab::{FaultRule, Lab, LabSeed};
use pve_guac_sync::http::tls::parse_fingerprint;
use pve_guac_sync::http::{HttpConfig, RetryPolicy, TlsMode};
use pve_guac_sync::proxmox::{
    AgentSetting, Feature, GuestKind, ProxmoxClient, ProxmoxClientConfig, ProxmoxError,
};
use pve_guac_sync::secret::Secret;

const AUDITOR_TOKEN_ID: &str = "auditor@pve!ro";
const AUDITOR_TOKEN_SECRET: &str = "9d2c4b6a-1e3f-4a5b-8c7d-0e1f2a3b4c5d";
const LIMITED_SECRET: &str = "5a5a5a5a-0000-4000-8000-123456789abc";

/// Virtual seconds per real second: a 3 s agent ping is 100 ms here.
const CLOCK_SCALE: f64 = 30.0;

async fn start(clusters: Vec<ClusterSeed>) -> Lab {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut seed = LabSeed::with_clusters(clusters);
    seed.clock_scale = CLOCK_SCALE;
    seed.auth_delay = Some(false);
    Lab::start(seed).await.expect("lab starts")
}

async fn example_lab() -> Lab {
    start(vec![ClusterSeed::example("lab")]).await
}

fn client_with(lab: &Lab, endpoints: Vec<String>, token_id: &str, secret: &str) -> ProxmoxClient {
    let mut http = HttpConfig::new(
        "proxmox:lab",
        TlsMode::PinnedSha256(parse_fingerprint(&lab.fingerprint_sha256()).unwrap()),
    );
    http.connect_timeout = Duration::from_secs(2);
    http.request_timeout = Duration::from_secs(10);
    http.retry = RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(20),
        cap: Duration::from_secs(2),
    };
    let client = ProxmoxClient::new(ProxmoxClientConfig {
        cluster: "lab".into(),
        endpoints: endpoints.iter().map(|e| e.parse().unwrap()).collect(),
        token_id: token_id.into(),
        token_secret: Secret::new(secret),
        http,
    })
    .unwrap();
    client.set_task_poll_interval(Duration::from_millis(10), Duration::from_millis(50));
    client
}

fn client(lab: &Lab) -> ProxmoxClient {
    client_with(
        lab,
        vec![lab.proxmox_url("lab")],
        EXAMPLE_TOKEN_ID,
        EXAMPLE_TOKEN_SECRET,
    )
}

#[tokio::test]
async fn cluster_inventory() {
    let lab = example_lab().await;
    let pve = client(&lab);

    let version = pve.version().await.unwrap();
    assert_eq!(version.major(), Some(9));

    let guests = pve.cluster_resources().await.unwrap();
    assert_eq!(guests.len(), 12);
    let web = guests.iter().find(|g| g.vmid == 100).unwrap();
    assert_eq!(
        (web.kind, web.node.as_str(), web.name.as_deref()),
        (GuestKind::Qemu, "pve1", Some("web01"))
    );
    assert_eq!(web.tag_list(), vec!["prod", "web"]);
    let ct = guests.iter().find(|g| g.vmid == 200).unwrap();
    assert_eq!(ct.kind, GuestKind::Lxc);
    assert_eq!(
        guests.iter().find(|g| g.vmid == 105).unwrap().template,
        Some(true)
    );
    assert_eq!(
        guests
            .iter()
            .find(|g| g.vmid == 108)
            .unwrap()
            .lock
            .as_deref(),
        Some("backup")
    );

    let nodes = pve.nodes().await.unwrap();
    assert_eq!(nodes.len(), 3);
    assert!(nodes.iter().all(|n| n.is_online()));

    let status = pve.cluster_status().await.unwrap();
    assert!(status.quorate());
    assert_eq!(status.cluster_name(), Some("lab"));
    assert_eq!(status.nodes().count(), 3);
}

#[tokio::test]
async fn guest_configs_are_typed() {
    let lab = example_lab().await;
    let pve = client(&lab);

    let web = pve.config("pve1", GuestKind::Qemu, 100).await.unwrap();
    assert_eq!(web.name.as_deref(), Some("web01"));
    assert_eq!(web.agent, AgentSetting::Enabled);
    assert_eq!(web.macs(), vec!["bc:24:11:5a:3c:01".parse().unwrap()]);
    assert!(web.notes.as_deref().unwrap().starts_with("Web frontend"));
    assert_eq!(web.digest.len(), 40);
    assert_eq!(web.digest, lab.proxmox("lab").digest(100).unwrap());

    let db = pve.config("pve1", GuestKind::Qemu, 101).await.unwrap();
    assert_eq!(db.agent, AgentSetting::Enabled, "enabled=1,… form");
    assert_eq!(db.nets.len(), 2);

    let legacy = pve.config("pve2", GuestKind::Qemu, 103).await.unwrap();
    assert_eq!(legacy.agent, AgentSetting::Absent);

    let tmpl = pve.config("pve1", GuestKind::Qemu, 105).await.unwrap();
    assert!(tmpl.template);
    let files = pve.config("pve1", GuestKind::Qemu, 108).await.unwrap();
    assert_eq!(files.lock.as_deref(), Some("backup"));

    let dns = pve.config("pve1", GuestKind::Lxc, 200).await.unwrap();
    assert_eq!(dns.name.as_deref(), Some("ct-dns"));
    assert_eq!(dns.macs(), vec!["BC:24:11:9F:3A:1C".parse().unwrap()]);
    assert_eq!(dns.nets[0].name.as_deref(), Some("eth0"));
    assert_eq!(dns.memory_mib, Some(512));
}

#[tokio::test]
async fn notes_write_is_guarded_by_the_digest() {
    let lab = example_lab().await;
    let pve = client(&lab);
    let cluster = lab.proxmox("lab");

    for (node, kind, vmid) in [
        ("pve1", GuestKind::Qemu, 100),
        ("pve2", GuestKind::Lxc, 201),
    ] {
        let before = pve.config(node, kind, vmid).await.unwrap();
        let mark = lab.request_mark();
        pve.set_notes(
            node,
            kind,
            vmid,
            "rewritten by the test",
            Some(&before.digest),
        )
        .await
        .unwrap();
        let notes = cluster.notes(vmid).unwrap();
        assert_eq!(notes.trim_end(), "rewritten by the test");
        // One PUT, carrying the digest; the notes are redacted in the log.
        let writes: Vec<_> = lab
            .requests_since(mark)
            .into_iter()
            .filter(|r| r.is_write())
            .collect();
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].method, "PUT");
        assert!(
            writes[0]
                .params
                .iter()
                .any(|(k, v)| k == "digest" && v == &before.digest),
            "{:?}",
            writes[0].params
        );

        // The old digest no longer matches.
        let err = pve
            .set_notes(node, kind, vmid, "second write", Some(&before.digest))
            .await
            .unwrap_err();
        assert_eq!(err.label(), "digest_mismatch", "{kind}: {err}");
        assert_eq!(
            cluster.notes(vmid).unwrap().trim_end(),
            "rewritten by the test"
        );
    }

    // A human edits between our read and our write.
    let fresh = pve.config("pve1", GuestKind::Qemu, 100).await.unwrap();
    cluster.inject_digest_race(100, "edited in the UI");
    let err = pve
        .set_notes("pve1", GuestKind::Qemu, 100, "ours", Some(&fresh.digest))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProxmoxError::DigestMismatch { .. }),
        "{err:?}"
    );
}

/// A real node splits form pairs on `;` as well as `&` and cuts a value at
/// a raw `=` (pve-http-server `decode_urlencoded`); the lab does the same.
/// Notes hold `;` after every block and passwords hold `=`: the client must
/// percent-encode them, so they come back byte for byte.
#[tokio::test]
async fn notes_with_separators_round_trip_byte_exact() {
    let lab = example_lab().await;
    let pve = client(&lab);
    let cluster = lab.proxmox("lab");
    let notes = "Reception PC; desk 4 & 5\n\
                 user:\"admin\" pass:\"a=b;c&d+e%41 f==\" protos:\"rdp\";\n\
                 user:\"root\" pass:\"=;&\" protos:\"ssh\"; é ☃ 50%25";
    for (node, kind, vmid, stored) in [
        ("pve1", GuestKind::Qemu, 100, notes.to_string()),
        ("pve2", GuestKind::Lxc, 201, format!("{notes}\n")),
    ] {
        let cfg = pve.config(node, kind, vmid).await.unwrap();
        pve.set_notes(node, kind, vmid, notes, Some(&cfg.digest))
            .await
            .unwrap();
        assert_eq!(cluster.notes(vmid).as_deref(), Some(stored.as_str()));
        let read = pve.config(node, kind, vmid).await.unwrap();
        assert_eq!(read.notes.as_deref(), Some(stored.as_str()));
    }
    // Query strings too: the asked path comes back as the answer's key.
    let odd = "/vms;x=1&y";
    let perms = pve.permissions(Some(odd)).await.unwrap();
    assert_eq!(perms.0.keys().collect::<Vec<_>>(), [odd]);
}

#[tokio::test]
async fn locked_guest_refuses_notes() {
    let lab = example_lab().await;
    let pve = client(&lab);
    let cfg = pve.config("pve1", GuestKind::Qemu, 108).await.unwrap();
    let err = pve
        .set_notes("pve1", GuestKind::Qemu, 108, "x", Some(&cfg.digest))
        .await
        .unwrap_err();
    match err {
        ProxmoxError::Locked { lock } => assert_eq!(lock, "backup"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn too_long_notes_are_a_bad_parameter() {
    let lab = example_lab().await;
    let pve = client(&lab);
    let err = pve
        .set_notes("pve1", GuestKind::Qemu, 100, &"x".repeat(8193), None)
        .await
        .unwrap_err();
    match err {
        ProxmoxError::BadParameter { errors, .. } => {
            assert_eq!(
                errors["description"],
                "value may only be 8192 characters long"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn wrong_token_is_an_auth_error() {
    let lab = example_lab().await;
    let started = Instant::now();
    let wrong = "00000000-dead-4bee-8f00-000000000000";
    let pve = client_with(&lab, vec![lab.proxmox_url("lab")], EXAMPLE_TOKEN_ID, wrong);
    let err = pve.version().await.unwrap_err();
    assert!(matches!(err, ProxmoxError::AuthFailed { .. }), "{err:?}");
    assert_eq!(err.label(), "auth_failed");
    assert!(!err.to_string().contains(wrong));
    assert!(started.elapsed() < Duration::from_secs(2), "401 delay off");

    // Old servers name the problem in the reason phrase only; same type.
    lab.proxmox("lab").set_legacy_auth_texts(true);
    match pve.cluster_resources().await.unwrap_err() {
        ProxmoxError::AuthFailed { reason, .. } => assert_eq!(reason, "invalid token value!"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn missing_privilege_is_named() {
    // A token that may edit disks but not options.
    let seed = ClusterSeed::example("lab")
        .user("limited@pve")
        .token(TokenSeed::new("limited@pve", "t1", LIMITED_SECRET).privsep(false))
        .role("DiskOnly", &["VM.Audit", "VM.Config.Disk"])
        .acl("/vms", "limited@pve", "DiskOnly");
    let lab = start(vec![seed]).await;
    let limited = client_with(
        &lab,
        vec![lab.proxmox_url("lab")],
        "limited@pve!t1",
        LIMITED_SECRET,
    );
    let cfg = limited.config("pve1", GuestKind::Qemu, 100).await.unwrap();
    let err = limited
        .set_notes("pve1", GuestKind::Qemu, 100, "x", Some(&cfg.digest))
        .await
        .unwrap_err();
    let (path, privs) = err.missing_privileges().expect("a permission error");
    assert_eq!(path, "/vms/100");
    assert_eq!(privs, ["VM.Config.Options"]);
    assert_eq!(
        err.to_string(),
        "permission check failed: VM.Config.Options on /vms/100"
    );

    // Without any VM.Config.* privilege the entry check lists them all.
    let auditor = client_with(
        &lab,
        vec![lab.proxmox_url("lab")],
        AUDITOR_TOKEN_ID,
        AUDITOR_TOKEN_SECRET,
    );
    let err = auditor
        .set_notes("pve1", GuestKind::Qemu, 100, "x", Some(&cfg.digest))
        .await
        .unwrap_err();
    let (_, privs) = err.missing_privileges().unwrap();
    assert!(privs.iter().any(|p| p == "VM.Config.Options"), "{privs:?}");

    let err = auditor
        .start("pve3", GuestKind::Qemu, 104)
        .await
        .unwrap_err();
    assert_eq!(err.missing_privileges().unwrap().1, ["VM.PowerMgmt"]);
}

#[tokio::test]
async fn privilege_checks_for_test_auth() {
    let lab = example_lab().await;
    let mark = lab.request_mark();
    let full = client(&lab).check_privileges(&Feature::ALL).await.unwrap();
    assert_eq!(full.len(), 5);
    assert!(full.iter().all(|c| c.passed), "{full:#?}");
    // One `path=` question per checked path, no whole-tree dump.
    let mut asked: Vec<String> = lab
        .requests_since(mark)
        .iter()
        .filter(|r| r.path.ends_with("/access/permissions"))
        .map(|r| {
            r.params
                .iter()
                .find(|(k, _)| k == "path")
                .map_or_else(|| "(none)".to_string(), |(_, v)| v.clone())
        })
        .collect();
    asked.sort();
    assert_eq!(asked, ["/", "/vms"]);

    let auditor = client_with(
        &lab,
        vec![lab.proxmox_url("lab")],
        AUDITOR_TOKEN_ID,
        AUDITOR_TOKEN_SECRET,
    );
    let checks = auditor.check_privileges(&Feature::ALL).await.unwrap();
    let failed: Vec<(&str, Feature)> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| (c.privilege.as_str(), c.feature))
        .collect();
    assert_eq!(
        failed,
        [
            ("VM.Config.Options", Feature::NoteWriteBack),
            ("VM.PowerMgmt", Feature::PowerUp)
        ]
    );
    let agent = checks
        .iter()
        .find(|c| c.feature == Feature::GuestAgent)
        .unwrap();
    assert!(agent.passed, "PVEAuditor has VM.GuestAgent.Audit on PVE 9");
    assert_eq!(
        agent.privilege,
        "VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted"
    );
}

/// A privsep token granted only on a pool, whose owner holds `/vms`: a real
/// node intersects (token path ∪ pool roles) with the owner's privileges on
/// each guest, so the pool's guests are visible and `test-auth` says so.
#[tokio::test]
async fn a_token_granted_through_a_pool_sees_the_pool_guests() {
    let secret = "0d0d0d0d-1111-4222-8333-444444444444";
    let lab = start(vec![
        ClusterSeed::example("lab")
            .user("pooled@pve")
            .token(TokenSeed::new("pooled@pve", "desk", secret))
            .acl("/vms", "pooled@pve", "PVEVMAdmin")
            .acl("/pool/prod", "pooled@pve!desk", "PVEVMUser"),
    ])
    .await;
    let pooled = client_with(
        &lab,
        vec![lab.proxmox_url("lab")],
        "pooled@pve!desk",
        secret,
    );
    let guests = pooled.cluster_resources().await.unwrap();
    let mut seen: Vec<u32> = guests.iter().map(|g| g.vmid).collect();
    seen.sort_unstable();
    let mut in_pool: Vec<u32> = lab
        .proxmox("lab")
        .guests()
        .iter()
        .filter(|g| g.pool.as_deref() == Some("prod"))
        .map(|g| g.vmid)
        .collect();
    in_pool.sort_unstable();
    assert!(!in_pool.is_empty());
    assert_eq!(seen, in_pool);
    let checks = pooled
        .check_privileges(&[Feature::Inventory, Feature::NoteWriteBack])
        .await
        .unwrap();
    assert!(checks[0].passed, "{checks:#?}");
    assert!(
        checks[0].detail.starts_with(&format!(
            "granted only on {} path(s) below /vms",
            in_pool.len()
        )),
        "{}",
        checks[0].detail
    );
    // PVEVMUser lacks VM.Config.Options, so the intersection does too.
    assert!(!checks[1].passed, "{checks:#?}");
}

#[tokio::test]
async fn pve8_agent_privilege_is_vm_monitor() {
    let lab = start(vec![ClusterSeed::example("lab").version("8.4.1")]).await;
    let auditor = client_with(
        &lab,
        vec![lab.proxmox_url("lab")],
        AUDITOR_TOKEN_ID,
        AUDITOR_TOKEN_SECRET,
    );
    let checks = auditor
        .check_privileges(&[Feature::GuestAgent])
        .await
        .unwrap();
    assert_eq!(checks[0].privilege, "VM.Monitor");
    assert!(!checks[0].passed, "PVEAuditor lacks VM.Monitor on PVE 8");
    // And the server agrees.
    let err = auditor
        .network_get_interfaces("pve1", 100)
        .await
        .unwrap_err();
    assert_eq!(err.missing_privileges().unwrap().1, ["VM.Monitor"]);
}

#[tokio::test]
async fn guest_agent_answers_and_errors() {
    let lab = example_lab().await;
    let pve = client(&lab);
    let cluster = lab.proxmox("lab");

    let ifaces = pve.network_get_interfaces("pve1", 100).await.unwrap();
    let eth = ifaces
        .iter()
        .find(|i| i.mac == Some("BC:24:11:5A:3C:01".parse().unwrap()))
        .expect("the NIC, matched by MAC");
    assert!(eth.ipv4().any(|a| a.ip.to_string() == "192.0.2.10"));
    assert!(ifaces.iter().any(|i| i.name == "lo"));

    // Extra interfaces, one without a MAC.
    let docker = pve.network_get_interfaces("pve3", 106).await.unwrap();
    assert!(docker.iter().any(|i| i.name == "tun0" && i.mac.is_none()));

    let not_configured = pve.network_get_interfaces("pve2", 103).await.unwrap_err();
    assert!(
        matches!(not_configured, ProxmoxError::AgentNotConfigured),
        "{not_configured:?}"
    );

    let not_running = pve.network_get_interfaces("pve2", 102).await.unwrap_err();
    assert!(
        matches!(not_running, ProxmoxError::AgentNotRunning),
        "{not_running:?}"
    );

    let stopped = pve.network_get_interfaces("pve3", 104).await.unwrap_err();
    assert_eq!(stopped.label(), "guest_not_running", "{stopped:?}");

    cluster.set_agent_state(100, AgentState::Hang);
    let hang = pve.network_get_interfaces("pve1", 100).await.unwrap_err();
    assert_eq!(hang.label(), "agent_timeout", "{hang:?}");

    cluster.set_agent_state(100, AgentState::CommandError);
    match pve.network_get_interfaces("pve1", 100).await.unwrap_err() {
        ProxmoxError::AgentCommand { class, desc } => {
            assert_eq!(class.as_deref(), Some("CommandNotFound"));
            assert!(desc.contains("has been disabled"), "{desc}");
        }
        other => panic!("{other:?}"),
    }

    cluster.set_agent_state(100, AgentState::TransportError);
    let transport = pve.network_get_interfaces("pve1", 100).await.unwrap_err();
    assert_eq!(transport.label(), "agent_command", "{transport:?}");

    // The same typing from legacy bodies (reason phrase only).
    cluster.set_legacy_error_body(true);
    let legacy = pve.network_get_interfaces("pve2", 103).await.unwrap_err();
    assert!(
        matches!(legacy, ProxmoxError::AgentNotConfigured),
        "{legacy:?}"
    );
}

#[tokio::test]
async fn container_interfaces_running_and_stopped() {
    let lab = example_lab().await;
    let pve = client(&lab);
    let running = pve
        .container_interfaces("pve1", 200)
        .await
        .unwrap()
        .unwrap();
    let eth0 = running.iter().find(|i| i.name == "eth0").unwrap();
    assert_eq!(eth0.mac, Some("bc:24:11:9f:3a:1c".parse().unwrap()));
    assert!(eth0.ipv4().any(|a| a.ip.to_string() == "192.0.2.50"));
    assert_eq!(pve.container_interfaces("pve2", 201).await.unwrap(), None);
    // A missing container is also `null`, not an error.
    assert_eq!(pve.container_interfaces("pve2", 299).await.unwrap(), None);
}

#[tokio::test]
async fn power_actions_and_task_polling() {
    let lab = example_lab().await;
    let pve = client(&lab);

    let upid = pve.start("pve3", GuestKind::Qemu, 104).await.unwrap();
    assert_eq!(upid.node, "pve3");
    assert_eq!(upid.kind, "qmstart");
    assert_eq!(upid.user, EXAMPLE_TOKEN_ID);
    let done = pve.wait_task(&upid, Duration::from_secs(10)).await.unwrap();
    assert_eq!(done.exitstatus.as_deref(), Some("OK"));
    assert!(
        pve.status_current("pve3", GuestKind::Qemu, 104)
            .await
            .unwrap()
            .is_running()
    );

    // Starting again fails inside the task.
    let again = pve.start("pve3", GuestKind::Qemu, 104).await.unwrap();
    let err = pve
        .wait_task(&again, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(err.label(), "task_failed");
    assert_eq!(err.task_cause().unwrap().label(), "guest_already_running");

    let stop = pve.stop("pve3", GuestKind::Qemu, 104).await.unwrap();
    pve.wait_task(&stop, Duration::from_secs(10)).await.unwrap();
    let status = pve
        .status_current("pve3", GuestKind::Qemu, 104)
        .await
        .unwrap();
    assert!(!status.is_running());
    assert!(status.agent, "config enables the agent");

    // Containers report these synchronously.
    let err = pve.start("pve1", GuestKind::Lxc, 200).await.unwrap_err();
    assert_eq!(err.label(), "guest_already_running", "{err:?}");
    let err = pve
        .shutdown("pve2", GuestKind::Lxc, 201, None)
        .await
        .unwrap_err();
    assert_eq!(err.label(), "guest_not_running", "{err:?}");
}

#[tokio::test]
async fn shutdown_timeout_and_task_wait_timeout() {
    let mut seed = ClusterSeed::example("lab");
    for g in seed.guests.iter_mut().filter(|g| g.vmid == 100) {
        g.shutdown = ShutdownBehaviour::Ignore;
    }
    let lab = start(vec![seed]).await;
    let pve = client(&lab);

    // The guest ignores the request: the wait gives up first…
    let upid = pve
        .shutdown("pve1", GuestKind::Qemu, 100, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let err = pve
        .wait_task(&upid, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, ProxmoxError::TaskTimeout { .. }), "{err:?}");
    // …and the task itself ends with the server's timeout (60 virtual s = 2 s).
    let err = pve
        .wait_task(&upid, Duration::from_secs(10))
        .await
        .unwrap_err();
    match err {
        ProxmoxError::TaskFailed { exitstatus, .. } => {
            assert_eq!(exitstatus, "VM quit/powerdown failed - got timeout")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unknown_guest_and_node() {
    let lab = example_lab().await;
    let pve = client(&lab);
    let err = pve.config("pve1", GuestKind::Qemu, 999).await.unwrap_err();
    assert!(matches!(err, ProxmoxError::GuestNotFound { .. }), "{err:?}");
    let err = pve.config("pve1", GuestKind::Lxc, 998).await.unwrap_err();
    assert_eq!(err.label(), "guest_not_found");
    let err = pve
        .config("nosuchnode", GuestKind::Qemu, 100)
        .await
        .unwrap_err();
    assert_eq!(err.label(), "unknown_node", "{err:?}");

    lab.proxmox("lab").set_legacy_error_body(true);
    let err = pve.config("pve1", GuestKind::Qemu, 999).await.unwrap_err();
    assert!(
        matches!(err, ProxmoxError::GuestNotFound { .. }),
        "legacy body: {err:?}"
    );
}

#[tokio::test]
async fn offline_first_endpoint_fails_over_and_offline_node_is_595() {
    let lab = start(vec![ClusterSeed::example("lab").with_node_offline("pve1")]).await;
    let endpoints = lab.proxmox_endpoints("lab");
    assert_eq!(endpoints.len(), 3);
    let pve = client_with(
        &lab,
        endpoints.clone(),
        EXAMPLE_TOKEN_ID,
        EXAMPLE_TOKEN_SECRET,
    );

    let guests = pve.cluster_resources().await.unwrap();
    assert!(!guests.is_empty());
    assert_eq!(
        pve.current_endpoint().as_str(),
        format!("{}/api2/json", endpoints[1])
    );

    // The working endpoint is remembered: later calls go straight to pve2.
    let mark = lab.request_mark();
    pve.nodes().await.unwrap();
    let served: Vec<String> = lab
        .requests_since(mark)
        .into_iter()
        .map(|r| r.server)
        .collect();
    assert_eq!(served, ["proxmox:lab/pve2"]);

    // A guest on the offline node: the contacted node answers 595.
    match pve.config("pve1", GuestKind::Qemu, 100).await.unwrap_err() {
        ProxmoxError::NodeOffline {
            node,
            status,
            reason,
        } => {
            assert_eq!((node.as_str(), status), ("pve1", 595));
            assert_eq!(reason, "No route to host");
        }
        other => panic!("{other:?}"),
    }

    // test-auth's probe shows which endpoint is down.
    let probes = pve.probe_endpoints().await;
    let ok: Vec<bool> = probes.iter().map(|p| p.result.is_ok()).collect();
    assert_eq!(ok, [false, true, true]);
    assert!(probes[0].result.as_ref().unwrap_err().label() != "auth_failed");
}

#[tokio::test]
async fn proxmox_503_with_retry_after_is_retried() {
    let lab = example_lab().await;
    let pve = client(&lab);
    lab.faults("lab").add(
        FaultRule::retry_after(503, 1)
            .path_prefix("/api2/json/cluster/resources")
            .times(1),
    );
    let started = Instant::now();
    assert_eq!(pve.cluster_resources().await.unwrap().len(), 12);
    assert!(started.elapsed() >= Duration::from_millis(950));
    let stats = pve.http().stats();
    let resources = stats
        .iter()
        .find(|s| s.endpoint == "GET /cluster/resources")
        .unwrap();
    assert_eq!((resources.count, resources.retries), (2, 1));
}

#[tokio::test]
async fn test_auth_report_lines() {
    let lab = example_lab().await;
    let good = client_with(
        &lab,
        lab.proxmox_endpoints("lab"),
        EXAMPLE_TOKEN_ID,
        EXAMPLE_TOKEN_SECRET,
    );
    let report = good.test_auth(&Feature::ALL).await;
    assert!(report.passed(), "{:#?}", report.lines());
    let lines = report.lines();
    assert_eq!(lines.len(), 3 + 5);
    assert!(lines.iter().all(|l| l.starts_with("ok ")), "{lines:#?}");
    assert!(lines[0].contains("pinned SHA-256"), "{}", lines[0]);

    lab.proxmox("lab").set_node_online("pve1", false);
    let auditor = client_with(
        &lab,
        lab.proxmox_endpoints("lab"),
        AUDITOR_TOKEN_ID,
        AUDITOR_TOKEN_SECRET,
    );
    let report = auditor.test_auth(&Feature::ALL).await;
    assert!(!report.passed());
    let lines = report.lines();
    assert!(
        lines[0].starts_with("FAIL proxmox lab: https://127.0.0.1:"),
        "{lines:#?}"
    );
    assert!(lines[1].starts_with("ok   proxmox lab:"), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.starts_with(
            "FAIL VM.Config.Options on /vms (needed for note write-back (auto-encrypt))"
        )),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("FAIL VM.PowerMgmt on /vms (needed for power-up")),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains(AUDITOR_TOKEN_SECRET)));
}

#[tokio::test]
async fn hanging_endpoint_fails_over_for_reads_but_not_for_power_actions() {
    let lab = example_lab().await;
    lab.faults("lab").add(FaultRule::hang().node("pve1"));
    let endpoints = lab.proxmox_endpoints("lab");
    // Fresh clients prefer pve1; a short deadline keeps the test fast.
    let short_deadline_client = || {
        let mut http = HttpConfig::new(
            "proxmox:lab",
            TlsMode::PinnedSha256(lab.fingerprint_bytes()),
        );
        http.request_timeout = Duration::from_millis(300);
        ProxmoxClient::new(ProxmoxClientConfig {
            cluster: "lab".into(),
            endpoints: endpoints.iter().map(|e| e.parse().unwrap()).collect(),
            token_id: EXAMPLE_TOKEN_ID.into(),
            token_secret: Secret::new(EXAMPLE_TOKEN_SECRET),
            http,
        })
        .unwrap()
    };

    // A read times out on pve1 and is answered by pve2.
    let pve = short_deadline_client();
    let started = Instant::now();
    assert_eq!(pve.nodes().await.unwrap().len(), 3);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        pve.current_endpoint().as_str(),
        format!("{}/api2/json", endpoints[1])
    );

    // A power action that may have reached pve1 is not sent again elsewhere.
    let pve = short_deadline_client();
    let mark = lab.request_mark();
    let err = pve.start("pve3", GuestKind::Qemu, 104).await.unwrap_err();
    assert_eq!(err.label(), "timeout", "{err:?}");
    let posts: Vec<_> = lab
        .requests_since(mark)
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].server, "proxmox:lab/pve1");
    assert!(!lab.proxmox("lab").running_guests().contains(&104));
}
