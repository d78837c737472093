//! Operator tooling, the real binary against the lab: `notes add`,
//! `explain`, `list` filters and CSV, and hosts from the `external:` section.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Output, Stdio};

use common::*;
use pve_guac_lab::LabSeed;
use pve_guac_lab::guacamole::GuacamoleSeed;
use serde_json::Value;

const SYNC: &str = "  grouping: node\n  auto_encrypt: true\n  prune: {enabled: true, grace: 0s}";
const ROOT: &str = "pve-guac-sync";
const PASSWORD: &str = "Tr1cky-Onboard-Pw";

fn seed() -> LabSeed {
    LabSeed {
        guacamole: GuacamoleSeed::example(),
        ..LabSeed::default()
    }
}

fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_pve-guac-sync"))
}

async fn run(setup: &Setup, args: &[&str]) -> Output {
    let mut cmd = bin();
    cmd.arg("--config").arg(&setup.config).args(args);
    // The most verbose logs, so "nowhere in the logs" means something.
    cmd.env("PVE_GUAC_SYNC_LOG", "debug");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("binary runs"))
        .await
        .unwrap();
    assert_output_clean(&args.join(" "), &out);
    out
}

/// `notes add … --password-stdin` with the password written to its stdin
/// only after checking that neither its command line nor its environment
/// holds it (what `ps` and `/proc` show).
async fn notes_add(setup: &Setup, args: &[&str], password: &str) -> Output {
    let mut cmd = bin();
    cmd.arg("--config")
        .arg(&setup.config)
        .args(["notes", "add"])
        .args(args)
        .arg("--password-stdin")
        .env("PVE_GUAC_SYNC_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("binary runs");
        let pid = child.id();
        // Between fork and exec the entry still shows the test; wait
        // (bounded) for the command itself, which then blocks on stdin.
        let mut cmdline = Vec::new();
        for _ in 0..200 {
            cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("--password-stdin") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        for seen in [&cmdline, &environ] {
            assert!(!String::from_utf8_lossy(seen).contains(&password));
        }
        assert!(
            String::from_utf8_lossy(&cmdline).contains("--password-stdin"),
            "the process list was read"
        );
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(password.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn conn_params(lab: &pve_guac_lab::Lab, name: &str) -> std::collections::BTreeMap<String, String> {
    let c = lab
        .guacamole()
        .connections()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no connection {name}"));
    lab.guacamole().parameters(&c.identifier).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_add_then_a_cycle_creates_the_connection_and_the_password_appears_nowhere() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let px = lab.proxmox("lab");
    let before = px.notes(202).unwrap_or_default();
    let out = notes_add(
        &setup,
        &[
            "ct-mon",
            "--user",
            "admin",
            "--protos",
            "ssh,telnet",
            "--port",
            "2022",
        ],
        PASSWORD,
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("connection \"admin@ct-mon-ssh\": ssh port 2022 user admin password ***"),
        "{stdout}"
    );
    assert!(stdout.contains("identity lab/202/admin/ssh"), "{stdout}");
    assert!(stdout.contains("identity lab/202/admin/telnet"), "{stdout}");
    let notes = px.notes(202).unwrap();
    assert!(
        notes.starts_with(&before),
        "every earlier byte kept: {notes}"
    );
    assert!(
        notes.contains("user:\"admin\" encrypted_password:\"gAAAAA"),
        "{notes}"
    );
    assert!(
        notes.contains("protos:\"ssh,telnet\" port:\"2022\";"),
        "{notes}"
    );

    let once = run(&setup, &["once", "--json"]).await;
    let (once_out, once_err) = text(&once);
    assert_eq!(once.status.code(), Some(0), "{once_out}\n{once_err}");
    assert!(managed_names(&lab, ROOT).contains(&"admin@ct-mon-ssh".to_owned()));
    let p = conn_params(&lab, "admin@ct-mon-ssh");
    assert_eq!(p["password"], PASSWORD, "Guacamole gets the password");
    assert_eq!(p["port"], "2022");
    assert_eq!(p["hostname"], "203.0.113.30");

    // Nowhere else: notes, output and logs of both commands, and anything
    // sent to Proxmox.
    for (what, seen) in [
        ("notes", px.notes(202).unwrap()),
        ("notes add stdout", stdout),
        ("notes add logs", stderr),
        ("once stdout", once_out),
        ("once logs", once_err),
    ] {
        assert!(!seen.contains(PASSWORD), "plaintext in {what}");
    }
    for r in lab
        .requests()
        .iter()
        .filter(|r| r.server.starts_with("proxmox"))
    {
        let sent = format!("{:?} {} {:?}", r.params, r.query, r.json);
        assert!(
            !sent.contains(PASSWORD),
            "plaintext sent to Proxmox: {}",
            r.path
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_add_keeps_a_note_edit_made_while_it_writes() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let human = "Edited in the UI meanwhile.";
    lab.proxmox("lab").inject_digest_race(202, human);
    let out = notes_add(
        &setup,
        &["lab/202", "--user", "ops", "--protos", "ssh"],
        PASSWORD,
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("changed while writing; reading them again"),
        "{stderr}"
    );
    let notes = lab.proxmox("lab").notes(202).unwrap();
    assert!(
        notes.starts_with("Edited in the UI meanwhile.\nuser:\"ops\" encrypted_password:\"gAAAAA"),
        "{notes}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_add_names_an_existing_block_and_replaces_it_only_when_asked() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let px = lab.proxmox("lab");
    let before = px.notes(100).unwrap();

    let out = notes_add(
        &setup,
        &["web01", "--user", "admin", "--protos", "rdp"],
        PASSWORD,
    )
    .await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("block 1 (line 2) already holds admin/rdp; pass --replace"),
        "{stderr}"
    );
    assert_eq!(px.notes(100).unwrap(), before);

    let out = notes_add(
        &setup,
        &[
            "100",
            "--user",
            "admin",
            "--protos",
            "rdp",
            "--replace",
            "--dry-run",
            "--group",
            "Lab/Web",
        ],
        PASSWORD,
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stdout.trim_end(),
        "Web frontend, owned by team A.\nuser:\"admin\" encrypted_password:\"***\" protos:\"rdp\" group:\"Lab/Web\";"
    );
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD));
    assert_eq!(px.notes(100).unwrap(), before, "dry run writes nothing");

    let out = notes_add(
        &setup,
        &["100", "--user", "admin", "--protos", "rdp", "--replace"],
        PASSWORD,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let after = px.notes(100).unwrap();
    assert!(
        after.starts_with(
            "Web frontend, owned by team A.\nuser:\"admin\" encrypted_password:\"gAAAAA"
        ),
        "{after}"
    );
    assert_eq!(
        after.matches("user:").count(),
        1,
        "swapped in place: {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_a_block_error_a_missing_address_and_a_guest_in_sync() {
    let lab = lab(seed()).await;
    let setup = config(
        &lab,
        &format!("{SYNC}\naccess:\n  rules:\n    - groups: [ops]"),
    );
    assert_eq!(run(&setup, &["once"]).await.status.code(), Some(0));
    let px = lab.proxmox("lab");

    // In sync.
    let out = run(&setup, &["explain", "web01", "--json"]).await;
    let doc = json(&out);
    assert_eq!(doc["guest"], "lab/100");
    assert_eq!(doc["selection"]["selected"], true);
    assert_eq!(doc["address"]["address"], "192.0.2.10");
    // `once` just learnt it from the agent; discovery does not ask again
    // while it is fresh, so explain shows the cache and where it came from.
    assert_eq!(doc["address"]["source"], "cache");
    assert_eq!(doc["address"]["learnt_from"], "agent");
    assert!(doc["address"]["seen_at"].as_u64().is_some());
    let statuses: Vec<&str> = doc["existing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ok", "ok"], "{doc:#}");
    assert_eq!(doc["pending"].as_array().unwrap().len(), 0, "{doc:#}");
    assert_eq!(doc["desired"].as_array().unwrap().len(), 2);
    assert_eq!(
        doc["blocks"][0]["keys"][1]["value"], "***",
        "never a secret"
    );
    // The access rule's grant, in place after `once`.
    assert_eq!(
        doc["grants"],
        serde_json::json!({
            "lab/100/admin/rdp": ["group:ops"],
            "lab/100/admin/ssh": ["group:ops"],
        }),
        "{doc:#}"
    );

    // A block error: the connection is kept and the error named.
    px.set_notes(
        101,
        "Primary database.\nuser:\"dba\" pass:\"Sup3rSecret\" protos:\"ssh\" ssh_port:\"0\";",
    );
    let mark = lab.request_mark();
    let out = run(&setup, &["explain", "lab/101"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains(
            "error: block 1 (line 2), key ssh_port: port must be a number from 1 to 65535"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("existing error"), "{stdout}");
    assert!(stdout.contains("pending: nothing"), "{stdout}");
    assert!(!stdout.contains("Sup3rSecret") && !stderr.contains("Sup3rSecret"));
    // Read only, and only this guest's config was asked for.
    assert_eq!(changes(&lab, mark), Vec::<String>::new());
    let configs: Vec<String> = lab
        .requests_since(mark)
        .into_iter()
        .filter(|r| r.path.ends_with("/config"))
        .map(|r| r.path)
        .collect();
    assert_eq!(configs, ["/api2/json/nodes/pve1/qemu/101/config"]);

    // No address: the agent is down; the reason is given.
    let out = run(&setup, &["explain", "102", "--json"]).await;
    let doc = json(&out);
    assert!(doc["address"]["address"].is_null(), "{doc:#}");
    assert!(
        doc["address"]["why"].as_str().unwrap().contains("agent"),
        "{doc:#}"
    );
    assert_eq!(doc["held"], "address unknown");

    // Selection by rule.
    let ex = config(&lab, &format!("{SYNC}\n  exclude: {{nodes: [pve3]}}"));
    let doc = json(&run(&ex, &["explain", "docker01", "--json"]).await);
    assert_eq!(doc["selection"]["selected"], false);
    assert_eq!(doc["selection"]["rule"], "matched by sync.exclude.nodes");
}

fn names(rows: &Value) -> Vec<String> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_and_csv() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    assert_eq!(run(&setup, &["once"]).await.status.code(), Some(0));
    let list = |args: &'static [&'static str]| {
        let setup = &setup;
        async move {
            let mut all = vec!["list", "--json"];
            all.extend_from_slice(args);
            run(setup, &all).await
        }
    };
    let all = names(&json(&list(&[]).await));
    assert_eq!(all.len(), 6);
    assert_eq!(
        names(&json(&list(&["--guest", "web01"]).await)),
        ["admin@web01-rdp", "admin@web01-ssh"]
    );
    assert_eq!(
        names(&json(&list(&["--guest", "lab/101"]).await)),
        ["dba@db01-ssh"]
    );
    assert_eq!(
        names(&json(&list(&["--protocol", "vnc"]).await)),
        ["viewer@docker01-vnc"]
    );
    assert_eq!(
        names(&json(&list(&["--group", "pve3"]).await)),
        ["viewer@docker01-vnc"]
    );
    assert_eq!(
        names(&json(&list(&["--name", "^admin@.*-ssh$"]).await)),
        ["admin@web01-ssh"]
    );
    assert_eq!(
        names(&json(&list(&["--cluster", "lab", "--status", "ok"]).await)).len(),
        6
    );
    assert!(names(&json(&list(&["--cluster", "elsewhere"]).await)).is_empty());

    // A hand edit makes one row drift; the status filter finds it.
    let c = lab
        .guacamole()
        .connections()
        .into_iter()
        .find(|c| c.name == "dba@db01-ssh")
        .unwrap();
    lab.guacamole()
        .set_parameter(&c.identifier, "port", Some("2200"));
    let out = list(&["--status", "drift"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(names(&json(&out)), ["dba@db01-ssh"]);

    let bad = list(&["--name", "web("]).await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).1.contains("is not a valid regular expression"));

    let csv_path = setup.dir.path().join("list.csv");
    let csv_arg = csv_path.to_str().unwrap().to_owned();
    let out = run(&setup, &["list", "--protocol", "ssh", "--csv", &csv_arg]).await;
    assert_eq!(out.status.code(), Some(1), "one ssh row drifts");
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "status,id,name,group,protocol,cluster,vmid,guest_name,identity,guest,detail"
    );
    assert_eq!(lines.len(), 1 + 4, "{csv}");
    assert!(
        lines.iter().any(|l| l.starts_with("drift,")
            && l.contains(",dba@db01-ssh,pve1,ssh,lab,101,db01,lab/101/dba/ssh,")),
        "{csv}"
    );
}

fn with_external(setup: &Setup, section: &str) {
    let base = std::fs::read_to_string(&setup.config).unwrap();
    let base = base.split("external:").next().unwrap().to_owned();
    std::fs::write(&setup.config, format!("{base}{section}")).unwrap();
    std::fs::set_permissions(&setup.config, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn external(host: &str, pw_file: &std::path::Path) -> String {
    format!(
        "external:\n  - name: core-switch\n    host: {host}\n    protocols: [ssh]\n    username: admin\n    password: {{file: {}}}\n    group: Network\n    settings: {{ssh: {{font-size: 10}}}}\n",
        pw_file.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_host_is_created_updated_and_removed_with_the_file() {
    let lab = lab(seed()).await;
    let setup = config(
        &lab,
        &format!("{SYNC}\n  allowed_networks: [192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24]"),
    );
    let pw = setup.dir.path().join("switch.pw");
    std::fs::write(&pw, "Sw1tch-Pw\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Outside allowed_networks: refused, naming the key.
    with_external(&setup, &external("10.20.0.2", &pw));
    let out = run(&setup, &["check-config"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out)
            .0
            .contains("external[0].host: 10.20.0.2 lies outside sync.allowed_networks")
            || text(&out)
                .1
                .contains("external[0].host: 10.20.0.2 lies outside sync.allowed_networks"),
        "{:?}",
        text(&out)
    );

    with_external(&setup, &external("192.0.2.200", &pw));
    let out = run(&setup, &["once", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(json(&out)["created"], 7);
    let g = lab.guacamole();
    let conn = g
        .connections()
        .into_iter()
        .find(|c| c.name == "admin@core-switch-ssh")
        .expect("created");
    let network = g
        .groups()
        .into_iter()
        .find(|x| x.identifier == conn.parent)
        .unwrap();
    assert_eq!(network.name, "Network");
    assert_eq!(network.parent, g.find_group(ROOT).unwrap().identifier);
    let p = conn_params(&lab, "admin@core-switch-ssh");
    assert_eq!(
        (
            p["hostname"].as_str(),
            p["password"].as_str(),
            p["font-size"].as_str()
        ),
        ("192.0.2.200", "Sw1tch-Pw", "10")
    );
    let rows = json(
        &run(
            &setup,
            &["list", "--json", "--guest", "external/core-switch"],
        )
        .await,
    );
    assert_eq!(rows[0]["identity"], "external/core-switch/ssh");
    assert_eq!(rows[0]["status"], "ok");

    // Update: the same connection, new address.
    with_external(&setup, &external("192.0.2.201", &pw));
    let out = run(&setup, &["once", "--json"]).await;
    assert_eq!(
        (
            json(&out)["updated"].as_u64(),
            json(&out)["created"].as_u64()
        ),
        (Some(1), Some(0))
    );
    assert_eq!(
        conn_params(&lab, "admin@core-switch-ssh")["hostname"],
        "192.0.2.201"
    );
    assert!(g.connection(&conn.identifier).is_some(), "same id");

    // Removed from the file: pruned (grace 0s), guests untouched.
    with_external(&setup, "");
    let out = run(&setup, &["once", "--json"]).await;
    assert_eq!(json(&out)["deleted"], 1, "{:?}", text(&out));
    assert!(g.connection(&conn.identifier).is_none());
    assert_eq!(managed_names(&lab, ROOT).len(), 6);
}
