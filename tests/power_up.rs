//! Power-up of stopped guests against the lab: the guest gets its
//! connection and is put back; budgets and refusals hold; a guest a person
//! started or restarted stays running; a crash mid power-up is repaired by
//! the next start of the real binary.

mod common;

use std::time::Duration;

use common::*;
use pve_guac_lab::proxmox::{AgentState, ClusterSeed, GuestSeed, SeedStatus};
use pve_guac_lab::{FaultRule, Lab, LabSeed};

const NOTES: &str = "user:\"admin\" pass:\"pw\" protos:\"ssh\";";
const TAG: &str = "guac-power-up";

fn only(guests: Vec<GuestSeed>) -> LabSeed {
    let mut c = ClusterSeed::example("lab");
    c.guests = guests;
    LabSeed::with_clusters(vec![c])
}

/// A stopped VM allowed to be powered up, whose agent answers after boot.
fn sleeper(vmid: u32, node: &str) -> GuestSeed {
    let mut g = GuestSeed::vm(vmid, &format!("vm{vmid}"), node)
        .agent("1")
        .tags(&[TAG])
        .notes(NOTES)
        .nic(
            &format!("BC:24:11:00:03:{:02X}", vmid % 256),
            &format!("192.0.2.{}/24", vmid % 200),
        );
    g.guest_agent.boot_delay_secs = 20.0;
    g
}

fn power_sync(extra: &str) -> String {
    format!(
        "  grouping: none\n  max_changes_per_cycle: 500\ndiscovery:\n  power_up: {{enabled: true, wait: 3s, shutdown_timeout: 10s{extra}}}"
    )
}

fn hostname(lab: &Lab, name: &str) -> Option<String> {
    let g = lab.guacamole();
    let c = g.connections().into_iter().find(|c| c.name == name)?;
    g.parameters(&c.identifier)?.get("hostname").cloned()
}

fn power_posts(lab: &Lab, vmid: u32) -> Vec<String> {
    lab.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.contains(&format!("/qemu/{vmid}/status/")))
        .map(|r| r.path.rsplit('/').next().unwrap_or_default().to_owned())
        .collect()
}

fn journal(setup: &Setup) -> String {
    std::fs::read_to_string(setup.dir.path().join("state/power-journal.json")).unwrap_or_default()
}

#[tokio::test]
async fn a_stopped_guest_gets_its_connection_and_is_stopped_again() {
    let lab = lab(only(vec![sleeper(300, "pve1")])).await;
    let setup = config(&lab, &power_sync(""));
    let engine = engine(&setup);
    let report = cycle(&engine).await;
    assert_eq!(
        hostname(&lab, "admin@vm300-ssh").as_deref(),
        Some("192.0.2.100"),
        "{:#?}",
        report.problems
    );
    let pve = lab.proxmox("lab");
    assert_eq!(pve.guest(300).unwrap().status, "stopped");
    let history: Vec<(&str, String)> = pve
        .power_history()
        .into_iter()
        .map(|e| (e.change, e.cause))
        .collect();
    assert_eq!(
        history,
        vec![
            ("started", "qmstart".to_owned()),
            ("stopped", "qmshutdown".to_owned())
        ]
    );
    assert_eq!(power_posts(&lab, 300), ["start", "shutdown"]);
    assert!(!journal(&setup).contains("\"vmid\""), "{}", journal(&setup));

    // Next cycle: the cached address is fresh; no second power-up.
    cycle(&engine).await;
    assert_eq!(pve.power_counters().start, 1);
}

#[tokio::test]
async fn budgets_and_refusals_hold() {
    let mut down = sleeper(310, "pve1");
    down.guest_agent.state = AgentState::Down;
    let guests = vec![
        sleeper(301, "pve1"),
        sleeper(302, "pve1"),
        sleeper(303, "pve2"),
        sleeper(304, "pve2"),
        sleeper(305, "pve1").template(),
        sleeper(306, "pve1").lock("backup"),
        sleeper(307, "pve1").ha(),
        sleeper(308, "pve1").tags(&["other"]),
        sleeper(309, "pve3"),
        down,
    ];
    let lab = lab(only(guests)).await;
    let pve = lab.proxmox("lab");
    pve.set_node_online("pve3", false);
    let setup = config(
        &lab,
        &power_sync(", max_per_cycle: 2, max_concurrent: 1, cooldown: 1d"),
    );
    let engine = engine(&setup);
    let mut per_cycle = Vec::new();
    for _ in 0..4 {
        let before = pve.power_counters().start;
        cycle(&engine).await;
        per_cycle.push(pve.power_counters().start - before);
    }
    // Two per cycle, then the one without an address, then the cooldown.
    assert_eq!(per_cycle, vec![2, 2, 1, 0]);
    let mut started = pve.started_guests();
    started.sort();
    assert_eq!(started, vec![301, 302, 303, 304, 310]);
    // max_concurrent 1: never two of ours up at once.
    let mut up = 0;
    let mut max_up = 0;
    for e in pve.power_history() {
        up = if e.change == "started" {
            up + 1
        } else {
            up - 1
        };
        max_up = max_up.max(up);
    }
    assert_eq!(max_up, 1);
    assert!(pve.running_guests().is_empty());
    for vmid in [301, 302, 303, 304] {
        assert!(hostname(&lab, &format!("admin@vm{vmid}-ssh")).is_some());
    }
    assert_eq!(hostname(&lab, "admin@vm310-ssh"), None);
}

#[tokio::test]
async fn a_guest_a_person_starts_during_discovery_stays_running() {
    let lab = lab(only(vec![sleeper(320, "pve1")])).await;
    // The start request dawdles; meanwhile a person starts the guest.
    lab.faults("lab").add(
        FaultRule::delay(Duration::from_millis(400))
            .method("POST")
            .path_contains("/qemu/320/status/start"),
    );
    let setup = config(&lab, &power_sync(""));
    let engine = engine(&setup);
    let pve = lab.proxmox("lab").clone();
    let person = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        pve.set_status(320, SeedStatus::Running);
    });
    cycle(&engine).await;
    person.await.unwrap();
    let pve = lab.proxmox("lab");
    assert_eq!(pve.guest(320).unwrap().status, "running");
    assert_eq!(power_posts(&lab, 320), ["start"]);
    assert!(!journal(&setup).contains("\"vmid\""));
}

#[tokio::test]
async fn a_guest_a_person_restarts_while_we_wait_stays_running() {
    // Real time (clock scale 1): the ownership check compares uptimes
    // with our clock.
    init();
    let mut g = sleeper(321, "pve1");
    g.guest_agent.state = AgentState::Down;
    let lab = Lab::start(only(vec![g])).await.unwrap();
    let setup = config(&lab, &power_sync("").replace("wait: 3s", "wait: 10s"));
    let engine = engine(&setup);
    let pve = lab.proxmox("lab").clone();
    let person = tokio::spawn(async move {
        // Our start lands within ~1 s; the person restarts it at ~6 s.
        tokio::time::sleep(Duration::from_secs(6)).await;
        pve.set_status(321, SeedStatus::Stopped);
        pve.set_status(321, SeedStatus::Running);
    });
    cycle(&engine).await;
    person.await.unwrap();
    let pve = lab.proxmox("lab");
    assert_eq!(pve.guest(321).unwrap().status, "running");
    assert_eq!(power_posts(&lab, 321), ["start"]);
    assert!(!journal(&setup).contains("\"vmid\""));
}

#[tokio::test]
async fn a_power_up_killed_mid_way_is_restored_by_the_next_start() {
    let mut g = sleeper(330, "pve1");
    g.guest_agent.state = AgentState::Down;
    let lab = lab(only(vec![g])).await;
    let setup = config(&lab, &power_sync("").replace("wait: 3s", "wait: 10m"));
    let bin = env!("CARGO_BIN_EXE_pve-guac-sync");
    let mut child = std::process::Command::new(bin)
        .args(["--config", setup.config.to_str().unwrap(), "once"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait (bounded) until our start is done and journalled.
    let pve = lab.proxmox("lab");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !(pve.guest(330).unwrap().status == "running"
        && journal(&setup).contains("\"uptime_read_at\": 1"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "power-up never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SIGKILL: no chance to restore.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(pve.guest(330).unwrap().status, "running");
    assert!(journal(&setup).contains("\"vmid\": 330"));

    // The next start (power-up now off) restores the guest first.
    let text = std::fs::read_to_string(&setup.config)
        .unwrap()
        .replace("enabled: true", "enabled: false");
    std::fs::write(&setup.config, text).unwrap();
    // Off the test's runtime thread: the lab is served on it.
    let config = setup.config.clone();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .args(["--config", config.to_str().unwrap(), "once"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        status.status.code().is_some(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(
        pve.guest(330).unwrap().status,
        "stopped",
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(power_posts(&lab, 330), ["start", "shutdown"]);
    assert!(!journal(&setup).contains("\"vmid\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_service_power_ups_run_beside_the_loop_and_shutdown_restores_them() {
    use pve_guac_sync::daemon::{Control, Daemon};
    let mut stuck = sleeper(341, "pve1");
    stuck.guest_agent.state = AgentState::Down;
    let lab = lab(only(vec![sleeper(340, "pve1"), stuck])).await;
    let text = power_sync("").replace("wait: 3s", "wait: 10m").replace(
        "  grouping: none",
        "  interval: 300ms\n  jitter: 0\n  grouping: none",
    );
    let setup = config(&lab, &text);
    let notifier = pve_guac_sync::systemd::Notifier::disabled();
    let daemon = Daemon::start(&setup.config, notifier).expect("daemon starts");
    let (control, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(daemon.run(rx));

    // 340: powered up by a task, its address taken in by a later cycle.
    let pve = lab.proxmox("lab");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let done = hostname(&lab, "admin@vm340-ssh").is_some()
            && pve.guest(340).unwrap().status == "stopped"
            && pve.guest(341).unwrap().status == "running"
            && journal(&setup).contains("\"uptime_read_at\": 1");
        if done {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", journal(&setup));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        hostname(&lab, "admin@vm340-ssh").as_deref(),
        Some("192.0.2.140")
    );

    // SIGTERM while 341 waits for an address: restored before exit.
    control.send(Control::Shutdown).unwrap();
    let code = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("stops in time")
        .unwrap();
    assert_eq!(code, 0);
    assert_eq!(pve.guest(341).unwrap().status, "stopped");
    assert_eq!(power_posts(&lab, 341), ["start", "shutdown"]);
    assert!(!journal(&setup).contains("\"vmid\""), "{}", journal(&setup));
}
