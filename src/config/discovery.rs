//! The `discovery:` section: where addresses come from, how often they are
//! asked again, the optional active probe, power-up of stopped guests and the
//! Wake-on-LAN parameters. Raw structs (as written) and validated settings;
//! the checks live in `validate/discovery.rs`.

use std::net::Ipv4Addr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::raw::{At, Text};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDiscovery {
    pub sources: Option<At<Vec<At<Text>>>>,
    pub refresh: Option<At<Text>>,
    pub cache_ttl: Option<At<Text>>,
    pub backoff: Option<At<RawBackoff>>,
    pub interface_exclude: Option<At<Vec<At<Text>>>>,
    pub arp_table: Option<At<Text>>,
    pub probe: Option<At<RawProbe>>,
    pub power_up: Option<At<RawPowerUp>>,
    pub wol: Option<At<RawWol>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackoff {
    pub initial: Option<At<Text>>,
    pub max: Option<At<Text>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProbe {
    pub enabled: Option<At<bool>>,
    pub per_second: Option<At<u64>>,
    pub max_addresses: Option<At<u64>>,
    pub timeout: Option<At<Text>>,
    pub interval: Option<At<Text>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPowerUp {
    pub enabled: Option<At<bool>>,
    pub tag: Option<At<Text>>,
    pub wait: Option<At<Text>>,
    pub shutdown_timeout: Option<At<Text>>,
    pub max_concurrent: Option<At<u64>>,
    pub max_per_cycle: Option<At<u64>>,
    pub cooldown: Option<At<Text>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWol {
    pub enabled: Option<At<bool>>,
    pub broadcast_addr: Option<At<Text>>,
    pub udp_port: Option<At<u64>>,
    pub wait_time: Option<At<u64>>,
}

/// One address source, in `discovery.sources` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// The block's `host`/`ip`: not discovery, always first when listed.
    Host,
    /// QEMU guest agent `network-get-interfaces`.
    Agent,
    /// A container's static `ip=` in `net0` (no request).
    Static,
    /// Container `interfaces`.
    Container,
    /// The host's neighbour table file.
    Arp,
    /// The last good address in the state directory.
    Cache,
    /// TCP connects across `sync.allowed_networks`, then the neighbour table.
    Probe,
}

impl SourceKind {
    pub const NAMES: &'static [&'static str] = &[
        "host",
        "agent",
        "static",
        "container",
        "arp",
        "cache",
        "probe",
    ];

    pub fn parse(text: &str) -> Option<SourceKind> {
        Some(match text {
            "host" => SourceKind::Host,
            "agent" => SourceKind::Agent,
            "static" => SourceKind::Static,
            "container" => SourceKind::Container,
            "arp" => SourceKind::Arp,
            "cache" => SourceKind::Cache,
            "probe" => SourceKind::Probe,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Host => "host",
            SourceKind::Agent => "agent",
            SourceKind::Static => "static",
            SourceKind::Container => "container",
            SourceKind::Arp => "arp",
            SourceKind::Cache => "cache",
            SourceKind::Probe => "probe",
        }
    }
}

/// `static` (a container's `ip=` in its config) is opt-in: a container whose
/// address changed inside the guest would keep a stale connection.
pub const DEFAULT_SOURCES: &[SourceKind] = &[
    SourceKind::Host,
    SourceKind::Agent,
    SourceKind::Container,
    SourceKind::Arp,
    SourceKind::Cache,
];

pub const DEFAULT_INTERFACE_EXCLUDE: &[&str] =
    &["docker*", "br-*", "veth*", "virbr*", "cni*", "flannel*"];

pub const DEFAULT_ARP_TABLE: &str = "/proc/net/arp";
pub const DEFAULT_POWER_UP_TAG: &str = "guac-power-up";

#[derive(Debug, Clone, PartialEq)]
pub struct DiscoverySettings {
    /// Sources in the order they are asked (`host` only ever first).
    pub sources: Vec<SourceKind>,
    /// A known address is asked again after this long.
    pub refresh: Duration,
    /// How long a cached address may stand in when no source answers.
    pub cache_ttl: Duration,
    /// Per-guest backoff after a failed discovery: initial, doubling to max.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Guest interface name patterns (`*` wildcard) never used.
    pub interface_exclude: Vec<String>,
    pub arp_table: PathBuf,
    pub probe: ProbeSettings,
    pub power_up: PowerUpSettings,
    pub wol: WolSettings,
}

impl Default for DiscoverySettings {
    fn default() -> Self {
        DiscoverySettings {
            sources: DEFAULT_SOURCES.to_vec(),
            refresh: Duration::from_secs(3600),
            cache_ttl: Duration::from_secs(7 * 24 * 3600),
            backoff_initial: Duration::from_secs(60),
            backoff_max: Duration::from_secs(3600),
            interface_exclude: DEFAULT_INTERFACE_EXCLUDE
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            arp_table: PathBuf::from(DEFAULT_ARP_TABLE),
            probe: ProbeSettings::default(),
            power_up: PowerUpSettings::default(),
            wol: WolSettings::default(),
        }
    }
}

/// The active probe: off unless enabled, bounded in rate and count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    pub enabled: bool,
    pub per_second: NonZeroU32,
    /// Addresses tried per sweep, over all allowed networks.
    pub max_addresses: NonZeroU32,
    /// Connect timeout of one attempt.
    pub timeout: Duration,
    /// Minimum time between two sweeps.
    pub interval: Duration,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            enabled: false,
            per_second: NonZeroU32::new(20).expect("non-zero"),
            max_addresses: NonZeroU32::new(256).expect("non-zero"),
            timeout: Duration::from_millis(300),
            interval: Duration::from_secs(600),
        }
    }
}

/// Starting stopped guests to learn their address (opt-in, per tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerUpSettings {
    pub enabled: bool,
    /// Only guests carrying this Proxmox tag (lower case).
    pub tag: String,
    /// How long to wait for an address after the start.
    pub wait: Duration,
    /// Clean shutdown first; a hard stop after this long.
    pub shutdown_timeout: Duration,
    pub max_concurrent: NonZeroU32,
    pub max_per_cycle: NonZeroU32,
    /// No new power-up of a guest for this long after one found no address.
    pub cooldown: Duration,
}

impl Default for PowerUpSettings {
    fn default() -> Self {
        PowerUpSettings {
            enabled: false,
            tag: DEFAULT_POWER_UP_TAG.to_owned(),
            wait: Duration::from_secs(180),
            shutdown_timeout: Duration::from_secs(120),
            max_concurrent: NonZeroU32::new(2).expect("non-zero"),
            max_per_cycle: NonZeroU32::new(5).expect("non-zero"),
            cooldown: Duration::from_secs(24 * 3600),
        }
    }
}

/// Wake-on-LAN parameters for Guacamole (which sends the packet itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WolSettings {
    pub enabled: bool,
    pub broadcast_addr: Ipv4Addr,
    pub udp_port: u16,
    /// Seconds Guacamole waits after the packet; `None`: not set.
    pub wait_time: Option<u32>,
}

impl Default for WolSettings {
    fn default() -> Self {
        WolSettings {
            enabled: true,
            broadcast_addr: Ipv4Addr::BROADCAST,
            udp_port: 9,
            wait_time: None,
        }
    }
}
