//! The generated lab seed: one cluster of three nodes with a realistic mix of
//! guests, and a fixed latency on every request of both servers.

use std::fmt::Write;

pub(crate) const CLUSTER: &str = "bench";
pub(crate) const TOKEN_ID: &str = "root@pam!bench";
pub(crate) const TOKEN_SECRET: &str = "11111111-2222-4333-8444-555555555555";
/// How long a Proxmox node takes to answer that a guest agent is not running
/// (its ping times out), as the real `qm guest` path does.
pub(crate) const AGENT_PING_TIMEOUT_S: f64 = 3.0;
pub(crate) const MIX_DESCRIPTION: &str = "a third containers (static ip= in the config), \
    10 % stopped, 5 % running VMs whose agent is not running, every running VM \
    answers through its agent; each block adds one connection per guest";

/// One guest of the mix.
#[derive(Clone, Copy)]
pub(crate) struct GuestPlan {
    pub vmid: u32,
    pub container: bool,
    pub running: bool,
    pub agent_down: bool,
}

/// N guests, K credential blocks each.
pub(crate) struct Mix {
    pub guests: u32,
    pub blocks: u32,
    pub plans: Vec<GuestPlan>,
}

impl Mix {
    pub fn new(guests: u32, blocks: u32) -> Mix {
        let mut running_vms = 0u32;
        let plans = (0..guests)
            .map(|i| {
                let container = i % 3 == 2;
                let running = i % 10 != 9;
                let mut agent_down = false;
                if running && !container {
                    agent_down = running_vms % 12 == 5;
                    running_vms += 1;
                }
                GuestPlan {
                    vmid: 1000 + i,
                    container,
                    running,
                    agent_down,
                }
            })
            .collect();
        Mix {
            guests,
            blocks,
            plans,
        }
    }

    /// Running VMs whose address only the agent knows.
    pub fn agent_asks(&self) -> u64 {
        self.plans
            .iter()
            .filter(|p| p.running && !p.container)
            .count() as u64
    }

    pub fn agent_down(&self) -> u64 {
        self.plans.iter().filter(|p| p.agent_down).count() as u64
    }
}

/// 1 % of the guests (at least one), spread evenly, starting at `offset`.
pub(crate) fn sample(mix: &Mix, offset: u32) -> Vec<u32> {
    let n = mix.guests.max(1);
    let count = (n / 100).max(1);
    (0..count).map(|k| 1000 + (offset + k * 100) % n).collect()
}

fn address(i: u32) -> String {
    // 198.18.0.0/15 is reserved for benchmarks (RFC 2544); nothing is sent there.
    format!(
        "198.{}.{}.{}/15",
        18 + i / 65_000,
        (i / 250) % 256,
        i % 250 + 1
    )
}

fn notes(i: u32, blocks: u32, container: bool) -> String {
    let mut out = format!("Benchmark guest {i}\n");
    let first_proto = if container { "ssh" } else { "rdp" };
    let _ = writeln!(
        out,
        "user:\"admin\" pass:\"pw-{i}\" protos:\"{first_proto}\";"
    );
    for b in 1..blocks {
        let _ = writeln!(out, "user:\"ops{b}\" pass:\"ops-{i}\" protos:\"ssh\";");
    }
    out
}

/// The seed file's YAML.
pub(crate) fn yaml(mix: &Mix, latency_ms: f64, jitter_ms: f64) -> String {
    // The lab adds `fixed` plus up to `jitter`: centre it on the mean.
    let fixed = (latency_ms - jitter_ms).max(0.0).round() as u64;
    let jitter = (2.0 * jitter_ms).round() as u64;
    let mut y = String::new();
    let _ = write!(
        y,
        "auth_delay: false\n\
         faults:\n  guacamole: {{latency_ms: {fixed}, jitter_ms: {jitter}}}\n  \
         proxmox:\n    {CLUSTER}: {{latency_ms: {fixed}, jitter_ms: {jitter}}}\n\
         clusters:\n  - name: {CLUSTER}\n    nodes: [{{name: pve1}}, {{name: pve2}}, {{name: pve3}}]\n    \
         tokens:\n      - {{userid: root@pam, name: bench, secret: {TOKEN_SECRET}, privsep: false}}\n    \
         options: {{agent_ping_timeout_secs: {AGENT_PING_TIMEOUT_S}}}\n    guests:\n"
    );
    for (i, p) in mix.plans.iter().enumerate() {
        let i = i as u32;
        let kind = if p.container { "lxc" } else { "qemu" };
        let status = if p.running { "running" } else { "stopped" };
        let mac = format!(
            "BC:24:11:{:02X}:{:02X}:{:02X}",
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff
        );
        let addr = address(i);
        let net = if p.container {
            format!("{{mac: \"{mac}\", config_ip: \"{addr}\", addresses: [\"{addr}\"]}}")
        } else {
            format!("{{mac: \"{mac}\", addresses: [\"{addr}\"]}}")
        };
        let agent = if p.container {
            String::new()
        } else {
            let state = if p.agent_down { "down" } else { "up" };
            format!(
                "      agent: \"1\"\n      guest_agent: {{state: {state}, boot_delay_secs: 0}}\n"
            )
        };
        let notes = serde_json::to_string(&notes(i, mix.blocks, p.container)).unwrap_or_default();
        let _ = write!(
            y,
            "    - vmid: {}\n      type: {kind}\n      name: g{i}\n      node: pve{}\n      \
             status: {status}\n      description: {notes}\n      nets: [{net}]\n{agent}",
            p.vmid,
            i % 3 + 1
        );
    }
    y
}
