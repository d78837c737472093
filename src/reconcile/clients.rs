//! Builds the API clients from the validated settings: one Proxmox client per
//! cluster and one Guacamole client, each owning its TLS, limits and counters.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{ApiSettings, Settings, TlsSettings};
use crate::guacamole::{GuacamoleClient, GuacamoleClientConfig, GuacamoleError};
use crate::http::{HttpConfig, RetryPolicy, TlsMode};
use crate::proxmox::{ProxmoxClient, ProxmoxClientConfig, ProxmoxError};

pub struct Clients {
    pub guacamole: GuacamoleClient,
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

pub fn http_config(api: &str, s: &ApiSettings) -> HttpConfig {
    let mut cfg = HttpConfig::new(api, tls_mode(&s.tls));
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
    pub fn new(settings: &Settings) -> Result<Clients, ClientsError> {
        let mut proxmox = BTreeMap::new();
        for c in &settings.proxmox.clusters {
            let client = ProxmoxClient::new(ProxmoxClientConfig {
                cluster: c.name.clone(),
                endpoints: c.endpoints.clone(),
                token_id: c.token_id.clone(),
                token_secret: c.token_secret.clone(),
                http: http_config(&format!("proxmox:{}", c.name), &c.api),
            })
            .map_err(|source| ClientsError::Proxmox {
                cluster: c.name.clone(),
                source: Box::new(source),
            })?;
            proxmox.insert(c.name.clone(), Arc::new(client));
        }
        let g = &settings.guacamole;
        let guacamole = GuacamoleClient::new(GuacamoleClientConfig {
            url: g.url.clone(),
            base_path: g.base_path.clone(),
            username: g.username.clone(),
            password: g.password.clone(),
            data_source: g.data_source.clone(),
            http: http_config("guacamole", &g.api),
        })
        .map_err(|e| ClientsError::Guacamole(Box::new(e)))?;
        Ok(Clients { guacamole, proxmox })
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
