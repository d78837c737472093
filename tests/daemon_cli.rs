//! `pve-guac-sync run` and `sync-now` as processes against the lab: the
//! notify protocol on a socket the test binds, real signals, exit codes.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use pve_guac_lab::guacamole::GuacamoleSeed;
use pve_guac_lab::{FaultRule, Lab, LabSeed};
use tokio::net::UnixDatagram;

fn seed() -> LabSeed {
    LabSeed {
        guacamole: GuacamoleSeed::example(),
        ..LabSeed::default()
    }
}

const SYNC_1H: &str = "  interval: 1h\n  grouping: node\n  auto_encrypt: true";

struct Service {
    child: Child,
    notify: UnixDatagram,
    _dir: tempfile::TempDir,
    seen: Vec<String>,
}

impl Service {
    fn spawn(setup: &Setup) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_pve-guac-sync"))
            .arg("--config")
            .arg(&setup.config)
            .arg("run")
            .env("NOTIFY_SOCKET", &path)
            .env("PVE_GUAC_SYNC_LOG", "info")
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts");
        Service {
            child,
            notify,
            _dir: dir,
            seen: Vec::new(),
        }
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    /// Reads notifications until one contains `want` (bounded).
    async fn until(&mut self, want: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut buf = vec![0u8; 8192];
        loop {
            let n = match tokio::time::timeout_at(deadline, self.notify.recv(&mut buf)).await {
                Ok(r) => r.unwrap(),
                Err(_) => panic!("no notification with {want:?}; saw {:#?}", self.seen),
            };
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            self.seen.push(msg.clone());
            if msg.contains(want) {
                return msg;
            }
        }
    }

    /// Waits (bounded) for the process to end; its exit code and stderr.
    async fn wait(mut self, within: Duration) -> (Option<i32>, String) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                self.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                return (status.code(), err);
            }
            if started.elapsed() > within {
                let _ = self.child.kill();
                panic!("still running after {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn count(lab: &Lab, route: &str) -> usize {
    lab.requests().iter().filter(|r| r.route == route).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_syncs_reloads_syncs_on_request_and_stops_cleanly() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC_1H);
    let mut svc = Service::spawn(&setup);
    let ready = svc.until("READY=1").await;
    assert!(ready.contains("STATUS=first cycle running"), "{ready}");
    let first = svc.until("STATUS=cycle 1 at").await;
    assert!(first.contains(", 6 connections, "), "{first}");
    assert_eq!(managed_names(&lab, "pve-guac-sync").len(), 6);

    // sync-now finds the service through its state directory and signals it.
    let out = Command::new(env!("CARGO_BIN_EXE_pve-guac-sync"))
        .arg("--config")
        .arg(&setup.config)
        .arg("sync-now")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("pid {}", svc.child.id())));
    let second = svc.until("STATUS=cycle 2 at").await;
    assert!(second.contains(": ok;"), "{second}");

    // SIGHUP: RELOADING=1 with the monotonic clock, then READY=1.
    svc.signal("HUP");
    let reloading = svc.until("RELOADING=1").await;
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let ready = svc.until("READY=1").await;
    assert!(!ready.contains("RELOAD FAILED"), "{ready}");

    svc.signal("TERM");
    svc.until("STOPPING=1").await;
    let (code, log) = svc.wait(Duration::from_secs(20)).await;
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(count(&lab, "DELETE /session"), 1, "logged out");
    assert_eq!(count(&lab, "POST /tokens"), 1, "one login for the life");
    for secret in [TOKEN_SECRET, "S3cret", "F1les!", "Enc-Passw0rd!"] {
        assert!(!log.contains(secret), "{secret} leaked: {log}");
    }
    assert!(log.contains("configuration reloaded"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_stop_signal_exits_at_once() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC_1H);
    // The first cycle hangs on a slow Guacamole tree read.
    lab.faults("guacamole").add(
        FaultRule::delay(Duration::from_secs(8))
            .path_contains("/tree")
            .times(1),
    );
    let mut svc = Service::spawn(&setup);
    svc.until("READY=1").await;
    svc.signal("TERM");
    svc.until("STOPPING=1").await;
    let started = Instant::now();
    svc.signal("INT");
    let (code, _log) = svc.wait(Duration::from_secs(5)).await;
    assert_eq!(code, Some(130));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_configuration_at_start_exits_2_and_sync_now_without_a_service_exits_1() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC_1H);
    let text = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        text.replace("  interval: 1h", "  interval: soon"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pve-guac-sync"))
        .arg("--config")
        .arg(&setup.config)
        .arg("run")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sync.interval"), "{err}");
    assert_eq!(lab.requests().len(), 0, "nothing contacted");

    let out = Command::new(env!("CARGO_BIN_EXE_pve-guac-sync"))
        .arg("--config")
        .arg(&setup.config)
        .arg("sync-now")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no running pve-guac-sync service"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
