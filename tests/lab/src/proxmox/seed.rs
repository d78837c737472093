//! The seed of one emulated cluster: what exists when the lab starts.
//! Deserialised from the lab's YAML seed file (unknown keys are errors) or
//! built in Rust with the builder methods.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One Proxmox VE cluster (or a standalone node).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSeed {
    /// Cluster name (`/cluster/status`), also the lab's key for it.
    pub name: String,
    /// pve-manager version, e.g. `9.0.10` or `8.4.1`. Decides privilege
    /// names (VM.Monitor vs VM.GuestAgent.*), 401 texts and error bodies.
    pub pve_version: String,
    /// A single node without a cluster (`/cluster/status` has no cluster entry).
    pub standalone: bool,
    pub nodes: Vec<NodeSeed>,
    pub guests: Vec<GuestSeed>,
    pub users: Vec<UserSeed>,
    /// API tokens; the first one is the lab's primary token.
    pub tokens: Vec<TokenSeed>,
    /// Custom roles (built-in roles always exist).
    pub roles: Vec<RoleSeed>,
    pub acls: Vec<AclSeed>,
    pub pools: Vec<PoolSeed>,
    pub options: ClusterOptions,
}

impl Default for ClusterSeed {
    fn default() -> Self {
        ClusterSeed {
            name: "lab".into(),
            pve_version: "9.0.10".into(),
            standalone: false,
            nodes: Vec::new(),
            guests: Vec::new(),
            users: Vec::new(),
            tokens: Vec::new(),
            roles: Vec::new(),
            acls: Vec::new(),
            pools: Vec::new(),
            options: ClusterOptions::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSeed {
    pub name: String,
    /// `false`: down since long before the lab started (no fresh
    /// statistics: its guests show `unknown` at once). A node taken offline
    /// at run time keeps stale statistics for `stale_stats_secs` first.
    pub online: bool,
    /// Force the node's quorum view; `None` = majority of online nodes.
    pub quorate: Option<bool>,
    /// Address in `/cluster/status` and on `vmbr0` (default 192.0.2.11, .12, …).
    pub ip: Option<String>,
    pub maxcpu: u32,
    pub maxmem: u64,
    pub maxdisk: u64,
    /// Host interfaces for `/nodes/N/network`; default: vmbr0, vmbr1, eno1, eno2.
    pub network: Option<Vec<NodeIfaceSeed>>,
    /// Pending network changes (the top-level `changes` key).
    pub pending_network_changes: Option<String>,
}

impl Default for NodeSeed {
    fn default() -> Self {
        NodeSeed {
            name: "pve1".into(),
            online: true,
            quorate: None,
            ip: None,
            maxcpu: 16,
            maxmem: 67_308_810_240,
            maxdisk: 100_861_726_720,
            network: None,
            pending_network_changes: None,
        }
    }
}

/// One host interface as `/nodes/N/network` lists it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeIfaceSeed {
    pub iface: String,
    /// `bridge`, `eth`, `bond`, `vlan`, `OVSBridge`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// IPv4 `addr/prefix`, if static.
    pub cidr: Option<String>,
    pub gateway: Option<String>,
    pub bridge_ports: Option<String>,
    pub vlan_aware: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GuestKind {
    #[default]
    Qemu,
    Lxc,
}

/// Run state a guest is seeded (or set) with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SeedStatus {
    Running,
    #[default]
    Stopped,
    /// QEMU state `paused` (VMs only; `status` stays `running`).
    Paused,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuestSeed {
    pub vmid: u32,
    #[serde(rename = "type")]
    pub kind: GuestKind,
    /// VM `name` / CT `hostname`; `None` leaves the key unset.
    pub name: Option<String>,
    pub node: String,
    pub status: SeedStatus,
    pub template: bool,
    pub lock: Option<String>,
    /// Tags, `;`-separated in the config.
    pub tags: Vec<String>,
    pub pool: Option<String>,
    /// Notes as a human typed them; stored like the API would store them.
    pub description: Option<String>,
    pub nets: Vec<NetSeed>,
    /// The config `agent` value (`"1"`, `"0"`, `"enabled=1,type=virtio"`);
    /// `None` = key absent. VMs only.
    pub agent: Option<String>,
    /// Guest-agent behaviour inside the VM.
    pub guest_agent: AgentSeed,
    /// HA-managed (`hastate` = `started`/`stopped`).
    pub ha: bool,
    pub memory_mib: u64,
    pub cores: u32,
    pub disk_gib: u64,
    /// What the guest does on an ACPI shutdown request.
    pub shutdown: ShutdownBehaviour,
    /// Extra config keys, verbatim (`onboot: 1`, `ostype: l26`, …).
    pub extra_config: BTreeMap<String, serde_json::Value>,
    /// Extra interfaces the guest reports (docker0, tun0, …) after its NICs.
    pub extra_interfaces: Vec<IfaceSeed>,
}

impl Default for GuestSeed {
    fn default() -> Self {
        GuestSeed {
            vmid: 100,
            kind: GuestKind::Qemu,
            name: None,
            node: "pve1".into(),
            status: SeedStatus::Stopped,
            template: false,
            lock: None,
            tags: Vec::new(),
            pool: None,
            description: None,
            nets: Vec::new(),
            agent: None,
            guest_agent: AgentSeed::default(),
            ha: false,
            memory_mib: 2048,
            cores: 2,
            disk_gib: 32,
            shutdown: ShutdownBehaviour::Clean,
            extra_config: BTreeMap::new(),
            extra_interfaces: Vec::new(),
        }
    }
}

/// One guest NIC: what the config says and what the guest reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetSeed {
    /// MAC as stored in the config (default: generated `BC:24:11:…`).
    pub mac: Option<String>,
    /// VM NIC model (`virtio`, `e1000`, …); ignored for CTs.
    pub model: String,
    pub bridge: String,
    pub firewall: bool,
    pub tag: Option<u32>,
    /// Addresses the guest actually has on this NIC (`addr/prefix`, IPv4 or
    /// IPv6), as the agent / the CT kernel reports them (DHCP included).
    pub addresses: Vec<String>,
    /// CT only: the `ip=` of the config (`dhcp`, `192.0.2.5/24`);
    /// default `dhcp`.
    pub config_ip: Option<String>,
    /// CT only: `gw=` of the config.
    pub gateway: Option<String>,
}

impl Default for NetSeed {
    fn default() -> Self {
        NetSeed {
            mac: None,
            model: "virtio".into(),
            bridge: "vmbr0".into(),
            firewall: true,
            tag: None,
            addresses: Vec::new(),
            config_ip: None,
            gateway: None,
        }
    }
}

/// An interface as the guest reports it (agent or CT kernel).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IfaceSeed {
    pub name: String,
    /// `None` for devices without a link-layer address (tun, WireGuard).
    pub mac: Option<String>,
    /// `addr/prefix` entries, IPv4 or IPv6.
    pub addresses: Vec<String>,
}

/// State of the QEMU guest agent process inside a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Answers ping and commands (after the boot delay).
    #[default]
    Up,
    /// Not running in the guest: pings time out (3 s).
    Down,
    /// Answers the ping, but commands time out (5 s).
    Hang,
    /// Answers `guest-network-get-interfaces` with a QGA error object.
    CommandError,
    /// Transport failure on the agent socket.
    TransportError,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSeed {
    pub state: AgentState,
    /// Virtual seconds after the VM starts before the agent answers.
    pub boot_delay_secs: f64,
    /// QGA error for `CommandError`.
    pub error_class: String,
    pub error_desc: String,
    /// Reason text for `TransportError`.
    pub transport_error: String,
    /// Report interfaces without `statistics` (older agents).
    pub no_statistics: bool,
    /// Replace the derived interface list entirely (lo + NICs + extras).
    pub interfaces: Option<Vec<IfaceSeed>>,
}

impl Default for AgentSeed {
    fn default() -> Self {
        AgentSeed {
            state: AgentState::Up,
            boot_delay_secs: 0.0,
            error_class: "CommandNotFound".into(),
            error_desc: "Command guest-network-get-interfaces has been disabled".into(),
            transport_error: "Connection reset by peer".into(),
            no_statistics: false,
            interfaces: None,
        }
    }
}

/// How a guest reacts to an ACPI / agent shutdown request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ShutdownBehaviour {
    /// Powers off after `tasks.shutdown_secs`.
    #[default]
    Clean,
    /// Ignores the request: the shutdown task times out.
    Ignore,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserSeed {
    /// `user@realm`.
    pub userid: String,
    pub enabled: bool,
    /// Epoch seconds, 0 = never.
    pub expire: u64,
    pub groups: Vec<String>,
}

impl Default for UserSeed {
    fn default() -> Self {
        UserSeed {
            userid: "root@pam".into(),
            enabled: true,
            expire: 0,
            groups: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSeed {
    /// Owner `user@realm` (must be a seeded user, or `root@pam`).
    pub userid: String,
    /// Token name (the part after `!`).
    pub name: String,
    /// The secret (a UUID).
    pub secret: String,
    pub privsep: bool,
    /// Epoch seconds, 0 = never.
    pub expire: u64,
}

impl Default for TokenSeed {
    fn default() -> Self {
        TokenSeed {
            userid: "root@pam".into(),
            name: "lab".into(),
            secret: "00000000-0000-4000-8000-000000000000".into(),
            privsep: true,
            expire: 0,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleSeed {
    pub name: String,
    /// Privilege names; names this PVE version does not know are ignored.
    pub privs: Vec<String>,
}

/// One ACL entry. Exactly one of `user`, `group`, `token` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AclSeed {
    pub path: String,
    pub role: String,
    pub user: Option<String>,
    pub group: Option<String>,
    /// Full token id `user@realm!name`.
    pub token: Option<String>,
    pub propagate: bool,
}

impl Default for AclSeed {
    fn default() -> Self {
        AclSeed {
            path: "/".into(),
            role: "NoAccess".into(),
            user: None,
            group: None,
            token: None,
            propagate: true,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolSeed {
    pub name: String,
    pub comment: Option<String>,
}

/// Shape of `/nodes/N/lxc/V/interfaces` entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LxcInterfacesShape {
    /// PVE ≥ 8.4: legacy fields plus `hardware-address` and `ip-addresses`.
    #[default]
    Full,
    /// PVE 8.1–8.3: only `name`, `hwaddr`, `inet`, `inet6`.
    Legacy,
}

/// Virtual durations of emulated tasks (seconds).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskDurations {
    pub start_secs: f64,
    pub shutdown_secs: f64,
    pub stop_secs: f64,
    /// `qmconfig` tasks (POST config).
    pub config_secs: f64,
    /// A failing task ends this long after it started.
    pub fail_secs: f64,
    /// HA tasks end OK after this…
    pub ha_task_secs: f64,
    /// …and the guest changes state this long after the HA task started.
    pub ha_apply_secs: f64,
    /// Shutdown timeout when the request gives none (and, for VMs, the
    /// `startup` option has no `down=`); real servers: 60 s.
    pub shutdown_timeout_secs: f64,
}

impl Default for TaskDurations {
    fn default() -> Self {
        TaskDurations {
            start_secs: 1.0,
            shutdown_secs: 2.0,
            stop_secs: 0.5,
            config_secs: 0.2,
            fail_secs: 0.1,
            ha_task_secs: 0.5,
            ha_apply_secs: 3.0,
            shutdown_timeout_secs: 60.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterOptions {
    /// Answer failed authentication only after `auth_failure_delay_secs`
    /// (real servers: 3 s). On by default; turn off for speed tests.
    pub auth_failure_delay: bool,
    pub auth_failure_delay_secs: f64,
    /// `true`: error bodies are `{"data":null}` (servers before January
    /// 2025); `false`: with `message`. `None`: decided by `pve_version`
    /// (legacy below 8.4).
    pub legacy_error_body: Option<bool>,
    /// `true`: the specific old 401 texts; `false`: `Authentication failed!`.
    /// `None`: decided by `pve_version` (new from 9.1.5 / 8.4.17).
    pub legacy_auth_texts: Option<bool>,
    /// `/cluster/resources` shows guest run states this many seconds late.
    pub resources_lag_secs: f64,
    /// After a node goes offline its guests keep stale values this long,
    /// then show `unknown`.
    pub stale_stats_secs: f64,
    /// Delay before a 595 for an offline node (real: up to 30 s).
    pub offline_proxy_delay_secs: f64,
    /// Reason phrase of the 595.
    pub offline_reason: String,
    pub tasks: TaskDurations,
    /// Agent ping timeout ("not running" answers take this long).
    pub agent_ping_timeout_secs: f64,
    /// Agent command timeout (hang answers take this long).
    pub agent_command_timeout_secs: f64,
    /// How long a config write waits for a config lock held by a task.
    pub config_lock_timeout_secs: f64,
    pub lxc_interfaces_shape: LxcInterfacesShape,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            auth_failure_delay: true,
            auth_failure_delay_secs: 3.0,
            legacy_error_body: None,
            legacy_auth_texts: None,
            resources_lag_secs: 0.0,
            stale_stats_secs: 300.0,
            offline_proxy_delay_secs: 0.0,
            offline_reason: "No route to host".into(),
            tasks: TaskDurations::default(),
            agent_ping_timeout_secs: 3.0,
            agent_command_timeout_secs: 5.0,
            config_lock_timeout_secs: 10.0,
            lxc_interfaces_shape: LxcInterfacesShape::Full,
        }
    }
}

// ---------------------------------------------------------------- builders

impl ClusterSeed {
    /// An empty cluster with this name (add nodes, guests, tokens).
    pub fn new(name: impl Into<String>) -> Self {
        ClusterSeed {
            name: name.into(),
            ..ClusterSeed::default()
        }
    }

    pub fn version(mut self, v: impl Into<String>) -> Self {
        self.pve_version = v.into();
        self
    }

    pub fn node(mut self, name: impl Into<String>) -> Self {
        self.nodes.push(NodeSeed {
            name: name.into(),
            ..NodeSeed::default()
        });
        self
    }

    pub fn offline_node(mut self, name: impl Into<String>) -> Self {
        self.nodes.push(NodeSeed {
            name: name.into(),
            online: false,
            ..NodeSeed::default()
        });
        self
    }

    pub fn guest(mut self, g: GuestSeed) -> Self {
        self.guests.push(g);
        self
    }

    pub fn user(mut self, userid: impl Into<String>) -> Self {
        self.users.push(UserSeed {
            userid: userid.into(),
            ..UserSeed::default()
        });
        self
    }

    pub fn token(mut self, t: TokenSeed) -> Self {
        self.tokens.push(t);
        self
    }

    pub fn role(mut self, name: &str, privs: &[&str]) -> Self {
        self.roles.push(RoleSeed {
            name: name.into(),
            privs: privs.iter().map(|p| p.to_string()).collect(),
        });
        self
    }

    /// ACL for a user (`user@realm`), token (`user@realm!name`) — told
    /// apart by the `!` — on `path` with `role`, propagating.
    pub fn acl(mut self, path: &str, subject: &str, role: &str) -> Self {
        let mut a = AclSeed {
            path: path.into(),
            role: role.into(),
            ..AclSeed::default()
        };
        if subject.contains('!') {
            a.token = Some(subject.into());
        } else {
            a.user = Some(subject.into());
        }
        self.acls.push(a);
        self
    }

    pub fn pool(mut self, name: &str) -> Self {
        self.pools.push(PoolSeed {
            name: name.into(),
            comment: None,
        });
        self
    }

    pub fn options(mut self, o: ClusterOptions) -> Self {
        self.options = o;
        self
    }

    /// Turn the 3 s delay of failed authentication on or off.
    pub fn auth_delay(mut self, on: bool) -> Self {
        self.options.auth_failure_delay = on;
        self
    }
}

impl GuestSeed {
    pub fn vm(vmid: u32, name: &str, node: &str) -> Self {
        GuestSeed {
            vmid,
            kind: GuestKind::Qemu,
            name: Some(name.into()),
            node: node.into(),
            ..GuestSeed::default()
        }
    }

    pub fn ct(vmid: u32, name: &str, node: &str) -> Self {
        GuestSeed {
            vmid,
            kind: GuestKind::Lxc,
            name: Some(name.into()),
            node: node.into(),
            ..GuestSeed::default()
        }
    }

    pub fn running(mut self) -> Self {
        self.status = SeedStatus::Running;
        self
    }

    pub fn status(mut self, s: SeedStatus) -> Self {
        self.status = s;
        self
    }

    pub fn notes(mut self, text: &str) -> Self {
        self.description = Some(text.into());
        self
    }

    pub fn agent(mut self, value: &str) -> Self {
        self.agent = Some(value.into());
        self
    }

    pub fn agent_state(mut self, state: AgentState) -> Self {
        self.guest_agent.state = state;
        self
    }

    /// A NIC with a MAC and the address the guest reports on it.
    pub fn nic(mut self, mac: &str, address: &str) -> Self {
        self.nets.push(NetSeed {
            mac: Some(mac.into()),
            addresses: if address.is_empty() {
                Vec::new()
            } else {
                vec![address.into()]
            },
            ..NetSeed::default()
        });
        self
    }

    pub fn template(mut self) -> Self {
        self.template = true;
        self
    }

    pub fn lock(mut self, lock: &str) -> Self {
        self.lock = Some(lock.into());
        self
    }

    pub fn tags(mut self, tags: &[&str]) -> Self {
        self.tags = tags.iter().map(|t| t.to_string()).collect();
        self
    }

    pub fn pool(mut self, pool: &str) -> Self {
        self.pool = Some(pool.into());
        self
    }

    pub fn ha(mut self) -> Self {
        self.ha = true;
        self
    }
}

impl TokenSeed {
    pub fn new(userid: &str, name: &str, secret: &str) -> Self {
        TokenSeed {
            userid: userid.into(),
            name: name.into(),
            secret: secret.into(),
            ..TokenSeed::default()
        }
    }

    pub fn privsep(mut self, on: bool) -> Self {
        self.privsep = on;
        self
    }

    pub fn full_id(&self) -> String {
        format!("{}!{}", self.userid, self.name)
    }
}
