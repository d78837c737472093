//! `check-config`: validate the configuration file and every secret source
//! without contacting any server. Exit 0 when valid (summary on stdout,
//! warnings on stderr), 2 with every problem listed otherwise.

use std::path::Path;

use crate::config::{ApiSettings, HealthSettings, Settings};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, config: &Path) -> anyhow::Result<i32> {
    match Settings::load(config) {
        Ok(settings) => {
            for w in &settings.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", summary(&settings));
            Ok(0)
        }
        Err(e) => {
            eprintln!("{e}");
            let n = e.problems().len().max(1);
            eprintln!(
                "{}: {n} problem{} found; nothing was contacted",
                config.display(),
                if n == 1 { "" } else { "s" }
            );
            Ok(2)
        }
    }
}

/// What the daemon would run with, secrets left out.
pub fn summary(s: &Settings) -> String {
    let mut out = format!("{}: configuration is valid\n", s.file.display());
    out.push_str(&format!(
        "proxmox: {} cluster(s)\n",
        s.proxmox.clusters.len()
    ));
    for c in &s.proxmox.clusters {
        let endpoints: Vec<&str> = c.endpoints.iter().map(|u| u.as_str()).collect();
        out.push_str(&format!(
            "  {}: token {}, endpoints {}\n    {}\n",
            c.name,
            c.token_id,
            endpoints.join(" → "),
            api_line(&c.api)
        ));
    }
    let g = &s.guacamole;
    out.push_str(&format!(
        "guacamole: {} (API path {}), user {}, data source {}, managed group {:?}\n    {}\n",
        g.url,
        g.base_path.as_deref().unwrap_or("auto-detected"),
        g.username,
        g.data_source.as_deref().unwrap_or("from login"),
        g.root_group,
        api_line(&g.api)
    ));
    let y = &s.sync;
    out.push_str(&format!(
        "sync: every {} ±{:.0} %, {}, at most {} changes per cycle, {}\n",
        humantime::format_duration(y.interval),
        y.jitter * 100.0,
        if y.dry_run {
            "DRY RUN"
        } else {
            "writes enabled"
        },
        y.max_changes_per_cycle,
        if y.prune.enabled {
            format!("prune after {}", humantime::format_duration(y.prune.grace))
        } else {
            "prune off".to_owned()
        }
    ));
    out.push_str(&format!(
        "  names {:?}, grouping {}, guests: {}, auto-encrypt {}, parameters re-verified every {}\n",
        y.name_template,
        y.grouping.as_str(),
        if y.selector.is_everything() {
            "all"
        } else {
            "filtered by include/exclude"
        },
        if y.auto_encrypt { "on" } else { "off" },
        humantime::format_duration(y.verify_interval),
    ));
    let networks: Vec<String> = y.allowed_networks.iter().map(ToString::to_string).collect();
    out.push_str(&format!(
        "  target addresses: {}; DNS names in notes {}\n",
        if networks.is_empty() {
            "any".to_owned()
        } else {
            networks.join(", ")
        },
        if y.allow_dns_names {
            "allowed"
        } else {
            "refused"
        },
    ));
    out.push_str(&format!(
        "encryption: {} key(s)\nstate: {}\nlogging: {} at {}\n",
        s.encryption.keys.len(),
        s.state_dir.display(),
        s.logging.format.as_str(),
        s.logging.level
    ));
    out.push_str(&health_line(&s.health));
    out
}

fn health_line(h: &HealthSettings) -> String {
    match h.listen {
        None => "health: off (no metrics or health listener)\n".to_owned(),
        Some(addr) => format!(
            "health: http://{addr}/ (/healthz, /readyz, /metrics){}\n",
            if h.exposed() {
                ", NOT loopback: reachable from other hosts"
            } else {
                ""
            }
        ),
    }
}

fn api_line(api: &ApiSettings) -> String {
    format!(
        "TLS {}, timeouts {}/{}, {}/s burst {}, concurrency {}, {} attempts",
        api.tls.describe(),
        humantime::format_duration(api.timeouts.connect),
        humantime::format_duration(api.timeouts.request),
        api.rate_limit.per_second,
        api.rate_limit.burst,
        api.concurrency,
        api.retry.max_attempts
    )
}
