//! `GET /cluster/resources` (§4.3): guests filtered by VM.Audit, run states
//! that lag behind, stale then `unknown` entries for offline nodes.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::acl::Identity;
use super::cluster::has_fresh_stats;
use super::privs::PrivSet;
use super::state::{Guest, State};

pub const TYPES: &[&str] = &["vm", "storage", "node", "sdn"];

/// One array element: guests are typed (the hot path with thousands of
/// entries is serialised without building a `Value` per guest).
#[derive(Serialize)]
#[serde(untagged)]
// Almost every item is a guest: boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Item<'a> {
    Guest(GuestEntry<'a>),
    Other(Value),
}

/// The JSON text of the `data` array.
pub fn resources(state: &State, who: &Identity, filter: Option<&str>, now: Duration) -> String {
    let mut out: Vec<Item<'_>> = Vec::new();
    let want = |t: &str| filter.is_none() || filter == Some(t);
    if want("vm") {
        guests(state, who, now, &mut out);
    }
    if want("node") {
        for n in &state.nodes {
            let mut v = json!({
                "id": format!("node/{}", n.name), "type": "node", "node": n.name,
                "status": if n.online { "online" } else { "offline" },
            });
            let fresh = has_fresh_stats(state, n, now);
            if fresh {
                v["level"] = json!("");
                v["cgroup-mode"] = json!(2);
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
            out.push(Item::Other(v));
        }
    }
    if want("storage") {
        for n in &state.nodes {
            for (id, plugin, content) in [
                ("local", "dir", "iso,vztmpl,backup"),
                ("local-lvm", "lvmthin", "rootdir,images"),
            ] {
                let p = state.access.privs_on(who, &format!("/storage/{id}"), None);
                if !(p.has("Datastore.Audit") || p.has("Datastore.AllocateSpace")) {
                    continue;
                }
                out.push(Item::Other(json!({
                    "id": format!("storage/{}/{id}", n.name), "type": "storage", "storage": id,
                    "node": n.name, "status": if n.online { "available" } else { "unknown" },
                    "plugintype": plugin, "content": content, "shared": 0,
                    "disk": 10_737_418_240u64, "maxdisk": 100_861_726_720u64,
                })));
            }
        }
    }
    if filter.is_none() {
        for pool in &state.access.pools {
            if state
                .access
                .privs_on(who, &format!("/pool/{pool}"), None)
                .has("Pool.Audit")
            {
                out.push(Item::Other(
                    json!({"id": format!("pool/{pool}"), "type": "pool", "pool": pool}),
                ));
            }
        }
    }
    if want("sdn") {
        for n in &state.nodes {
            out.push(Item::Other(json!({
                "id": format!("sdn/{}/localnetwork", n.name), "type": "sdn", "sdn": "localnetwork",
                "node": n.name, "status": "ok",
            })));
        }
    }
    if filter.is_none() && state.settings.version.major >= 9 {
        for n in &state.nodes {
            out.push(Item::Other(json!({
                "id": format!("network/{}/localnetwork", n.name), "type": "network",
                "network": "localnetwork", "network-type": "zone", "zone-type": "simple",
                "node": n.name, "status": "ok",
            })));
        }
    }
    serde_json::to_string(&out).expect("resources serialise")
}

fn guests<'a>(state: &'a State, who: &Identity, now: Duration, out: &mut Vec<Item<'a>>) {
    let lag = Duration::from_secs_f64(state.settings.options.resources_lag_secs.max(0.0));
    // Privileges on `/vms/<V>` only differ from `/vms` where an ACL names the
    // guest or it is in a pool: compute the common cases once.
    let common = state.access.privs_on(who, "/vms/0", None);
    let specific: Vec<String> = state.access.acl_paths().into_iter().collect();
    let mut pool_privs: HashMap<&str, PrivSet> = HashMap::new();
    let mut pool_audit: HashMap<&str, bool> = HashMap::new();
    let fresh: HashMap<&str, bool> = state
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), has_fresh_stats(state, n, now)))
        .collect();
    for g in state.guests.values() {
        let path = format!("/vms/{}", g.vmid);
        let privs = if specific.binary_search(&path).is_ok() {
            state.access.privs_on(who, &path, g.pool.as_deref())
        } else if let Some(p) = &g.pool {
            *pool_privs
                .entry(p.as_str())
                .or_insert_with(|| state.access.privs_on(who, "/vms/0", Some(p)))
        } else {
            common
        };
        if !privs.has("VM.Audit") {
            continue;
        }
        let pool_visible = g.pool.as_deref().filter(|p| {
            *pool_audit.entry(p).or_insert_with(|| {
                state
                    .access
                    .privs_on(who, &format!("/pool/{p}"), None)
                    .has("Pool.Audit")
            })
        });
        out.push(Item::Guest(guest_entry(
            state,
            g,
            now,
            lag,
            fresh.get(g.node.as_str()).copied().unwrap_or(false),
            pool_visible,
        )));
    }
}

#[derive(Serialize, Default)]
struct GuestEntry<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    vmid: u32,
    node: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uptime: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    maxcpu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mem: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    maxmem: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memhost: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disk: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    maxdisk: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    netin: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    netout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    diskread: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    diskwrite: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lock: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pool: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hastate: Option<&'static str>,
}

fn guest_entry<'a>(
    state: &State,
    g: &'a Guest,
    now: Duration,
    lag: Duration,
    fresh: bool,
    pool: Option<&'a str>,
) -> GuestEntry<'a> {
    let mut e = GuestEntry {
        id: format!("{}/{}", g.type_name(), g.vmid),
        kind: g.type_name(),
        vmid: g.vmid,
        node: &g.node,
        status: "unknown".into(),
        tags: g.config.get("tags").and_then(Value::as_str),
        lock: g.config.get("lock").and_then(Value::as_str),
        pool,
        hastate: g
            .ha
            .then(|| if g.is_running() { "started" } else { "stopped" }),
        ..GuestEntry::default()
    };
    if !fresh {
        return e;
    }
    let status = if now.saturating_sub(g.status_changed_at) < lag {
        g.previous_resource_status.clone()
    } else {
        g.resource_status()
    };
    let up = status != "stopped";
    let activity = if up { 123_456 } else { 0 };
    let mem = if up { g.maxmem * 3 / 5 } else { 0 };
    e.name = Some(g.display_name());
    e.status = status;
    e.template = Some(u8::from(g.is_template()));
    e.uptime = Some(if up { g.uptime(now) } else { 0 });
    e.cpu = Some(if up { 0.012 } else { 0.0 });
    e.maxcpu = Some(g.cpus);
    e.mem = Some(mem);
    e.maxmem = Some(g.maxmem);
    e.memhost = (g.is_vm() && state.settings.version.has_memhost()).then_some(mem);
    e.disk = Some(if g.is_vm() || !up { 0 } else { g.maxdisk / 4 });
    e.maxdisk = Some(g.maxdisk);
    e.netin = Some(activity);
    e.netout = Some(activity);
    e.diskread = Some(activity);
    e.diskwrite = Some(activity);
    e
}
