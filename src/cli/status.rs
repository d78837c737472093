//! `status`: what the running service's status page shows, in the
//! terminal. Reads `health.listen` from the configuration (not its
//! secrets), fetches `/status.json` over loopback HTTP and prints it (or,
//! with `--json`, passes it through). Exit 0 when the service says `ok` or
//! `starting`, 1 when `degraded`, `failing` or unreachable, 2 when the
//! configuration cannot be read or the listener is off.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(5);
/// Larger answers are cut (the JSON is bounded well below this).
const MAX_BODY: u64 = 8 * 1024 * 1024;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print `/status.json` as the service sent it.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, config: &Path) -> anyhow::Result<i32> {
    let listen = match crate::config::health_listen_of(config) {
        Ok(Some(addr)) => addr,
        Ok(None) => {
            eprintln!(
                "error: health.listen is not set in {}: the status page is off. Set it (e.g. \
                 `health: {{listen: 127.0.0.1:9187}}`) and restart the service.",
                config.display()
            );
            return Ok(2);
        }
        Err(e) => {
            eprintln!("{e}");
            return Ok(2);
        }
    };
    let addr = reachable(listen);
    let body = match fetch(addr) {
        Ok(body) => body,
        Err(e) => {
            eprintln!(
                "error: cannot read the status of pve-guac-sync at http://{addr}/status.json: \
                 {e:#}. Is the service running (`systemctl status pve-guac-sync`)?"
            );
            return Ok(1);
        }
    };
    let status: Value = serde_json::from_str(&body)
        .with_context(|| format!("http://{addr}/status.json did not answer JSON"))?;
    if args.json {
        print!("{body}");
    } else {
        print!("{}", render(&status));
    }
    Ok(match status["state"].as_str() {
        Some("ok" | "starting") => 0,
        _ => 1,
    })
}

/// A wildcard listen address is reached over loopback.
fn reachable(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `GET /status.json`, one request, bounded in time and size.
fn fetch(addr: SocketAddr) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET /status.json HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.take(MAX_BODY).read_to_end(&mut raw)?;
    let text = String::from_utf8(raw).context("the answer is not UTF-8")?;
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("the answer has no HTTP header");
    };
    let code = head.split(' ').nth(1).unwrap_or("?");
    if code != "200" {
        let line = head.lines().next().unwrap_or("");
        bail!("the listener answered `{line}` (an older pve-guac-sync without the status page?)");
    }
    Ok(body.to_owned())
}

/// The terminal form: state first, then what needs attention.
pub(crate) fn render(v: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    let state = s(&v["state"]).to_uppercase();
    match v["reason"].as_str() {
        Some(r) if !r.is_empty() => line(format!("{state}: {r}")),
        _ => line(state),
    }
    let last_success = v["last_success"]["age_s"]
        .as_u64()
        .map_or_else(|| "never".to_owned(), |a| format!("{a} s ago"));
    line(format!(
        "cycles: {} · interval {} s · last clean cycle {last_success}{}",
        n(&v["cycles"]),
        n(&v["interval_s"]),
        if v["dry_run"].as_bool() == Some(true) {
            " · DRY RUN"
        } else {
            ""
        }
    ));
    let b = &v["budget"];
    line(format!(
        "managed: {} connections for {} guests · pending {} · budget {} of {} per cycle",
        n(&v["managed"]["connections"]),
        n(&v["managed"]["guests"]),
        n(&b["pending"]),
        n(&b["used_last_cycle"]),
        n(&b["max_changes_per_cycle"])
    ));
    section(&mut out, "last cycles", &v["history"], |c| {
        format!(
            "#{} {} {} ms {} · {} changes, {} pending, {} errors",
            n(&c["number"]),
            s(&c["finished"]["at"]),
            n(&c["duration_ms"]),
            s(&c["outcome"]),
            n(&c["changes"]),
            n(&c["pending"]),
            n(&c["errors"])
        )
    });
    section(&mut out, "clusters", &v["clusters"], |c| {
        format!(
            "{}: endpoints up {}/{} · {} guests · {} connections · {} · last complete {}",
            s(&c["name"]),
            n(&c["endpoints_up"]),
            c["endpoints"].as_array().map_or(0, Vec::len),
            n(&c["guests"]),
            n(&c["connections"]),
            if c["complete"].as_bool() == Some(true) {
                "complete"
            } else {
                "INCOMPLETE"
            },
            c["last_complete"]["at"].as_str().unwrap_or("never")
        )
    });
    section(&mut out, "pending changes", &v["pending"], |p| {
        format!(
            "{} {} {} — {} (waits for {})",
            s(&p["action"]),
            s(&p["guest"]),
            s(&p["connection"]),
            s(&p["reason"]),
            s(&p["waits_for"])
        )
    });
    section(
        &mut out,
        "guests with block errors",
        &v["block_errors"],
        |e| {
            format!(
                "{} ({}): block {} line {}, key {}: {}",
                s(&e["guest"]),
                printable(&s(&e["guest_name"])),
                n(&e["block"]),
                n(&e["line"]),
                e["key"].as_str().unwrap_or("-"),
                s(&e["message"])
            )
        },
    );
    section(
        &mut out,
        "power-ups in flight",
        &v["power_ups_in_flight"],
        s,
    );
    let recent: Vec<Value> = v["audit"]
        .as_array()
        .map(|a| a.iter().take(10).cloned().collect())
        .unwrap_or_default();
    section(
        &mut out,
        "recent audit events",
        &Value::Array(recent),
        |a| {
            format!(
                "{} cycle {} {} {} {} {}",
                s(&a["at"]),
                n(&a["cycle"]),
                s(&a["action"]),
                s(&a["result"]),
                a["connection"]
                    .as_str()
                    .or(a["guest"].as_str())
                    .unwrap_or(""),
                a["error"].as_str().unwrap_or("")
            )
        },
    );
    section(&mut out, "reload refused", &v["reload_problems"], s);
    out
}

fn section(out: &mut String, title: &str, items: &Value, row: impl Fn(&Value) -> String) {
    let Some(items) = items.as_array().filter(|a| !a.is_empty()) else {
        return;
    };
    out.push_str(&format!("\n{title}:\n"));
    for item in items {
        out.push_str(&format!("  {}\n", printable(&row(item))));
    }
}

/// Guest names are untrusted: no terminal control sequences.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_addresses_are_reached_over_loopback() {
        assert_eq!(
            reachable("0.0.0.0:9187".parse().unwrap()),
            "127.0.0.1:9187".parse().unwrap()
        );
        assert_eq!(
            reachable("[::]:9187".parse().unwrap()),
            "[::1]:9187".parse().unwrap()
        );
        assert_eq!(
            reachable("127.0.0.2:1".parse().unwrap()),
            "127.0.0.2:1".parse().unwrap()
        );
    }

    #[test]
    fn the_terminal_form_leads_with_the_state_and_strips_control_characters() {
        let v = serde_json::json!({
            "state": "degraded", "reason": "1 guest(s) with block errors",
            "cycles": 3, "interval_s": 300, "dry_run": false,
            "budget": {"pending": 0, "used_last_cycle": 2, "max_changes_per_cycle": 50},
            "managed": {"connections": 7, "guests": 6},
            "block_errors": [{"guest": "lab/150", "guest_name": "evil\u{1b}[2Jname",
                "block": 1, "line": 2, "key": "protos", "message": "no protocol"}],
        });
        let text = render(&v);
        assert!(
            text.starts_with("DEGRADED: 1 guest(s) with block errors\n"),
            "{text}"
        );
        assert!(
            text.contains("managed: 7 connections for 6 guests"),
            "{text}"
        );
        assert!(
            text.contains("lab/150 (evil[2Jname): block 1 line 2, key protos: no protocol"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'));
    }
}
