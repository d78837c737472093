//! Guest lists (§5) and `status/current` (§7.1).

use std::time::Duration;

use serde_json::{Value, json};

use super::acl::Identity;
use super::errors::ApiError;
use super::seed::GuestKind;
use super::state::{AgentChannel, Guest, State, value_text};

fn can_audit(state: &State, who: &Identity, g: &Guest) -> bool {
    state
        .access
        .privs_on(who, &format!("/vms/{}", g.vmid), g.pool.as_deref())
        .has("VM.Audit")
}

fn usage(g: &Guest, now: Duration, v: &mut Value) {
    let up = g.is_running();
    v["uptime"] = json!(g.uptime(now));
    v["cpus"] = json!(g.cpus);
    v["cpu"] = json!(if up { 0.012 } else { 0.0 });
    v["mem"] = json!(if up { g.maxmem * 3 / 5 } else { 0 });
    v["maxmem"] = json!(g.maxmem);
    v["disk"] = json!(if g.is_vm() || !up { 0 } else { g.maxdisk / 4 });
    v["maxdisk"] = json!(g.maxdisk);
    v["netin"] = json!(if up { 123_456 } else { 0 });
    v["netout"] = json!(if up { 65_432 } else { 0 });
}

fn common_optional(g: &Guest, v: &mut Value) {
    if let Some(l) = g.lock() {
        v["lock"] = json!(l);
    }
    if let Some(t) = g.tags() {
        v["tags"] = json!(t);
    }
    if g.is_template() {
        v["template"] = json!(1);
    }
    if g.is_running() {
        v["pid"] = json!(10_000 + g.vmid % 50_000);
    }
}

/// `GET /nodes/N/{qemu,lxc}`: guests on N the caller may audit.
pub fn list(
    state: &State,
    who: &Identity,
    node: &str,
    kind: GuestKind,
    full: bool,
    now: Duration,
) -> Value {
    let items: Vec<Value> = state
        .guests
        .values()
        .filter(|g| g.node == node && g.kind == kind && can_audit(state, who, g))
        .map(|g| {
            let mut v = json!({
                "vmid": g.vmid, "name": g.display_name(),
                "status": if g.is_running() { "running" } else { "stopped" },
            });
            usage(g, now, &mut v);
            common_optional(g, &mut v);
            match kind {
                GuestKind::Qemu => {
                    if state.settings.version.has_memhost() {
                        v["memhost"] = v["mem"].clone();
                    }
                    if full {
                        v["qmpstatus"] = json!(g.qmpstatus());
                        if g.is_running() {
                            v["diskread"] = json!(123_456_789);
                            v["diskwrite"] = json!(98_765_432);
                        }
                    }
                }
                GuestKind::Lxc => {
                    v["type"] = json!("lxc");
                    v["swap"] = json!(0);
                    v["maxswap"] = json!(536_870_912u64);
                }
            }
            v
        })
        .collect();
    Value::Array(items)
}

/// `GET /nodes/N/{qemu,lxc}/V/status/current`.
pub fn status_current(
    state: &State,
    node: &str,
    kind: GuestKind,
    vmid: u32,
    now: Duration,
) -> Result<Value, ApiError> {
    let Some(g) = state.guest_on(node, vmid, kind) else {
        return Err(ApiError::failed(Guest::missing_config(kind, node, vmid)));
    };
    let mut v = json!({
        "vmid": g.vmid, "name": g.display_name(),
        "status": if g.is_running() { "running" } else { "stopped" },
        "diskread": 0, "diskwrite": 0,
    });
    usage(g, now, &mut v);
    common_optional(g, &mut v);
    v["ha"] = if g.ha {
        json!({"managed": 1, "state": if g.is_running() { "started" } else { "stopped" }, "group": null})
    } else {
        json!({"managed": 0})
    };
    match kind {
        GuestKind::Qemu => {
            v["qmpstatus"] = json!(g.qmpstatus());
            // `agent` follows the running VM's channel, or the config when stopped.
            let enabled = if g.is_running() {
                g.agent_channel == AgentChannel::Enabled
            } else {
                g.configured_channel() == AgentChannel::Enabled
            };
            if enabled {
                v["agent"] = json!(1);
            }
            if state.settings.version.has_memhost() {
                v["memhost"] = v["mem"].clone();
            }
            if g.is_running() {
                v["running-machine"] = json!("pc-i440fx-9.2+pve1");
                v["running-qemu"] = json!("9.2.0");
                v["balloon"] = json!(g.maxmem);
                v["freemem"] = json!(g.maxmem / 3);
            }
            if let Some(vga) = g.config.get("vga").map(value_text) {
                v["clipboard"] = if vga.contains("clipboard=vnc") {
                    json!("vnc")
                } else {
                    Value::Null
                };
            }
            v["proxmox-support"] = json!({});
        }
        GuestKind::Lxc => {
            v["type"] = json!("lxc");
            v["swap"] = json!(0);
            v["maxswap"] = json!(536_870_912u64);
        }
    }
    Ok(v)
}
