//! notes + addresses + configuration → the connections that should exist.
//! Pure: the observation carries everything read from the servers.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::model::{
    BlockErrorFact, Desired, DesiredConnection, GroupPath, GuestKey, GuestKind, HoldReason,
    Identity, NotesRewrite, ParamValue, Params, Problem,
};
use crate::config::{Grouping, GuestFacts as SelectorFacts, Selector};
use crate::crypto::Keyring;
use crate::discovery::{AddressEvidence, DiscoveryStep};
use crate::notes::{self, ConnectionSpec, GuestContext, NotesPolicy, Passwords};
use crate::secret::Secret;

/// Proxmox refuses a `description` longer than this (spec §6.3).
const MAX_NOTES_CHARS: usize = 8192;

/// One cluster as observed this cycle.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterObservation {
    pub name: String,
    /// The guest listing and every needed config were read without error.
    pub complete: bool,
    pub guests: Vec<GuestObservation>,
    /// Listing-level errors (never secrets).
    pub errors: Vec<String>,
}

/// One guest from `/cluster/resources`, with what was learnt about it.
#[derive(Debug, Clone, Serialize)]
pub struct GuestObservation {
    pub key: GuestKey,
    pub kind: GuestKind,
    pub node: String,
    pub name: String,
    /// `running`, `stopped`, `paused`, `unknown` (offline node), …
    pub status: String,
    pub template: bool,
    pub tags: Vec<String>,
    pub pool: Option<String>,
    pub config: ConfigObservation,
    pub address: AddressEvidence,
    /// `uptime` in the listing (a lower value later means a restart).
    pub uptime: Option<u64>,
    /// `lock` in the listing (backup, migrate, …).
    pub lock: Option<String>,
    /// `hastate` present: the HA manager decides its power state.
    pub ha_managed: bool,
    /// What discovery did for this guest this cycle.
    pub discovery: DiscoveryStep,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "config", rename_all = "snake_case")]
pub enum ConfigObservation {
    /// Not read: excluded, a template, or its node is unavailable.
    Skipped,
    Read(GuestConfigFacts),
    Failed {
        error: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct GuestConfigFacts {
    /// May hold plaintext passwords: a secret until parsed.
    #[serde(skip)]
    pub notes: Secret,
    pub digest: String,
    pub primary_mac: Option<String>,
    pub agent_enabled: bool,
    /// A lock (backup, migrate, …) is held: Proxmox refuses note writes.
    pub locked: bool,
}

/// The configuration that shapes the wish.
pub struct DesireSettings<'a> {
    pub policy: &'a NotesPolicy,
    pub keyring: Option<&'a Keyring>,
    pub grouping: Grouping,
    pub selector: &'a Selector,
    /// Short host name of the machine running the daemon (`{hostname}`).
    pub hostname: &'a str,
    pub auto_encrypt: bool,
    pub clusters: &'a [String],
    pub wol: &'a crate::config::WolSettings,
}

impl GuestObservation {
    /// Whether configuration selects this guest at all (templates never).
    pub fn selected(&self, selector: &Selector) -> bool {
        !self.template
            && selector.matches(&SelectorFacts {
                vmid: self.key.vmid,
                node: &self.node,
                pool: self.pool.as_deref(),
                tags: &self.tags,
            })
    }
}

pub fn desire(observed: &[ClusterObservation], s: &DesireSettings<'_>) -> Desired {
    let mut want = Desired {
        clusters: s.clusters.iter().cloned().collect(),
        ..Desired::default()
    };
    let mut candidates: Vec<DesiredConnection> = Vec::new();
    for cluster in observed {
        if cluster.complete {
            want.complete_clusters.insert(cluster.name.clone());
        }
        for e in &cluster.errors {
            want.problems.push(Problem {
                guest: None,
                message: format!("cluster {}: {e}", cluster.name),
            });
        }
        for guest in &cluster.guests {
            want.present.insert(guest.key.clone());
            if guest.selected(s.selector) {
                desire_guest(guest, s, &mut want, &mut candidates);
            } else {
                want.excluded.insert(guest.key.clone());
            }
        }
    }
    settle_name_conflicts(candidates, &mut want);
    want
}

fn desire_guest(
    guest: &GuestObservation,
    s: &DesireSettings<'_>,
    want: &mut Desired,
    out: &mut Vec<DesiredConnection>,
) {
    let facts = match &guest.config {
        ConfigObservation::Read(facts) => facts,
        ConfigObservation::Skipped => {
            want.held
                .insert(guest.key.clone(), HoldReason::NodeUnavailable);
            return;
        }
        ConfigObservation::Failed { error } => {
            want.held
                .insert(guest.key.clone(), HoldReason::ConfigUnavailable);
            want.problems
                .push(problem(guest, format!("config not readable: {error}")));
            return;
        }
    };
    let parsed = notes::parse(facts.notes.expose());
    if parsed.blocks.is_empty() {
        return;
    }
    let ctx = GuestContext {
        cluster: guest.key.cluster.clone(),
        node: guest.node.clone(),
        vmid: guest.key.vmid,
        vmname: guest.name.clone(),
        address: guest.address.address().map(|a| a.to_string()),
        hostname: s.hostname.to_owned(),
    };
    let passwords = match s.keyring {
        Some(k) => Passwords::Decrypt(k),
        None => Passwords::NoKeys,
    };
    let resolution = parsed.resolve(&ctx, s.policy, passwords);
    for w in &resolution.warnings {
        let mut at = format!("block {} (line {})", w.block, w.line);
        if let Some(key) = w.key {
            at.push_str(&format!(", key {key}"));
        }
        let message = format!("{at}: warning: {}", w.message());
        want.warnings.push(problem(guest, message));
    }
    let mut bad_blocks = BTreeSet::new();
    for e in &resolution.errors {
        bad_blocks.insert(e.block);
        want.problems.push(problem(guest, e.to_string()));
        want.block_errors.push(BlockErrorFact {
            guest: guest.key.clone(),
            guest_name: guest.name.clone(),
            block: e.block,
            line: e.line,
            key: e.key,
            label: e.label(),
            message: e.message(),
        });
    }
    if !resolution.errors.is_empty() {
        want.held.insert(guest.key.clone(), HoldReason::BlockError);
    }
    let mut address_missing = false;
    for spec in &resolution.connections {
        // A name cannot be checked against the allowed ranges without a
        // lookup, so with ranges configured only addresses are trusted.
        if let Some(host) = &spec.host_override
            && !s.policy.allowed_networks.is_empty()
            && host.parse::<std::net::IpAddr>().is_err()
        {
            want.held.insert(guest.key.clone(), HoldReason::BlockError);
            want.problems.push(problem(
                guest,
                format!(
                    "block {}: host is a DNS name, which cannot be checked against allowed_networks",
                    spec.block_ordinal
                ),
            ));
            continue;
        }
        let host = spec
            .host_override
            .clone()
            .or_else(|| guest.address.address().map(|a| a.to_string()));
        match host {
            Some(host) => {
                let wol = crate::discovery::wol::parameters(
                    &spec.wol,
                    spec.wol_disabled,
                    facts.primary_mac.as_deref(),
                    s.wol,
                );
                out.push(connection(guest, spec, host, &wol, s.grouping))
            }
            None => address_missing = true,
        }
    }
    if address_missing {
        want.held
            .entry(guest.key.clone())
            .or_insert(HoldReason::AddressUnknown);
        if let Some(reason) = guest.address.reason() {
            want.problems
                .push(problem(guest, format!("address unknown ({reason})")));
        }
    }
    // A locked guest refuses note writes; the migration waits for the unlock.
    if s.auto_encrypt
        && !facts.locked
        && let Some(keyring) = s.keyring
    {
        let migration = notes::migrate(facts.notes.expose(), keyring, &bad_blocks);
        if migration.changed() && migration.text.chars().count() > MAX_NOTES_CHARS {
            want.problems.push(problem(
                guest,
                format!(
                    "notes with encrypted passwords would exceed Proxmox's {MAX_NOTES_CHARS} characters; left in plaintext"
                ),
            ));
        } else if migration.changed() {
            want.rewrites.push(NotesRewrite {
                guest: guest.key.clone(),
                node: guest.node.clone(),
                kind: guest.kind,
                digest: facts.digest.clone(),
                new_notes: Secret::new(migration.text),
                migrated_blocks: migration.migrated.len(),
                migrated: migration.migrated,
            });
        }
    }
}

fn problem(guest: &GuestObservation, message: String) -> Problem {
    Problem {
        guest: Some(guest.key.clone()),
        message: format!(
            "{} node {} vmid {} ({}): {message}",
            guest.key.cluster, guest.node, guest.key.vmid, guest.name
        ),
    }
}

fn connection(
    guest: &GuestObservation,
    spec: &ConnectionSpec,
    host: String,
    wol: &BTreeMap<String, String>,
    grouping: Grouping,
) -> DesiredConnection {
    let protocol = spec.protocol.as_str().to_owned();
    let mut params = Params::new();
    // Block settings first, so the fields the daemon owns always win.
    for (k, v) in spec.settings.iter().chain(wol.iter()) {
        params.insert(k.clone(), ParamValue::from_server(k, v.clone()));
    }
    params.insert("hostname", ParamValue::plain(host));
    params.insert("port", ParamValue::plain(spec.port.to_string()));
    params.insert("username", ParamValue::plain(spec.username.clone()));
    params.insert("password", ParamValue::secret(spec.password.expose()));
    DesiredConnection {
        identity: Identity {
            guest: guest.key.clone(),
            user: spec.username.clone(),
            protocol: protocol.clone(),
            ordinal: spec.ordinal_in_guest,
        },
        name: spec.name.clone(),
        group: spec
            .group
            .clone()
            .unwrap_or_else(|| group_for(guest, grouping)),
        protocol,
        params,
        guest_name: guest.name.clone(),
        node: guest.node.clone(),
    }
}

fn group_for(guest: &GuestObservation, grouping: Grouping) -> GroupPath {
    let one = |s: &str| vec![s.to_owned()];
    match grouping {
        Grouping::None => Vec::new(),
        Grouping::Node => one(&guest.node),
        Grouping::Cluster => one(&guest.key.cluster),
        Grouping::Pool => guest.pool.as_deref().map(one).unwrap_or_default(),
        // Proxmox keeps tags sorted; the first one is stable across cycles.
        Grouping::Tag => guest.tags.first().map(|t| one(t)).unwrap_or_default(),
    }
}

/// Two connections with the same name in the same group: the lower VMID (then
/// the earlier block) keeps it; the other guest is held and reported, so no
/// connection is ever silently shared.
fn settle_name_conflicts(mut candidates: Vec<DesiredConnection>, want: &mut Desired) {
    candidates.sort_by(|a, b| {
        (
            a.identity.guest.vmid,
            &a.identity.guest.cluster,
            &a.identity,
        )
            .cmp(&(
                b.identity.guest.vmid,
                &b.identity.guest.cluster,
                &b.identity,
            ))
    });
    let mut taken: BTreeMap<(GroupPath, String), Identity> = BTreeMap::new();
    for c in candidates {
        let place = (c.group.clone(), c.name.clone());
        if let Some(winner) = taken.get(&place) {
            want.held
                .insert(c.identity.guest.clone(), HoldReason::NameConflict);
            want.problems.push(Problem {
                guest: Some(c.identity.guest.clone()),
                message: format!(
                    "{}: connection name \"{}\" is already used by {} in the same group",
                    c.identity, c.name, winner
                ),
            });
            continue;
        }
        taken.insert(place, c.identity.clone());
        want.connections.insert(c.identity.clone(), c);
    }
}
