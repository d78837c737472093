//! Which stopped guest may be powered up to learn its address (pure).

use serde::Serialize;

use crate::reconcile::desire::{ConfigObservation, GuestObservation};

/// Why a guest is not powered up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// No connection of it waits for a discovered address.
    NotNeeded,
    AddressKnown,
    NotTagged,
    NotStopped,
    Template,
    Locked,
    HaManaged,
    NodeOffline,
    Cooldown,
    InFlight,
    Budget,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NotNeeded => "no connection needs a discovered address",
            Refusal::AddressKnown => "address known",
            Refusal::NotTagged => "not tagged for power-up",
            Refusal::NotStopped => "not stopped",
            Refusal::Template => "template",
            Refusal::Locked => "locked",
            Refusal::HaManaged => "HA-managed",
            Refusal::NodeOffline => "node offline",
            Refusal::Cooldown => "cooling down after a power-up without an address",
            Refusal::InFlight => "power-up already running",
            Refusal::Budget => "power-up budget of this cycle spent",
        }
    }
}

/// Judges one guest against everything but the node's state and budgets.
/// `cooldown_until`: unix seconds from the state, if any.
pub fn judge(
    g: &GuestObservation,
    tag: &str,
    cooldown_until: Option<u64>,
    now: u64,
) -> Result<(), Refusal> {
    let ConfigObservation::Read(facts) = &g.config else {
        return Err(Refusal::NotNeeded);
    };
    if g.discovery == super::super::DiscoveryStep::NotNeeded {
        return Err(Refusal::NotNeeded);
    }
    if g.address.address().is_some() {
        return Err(Refusal::AddressKnown);
    }
    if !g.tags.iter().any(|t| t == tag) {
        return Err(Refusal::NotTagged);
    }
    if g.template {
        return Err(Refusal::Template);
    }
    if g.status != "stopped" {
        return Err(Refusal::NotStopped);
    }
    if facts.locked || g.lock.is_some() {
        return Err(Refusal::Locked);
    }
    if g.ha_managed {
        return Err(Refusal::HaManaged);
    }
    if cooldown_until.is_some_and(|until| until > now) {
        return Err(Refusal::Cooldown);
    }
    Ok(())
}
