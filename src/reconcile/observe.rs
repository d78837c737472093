//! Observe: one `/cluster/resources` call per cluster, the config of every
//! selected guest (concurrently, within the client's rate and concurrency
//! limits), addresses where notes need them, and the Guacamole tree under the
//! managed root in one call. Each cluster's observation says whether it was
//! complete; only complete observations may lead to deletes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::future::join_all;
use futures_util::stream::FuturesUnordered;

use super::desire::{ClusterObservation, ConfigObservation, GuestConfigFacts, GuestObservation};
use super::model::{
    GroupPath, GuestKey, GuestKind, ManagedConnection, ManagedGroup, ManagedTree, Params,
};
use crate::config::Selector;
use crate::discovery::schedule::{self, Decision, DiscoveryRecord, Seen};
use crate::discovery::sources::{self, Shared};
use crate::discovery::{AddressEvidence, AddressSource, DiscoveryStep, GuestFacts, resolve_first};
use crate::guacamole::{Connection, GuacamoleClient, GuacamoleError, ROOT_GROUP, TreeGroup};
use crate::proxmox::{self, ClusterResource, ProxmoxClient};
use crate::state::CachedAddress;

/// One cluster to observe and how to find addresses in it.
pub struct ClusterSource<'a> {
    pub name: &'a str,
    pub client: Arc<ProxmoxClient>,
    /// The cluster's address sources in the configured order.
    pub sources: &'a [Box<dyn AddressSource>],
    pub shared: &'a Shared,
    /// A known address is asked again after this long.
    pub refresh: std::time::Duration,
    /// Unix seconds of this cycle.
    pub now: u64,
}

/// What earlier cycles learnt: last good addresses and the scheduler's records.
#[derive(Clone, Copy)]
pub struct Memory<'a> {
    pub addresses: &'a BTreeMap<String, CachedAddress>,
    pub schedule: &'a BTreeMap<String, DiscoveryRecord>,
}

pub async fn observe_cluster(
    cluster: &ClusterSource<'_>,
    selector: &Selector,
    memory: Memory<'_>,
) -> ClusterObservation {
    let resources = match cluster.client.cluster_resources().await {
        Ok(r) => r,
        Err(e) => {
            return ClusterObservation {
                name: cluster.name.to_owned(),
                complete: false,
                guests: Vec::new(),
                errors: vec![format!("guest listing failed: {e}")],
            };
        }
    };
    let guests = observe_guests(cluster, &resources, selector, memory).await;
    let failed = guests
        .iter()
        .filter(|g| matches!(g.config, ConfigObservation::Failed { .. }))
        .count();
    ClusterObservation {
        name: cluster.name.to_owned(),
        complete: failed == 0,
        errors: if failed == 0 {
            Vec::new()
        } else {
            vec![format!(
                "{failed} guest config(s) could not be read: no deletes this cycle"
            )]
        },
        guests,
    }
}

/// Guests beyond the client's concurrency wait here, not as started
/// futures: thousands of suspended request futures cost megabytes, while a
/// few times the concurrency keeps every request slot busy (an agent ask
/// that takes seconds holds one slot, not the queue).
const GUESTS_IN_FLIGHT_PER_SLOT: usize = 4;

/// Every guest of the listing, in listing order.
async fn observe_guests(
    cluster: &ClusterSource<'_>,
    resources: &[ClusterResource],
    selector: &Selector,
    memory: Memory<'_>,
) -> Vec<GuestObservation> {
    let in_flight = (cluster.client.http().concurrency() * GUESTS_IN_FLIGHT_PER_SLOT).max(1);
    let mut waiting = resources.iter().enumerate();
    let mut running = FuturesUnordered::new();
    let mut guests: Vec<Option<GuestObservation>> = Vec::new();
    guests.resize_with(resources.len(), || None);
    loop {
        while running.len() < in_flight {
            let Some((i, r)) = waiting.next() else { break };
            running.push(numbered(i, observe_guest(cluster, r, selector, memory)));
        }
        match running.next().await {
            Some((i, guest)) => guests[i] = Some(guest),
            None => break,
        }
    }
    guests.into_iter().flatten().collect()
}

/// A future's output with its position (plain `async fn`, not a closure:
/// a closure's future here would keep the daemon's future from being `Send`).
async fn numbered<F: std::future::Future>(i: usize, f: F) -> (usize, F::Output) {
    (i, f.await)
}

pub(crate) async fn observe_guest(
    cluster: &ClusterSource<'_>,
    r: &ClusterResource,
    selector: &Selector,
    memory: Memory<'_>,
) -> GuestObservation {
    let key = GuestKey {
        cluster: cluster.name.to_owned(),
        vmid: r.vmid,
    };
    let kind = r.kind;
    let status = r.status.clone().unwrap_or_else(|| "unknown".to_owned());
    let mut guest = GuestObservation {
        name: r.name.clone().unwrap_or_else(|| default_name(kind, r.vmid)),
        key,
        kind,
        node: r.node.clone(),
        status,
        template: r.template.unwrap_or(false),
        tags: r.tag_list(),
        pool: r.pool.clone(),
        config: ConfigObservation::Skipped,
        address: AddressEvidence::unknown("not needed"),
        uptime: r.uptime,
        lock: r.lock.clone(),
        ha_managed: r.hastate.is_some(),
        discovery: DiscoveryStep::NotNeeded,
    };
    // A stale node's guests (`unknown`) are neither read nor judged.
    if !guest.selected(selector) || guest.status == "unknown" {
        return guest;
    }
    let config = match cluster.client.config(&r.node, r.kind, r.vmid).await {
        Ok(c) => c,
        Err(e) => {
            guest.config = ConfigObservation::Failed {
                error: format!("{e} ({})", e.label()),
            };
            return guest;
        }
    };
    if let Some(name) = &config.name {
        guest.name = name.clone();
    }
    let notes = config.notes.clone().unwrap_or_default();
    let parsed = crate::notes::parse(&notes);
    let facts = GuestFacts {
        key: guest.key.clone(),
        kind,
        node: guest.node.clone(),
        running: guest.status == "running",
        macs: config.macs(),
        agent: config.agent,
        static_ip: config.static_ipv4(),
        port: probe_port(&parsed),
        cached: memory.addresses.get(&guest.key.to_string()).cloned(),
        now: cluster.now,
    };
    if parsed.needs_discovery() {
        discover(cluster, &mut guest, &facts, memory).await;
    }
    guest.config = ConfigObservation::Read(GuestConfigFacts {
        notes: crate::secret::Secret::new(notes),
        digest: config.digest,
        primary_mac: facts.macs.first().map(ToString::to_string),
        agent_enabled: config.agent == proxmox::AgentSetting::Enabled,
        locked: config.lock.is_some(),
    });
    guest
}

/// Asks the sources only when the scheduler says so; otherwise the cached
/// address stands in (fresh, or while a failed ask backs off).
async fn discover(
    cluster: &ClusterSource<'_>,
    guest: &mut GuestObservation,
    facts: &GuestFacts,
    memory: Memory<'_>,
) {
    let seen = Seen {
        status: &guest.status,
        uptime: guest.uptime,
        mac: facts.macs.first().copied(),
    };
    let record = memory.schedule.get(&guest.key.to_string());
    match schedule::decide(
        record,
        facts.cached.as_ref(),
        seen,
        cluster.now,
        cluster.refresh,
    ) {
        Decision::Keep(address) => {
            guest.discovery = DiscoveryStep::Fresh;
            guest.address = AddressEvidence::Found {
                address,
                source: sources::CACHE,
            };
        }
        Decision::Wait { until } => {
            guest.discovery = DiscoveryStep::Waiting;
            guest.address = match sources::cached(cluster.shared, facts) {
                found @ AddressEvidence::Found { .. } => found,
                AddressEvidence::Unknown { reason } | AddressEvidence::Unanswered { reason } => {
                    AddressEvidence::unknown(format!(
                        "asked again in {} s after failures ({reason})",
                        until.saturating_sub(cluster.now)
                    ))
                }
            };
        }
        Decision::Ask(why) => {
            guest.discovery = DiscoveryStep::Asked;
            tracing::debug!(guest = %guest.key, why = why.as_str(), "asking for the address");
            guest.address = resolve_first(cluster.sources, facts).await;
        }
    }
}

/// The port of the first block that needs a discovered address.
fn probe_port(parsed: &crate::notes::ParsedNotes) -> u16 {
    parsed
        .blocks
        .iter()
        .filter(|b| b.needs_discovery())
        .filter_map(|b| b.credential())
        .find_map(|c| {
            let p = *c.protocols.first()?;
            Some(
                c.protocol_ports
                    .get(&p)
                    .copied()
                    .or(c.port)
                    .unwrap_or(p.default_port()),
            )
        })
        .unwrap_or(22)
}

fn default_name(kind: GuestKind, vmid: u32) -> String {
    match kind {
        GuestKind::Qemu => format!("VM {vmid}"),
        GuestKind::Lxc => format!("CT{vmid}"),
    }
}

/// The managed subtree from one `tree` call on ROOT: the root group is the
/// direct child of ROOT with the configured name.
pub async fn observe_tree(
    guac: &GuacamoleClient,
    root_name: &str,
) -> Result<ManagedTree, GuacamoleError> {
    let all = guac.tree(ROOT_GROUP).await?;
    Ok(managed_tree(&all, root_name))
}

pub fn managed_tree(all: &TreeGroup, root_name: &str) -> ManagedTree {
    let mut tree = ManagedTree::default();
    let root = all
        .child_connection_groups
        .iter()
        .find(|g| g.group.name == root_name);
    if let Some(root) = root {
        tree.root_id = Some(root.identifier().to_owned());
        walk(root, Vec::new(), &mut tree);
    }
    let root_id = tree.root_id.clone();
    collect_outside(all, root_id.as_deref(), &mut tree);
    tree
}

/// Every connection outside the managed root, so ones the daemon created
/// and someone moved away can be found and moved back.
fn collect_outside(group: &TreeGroup, root_id: Option<&str>, tree: &mut ManagedTree) {
    if Some(group.identifier()) == root_id {
        return;
    }
    for c in &group.child_connections {
        tree.outside
            .insert(c.identifier.clone(), observed(c, Vec::new(), true));
    }
    for g in &group.child_connection_groups {
        collect_outside(g, root_id, tree);
    }
}

fn observed(c: &Connection, group: GroupPath, outside: bool) -> ManagedConnection {
    ManagedConnection {
        id: c.identifier.clone(),
        name: c.name.clone(),
        group,
        protocol: c.protocol.clone(),
        params: None,
        outside,
        attributes: c.attributes.clone(),
    }
}

fn walk(group: &TreeGroup, path: GroupPath, tree: &mut ManagedTree) {
    for c in &group.child_connections {
        tree.connections
            .insert(c.identifier.clone(), observed(c, path.clone(), false));
    }
    for g in &group.child_connection_groups {
        let mut child = path.clone();
        child.push(g.group.name.clone());
        tree.groups.insert(
            child.clone(),
            ManagedGroup {
                id: g.identifier().to_owned(),
                path: child.clone(),
            },
        );
        walk(g, child, tree);
    }
}

/// Reads the parameters of the given connections (concurrently, within the
/// client's limits). A read that fails leaves `params` empty, so the planner
/// falls back to what it last wrote; the error is returned for the summary.
pub async fn fill_parameters(
    guac: &GuacamoleClient,
    tree: &mut ManagedTree,
    ids: &BTreeSet<String>,
) -> Vec<String> {
    let reads = join_all(
        ids.iter()
            .map(|id| async move { (id, guac.parameters(id).await) }),
    )
    .await;
    let mut errors = Vec::new();
    for (id, result) in reads {
        match result {
            Ok(p) => {
                if let Some(c) = tree.find_mut(id) {
                    c.params = Some(Params::from_server(
                        p.iter()
                            .map(|(k, v)| (k.to_owned(), v.expose().to_owned()))
                            .collect(),
                    ));
                }
            }
            Err(e) => errors.push(format!("parameters of connection {id}: {e}")),
        }
    }
    errors
}
