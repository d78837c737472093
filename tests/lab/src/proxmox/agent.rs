//! The QEMU guest agent (§8) and what guests report about their interfaces
//! (agent format §8, container format §9).

use std::time::Duration;

use serde_json::{Value, json};

use super::errors::ApiError;
use super::outcome::Outcome;
use super::seed::{AgentState, GuestKind, IfaceSeed, LxcInterfacesShape};
use super::state::{AgentChannel, Guest, Run, State, value_text};

/// Static command index of `GET .../agent` (sorted).
pub const COMMANDS: &[&str] = &[
    "exec",
    "exec-status",
    "file-read",
    "file-write",
    "fsfreeze-freeze",
    "fsfreeze-status",
    "fsfreeze-thaw",
    "fstrim",
    "get-fsinfo",
    "get-host-name",
    "get-memory-block-info",
    "get-memory-blocks",
    "get-osinfo",
    "get-time",
    "get-timezone",
    "get-users",
    "get-vcpus",
    "info",
    "network-get-interfaces",
    "ping",
    "set-user-password",
    "shutdown",
    "suspend-disk",
    "suspend-hybrid",
    "suspend-ram",
];

pub fn command_index() -> Value {
    Value::Array(COMMANDS.iter().map(|c| json!({ "name": c })).collect())
}

/// Does the agent answer a ping right now?
pub fn answers_ping(g: &Guest, now: Duration) -> bool {
    let Run::Running { qmp, since } = &g.run else {
        return false;
    };
    let booted = now >= *since + Duration::from_secs_f64(g.agent.boot_delay_secs.max(0.0));
    qmp == "running"
        && g.agent_channel == AgentChannel::Enabled
        && g.agent.state != AgentState::Down
        && booted
}

/// Run an agent command (`network-get-interfaces` or `ping`) with the §8
/// error order.
pub fn run_command(state: &State, node: &str, vmid: u32, command: &str, now: Duration) -> Outcome {
    let opts = &state.settings.options;
    let Some(g) = state.guest_on(node, vmid, GuestKind::Qemu) else {
        return ApiError::failed(Guest::missing_config(GuestKind::Qemu, node, vmid)).into();
    };
    if !g.config.contains_key("agent") {
        return ApiError::failed("No QEMU guest agent configured").into();
    }
    if !g.is_running() {
        return ApiError::failed(format!("VM {vmid} is not running")).into();
    }
    let not_running = || ApiError::failed("QEMU guest agent is not running").into();
    if g.agent_channel != AgentChannel::Enabled {
        return not_running();
    }
    if !answers_ping(g, now) {
        let wait = Duration::from_secs_f64(opts.agent_ping_timeout_secs.max(0.0));
        return Outcome::After(wait, Box::new(not_running()));
    }
    if command == "ping" {
        return Outcome::data(json!({ "result": {} }));
    }
    let qga = format!("VM {vmid} qga command 'guest-{command}' failed");
    match g.agent.state {
        AgentState::Hang => {
            let wait = Duration::from_secs_f64(opts.agent_command_timeout_secs.max(0.0));
            Outcome::After(
                wait,
                Box::new(ApiError::failed(format!("{qga} - got timeout")).into()),
            )
        }
        AgentState::TransportError => {
            ApiError::failed(format!("{qga} - {}", g.agent.transport_error)).into()
        }
        AgentState::CommandError => Outcome::data(json!({
            "result": {"error": {"class": g.agent.error_class, "desc": g.agent.error_desc}}
        })),
        AgentState::Up | AgentState::Down => {
            Outcome::data(json!({ "result": agent_interfaces(g) }))
        }
    }
}

/// Interfaces a guest reports: loopback, one per NIC (MAC from the config,
/// lower-case), then extra interfaces.
fn guest_interfaces(g: &Guest) -> Vec<IfaceSeed> {
    let mut out = vec![IfaceSeed {
        name: "lo".into(),
        mac: Some("00:00:00:00:00:00".into()),
        addresses: vec!["127.0.0.1/8".into(), "::1/128".into()],
    }];
    for (i, addrs) in &g.addresses {
        let Some(net) = g.config.get(&format!("net{i}")).map(value_text) else {
            continue;
        };
        let (name, mac) = nic_name_and_mac(g.kind, *i, &net);
        let mut addresses = addrs.clone();
        if let Some(m) = &mac
            && !addresses.is_empty()
        {
            addresses.push(format!("{}/64", link_local(m)));
        }
        out.push(IfaceSeed {
            name,
            mac: mac.map(|m| m.to_ascii_lowercase()),
            addresses,
        });
    }
    out.extend(g.extra_interfaces.iter().cloned().map(|mut x| {
        x.mac = x.mac.map(|m| m.to_ascii_lowercase());
        x
    }));
    out
}

fn nic_name_and_mac(kind: GuestKind, index: usize, net: &str) -> (String, Option<String>) {
    let mut name = match kind {
        GuestKind::Qemu => format!("ens{}", 18 + index),
        GuestKind::Lxc => format!("eth{index}"),
    };
    let mut mac = None;
    for (n, part) in net.split(',').enumerate() {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        match (kind, k) {
            (GuestKind::Qemu, _) if n == 0 && !v.is_empty() => mac = Some(v.to_string()),
            (GuestKind::Lxc, "hwaddr") => mac = Some(v.to_string()),
            (GuestKind::Lxc, "name") => name = v.to_string(),
            _ => {}
        }
    }
    (name, mac)
}

/// EUI-64 link-local address of a MAC.
fn link_local(mac: &str) -> String {
    let b: Vec<u8> = mac
        .split(':')
        .filter_map(|x| u8::from_str_radix(x, 16).ok())
        .collect();
    if b.len() != 6 {
        return "fe80::1".into();
    }
    let g = [
        u16::from_be_bytes([b[0] ^ 2, b[1]]),
        u16::from_be_bytes([b[2], 0xff]),
        u16::from_be_bytes([0xfe, b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
    ];
    format!("fe80::{:x}:{:x}:{:x}:{:x}", g[0], g[1], g[2], g[3])
}

fn split_addr(a: &str) -> (String, u32, bool) {
    let (ip, prefix) = a.split_once('/').unwrap_or((a, "32"));
    let v6 = ip.contains(':');
    let default = if v6 { 128 } else { 32 };
    (ip.to_string(), prefix.parse().unwrap_or(default), v6)
}

fn agent_interfaces(g: &Guest) -> Value {
    let list = g
        .agent
        .interfaces
        .clone()
        .unwrap_or_else(|| guest_interfaces(g));
    let stats = !g.agent.no_statistics;
    let items: Vec<Value> = list
        .iter()
        .map(|i| {
            let mut v = json!({ "name": i.name });
            if let Some(m) = &i.mac {
                v["hardware-address"] = json!(m.to_ascii_lowercase());
            }
            if !i.addresses.is_empty() {
                let addrs: Vec<Value> = i
                    .addresses
                    .iter()
                    .map(|a| {
                        let (ip, prefix, v6) = split_addr(a);
                        json!({"ip-address": ip, "ip-address-type": if v6 {"ipv6"} else {"ipv4"}, "prefix": prefix})
                    })
                    .collect();
                v["ip-addresses"] = Value::Array(addrs);
            }
            if stats {
                let busy = u64::from(!i.addresses.is_empty());
                v["statistics"] = json!({
                    "rx-bytes": 987_654 * busy, "rx-packets": 1234 * busy, "rx-errs": 0, "rx-dropped": 0,
                    "tx-bytes": 123_456 * busy, "tx-packets": 987 * busy, "tx-errs": 0, "tx-dropped": 0
                });
            }
            v
        })
        .collect();
    Value::Array(items)
}

/// `GET /nodes/N/lxc/V/interfaces`: the CT kernel's view, `null` when the
/// CT is stopped or not on this node.
pub fn lxc_interfaces(state: &State, node: &str, vmid: u32) -> Result<Value, ApiError> {
    let Some(g) = state
        .guest_on(node, vmid, GuestKind::Lxc)
        .filter(|g| g.is_running())
    else {
        return Ok(Value::Null);
    };
    let legacy = state.settings.options.lxc_interfaces_shape == LxcInterfacesShape::Legacy;
    let items: Vec<Value> = guest_interfaces(g)
        .iter()
        .map(|i| {
            let mac = i.mac.as_ref().map(|m| m.to_ascii_lowercase());
            let mut v = json!({ "name": i.name, "hwaddr": mac });
            let parsed: Vec<(String, u32, bool)> = i.addresses.iter().map(|a| split_addr(a)).collect();
            if let Some((ip, p, _)) = parsed.iter().rev().find(|x| !x.2) {
                v["inet"] = json!(format!("{ip}/{p}"));
            }
            if let Some((ip, p, _)) = parsed.iter().rev().find(|x| x.2) {
                v["inet6"] = json!(format!("{ip}/{p}"));
            }
            if !legacy {
                v["hardware-address"] = json!(mac);
                let addrs: Vec<Value> = parsed
                    .iter()
                    .map(|(ip, p, v6)| json!({"ip-address-type": if *v6 {"inet6"} else {"inet"}, "ip-address": ip, "prefix": p}))
                    .collect();
                v["ip-addresses"] = Value::Array(addrs);
            }
            v
        })
        .collect();
    Ok(Value::Array(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_from_mac() {
        assert_eq!(link_local("bc:24:11:5a:3c:01"), "fe80::be24:11ff:fe5a:3c01");
        assert_eq!(link_local("BC:24:11:9F:3A:1C"), "fe80::be24:11ff:fe9f:3a1c");
    }
}
