//! The mutable state of one emulated cluster: nodes, guests, access
//! control, tasks and the timed events that finish them. Everything is advanced lazily: [`State::settle`] applies all
//! events due on the lab clock before a request or a test looks at the state.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::acl::Access;
use super::config;
pub use super::guest::{AgentChannel, Guest, Run, value_text};
use super::privs::PrivCatalog;
use super::seed::{ClusterOptions, ClusterSeed, GuestKind, NodeIfaceSeed};
use super::tasks::Task;
use super::version::PveVersion;

/// Behaviour switches derived from the seed and its version.
#[derive(Debug, Clone)]
pub struct Settings {
    pub cluster_name: String,
    pub standalone: bool,
    pub version: PveVersion,
    pub version_text: String,
    pub legacy_error_body: bool,
    pub legacy_auth_texts: bool,
    pub options: ClusterOptions,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub nodeid: u32,
    pub online: bool,
    /// Virtual time the node went offline (for stale statistics).
    pub offline_since: Option<Duration>,
    pub quorate_override: Option<bool>,
    pub ip: String,
    pub maxcpu: u32,
    pub maxmem: u64,
    pub maxdisk: u64,
    pub network: Vec<NodeIfaceSeed>,
    pub pending_network_changes: Option<String>,
    pub ssl_fingerprint: String,
}

/// A power transition recorded for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerEvent {
    pub vmid: u32,
    /// `started` or `stopped`.
    pub change: &'static str,
    /// What caused it (`qmstart`, `qmshutdown`, `test`, …).
    pub cause: String,
    pub at: Duration,
}

/// Power actions requested through the API, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PowerCounters {
    pub start: u64,
    pub shutdown: u64,
    pub stop: u64,
}

/// Something that happens at a virtual time.
#[derive(Debug, Clone)]
pub enum Event {
    /// The guest starts running (pending config applied).
    Start { vmid: u32, cause: String },
    /// The guest stops.
    Stop { vmid: u32, cause: String },
    /// Apply a config write of a `qmconfig` task.
    ApplyConfig {
        vmid: u32,
        write: config::ConfigWrite,
    },
    /// The task finishes with its predetermined outcome.
    FinishTask { upid: String },
    /// A power task got the config lock and runs now.
    DeferredPower(Box<super::power::DeferredPower>),
}

#[derive(Debug)]
struct Scheduled {
    at: Duration,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

pub struct State {
    pub settings: Settings,
    pub access: Access,
    pub nodes: Vec<Node>,
    pub guests: BTreeMap<u32, Guest>,
    pub tasks: HashMap<String, Task>,
    /// Task UPIDs in creation order.
    pub task_order: Vec<String>,
    events: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    pub next_pid: u32,
    pub power_log: Vec<PowerEvent>,
    pub counters: PowerCounters,
    /// Notes a "human" writes just before the next API config write.
    pub digest_races: HashMap<u32, String>,
    /// Successful config writes through the API, per guest.
    pub config_writes: HashMap<u32, u64>,
}

impl State {
    pub fn from_seed(seed: &ClusterSeed) -> State {
        let version = PveVersion::parse(&seed.pve_version);
        let catalog = PrivCatalog {
            major: version.major,
        };
        let settings = Settings {
            cluster_name: seed.name.clone(),
            standalone: seed.standalone,
            version,
            version_text: seed.pve_version.clone(),
            legacy_error_body: seed
                .options
                .legacy_error_body
                .unwrap_or(version.legacy_error_body()),
            legacy_auth_texts: seed
                .options
                .legacy_auth_texts
                .unwrap_or(version.legacy_auth_texts()),
            options: seed.options.clone(),
        };
        let nodes = seed
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| Node {
                name: n.name.clone(),
                nodeid: if seed.standalone { 0 } else { i as u32 + 1 },
                online: n.online,
                // Seeded offline nodes have been down for long: no fresh stats.
                offline_since: None,
                quorate_override: n.quorate,
                ip: n
                    .ip
                    .clone()
                    .unwrap_or_else(|| format!("192.0.2.{}", 11 + i)),
                maxcpu: n.maxcpu,
                maxmem: n.maxmem,
                maxdisk: n.maxdisk,
                network: n.network.clone().unwrap_or_else(|| default_network(i)),
                pending_network_changes: n.pending_network_changes.clone(),
                ssl_fingerprint: fake_fingerprint(&n.name),
            })
            .collect();
        let guests = seed
            .guests
            .iter()
            .map(|g| (g.vmid, Guest::from_seed(g, Duration::ZERO)))
            .collect();
        State {
            access: Access::from_seed(seed, catalog),
            settings,
            nodes,
            guests,
            tasks: HashMap::new(),
            task_order: Vec::new(),
            events: BinaryHeap::new(),
            seq: 0,
            next_pid: 0x0001_E240,
            power_log: Vec::new(),
            counters: PowerCounters::default(),
            digest_races: HashMap::new(),
            config_writes: HashMap::new(),
        }
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    /// Quorum as seen by `node`: its override, else a majority online.
    pub fn quorate(&self, node: &str) -> bool {
        let Some(n) = self.node(node) else {
            return false;
        };
        if let Some(q) = n.quorate_override {
            return q;
        }
        if !n.online {
            return false;
        }
        let online = self.nodes.iter().filter(|n| n.online).count();
        online * 2 > self.nodes.len()
    }

    /// The guest `vmid` if it lives on `node` and has this kind.
    pub fn guest_on(&self, node: &str, vmid: u32, kind: GuestKind) -> Option<&Guest> {
        self.guests
            .get(&vmid)
            .filter(|g| g.node == node && g.kind == kind)
    }

    pub fn schedule(&mut self, at: Duration, event: Event) {
        self.seq += 1;
        self.events.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            event,
        }));
    }

    /// Apply every event due at or before `now`, in time order.
    pub fn settle(&mut self, now: Duration) {
        while let Some(Reverse(top)) = self.events.peek() {
            if top.at > now {
                break;
            }
            let Reverse(s) = self.events.pop().expect("peeked");
            self.apply(s.at, s.event);
        }
    }

    fn apply(&mut self, at: Duration, event: Event) {
        match event {
            Event::Start { vmid, cause } => self.set_running(vmid, "running", at, &cause),
            Event::Stop { vmid, cause } => self.set_stopped(vmid, at, &cause),
            Event::ApplyConfig { vmid, write } => {
                if let Some(g) = self.guests.get_mut(&vmid) {
                    config::apply_write(g, &write);
                    *self.config_writes.entry(vmid).or_default() += 1;
                }
            }
            Event::DeferredPower(d) => super::power::run_deferred(self, at, *d),
            Event::FinishTask { upid } => {
                if let Some(t) = self.tasks.get_mut(&upid) {
                    t.finish();
                    let vmid = t.id.parse::<u32>().ok();
                    if let Some(g) = vmid.and_then(|v| self.guests.get_mut(&v))
                        && g.busy_until.is_some_and(|b| b <= at)
                    {
                        g.busy_until = None;
                    }
                }
            }
        }
    }

    /// Start `vmid` now (QEMU state `qmp`), applying pending changes.
    pub fn set_running(&mut self, vmid: u32, qmp: &str, at: Duration, cause: &str) {
        let Some(g) = self.guests.get_mut(&vmid) else {
            return;
        };
        let was_running = g.is_running();
        g.previous_resource_status = g.resource_status();
        g.status_changed_at = at;
        if !was_running {
            // Starting with a `suspended` lock resumes from hibernation.
            if g.lock().as_deref() == Some("suspended") {
                g.config.remove("lock");
                g.update_digest();
            }
            g.apply_pending();
            g.agent_channel = g.configured_channel();
            g.run = Run::Running {
                qmp: qmp.into(),
                since: at,
            };
            self.power_log.push(PowerEvent {
                vmid,
                change: "started",
                cause: cause.into(),
                at,
            });
        } else if let Run::Running { qmp: q, .. } = &mut g.run {
            *q = qmp.into();
        }
    }

    pub fn set_stopped(&mut self, vmid: u32, at: Duration, cause: &str) {
        let Some(g) = self.guests.get_mut(&vmid) else {
            return;
        };
        if !g.is_running() {
            return;
        }
        g.previous_resource_status = g.resource_status();
        g.status_changed_at = at;
        g.run = Run::Stopped;
        self.power_log.push(PowerEvent {
            vmid,
            change: "stopped",
            cause: cause.into(),
            at,
        });
    }
}

fn default_network(i: usize) -> Vec<NodeIfaceSeed> {
    vec![
        NodeIfaceSeed {
            iface: "vmbr0".into(),
            kind: "bridge".into(),
            cidr: Some(format!("192.0.2.{}/24", 11 + i)),
            gateway: Some("192.0.2.1".into()),
            bridge_ports: Some("eno1".into()),
            vlan_aware: false,
        },
        NodeIfaceSeed {
            iface: "vmbr1".into(),
            kind: "bridge".into(),
            cidr: None,
            gateway: None,
            bridge_ports: Some("eno2".into()),
            vlan_aware: true,
        },
        NodeIfaceSeed {
            iface: "eno1".into(),
            kind: "eth".into(),
            ..NodeIfaceSeed::default()
        },
        NodeIfaceSeed {
            iface: "eno2".into(),
            kind: "eth".into(),
            ..NodeIfaceSeed::default()
        },
    ]
}

fn fake_fingerprint(node: &str) -> String {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.finalize()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
