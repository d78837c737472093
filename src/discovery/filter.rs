//! Which address of a guest's interfaces is its address (pure). Interfaces
//! with the `net0` MAC come first, then those with another configured MAC,
//! then any other interface that has a MAC and whose name no exclude pattern
//! matches (docker bridges, veth pairs, CNI …). Only IPv4, never loopback,
//! link-local (APIPA), unspecified, multicast or broadcast, and only inside
//! the allowed ranges when any are set.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use crate::proxmox::{GuestInterface, MacAddr};

/// The rules one guest's interfaces are read with.
#[derive(Debug, Clone, Copy)]
pub struct AddressRules<'a> {
    /// Interface name patterns never used (`*` matches any run of characters).
    pub exclude: &'a [String],
    /// `sync.allowed_networks`; empty: any.
    pub allowed: &'a [IpNet],
}

/// `macs`: the guest's configured MACs, `net0` first.
pub fn pick_address(
    interfaces: &[GuestInterface],
    macs: &[MacAddr],
    rules: AddressRules<'_>,
) -> Option<Ipv4Addr> {
    let rank = |i: &GuestInterface| -> Option<usize> {
        let mac = i.mac.filter(|m| !m.is_zero())?;
        match macs.iter().position(|m| *m == mac) {
            Some(p) => Some(p),
            None if !excluded(&i.name, rules.exclude) => Some(macs.len()),
            None => None,
        }
    };
    let mut ranked: Vec<(usize, &GuestInterface)> = interfaces
        .iter()
        .filter_map(|i| rank(i).map(|r| (r, i)))
        .collect();
    // Stable: equal ranks keep the guest's own order.
    ranked.sort_by_key(|(r, _)| *r);
    ranked
        .into_iter()
        .flat_map(|(_, i)| i.addresses.iter())
        .find_map(|a| match a.ip {
            IpAddr::V4(v4) if usable(v4) && in_ranges(v4, rules.allowed) => Some(v4),
            _ => None,
        })
}

/// An address a connection can target.
pub fn usable(a: Ipv4Addr) -> bool {
    !(a.is_loopback()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_multicast()
        || a.is_broadcast())
}

/// True when no ranges are configured or the address lies in one of them.
pub fn in_ranges(a: Ipv4Addr, allowed: &[IpNet]) -> bool {
    allowed.is_empty() || allowed.iter().any(|n| n.contains(&IpAddr::V4(a)))
}

/// Whether an interface name matches one of the patterns.
pub fn excluded(name: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| glob(p, name))
}

/// `*` matches any run of characters (also none); everything else literally.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    if !text.ends_with(last) {
        return false;
    }
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxmox::GuestAddress;

    fn iface(name: &str, mac: Option<&str>, addrs: &[&str]) -> GuestInterface {
        GuestInterface {
            name: name.into(),
            mac: mac.map(|m| m.parse().unwrap()),
            addresses: addrs
                .iter()
                .map(|a| GuestAddress {
                    ip: a.parse().unwrap(),
                    prefix: None,
                })
                .collect(),
        }
    }

    fn defaults() -> Vec<String> {
        crate::config::DiscoverySettings::default().interface_exclude
    }

    #[test]
    fn net0_wins_over_a_docker_bridge_listed_first_and_link_local_is_skipped() {
        let ifs = [
            iface("lo", Some("00:00:00:00:00:00"), &["127.0.0.1", "::1"]),
            iface("docker0", Some("02:42:ac:11:00:01"), &["172.17.0.1"]),
            iface(
                "ens18",
                Some("bc:24:11:5a:3c:01"),
                &["fe80::1", "169.254.3.4", "2001:db8::10", "192.0.2.10"],
            ),
        ];
        let macs = ["BC:24:11:5A:3C:01".parse().unwrap()];
        let ex = defaults();
        let rules = AddressRules {
            exclude: &ex,
            allowed: &[],
        };
        assert_eq!(
            pick_address(&ifs, &macs, rules),
            Some("192.0.2.10".parse().unwrap())
        );
        // Without a MAC match, the docker bridge is still never used.
        assert_eq!(pick_address(&ifs[..2], &macs, rules), None);
    }

    #[test]
    fn other_interfaces_only_when_not_excluded_and_with_a_mac() {
        let ex = defaults();
        let rules = AddressRules {
            exclude: &ex,
            allowed: &[],
        };
        let ifs = [
            iface("veth12ab", Some("02:00:00:00:00:02"), &["10.0.0.2"]),
            iface("wg0", None, &["10.9.0.1"]),
            iface("Ethernet 2", Some("bc:24:11:00:00:09"), &["198.51.100.9"]),
        ];
        let macs = ["BC:24:11:5A:3C:01".parse().unwrap()];
        assert_eq!(
            pick_address(&ifs, &macs, rules),
            Some("198.51.100.9".parse().unwrap())
        );
    }

    #[test]
    fn honours_allowed_ranges_and_ipv4_only() {
        let ifs = [iface(
            "eth0",
            Some("bc:24:11:5a:3c:01"),
            &["2001:db8::5", "203.0.113.5", "192.0.2.10"],
        )];
        let macs = ["bc:24:11:5a:3c:01".parse().unwrap()];
        let allowed = ["192.0.2.0/24".parse().unwrap()];
        let rules = AddressRules {
            exclude: &[],
            allowed: &allowed,
        };
        assert_eq!(
            pick_address(&ifs, &macs, rules),
            Some("192.0.2.10".parse().unwrap())
        );
        let v6_only = ["2001:db8::/32".parse().unwrap()];
        let rules = AddressRules {
            exclude: &[],
            allowed: &v6_only,
        };
        assert_eq!(pick_address(&ifs, &macs, rules), None);
    }

    #[test]
    fn glob_patterns() {
        assert!(glob("docker*", "docker0"));
        assert!(glob("br-*", "br-3f2a"));
        assert!(!glob("br-*", "bridge"));
        assert!(glob("*flannel*", "cni-flannel.1"));
        assert!(glob("eth0", "eth0"));
        assert!(!glob("eth0", "eth01"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXcYYb"));
    }
}
