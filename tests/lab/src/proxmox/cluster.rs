//! Cluster-wide endpoints (§4, §10): `/version`, `/nodes`,
//! `/cluster/status`, `/nodes/N/network`.

use std::time::Duration;

use serde_json::{Value, json};

use super::acl::Identity;
use super::state::{Node, State};

/// Does `node` still have fresh statistics (online, or offline for less
/// than the stale window)?
pub fn has_fresh_stats(state: &State, node: &Node, now: Duration) -> bool {
    node.online
        || node.offline_since.is_some_and(|since| {
            now.saturating_sub(since)
                < Duration::from_secs_f64(state.settings.options.stale_stats_secs)
        })
}

pub fn version(state: &State) -> Value {
    let v = state.settings.version;
    json!({
        "version": state.settings.version_text,
        "release": format!("{}.{}", v.major, v.minor),
        "repoid": "0123456789abcdef",
    })
}

/// `GET /nodes`: every member; usage fields only with Sys.Audit on the node
/// and fresh statistics.
pub fn nodes(state: &State, who: &Identity, now: Duration) -> Value {
    let items: Vec<Value> = state
        .nodes
        .iter()
        .map(|n| {
            let mut v = json!({
                "node": n.name, "id": format!("node/{}", n.name), "type": "node",
                "status": if n.online { "online" } else { "offline" },
                "ssl_fingerprint": n.ssl_fingerprint,
            });
            let fresh = has_fresh_stats(state, n, now);
            if fresh {
                v["level"] = json!("");
            }
            let audit = state
                .access
                .privs_on(who, &format!("/nodes/{}", n.name), None)
                .has("Sys.Audit");
            if fresh && audit {
                v["maxcpu"] = json!(n.maxcpu);
                v["maxmem"] = json!(n.maxmem);
                v["maxdisk"] = json!(n.maxdisk);
                if n.online {
                    v["cpu"] = json!(0.0213);
                    v["mem"] = json!(n.maxmem / 8);
                    v["disk"] = json!(10_737_418_240u64);
                    v["uptime"] = json!(864_000 + now.as_secs());
                }
            }
            v
        })
        .collect();
    Value::Array(items)
}

/// `GET /cluster/status` as seen from `contacted`.
pub fn cluster_status(state: &State, contacted: &str) -> Value {
    let mut items = Vec::new();
    if !state.settings.standalone {
        items.push(json!({
            "type": "cluster", "id": "cluster", "name": state.settings.cluster_name,
            "nodes": state.nodes.len(), "version": 5,
            "quorate": u8::from(state.quorate(contacted)),
        }));
    }
    for n in &state.nodes {
        items.push(json!({
            "type": "node", "id": format!("node/{}", n.name), "name": n.name,
            "nodeid": n.nodeid, "ip": n.ip, "local": u8::from(n.name == contacted),
            "online": u8::from(n.online), "level": "",
        }));
    }
    Value::Array(items)
}

pub const NETWORK_TYPES: &[&str] = &[
    "bridge",
    "bond",
    "eth",
    "alias",
    "vlan",
    "fabric",
    "OVSBridge",
    "OVSBond",
    "OVSPort",
    "OVSIntPort",
    "vnet",
    "any_bridge",
    "any_local_bridge",
    "include_sdn",
];

/// `GET /nodes/N/network[?type=…]` plus the optional `changes` text.
pub fn network(
    state: &State,
    who: &Identity,
    node: &str,
    filter: Option<&str>,
) -> (Value, Option<String>) {
    let Some(n) = state.node(node) else {
        return (json!([]), None);
    };
    let items: Vec<Value> = n
        .network
        .iter()
        .enumerate()
        .filter(|(_, i)| match filter {
            None | Some("include_sdn") => true,
            Some("any_bridge" | "any_local_bridge") => {
                matches!(i.kind.as_str(), "bridge" | "OVSBridge")
            }
            Some(t) => i.kind == t,
        })
        .filter(|(_, i)| {
            let bridge = matches!(i.kind.as_str(), "bridge" | "OVSBridge");
            if !bridge {
                return true;
            }
            let p =
                state
                    .access
                    .privs_on(who, &format!("/sdn/zones/localnetwork/{}", i.iface), None);
            p.has("SDN.Audit") || p.has("SDN.Use")
        })
        .map(|(pos, i)| {
            let mut v = json!({
                "iface": i.iface, "type": i.kind,
                "method": if i.cidr.is_some() { "static" } else { "manual" },
                "method6": "manual", "families": ["inet"], "active": 1,
                "autostart": 1, "priority": pos + 2,
            });
            if let Some(c) = &i.cidr {
                let (addr, prefix) = c.split_once('/').unwrap_or((c, "24"));
                v["address"] = json!(addr);
                v["netmask"] = json!(prefix);
                v["cidr"] = json!(c);
            }
            if let Some(gw) = &i.gateway {
                v["gateway"] = json!(gw);
            }
            if let Some(p) = &i.bridge_ports {
                v["bridge_ports"] = json!(p);
                v["bridge_stp"] = json!("off");
                v["bridge_fd"] = json!("0");
            }
            if i.vlan_aware {
                v["bridge_vlan_aware"] = json!(1);
            }
            if i.kind == "eth" {
                v["exists"] = json!(1);
            }
            v
        })
        .collect();
    (Value::Array(items), n.pending_network_changes.clone())
}
