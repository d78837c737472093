//! Typed Proxmox answers. Parsing is lenient where real servers vary: unknown
//! fields are ignored, numbers may arrive as strings, booleans as 0/1.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// QEMU VM or LXC container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestKind {
    Qemu,
    Lxc,
}

impl GuestKind {
    /// The path segment (`qemu` / `lxc`).
    pub fn as_str(self) -> &'static str {
        match self {
            GuestKind::Qemu => "qemu",
            GuestKind::Lxc => "lxc",
        }
    }
}

impl fmt::Display for GuestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GuestKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "qemu" => Ok(GuestKind::Qemu),
            "lxc" => Ok(GuestKind::Lxc),
            other => Err(format!("unknown guest type '{other}'")),
        }
    }
}

impl<'de> Deserialize<'de> for GuestKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A MAC address; compares case-insensitively by construction (bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 6];
        let mut parts = s.trim().split([':', '-']);
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(|| format!("invalid MAC '{s}'"))?;
            if part.len() != 2 {
                return Err(format!("invalid MAC '{s}'"));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| format!("invalid MAC '{s}'"))?;
        }
        if parts.next().is_some() {
            return Err(format!("invalid MAC '{s}'"));
        }
        Ok(MacAddr(out))
    }
}

/// Upper-case with colons, as Proxmox writes generated MACs.
impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02X}:{:02X}:{:02X}:{:02X}:{:02X}:{:02X}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

// ---------------------------------------------------------------------------
// Lenient field decoders.

/// Integer from a JSON number or a numeric string.
pub(crate) fn lenient_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Boolean from 0/1, "0"/"1", JSON booleans, or on/off/yes/no/true/false.
pub(crate) fn lenient_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => parse_bool_word(s),
        _ => None,
    }
}

fn parse_bool_word(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Some(true),
        "0" | "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

/// String from a JSON string or a number.
pub(crate) fn lenient_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(u8::from(*b).to_string()),
        _ => None,
    }
}

fn de_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(lenient_u64))
}

fn de_vmid<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = Value::deserialize(d)?;
    lenient_u64(&v)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| serde::de::Error::custom(format!("expected a VMID, got {v}")))
}

fn de_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(lenient_bool)
        .unwrap_or(false))
}

fn de_opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(lenient_bool))
}

fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(lenient_string))
}

fn de_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(lenient_string)
        .unwrap_or_default())
}

fn split_tags(tags: Option<&str>) -> Vec<String> {
    tags.unwrap_or("")
        .split([';', ',', ' '])
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------
// Cluster-level answers.

/// `GET /version`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Version {
    #[serde(deserialize_with = "de_string")]
    pub version: String,
    #[serde(default, deserialize_with = "de_string")]
    pub release: String,
    #[serde(default, deserialize_with = "de_string")]
    pub repoid: String,
}

impl Version {
    /// Major release (8, 9 …), from `release` or else `version`.
    pub fn major(&self) -> Option<u32> {
        let source = if self.release.is_empty() {
            &self.version
        } else {
            &self.release
        };
        source.split('.').next()?.trim().parse().ok()
    }
}

/// One guest of `GET /cluster/resources?type=vm`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ClusterResource {
    #[serde(default, deserialize_with = "de_string")]
    pub id: String,
    #[serde(rename = "type")]
    pub kind: GuestKind,
    #[serde(deserialize_with = "de_vmid")]
    pub vmid: u32,
    #[serde(deserialize_with = "de_string")]
    pub node: String,
    /// Absent when the node has no fresh statistics.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub name: Option<String>,
    /// `running`, `stopped`, `paused`, … or `unknown` (stale node).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub template: Option<bool>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub tags: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub lock: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub pool: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub hastate: Option<String>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub uptime: Option<u64>,
}

impl ClusterResource {
    pub fn tag_list(&self) -> Vec<String> {
        split_tags(self.tags.as_deref())
    }

    /// True when the node had no fresh statistics (offline for a while).
    pub fn is_stale(&self) -> bool {
        self.status.as_deref().is_none_or(|s| s == "unknown")
    }
}

/// One entry of `GET /nodes`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct NodeInfo {
    #[serde(deserialize_with = "de_string")]
    pub node: String,
    /// `online`, `offline` or `unknown`.
    #[serde(default, deserialize_with = "de_string")]
    pub status: String,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub ssl_fingerprint: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub level: Option<String>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub uptime: Option<u64>,
}

impl NodeInfo {
    pub fn is_online(&self) -> bool {
        self.status == "online"
    }
}

/// One entry of `GET /cluster/status` (a `cluster` or a `node` entry).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ClusterStatusEntry {
    #[serde(rename = "type", deserialize_with = "de_string")]
    pub kind: String,
    #[serde(default, deserialize_with = "de_string")]
    pub id: String,
    #[serde(default, deserialize_with = "de_string")]
    pub name: String,
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub quorate: Option<bool>,
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub online: Option<bool>,
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub local: Option<bool>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub nodeid: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub nodes: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub ip: Option<String>,
}

/// `GET /cluster/status` summarised.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterStatus {
    pub entries: Vec<ClusterStatusEntry>,
}

impl ClusterStatus {
    /// Cluster name, `None` for a standalone node.
    pub fn cluster_name(&self) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.kind == "cluster")
            .map(|e| e.name.as_str())
    }

    /// Quorate: the cluster entry's flag; a standalone node is always quorate.
    pub fn quorate(&self) -> bool {
        match self.entries.iter().find(|e| e.kind == "cluster") {
            Some(cluster) => cluster.quorate.unwrap_or(false),
            None => true,
        }
    }

    pub fn nodes(&self) -> impl Iterator<Item = &ClusterStatusEntry> {
        self.entries.iter().filter(|e| e.kind == "node")
    }
}

// ---------------------------------------------------------------------------
// Guest configuration.

/// The `agent` config option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentSetting {
    /// No `agent` key: agent calls fail with "No QEMU guest agent configured".
    Absent,
    Disabled,
    Enabled,
}

impl AgentSetting {
    /// Parses `1`, `0`, `enabled=1,fstrim_cloned_disks=1`, `1,type=virtio` …
    pub fn parse(value: Option<&Value>) -> AgentSetting {
        let Some(value) = value else {
            return AgentSetting::Absent;
        };
        let text = match lenient_string(value) {
            Some(t) => t,
            None => return AgentSetting::Disabled,
        };
        let mut enabled = None;
        for part in text.split(',') {
            let part = part.trim();
            match part.split_once('=') {
                Some(("enabled", v)) => enabled = parse_bool_word(v),
                Some(_) => {}
                None if enabled.is_none() => enabled = parse_bool_word(part),
                None => {}
            }
        }
        if enabled == Some(true) {
            AgentSetting::Enabled
        } else {
            AgentSetting::Disabled
        }
    }
}

/// One `netX` entry of a guest config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDevice {
    /// X of `netX`.
    pub index: u32,
    pub mac: Option<MacAddr>,
    /// VM NIC model (`virtio`, `e1000` …); `None` for containers.
    pub model: Option<String>,
    pub bridge: Option<String>,
    /// Interface name inside a container (`name=eth0`).
    pub name: Option<String>,
    /// Static container address (`ip=192.0.2.50/24`, `dhcp`, `manual`).
    pub ip: Option<String>,
}

const VM_NIC_MODELS: &[&str] = &[
    "virtio",
    "e1000",
    "e1000e",
    "e1000-82540em",
    "e1000-82544gc",
    "e1000-82545em",
    "rtl8139",
    "vmxnet3",
    "i82551",
    "i82557b",
    "i82559er",
    "ne2k_isa",
    "ne2k_pci",
    "pcnet",
];

impl NetDevice {
    /// Parses a VM (`virtio=BC:…,bridge=vmbr0`, `model=virtio,macaddr=…`) or
    /// CT (`name=eth0,hwaddr=BC:…,ip=…`) property string.
    pub fn parse(index: u32, kind: GuestKind, value: &str) -> NetDevice {
        let mut dev = NetDevice {
            index,
            mac: None,
            model: None,
            bridge: None,
            name: None,
            ip: None,
        };
        for (i, part) in value.split(',').enumerate() {
            let part = part.trim();
            let (key, val) = match part.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim()),
                None => {
                    // A bare first value is the VM model without a MAC.
                    if i == 0 && kind == GuestKind::Qemu && !part.is_empty() {
                        dev.model = Some(part.to_string());
                    }
                    continue;
                }
            };
            match key {
                "macaddr" | "hwaddr" => dev.mac = val.parse().ok(),
                "model" => dev.model = Some(val.to_string()),
                "bridge" => dev.bridge = Some(val.to_string()),
                "name" if kind == GuestKind::Lxc => dev.name = Some(val.to_string()),
                "ip" if kind == GuestKind::Lxc => dev.ip = Some(val.to_string()),
                model
                    if kind == GuestKind::Qemu
                        && (i == 0 || VM_NIC_MODELS.contains(&model))
                        && dev.model.is_none() =>
                {
                    dev.model = Some(model.to_string());
                    dev.mac = val.parse().ok();
                }
                _ => {}
            }
        }
        dev
    }
}

/// A guest's configuration as the daemon needs it (pending changes applied,
/// as `GET …/config` returns it). `Debug` leaves the notes out: they may hold
/// plaintext credentials.
#[derive(Clone, PartialEq)]
pub struct GuestConfig {
    pub kind: GuestKind,
    /// 40-hex digest for optimistic concurrency on writes.
    pub digest: String,
    /// VM `name` or CT `hostname`.
    pub name: Option<String>,
    /// `description`, absent when empty.
    pub notes: Option<String>,
    pub nets: Vec<NetDevice>,
    pub agent: AgentSetting,
    pub template: bool,
    pub lock: Option<String>,
    pub tags: Vec<String>,
    /// Memory in MiB (`2048`, `"2048"` or `"current=2048"`).
    pub memory_mib: Option<u64>,
    pub onboot: bool,
    /// All keys as returned, for anything not modelled above.
    pub raw: Map<String, Value>,
}

impl fmt::Debug for GuestConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuestConfig")
            .field("kind", &self.kind)
            .field("digest", &self.digest)
            .field("name", &self.name)
            .field("notes", &self.notes.as_ref().map(|_| "***"))
            .field("nets", &self.nets)
            .field("agent", &self.agent)
            .field("template", &self.template)
            .field("lock", &self.lock)
            .field("tags", &self.tags)
            .field("memory_mib", &self.memory_mib)
            .field("onboot", &self.onboot)
            .field("raw_keys", &self.raw.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Fields whose wrong type must fail the read: reading them as absent would
/// make notes look empty (and their connections look removed) or a write go
/// out without its digest guard.
const STRING_FIELDS: &[&str] = &["description", "name", "hostname", "lock", "tags"];

impl GuestConfig {
    /// Decodes a config answer. A config without a `digest`, or with a
    /// non-string notes/name/lock/tags field, is not a config: the read
    /// failed (the caller treats the cluster as incompletely observed).
    pub fn from_map(kind: GuestKind, raw: Map<String, Value>) -> Result<GuestConfig, String> {
        match raw.get("digest") {
            Some(Value::String(d)) if !d.trim().is_empty() => {}
            Some(_) => return Err("`digest` is not a non-empty string".to_owned()),
            None => return Err("no `digest` in the config".to_owned()),
        }
        for key in STRING_FIELDS {
            if raw.get(*key).is_some_and(|v| !v.is_string()) {
                return Err(format!("`{key}` is not a string"));
            }
        }
        Ok(Self::from_checked_map(kind, raw))
    }

    fn from_checked_map(kind: GuestKind, raw: Map<String, Value>) -> GuestConfig {
        let text = |key: &str| raw.get(key).and_then(lenient_string);
        let mut nets: Vec<NetDevice> = raw
            .iter()
            .filter_map(|(key, value)| {
                let index: u32 = key.strip_prefix("net")?.parse().ok()?;
                Some(NetDevice::parse(index, kind, &lenient_string(value)?))
            })
            .collect();
        nets.sort_by_key(|n| n.index);
        let memory_mib = raw.get("memory").and_then(|v| {
            lenient_u64(v).or_else(|| {
                let s = lenient_string(v)?;
                s.split(',')
                    .find_map(|p| p.trim().strip_prefix("current=").map(str::to_string))
                    .or_else(|| s.split(',').next().map(str::to_string))?
                    .parse()
                    .ok()
            })
        });
        GuestConfig {
            kind,
            digest: text("digest").unwrap_or_default(),
            name: match kind {
                GuestKind::Qemu => text("name"),
                GuestKind::Lxc => text("hostname"),
            },
            notes: text("description"),
            nets,
            agent: match kind {
                GuestKind::Qemu => AgentSetting::parse(raw.get("agent")),
                GuestKind::Lxc => AgentSetting::Absent,
            },
            template: raw.get("template").and_then(lenient_bool).unwrap_or(false),
            lock: text("lock"),
            tags: split_tags(text("tags").as_deref()),
            memory_mib,
            onboot: raw.get("onboot").and_then(lenient_bool).unwrap_or(false),
            raw,
        }
    }

    /// MACs of all NICs, for matching guest interfaces.
    pub fn macs(&self) -> Vec<MacAddr> {
        self.nets.iter().filter_map(|n| n.mac).collect()
    }

    /// A container's static IPv4 in `net0` (`ip=192.0.2.50/24`); `None`
    /// for `dhcp`, `manual`, VMs and anything unparsable.
    pub fn static_ipv4(&self) -> Option<std::net::Ipv4Addr> {
        let net0 = self.nets.iter().find(|n| n.index == 0)?;
        let ip = net0.ip.as_deref()?;
        ip.split_once('/').map_or(ip, |(a, _)| a).parse().ok()
    }
}

/// `GET …/status/current`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct GuestStatus {
    /// `running` or `stopped`.
    #[serde(default, deserialize_with = "de_string")]
    pub status: String,
    /// QEMU run state (`running`, `paused`, …); VMs only.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub qmpstatus: Option<String>,
    /// Present (1) only when the config enables the agent.
    #[serde(default, deserialize_with = "de_bool")]
    pub agent: bool,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub lock: Option<String>,
    #[serde(default, deserialize_with = "de_bool")]
    pub template: bool,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub uptime: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub pid: Option<u64>,
}

impl GuestStatus {
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }

    /// Running and not paused/suspended (QEMU state), i.e. able to answer.
    pub fn is_active(&self) -> bool {
        self.is_running() && self.qmpstatus.as_deref().is_none_or(|q| q == "running")
    }
}

// ---------------------------------------------------------------------------
// Guest interfaces (QEMU agent and LXC).

/// One address of a guest interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestAddress {
    pub ip: IpAddr,
    pub prefix: Option<u8>,
}

/// One interface inside a guest, from the agent or the container kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestInterface {
    pub name: String,
    pub mac: Option<MacAddr>,
    pub addresses: Vec<GuestAddress>,
}

impl GuestInterface {
    pub fn ipv4(&self) -> impl Iterator<Item = &GuestAddress> {
        self.addresses.iter().filter(|a| a.ip.is_ipv4())
    }

    /// Parses one agent or CT interface object; `None` without a `name`.
    pub(crate) fn from_value(v: &Value) -> Option<GuestInterface> {
        let obj = v.as_object()?;
        let name = obj.get("name").and_then(lenient_string)?;
        let mac = ["hardware-address", "hwaddr"]
            .iter()
            .find_map(|k| obj.get(*k).and_then(Value::as_str))
            .and_then(|s| s.parse().ok());
        let mut addresses: Vec<GuestAddress> = obj
            .get("ip-addresses")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(parse_address_entry).collect())
            .unwrap_or_default();
        if addresses.is_empty() {
            // PVE 8.1–8.3 containers: only the deprecated `inet`/`inet6` fields.
            addresses = ["inet", "inet6"]
                .iter()
                .filter_map(|k| obj.get(*k).and_then(Value::as_str))
                .filter_map(parse_cidr)
                .collect();
        }
        Some(GuestInterface {
            name,
            mac,
            addresses,
        })
    }
}

fn parse_address_entry(v: &Value) -> Option<GuestAddress> {
    let obj = v.as_object()?;
    let text = obj.get("ip-address").and_then(Value::as_str)?;
    // Windows agents add a `%scope` suffix to link-local IPv6 addresses.
    let bare = text.split('%').next().unwrap_or(text);
    let ip: IpAddr = bare.trim().parse().ok()?;
    let prefix = obj
        .get("prefix")
        .and_then(lenient_u64)
        .and_then(|p| u8::try_from(p).ok());
    Some(GuestAddress { ip, prefix })
}

fn parse_cidr(text: &str) -> Option<GuestAddress> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, p.parse().ok()),
        None => (text, None),
    };
    Some(GuestAddress {
        ip: addr.split('%').next()?.trim().parse().ok()?,
        prefix,
    })
}

// ---------------------------------------------------------------------------
// Tasks.

/// `GET /nodes/N/tasks/U/status`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TaskStatus {
    #[serde(default, deserialize_with = "de_string")]
    pub upid: String,
    #[serde(default, deserialize_with = "de_string")]
    pub node: String,
    /// `running` or `stopped`.
    #[serde(default, deserialize_with = "de_string")]
    pub status: String,
    /// `OK`, `WARNINGS: n` or the error text; only once stopped.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub exitstatus: Option<String>,
    #[serde(rename = "type", default, deserialize_with = "de_string")]
    pub kind: String,
    #[serde(default, deserialize_with = "de_string")]
    pub id: String,
    #[serde(default, deserialize_with = "de_string")]
    pub user: String,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub tokenid: Option<String>,
}

impl TaskStatus {
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }

    /// Finished with `OK` or `WARNINGS: n`.
    pub fn succeeded(&self) -> bool {
        !self.is_running()
            && self
                .exitstatus
                .as_deref()
                .is_some_and(|e| e == "OK" || e.starts_with("WARNINGS"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mac_parses_any_case_and_compares_equal() {
        let upper: MacAddr = "BC:24:11:5A:3C:01".parse().unwrap();
        let lower: MacAddr = "bc:24:11:5a:3c:01".parse().unwrap();
        assert_eq!(upper, lower);
        assert_eq!(upper.to_string(), "BC:24:11:5A:3C:01");
        assert!("BC:24:11:5A:3C".parse::<MacAddr>().is_err());
        assert!("BC:24:11:5A:3C:01:02".parse::<MacAddr>().is_err());
        assert!("BC:24:11:5A:3C:0G".parse::<MacAddr>().is_err());
        assert!("00:00:00:00:00:00".parse::<MacAddr>().unwrap().is_zero());
    }

    #[test]
    fn vm_net_strings() {
        let d = NetDevice::parse(
            0,
            GuestKind::Qemu,
            "virtio=BC:24:11:5A:3C:01,bridge=vmbr0,firewall=1",
        );
        assert_eq!(d.model.as_deref(), Some("virtio"));
        assert_eq!(d.mac, Some("bc:24:11:5a:3c:01".parse().unwrap()));
        assert_eq!(d.bridge.as_deref(), Some("vmbr0"));
        // A writer-supplied lower-case MAC is kept as given.
        let d = NetDevice::parse(
            1,
            GuestKind::Qemu,
            "e1000=bc:24:11:5a:3c:02,bridge=vmbr1,tag=20",
        );
        assert_eq!(d.model.as_deref(), Some("e1000"));
        assert_eq!(d.mac.unwrap().to_string(), "BC:24:11:5A:3C:02");
        // Long form.
        let d = NetDevice::parse(
            2,
            GuestKind::Qemu,
            "model=vmxnet3,macaddr=BC:24:11:00:00:03,bridge=vmbr0",
        );
        assert_eq!(d.model.as_deref(), Some("vmxnet3"));
        assert_eq!(d.mac.unwrap().to_string(), "BC:24:11:00:00:03");
        // Model without MAC.
        let d = NetDevice::parse(3, GuestKind::Qemu, "virtio,bridge=vmbr0");
        assert_eq!(d.model.as_deref(), Some("virtio"));
        assert_eq!(d.mac, None);
    }

    #[test]
    fn ct_net_strings() {
        let d = NetDevice::parse(
            0,
            GuestKind::Lxc,
            "name=eth0,bridge=vmbr0,firewall=1,gw=192.0.2.1,hwaddr=BC:24:11:9F:3A:1C,ip=192.0.2.50/24,type=veth",
        );
        assert_eq!(d.name.as_deref(), Some("eth0"));
        assert_eq!(d.mac.unwrap().to_string(), "BC:24:11:9F:3A:1C");
        assert_eq!(d.ip.as_deref(), Some("192.0.2.50/24"));
        assert_eq!(d.model, None);
        let d = NetDevice::parse(
            1,
            GuestKind::Lxc,
            "name=eth1,bridge=vmbr1,hwaddr=bc:24:11:9f:3a:1d,ip=dhcp,type=veth",
        );
        assert_eq!(d.mac.unwrap().to_string(), "BC:24:11:9F:3A:1D");
        assert_eq!(d.ip.as_deref(), Some("dhcp"));
    }

    #[test]
    fn agent_setting_variants() {
        assert_eq!(AgentSetting::parse(None), AgentSetting::Absent);
        assert_eq!(
            AgentSetting::parse(Some(&json!("1"))),
            AgentSetting::Enabled
        );
        assert_eq!(AgentSetting::parse(Some(&json!(1))), AgentSetting::Enabled);
        assert_eq!(
            AgentSetting::parse(Some(&json!("0"))),
            AgentSetting::Disabled
        );
        assert_eq!(
            AgentSetting::parse(Some(&json!("enabled=1,fstrim_cloned_disks=1,type=virtio"))),
            AgentSetting::Enabled
        );
        assert_eq!(
            AgentSetting::parse(Some(&json!("1,type=isa"))),
            AgentSetting::Enabled
        );
        assert_eq!(
            AgentSetting::parse(Some(&json!("enabled=0,type=virtio"))),
            AgentSetting::Disabled
        );
        assert_eq!(
            AgentSetting::parse(Some(&json!("on"))),
            AgentSetting::Enabled
        );
    }

    #[test]
    fn vm_config_from_real_shape() {
        let raw = json!({
            "name":"web1","memory":"2048","cores":2,"sockets":1,
            "net0":"virtio=BC:24:11:5A:3C:01,bridge=vmbr0,firewall=1",
            "net1":"virtio=bc:24:11:5a:3c:02,bridge=vmbr1,tag=20",
            "net10":"e1000=BC:24:11:5A:3C:0A,bridge=vmbr0",
            "agent":"1","onboot":1,"tags":"prod;web",
            "description":"Owner: ops\nIP: managed by daemon",
            "digest":"5c1e9d7a0b6f4a0e2c3d4b5a69788796a5b4c3d2",
            "unknown-future-key": {"x": [1,2]}
        });
        let cfg = GuestConfig::from_map(GuestKind::Qemu, raw.as_object().unwrap().clone()).unwrap();
        assert_eq!(cfg.name.as_deref(), Some("web1"));
        assert_eq!(cfg.memory_mib, Some(2048));
        assert_eq!(cfg.agent, AgentSetting::Enabled);
        assert_eq!(cfg.tags, vec!["prod", "web"]);
        assert_eq!(
            cfg.notes.as_deref(),
            Some("Owner: ops\nIP: managed by daemon")
        );
        assert_eq!(cfg.digest, "5c1e9d7a0b6f4a0e2c3d4b5a69788796a5b4c3d2");
        assert_eq!(
            cfg.nets.iter().map(|n| n.index).collect::<Vec<_>>(),
            vec![0, 1, 10]
        );
        assert_eq!(cfg.macs().len(), 3);
        assert!(!cfg.template && cfg.onboot && cfg.lock.is_none());
    }

    #[test]
    fn config_debug_hides_notes() {
        let raw = json!({"description": "user:\"a\" pass:\"TopSecret\";", "digest": "d"});
        let cfg = GuestConfig::from_map(GuestKind::Qemu, raw.as_object().unwrap().clone()).unwrap();
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("TopSecret"), "{dbg}");
        assert!(dbg.contains("notes: Some(\"***\")"), "{dbg}");
    }

    #[test]
    fn config_memory_as_number_or_property_string() {
        for (mem, want) in [
            (json!(4096), 4096),
            (json!("current=1024"), 1024),
            (json!("512"), 512),
        ] {
            let raw = json!({"memory": mem, "digest": "x", "template": 1, "lock": "backup"});
            let cfg =
                GuestConfig::from_map(GuestKind::Lxc, raw.as_object().unwrap().clone()).unwrap();
            assert_eq!(cfg.memory_mib, Some(want));
            assert!(cfg.template);
            assert_eq!(cfg.lock.as_deref(), Some("backup"));
            assert_eq!(cfg.agent, AgentSetting::Absent);
        }
    }

    #[test]
    fn cluster_resource_tolerates_strings_and_missing_stats() {
        let r: ClusterResource = serde_json::from_value(json!({
            "id":"qemu/100","type":"qemu","vmid":"100","node":"pve1","status":"unknown","extra":1
        }))
        .unwrap();
        assert_eq!(r.vmid, 100);
        assert!(r.is_stale());
        assert_eq!(r.name, None);
        let r: ClusterResource = serde_json::from_value(json!({
            "id":"lxc/200","type":"lxc","vmid":200,"node":"pve2","name":"ct1","status":"stopped",
            "template":0,"maxmem":536870912,"tags":"a;b"
        }))
        .unwrap();
        assert_eq!(r.kind, GuestKind::Lxc);
        assert_eq!(r.template, Some(false));
        assert_eq!(r.tag_list(), vec!["a", "b"]);
    }

    #[test]
    fn version_major() {
        let v: Version =
            serde_json::from_value(json!({"version":"9.0.10","release":"9.0","repoid":"0123"}))
                .unwrap();
        assert_eq!(v.major(), Some(9));
        let v: Version = serde_json::from_value(json!({"version":"8.4.1"})).unwrap();
        assert_eq!(v.major(), Some(8));
    }

    #[test]
    fn cluster_status_quorum() {
        let entries: Vec<ClusterStatusEntry> = serde_json::from_value(json!([
            {"type":"cluster","id":"cluster","name":"lab","nodes":3,"version":5,"quorate":1},
            {"type":"node","id":"node/pve1","name":"pve1","nodeid":1,"ip":"192.0.2.11","local":1,"online":1,"level":""},
            {"type":"node","id":"node/pve2","name":"pve2","nodeid":2,"ip":"192.0.2.12","local":0,"online":0,"level":""}
        ]))
        .unwrap();
        let st = ClusterStatus { entries };
        assert!(st.quorate());
        assert_eq!(st.cluster_name(), Some("lab"));
        assert_eq!(st.nodes().filter(|n| n.online == Some(true)).count(), 1);
        let standalone = ClusterStatus {
            entries: serde_json::from_value(json!([{"type":"node","name":"pve1","online":1}]))
                .unwrap(),
        };
        assert!(standalone.quorate());
        assert_eq!(standalone.cluster_name(), None);
    }

    #[test]
    fn interface_shapes() {
        let agent = json!({"name":"eth0","hardware-address":"bc:24:11:5a:3c:01",
            "ip-addresses":[
                {"ip-address":"192.0.2.10","ip-address-type":"ipv4","prefix":24},
                {"ip-address":"fe80::1%11","ip-address-type":"ipv6","prefix":64}],
            "statistics":{"rx-bytes":1}});
        let i = GuestInterface::from_value(&agent).unwrap();
        assert_eq!(i.mac.unwrap().to_string(), "BC:24:11:5A:3C:01");
        assert_eq!(i.addresses.len(), 2);
        assert_eq!(i.ipv4().next().unwrap().prefix, Some(24));
        // No ip-addresses at all.
        let bare = GuestInterface::from_value(&json!({"name":"eth1"})).unwrap();
        assert!(bare.addresses.is_empty() && bare.mac.is_none());
        // Legacy CT shape: only inet/inet6; null hwaddr.
        let legacy = GuestInterface::from_value(
            &json!({"name":"eth0","hwaddr":null,"inet":"192.0.2.50/24","inet6":"2001:db8::50/64"}),
        )
        .unwrap();
        assert_eq!(legacy.addresses.len(), 2);
        assert_eq!(legacy.ipv4().next().unwrap().ip.to_string(), "192.0.2.50");
        assert!(GuestInterface::from_value(&json!({"hwaddr":"x"})).is_none());
    }

    #[test]
    fn task_status_results() {
        let t: TaskStatus = serde_json::from_value(json!({"upid":"UPID:pve1:1:2:3:qmstart:100:u@pve!t:","status":"stopped","exitstatus":"WARNINGS: 2","pid":5,"id":"100"})).unwrap();
        assert!(t.succeeded());
        let t: TaskStatus = serde_json::from_value(json!({"status":"running"})).unwrap();
        assert!(t.is_running() && !t.succeeded());
    }

    #[test]
    fn a_config_without_digest_or_with_mistyped_notes_is_a_failed_read() {
        let decode =
            |v: Value| GuestConfig::from_map(GuestKind::Qemu, v.as_object().unwrap().clone());
        assert_eq!(decode(json!({})).unwrap_err(), "no `digest` in the config");
        assert!(decode(json!({"digest": ""})).is_err());
        assert!(decode(json!({"digest": 5})).is_err());
        assert_eq!(
            decode(json!({"digest": "ab", "description": 7})).unwrap_err(),
            "`description` is not a string"
        );
        assert!(decode(json!({"digest": "ab", "name": {"x": 1}})).is_err());
        let ok = decode(json!({"digest": "ab", "description": "n", "memory": "2048"})).unwrap();
        assert_eq!(
            (ok.notes.as_deref(), ok.memory_mib),
            (Some("n"), Some(2048))
        );
    }
}
