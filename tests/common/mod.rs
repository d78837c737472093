//! Shared set-up of the end-to-end tests: a lab, a configuration pointing at
//! it (TLS pinned to the lab's certificate) and the real engine.
#![allow(dead_code)]

pub mod canary;
#[allow(unused_imports)]
pub use canary::{SecretCanary, assert_no_secrets, assert_output_clean};

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use pve_guac_lab::{Lab, LabSeed};
use pve_guac_sync::config::Settings;
use pve_guac_sync::reconcile::cycle::{CycleReport, Engine, Mode};

pub const TOKEN_ID: &str = "sync@pve!pve-guac-sync";
pub const TOKEN_SECRET: &str = "3b1f5d2e-7c4a-4e8b-9a6d-1f2e3d4c5b6a";
pub const NOTES_PASSPHRASE: &str = "lab-notes-passphrase";

/// A command's stdout as JSON; the panic shows both streams.
pub fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A lab whose clock runs fast, so agent timeouts and tasks take
/// milliseconds of real time.
pub async fn lab(mut seed: LabSeed) -> Lab {
    init();
    seed.clock_scale = 100.0;
    Lab::start(seed).await.expect("lab starts")
}

/// A config file for `lab` in a fresh temporary directory; `sync` is the
/// YAML body of the `sync:` section (indented by the caller as top-level keys).
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

pub fn config(lab: &Lab, sync: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let fp = lab.fingerprint_sha256();
    let mut clusters = String::new();
    for name in lab.cluster_names() {
        let endpoints: Vec<String> = lab
            .proxmox_endpoints(&name)
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect();
        clusters.push_str(&format!(
            "    - name: {name}\n      endpoints: [{}]\n      token_id: \"{TOKEN_ID}\"\n      token_secret: \"{TOKEN_SECRET}\"\n      tls: {{fingerprint_sha256: \"{fp}\"}}\n      retry: {{max_attempts: 2, base_delay: 10ms, max_delay: 200ms}}\n      timeouts: {{connect: 2s, request: 10s}}\n      rate_limit: {{per_second: 1000, burst: 100}}\n",
            endpoints.join(", ")
        ));
    }
    let text = format!(
        "proxmox:\n  clusters:\n{clusters}guacamole:\n  url: \"{}\"\n  username: guacadmin\n  password: guacadmin\n  tls: {{fingerprint_sha256: \"{fp}\"}}\n  retry: {{max_attempts: 2, base_delay: 10ms, max_delay: 200ms}}\nsync:\n{sync}\nencryption:\n  keys: [\"{NOTES_PASSPHRASE}\"]\nstate_dir: \"{}\"\nlogging: {{format: text, level: warn}}\n",
        lab.guacamole_url(),
        dir.path().join("state").display()
    );
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, text).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    Setup { dir, config }
}

pub fn engine(setup: &Setup) -> Engine {
    let settings = Settings::load(&setup.config).unwrap_or_else(|e| panic!("config: {e}"));
    Engine::new(settings).expect("engine")
}

pub async fn cycle(engine: &Engine) -> CycleReport {
    engine.cycle(Mode::Apply, false).await.expect("cycle runs")
}

/// Requests that change something, from the lab's log.
pub fn writes(lab: &Lab, mark: pve_guac_lab::RequestMark) -> Vec<String> {
    lab.requests_since(mark)
        .into_iter()
        .filter(|r| r.is_write())
        .map(|r| format!("{} {} {} -> {}", r.server, r.method, r.path, r.status))
        .collect()
}

/// Requests that change state: writes other than the session's own logout
/// and the harmless version probe (an empty `PATCH []`).
pub fn changes(lab: &Lab, mark: pve_guac_lab::RequestMark) -> Vec<String> {
    lab.requests_since(mark)
        .into_iter()
        .filter(|r| {
            r.is_write()
                && !r.route.ends_with("/session")
                && r.json != Some(serde_json::Value::Array(Vec::new()))
        })
        .map(|r| format!("{} {} -> {}", r.server, r.route, r.status))
        .collect()
}

/// Managed connection names (under the root group, any depth), sorted.
pub fn managed_names(lab: &Lab, root: &str) -> Vec<String> {
    let g = lab.guacamole();
    let Some(root) = g
        .groups()
        .into_iter()
        .find(|x| x.name == root && x.parent == "ROOT")
    else {
        return Vec::new();
    };
    let groups = g.groups();
    let inside = |mut parent: String| loop {
        if parent == root.identifier {
            return true;
        }
        match groups.iter().find(|x| x.identifier == parent) {
            Some(p) => parent = p.parent.clone(),
            None => return false,
        }
    };
    let mut names: Vec<String> = g
        .connections()
        .into_iter()
        .filter(|c| inside(c.parent.clone()))
        .map(|c| c.name)
        .collect();
    names.sort();
    names
}

/// Puts a state file in place before the first cycle (the state directory
/// owner-only, as the daemon requires).
pub fn plant_state(setup: &Setup, bytes: &[u8]) {
    let dir = setup.dir.path().join("state");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(dir.join("state.json"), bytes).unwrap();
}
