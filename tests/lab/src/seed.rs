//! What a lab starts with: clusters, the Guacamole installation, clock speed
//! and faults. Built in Rust or read from a YAML file (unknown keys are errors,
//! reported with file and line).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::faults::FaultSettings;
use crate::guacamole::GuacamoleSeed;
use crate::http::ServerLimits;
use crate::proxmox::ClusterSeed;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabSeed {
    /// One HTTPS listener per node of each cluster.
    pub clusters: Vec<ClusterSeed>,
    pub guacamole: GuacamoleSeed,
    /// Virtual seconds per real second (tasks, agent boot, token expiry…).
    pub clock_scale: f64,
    /// Overrides every cluster's `options.auth_failure_delay` (the 3 s
    /// delay of failed Proxmox authentications) when set.
    pub auth_delay: Option<bool>,
    pub faults: FaultsSeed,
    /// Fixed ports: Guacamole on `port_base`, then every Proxmox node in
    /// seed order on the following ports. Free ports when absent.
    pub port_base: Option<u16>,
    /// Overrides of the real servers' connection limits (e.g. a short idle
    /// timeout, so a test can watch kept-alive connections expire).
    pub transport: TransportSeed,
}

/// Connection-limit overrides per server kind.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportSeed {
    pub proxmox: LimitsOverride,
    pub guacamole: LimitsOverride,
}

/// Each field replaces the real server's value when set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsOverride {
    pub idle_timeout_ms: Option<u64>,
    pub max_requests_per_connection: Option<usize>,
    pub max_header_lines: Option<usize>,
    pub max_header_bytes: Option<usize>,
    pub max_body_bytes: Option<usize>,
}

impl LimitsOverride {
    pub fn apply(&self, limits: &mut ServerLimits) {
        if let Some(ms) = self.idle_timeout_ms {
            limits.idle_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = self.max_requests_per_connection {
            limits.max_requests_per_connection = n.max(1);
        }
        if self.max_header_lines.is_some() {
            limits.max_header_lines = self.max_header_lines;
        }
        if self.max_header_bytes.is_some() {
            limits.max_header_bytes = self.max_header_bytes;
        }
        if let Some(n) = self.max_body_bytes {
            limits.max_body_bytes = n;
        }
    }
}

/// Generic faults per server, active from the start.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultsSeed {
    pub guacamole: FaultSettings,
    /// Keyed by cluster name; shared by the cluster's node listeners.
    pub proxmox: BTreeMap<String, FaultSettings>,
}

impl Default for LabSeed {
    /// The example cluster `lab` and a default Guacamole (guacadmin/guacadmin).
    fn default() -> Self {
        LabSeed {
            clusters: vec![ClusterSeed::example("lab")],
            guacamole: GuacamoleSeed::default(),
            clock_scale: 1.0,
            auth_delay: None,
            faults: FaultsSeed::default(),
            port_base: None,
            transport: TransportSeed::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot read seed file {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}{location}: {message}", path.display())]
    Yaml {
        path: PathBuf,
        /// `:line:column`, when known.
        location: String,
        message: String,
    },
    #[error("invalid seed: {0}")]
    Invalid(String),
}

impl SeedError {
    pub fn label(&self) -> &'static str {
        match self {
            SeedError::Read { .. } => "seed_read",
            SeedError::Yaml { .. } => "seed_yaml",
            SeedError::Invalid(_) => "seed_invalid",
        }
    }
}

impl LabSeed {
    /// A lab with exactly these clusters and the default Guacamole.
    pub fn with_clusters(clusters: Vec<ClusterSeed>) -> Self {
        LabSeed {
            clusters,
            ..LabSeed::default()
        }
    }

    pub fn from_yaml_file(path: impl AsRef<Path>) -> Result<LabSeed, SeedError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| SeedError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        LabSeed::from_yaml_str(&text, path)
    }

    /// Parse YAML text; `origin` names the source in errors.
    pub fn from_yaml_str(text: &str, origin: &Path) -> Result<LabSeed, SeedError> {
        let seed: LabSeed = serde_saphyr::from_str(text).map_err(|e| {
            let location = e.location().filter(|l| l.line() > 0);
            let mut message = e.without_snippet().to_string();
            if let Some(l) = location {
                // The position goes in front, as `file:line:column:`.
                let suffix = format!(" at line {}, column {}", l.line(), l.column());
                if let Some(stripped) = message.strip_suffix(&suffix) {
                    message = stripped.to_string();
                }
            }
            SeedError::Yaml {
                path: origin.to_path_buf(),
                location: location
                    .map(|l| format!(":{}:{}", l.line(), l.column()))
                    .unwrap_or_default(),
                message,
            }
        })?;
        seed.validate()?;
        Ok(seed)
    }

    /// Checks that need the whole seed (serde checks each part).
    pub fn validate(&self) -> Result<(), SeedError> {
        let mut names = BTreeSet::new();
        for c in &self.clusters {
            if !names.insert(c.name.as_str()) {
                return Err(SeedError::Invalid(format!(
                    "cluster name {:?} appears twice",
                    c.name
                )));
            }
            if c.nodes.is_empty() {
                return Err(SeedError::Invalid(format!(
                    "cluster {:?} has no nodes",
                    c.name
                )));
            }
            // Duplicate VMIDs, guests on unknown nodes, ACLs for unknown
            // subjects, …: the emulator's own whole-seed checks.
            c.validate()
                .map_err(|e| SeedError::Invalid(e.to_string()))?;
        }
        if let Some(unknown) = self
            .faults
            .proxmox
            .keys()
            .find(|k| !names.contains(k.as_str()))
        {
            return Err(SeedError::Invalid(format!(
                "faults.proxmox names unknown cluster {unknown:?}"
            )));
        }
        if !(self.clock_scale >= 0.0 && self.clock_scale.is_finite()) {
            return Err(SeedError::Invalid(format!(
                "clock_scale must be a number >= 0, got {}",
                self.clock_scale
            )));
        }
        if !self.guacamole.base_path.starts_with('/') || !self.guacamole.base_path.ends_with("/api")
        {
            return Err(SeedError::Invalid(format!(
                "guacamole.base_path must start with / and end in /api, got {:?}",
                self.guacamole.base_path
            )));
        }
        Ok(())
    }
}
