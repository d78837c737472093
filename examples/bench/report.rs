//! Rows (JSON), the printed table, and the targets of issue 11 checked on
//! each row.

use std::path::Path;

use serde_json::{Value, json};

use crate::client_floor::ClientFloor;
use crate::floor::Floor;
use crate::{Case, Measured};

/// 25 MB in KiB, as /proc reports memory.
const RSS_TARGET_KIB: u64 = 25_000_000 / 1024;

pub(crate) fn row(case: &Case, phase: &str, m: &Measured, floor: &Floor) -> Value {
    let total = |api: &str| -> u64 {
        m.requests[api]
            .as_object()
            .map(|o| o.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0)
    };
    let (pve, guac) = (total("proxmox"), total("guacamole"));
    let cpu_ms = (m.after.cpu_s - m.before.cpu_s) * 1000.0;
    let mut r = json!({
        "guests": case.mix.guests,
        "blocks": case.mix.blocks,
        "guacamole": case.version,
        "limits": case.limits.name,
        "phase": phase,
        "outcome": m.outcome,
        "requests": {"proxmox": pve, "guacamole": guac, "failed": m.failed,
                     "by_endpoint": m.requests},
        "floor": {"proxmox": floor.proxmox, "guacamole": floor.guacamole,
                  "wall_s": round3(floor.wall_s)},
        "cycle_s": round3(m.cycle_s),
        "wall_s": round3(m.wall.as_secs_f64()),
        "cpu_ms": cpu_ms.round(),
        "rss_kib": m.after.rss_kib,
        "peak_rss_kib": m.after.hwm_kib,
        "changes": m.changes,
    });
    r["targets"] = targets(&r);
    r
}

/// The phase name of the HTTP client's own cost (see `client_floor`).
pub(crate) const CLIENT_ONLY: &str = "HTTP client only";

/// A row for what the HTTP client alone spent on a steady cycle's reads.
pub(crate) fn client_row(case: &Case, alone: &ClientFloor) -> Value {
    json!({
        "guests": case.mix.guests,
        "blocks": case.mix.blocks,
        "guacamole": case.version,
        "limits": case.limits.name,
        "phase": CLIENT_ONLY,
        "requests": {"proxmox": alone.requests},
        "cpu_ms": (alone.cpu.as_secs_f64() * 1000.0).round(),
    })
}

/// Each target that applies to this row: name → met.
fn targets(r: &Value) -> Value {
    let f = |p: &str| r.pointer(p).and_then(Value::as_f64).unwrap_or(0.0);
    let phase = r["phase"].as_str().unwrap_or_default();
    let guests = f("/guests") as u64;
    let requests = f("/requests/proxmox") + f("/requests/guacamole");
    let floor_requests = f("/floor/proxmox") + f("/floor/guacamole");
    let wall_ratio = f("/cycle_s") / f("/floor/wall_s").max(1e-9);
    let mut t = serde_json::Map::new();
    if phase.starts_with("steady") {
        t.insert(
            "steady requests <= floor + 2%".into(),
            json!(requests <= floor_requests * 1.02),
        );
        t.insert(
            "steady wall <= 1.2 x floor".into(),
            json!(wall_ratio <= 1.2),
        );
        if guests == 1000 {
            t.insert(
                "steady CPU <= 50 ms at 1000".into(),
                json!(f("/cpu_ms") <= 50.0),
            );
        }
    }
    if phase == "first sync"
        && guests == 1000
        && f("/blocks") == 2.0
        && r["guacamole"] == "1.6"
        && r["limits"] == "raised"
    {
        t.insert(
            "first sync 1000x2 wall <= 1.2 x floor".into(),
            json!(wall_ratio <= 1.2),
        );
    }
    if guests >= 5000 {
        t.insert(
            "peak RSS <= 25 MB at 5000".into(),
            json!(f("/peak_rss_kib") as u64 <= RSS_TARGET_KIB),
        );
    }
    Value::Object(t)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub(crate) fn print(rows: &[Value]) {
    println!(
        "{:<26} {:<18} {:>13} {:>11} {:>8} {:>8} {:>8} {:>6} {:>7} {:>8} {:>8}  targets",
        "case",
        "phase",
        "PVE req/floor",
        "guac/floor",
        "cycle s",
        "floor s",
        "wall s",
        "xfloor",
        "CPU ms",
        "peak MiB",
        "idle MiB"
    );
    for r in rows {
        let f = |p: &str| r.pointer(p).and_then(Value::as_f64).unwrap_or(0.0);
        let case = format!(
            "{}x{} {} {}",
            r["guests"],
            r["blocks"],
            r["guacamole"].as_str().unwrap_or(""),
            r["limits"].as_str().unwrap_or("")
        );
        if r["phase"] == CLIENT_ONLY {
            println!(
                "{:<26} {:<18} {:>13} {:>11} {:>8} {:>8} {:>8} {:>6} {:>7.0}  (this process, one thread)",
                case,
                CLIENT_ONLY,
                f("/requests/proxmox"),
                "",
                "",
                "",
                "",
                "",
                f("/cpu_ms"),
            );
            continue;
        }
        let verdicts: Vec<String> = r["targets"]
            .as_object()
            .map(|t| {
                t.iter()
                    .map(|(k, v)| format!("{}:{k}", if v == true { "ok" } else { "MISS" }))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{:<26} {:<18} {:>13} {:>11} {:>8.3} {:>8.3} {:>8.3} {:>6.2} {:>7.0} {:>8.1} {:>8.1}  {}",
            case,
            r["phase"].as_str().unwrap_or(""),
            format!("{}/{}", f("/requests/proxmox"), f("/floor/proxmox")),
            format!("{}/{}", f("/requests/guacamole"), f("/floor/guacamole")),
            f("/cycle_s"),
            f("/floor/wall_s"),
            f("/wall_s"),
            f("/cycle_s") / f("/floor/wall_s").max(1e-9),
            f("/cpu_ms"),
            f("/peak_rss_kib") / 1024.0,
            f("/rss_kib") / 1024.0,
            verdicts.join(" ")
        );
    }
}

pub(crate) fn write_json(path: &Path, rows: &[Value], settings: &Value) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let doc = json!({"settings": settings, "rows": rows});
    std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}
