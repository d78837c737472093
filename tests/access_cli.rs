//! Access grants through the binary: `plan` shows them with reasons, `once`
//! audits them, `list` shows who may use each connection.

mod common;

use std::process::Output;

use common::*;
use pve_guac_lab::LabSeed;
use pve_guac_lab::guacamole::{GuacamoleSeed, UserGroupSeed, UserSeed};

const SYNC: &str = "  grouping: node\n  prune: {enabled: true, grace: 0s}";
const ACCESS: &str = "access:\n  rules:\n    - match: {tags: [web]}\n      groups: [students]\n  notes_may_grant:\n    users: [alice]\n";

async fn run(setup: &Setup, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pve-guac-sync"));
    cmd.arg("--config")
        .arg(&setup.config)
        .args(args)
        .env("PVE_GUAC_SYNC_LOG", "info");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("binary runs"))
        .await
        .unwrap();
    assert_output_clean(&args.join(" "), &out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_once_and_list_show_and_audit_the_grants() {
    let lab = lab(LabSeed {
        guacamole: GuacamoleSeed::example()
            .user(UserSeed::new("alice", "alice-pw"))
            .user_group(UserGroupSeed::new("students")),
        ..LabSeed::default()
    })
    .await;
    let setup = config(&lab, SYNC);
    let mut text = std::fs::read_to_string(&setup.config).unwrap();
    text.push_str(ACCESS);
    std::fs::write(&setup.config, text).unwrap();
    lab.proxmox("lab").set_notes(
        100,
        "user:\"admin\" pass:\"S3cret\" protos:\"rdp\" access:\"user:alice\";",
    );

    let out = run(&setup, &["plan"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "grant READ on connection lab/100/admin/rdp \"admin@web01-rdp\" (new) to user group \"students\"\n     because: named by access rule 1 (tags: web)"
        ),
        "{text}"
    );
    assert!(
        text.contains("to user \"alice\"\n     because: named by notes block 1 (line 1) access"),
        "{text}"
    );
    let plan = json(&run(&setup, &["plan", "--json"]).await);
    let grant = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "grant" && a["target"]["object"] == "group")
        .unwrap_or_else(|| panic!("{plan:#}"));
    assert_eq!(grant["op"], "grant");
    assert!(grant["reason"].as_str().unwrap().starts_with("visibility"));

    let out = run(&setup, &["once"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    let grants: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("action=\"grant\""))
        .collect();
    // rdp connection + root + pve1, for alice and for students.
    assert_eq!(grants.len(), 6, "{log}");
    assert!(
        grants
            .iter()
            .all(|l| l.contains("result=\"done\"") && l.contains("reason=")),
        "{grants:#?}"
    );
    assert!(!log.contains("S3cret"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("permissions changed 6"), "{stdout}");

    let rows = json(&run(&setup, &["list", "--json"]).await);
    let web = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "admin@web01-rdp")
        .unwrap();
    assert_eq!(web["status"], "ok");
    assert_eq!(
        web["access"],
        serde_json::json!(["user:alice", "group:students"])
    );

    let id = web["id"].as_str().unwrap().to_owned();
    let alice = lab.guacamole().permissions("alice").unwrap();
    assert_eq!(
        alice["connectionPermissions"][&id],
        serde_json::json!(["READ"])
    );
    // The notes drop alice: list calls the connection drift and says why.
    lab.proxmox("lab")
        .set_notes(100, "user:\"admin\" pass:\"S3cret\" protos:\"rdp\";");
    let out = run(&setup, &["list", "--json"]).await;
    assert_eq!(out.status.code(), Some(1));
    let rows = json(&out);
    let web = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "admin@web01-rdp")
        .unwrap();
    assert_eq!(web["status"], "drift");
    assert!(
        web["detail"]
            .as_str()
            .unwrap()
            .contains("revoke READ on connection lab/100/admin/rdp"),
        "{web:#}"
    );
    assert_eq!(web["access"], serde_json::json!(["group:students"]));
}

async fn test_auth(setup: &Setup) -> (i32, String) {
    let out = run(setup, &["test-auth"]).await;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap(), text)
}

fn with_access(lab: &pve_guac_lab::Lab, access: &str) -> Setup {
    let setup = config(lab, SYNC);
    let mut text = std::fs::read_to_string(&setup.config).unwrap();
    text.push_str(access);
    std::fs::write(&setup.config, text).unwrap();
    setup
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_auth_names_a_missing_group_and_a_missing_permission() {
    let access = "access:\n  rules:\n    - groups: [students, nope]\n  notes_may_grant:\n    users: [alice]\n";
    // An administrator may change anyone's permissions; only the unknown
    // group fails.
    let lab = lab(LabSeed {
        guacamole: GuacamoleSeed::example()
            .user(UserSeed::new("alice", "alice-pw"))
            .user_group(UserGroupSeed::new("students")),
        ..LabSeed::default()
    })
    .await;
    let (code, text) = test_auth(&with_access(&lab, access)).await;
    assert_eq!(code, 1, "{text}");
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle}: {text}"))
            .to_owned()
    };
    assert!(
        line("UPDATE on user \"alice\"").starts_with("  ok"),
        "{text}"
    );
    assert!(
        line("UPDATE on user group \"students\"").starts_with("  ok"),
        "{text}"
    );
    let nope = line("UPDATE on user group \"nope\"");
    assert!(nope.starts_with("  FAIL"), "{nope}");
    assert!(nope.contains("does not exist in Guacamole"), "{nope}");

    // A delegated account without UPDATE on the group is told so.
    let lab = lab_for_delegated().await;
    let (code, text) = test_auth(&with_access(
        &lab,
        "access:\n  rules:\n    - groups: [students]\n",
    ))
    .await;
    assert_eq!(code, 1, "{text}");
    let students = text
        .lines()
        .find(|l| l.contains("UPDATE on user group \"students\""))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(students.starts_with("  FAIL"), "{students}");
    assert!(students.contains("grant"), "{students}");
}

async fn lab_for_delegated() -> pve_guac_lab::Lab {
    lab(LabSeed {
        guacamole: GuacamoleSeed::default()
            .user(
                UserSeed::new("guacadmin", "guacadmin")
                    .system_permission("CREATE_CONNECTION")
                    .system_permission("CREATE_CONNECTION_GROUP"),
            )
            .user_group(UserGroupSeed::new("students")),
        ..LabSeed::default()
    })
    .await
}
