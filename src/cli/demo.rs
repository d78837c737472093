//! `demo`: starts the lab (emulated Proxmox VE and Guacamole) in-process and
//! runs the real reconcile cycle against it a few times, narrating: the first
//! sync, a cycle with nothing to do, a note edit, a removed guest being
//! pruned, and a hand edit in Guacamole being put back. Ends with the tree.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use anyhow::Context;
use pve_guac_lab::guacamole::GuacamoleSeed;
use pve_guac_lab::proxmox::{EXAMPLE_PASSPHRASE, EXAMPLE_TOKEN_ID, EXAMPLE_TOKEN_SECRET};
use pve_guac_lab::{Lab, LabSeed};
use serde_json::Value;

use crate::config::Settings;
use crate::reconcile::cycle::{CycleReport, Engine, Mode};

const GRACE_SECS: u64 = 2;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show the daemon's own log lines (audit events) as well.
    #[arg(long)]
    pub verbose: bool,
}

pub async fn run(args: Args) -> anyhow::Result<i32> {
    let mut seed = LabSeed {
        guacamole: GuacamoleSeed::example(),
        ..LabSeed::default()
    };
    // Agent time-outs and task durations pass 20× faster than real time.
    seed.clock_scale = 20.0;
    let lab = Lab::start(seed).await.context("starting the lab")?;
    let dir = tempfile_dir()?;
    let config = write_config(&lab, &dir)?;
    let settings = Settings::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::telemetry::init(
        settings.logging.format,
        if args.verbose { "info" } else { "error" },
    );
    let engine = Engine::new(settings)?;

    println!(
        "Lab started on 127.0.0.1 (TLS pinned to {}):",
        lab.fingerprint_sha256()
    );
    println!(
        "  Proxmox VE cluster \"lab\": {}",
        lab.proxmox_endpoints("lab").join(", ")
    );
    println!("  Guacamole:               {}", lab.guacamole_url());
    println!("  Configuration:           {}", config.display());

    step("1. First sync: notes → connections (plaintext passwords get encrypted in place)");
    show(&engine.cycle(Mode::Apply, false).await?, true);

    step("2. Nothing changed: a second cycle makes zero writes");
    let mark = lab.request_mark();
    show(&engine.cycle(Mode::Apply, false).await?, false);
    let writes = lab
        .requests_since(mark)
        .iter()
        .filter(|r| r.is_write())
        .count();
    println!("   writes seen by the lab: {writes}");

    step("3. An operator adds VNC to web01's notes");
    let pve = lab.proxmox("lab");
    let notes = pve.notes(100).unwrap_or_default();
    pve.set_notes(
        100,
        &notes.replace("protos:\"rdp,ssh\"", "protos:\"rdp,ssh,vnc\""),
    );
    show(&engine.cycle(Mode::Apply, false).await?, false);

    step("4. Container ct-dns (200) is destroyed: kept for the grace period, then pruned");
    pve.remove_guest(200);
    show(&engine.cycle(Mode::Apply, false).await?, false);
    println!("   … waiting {GRACE_SECS} s (prune grace) …");
    tokio::time::sleep(Duration::from_secs(GRACE_SECS)).await;
    show(&engine.cycle(Mode::Apply, false).await?, false);

    step("5. Someone renames a managed connection by hand in Guacamole");
    let g = lab.guacamole();
    if let Some(c) = g
        .connections()
        .into_iter()
        .find(|c| c.name == "admin@web01-rdp")
    {
        g.rename_connection(&c.identifier, "my-favourite-server");
        println!(
            "   renamed connection {} to \"my-favourite-server\"",
            c.identifier
        );
    }
    show(&engine.cycle(Mode::Apply, false).await?, false);

    step("Resulting Guacamole tree (hand-made objects outside \"pve-guac-sync\" untouched)");
    print!("{}", render_tree(&g.tree(), 0));
    engine.close().await;
    lab.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(0)
}

fn step(title: &str) {
    println!("\n== {title}");
}

fn show(report: &CycleReport, problems: bool) {
    for (a, r) in report.plan.actions.iter().zip(&report.outcome.results) {
        // A create learns its identifier when applied; others name it already.
        let id = match r {
            crate::reconcile::record::ActionResult::Done { id: Some(id) }
                if a.action.guacamole_id().is_none() =>
            {
                Some(id.as_str())
            }
            _ => None,
        };
        println!(
            "   {} — {}  [{}{}]",
            a.action.describe(),
            a.reason,
            result_word(r),
            id.map(|id| format!(", id {id}")).unwrap_or_default()
        );
    }
    for k in &report.plan.kept {
        println!("   keep connection {}: {}", k.id, k.reason);
    }
    let s = &report.summary;
    println!(
        "   → created {}, updated {}, deleted {}, unchanged {}, notes encrypted {}, errors {} ({} ms)",
        s.created,
        s.updated,
        s.deleted,
        s.unchanged,
        s.notes_rewritten,
        s.errors,
        report.duration_ms
    );
    if problems {
        for p in &report.problems {
            println!("   note: {p}");
        }
    }
}

fn result_word(r: &crate::reconcile::record::ActionResult) -> String {
    use crate::reconcile::record::ActionResult::*;
    match r {
        Done { .. } => "done".into(),
        DryRun => "dry run".into(),
        Deferred => "deferred".into(),
        Failed { error, .. } => format!("failed: {error}"),
    }
}

fn render_tree(group: &Value, depth: usize) -> String {
    let mut out = String::new();
    let pad = "  ".repeat(depth);
    let name = group["name"].as_str().unwrap_or("?");
    let _ = writeln!(out, "{pad}[{name}]");
    if let Some(children) = group["childConnectionGroups"].as_array() {
        for child in children {
            out.push_str(&render_tree(child, depth + 1));
        }
    }
    if let Some(conns) = group["childConnections"].as_array() {
        for c in conns {
            let _ = writeln!(
                out,
                "{pad}  {} ({}, id {})",
                c["name"].as_str().unwrap_or("?"),
                c["protocol"].as_str().unwrap_or("?"),
                c["identifier"].as_str().unwrap_or("?")
            );
        }
    }
    out
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("pve-guac-sync-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

fn write_config(lab: &Lab, dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let fp = lab.fingerprint_sha256();
    let endpoints: Vec<String> = lab
        .proxmox_endpoints("lab")
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect();
    let (user, password) = lab.guacamole().admin_credentials();
    let text = format!(
        "# Written by `pve-guac-sync demo` for its embedded lab.\n\
proxmox:\n  clusters:\n    - name: lab\n      endpoints: [{endpoints}]\n      token_id: \"{EXAMPLE_TOKEN_ID}\"\n      token_secret: \"{EXAMPLE_TOKEN_SECRET}\"\n      tls: {{fingerprint_sha256: \"{fp}\"}}\n\
guacamole:\n  url: \"{url}\"\n  username: \"{user}\"\n  password: \"{password}\"\n  tls: {{fingerprint_sha256: \"{fp}\"}}\n\
sync:\n  grouping: node\n  auto_encrypt: true\n  prune: {{enabled: true, grace: {GRACE_SECS}s}}\n\
encryption:\n  keys: [\"{EXAMPLE_PASSPHRASE}\"]\n\
state_dir: \"{state}\"\n",
        endpoints = endpoints.join(", "),
        url = lab.guacamole_url(),
        state = dir.join("state").display(),
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, text)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(path)
}
