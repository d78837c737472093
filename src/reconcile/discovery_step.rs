//! The discovery parts of a cycle that need the whole observation: which
//! stopped guests to power up (within the budgets), what their power-ups
//! learnt, and the scheduler's memory for the next cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::desire::{ClusterObservation, ConfigObservation, GuestObservation};
use crate::config::PowerUpSettings;
use crate::discovery::power::eligible::{Refusal, judge};
use crate::discovery::power::{PowerRequest, PowerResult};
use crate::discovery::schedule::{self, DiscoveryRecord, Seen};
use crate::discovery::{AddressEvidence, AddressSource, DiscoveryStep, GuestFacts};
use crate::proxmox::{AgentSetting, MacAddr, ProxmoxClient};
use crate::state::State;

/// The power-ups this cycle may start: eligible guests on online nodes,
/// at most `max_per_cycle`, none already running.
pub async fn requests(
    observed: &[ClusterObservation],
    st: &State,
    now: u64,
    settings: &PowerUpSettings,
    clients: &BTreeMap<String, Arc<ProxmoxClient>>,
    sources: &BTreeMap<String, Arc<Vec<Box<dyn AddressSource>>>>,
    in_flight: &BTreeSet<String>,
) -> Vec<PowerRequest> {
    if !settings.enabled {
        return Vec::new();
    }
    let mut out = Vec::new();
    let budget = settings.max_per_cycle.get() as usize;
    for cluster in observed {
        let (Some(client), Some(list)) = (clients.get(&cluster.name), sources.get(&cluster.name))
        else {
            continue;
        };
        let eligible: Vec<&GuestObservation> = cluster
            .guests
            .iter()
            .filter(|g| {
                let key = g.key.to_string();
                let verdict = if in_flight.contains(&key) {
                    Err(Refusal::InFlight)
                } else {
                    judge(g, &settings.tag, st.power_cooldown.get(&key).copied(), now)
                };
                if let Err(r) = verdict
                    && g.tags.contains(&settings.tag)
                {
                    info!(guest = %g.key, reason = r.as_str(), "power-up: not this guest");
                }
                verdict.is_ok()
            })
            .collect();
        if eligible.is_empty() {
            continue;
        }
        // Only now: one node listing per cluster that has a candidate.
        let online: BTreeSet<String> = match client.nodes().await {
            Ok(nodes) => nodes
                .into_iter()
                .filter(|n| n.is_online())
                .map(|n| n.node)
                .collect(),
            Err(e) => {
                warn!(cluster = %cluster.name, error = %e, "power-up: cannot list nodes; none this cycle");
                continue;
            }
        };
        for g in eligible {
            if !online.contains(&g.node) {
                info!(guest = %g.key, reason = Refusal::NodeOffline.as_str(), "power-up: not this guest");
                continue;
            }
            if out.len() >= budget {
                info!(guest = %g.key, reason = Refusal::Budget.as_str(), "power-up: not this guest");
                continue;
            }
            out.push(PowerRequest {
                client: client.clone(),
                sources: list.clone(),
                facts: facts_of(g, now),
            });
        }
    }
    out
}

/// What the sources need, rebuilt from the observation (`net0` MAC only).
fn facts_of(g: &GuestObservation, now: u64) -> GuestFacts {
    let (macs, agent, port) = match &g.config {
        ConfigObservation::Read(f) => {
            let macs: Vec<MacAddr> = f
                .primary_mac
                .as_deref()
                .and_then(|m| m.parse().ok())
                .into_iter()
                .collect();
            let agent = if f.agent_enabled {
                AgentSetting::Enabled
            } else {
                AgentSetting::Absent
            };
            (macs, agent, first_port(f.notes.expose()))
        }
        _ => (Vec::new(), AgentSetting::Absent, 22),
    };
    GuestFacts {
        key: g.key.clone(),
        kind: g.kind,
        node: g.node.clone(),
        running: false,
        macs,
        agent,
        // Not kept after observation; a power-up asks the live sources.
        static_ip: None,
        port,
        cached: None,
        now,
    }
}

fn first_port(notes: &str) -> u16 {
    crate::notes::parse(notes)
        .blocks
        .iter()
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

/// Addresses found by power-ups go into the observation (so this cycle
/// makes the connections); a power-up without one starts the cooldown.
pub fn absorb(
    results: &[PowerResult],
    observed: &mut [ClusterObservation],
    st: &mut State,
    now: u64,
    cooldown: Duration,
) {
    for r in results {
        let Some(guest) = observed
            .iter_mut()
            .flat_map(|c| c.guests.iter_mut())
            .find(|g| g.key.to_string() == r.guest)
        else {
            continue;
        };
        match r.address {
            Some((address, source)) => {
                guest.address = AddressEvidence::Found { address, source };
                guest.discovery = DiscoveryStep::Asked;
                st.power_cooldown.remove(&r.guest);
            }
            None => {
                st.power_cooldown
                    .insert(r.guest.clone(), now + cooldown.as_secs());
            }
        }
        if let Some(e) = &r.error {
            warn!(guest = %r.guest, error = %e, "power-up failed");
        }
    }
    st.power_cooldown.retain(|_, until| *until > now);
}

/// Results of background power-ups (finished since the last cycle): a found
/// address goes into the cache, fresh, so this cycle keeps it without
/// asking; none starts the cooldown.
pub fn absorb_into_state(results: &[PowerResult], st: &mut State, now: u64, cooldown: Duration) {
    for r in results {
        match r.address {
            Some((address, source)) => {
                st.addresses.insert(
                    r.guest.clone(),
                    crate::state::CachedAddress {
                        address: address.to_string(),
                        source: source.to_owned(),
                        seen_at: now,
                        mac: r.mac.clone(),
                    },
                );
                st.power_cooldown.remove(&r.guest);
            }
            None => {
                st.power_cooldown
                    .insert(r.guest.clone(), now + cooldown.as_secs());
            }
        }
        if let Some(e) = &r.error {
            warn!(guest = %r.guest, error = %e, "power-up failed");
        }
    }
}

/// The scheduler's records after this cycle; records of guests gone from a
/// complete listing are dropped.
pub fn remember_schedule(
    observed: &[ClusterObservation],
    records: &mut BTreeMap<String, DiscoveryRecord>,
    now: u64,
    backoff: (Duration, Duration),
) {
    for cluster in observed {
        if cluster.complete {
            let prefix = format!("{}/", cluster.name);
            let seen: BTreeSet<String> = cluster.guests.iter().map(|g| g.key.to_string()).collect();
            records.retain(|k, _| !k.starts_with(&prefix) || seen.contains(k));
        }
        for g in &cluster.guests {
            if g.discovery == DiscoveryStep::NotNeeded {
                continue;
            }
            let key = g.key.to_string();
            let mac = match &g.config {
                ConfigObservation::Read(f) => f.primary_mac.as_deref().and_then(|m| m.parse().ok()),
                _ => None,
            };
            let seen = Seen {
                status: &g.status,
                uptime: g.uptime,
                mac,
            };
            // An unanswered ask neither counts as a failure nor resets one.
            let asked = (g.discovery == DiscoveryStep::Asked
                && !matches!(g.address, AddressEvidence::Unanswered { .. }))
            .then(|| g.address.is_live());
            let next = schedule::update(records.get(&key), seen, asked, now, backoff);
            records.insert(key, next);
        }
    }
}
