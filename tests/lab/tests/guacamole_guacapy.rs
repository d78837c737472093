//! Third-party client smoke test: the PyPI package `guacapy` logs in to the
//! lab's Guacamole emulator over verified TLS, lists connections and groups,
//! creates a connection and logs out. Skipped (with a clear line) when
//! `python3 -c "import guacapy"` fails; CI installs it with pip.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use pve_guac_lab::guacamole::{ConnectionGroupSeed, ConnectionSeed, GuacamoleSeed};
use pve_guac_lab::{Lab, LabSeed};

fn guacapy_available() -> bool {
    Command::new("python3")
        .args(["-c", "import guacapy"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guacapy_logs_in_and_lists_connections() {
    if !guacapy_available() {
        eprintln!(
            "SKIP guacapy smoke test: `python3 -c \"import guacapy\"` failed (pip install guacapy)"
        );
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let lab = Lab::start(LabSeed {
        clusters: Vec::new(),
        guacamole: GuacamoleSeed::default()
            .connection_group(ConnectionGroupSeed::new("Office").identifier(1))
            .connection(
                ConnectionSeed::new("hand-made", "vnc")
                    .parent("1")
                    .parameter("hostname", "192.0.2.10"),
            ),
        ..LabSeed::default()
    })
    .await
    .expect("lab starts");

    let dir = std::env::temp_dir().join(format!("guacapy-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("lab.pem");
    std::fs::write(&pem, lab.cert_pem()).unwrap();
    let origin = lab.guacamole_origin();
    let port = origin.rsplit(':').next().unwrap().to_string();
    let base = lab.guacamole().base_path(); // "/guacamole/api"
    let context = format!("{}/", base.trim_end_matches("/api"));
    let (user, pass) = lab.guacamole().admin_credentials();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smoke/guacapy_smoke.py");

    let run = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(&script)
            .env("GUAC_HOST", "127.0.0.1")
            .env("GUAC_PORT", port)
            .env("GUAC_CONTEXT", context)
            .env("GUAC_USERNAME", user)
            .env("GUAC_PASSWORD", pass)
            .env("GUAC_CA_PEM", &pem)
            .output()
            .expect("python3 runs")
    });
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("guacapy finishes within 60 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "guacapy smoke failed\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("guacapy smoke test passed"), "{stdout}");

    // The lab saw the third-party client's calls and its creation.
    let counts = lab.request_counts();
    assert_eq!(counts.get("POST /tokens"), Some(&1), "{counts:?}");
    assert_eq!(
        counts.get("GET /session/data/{ds}/connections"),
        Some(&1),
        "{counts:?}"
    );
    assert!(lab.guacamole().find_connection("from-guacapy").is_some());
    assert_eq!(lab.guacamole().session_count(), 0, "guacapy logged out");
    let _ = std::fs::remove_dir_all(&dir);
    lab.shutdown().await;
}
