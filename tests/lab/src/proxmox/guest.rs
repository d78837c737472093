//! One guest: its config (current and pending), digest, run state, agent
//! channel and what it reports about its network, built from a seed.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::seed::{AgentSeed, GuestKind, GuestSeed, IfaceSeed, SeedStatus, ShutdownBehaviour};
use super::values::{self, DescriptionChange};

/// A guest's run state.
#[derive(Debug, Clone, PartialEq)]
pub enum Run {
    Stopped,
    /// `qmp`: QEMU state (`running`, `paused`, …); `since`: virtual start time.
    Running {
        qmp: String,
        since: Duration,
    },
}

/// The agent channel a running VM was started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentChannel {
    /// No `agent` key when started.
    None,
    /// `agent: 0`: the key exists but there is no channel.
    Disabled,
    Enabled,
}

#[derive(Debug, Clone)]
pub struct Guest {
    pub vmid: u32,
    pub kind: GuestKind,
    pub node: String,
    /// Current config (without `digest`).
    pub config: BTreeMap<String, Value>,
    /// Pending changes of a running VM (`None` = pending delete).
    pub pending: BTreeMap<String, Option<Value>>,
    pub digest: String,
    pub run: Run,
    pub agent_channel: AgentChannel,
    pub agent: AgentSeed,
    /// Addresses the guest reports per NIC index (`net<i>`).
    pub addresses: BTreeMap<usize, Vec<String>>,
    pub extra_interfaces: Vec<IfaceSeed>,
    pub ha: bool,
    pub pool: Option<String>,
    pub shutdown: ShutdownBehaviour,
    /// A task holds the config lock until then.
    pub busy_until: Option<Duration>,
    /// What `/cluster/resources` showed before the last run-state change.
    pub previous_resource_status: String,
    pub status_changed_at: Duration,
    pub maxmem: u64,
    pub maxdisk: u64,
    pub cpus: u32,
}

impl Guest {
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            GuestKind::Qemu => "qemu",
            GuestKind::Lxc => "lxc",
        }
    }

    pub fn is_vm(&self) -> bool {
        self.kind == GuestKind::Qemu
    }

    pub fn is_running(&self) -> bool {
        matches!(self.run, Run::Running { .. })
    }

    /// QEMU state, `stopped` when not running.
    pub fn qmpstatus(&self) -> &str {
        match &self.run {
            Run::Stopped => "stopped",
            Run::Running { qmp, .. } => qmp,
        }
    }

    /// `status` of `/cluster/resources`: QMP state for VMs.
    pub fn resource_status(&self) -> String {
        match (&self.run, self.kind) {
            (Run::Stopped, _) => "stopped".into(),
            (Run::Running { .. }, GuestKind::Lxc) => "running".into(),
            (Run::Running { qmp, .. }, GuestKind::Qemu) => qmp.clone(),
        }
    }

    pub fn uptime(&self, now: Duration) -> u64 {
        match &self.run {
            Run::Stopped => 0,
            Run::Running { since, .. } => now.saturating_sub(*since).as_secs(),
        }
    }

    pub fn lock(&self) -> Option<String> {
        self.config
            .get("lock")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    pub fn is_template(&self) -> bool {
        self.config.get("template").is_some_and(|v| v == &json!(1))
    }

    /// `name` (VM) or `hostname` (CT), with the defaults lists show.
    pub fn display_name(&self) -> String {
        let key = if self.is_vm() { "name" } else { "hostname" };
        match self.config.get(key).and_then(Value::as_str) {
            Some(n) => n.to_string(),
            None if self.is_vm() => format!("VM {}", self.vmid),
            None => format!("CT{}", self.vmid),
        }
    }

    pub fn tags(&self) -> Option<String> {
        self.config
            .get("tags")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// The config with pending changes applied (what GET config shows).
    pub fn config_with_pending(&self) -> BTreeMap<String, Value> {
        let mut c = self.config.clone();
        for (k, v) in &self.pending {
            match v {
                Some(v) => c.insert(k.clone(), v.clone()),
                None => c.remove(k),
            };
        }
        c
    }

    /// Recompute the digest from the stored content (config + pending),
    /// like the SHA-1 of the config file a real node reports.
    pub fn update_digest(&mut self) {
        let text = serde_json::to_string(&(&self.config, &self.pending)).unwrap_or_default();
        let mut h = Sha256::new();
        h.update(self.vmid.to_be_bytes());
        h.update(text.as_bytes());
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        self.digest = hex[..40].to_string();
    }

    /// Apply pending changes (done at VM start).
    pub fn apply_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.config = self.config_with_pending();
        self.pending.clear();
        self.update_digest();
    }

    /// Path of the config file in error texts.
    pub fn conf_path(kind: GuestKind, node: &str, vmid: u32) -> String {
        match kind {
            GuestKind::Qemu => format!("nodes/{node}/qemu-server/{vmid}.conf"),
            GuestKind::Lxc => format!("nodes/{node}/lxc/{vmid}.conf"),
        }
    }

    pub fn missing_config(kind: GuestKind, node: &str, vmid: u32) -> String {
        format!(
            "Configuration file '{}' does not exist",
            Guest::conf_path(kind, node, vmid)
        )
    }

    /// The agent channel the current config would give a freshly started VM.
    pub fn configured_channel(&self) -> AgentChannel {
        match self.config.get("agent") {
            None => AgentChannel::None,
            Some(v) if values::agent_enabled(&value_text(v)) => AgentChannel::Enabled,
            Some(_) => AgentChannel::Disabled,
        }
    }

    pub fn from_seed(seed: &GuestSeed, now: Duration) -> Guest {
        let mut config = BTreeMap::new();
        let vmid = seed.vmid;
        let mut addresses = BTreeMap::new();
        match seed.kind {
            GuestKind::Qemu => {
                if let Some(n) = &seed.name {
                    config.insert("name".into(), json!(n));
                }
                config.insert("memory".into(), json!(seed.memory_mib.to_string()));
                config.insert("cores".into(), json!(seed.cores));
                config.insert("sockets".into(), json!(1));
                config.insert("numa".into(), json!(0));
                config.insert("ostype".into(), json!("l26"));
                config.insert("cpu".into(), json!("x86-64-v2-AES"));
                config.insert("scsihw".into(), json!("virtio-scsi-single"));
                config.insert(
                    "scsi0".into(),
                    json!(format!(
                        "local-lvm:vm-{vmid}-disk-0,iothread=1,size={}G",
                        seed.disk_gib
                    )),
                );
                config.insert("boot".into(), json!("order=scsi0;net0"));
                config.insert(
                    "smbios1".into(),
                    json!(format!("uuid={}", pseudo_uuid(u64::from(vmid) * 7 + 1))),
                );
                config.insert(
                    "vmgenid".into(),
                    json!(pseudo_uuid(u64::from(vmid) * 7 + 2)),
                );
                config.insert("meta".into(), json!("creation-qemu=9.2.0,ctime=1735689600"));
                if let Some(a) = &seed.agent {
                    config.insert("agent".into(), json!(a));
                }
            }
            GuestKind::Lxc => {
                if let Some(n) = &seed.name {
                    config.insert("hostname".into(), json!(n));
                }
                config.insert("arch".into(), json!("amd64"));
                config.insert("cores".into(), json!(seed.cores));
                config.insert("memory".into(), json!(seed.memory_mib));
                config.insert("swap".into(), json!(512));
                config.insert("ostype".into(), json!("debian"));
                config.insert(
                    "rootfs".into(),
                    json!(format!(
                        "local-lvm:vm-{vmid}-disk-0,size={}G",
                        seed.disk_gib
                    )),
                );
                config.insert("unprivileged".into(), json!(1));
            }
        }
        for (i, net) in seed.nets.iter().enumerate() {
            let mac = net.mac.clone().unwrap_or_else(|| seeded_mac(vmid, i));
            let value = match seed.kind {
                GuestKind::Qemu => values::vm_net_string(&net.model, &mac, net),
                GuestKind::Lxc => values::ct_net_string(i, &mac, net),
            };
            config.insert(format!("net{i}"), json!(value));
            addresses.insert(i, net.addresses.clone());
        }
        if !seed.tags.is_empty() {
            config.insert("tags".into(), json!(seed.tags.join(";")));
        }
        if let Some(lock) = &seed.lock {
            config.insert("lock".into(), json!(lock));
        }
        if seed.template {
            config.insert("template".into(), json!(1));
        }
        for (k, v) in &seed.extra_config {
            config.insert(k.clone(), v.clone());
        }
        if let Some(d) = &seed.description
            && let DescriptionChange::Set(s) = values::store_description(seed.kind, d)
        {
            config.insert("description".into(), json!(s));
        }
        let run = match seed.status {
            SeedStatus::Stopped => Run::Stopped,
            SeedStatus::Running => Run::Running {
                qmp: "running".into(),
                since: Duration::ZERO,
            },
            SeedStatus::Paused => Run::Running {
                qmp: "paused".into(),
                since: Duration::ZERO,
            },
        };
        let mut g = Guest {
            vmid,
            kind: seed.kind,
            node: seed.node.clone(),
            config,
            pending: BTreeMap::new(),
            digest: String::new(),
            run,
            agent_channel: AgentChannel::None,
            agent: seed.guest_agent.clone(),
            addresses,
            extra_interfaces: seed.extra_interfaces.clone(),
            ha: seed.ha,
            pool: seed.pool.clone(),
            shutdown: seed.shutdown,
            busy_until: None,
            previous_resource_status: String::new(),
            status_changed_at: now,
            maxmem: seed.memory_mib * 1024 * 1024,
            maxdisk: seed.disk_gib * 1024 * 1024 * 1024,
            cpus: seed.cores,
        };
        g.agent_channel = g.configured_channel();
        g.previous_resource_status = g.resource_status();
        g.update_digest();
        g
    }
}

/// A config value as text (`1`, `enabled=1`).
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Deterministic `BC:24:11:xx:yy:zz` for seeded NICs.
pub fn seeded_mac(vmid: u32, index: usize) -> String {
    let v = (u64::from(vmid) << 5 | index as u64).wrapping_mul(0x9E37_79B9) & 0xFF_FFFF;
    format!(
        "BC:24:11:{:02X}:{:02X}:{:02X}",
        (v >> 16) & 0xFF,
        (v >> 8) & 0xFF,
        v & 0xFF
    )
}

fn pseudo_uuid(n: u64) -> String {
    let mut h = Sha256::new();
    h.update(n.to_be_bytes());
    let b: Vec<u8> = h.finalize().to_vec();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}
