//! The `once`, `plan` and `list` commands: the real binary against the lab.

mod common;

use std::process::Output;

use common::*;
use pve_guac_lab::LabSeed;
use pve_guac_lab::guacamole::{ConnectionSeed, GuacamoleSeed};

const SYNC: &str = "  grouping: node\n  auto_encrypt: true\n  prune: {enabled: true, grace: 0s}";

async fn run(setup: &Setup, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pve-guac-sync"));
    cmd.arg("--config").arg(&setup.config).args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("binary runs"))
        .await
        .unwrap();
    assert_output_clean(&args.join(" "), &out);
    out
}

fn seed() -> LabSeed {
    LabSeed {
        guacamole: GuacamoleSeed::example(),
        ..LabSeed::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_json_reports_the_cycle_and_converges() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let out = run(&setup, &["once", "--json"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = json(&out);
    assert_eq!(s["created"], 6);
    assert_eq!(s["updated"], 0);
    assert_eq!(s["deleted"], 0);
    assert_eq!(s["pending"], 0);
    assert_eq!(s["errors"], 0);
    assert_eq!(s["notes_rewritten"], 6);
    assert!(s["requests"]["guacamole"].as_u64().unwrap() > 0);
    assert!(s["requests"]["proxmox:lab"].as_u64().unwrap() > 0);
    assert!(s["duration_ms"].is_u64());

    let mark = lab.request_mark();
    let out = run(&setup, &["once", "--json"]).await;
    assert_eq!(out.status.code(), Some(0));
    let s = json(&out);
    assert_eq!(
        (s["created"].as_u64(), s["unchanged"].as_u64()),
        (Some(0), Some(6))
    );
    // A fresh process changes nothing (its logout aside).
    assert_eq!(changes(&lab, mark), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_prints_reasons_and_no_secrets_and_changes_nothing() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let mark = lab.request_mark();
    let out = run(&setup, &["plan"]).await;
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("create lab/100/admin/rdp \"admin@web01-rdp\" in pve1"),
        "{text}"
    );
    assert!(text.contains("because: new credential block"), "{text}");
    let out = run(&setup, &["plan", "--json"]).await;
    let plan = json(&out);
    let actions = plan["actions"].as_array().unwrap();
    let create = actions.iter().find(|a| a["action"] == "create").unwrap();
    assert_eq!(create["connection"]["params"]["password"], "***");
    let all =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    for secret in ["S3cret", "Enc-Passw0rd!", "Ct-R00t", TOKEN_SECRET, "gAAAAA"] {
        assert!(!all.contains(secret), "{secret} leaked");
    }
    // Only reads (and the session's own logout).
    assert_eq!(changes(&lab, mark), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_ok_drift_missing_orphan_and_error() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    assert_eq!(run(&setup, &["once"]).await.status.code(), Some(0));

    let g = lab.guacamole();
    let id = |name: &str| {
        g.connections()
            .into_iter()
            .find(|c| c.name == name)
            .unwrap()
            .identifier
    };
    g.set_parameter(&id("admin@web01-rdp"), "port", Some("3390"));
    g.delete_connection(&id("dba@db01-ssh"));
    let pve1 = g.groups().into_iter().find(|x| x.name == "pve1").unwrap();
    g.add_connection(ConnectionSeed::new("hand-made", "ssh").parent(&pve1.identifier))
        .unwrap();
    lab.proxmox("lab").set_notes(
        200,
        "user:\"root\" pass:\"x\" protos:\"ssh\" ssh_port:\"0\";",
    );

    let out = run(&setup, &["list", "--json"]).await;
    assert_eq!(out.status.code(), Some(1));
    let rows = json(&out);
    let status = |name: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no row {name}: {rows:#}"))["status"]
            .clone()
    };
    assert_eq!(status("admin@web01-ssh"), "ok");
    assert_eq!(status("admin@web01-rdp"), "drift");
    assert_eq!(status("dba@db01-ssh"), "missing");
    assert_eq!(status("hand-made"), "orphan");
    assert_eq!(status("root@ct-dns-ssh"), "error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_exits_3_while_the_budget_leaves_changes_pending() {
    let lab = lab(seed()).await;
    let setup = config(&lab, &format!("{SYNC}\n  max_changes_per_cycle: 4"));
    let out = run(&setup, &["once", "--json"]).await;
    assert_eq!(out.status.code(), Some(3));
    let s = json(&out);
    assert!(s["pending"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_dry_run_logs_instead_of_writing() {
    let lab = lab(seed()).await;
    let setup = config(
        &lab,
        "  grouping: node\n  auto_encrypt: true\n  dry_run: true",
    );
    let mark = lab.request_mark();
    let out = run(&setup, &["once", "--json"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(json(&out)["dry_run"].as_bool().unwrap());
    assert_eq!(changes(&lab, mark), Vec::<String>::new());
    assert!(
        lab.proxmox("lab")
            .notes(100)
            .unwrap()
            .contains("pass:\"S3cret\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_is_an_audit_event_without_secrets() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pve-guac-sync"));
    cmd.arg("--config")
        .arg(&setup.config)
        .args(["once"])
        .env("PVE_GUAC_SYNC_LOG", "info");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let audit: Vec<&str> = log.lines().filter(|l| l.contains("action=")).collect();
    // Root group, 2 sub-groups, 6 connections, 6 note rewrites.
    assert_eq!(audit.len(), 15, "{log}");
    let create = audit
        .iter()
        .find(|l| l.contains("identity=lab/100/admin/rdp"))
        .unwrap();
    for field in [
        "action=\"create\"",
        "guest=lab/100",
        "guacamole_id=",
        "reason=",
        "result=\"done\"",
    ] {
        assert!(create.contains(field), "{field} missing: {create}");
    }
    for secret in [
        "S3cret",
        "Enc-Passw0rd!",
        "F1les!",
        TOKEN_SECRET,
        "guacadmin\"",
        "gAAAAA",
    ] {
        assert!(!log.contains(secret), "{secret} leaked: {log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_calls_a_vanished_guests_connection_an_orphan_during_its_grace() {
    let lab = lab(seed()).await;
    let setup = config(
        &lab,
        "  grouping: node\n  prune: {enabled: true, grace: 1h}",
    );
    assert_eq!(run(&setup, &["once"]).await.status.code(), Some(0));
    lab.proxmox("lab").remove_guest(200);
    let out = run(&setup, &["list", "--json"]).await;
    let rows = json(&out);
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "root@ct-dns-ssh")
        .unwrap()
        .clone();
    assert_eq!(row["status"], "orphan", "{row:#}");
    assert!(
        row["detail"]
            .as_str()
            .unwrap()
            .contains("pruned after 3600s")
    );
}
