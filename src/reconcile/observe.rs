//! Observe: one `/cluster/resources` call per cluster, the config of every
//! selected guest (concurrently, within the client's rate and concurrency
//! limits), addresses where notes need them, and the Guacamole tree under the
//! managed root in one call. Each cluster's observation says whether it was
//! complete; only complete observations may lead to deletes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use futures_util::future::join_all;

use super::desire::{ClusterObservation, ConfigObservation, GuestConfigFacts, GuestObservation};
use super::model::{
    GroupPath, GuestKey, GuestKind, ManagedConnection, ManagedGroup, ManagedTree, Params,
};
use crate::config::Selector;
use crate::discovery::{AddressEvidence, AddressSource, GuestFacts, in_ranges, resolve_first};
use crate::guacamole::{Connection, GuacamoleClient, GuacamoleError, ROOT_GROUP, TreeGroup};
use crate::proxmox::{self, ClusterResource, ProxmoxClient};
use crate::state::CachedAddress;

/// How long a guest's last known address may stand in for a fresh one.
pub const ADDRESS_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// One cluster to observe and how to find addresses in it.
pub struct ClusterSource<'a> {
    pub name: &'a str,
    pub client: Arc<ProxmoxClient>,
    pub sources: &'a [Box<dyn AddressSource>],
    /// `sync.allowed_networks` (empty: any).
    pub allowed: &'a [ipnet::IpNet],
    /// Unix seconds, for the address cache's age.
    pub now: u64,
}

pub async fn observe_cluster(
    cluster: &ClusterSource<'_>,
    selector: &Selector,
    cache: &BTreeMap<String, CachedAddress>,
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
    let guests = join_all(
        resources
            .iter()
            .map(|r| observe_guest(cluster, r, selector, cache)),
    )
    .await;
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

pub(crate) async fn observe_guest(
    cluster: &ClusterSource<'_>,
    r: &ClusterResource,
    selector: &Selector,
    cache: &BTreeMap<String, CachedAddress>,
) -> GuestObservation {
    let (now, allowed) = (cluster.now, cluster.allowed);
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
    let primary_mac = config
        .nets
        .iter()
        .find(|n| n.index == 0)
        .and_then(|n| n.mac)
        .map(|m| m.to_string());
    let notes = config.notes.clone().unwrap_or_default();
    let facts = GuestFacts {
        key: guest.key.clone(),
        kind,
        node: guest.node.clone(),
        running: guest.status == "running",
        primary_mac: primary_mac.clone(),
        agent_enabled: config.agent == proxmox::AgentSetting::Enabled,
    };
    if crate::notes::parse(&notes).needs_discovery() {
        guest.address = resolve_first(cluster.sources, &facts).await;
        // The last known address stands in while the guest is stopped, if
        // it is recent and still inside the allowed ranges.
        if guest.address.address().is_none()
            && let Some(cached) = cache.get(&guest.key.to_string())
            && now.saturating_sub(cached.seen_at) <= ADDRESS_CACHE_TTL.as_secs()
            && let Ok(address) = cached.address.parse::<Ipv4Addr>()
            && in_ranges(address, allowed)
        {
            guest.address = AddressEvidence::Found {
                address,
                source: "cache",
            };
        }
    }
    guest.config = ConfigObservation::Read(GuestConfigFacts {
        notes: crate::secret::Secret::new(notes),
        digest: config.digest,
        primary_mac,
        agent_enabled: facts.agent_enabled,
        locked: config.lock.is_some(),
    });
    guest
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
