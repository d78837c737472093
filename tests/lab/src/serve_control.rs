//! `serve --control`: a line protocol on stdin/stdout so a benchmark in
//! another process can mark the request log, read per-endpoint counts, and
//! change guests as a person would, without sharing the lab's memory.
//!
//! One command per line, one JSON answer per line:
//!
//! | command | answer |
//! |---|---|
//! | `mark` | `{"mark":N}` |
//! | `counts N` | `{"requests":{"proxmox":{route:n},"guacamole":{…}},"failed":n}` since mark N |
//! | `notes CLUSTER VMID` | `{"notes":"…"}` (null when unset) |
//! | `set-notes CLUSTER VMID "JSON string"` | `{"ok":true}` |
//! | `remove-guest CLUSTER VMID` | `{"ok":true}` |
//!
//! Errors answer `{"error":"…"}`.

use std::collections::BTreeMap;

use pve_guac_lab::{Lab, RequestMark};
use serde_json::{Value, json};

/// Answers one command line.
pub(crate) fn answer(lab: &Lab, line: &str) -> Value {
    match run(lab, line.trim()) {
        Ok(v) => v,
        Err(e) => json!({ "error": e }),
    }
}

fn run(lab: &Lab, line: &str) -> Result<Value, String> {
    let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
    match command {
        "mark" => Ok(json!({ "mark": lab.request_mark().0 })),
        "counts" => counts(lab, parse_number(rest)?),
        "notes" => {
            let (cluster, vmid, _) = guest_args(lab, rest)?;
            Ok(json!({ "notes": lab.proxmox(cluster).notes(vmid) }))
        }
        "set-notes" => {
            let (cluster, vmid, text) = guest_args(lab, rest)?;
            let text: String =
                serde_json::from_str(text).map_err(|e| format!("set-notes text: {e}"))?;
            ok(lab.proxmox(cluster).set_notes(vmid, &text), vmid)
        }
        "remove-guest" => {
            let (cluster, vmid, _) = guest_args(lab, rest)?;
            ok(lab.proxmox(cluster).remove_guest(vmid), vmid)
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

fn counts(lab: &Lab, mark: u64) -> Result<Value, String> {
    let mut by_api: BTreeMap<&'static str, BTreeMap<String, u64>> = BTreeMap::new();
    let mut failed = 0u64;
    for r in lab.requests_since(RequestMark(mark)) {
        let api = if r.server.starts_with("proxmox") {
            "proxmox"
        } else {
            "guacamole"
        };
        *by_api.entry(api).or_default().entry(r.route).or_default() += 1;
        if r.status == 0 || r.status >= 400 {
            failed += 1;
        }
    }
    Ok(json!({ "requests": by_api, "failed": failed }))
}

/// `CLUSTER VMID [REST]`, the cluster checked so a typo is an error, not a panic.
fn guest_args<'a>(lab: &Lab, rest: &'a str) -> Result<(&'a str, u32, &'a str), String> {
    let mut parts = rest.splitn(3, ' ');
    let cluster = parts.next().unwrap_or_default();
    if !lab.cluster_names().iter().any(|c| c == cluster) {
        return Err(format!("no cluster {cluster:?}"));
    }
    let vmid = parse_number(parts.next().unwrap_or_default())?;
    let vmid = u32::try_from(vmid).map_err(|_| format!("VMID {vmid} out of range"))?;
    Ok((cluster, vmid, parts.next().unwrap_or_default()))
}

fn parse_number(s: &str) -> Result<u64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("expected a number, got {s:?}"))
}

fn ok(done: bool, vmid: u32) -> Result<Value, String> {
    if done {
        Ok(json!({ "ok": true }))
    } else {
        Err(format!("no guest {vmid}"))
    }
}
