//! `pve-guac-lab serve`: run the emulated Proxmox VE cluster(s) and Guacamole
//! on 127.0.0.1 until SIGTERM/SIGINT, for demos and benchmarks.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use pve_guac_lab::guacamole::GuacVersion;
use pve_guac_lab::{Lab, LabSeed};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

mod serve_control;

#[derive(Parser)]
#[command(
    name = "pve-guac-lab",
    version,
    about = "Proxmox VE and Guacamole emulators"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the lab and serve until SIGTERM or SIGINT.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// YAML seed file (see tests/lab/README.md); the built-in example otherwise.
    #[arg(long, value_name = "FILE")]
    seed: Option<PathBuf>,
    /// Emulated Guacamole release: 1.4, 1.5 or 1.6.
    #[arg(long, value_name = "VERSION")]
    guacamole_version: Option<String>,
    /// Guacamole API base path, e.g. /api (default /guacamole/api).
    #[arg(long, value_name = "PATH")]
    guacamole_base_path: Option<String>,
    /// Guacamole on this port, Proxmox nodes on the next ones (free ports otherwise).
    #[arg(long, value_name = "N")]
    port_base: Option<u16>,
    /// Print PROXMOX_URL=…, GUACAMOLE_URL=…, credentials and the TLS pin, one per line.
    #[arg(long)]
    print_env: bool,
    /// Virtual seconds per real second for tasks, agent boots and token expiry.
    #[arg(long, value_name = "X")]
    clock_scale: Option<f64>,
    /// Turn the 3 s delay of failed Proxmox authentications on or off.
    #[arg(long, value_name = "BOOL")]
    auth_delay: Option<bool>,
    /// Write the lab's certificate (PEM) to this file.
    #[arg(long, value_name = "FILE")]
    cert_out: Option<PathBuf>,
    /// Answer control commands on stdin (request counts, note edits, guest
    /// removal; see src/serve_control.rs); end of stdin stops the lab.
    #[arg(long)]
    control: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let Command::Serve(args) = Cli::parse().command;
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pve-guac-lab: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut seed = match &args.seed {
        Some(path) => LabSeed::from_yaml_file(path)?,
        None => LabSeed::default(),
    };
    if let Some(v) = &args.guacamole_version {
        seed.guacamole.version = match GuacVersion::parse(v) {
            Some(version) => version,
            None => bail!("--guacamole-version must be 1.4, 1.5 or 1.6, got {v:?}"),
        };
    }
    if let Some(base) = &args.guacamole_base_path {
        seed.guacamole.base_path = base.trim_end_matches('/').to_string();
    }
    if let Some(scale) = args.clock_scale {
        seed.clock_scale = scale;
    }
    if args.auth_delay.is_some() {
        seed.auth_delay = args.auth_delay;
    }
    if args.port_base.is_some() {
        seed.port_base = args.port_base;
    }

    let lab = Lab::start(seed).await.context("starting the lab")?;
    if let Some(path) = &args.cert_out {
        std::fs::write(path, lab.cert_pem())
            .with_context(|| format!("writing the certificate to {}", path.display()))?;
    }
    if args.print_env {
        print_env(&lab)?;
    }
    describe(&lab);

    if args.control {
        tokio::select! {
            r = control_loop(&lab) => r?,
            r = wait_for_signal() => r?,
        }
    } else {
        wait_for_signal().await?;
    }
    eprintln!("pve-guac-lab: shutting down");
    lab.shutdown().await;
    Ok(())
}

/// The environment a client needs, one `NAME=value` per line on stdout.
fn print_env(lab: &Lab) -> anyhow::Result<()> {
    let first = lab.cluster_names().into_iter().next();
    let (url, (token_id, token_secret)) = match &first {
        Some(name) => (lab.proxmox_url(name), lab.proxmox(name).primary_token()),
        None => (String::new(), (String::new(), String::new())),
    };
    let (user, password) = lab.guacamole().admin_credentials();
    let mut out = std::io::stdout().lock();
    writeln!(out, "PROXMOX_URL={url}")?;
    writeln!(out, "PROXMOX_TOKEN_ID={token_id}")?;
    writeln!(out, "PROXMOX_TOKEN_SECRET={token_secret}")?;
    writeln!(out, "GUACAMOLE_URL={}", lab.guacamole_url())?;
    writeln!(out, "GUACAMOLE_USERNAME={user}")?;
    writeln!(out, "GUACAMOLE_PASSWORD={password}")?;
    writeln!(out, "TLS_FINGERPRINT_SHA256={}", lab.fingerprint_sha256())?;
    out.flush()?;
    Ok(())
}

/// A human summary on stderr (no secrets).
fn describe(lab: &Lab) {
    eprintln!(
        "pve-guac-lab: started in {:.1} ms",
        lab.startup_time().as_secs_f64() * 1000.0
    );
    for name in lab.cluster_names() {
        let nodes = lab.proxmox(&name).node_names();
        for (node, url) in nodes.iter().zip(lab.proxmox_endpoints(&name)) {
            eprintln!("  proxmox {name}/{node}: {url}/api2/json");
        }
    }
    eprintln!("  guacamole: {}", lab.guacamole_url());
    eprintln!("  TLS SHA-256 fingerprint: {}", lab.fingerprint_sha256());
    eprintln!("pve-guac-lab: serving until SIGTERM or SIGINT");
}

/// Serves `--control` commands until stdin ends.
async fn control_loop(lab: &Lab) -> anyhow::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Some(line) = lines.next_line().await.context("reading stdin")? {
        let mut answer = serve_control::answer(lab, &line).to_string();
        answer.push('\n');
        out.write_all(answer.as_bytes()).await?;
        out.flush().await?;
    }
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
    }
    Ok(())
}
