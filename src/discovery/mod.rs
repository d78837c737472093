//! Address discovery and power-up tasks: where a guest's IPv4 address comes
//! from, when it is asked again, and starting a stopped guest briefly to
//! learn it. Every source sits behind [`AddressSource`] and they are asked
//! in the configured order (`discovery.sources`), so new ones plug in
//! without touching `desire` or `plan`.

pub mod arp;
pub mod filter;
pub mod power;
pub mod probe;
pub mod schedule;
pub mod sources;
pub mod wol;

use std::future::Future;
use std::net::Ipv4Addr;
use std::pin::Pin;

use serde::Serialize;

pub use filter::{AddressRules, in_ranges, pick_address, usable};

use crate::proxmox::{AgentSetting, MacAddr};
use crate::reconcile::model::{GuestKey, GuestKind};
use crate::state::CachedAddress;

/// What a source needs to know about a guest.
#[derive(Debug, Clone)]
pub struct GuestFacts {
    pub key: GuestKey,
    pub kind: GuestKind,
    pub node: String,
    pub running: bool,
    /// Configured MACs, `net0` first.
    pub macs: Vec<MacAddr>,
    /// The VM config's `agent` option (containers: absent).
    pub agent: AgentSetting,
    /// A container's static IPv4 in `net0` (the `static` source).
    pub static_ip: Option<Ipv4Addr>,
    /// Port of the guest's first connection (what the probe connects to).
    pub port: u16,
    /// The last good address from the state directory.
    pub cached: Option<CachedAddress>,
    /// Unix seconds of this cycle.
    pub now: u64,
}

/// The result of asking a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "evidence", rename_all = "snake_case")]
pub enum AddressEvidence {
    Found {
        address: Ipv4Addr,
        source: &'static str,
    },
    /// The source has nothing to say (not applicable, not running, no match).
    Unknown { reason: String },
    /// The server did not answer about the guest (transport failure, server
    /// error, a pause it asked for): nothing was learnt, so no backoff.
    Unanswered { reason: String },
}

impl AddressEvidence {
    pub fn address(&self) -> Option<Ipv4Addr> {
        match self {
            AddressEvidence::Found { address, .. } => Some(*address),
            AddressEvidence::Unknown { .. } | AddressEvidence::Unanswered { .. } => None,
        }
    }

    /// Why no address is known; `None` when one was found.
    pub fn reason(&self) -> Option<&str> {
        match self {
            AddressEvidence::Found { .. } => None,
            AddressEvidence::Unknown { reason } | AddressEvidence::Unanswered { reason } => {
                Some(reason)
            }
        }
    }

    pub fn unanswered(reason: impl Into<String>) -> Self {
        AddressEvidence::Unanswered {
            reason: reason.into(),
        }
    }

    pub fn unknown(reason: impl Into<String>) -> Self {
        AddressEvidence::Unknown {
            reason: reason.into(),
        }
    }

    /// Found by a source that looked at the guest now (not the cache).
    pub fn is_live(&self) -> bool {
        matches!(self, AddressEvidence::Found { source, .. } if *source != sources::CACHE)
    }
}

/// What discovery did for a guest this cycle (for the scheduler's record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryStep {
    /// The notes need no discovered address (a `host`, or no blocks).
    #[default]
    NotNeeded,
    /// The cached address is fresh; nothing was asked.
    Fresh,
    /// In backoff after a failed ask; nothing was asked.
    Waiting,
    /// The sources were asked.
    Asked,
}

pub type EvidenceFuture<'a> = Pin<Box<dyn Future<Output = AddressEvidence> + Send + 'a>>;

/// One way of learning a guest's address.
pub trait AddressSource: Send + Sync {
    fn name(&self) -> &'static str;
    fn resolve<'a>(&'a self, guest: &'a GuestFacts) -> EvidenceFuture<'a>;
}

/// Asks each source in turn; the first that finds an address wins. Reasons
/// of the ones that did not are joined, for `list` and the logs.
pub async fn resolve_first(
    sources: &[Box<dyn AddressSource>],
    guest: &GuestFacts,
) -> AddressEvidence {
    let mut reasons = Vec::new();
    let mut unanswered = false;
    for source in sources {
        let evidence = source.resolve(guest).await;
        unanswered |= matches!(evidence, AddressEvidence::Unanswered { .. });
        match evidence.reason() {
            None => return evidence,
            Some(reason) => reasons.push(format!("{}: {reason}", source.name())),
        }
    }
    if reasons.is_empty() {
        AddressEvidence::unknown("no address source configured")
    } else if unanswered {
        // A source that could have known did not answer: inconclusive.
        AddressEvidence::unanswered(reasons.join("; "))
    } else {
        AddressEvidence::unknown(reasons.join("; "))
    }
}
