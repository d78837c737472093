//! pve-guac-lab: faithful Proxmox VE and Apache Guacamole emulators over
//! HTTPS on 127.0.0.1, for pve-guac-sync's tests, demo and benchmarks.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pve_guac_lab::LabError> {
//! let lab = pve_guac_lab::Lab::start(pve_guac_lab::LabSeed::default()).await?;
//! let url = lab.proxmox_url("lab"); // https://127.0.0.1:PORT (no /api2/json)
//! let pin = lab.fingerprint_sha256();
//! # let _ = (url, pin);
//! lab.shutdown().await;
//! # Ok(()) }
//! ```

pub mod clock;
pub mod faults;
pub mod guacamole;
pub mod http;
pub mod log;
pub mod proxmox;
pub mod seed;
pub mod server;
pub mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::clock::Clock;
pub use crate::faults::{FaultAction, FaultRule, FaultSettings, Faults, ServerKind};
pub use crate::log::{RecordedRequest, RequestLog, RequestMark};
pub use crate::seed::{FaultsSeed, LabSeed, LimitsOverride, SeedError, TransportSeed};

use crate::guacamole::{GuacamoleSeed, GuacamoleServer};
use crate::http::ServerLimits;
use crate::proxmox::{ClusterSeed, ProxmoxCluster};
use crate::server::{ListenerSpec, OnlineCheck, Shutdown, start_listener};
use crate::tls::{LabCert, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Seed(#[from] SeedError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Guacamole(#[from] crate::guacamole::SeedError),
    #[error("cannot listen on 127.0.0.1:{port} for {server}: {error}")]
    Bind {
        server: String,
        port: u16,
        error: std::io::Error,
    },
}

impl LabError {
    pub fn label(&self) -> &'static str {
        match self {
            LabError::Seed(e) => e.label(),
            LabError::Tls(e) => e.label(),
            LabError::Guacamole(e) => e.label(),
            LabError::Bind { .. } => "bind",
        }
    }
}

/// Limits of a real Proxmox VE API daemon (spec §1.4).
pub fn proxmox_limits(seed: &ClusterSeed) -> ServerLimits {
    let mut version = seed
        .pve_version
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (version.next().unwrap_or(0), version.next().unwrap_or(0));
    ServerLimits {
        max_header_lines: Some(64),
        max_header_bytes: Some(8192),
        max_requests_per_connection: 100,
        idle_timeout: Duration::from_secs(5),
        max_body_bytes: if (major, minor) >= (8, 4) {
            512 * 1024
        } else {
            64 * 1024
        },
    }
}

/// Limits of Guacamole behind Tomcat's default connector (100 requests per
/// connection, 20 s keep-alive) with its `api-max-request-size`.
pub fn guacamole_limits(seed: &GuacamoleSeed) -> ServerLimits {
    ServerLimits {
        max_header_lines: None,
        max_header_bytes: None,
        max_requests_per_connection: 100,
        idle_timeout: Duration::from_secs(20),
        max_body_bytes: seed.max_request_bytes,
    }
}

struct LabCluster {
    name: String,
    cluster: Arc<ProxmoxCluster>,
    /// (node, listener address) in seed order.
    nodes: Vec<(String, SocketAddr)>,
    faults: Arc<Faults>,
}

/// A running lab: one HTTPS listener per Proxmox node plus one for Guacamole,
/// a shared certificate, request log and clock. Dropping it stops the
/// listeners; [`Lab::shutdown`] also waits for them.
pub struct Lab {
    clock: Clock,
    cert: LabCert,
    log: Arc<RequestLog>,
    clusters: Vec<LabCluster>,
    guacamole: Arc<GuacamoleServer>,
    guacamole_addr: SocketAddr,
    guacamole_faults: Arc<Faults>,
    shutdown: Shutdown,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    startup: Duration,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("clusters", &self.cluster_names())
            .field("guacamole", &self.guacamole_url())
            .finish_non_exhaustive()
    }
}

impl Lab {
    /// Generate the certificate, build the emulators and bind every listener.
    pub async fn start(mut seed: LabSeed) -> Result<Lab, LabError> {
        let began = Instant::now();
        seed.validate()?;
        let cert = LabCert::generate()?;
        let tls = cert.server_config()?;
        let clock = Clock::new(seed.clock_scale);
        let log = Arc::new(RequestLog::default());
        let shutdown = Shutdown::default();
        let mut tasks = Vec::new();
        let mut next_port = seed.port_base;
        let mut take_port = || {
            let port = next_port.unwrap_or(0);
            next_port = next_port.map(|p| p.saturating_add(1));
            port
        };

        let guacamole_faults = Arc::new(Faults::new(ServerKind::Guacamole));
        guacamole_faults.apply(&seed.faults.guacamole);
        let mut limits = guacamole_limits(&seed.guacamole);
        seed.transport.guacamole.apply(&mut limits);
        let guacamole = GuacamoleServer::try_new(seed.guacamole.clone(), clock.clone())?;
        let port = take_port();
        let running = start_listener(
            ListenerSpec {
                label: "guacamole".into(),
                node: None,
                kind: ServerKind::Guacamole,
                port,
                limits,
                handler: guacamole.handler(),
                faults: guacamole_faults.clone(),
                online: None,
            },
            tls.clone(),
            log.clone(),
            &shutdown,
        )
        .await
        .map_err(|error| LabError::Bind {
            server: "guacamole".into(),
            port,
            error,
        })?;
        let guacamole_addr = running.addr;
        tasks.push(running.task);

        let mut clusters = Vec::new();
        for mut cluster_seed in std::mem::take(&mut seed.clusters) {
            if let Some(on) = seed.auth_delay {
                cluster_seed.options.auth_failure_delay = on;
            }
            let faults = Arc::new(Faults::new(ServerKind::Proxmox));
            if let Some(settings) = seed.faults.proxmox.get(&cluster_seed.name) {
                faults.apply(settings);
            }
            let mut limits = proxmox_limits(&cluster_seed);
            seed.transport.proxmox.apply(&mut limits);
            let name = cluster_seed.name.clone();
            let cluster = ProxmoxCluster::new(cluster_seed, clock.clone());
            let mut nodes = Vec::new();
            for node in cluster.node_names() {
                let label = format!("proxmox:{name}/{node}");
                let online: OnlineCheck = {
                    let (cluster, node) = (cluster.clone(), node.clone());
                    Arc::new(move || cluster.node_online(&node))
                };
                let port = take_port();
                let running = start_listener(
                    ListenerSpec {
                        label: label.clone(),
                        node: Some(node.clone()),
                        kind: ServerKind::Proxmox,
                        port,
                        limits: limits.clone(),
                        handler: cluster.handler(&node),
                        faults: faults.clone(),
                        online: Some(online),
                    },
                    tls.clone(),
                    log.clone(),
                    &shutdown,
                )
                .await
                .map_err(|error| LabError::Bind {
                    server: label,
                    port,
                    error,
                })?;
                nodes.push((node, running.addr));
                tasks.push(running.task);
            }
            clusters.push(LabCluster {
                name,
                cluster,
                nodes,
                faults,
            });
        }

        Ok(Lab {
            clock,
            cert,
            log,
            clusters,
            guacamole,
            guacamole_addr,
            guacamole_faults,
            shutdown,
            tasks,
            startup: began.elapsed(),
        })
    }

    /// How long [`Lab::start`] took.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    pub fn cluster_names(&self) -> Vec<String> {
        self.clusters.iter().map(|c| c.name.clone()).collect()
    }

    fn cluster(&self, name: &str) -> &LabCluster {
        self.clusters
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("the lab has no cluster named {name:?}"))
    }

    /// `https://127.0.0.1:PORT` of the first node that is online now (the
    /// first node when all are offline). No `/api2/json` suffix.
    pub fn proxmox_url(&self, cluster: &str) -> String {
        let c = self.cluster(cluster);
        let (_, addr) = c
            .nodes
            .iter()
            .find(|(node, _)| c.cluster.node_online(node))
            .unwrap_or(&c.nodes[0]);
        https(*addr)
    }

    /// One URL per node, in seed order.
    pub fn proxmox_endpoints(&self, cluster: &str) -> Vec<String> {
        self.cluster(cluster)
            .nodes
            .iter()
            .map(|(_, addr)| https(*addr))
            .collect()
    }

    /// The URL of one node's listener.
    pub fn proxmox_node_url(&self, cluster: &str, node: &str) -> String {
        let c = self.cluster(cluster);
        let (_, addr) = c
            .nodes
            .iter()
            .find(|(n, _)| n == node)
            .unwrap_or_else(|| panic!("cluster {cluster:?} has no node {node:?}"));
        https(*addr)
    }

    pub fn proxmox(&self, cluster: &str) -> &Arc<ProxmoxCluster> {
        &self.cluster(cluster).cluster
    }

    pub fn guacamole(&self) -> &Arc<GuacamoleServer> {
        &self.guacamole
    }

    /// `https://127.0.0.1:PORT/guacamole/api` (with the seeded base path).
    pub fn guacamole_url(&self) -> String {
        format!("{}{}", self.guacamole_origin(), self.guacamole.base_path())
    }

    /// `https://127.0.0.1:PORT`.
    pub fn guacamole_origin(&self) -> String {
        https(self.guacamole_addr)
    }

    /// The certificate every listener serves, as PEM (usable as a CA file).
    pub fn cert_pem(&self) -> &str {
        self.cert.cert_pem()
    }

    pub fn cert_der(&self) -> &[u8] {
        self.cert.cert_der()
    }

    /// `AB:CD:…`: SHA-256 of the DER certificate, upper-case hex with colons.
    pub fn fingerprint_sha256(&self) -> String {
        self.cert.fingerprint_sha256()
    }

    pub fn fingerprint_bytes(&self) -> [u8; 32] {
        self.cert.fingerprint_bytes()
    }

    /// Every request recorded so far (secrets redacted), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.all()
    }

    pub fn request_mark(&self) -> RequestMark {
        self.log.mark()
    }

    pub fn requests_since(&self, mark: RequestMark) -> Vec<RecordedRequest> {
        self.log.since(mark)
    }

    /// Requests per route (`GET /nodes/{node}/qemu`, or `METHOD path`).
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.log.counts()
    }

    /// Connections an offline node dropped, per `proxmox:<cluster>/<node>`.
    pub fn refused_connections(&self) -> BTreeMap<String, u64> {
        self.log.refused_connections()
    }

    pub fn request_log(&self) -> &Arc<RequestLog> {
        &self.log
    }

    /// Runtime faults of one server: `guacamole`, or a cluster as
    /// `proxmox:<cluster>` or just `<cluster>` (rules may name a node).
    /// Panics on an unknown target.
    pub fn faults(&self, target: &str) -> &Faults {
        if target == "guacamole" {
            return &self.guacamole_faults;
        }
        let name = target.strip_prefix("proxmox:").unwrap_or(target);
        &self.cluster(name).faults
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Stop accepting, let in-flight requests finish (up to 2 s), close.
    pub async fn shutdown(mut self) {
        self.shutdown.trigger();
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

fn https(addr: SocketAddr) -> String {
    format!("https://{addr}")
}
