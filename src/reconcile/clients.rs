//! Builds the API clients from the validated settings: one Proxmox client per
//! cluster and one Guacamole client, each owning its TLS, limits, counters
//! and (for Guacamole) its session. They are the expensive, long-lived part
//! of the engine: a reload rebuilds only those whose endpoint, TLS, limits
//! or secret changed, so an unchanged Guacamole keeps its login.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::{ApiSettings, ClusterSettings, GuacamoleSettings, Settings, TlsSettings};
use crate::guacamole::{GuacamoleClient, GuacamoleClientConfig, GuacamoleError};
use crate::http::{HttpConfig, RetryPolicy, TlsMode};
use crate::proxmox::{ProxmoxClient, ProxmoxClientConfig, ProxmoxError};

pub struct Clients {
    pub guacamole: Arc<GuacamoleClient>,
    /// By configured cluster name.
    pub proxmox: BTreeMap<String, Arc<ProxmoxClient>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientsError {
    #[error("Proxmox cluster {cluster}: {source}")]
    Proxmox {
        cluster: String,
        #[source]
        source: Box<ProxmoxError>,
    },
    #[error("Guacamole: {0}")]
    Guacamole(Box<GuacamoleError>),
}

impl ClientsError {
    pub fn label(&self) -> &'static str {
        match self {
            ClientsError::Proxmox { source, .. } => source.label(),
            ClientsError::Guacamole(e) => e.label(),
        }
    }
}

/// Which clients a reload replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientChanges {
    /// Clusters whose client is new (added or changed).
    pub proxmox: Vec<String>,
    /// Clusters no longer configured.
    pub removed: Vec<String>,
    pub guacamole: bool,
}

impl ClientChanges {
    pub fn is_empty(&self) -> bool {
        self.proxmox.is_empty() && self.removed.is_empty() && !self.guacamole
    }
}

pub fn http_config(api: &str, s: &ApiSettings, cancel: &CancellationToken) -> HttpConfig {
    let mut cfg = HttpConfig::new(api, tls_mode(&s.tls));
    cfg.cancel = cancel.clone();
    cfg.connect_timeout = s.timeouts.connect;
    cfg.request_timeout = s.timeouts.request;
    cfg.retry = RetryPolicy {
        max_attempts: s.retry.max_attempts.get(),
        base: s.retry.base_delay,
        cap: s.retry.max_delay,
    };
    cfg.rate_limit_per_sec = Some(s.rate_limit.per_second);
    cfg.burst = s.rate_limit.burst;
    cfg.concurrency = s.concurrency;
    cfg
}

fn tls_mode(t: &TlsSettings) -> TlsMode {
    match t {
        TlsSettings::SystemRoots => TlsMode::SystemRoots,
        TlsSettings::CaFile(p) => TlsMode::CaFile(p.clone()),
        TlsSettings::PinnedSha256(fp) => TlsMode::PinnedSha256(*fp),
        TlsSettings::Insecure => TlsMode::Insecure,
    }
}

impl Clients {
    /// `cancel` ends the clients' retry and pause waits (shutdown).
    pub fn new(settings: &Settings, cancel: &CancellationToken) -> Result<Clients, ClientsError> {
        let mut proxmox = BTreeMap::new();
        for c in &settings.proxmox.clusters {
            proxmox.insert(c.name.clone(), proxmox_client(c, cancel)?);
        }
        let guacamole = guacamole_client(&settings.guacamole, cancel)?;
        Ok(Clients { guacamole, proxmox })
    }

    /// The clients for `new`, reusing each one whose connection settings
    /// are the same in `old` and `new`. Nothing is replaced unless every new
    /// client could be built.
    pub fn rebuilt(
        &self,
        old: &Settings,
        new: &Settings,
        cancel: &CancellationToken,
    ) -> Result<(Clients, ClientChanges), ClientsError> {
        let mut changes = ClientChanges::default();
        let mut proxmox = BTreeMap::new();
        for c in &new.proxmox.clusters {
            let before = old.proxmox.clusters.iter().find(|o| o.name == c.name);
            let client = match (before, self.proxmox.get(&c.name)) {
                (Some(before), Some(client)) if before == c => client.clone(),
                _ => {
                    changes.proxmox.push(c.name.clone());
                    proxmox_client(c, cancel)?
                }
            };
            proxmox.insert(c.name.clone(), client);
        }
        changes.removed = self
            .proxmox
            .keys()
            .filter(|name| !proxmox.contains_key(*name))
            .cloned()
            .collect();
        let guacamole = if same_guacamole_client(&old.guacamole, &new.guacamole) {
            self.guacamole.clone()
        } else {
            changes.guacamole = true;
            guacamole_client(&new.guacamole, cancel)?
        };
        Ok((Clients { guacamole, proxmox }, changes))
    }

    /// Per-endpoint figures of every client since it was built (a client
    /// rebuilt by a reload starts again from zero).
    pub fn http_stats(&self) -> Vec<crate::http::EndpointStats> {
        let mut out = self.guacamole.http().stats();
        for c in self.proxmox.values() {
            out.extend(c.http().stats());
        }
        out
    }

    /// Requests sent so far, per API (`guacamole`, `proxmox:<cluster>`).
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        out.insert(
            "guacamole".to_owned(),
            self.guacamole.http().request_count(),
        );
        for (name, c) in &self.proxmox {
            out.insert(format!("proxmox:{name}"), c.http().request_count());
        }
        out
    }
}

fn proxmox_client(
    c: &ClusterSettings,
    cancel: &CancellationToken,
) -> Result<Arc<ProxmoxClient>, ClientsError> {
    let client = ProxmoxClient::new(ProxmoxClientConfig {
        cluster: c.name.clone(),
        endpoints: c.endpoints.clone(),
        token_id: c.token_id.clone(),
        token_secret: c.token_secret.clone(),
        http: http_config(&format!("proxmox:{}", c.name), &c.api, cancel),
    })
    .map_err(|source| ClientsError::Proxmox {
        cluster: c.name.clone(),
        source: Box::new(source),
    })?;
    Ok(Arc::new(client))
}

fn guacamole_client(
    g: &GuacamoleSettings,
    cancel: &CancellationToken,
) -> Result<Arc<GuacamoleClient>, ClientsError> {
    let client = GuacamoleClient::new(GuacamoleClientConfig {
        url: g.url.clone(),
        base_path: g.base_path.clone(),
        username: g.username.clone(),
        password: g.password.clone(),
        data_source: g.data_source.clone(),
        http: http_config("guacamole", &g.api, cancel),
    })
    .map_err(|e| ClientsError::Guacamole(Box::new(e)))?;
    Ok(Arc::new(client))
}

/// Everything the Guacamole client is built from (the managed group's name
/// is not: a new `root_group` keeps the session).
fn same_guacamole_client(a: &GuacamoleSettings, b: &GuacamoleSettings) -> bool {
    a.url == b.url
        && a.base_path == b.base_path
        && a.username == b.username
        && a.password == b.password
        && a.data_source == b.data_source
        && a.api == b.api
}
