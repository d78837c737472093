//! Address discovery: where a guest's IPv4 address comes from. Every source
//! sits behind [`AddressSource`], so new ones (ARP table, power-up) plug in
//! without touching `desire` or `plan`. The choice among candidate addresses
//! is pure ([`pick_ipv4`]) and honours the allowed ranges.

pub mod sources;

use std::future::Future;
use std::net::Ipv4Addr;
use std::pin::Pin;

use ipnet::IpNet;
use serde::Serialize;

use crate::reconcile::model::{GuestKey, GuestKind};

/// What a source needs to know about a guest.
#[derive(Debug, Clone)]
pub struct GuestFacts {
    pub key: GuestKey,
    pub kind: GuestKind,
    pub node: String,
    pub running: bool,
    /// MAC of `net0`, as configured (any case).
    pub primary_mac: Option<String>,
    /// Whether the VM config enables the QEMU guest agent.
    pub agent_enabled: bool,
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
}

impl AddressEvidence {
    pub fn address(&self) -> Option<Ipv4Addr> {
        match self {
            AddressEvidence::Found { address, .. } => Some(*address),
            AddressEvidence::Unknown { .. } => None,
        }
    }

    pub fn unknown(reason: impl Into<String>) -> Self {
        AddressEvidence::Unknown {
            reason: reason.into(),
        }
    }
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
    for source in sources {
        match source.resolve(guest).await {
            found @ AddressEvidence::Found { .. } => return found,
            AddressEvidence::Unknown { reason } => {
                reasons.push(format!("{}: {reason}", source.name()))
            }
        }
    }
    if reasons.is_empty() {
        AddressEvidence::unknown("no address source configured")
    } else {
        AddressEvidence::unknown(reasons.join("; "))
    }
}

/// One guest network interface as a source reports it.
#[derive(Debug, Clone)]
pub struct Interface {
    pub mac: Option<String>,
    pub ipv4: Vec<Ipv4Addr>,
}

/// The address to use from the interface whose MAC matches the guest's
/// `net0` (compared case-insensitively): its first IPv4 address that is
/// usable (not loopback, link-local, unspecified or multicast) and inside the
/// allowed ranges when any are configured.
pub fn pick_ipv4(interfaces: &[Interface], mac: &str, allowed: &[IpNet]) -> Option<Ipv4Addr> {
    interfaces
        .iter()
        .filter(|i| {
            i.mac
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(mac))
        })
        .flat_map(|i| i.ipv4.iter().copied())
        .find(|a| usable(*a) && in_ranges(*a, allowed))
}

fn usable(a: Ipv4Addr) -> bool {
    !(a.is_loopback()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_multicast()
        || a.is_broadcast())
}

/// True when no ranges are configured or the address lies in one of them.
pub fn in_ranges(a: Ipv4Addr, allowed: &[IpNet]) -> bool {
    allowed.is_empty() || allowed.iter().any(|n| n.contains(&std::net::IpAddr::V4(a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(mac: &str, addrs: &[&str]) -> Interface {
        Interface {
            mac: Some(mac.into()),
            ipv4: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn matches_mac_case_insensitively_and_skips_unusable_addresses() {
        let ifs = [
            iface("00:00:00:00:00:00", &["127.0.0.1"]),
            iface("bc:24:11:5a:3c:02", &["198.51.100.7"]),
            iface("bc:24:11:5a:3c:01", &["169.254.1.1", "192.0.2.10"]),
        ];
        assert_eq!(
            pick_ipv4(&ifs, "BC:24:11:5A:3C:01", &[]),
            Some("192.0.2.10".parse().unwrap())
        );
        assert_eq!(pick_ipv4(&ifs, "BC:24:11:00:00:00", &[]), None);
    }

    #[test]
    fn honours_allowed_ranges() {
        let ifs = [iface("bc:24:11:5a:3c:01", &["203.0.113.5", "192.0.2.10"])];
        let allowed = ["192.0.2.0/24".parse().unwrap()];
        assert_eq!(
            pick_ipv4(&ifs, "bc:24:11:5a:3c:01", &allowed),
            Some("192.0.2.10".parse().unwrap())
        );
        let none = ["198.51.100.0/24".parse().unwrap()];
        assert_eq!(pick_ipv4(&ifs, "bc:24:11:5a:3c:01", &none), None);
    }
}
