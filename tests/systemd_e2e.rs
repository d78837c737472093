//! pve-guac-sync.service under a real systemd 252 (PID 1 of a private PID +
//! mount namespace, see tests/systemd/sandbox.sh) against the lab on
//! 127.0.0.1: start, reload, a broken reload, the watchdog, stop, and the
//! journal. The unit, sysusers.d and tmpfiles.d files are installed as
//! shipped; the test's drop-in only shortens the watchdog and restart delay,
//! turns core dumps off and names the credentials.
//!
//! With PVE_GUAC_SYNC_E2E_INSTALLED set (`.ci/package`, after `dpkg -i`) the
//! same scenario runs the unit, sysusers.d and tmpfiles.d files and binary
//! the Debian package installed.
//!
//! Runs as root only (CI is root); prints a SKIP line otherwise.

mod common;
#[path = "systemd/harness.rs"]
mod harness;

use std::collections::BTreeSet;

use common::{TOKEN_ID, TOKEN_SECRET, managed_names};
use harness::{Install, Sandbox, installed_package, skip_reason};
use pve_guac_lab::guacamole::{GuacamoleSeed, UserSeed};
use pve_guac_lab::{Lab, LabSeed};
use pve_guac_sync::telemetry::AUDIT_MESSAGE_ID;
use serde_json::Value;

const UNIT: &str = "pve-guac-sync.service";
const ROOT_GROUP: &str = "pve-guac-sync";
const GUAC_USER: &str = "sync-service";
const GUAC_PASSWORD: &str = "Guac-Svc-Pw-7d1e";
const NOTES_PASSPHRASE: &str = common::NOTES_PASSPHRASE;
/// Passwords the lab's example guests carry in their notes.
const NOTE_PASSWORDS: &[&str] = &["S3cret", "Enc-Passw0rd!", "Ct-R00t"];

const DROPIN: &str = "[Service]
WatchdogSec=3s
RestartSec=1s
LimitCORE=0
LoadCredential=pve-lab-token
LoadCredential=guacamole-password
LoadCredential=notes-key
";

#[test]
fn the_service_runs_reloads_recovers_and_stops_under_systemd() {
    if let Some(reason) = skip_reason() {
        println!("SKIP systemd_e2e: {reason}");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lab = rt.block_on(common::lab(seed()));
    let installed = installed_package();
    let sandbox = Sandbox::boot(&Install {
        binary: (!installed).then(|| env!("CARGO_BIN_EXE_pve-guac-sync").as_ref()),
        dropin: DROPIN,
        credentials: &[
            ("pve-lab-token", TOKEN_SECRET),
            ("guacamole-password", GUAC_PASSWORD),
            ("notes-key", NOTES_PASSPHRASE),
        ],
    });

    if installed {
        println!("systemd_e2e: testing the installed package");
        the_package_provides_unit_and_binary(&sandbox);
    }
    start_and_sync(&sandbox, &lab);
    reload_picks_up_the_new_file(&sandbox, &lab);
    broken_reload_keeps_the_old_configuration(&sandbox, &lab);
    watchdog_restarts_a_frozen_daemon(&sandbox, &lab);
    stop_logs_out(&sandbox, &lab);
    journal_has_fields_and_audit_events_but_no_secrets(&sandbox, &lab);
}

/// The unit and binary under test are the Debian package's files, not the
/// build's bind-mounted over them.
fn the_package_provides_unit_and_binary(sandbox: &Sandbox) {
    for path in [
        "/usr/bin/pve-guac-sync",
        "/usr/lib/systemd/system/pve-guac-sync.service",
    ] {
        let owner = sandbox.exec(&["dpkg-query", "--search", path]);
        assert_eq!(
            harness::stdout(&owner).trim(),
            format!("pve-guac-sync: {path}"),
            "{}",
            String::from_utf8_lossy(&owner.stderr)
        );
    }
    let mounted = sandbox.exec(&["mountpoint", "-q", "/usr/bin/pve-guac-sync"]);
    assert!(!mounted.status.success(), "the binary is a bind mount");
    let installed = std::fs::read("/usr/lib/systemd/system/pve-guac-sync.service").unwrap();
    let loaded = sandbox.show(UNIT, "FragmentPath");
    assert_eq!(std::fs::read(&loaded).unwrap(), installed, "{loaded}");
    let version = sandbox.exec(&["/usr/bin/pve-guac-sync", "--version"]);
    assert_eq!(
        harness::stdout(&version).trim(),
        format!("pve-guac-sync {}", env!("CARGO_PKG_VERSION"))
    );
}

fn seed() -> LabSeed {
    LabSeed {
        guacamole: GuacamoleSeed::example().user(UserSeed::admin(GUAC_USER, GUAC_PASSWORD)),
        ..LabSeed::default()
    }
}

/// The service's configuration: every secret a `{credential: NAME}`.
fn config(lab: &Lab, name_template: &str, extra_sync: &str) -> String {
    let fp = lab.fingerprint_sha256();
    let endpoints: Vec<String> = lab
        .proxmox_endpoints("lab")
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect();
    format!(
        "proxmox:
  clusters:
    - name: lab
      endpoints: [{endpoints}]
      token_id: \"{TOKEN_ID}\"
      token_secret: {{credential: pve-lab-token}}
      tls: {{fingerprint_sha256: \"{fp}\"}}
      retry: {{max_attempts: 2, base_delay: 10ms, max_delay: 200ms}}
      rate_limit: {{per_second: 1000, burst: 100}}
guacamole:
  url: \"{guac}\"
  username: {GUAC_USER}
  password: {{credential: guacamole-password}}
  root_group: {ROOT_GROUP}
  tls: {{fingerprint_sha256: \"{fp}\"}}
  retry: {{max_attempts: 2, base_delay: 10ms, max_delay: 200ms}}
sync:
  interval: 1s
  jitter: 0
  grouping: node
  auto_encrypt: true
  name_template: \"{name_template}\"
{extra_sync}encryption:
  keys: [{{credential: notes-key}}]
state_dir: /var/lib/pve-guac-sync
logging: {{format: auto, level: info}}
",
        endpoints = endpoints.join(", "),
        guac = lab.guacamole_url(),
    )
}

const FIRST_TEMPLATE: &str = "{user}@{vmname}-{proto}";
const SECOND_TEMPLATE: &str = "{vmname}-{proto}-{user}";

fn names(lab: &Lab) -> BTreeSet<String> {
    managed_names(lab, ROOT_GROUP).into_iter().collect()
}

/// Guacamole identifiers of the managed connections (a rename keeps them).
fn identifiers(lab: &Lab) -> BTreeSet<String> {
    let wanted = names(lab);
    lab.guacamole()
        .connections()
        .into_iter()
        .filter(|c| wanted.contains(&c.name))
        .map(|c| c.identifier)
        .collect()
}

fn start_and_sync(sandbox: &Sandbox, lab: &Lab) {
    sandbox.install_config(&config(lab, FIRST_TEMPLATE, ""));
    // Type=notify: `start` returns once the daemon sent READY=1.
    sandbox.systemctl_ok(&["start", UNIT]);
    assert_eq!(sandbox.show(UNIT, "ActiveState"), "active");
    assert_eq!(sandbox.show(UNIT, "SubState"), "running");
    assert_eq!(sandbox.show(UNIT, "User"), "pve-guac-sync");
    let created = sandbox.wait("the first cycle's connections", 30, |_| {
        let now = names(lab);
        now.contains("admin@web01-rdp").then_some(now)
    });
    assert!(created.contains("dba@db01-ssh"), "{created:?}");
    let status = sandbox.wait("a STATUS= line", 30, |s| {
        Some(s.show(UNIT, "StatusText")).filter(|t| !t.is_empty())
    });
    println!("StatusText after start: {status}");
}

fn reload_picks_up_the_new_file(sandbox: &Sandbox, lab: &Lab) {
    let before = identifiers(lab);
    let main_pid = sandbox.show(UNIT, "MainPID");
    sandbox.install_config(&config(lab, SECOND_TEMPLATE, ""));
    sandbox.systemctl_ok(&["reload", UNIT]);
    let renamed = sandbox.wait("connections renamed by the new template", 30, |_| {
        let now = names(lab);
        (now.contains("web01-rdp-admin") && !now.contains("admin@web01-rdp")).then_some(now)
    });
    assert!(renamed.contains("db01-ssh-dba"), "{renamed:?}");
    // A rename is an update of the same connection, in the same process.
    assert_eq!(identifiers(lab), before);
    assert_eq!(sandbox.show(UNIT, "MainPID"), main_pid);
    assert_eq!(sandbox.show(UNIT, "ActiveState"), "active");
}

fn broken_reload_keeps_the_old_configuration(sandbox: &Sandbox, lab: &Lab) {
    let main_pid = sandbox.show(UNIT, "MainPID");
    let kept = names(lab);
    // Valid YAML, invalid configuration: a misspelt key on its own line.
    let broken = config(lab, "{vmname}-BROKEN", "  bogus_key: 1\n");
    let line = 1 + broken
        .lines()
        .position(|l| l.contains("bogus_key"))
        .unwrap();
    let problem = format!("/etc/pve-guac-sync/config.yaml:{line}: sync.bogus_key");
    sandbox.install_config(&broken);
    sandbox.systemctl_ok(&["reload", UNIT]);
    let status = sandbox.wait("the reload error in STATUS=", 30, |s| {
        Some(s.show(UNIT, "StatusText")).filter(|t| t.contains(&problem))
    });
    println!("StatusText after a broken reload: {status}");
    assert_eq!(sandbox.show(UNIT, "ActiveState"), "active");
    assert_eq!(sandbox.show(UNIT, "MainPID"), main_pid);
    sandbox.wait("the reload problem in the journal", 10, |s| {
        unit_entries(&s.journal_json())
            .iter()
            .any(|e| e["PRIORITY"] == "3" && field(e, "PROBLEM").contains(&problem))
            .then_some(())
    });
    // Cycles go on with the old file: two more Proxmox listings, no changes.
    let mark = lab.request_mark();
    sandbox.wait("two more cycles", 30, |_| {
        let listings = lab
            .requests_since(mark)
            .iter()
            .filter(|r| r.path.ends_with("/cluster/resources"))
            .count();
        (listings >= 2).then_some(())
    });
    assert_eq!(common::changes(lab, mark), Vec::<String>::new());
    assert_eq!(names(lab), kept);

    // Put a valid file back before the watchdog restarts the process: a
    // start with an invalid file exits 2 and is not restarted.
    sandbox.install_config(&config(lab, SECOND_TEMPLATE, ""));
    sandbox.systemctl_ok(&["reload", UNIT]);
    sandbox.wait("STATUS= without the reload error", 30, |s| {
        (!s.show(UNIT, "StatusText").contains("bogus_key")).then_some(())
    });
}

fn watchdog_restarts_a_frozen_daemon(sandbox: &Sandbox, lab: &Lab) {
    let frozen = sandbox.show(UNIT, "MainPID");
    let ids = identifiers(lab);
    sandbox.systemctl_ok(&["kill", "--kill-who=main", "--signal=SIGSTOP", UNIT]);
    sandbox.wait("a restart by the watchdog", 45, |s| {
        let pid = s.show(UNIT, "MainPID");
        (pid != frozen && pid != "0" && s.show(UNIT, "ActiveState") == "active").then_some(())
    });
    assert!(sandbox.show(UNIT, "NRestarts").parse::<u32>().unwrap() >= 1);
    let journal = sandbox.journal_text(UNIT);
    assert!(journal.contains("Watchdog timeout"), "{journal}");
    // The new process found its state: the same connections, no new ones.
    let mark = lab.request_mark();
    sandbox.wait("a cycle of the new process", 30, |_| {
        lab.requests_since(mark)
            .iter()
            .any(|r| r.path.ends_with("/cluster/resources"))
            .then_some(())
    });
    assert_eq!(identifiers(lab), ids);
}

fn stop_logs_out(sandbox: &Sandbox, lab: &Lab) {
    let mark = lab.request_mark();
    sandbox.systemctl_ok(&["stop", UNIT]);
    assert_eq!(sandbox.show(UNIT, "ActiveState"), "inactive");
    assert_eq!(sandbox.show(UNIT, "Result"), "success");
    assert_eq!(sandbox.show(UNIT, "ExecMainStatus"), "0");
    let requests = lab.requests_since(mark);
    // Guacamole 1.6 ends a session with `DELETE /session` (older releases
    // with `DELETE /tokens/{token}`).
    let logouts: Vec<String> = requests
        .iter()
        .filter(|r| {
            r.server == "guacamole"
                && r.method == "DELETE"
                && (r.route == "DELETE /session" || r.route == "DELETE /tokens/{token}")
        })
        .map(|r| format!("{} -> {}", r.route, r.status))
        .collect();
    assert_eq!(
        logouts,
        ["DELETE /session -> 204"],
        "requests after the stop began: {:#?}\n{}",
        requests
            .iter()
            .map(|r| format!("{} {} {}", r.server, r.route, r.status))
            .collect::<Vec<_>>(),
        sandbox.journal_text(UNIT)
    );
}

fn journal_has_fields_and_audit_events_but_no_secrets(sandbox: &Sandbox, lab: &Lab) {
    let raw = sandbox.journal_json();
    let mut secrets = vec![TOKEN_SECRET, GUAC_PASSWORD, NOTES_PASSPHRASE, "gAAAAA"];
    secrets.extend_from_slice(NOTE_PASSWORDS);
    for secret in secrets {
        assert!(!raw.contains(secret), "{secret} reached the journal");
    }
    let entries = unit_entries(&raw);
    let audit: Vec<&Value> = entries
        .iter()
        .filter(|e| e["MESSAGE_ID"] == AUDIT_MESSAGE_ID)
        .collect();
    for event in &audit {
        for name in ["ACTION", "RESULT", "CYCLE", "REASON", "MESSAGE"] {
            assert!(!field(event, name).is_empty(), "{name} missing: {event:#}");
        }
    }
    let of = |action: &str| -> Vec<&Value> {
        audit
            .iter()
            .copied()
            .filter(|e| e["ACTION"] == action)
            .collect()
    };
    // Six connections created once over two processes, renamed once.
    assert_eq!(of("create").len(), 6, "{audit:#?}");
    assert_eq!(of("update").len(), 6, "{audit:#?}");
    let create = of("create")
        .into_iter()
        .find(|e| e["IDENTITY"] == "lab/100/admin/rdp")
        .unwrap_or_else(|| panic!("no create of lab/100/admin/rdp: {audit:#?}"));
    let id = lab
        .guacamole()
        .connections()
        .into_iter()
        .find(|c| c.name == "web01-rdp-admin")
        .unwrap()
        .identifier;
    assert_eq!(
        [
            "RESULT",
            "CLUSTER",
            "VMID",
            "GUEST",
            "GUACAMOLE_ID",
            "CYCLE"
        ]
        .map(|name| field(create, name)),
        ["done", "lab", "100", "lab/100", id.as_str(), "1"].map(str::to_owned),
        "{create:#}"
    );
    let rewrites = of("rewrite_notes");
    assert!(
        rewrites.iter().any(|e| e["GUEST"] == "lab/100"),
        "notes encryption is audited: {audit:#?}"
    );
}

/// The unit's own entries (not systemd's about it) from `journalctl -o json`.
fn unit_entries(raw: &str) -> Vec<Value> {
    raw.lines()
        .map(|l| serde_json::from_str(l).expect("journalctl -o json prints JSON lines"))
        .filter(|e: &Value| e["_SYSTEMD_UNIT"] == UNIT)
        .collect()
}

/// A journal field as text (journalctl prints binary-safe fields as arrays).
fn field(entry: &Value, name: &str) -> String {
    entry[name].as_str().unwrap_or_default().to_owned()
}
