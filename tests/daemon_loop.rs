//! The service loop in-process against the lab: control messages in, the
//! lab's request log, its objects and the notify socket out.

mod common;

use std::time::Duration;

use common::*;
use pve_guac_lab::guacamole::GuacamoleSeed;
use pve_guac_lab::{FaultRule, Lab, LabSeed};
use pve_guac_sync::config::Settings;
use pve_guac_sync::daemon::{Control, Daemon, DaemonStatus};
use pve_guac_sync::reconcile::cycle::{Engine, Mode};
use pve_guac_sync::state::StateLock;
use pve_guac_sync::systemd::Notifier;
use tokio::net::UnixDatagram;
use tokio::sync::{mpsc, watch};

const EXPECTED: [&str; 6] = [
    "admin@web01-rdp",
    "admin@web01-ssh",
    "dba@db01-ssh",
    "files@files01-ssh",
    "root@ct-dns-ssh",
    "viewer@docker01-vnc",
];

fn seed() -> LabSeed {
    LabSeed {
        guacamole: GuacamoleSeed::example(),
        ..LabSeed::default()
    }
}

fn sync(interval: &str) -> String {
    format!(
        "  interval: {interval}\n  jitter: 0\n  grouping: node\n  auto_encrypt: true\n  prune: {{enabled: true, grace: 0s}}"
    )
}

/// A datagram socket standing in for systemd's notify socket.
struct NotifySocket {
    _dir: tempfile::TempDir,
    socket: UnixDatagram,
    path: std::path::PathBuf,
}

impl NotifySocket {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        NotifySocket {
            _dir: dir,
            socket,
            path,
        }
    }

    fn notifier(&self) -> Notifier {
        Notifier::to_socket(&self.path)
    }

    /// Messages until one contains `want` (bounded wait); returns them all.
    async fn until(&self, want: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut buf = vec![0u8; 8192];
        loop {
            let n = tokio::time::timeout_at(deadline, self.socket.recv(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no notification with {want:?}; saw {seen:#?}"))
                .unwrap();
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let hit = msg.contains(want);
            seen.push(msg);
            if hit {
                return seen;
            }
        }
    }
}

/// Waits (bounded) until the status satisfies `done`.
async fn wait_for(
    status: &mut watch::Receiver<DaemonStatus>,
    what: &str,
    done: impl Fn(&DaemonStatus) -> bool,
) -> DaemonStatus {
    let result = tokio::time::timeout(Duration::from_secs(30), status.wait_for(|s| done(s)))
        .await
        .map(|r| r.map(|s| s.clone()));
    match result {
        Ok(Ok(s)) => s,
        _ => panic!("timed out waiting for {what}: {:#?}", status.borrow()),
    }
}

struct Running {
    control: mpsc::UnboundedSender<Control>,
    status: watch::Receiver<DaemonStatus>,
    task: tokio::task::JoinHandle<i32>,
}

fn start(setup: &Setup, notify: &NotifySocket) -> Running {
    let daemon = Daemon::start(&setup.config, notify.notifier()).expect("daemon starts");
    let status = daemon.subscribe();
    let (control, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(daemon.run(rx));
    Running {
        control,
        status,
        task,
    }
}

fn guacamole_requests(lab: &Lab, mark: pve_guac_lab::RequestMark) -> Vec<String> {
    lab.requests_since(mark)
        .into_iter()
        .filter(|r| r.server == "guacamole")
        .map(|r| r.route)
        .collect()
}

fn count_route(lab: &Lab, route: &str) -> usize {
    lab.requests().iter().filter(|r| r.route == route).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_cycle_costs_one_guacamole_request_and_shutdown_logs_out() {
    let lab = lab(seed()).await;
    let setup = config(&lab, &sync("400ms"));
    let notify = NotifySocket::new();
    let mut run = start(&setup, &notify);

    let ready = notify.until("READY=1").await;
    assert!(ready.last().unwrap().contains("STATUS="), "{ready:?}");
    let first = wait_for(&mut run.status, "the first cycle", |s| s.cycles >= 1).await;
    let report = first
        .last
        .as_ref()
        .unwrap()
        .report
        .clone()
        .expect("cycle ran");
    assert_eq!(report.summary.created, 6, "{:#?}", report.problems);
    assert_eq!(managed_names(&lab, "pve-guac-sync"), EXPECTED);
    notify.until("STATUS=cycle 1 at").await;

    // Converged: from now on each cycle reads the Guacamole tree, nothing else.
    wait_for(&mut run.status, "a converged cycle", |s| {
        s.last
            .as_ref()
            .and_then(|r| r.report.as_ref())
            .is_some_and(|r| r.summary.created + r.summary.notes_rewritten == 0)
    })
    .await;
    let n = run.status.borrow().cycles;
    let mark = lab.request_mark();
    let later = wait_for(&mut run.status, "one more cycle", |s| s.cycles > n).await;
    assert_eq!(later.cycles, n + 1);
    assert_eq!(
        guacamole_requests(&lab, mark),
        ["GET /session/data/{ds}/connectionGroups/{id}/tree"]
    );
    assert_eq!(writes(&lab, mark), Vec::<String>::new());
    // One login for the whole life of the service.
    assert_eq!(count_route(&lab, "POST /tokens"), 1);
    let line = status_line(&later);
    assert!(
        line.contains(", 6 connections, 0 changes, 0 pending, 0 errors, degraded clusters: none"),
        "{line}"
    );

    run.control.send(Control::Shutdown).unwrap();
    let code = tokio::time::timeout(Duration::from_secs(20), run.task)
        .await
        .expect("stops in time")
        .unwrap();
    assert_eq!(code, 0);
    notify.until("STOPPING=1").await;
    assert_eq!(count_route(&lab, "DELETE /session"), 1);
    let state = std::fs::read_to_string(setup.dir.path().join("state/state.json")).unwrap();
    assert_eq!(state.matches("\"fingerprint\"").count(), 6, "{state}");
    // The lock died with the service.
    assert_eq!(
        pve_guac_sync::state::holder(&setup.dir.path().join("state")).unwrap(),
        None
    );
}

fn status_line(s: &DaemonStatus) -> String {
    pve_guac_sync::daemon::status::status_line(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_a_broken_configuration_out_and_picks_up_a_good_one() {
    let lab = lab(seed()).await;
    let setup = config(&lab, &sync("300ms"));
    let good = std::fs::read_to_string(&setup.config).unwrap();
    let notify = NotifySocket::new();
    let mut run = start(&setup, &notify);
    wait_for(&mut run.status, "the first cycle", |s| s.cycles >= 1).await;
    notify.until("STATUS=cycle 1").await;

    // A typo: refused, every problem named with its line, old config runs on.
    let broken = good.replace("  grouping: node", "  grouping: node\n  intervall: 1s");
    std::fs::write(&setup.config, &broken).unwrap();
    run.control.send(Control::Reload).unwrap();
    let msgs = notify.until("READY=1").await;
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("RELOADING=1\nMONOTONIC_USEC=")),
        "{msgs:#?}"
    );
    let refused = msgs.last().unwrap();
    assert!(
        refused.contains("RELOAD FAILED (1 problem(s))"),
        "{refused}"
    );
    assert!(refused.contains("config.yaml:"), "{refused}");
    assert!(refused.contains("intervall"), "{refused}");
    let s = run.status.borrow().clone();
    assert_eq!(s.reload_problems.len(), 1, "{:?}", s.reload_problems);
    let n = s.cycles;
    let after = wait_for(&mut run.status, "cycles on the old config", |s| {
        s.cycles >= n + 2
    })
    .await;
    assert!(!after.reload_problems.is_empty(), "still reported");
    assert_eq!(managed_names(&lab, "pve-guac-sync"), EXPECTED);

    // A good change: a new managed group name is picked up at once, the
    // Guacamole session is kept (only the per-cycle settings changed).
    let (head, tail) = good.split_once("guacamole:\n").unwrap();
    let renamed = format!("{head}guacamole:\n  root_group: Proxmox\n{tail}");
    std::fs::write(&setup.config, renamed).unwrap();
    let mark = lab.request_mark();
    run.control.send(Control::Reload).unwrap();
    let ok = notify.until("READY=1").await;
    assert!(!ok.last().unwrap().contains("RELOAD FAILED"), "{ok:#?}");
    wait_for(&mut run.status, "the group to move", |s| {
        s.reload_problems.is_empty() && s.cycles > after.cycles
    })
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while managed_names(&lab, "Proxmox") != EXPECTED {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            managed_names(&lab, "Proxmox")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        lab.requests_since(mark)
            .iter()
            .filter(|r| r.route == "POST /tokens")
            .count(),
        0,
        "no new login"
    );
    run.control.send(Control::Shutdown).unwrap();
    assert_eq!(run.task.await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_now_runs_a_cycle_before_the_interval() {
    let lab = lab(seed()).await;
    let setup = config(&lab, &sync("1h"));
    let notify = NotifySocket::new();
    let mut run = start(&setup, &notify);
    wait_for(&mut run.status, "the first cycle", |s| s.cycles >= 1).await;
    run.control.send(Control::SyncNow).unwrap();
    let s = wait_for(&mut run.status, "a second cycle", |s| s.cycles >= 2).await;
    assert_eq!(s.cycles, 2);
    run.control.send(Control::Shutdown).unwrap();
    assert_eq!(run.task.await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guacamole_down_never_ends_the_service_and_it_recovers() {
    let lab = lab(seed()).await;
    let setup = config(&lab, &sync("300ms"));
    // Guacamole refuses the tree read a few times.
    lab.faults("guacamole")
        .add(FaultRule::error(500).path_contains("/tree").times(3));
    let notify = NotifySocket::new();
    let mut run = start(&setup, &notify);
    let failed = wait_for(&mut run.status, "a failed cycle", |s| s.cycles >= 1).await;
    let rec = failed.last.unwrap();
    assert_eq!(rec.outcome, "failed");
    assert_eq!(rec.error.as_ref().unwrap().0, "server_error");
    notify.until("failed (server_error)").await;
    // The error policy retries (10 s at first: shortened here by sync-now).
    run.control.send(Control::SyncNow).unwrap();
    run.control.send(Control::SyncNow).unwrap();
    run.control.send(Control::SyncNow).unwrap();
    wait_for(&mut run.status, "recovery", |s| s.last_success.is_some()).await;
    assert_eq!(managed_names(&lab, "pve-guac-sync"), EXPECTED);
    run.control.send(Control::Shutdown).unwrap();
    assert_eq!(run.task.await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_state_directory_is_refused_by_once_and_by_a_second_service() {
    let lab = lab(seed()).await;
    let setup = config(&lab, &sync("1h"));
    let dir = setup.dir.path().join("state");
    let lock = StateLock::acquire(&dir, "run").unwrap();
    let mark = lab.request_mark();
    let engine = engine(&setup);
    let err = engine.cycle(Mode::Apply, false).await.unwrap_err();
    assert_eq!(err.label(), "state_locked");
    assert!(
        err.to_string().contains(&dir.display().to_string()),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("pid {} (run)", std::process::id())),
        "{err}"
    );
    let Err(e) = Daemon::start(&setup.config, Notifier::disabled()) else {
        panic!("a second service must not start");
    };
    assert_eq!((e.label(), e.exit_code()), ("state_locked", 1));
    assert_eq!(writes(&lab, mark), Vec::<String>::new());
    drop(lock);
    assert!(engine.cycle(Mode::Apply, false).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_apply_finishes_the_batch_in_flight_and_records_it() {
    let lab = lab(seed()).await;
    // No sub-groups: the writes are one stage of creates, then note rewrites.
    let setup = config(
        &lab,
        "  grouping: none\n  auto_encrypt: true\n  prune: {enabled: true, grace: 0s}",
    );
    // The version probe and the create batch each take 600 ms.
    lab.faults("guacamole").add(
        FaultRule::delay(Duration::from_millis(600))
            .method("PATCH")
            .path_contains("/connections")
            .times(2),
    );
    let settings = Settings::load(&setup.config).unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let engine = Engine::with_cancel(settings, cancel.clone()).unwrap();
    let watcher = {
        let log = lab.request_log().clone();
        tokio::spawn(async move {
            // Shut down once the probe is answered: the create batch is in flight.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while !log
                .all()
                .iter()
                .any(|r| r.method == "PATCH" && r.json == Some(serde_json::json!([])))
            {
                assert!(std::time::Instant::now() < deadline, "no probe seen");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            cancel.cancel();
        })
    };
    let report = engine.cycle(Mode::Apply, false).await.unwrap();
    watcher.await.unwrap();
    assert_eq!(report.summary.created, 6, "the batch in flight is finished");
    assert_eq!(report.summary.notes_rewritten, 0, "later stages wait");
    assert!(report.summary.pending >= 6, "{:?}", report.summary);
    assert_eq!(managed_names(&lab, "pve-guac-sync"), EXPECTED);
    let state = std::fs::read_to_string(setup.dir.path().join("state/state.json")).unwrap();
    assert_eq!(state.matches("\"fingerprint\"").count(), 6, "{state}");

    // The next run owns them: nothing is created twice.
    let mark = lab.request_mark();
    let next = cycle(&common::engine(&setup)).await;
    assert_eq!(next.summary.created, 0);
    assert_eq!(next.summary.notes_rewritten, 6);
    assert_eq!(managed_names(&lab, "pve-guac-sync"), EXPECTED);
    assert!(
        !writes(&lab, mark)
            .iter()
            .any(|w| w.contains("POST") && w.contains("connections")),
        "{:?}",
        writes(&lab, mark)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_permission_read_is_asked_again_not_cached() {
    let lab = lab(seed()).await;
    let setup = config(&lab, &sync("1h"));
    lab.faults("guacamole").add(
        FaultRule::error(500)
            .path_contains("effectivePermissions")
            .times(1),
    );
    let engine = engine(&setup);
    for _ in 0..3 {
        cycle(&engine).await;
    }
    let asked = lab
        .requests()
        .iter()
        .filter(|r| r.path.contains("effectivePermissions"))
        .map(|r| r.status)
        .collect::<Vec<_>>();
    assert_eq!(asked, [500, 200], "asked until answered, then kept");
}
