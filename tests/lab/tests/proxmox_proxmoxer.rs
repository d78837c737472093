//! Third-party client smoke test: the PyPI package `proxmoxer` lists guests,
//! reads and writes a config and calls the agent and container endpoints of
//! the lab's Proxmox emulator over verified TLS. Skipped (with a clear line)
//! when `python3 -c "import proxmoxer"` fails; CI installs it with pip.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use pve_guac_lab::proxmox::ClusterSeed;
use pve_guac_lab::{Lab, LabSeed};

fn proxmoxer_available() -> bool {
    Command::new("python3")
        .args(["-c", "import proxmoxer, requests"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxmoxer_lists_guests_and_reads_a_config() {
    if !proxmoxer_available() {
        eprintln!(
            "SKIP proxmoxer smoke test: `python3 -c \"import proxmoxer, requests\"` failed (pip install proxmoxer requests)"
        );
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let lab = Lab::start(LabSeed {
        clusters: vec![ClusterSeed::example("lab")],
        auth_delay: Some(false),
        ..LabSeed::default()
    })
    .await
    .expect("lab starts");

    let dir = std::env::temp_dir().join(format!("proxmoxer-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("lab.pem");
    std::fs::write(&pem, lab.cert_pem()).unwrap();
    let url = lab.proxmox_node_url("lab", "pve1");
    let port = url.rsplit(':').next().unwrap().to_string();
    let (token_id, secret) = lab.proxmox("lab").primary_token();
    let (user, token_name) = token_id.split_once('!').unwrap();
    let (user, token_name) = (user.to_string(), token_name.to_string());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smoke/proxmoxer_smoke.py");

    let run = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(&script)
            .env("PVE_HOST", "127.0.0.1")
            .env("PVE_PORT", port)
            .env("PVE_USER", user)
            .env("PVE_TOKEN_NAME", token_name)
            .env("PVE_TOKEN_VALUE", secret)
            .env("PVE_CA_PEM", &pem)
            .output()
            .expect("python3 runs")
    });
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("proxmoxer finishes within 60 s")
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "proxmoxer smoke failed\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("proxmoxer smoke test passed"), "{stdout}");

    // The lab saw the client's calls, with the notes redacted in the log.
    let counts = lab.request_counts();
    assert!(
        counts
            .get("GET /cluster/resources")
            .is_some_and(|n| *n >= 1),
        "{counts:?}"
    );
    assert_eq!(
        counts.get("PUT /nodes/{node}/qemu/{vmid}/config"),
        Some(&2),
        "{counts:?}"
    );
    let writes: Vec<_> = lab
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert!(writes.iter().all(|r| r.param("description") == Some("***")));
    assert_eq!(
        lab.proxmox("lab").notes(100).as_deref(),
        Some("written by proxmoxer")
    );
    lab.shutdown().await;
}
