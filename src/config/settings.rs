//! The validated configuration: real types, defaults applied, secrets
//! resolved. Every other layer reads these and never the YAML.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use url::Url;

use super::problem::Problem;
use super::selector::Selector;
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The file these settings came from (for messages and reloads).
    pub file: PathBuf,
    pub proxmox: ProxmoxSettings,
    pub guacamole: GuacamoleSettings,
    pub sync: SyncSettings,
    pub encryption: EncryptionSettings,
    /// Daemon state (identity map, address cache, power journal).
    pub state_dir: PathBuf,
    pub logging: LoggingSettings,
    /// Metrics and health listener.
    pub health: super::health::HealthSettings,
    /// `access:`: who may use the synced connections.
    pub access: super::access::AccessSettings,
    pub discovery: super::discovery::DiscoverySettings,
    /// Hosts that are not Proxmox guests (`external:`).
    pub external: Vec<super::ExternalHost>,
    /// Accepted but worth telling the operator (e.g. `insecure: true`).
    pub warnings: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProxmoxSettings {
    /// At least one; names are unique.
    pub clusters: Vec<ClusterSettings>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    /// Short name used in identities, logs and the `{cluster}` placeholder.
    pub name: String,
    /// API origins (`https://host:8006/`, no path), in failover order.
    pub endpoints: Vec<Url>,
    /// `user@realm!tokenname`.
    pub token_id: String,
    pub token_secret: Secret,
    pub api: ApiSettings,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GuacamoleSettings {
    /// Origin of the Guacamole server (path `/`).
    pub url: Url,
    /// REST API root such as `/guacamole/api`; `None`: detect between
    /// `/guacamole/api` and `/api`.
    pub base_path: Option<String>,
    pub username: String,
    pub password: Secret,
    /// `None`: use the data source the login response names.
    pub data_source: Option<String>,
    /// Name of the managed connection group under ROOT.
    pub root_group: String,
    pub api: ApiSettings,
}

/// How one API is reached: TLS, timeouts, pacing, retries.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiSettings {
    pub tls: TlsSettings,
    pub timeouts: Timeouts,
    pub rate_limit: RateLimit,
    pub concurrency: NonZeroUsize,
    pub retry: RetrySettings,
}

/// Server certificate verification for one API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSettings {
    /// The operating system's trusted roots (the default).
    SystemRoots,
    /// Trust only the CA certificate(s) in this PEM file.
    CaFile(PathBuf),
    /// Accept exactly the certificate with this SHA-256 fingerprint (DER).
    PinnedSha256([u8; 32]),
    /// No verification at all (`insecure: true`), warned about at each start.
    Insecure,
}

impl TlsSettings {
    /// Parses a SHA-256 fingerprint written as `AB:CD:…` (as `openssl x509
    /// -fingerprint -sha256` and the Proxmox GUI print it) or as 64 plain hex
    /// digits; case does not matter.
    pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], FingerprintError> {
        let hex: String = text.trim().chars().filter(|c| *c != ':').collect();
        if !hex.is_ascii() {
            return Err(FingerprintError::NotHex);
        }
        if hex.len() != 64 {
            return Err(FingerprintError::Length(hex.len()));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| FingerprintError::NotHex)?;
        }
        Ok(out)
    }

    /// `AB:CD:…` form of a fingerprint, for messages.
    pub fn format_fingerprint(bytes: &[u8; 32]) -> String {
        bytes
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    pub fn describe(&self) -> String {
        match self {
            TlsSettings::SystemRoots => "system roots".to_owned(),
            TlsSettings::CaFile(p) => format!("CA file {}", p.display()),
            TlsSettings::PinnedSha256(fp) => {
                format!("pinned SHA-256 {}", TlsSettings::format_fingerprint(fp))
            }
            TlsSettings::Insecure => "INSECURE (no certificate verification)".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    #[error("expected 64 hex digits (32 bytes), found {0}")]
    Length(usize),
    #[error("expected hex digits 0-9 and A-F")]
    NotHex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS handshake.
    pub connect: Duration,
    /// Whole request, response body included.
    pub request: Duration,
}

/// Token bucket: steady rate and how many requests may go at once after idling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    /// Total tries of one request, the first included (1 = no retry).
    pub max_attempts: NonZeroU32,
    /// Backoff bounds for decorrelated jitter.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncSettings {
    pub interval: Duration,
    /// Each wait is `interval × (1 ± jitter)`; 0 ≤ jitter ≤ 0.5.
    pub jitter: f64,
    pub dry_run: bool,
    pub max_changes_per_cycle: NonZeroUsize,
    pub prune: PruneSettings,
    /// Used for blocks whose notes set no template.
    pub name_template: String,
    pub grouping: Grouping,
    pub selector: Selector,
    /// Rewrite plaintext passwords in notes as `encrypted_password`.
    pub auto_encrypt: bool,
    /// Every target address must lie in one of these; empty: no restriction.
    pub allowed_networks: Vec<IpNet>,
    /// Whether a block's `host` may be a DNS name rather than an IPv4 address.
    pub allow_dns_names: bool,
    /// Protocol (`rdp`, `vnc`, `ssh`, `telnet`) → Guacamole parameters notes
    /// may set beyond the built-in allow-list.
    pub extra_allowed_parameters: BTreeMap<String, BTreeSet<String>>,
    /// How often every managed connection's parameters are re-read and
    /// compared, instead of trusting what the daemon last wrote.
    pub verify_interval: Duration,
}

impl SyncSettings {
    /// Whether `addr` may be a connection target (notes spec §8).
    pub fn address_allowed(&self, addr: IpAddr) -> bool {
        self.allowed_networks.is_empty() || self.allowed_networks.iter().any(|n| n.contains(&addr))
    }

    /// Whether notes may set Guacamole parameter `name` for `protocol`
    /// beyond the built-in allow-list.
    pub fn extra_parameter_allowed(&self, protocol: &str, name: &str) -> bool {
        self.extra_allowed_parameters
            .get(&protocol.to_ascii_lowercase())
            .is_some_and(|set| set.contains(name))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneSettings {
    /// When false, connections of vanished guests are never deleted.
    pub enabled: bool,
    /// How long a guest must be absent (in complete observations) first.
    pub grace: Duration,
}

/// Sub-groups under the managed root group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    None,
    Node,
    Pool,
    Tag,
    Cluster,
}

impl Grouping {
    pub const NAMES: &'static [&'static str] = &["none", "node", "pool", "tag", "cluster"];

    pub fn parse(text: &str) -> Option<Grouping> {
        Some(match text {
            "none" => Grouping::None,
            "node" => Grouping::Node,
            "pool" => Grouping::Pool,
            "tag" => Grouping::Tag,
            "cluster" => Grouping::Cluster,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Grouping::None => "none",
            Grouping::Node => "node",
            Grouping::Pool => "pool",
            Grouping::Tag => "tag",
            Grouping::Cluster => "cluster",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptionSettings {
    /// Fernet keys or legacy passphrases; the first encrypts, all decrypt.
    pub keys: Vec<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingSettings {
    pub format: LogFormat,
    /// A `tracing` filter directive such as `info` or `pve_guac_sync=debug,info`.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// journald when stderr is connected to the journal (`$JOURNAL_STREAM`), else text.
    Auto,
    Journald,
    Text,
    Json,
}

impl LogFormat {
    pub const NAMES: &'static [&'static str] = &["auto", "journald", "text", "json"];

    pub fn parse(text: &str) -> Option<LogFormat> {
        Some(match text {
            "auto" => LogFormat::Auto,
            "journald" => LogFormat::Journald,
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Auto => "auto",
            LogFormat::Journald => "journald",
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let plain = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(TlsSettings::parse_fingerprint(&plain), Ok([0xab; 32]));
        assert_eq!(TlsSettings::parse_fingerprint(&colons), Ok([0xab; 32]));
        assert_eq!(TlsSettings::format_fingerprint(&[0xab; 32]), colons);
        assert_eq!(
            TlsSettings::parse_fingerprint("AB:CD"),
            Err(FingerprintError::Length(4))
        );
        assert_eq!(
            TlsSettings::parse_fingerprint(&"zz".repeat(32)),
            Err(FingerprintError::NotHex)
        );
        // A SHA-1 fingerprint (20 bytes) is refused, not truncated or padded.
        assert_eq!(
            TlsSettings::parse_fingerprint(&vec!["AB"; 20].join(":")),
            Err(FingerprintError::Length(40))
        );
    }

    #[test]
    fn names_round_trip() {
        for name in Grouping::NAMES {
            assert_eq!(Grouping::parse(name).map(Grouping::as_str), Some(*name));
        }
        for name in LogFormat::NAMES {
            assert_eq!(LogFormat::parse(name).map(LogFormat::as_str), Some(*name));
        }
    }
}
