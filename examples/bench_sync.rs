//! Benchmark: the real engine against an in-process lab with N guests
//! (default 200, half VMs with the guest agent, half containers, two
//! connections each). Prints, per cycle, the `once --json` summary: counts,
//! requests per API and duration; then the process's peak memory.
//!
//!     cargo run --release --example bench_sync -- 200
//!
//! Addresses come from 198.18.0.0/15 (RFC 2544, for benchmarks); the lab
//! sends no traffic anywhere.

use std::os::unix::fs::PermissionsExt;

use pve_guac_lab::guacamole::GuacamoleSeed;
use pve_guac_lab::proxmox::{
    ClusterSeed, EXAMPLE_PASSPHRASE, EXAMPLE_TOKEN_ID, EXAMPLE_TOKEN_SECRET, GuestSeed, NetSeed,
};
use pve_guac_lab::{Lab, LabSeed};
use pve_guac_sync::config::Settings;
use pve_guac_sync::reconcile::cycle::{Engine, Mode};

fn guests(n: u32) -> Vec<GuestSeed> {
    (0..n)
        .map(|i| {
            let vmid = 1000 + i;
            let node = ["pve1", "pve2", "pve3"][(i % 3) as usize];
            let mac = format!(
                "BC:24:11:{:02X}:{:02X}:{:02X}",
                (i >> 16) & 0xff,
                (i >> 8) & 0xff,
                i & 0xff
            );
            let addr = format!("198.18.{}.{}/16", i / 250, i % 250 + 1);
            let notes =
                format!("Benchmark guest {i}\nuser:\"admin\" pass:\"pw-{i}\" protos:\"rdp,ssh\";");
            let seed = if i % 2 == 0 {
                GuestSeed::vm(vmid, &format!("vm{i}"), node).agent("1")
            } else {
                GuestSeed::ct(vmid, &format!("ct{i}"), node)
            };
            let mut seed = seed.running().notes(&notes);
            seed.nets = vec![NetSeed {
                mac: Some(mac),
                addresses: vec![addr],
                ..NetSeed::default()
            }];
            seed
        })
        .collect()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200);
    let mut cluster = ClusterSeed::example("bench");
    cluster.guests = guests(n);
    let mut seed = LabSeed::with_clusters(vec![cluster]);
    seed.guacamole = GuacamoleSeed::example();
    let lab = Lab::start(seed).await?;

    let dir = std::env::temp_dir().join(format!("pve-guac-sync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let fp = lab.fingerprint_sha256();
    let endpoints: Vec<String> = lab
        .proxmox_endpoints("bench")
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect();
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "proxmox:\n  clusters:\n    - name: bench\n      endpoints: [{}]\n      token_id: \"{EXAMPLE_TOKEN_ID}\"\n      token_secret: \"{EXAMPLE_TOKEN_SECRET}\"\n      tls: {{fingerprint_sha256: \"{fp}\"}}\n      rate_limit: {{per_second: 1000, burst: 100}}\n      concurrency: 8\n\
guacamole:\n  url: \"{}\"\n  username: guacadmin\n  password: guacadmin\n  tls: {{fingerprint_sha256: \"{fp}\"}}\n\
sync:\n  grouping: node\n  auto_encrypt: true\n  max_changes_per_cycle: 100000\n\
encryption:\n  keys: [\"{EXAMPLE_PASSPHRASE}\"]\nstate_dir: \"{}\"\nlogging: {{format: text, level: error}}\n",
            endpoints.join(", "),
            lab.guacamole_url(),
            dir.join("state").display()
        ),
    )?;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600))?;
    let settings = Settings::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let engine = Engine::new(settings)?;

    println!(
        "guests: {n} ({} VMs with agent, {} containers), 2 connections each",
        n.div_ceil(2),
        n / 2
    );
    for label in [
        "first cycle (fresh sync + note encryption)",
        "second cycle (steady state)",
        "third cycle (steady state)",
    ] {
        let report = engine.cycle(Mode::Apply, false).await?;
        println!("{label}:\n{}", serde_json::to_string_pretty(&report)?);
    }
    println!(
        "peak RSS of this process (daemon engine + in-process lab): {} MiB",
        peak_rss_kib() / 1024
    );
    engine.close().await;
    lab.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
