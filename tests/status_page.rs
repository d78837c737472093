//! The status page as a person sees it: the real daemon against the lab with
//! `health.listen` on, the page opened in headless Chromium (Debian's
//! `chromium`), and `pve-guac-sync status` reading the same data. Prints
//! SKIP (and passes) only when `chromium` is not installed; CI installs it.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use pve_guac_lab::LabSeed;
use pve_guac_lab::guacamole::GuacamoleSeed;
use pve_guac_lab::proxmox::{ClusterSeed, GuestSeed};

/// The untrusted guest name: it must reach the page as text, never as markup.
const EVIL_NAME: &str = "evil<script>alert(1)</script>";
/// The password in the evil guest's broken block.
const BROKEN_BLOCK_PASSWORD: &str = "Leak-Me-4711";

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` → (status line + headers, body); `None` while nothing listens.
fn get(addr: SocketAddr, path: &str) -> Option<(String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.to_owned(), body.to_owned()))
}

/// Polls `/readyz` until it answers 200 (at most 200 tries, 100 ms apart).
fn wait_ready(addr: SocketAddr) {
    for _ in 0..200 {
        if let Some((head, _)) = get(addr, "/readyz")
            && head.starts_with("HTTP/1.1 200")
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("/readyz never answered 200");
}

/// Polls `/status.json` until it counts `n` cycles (at most 100 tries).
fn wait_cycles(addr: SocketAddr, n: u64) -> bool {
    for _ in 0..100 {
        if let Some((_, body)) = get(addr, "/status.json") {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            if v["cycles"] == n {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Runs headless Chromium on `url` with `extra` flags, bounded to 90 s.
fn run_chromium(bin: &Path, url: &str, extra: &[String]) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

fn seed() -> LabSeed {
    let mut cluster = ClusterSeed::example("lab");
    cluster.guests.push(
        GuestSeed::vm(150, EVIL_NAME, "pve1")
            .running()
            .agent("1")
            .nic("BC:24:11:5A:3C:50", "192.0.2.150/24")
            .notes(&format!(
                "Broken on purpose.\nuser:\"mallory\" pass:\"{BROKEN_BLOCK_PASSWORD}\" protos:\"gopher\";"
            )),
    );
    LabSeed {
        guacamole: GuacamoleSeed::example(),
        ..LabSeed::with_clusters(vec![cluster])
    }
}

fn status_cli(config: &Path, json: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pve-guac-sync"));
    cmd.arg("--config").arg(config).arg("status");
    if json {
        cmd.arg("--json");
    }
    cmd.stdin(Stdio::null()).output().expect("status runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_state_connections_block_errors_and_changes_in_chromium() {
    let Some(browser) = chromium() else {
        println!("SKIP: chromium is not installed (apt-get install chromium)");
        return;
    };
    let lab = lab(seed()).await;
    let setup = config(
        &lab,
        "  interval: 1h\n  grouping: node\n  auto_encrypt: true\n  prune: {enabled: true, grace: 0s}",
    );
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut text = std::fs::read_to_string(&setup.config).unwrap();
    text.push_str(&format!("health:\n  listen: \"{addr}\"\n"));
    std::fs::write(&setup.config, text).unwrap();

    let daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_pve-guac-sync"))
            .arg("--config")
            .arg(&setup.config)
            .arg("run")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .spawn()
            .expect("the daemon starts"),
    );
    tokio::task::spawn_blocking(move || wait_ready(addr))
        .await
        .unwrap();
    // Two more cycles (SIGUSR1), so the timeline has a history.
    for n in [2u64, 3] {
        let kill = Command::new("kill")
            .args(["-s", "USR1", &daemon.0.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let seen = tokio::task::spawn_blocking(move || wait_cycles(addr, n))
            .await
            .unwrap();
        assert!(seen, "cycle {n} never showed in status.json");
    }
    let managed = managed_names(&lab, "pve-guac-sync");
    assert!(managed.len() >= 6, "{managed:?}");

    // The raw answers: headers a browser enforces, and the JSON.
    let (head, html) = get(addr, "/").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let head_lower = head.to_lowercase();
    assert!(
        head_lower.contains("content-security-policy: default-src 'none'; style-src 'sha256-"),
        "{head}"
    );
    assert!(head_lower.contains("script-src 'none'"), "{head}");
    assert!(!html.contains("<script"), "no script, and no injected one");
    assert!(html.contains("evil&lt;script&gt;alert(1)&lt;/script&gt;"));
    let (_, json) = get(addr, "/status.json").unwrap();
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(status["state"], "degraded", "{json}");
    assert_eq!(status["managed"]["connections"], managed.len(), "{json}");
    assert_eq!(status["block_errors"][0]["guest_name"], EVIL_NAME, "{json}");
    assert_eq!(status["block_errors"][0]["guest"], "lab/150");
    assert_eq!(status["clusters"][0]["name"], "lab");
    assert_eq!(status["clusters"][0]["complete"], true);
    assert_eq!(status["history"].as_array().unwrap().len(), 3, "{json}");
    assert_eq!(
        status["history"][1]["changes"], 0,
        "a second cycle changes nothing"
    );
    assert!(status["clusters"][0]["endpoints_up"].as_u64().unwrap() >= 1);

    // What a person sees once the page has rendered.
    let url = format!("http://{addr}/");
    let dom = run_chromium(
        &browser,
        &url,
        &["--virtual-time-budget=5000".into(), "--dump-dom".into()],
    );
    let dom_text = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(
        dom_text.contains(
            "<p id=\"state\" class=\"state degraded\"><span class=\"word\">degraded</span>"
        ),
        "state not shown: {dom_text}\nstderr: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    assert!(
        dom_text.contains("1 guest(s) with block errors"),
        "{dom_text}"
    );
    assert!(
        dom_text.contains(&format!(
            "<div class=\"card\" id=\"connections\"><div class=\"value\">{}</div><div class=\"label\">managed connections</div>",
            managed.len()
        )),
        "{dom_text}"
    );
    // The guest with the block error, by name, as text: the browser built
    // no script element from it.
    assert!(
        dom_text.contains("<td class=\"name\">evil&lt;script&gt;alert(1)&lt;/script&gt;</td>"),
        "{dom_text}"
    );
    assert!(!dom_text.contains("<script"), "{dom_text}");
    assert!(
        dom_text.contains("<code>no_known_protocol</code>"),
        "{dom_text}"
    );
    // A recent change: the audit table names a connection the lab now has,
    // created (done) this run.
    let audit = &dom_text[dom_text.find("<table id=\"audit\">").expect("audit table")..];
    assert!(
        audit.contains("<td>create</td><td><span class=\"tag r-done\">done</span></td>"),
        "{audit}"
    );
    assert!(
        managed
            .iter()
            .any(|name| audit.contains(&format!("<td>{name}</td>"))),
        "none of {managed:?} in the audit table: {audit}"
    );

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let out = run_chromium(
        &browser,
        &url,
        &[
            "--virtual-time-budget=5000".into(),
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,1600".into(),
        ],
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {} ({e}); chromium said: {}",
            shot.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    println!("screenshot of the status page: {}", shot.display());

    // The terminal view reads the same service.
    let cli = status_cli(&setup.config, false);
    let cli_text = String::from_utf8(cli.stdout).unwrap();
    assert_eq!(cli.status.code(), Some(1), "degraded → 1: {cli_text}");
    assert!(
        cli_text.starts_with("DEGRADED: 1 guest(s) with block errors"),
        "{cli_text}"
    );
    assert!(
        cli_text.contains(&format!("managed: {} connections", managed.len())),
        "{cli_text}"
    );
    assert!(
        cli_text.contains("lab/150 (evil<script>alert(1)</script>): block 1"),
        "{cli_text}"
    );
    let cli_json = status_cli(&setup.config, true);
    let from_cli: serde_json::Value = serde_json::from_slice(&cli_json.stdout).unwrap();
    assert_eq!(from_cli["state"], "degraded");

    // No seeded secret anywhere a person or a script can read.
    for secret in [
        "S3cret",
        "Enc-Passw0rd!",
        "W1n-Pass",
        "Ct-R00t",
        "Bu1ld-It",
        "F1les!",
        "Pr0xy",
        BROKEN_BLOCK_PASSWORD,
        TOKEN_SECRET,
        NOTES_PASSPHRASE,
        "gAAAAA",
    ] {
        for (what, text) in [
            ("page", &html),
            ("rendered page", &dom_text),
            ("status.json", &json),
            ("status", &cli_text),
        ] {
            assert!(!text.contains(secret), "{secret} in the {what}");
        }
    }

    // Service down: a clear error, exit 1.
    drop(daemon);
    let down = status_cli(&setup.config, false);
    assert_eq!(down.status.code(), Some(1));
    let err = String::from_utf8(down.stderr).unwrap();
    assert!(
        err.contains(&format!(
            "cannot read the status of pve-guac-sync at http://{addr}/status.json"
        )),
        "{err}"
    );
    assert!(err.contains("Is the service running"), "{err}");
}

#[test]
fn status_without_a_listener_says_how_to_turn_it_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "proxmox:\n  clusters:\n    - {name: lab, endpoints: [\"https://127.0.0.1:8006\"], token_id: \"a@pve!t\", token_secret: {file: /nonexistent}}\nguacamole: {url: \"https://127.0.0.1:8443\", username: u, password: {file: /nonexistent}}\n",
    )
    .unwrap();
    let out = status_cli(&config, false);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("health.listen is not set in"), "{err}");
    assert!(err.contains("the status page is off"), "{err}");
}
