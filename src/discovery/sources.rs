//! The address sources: the QEMU guest agent, the container's interfaces,
//! the host's neighbour table, the state directory's cache and the active
//! probe. [`build`] lines them up in the configured order for one cluster.

use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use super::arp::NeighbourTable;
use super::probe::Prober;
use super::{AddressEvidence, AddressRules, AddressSource, EvidenceFuture, GuestFacts};
use super::{in_ranges, pick_address, usable};
use crate::config::{DiscoverySettings, SourceKind};
use crate::proxmox::{AgentSetting, ProxmoxClient, ProxmoxError};
use crate::reconcile::model::GuestKind;

pub const AGENT: &str = "agent";
pub const STATIC: &str = "static";
pub const CONTAINER: &str = "container";
pub const ARP: &str = "arp";
pub const CACHE: &str = "cache";
pub const PROBE: &str = "probe";

/// What every source of one daemon shares.
pub struct Shared {
    pub table: Arc<NeighbourTable>,
    pub prober: Option<Arc<Prober>>,
    pub exclude: Vec<String>,
    pub allowed: Vec<IpNet>,
    pub cache_ttl: Duration,
}

impl Shared {
    pub fn new(settings: &DiscoverySettings, allowed: &[IpNet]) -> Arc<Shared> {
        let prober = settings
            .probe
            .enabled
            .then(|| Arc::new(Prober::new(settings.probe.clone(), allowed.to_vec())));
        Arc::new(Shared {
            table: Arc::new(NeighbourTable::new(settings.arp_table.clone())),
            prober,
            exclude: settings.interface_exclude.clone(),
            allowed: allowed.to_vec(),
            cache_ttl: settings.cache_ttl,
        })
    }

    fn rules(&self) -> AddressRules<'_> {
        AddressRules {
            exclude: &self.exclude,
            allowed: &self.allowed,
        }
    }
}

/// The sources of one cluster in `order` (`host` is not a source: a block's
/// own address never reaches discovery).
pub fn build(
    order: &[SourceKind],
    client: &Arc<ProxmoxClient>,
    shared: &Arc<Shared>,
) -> Vec<Box<dyn AddressSource>> {
    order
        .iter()
        .filter_map(|kind| -> Option<Box<dyn AddressSource>> {
            let shared = shared.clone();
            Some(match kind {
                SourceKind::Host => return None,
                SourceKind::Agent => Box::new(Agent {
                    client: client.clone(),
                    shared,
                }),
                SourceKind::Static => Box::new(Static { shared }),
                SourceKind::Container => Box::new(Container {
                    client: client.clone(),
                    shared,
                }),
                SourceKind::Arp => Box::new(Neighbours { shared }),
                SourceKind::Cache => Box::new(Cache { shared }),
                SourceKind::Probe => Box::new(Probe { shared }),
            })
        })
        .collect()
}

fn describe(e: &ProxmoxError) -> String {
    format!("{} ({})", e, e.label())
}

/// A failed request: a guest fact (agent not running, …) is evidence; a
/// transport failure, server error or pause says nothing about the guest.
fn failed(e: &ProxmoxError) -> AddressEvidence {
    match e {
        ProxmoxError::Http { .. }
        | ProxmoxError::Server { .. }
        | ProxmoxError::NodeOffline { .. }
        | ProxmoxError::NoQuorum
        | ProxmoxError::Decode { .. } => AddressEvidence::unanswered(describe(e)),
        _ => AddressEvidence::unknown(describe(e)),
    }
}

/// VMs: `agent/network-get-interfaces`. Skipped without a request when the
/// config has no agent (Proxmox would answer "not configured") or `agent: 0`.
struct Agent {
    client: Arc<ProxmoxClient>,
    shared: Arc<Shared>,
}

impl Agent {
    async fn ask(&self, g: &GuestFacts) -> AddressEvidence {
        match (g.kind, g.agent) {
            (GuestKind::Lxc, _) => return AddressEvidence::unknown("not a VM"),
            (_, AgentSetting::Absent) => {
                return AddressEvidence::unknown("no guest agent configured");
            }
            (_, AgentSetting::Disabled) => {
                return AddressEvidence::unknown("guest agent disabled in the config");
            }
            (_, AgentSetting::Enabled) => {}
        }
        if !g.running {
            return AddressEvidence::unknown("guest is not running");
        }
        match self
            .client
            .network_get_interfaces(&g.node, g.key.vmid)
            .await
        {
            Ok(list) => found(
                pick_address(&list, &g.macs, self.shared.rules()),
                AGENT,
                "no usable IPv4 address on the guest's interfaces",
            ),
            Err(e) => failed(&e),
        }
    }
}

impl AddressSource for Agent {
    fn name(&self) -> &'static str {
        AGENT
    }
    fn resolve<'a>(&'a self, guest: &'a GuestFacts) -> EvidenceFuture<'a> {
        Box::pin(self.ask(guest))
    }
}

/// Containers: the static `ip=` of `net0`, trusted without a request when
/// it is usable and inside `sync.allowed_networks` (the operator wrote it).
struct Static {
    shared: Arc<Shared>,
}

fn static_address(shared: &Shared, g: &GuestFacts) -> AddressEvidence {
    if g.kind != GuestKind::Lxc {
        return AddressEvidence::unknown("not a container");
    }
    match g.static_ip {
        None => AddressEvidence::unknown("no static ip= in net0"),
        Some(a) if usable(a) && in_ranges(a, &shared.allowed) => AddressEvidence::Found {
            address: a,
            source: STATIC,
        },
        Some(_) => AddressEvidence::unknown("static ip= outside the allowed ranges"),
    }
}

impl AddressSource for Static {
    fn name(&self) -> &'static str {
        STATIC
    }
    fn resolve<'a>(&'a self, guest: &'a GuestFacts) -> EvidenceFuture<'a> {
        Box::pin(async move { static_address(&self.shared, guest) })
    }
}

/// Containers: `lxc/V/interfaces` (both the PVE 8.4+ and the 8.1–8.3 shape).
struct Container {
    client: Arc<ProxmoxClient>,
    shared: Arc<Shared>,
}

impl Container {
    async fn ask(&self, g: &GuestFacts) -> AddressEvidence {
        if g.kind != GuestKind::Lxc {
            return AddressEvidence::unknown("not a container");
        }
        if !g.running {
            return AddressEvidence::unknown("guest is not running");
        }
        match self.client.container_interfaces(&g.node, g.key.vmid).await {
            Ok(Some(list)) => found(
                pick_address(&list, &g.macs, self.shared.rules()),
                CONTAINER,
                "no usable IPv4 address on the container's interfaces",
            ),
            Ok(None) => AddressEvidence::unknown("container not running"),
            Err(e) => failed(&e),
        }
    }
}

impl AddressSource for Container {
    fn name(&self) -> &'static str {
        CONTAINER
    }
    fn resolve<'a>(&'a self, guest: &'a GuestFacts) -> EvidenceFuture<'a> {
        Box::pin(self.ask(guest))
    }
}

fn found(address: Option<std::net::Ipv4Addr>, source: &'static str, none: &str) -> AddressEvidence {
    match address {
        Some(address) => AddressEvidence::Found { address, source },
        None => AddressEvidence::unknown(none),
    }
}

/// The host's neighbour table, matched by the guest's MACs (`net0` first).
struct Neighbours {
    shared: Arc<Shared>,
}

fn lookup(shared: &Shared, g: &GuestFacts, source: &'static str) -> AddressEvidence {
    let entries = match shared.table.entries() {
        Ok(e) => e,
        Err(message) => return AddressEvidence::unknown(message),
    };
    let address = g.macs.iter().find_map(|mac| {
        entries
            .iter()
            .find(|n| n.mac == *mac && usable(n.address) && in_ranges(n.address, &shared.allowed))
            .map(|n| n.address)
    });
    found(
        address,
        source,
        "no neighbour-table entry for the guest's MACs",
    )
}

impl AddressSource for Neighbours {
    fn name(&self) -> &'static str {
        ARP
    }
    fn resolve<'a>(&'a self, guest: &'a GuestFacts) -> EvidenceFuture<'a> {
        Box::pin(async move {
            if guest.macs.is_empty() {
                return AddressEvidence::unknown("no MAC in the config");
            }
            lookup(&self.shared, guest, ARP)
        })
    }
}

/// The last good address, while it is younger than `cache_ttl`, belongs to
/// the current `net0` MAC and still lies in the allowed ranges.
struct Cache {
    shared: Arc<Shared>,
}

impl AddressSource for Cache {
    fn name(&self) -> &'static str {
        CACHE
    }
    fn resolve<'a>(&'a self, g: &'a GuestFacts) -> EvidenceFuture<'a> {
        Box::pin(async move { cached(&self.shared, g) })
    }
}

/// The cache as a stand-in (also while a guest waits out its backoff).
pub fn cached(shared: &Shared, g: &GuestFacts) -> AddressEvidence {
    let entry = super::schedule::cached_for(g.cached.as_ref(), g.macs.first().copied());
    let Some(entry) = entry else {
        return AddressEvidence::unknown("no cached address");
    };
    if g.now.saturating_sub(entry.seen_at) > shared.cache_ttl.as_secs() {
        return AddressEvidence::unknown("cached address expired");
    }
    match entry.address.parse() {
        Ok(address) if in_ranges(address, &shared.allowed) => AddressEvidence::Found {
            address,
            source: CACHE,
        },
        _ => AddressEvidence::unknown("cached address outside the allowed ranges"),
    }
}

/// TCP connects across the allowed ranges (so the kernel resolves their
/// neighbours), then the neighbour table.
struct Probe {
    shared: Arc<Shared>,
}

impl AddressSource for Probe {
    fn name(&self) -> &'static str {
        PROBE
    }
    fn resolve<'a>(&'a self, g: &'a GuestFacts) -> EvidenceFuture<'a> {
        Box::pin(async move {
            let Some(prober) = &self.shared.prober else {
                return AddressEvidence::unknown("probe disabled");
            };
            if g.macs.is_empty() {
                return AddressEvidence::unknown("no MAC in the config");
            }
            if prober.sweep(g.port).await > 0 {
                self.shared.table.invalidate();
            }
            lookup(&self.shared, g, PROBE)
        })
    }
}
