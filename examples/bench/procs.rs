//! The two processes: the lab (`serve --control`) and the daemon (`run`),
//! and what is read from them: control answers, /metrics, /proc/PID.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::floor::Limits;
use crate::seed;

/// How long one cycle may take before the benchmark gives up.
const CYCLE_TIMEOUT: Duration = Duration::from_secs(900);

pub(crate) struct Binaries {
    pub daemon: PathBuf,
    pub lab: PathBuf,
}

/// The release binaries next to this example (target/release).
pub(crate) fn binaries() -> anyhow::Result<Binaries> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("locating target/release")?;
    let b = Binaries {
        daemon: dir.join("pve-guac-sync"),
        lab: dir.join("pve-guac-lab"),
    };
    for bin in [&b.daemon, &b.lab] {
        if !bin.exists() {
            bail!(
                "{} is missing: run `cargo build --release --locked -p pve-guac-sync -p pve-guac-lab --bins` first",
                bin.display()
            );
        }
    }
    Ok(b)
}

pub(crate) struct LabProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub env: BTreeMap<String, String>,
}

impl LabProcess {
    pub fn start(bin: &Path, seed: &Path, version: &str) -> anyhow::Result<LabProcess> {
        let mut child = Command::new(bin)
            .args([
                "serve",
                "--control",
                "--print-env",
                "--guacamole-version",
                version,
            ])
            .arg("--seed")
            .arg(seed)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdin = child.stdin.take().context("lab stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("lab stdout")?);
        let mut env = BTreeMap::new();
        while !env.contains_key("TLS_FINGERPRINT_SHA256") {
            let mut line = String::new();
            if stdout.read_line(&mut line)? == 0 {
                bail!("the lab exited before printing its environment");
            }
            if let Some((k, v)) = line.trim_end().split_once('=') {
                env.insert(k.to_owned(), v.to_owned());
            }
        }
        Ok(LabProcess {
            child,
            stdin,
            stdout,
            env,
        })
    }

    /// One control command, its JSON answer.
    pub fn command(&mut self, line: &str) -> anyhow::Result<Value> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        let mut answer = String::new();
        if self.stdout.read_line(&mut answer)? == 0 {
            bail!("the lab exited");
        }
        let v: Value = serde_json::from_str(&answer).context("lab answer")?;
        if let Some(e) = v.get("error") {
            bail!("lab: {line:?}: {e}");
        }
        Ok(v)
    }

    /// Changes the password of the guest's first block, as a person would.
    pub fn edit_password(&mut self, vmid: u32) -> anyhow::Result<()> {
        let cluster = seed::CLUSTER;
        let notes = self.command(&format!("notes {cluster} {vmid}"))?["notes"]
            .as_str()
            .unwrap_or_default()
            .replace("pass:\"pw-", "pass:\"pw-changed-");
        let text = serde_json::to_string(&notes)?;
        self.command(&format!("set-notes {cluster} {vmid} {text}"))?;
        Ok(())
    }

    pub fn stop(mut self) -> anyhow::Result<()> {
        drop(self.stdin);
        self.child.wait()?;
        Ok(())
    }
}

/// The daemon's configuration for this lab and these limits.
pub(crate) fn write_config(
    dir: &Path,
    env: &BTreeMap<String, String>,
    limits: &Limits,
) -> anyhow::Result<PathBuf> {
    let port = free_port()?;
    let get = |k: &str| env.get(k).cloned().unwrap_or_default();
    let fp = get("TLS_FINGERPRINT_SHA256");
    let text = format!(
        "proxmox:\n  clusters:\n    - name: {}\n      endpoints: [\"{}\"]\n      token_id: \"{}\"\n      \
         token_secret: \"{}\"\n      tls: {{fingerprint_sha256: \"{fp}\"}}\n      \
         rate_limit: {{per_second: {}, burst: {}}}\n      concurrency: {}\n\
         guacamole:\n  url: \"{}\"\n  username: \"{}\"\n  password: \"{}\"\n  \
         tls: {{fingerprint_sha256: \"{fp}\"}}\n  concurrency: {}\n  \
         rate_limit: {{per_second: {}, burst: {}}}\n\
         sync:\n  interval: 24h\n  jitter: 0\n  grouping: node\n  auto_encrypt: false\n  \
         max_changes_per_cycle: 1000000\n  prune: {{enabled: true, grace: 0s}}\n\
         discovery:\n  sources: [host, agent, static, container, arp, cache]\n\
         state_dir: \"{}\"\nlogging: {{format: json, level: warn}}\n\
         health: {{listen: \"127.0.0.1:{port}\"}}\n",
        seed::CLUSTER,
        get("PROXMOX_URL"),
        seed::TOKEN_ID,
        seed::TOKEN_SECRET,
        limits.per_second,
        limits.burst,
        limits.concurrency,
        get("GUACAMOLE_URL"),
        get("GUACAMOLE_USERNAME"),
        get("GUACAMOLE_PASSWORD"),
        limits.guac_concurrency,
        limits.per_second,
        limits.burst,
        dir.join("state").display(),
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, text)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(path)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// CPU ticks and memory of a process, from /proc.
#[derive(Clone, Copy, Default)]
pub(crate) struct ProcSample {
    pub cpu_s: f64,
    pub hwm_kib: u64,
    pub rss_kib: u64,
}

/// What /metrics says about cycles and changes.
#[derive(Default)]
pub(crate) struct Metrics {
    pub cycles: u64,
    pub duration_sum: f64,
    outcomes: BTreeMap<String, u64>,
    changes: BTreeMap<String, u64>,
}

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let mut m = Metrics::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let value: f64 = value.parse().unwrap_or(0.0);
            if let Some(labels) = name.strip_prefix("pve_guac_sync_cycles_total") {
                m.cycles += value as u64;
                m.outcomes.insert(label(labels, "outcome"), value as u64);
            } else if name == "pve_guac_sync_cycle_duration_seconds_sum" {
                m.duration_sum = value;
            } else if let Some(labels) = name.strip_prefix("pve_guac_sync_changes_total") {
                m.changes.insert(label(labels, "action"), value as u64);
            }
        }
        m
    }

    pub fn changes_since(&self, before: &Metrics) -> BTreeMap<String, u64> {
        self.changes
            .iter()
            .map(|(k, v)| (k.clone(), v - before.changes.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0)
            .collect()
    }

    pub fn last_outcome_since(&self, before: &Metrics) -> String {
        self.outcomes
            .iter()
            .find(|(k, v)| **v > before.outcomes.get(*k).copied().unwrap_or(0))
            .map(|(k, _)| k.clone())
            .unwrap_or_default()
    }
}

fn label(labels: &str, name: &str) -> String {
    let key = format!("{name}=\"");
    labels
        .split_once(&key)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(v, _)| v.to_owned())
        .unwrap_or_default()
}

pub(crate) struct Daemon {
    child: Child,
    metrics_addr: String,
}

impl Daemon {
    pub fn start(bin: &Path, config: &Path, log: &Path) -> anyhow::Result<Daemon> {
        let text = std::fs::read_to_string(config)?;
        let metrics_addr = text
            .split("listen: \"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .context("health.listen in the config")?
            .to_owned();
        let child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Daemon {
            child,
            metrics_addr,
        })
    }

    pub fn metrics(&mut self) -> anyhow::Result<Metrics> {
        if let Some(status) = self.child.try_wait()? {
            bail!("the daemon exited ({status}); see its log in the case directory");
        }
        let mut stream = TcpStream::connect(&self.metrics_addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )?;
        let mut body = String::new();
        stream.read_to_string(&mut body)?;
        Ok(Metrics::parse(&body))
    }

    /// Polls /metrics until `cycles` cycles have ended.
    pub fn wait_cycle(&mut self, cycles: u64) -> anyhow::Result<Metrics> {
        let deadline = Instant::now() + CYCLE_TIMEOUT;
        loop {
            match self.metrics() {
                Ok(m) if m.cycles >= cycles => return Ok(m),
                Ok(_) => {}
                // Not listening yet right after the start.
                Err(e) if e.downcast_ref::<std::io::Error>().is_some() => {}
                Err(e) => return Err(e),
            }
            if Instant::now() > deadline {
                bail!("no cycle ended within {CYCLE_TIMEOUT:?}");
            }
            // Each scrape costs the daemon CPU time that the phase counts:
            // a few per cycle, not dozens.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGUSR1: a cycle now.
    pub fn sync_now(&mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-USR1", &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -USR1 failed");
        }
        Ok(())
    }

    pub fn sample(&self) -> anyhow::Result<ProcSample> {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command name: state is field 3, utime 14, stime 15.
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = fields
            .get(11..13)
            .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
            .unwrap_or(0.0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                .unwrap_or(0)
        };
        Ok(ProcSample {
            cpu_s: ticks / clock_ticks(),
            hwm_kib: kib("VmHWM:"),
            rss_kib: kib("VmRSS:"),
        })
    }

    /// SIGTERM, then wait.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait()?;
        Ok(())
    }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
