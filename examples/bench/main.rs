//! Benchmark of the real daemon against the lab, both as separate processes,
//! compared with the request floor of each phase. See README § Performance.
//!
//!     cargo build --release --locked -p pve-guac-sync -p pve-guac-lab --bins
//!     cargo run --release --locked --example bench -- [--guests 100,1000] [--blocks 1,2]
//!         [--versions 1.6,1.5] [--limits raised,default] [--steady 3]
//!         [--latency-ms 5] [--jitter-ms 1] [--out FILE]
//!
//! Per case (guests × blocks × Guacamole version × limits) it starts
//! `pve-guac-lab serve --control` with a generated seed, then
//! `pve-guac-sync run` with a metrics listener, and drives the phases with
//! SIGUSR1: first sync, steady cycles, a cycle after 1 % of the notes
//! changed, a cycle after 1 % of the guests vanished (prune grace 0).
//! Requests come from the lab's request log, cycle durations and changes
//! from the daemon's /metrics, CPU and peak RSS from /proc/PID of the
//! daemon alone. Everything listens on and talks to 127.0.0.1 only.

mod client_floor;
mod floor;
mod procs;
mod report;
mod seed;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use floor::{Limits, Work};
use procs::{Daemon, LabProcess, ProcSample};
use seed::Mix;

struct Options {
    guests: Vec<u32>,
    blocks: Vec<u32>,
    versions: Vec<String>,
    limits: Vec<Limits>,
    steady: u32,
    latency_ms: f64,
    jitter_ms: f64,
    out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let opts = parse_args()?;
    let bins = procs::binaries()?;
    let work = std::env::temp_dir().join(format!("pve-guac-bench-{}", std::process::id()));
    let mut rows = Vec::new();
    for limits in &opts.limits {
        for version in &opts.versions {
            for &guests in &opts.guests {
                for &blocks in &opts.blocks {
                    let case = Case {
                        mix: Mix::new(guests, blocks),
                        version: version.clone(),
                        limits: *limits,
                    };
                    eprintln!("bench: {}", case.label());
                    let dir = work.join(case.label().replace([' ', ','], "_"));
                    std::fs::create_dir_all(&dir)?;
                    rows.extend(run_case(&bins, &case, &opts, &dir)?);
                    report::print(&rows[rows.len() - phases_per_case(&opts)..]);
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    let out = opts.out.clone().unwrap_or_else(default_out);
    report::write_json(&out, &rows, &settings_json(&opts))?;
    println!("\nAll cases:");
    report::print(&rows);
    println!("JSON: {}", out.display());
    Ok(())
}

/// First sync, steady cycles, notes changed, guests vanished, and the
/// HTTP client alone.
fn phases_per_case(opts: &Options) -> usize {
    4 + opts.steady as usize
}

pub(crate) struct Case {
    mix: Mix,
    version: String,
    limits: Limits,
}

impl Case {
    fn label(&self) -> String {
        format!(
            "{} guests x{} guac {} {}",
            self.mix.guests, self.mix.blocks, self.version, self.limits.name
        )
    }
}

/// One case: a fresh lab and a fresh daemon, every phase in turn.
fn run_case(
    bins: &procs::Binaries,
    case: &Case,
    opts: &Options,
    dir: &std::path::Path,
) -> anyhow::Result<Vec<Value>> {
    let seed_path = dir.join("seed.yaml");
    std::fs::write(
        &seed_path,
        seed::yaml(&case.mix, opts.latency_ms, opts.jitter_ms),
    )?;
    let mut lab = LabProcess::start(&bins.lab, &seed_path, &case.version)?;
    let latency = floor::Latency {
        mean_s: opts.latency_ms / 1000.0,
        agent_down_s: seed::AGENT_PING_TIMEOUT_S,
    };
    let config = procs::write_config(dir, &lab.env, &case.limits)?;
    let mut daemon = Daemon::start(&bins.daemon, &config, &dir.join("daemon.log"))?;
    let mut rows = Vec::new();

    // The first cycle starts by itself when `run` starts.
    let first = measure(&mut lab, &mut daemon, false)?;
    rows.push(row(
        case,
        "first sync",
        &first,
        Work::first(&case.mix),
        latency,
    ));
    for i in 1..=opts.steady {
        let m = measure(&mut lab, &mut daemon, true)?;
        let name = format!("steady {i}");
        rows.push(row(case, &name, &m, steady_work(case, &m), latency));
    }
    let edited = seed::sample(&case.mix, 0);
    for &vmid in &edited {
        lab.edit_password(vmid)?;
    }
    let m = measure(&mut lab, &mut daemon, true)?;
    rows.push(row(
        case,
        "1% notes changed",
        &m,
        steady_work(case, &m),
        latency,
    ));
    let vanished = seed::sample(&case.mix, 50);
    for &vmid in &vanished {
        lab.command(&format!("remove-guest {} {vmid}", seed::CLUSTER))?;
    }
    let m = measure(&mut lab, &mut daemon, true)?;
    let mut work = steady_work(case, &m);
    work.configs -= vanished.len() as u64;
    rows.push(row(case, "1% guests vanished", &m, work, latency));

    daemon.stop()?;
    let alone = client_floor::measure(&config)?;
    rows.push(report::client_row(case, &alone));
    lab.stop()?;
    Ok(rows)
}

/// What one cycle cost, from the lab, the daemon's metrics and /proc.
pub(crate) struct Measured {
    wall: Duration,
    cycle_s: f64,
    requests: Value,
    failed: u64,
    changes: std::collections::BTreeMap<String, u64>,
    before: ProcSample,
    after: ProcSample,
    outcome: String,
}

fn measure(lab: &mut LabProcess, daemon: &mut Daemon, trigger: bool) -> anyhow::Result<Measured> {
    let mark = lab.command("mark")?["mark"]
        .as_u64()
        .context("mark answer")?;
    let before_metrics = if trigger {
        daemon.metrics()?
    } else {
        procs::Metrics::default()
    };
    let before = if trigger {
        daemon.sample()?
    } else {
        ProcSample::default()
    };
    let started = Instant::now();
    if trigger {
        daemon.sync_now()?;
    }
    let after_metrics = daemon.wait_cycle(before_metrics.cycles + 1)?;
    let wall = started.elapsed();
    let after = daemon.sample()?;
    let counts = lab.command(&format!("counts {mark}"))?;
    Ok(Measured {
        wall,
        cycle_s: after_metrics.duration_sum - before_metrics.duration_sum,
        requests: counts["requests"].clone(),
        failed: counts["failed"].as_u64().unwrap_or(0),
        changes: after_metrics.changes_since(&before_metrics),
        before,
        after,
        outcome: after_metrics.last_outcome_since(&before_metrics),
    })
}

/// The endpoint of an address ask through the guest agent.
const AGENT_ASK: &str = "GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces";

/// A cycle after the first: listing and configs, plus the unknown
/// addresses the daemon asked for again.
fn steady_work(case: &Case, m: &Measured) -> Work {
    let asked = m.requests["proxmox"][AGENT_ASK].as_u64().unwrap_or(0);
    Work::steady(&case.mix).with_unknown_retried(&case.mix, asked)
}

fn row(case: &Case, phase: &str, m: &Measured, work: Work, latency: floor::Latency) -> Value {
    let floor = work.floor(&m.changes, &case.version, &case.limits, latency);
    report::row(case, phase, m, &floor)
}

fn default_out() -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    PathBuf::from(format!("target/bench/bench-{secs}.json"))
}

fn settings_json(opts: &Options) -> Value {
    json!({
        "latency_ms": opts.latency_ms,
        "jitter_ms": opts.jitter_ms,
        "steady_cycles": opts.steady,
        "limits": opts.limits.iter().copied().map(Limits::to_json).collect::<Vec<_>>(),
        "mix": seed::MIX_DESCRIPTION,
    })
}

fn parse_args() -> anyhow::Result<Options> {
    let mut opts = Options {
        guests: vec![100, 1000],
        blocks: vec![1, 2],
        versions: vec!["1.6".into(), "1.5".into()],
        limits: vec![Limits::RAISED],
        steady: 3,
        latency_ms: 5.0,
        jitter_ms: 1.0,
        out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--guests" => opts.guests = list(&value, &flag)?,
            "--blocks" => opts.blocks = list(&value, &flag)?,
            "--versions" => opts.versions = value.split(',').map(String::from).collect(),
            "--limits" => {
                opts.limits = value
                    .split(',')
                    .map(Limits::by_name)
                    .collect::<anyhow::Result<_>>()?
            }
            "--steady" => opts.steady = value.parse().context("--steady")?,
            "--latency-ms" => opts.latency_ms = value.parse().context("--latency-ms")?,
            "--jitter-ms" => opts.jitter_ms = value.parse().context("--jitter-ms")?,
            "--out" => opts.out = Some(value.into()),
            other => bail!("unknown option {other}"),
        }
    }
    Ok(opts)
}

fn list(value: &str, flag: &str) -> anyhow::Result<Vec<u32>> {
    value
        .split(',')
        .map(|v| v.parse().with_context(|| format!("{flag}: {v:?}")))
        .collect()
}
