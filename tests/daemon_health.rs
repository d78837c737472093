//! `pve-guac-sync run` with `health.listen`: the real binary against the lab,
//! probed over HTTP like a load balancer and Prometheus would.

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use pve_guac_lab::LabSeed;
use pve_guac_lab::guacamole::GuacamoleSeed;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Ends the daemon however the test ends.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Daemon {
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit and returns its code.
    async fn exit_code(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the daemon did not exit within {within:?}");
    }
}

/// A port free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` → (status, body); `None` when nothing listens yet.
async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let io = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        Some(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), io)
        .await
        .expect("an answer within 10 s")?;
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head[9..12].parse().unwrap(), body.to_owned()))
}

/// Polls `path` until it answers `status` (at most 200 tries, 100 ms apart).
async fn wait_for(addr: SocketAddr, path: &str, status: u16) -> String {
    let mut last = None;
    for _ in 0..200 {
        match get(addr, path).await {
            Some((s, body)) if s == status => return body,
            other => last = other,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never answered {status}; last answer: {last:?}");
}

/// Polls /metrics until `n` cycles ended `ok` (at most 100 tries, 100 ms apart).
async fn wait_for_cycles(addr: SocketAddr, n: f64) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        last = get(addr, "/metrics").await.expect("listening").1;
        if samples(&last).get("pve_guac_sync_cycles_total{outcome=\"ok\"}") == Some(&n) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never {n} ok cycles:\n{last}");
}

/// Samples of the text exposition: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// Sum of `pve_guac_sync_requests_total` per (api, status).
fn requests_by_api_and_status(text: &str) -> BTreeMap<(String, String), f64> {
    let mut out = BTreeMap::new();
    for (series, value) in samples(text) {
        let Some(labels) = series.strip_prefix("pve_guac_sync_requests_total{") else {
            continue;
        };
        let label = |name: &str| {
            let start = labels.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            labels[start..].split('"').next().unwrap().to_owned()
        };
        *out.entry((label("api"), label("status"))).or_default() += value;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_health_readiness_and_metrics_that_match_the_lab() {
    let lab = lab(LabSeed {
        guacamole: GuacamoleSeed::example(),
        ..LabSeed::default()
    })
    .await;
    // One cycle at start, the next an hour later: the counters below are
    // those of exactly one cycle until SIGUSR1 asks for another.
    let setup = config(
        &lab,
        "  interval: 1h\n  grouping: node\n  auto_encrypt: true\n  prune: {enabled: true, grace: 0s}",
    );
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut text = std::fs::read_to_string(&setup.config).unwrap();
    text.push_str(&format!("health:\n  listen: \"{addr}\"\n"));
    std::fs::write(&setup.config, text).unwrap();

    let mark = lab.request_mark();
    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_pve-guac-sync"))
            .arg("--config")
            .arg(&setup.config)
            .arg("run")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .spawn()
            .expect("the daemon starts"),
    );

    assert_eq!(wait_for(addr, "/healthz", 200).await, "ok\n");
    assert_eq!(wait_for(addr, "/readyz", 200).await, "ready\n");

    let (status, metrics) = get(addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    let m = samples(&metrics);
    let value = |series: &str| m.get(series).copied();
    assert_eq!(
        value("pve_guac_sync_cycles_total{outcome=\"ok\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        value("pve_guac_sync_cycles_total{outcome=\"failed\"}"),
        None
    );
    assert_eq!(
        value("pve_guac_sync_changes_total{action=\"create\"}"),
        Some(6.0)
    );
    assert_eq!(
        value("pve_guac_sync_changes_total{action=\"rewrite_notes\"}"),
        Some(6.0)
    );
    assert_eq!(value("pve_guac_sync_connections_managed"), Some(6.0));
    assert_eq!(value("pve_guac_sync_pending_changes"), Some(0.0));
    assert_eq!(
        value("pve_guac_sync_cycle_duration_seconds_count"),
        Some(1.0)
    );
    assert!(value("pve_guac_sync_last_success_timestamp_seconds").unwrap() > 1.7e9);
    assert_eq!(
        value(
            "pve_guac_sync_requests_total{api=\"proxmox:lab\",endpoint=\"GET /cluster/resources\",status=\"200\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    // Every request the lab saw, counted once, under the right API and status.
    let mut seen: BTreeMap<(String, String), f64> = BTreeMap::new();
    for r in lab.requests_since(mark) {
        let api = match r.server.split_once('/') {
            Some((api, _node)) => api.to_owned(),
            None => r.server.clone(),
        };
        *seen.entry((api, r.status.to_string())).or_default() += 1.0;
    }
    assert!(
        seen.contains_key(&("guacamole".into(), "200".into())),
        "{seen:?}"
    );
    // The lab's agent of vmid 102 is not running: its 500 is counted apart.
    assert!(
        seen.contains_key(&("proxmox:lab".into(), "500".into())),
        "{seen:?}"
    );
    assert_eq!(requests_by_api_and_status(&metrics), seen, "{metrics}");
    for secret in [
        "S3cret",
        "Enc-Passw0rd!",
        "Ct-R00t",
        TOKEN_SECRET,
        "guacadmin",
        NOTES_PASSPHRASE,
    ] {
        assert!(!metrics.contains(secret), "{secret} in /metrics");
    }

    // SIGUSR1: one more cycle, which has nothing to change.
    daemon.signal("USR1");
    let after = wait_for_cycles(addr, 2.0).await;
    let m2 = samples(&after);
    assert_eq!(
        m2.get("pve_guac_sync_cycles_total{outcome=\"ok\"}"),
        Some(&2.0),
        "{after}"
    );
    assert_eq!(
        m2.get("pve_guac_sync_changes_total{action=\"create\"}"),
        Some(&6.0)
    );
    assert_eq!(
        m2.get("pve_guac_sync_requests_total{api=\"proxmox:lab\",endpoint=\"GET /cluster/resources\",status=\"200\"}"),
        Some(&2.0)
    );

    // A reload that rebuilds the cluster's client (new timeout): its
    // counters start from zero, the exported ones go on from the old.
    let text = std::fs::read_to_string(&setup.config).unwrap();
    assert_eq!(text.matches("request: 10s").count(), 1);
    std::fs::write(&setup.config, text.replace("request: 10s", "request: 11s")).unwrap();
    // A reload that takes is followed by a cycle.
    daemon.signal("HUP");
    let after = wait_for_cycles(addr, 3.0).await;
    assert_eq!(
        samples(&after).get(
            "pve_guac_sync_requests_total{api=\"proxmox:lab\",endpoint=\"GET /cluster/resources\",status=\"200\"}"
        ),
        Some(&3.0),
        "{after}"
    );
    assert_eq!(wait_for(addr, "/readyz", 200).await, "ready\n");

    daemon.signal("TERM");
    assert_eq!(daemon.exit_code(Duration::from_secs(30)).await, Some(0));
    assert!(get(addr, "/healthz").await.is_none(), "the listener closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_at_start_when_the_health_port_is_taken() {
    let lab = lab(LabSeed::default()).await;
    let setup = config(&lab, "  interval: 1h");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut text = std::fs::read_to_string(&setup.config).unwrap();
    text.push_str(&format!("health:\n  listen: \"{addr}\"\n"));
    std::fs::write(&setup.config, text).unwrap();

    let mark = lab.request_mark();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pve-guac-sync"));
    cmd.arg("--config").arg(&setup.config).arg("run");
    cmd.env_remove("NOTIFY_SOCKET").stdin(Stdio::null());
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || cmd.output().expect("binary runs")),
    )
    .await
    .expect("exits within 30 s")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot listen on {addr} for health and metrics (health.listen): "
        )),
        "{stderr}"
    );
    // Nothing was contacted before giving up.
    assert_eq!(lab.requests_since(mark).len(), 0);
}
