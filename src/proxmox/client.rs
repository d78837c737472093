//! The Proxmox VE API client: token auth, endpoint failover, typed calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use url::Url;

use super::agent::{parse_agent_interfaces, parse_ct_interfaces};
use super::error::ProxmoxError;
use super::permissions::{
    AuthReport, Feature, Permissions, PrivilegeCheck, checked_paths, evaluate, needs_tree,
};
use super::tasks::Upid;
use super::types::{
    ClusterResource, ClusterStatus, ClusterStatusEntry, GuestConfig, GuestInterface, GuestKind,
    GuestStatus, NodeInfo, TaskStatus, Version,
};
use crate::http::{Http, HttpConfig, HttpError, HttpRequest, HttpResponse, RetryScope};
use crate::secret::Secret;

const ENDPOINT_UNTRIED: u8 = 0;
const ENDPOINT_UP: u8 = 1;
const ENDPOINT_DOWN: u8 = 2;

fn bases_reached(n: usize) -> Vec<AtomicU8> {
    (0..n).map(|_| AtomicU8::new(ENDPOINT_UNTRIED)).collect()
}

/// Settings of one cluster's client.
#[derive(Debug, Clone)]
pub struct ProxmoxClientConfig {
    /// Name used in errors, stats and logs.
    pub cluster: String,
    /// Nodes to contact, in failover order: `https://host:8006` (with or
    /// without `/api2/json`).
    pub endpoints: Vec<Url>,
    /// `user@realm!tokenname`.
    pub token_id: String,
    pub token_secret: Secret,
    pub http: HttpConfig,
}

/// Result of contacting one endpoint directly (for `test-auth`).
#[derive(Debug)]
pub struct EndpointProbe {
    pub endpoint: Url,
    pub result: Result<Version, ProxmoxError>,
}

/// Cheap to clone; clones share the connection pool, limits and the
/// remembered working endpoint.
#[derive(Clone)]
pub struct ProxmoxClient {
    inner: Arc<Inner>,
}

struct Inner {
    cluster: String,
    /// API bases, each ending in `/api2/json`.
    bases: Vec<Url>,
    auth: Secret,
    /// How certificates are verified, for reports.
    tls: String,
    http: Http,
    /// Index of the endpoint that answered last.
    preferred: AtomicUsize,
    /// Per endpoint (same order as `bases`): what its last attempt got
    /// (`ENDPOINT_*`), for the status page.
    reached: Vec<AtomicU8>,
    poll_min_ms: AtomicU64,
    poll_max_ms: AtomicU64,
}

impl std::fmt::Debug for ProxmoxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxmoxClient")
            .field("cluster", &self.inner.cluster)
            .field("endpoints", &self.inner.bases.len())
            .finish()
    }
}

/// One API call, before an endpoint is chosen.
struct Call<'a> {
    method: Method,
    segments: Vec<&'a str>,
    query: Vec<(&'a str, String)>,
    form: Option<Vec<(String, Secret)>>,
    endpoint: &'static str,
    idempotent: bool,
    /// The node a node-scoped call addresses (for 595 errors).
    node: Option<&'a str>,
}

impl<'a> Call<'a> {
    fn get(segments: Vec<&'a str>, endpoint: &'static str) -> Self {
        Call {
            method: Method::GET,
            segments,
            query: Vec::new(),
            form: None,
            endpoint,
            idempotent: true,
            node: None,
        }
    }

    fn on_node(mut self, node: &'a str) -> Self {
        self.node = Some(node);
        self
    }
}

fn validate_token_id(id: &str) -> Result<(), String> {
    let (user, token) = id
        .split_once('!')
        .ok_or("token id must look like user@realm!tokenname")?;
    let (name, realm) = user
        .rsplit_once('@')
        .ok_or("token id must look like user@realm!tokenname")?;
    if name.is_empty() || realm.is_empty() || token.len() < 2 {
        return Err("token id must look like user@realm!tokenname".into());
    }
    if id.contains(char::is_whitespace) || id.contains('=') {
        return Err("token id must not contain whitespace or '='".into());
    }
    Ok(())
}

/// `https://h:8006`, `https://h:8006/`, `https://h:8006/api2/json` → `https://h:8006/api2/json`.
fn api_base(endpoint: &Url) -> Result<Url, String> {
    if endpoint.scheme() != "https" {
        return Err(format!(
            "endpoint {endpoint} must use https (Proxmox serves its API over TLS only)"
        ));
    }
    if endpoint.host_str().is_none() || endpoint.cannot_be_a_base() {
        return Err(format!("endpoint {endpoint} has no host"));
    }
    if endpoint.query().is_some()
        || !endpoint.username().is_empty()
        || endpoint.password().is_some()
    {
        return Err(format!(
            "endpoint {} must not carry a query or credentials",
            endpoint.host_str().unwrap_or("?")
        ));
    }
    let mut base = endpoint.clone();
    let path = base.path().trim_end_matches('/').to_string();
    let path = path.strip_suffix("/api2/json").unwrap_or(&path).to_string();
    base.set_path(&format!("{path}/api2/json"));
    Ok(base)
}

impl ProxmoxClient {
    pub fn new(cfg: ProxmoxClientConfig) -> Result<ProxmoxClient, ProxmoxError> {
        let config_error = |reason: String| ProxmoxError::Config {
            reason: format!("cluster {}: {reason}", cfg.cluster),
        };
        if cfg.endpoints.is_empty() {
            return Err(config_error("no endpoints".into()));
        }
        validate_token_id(&cfg.token_id).map_err(config_error)?;
        if cfg.token_secret.is_empty() {
            return Err(config_error("the token secret is empty".into()));
        }
        let bases = cfg
            .endpoints
            .iter()
            .map(api_base)
            .collect::<Result<Vec<_>, _>>()
            .map_err(config_error)?;
        let tls = cfg.http.tls.describe();
        let cfg_endpoints_len = bases.len();
        let http = Http::new(cfg.http).map_err(|source| ProxmoxError::Http {
            cluster: cfg.cluster.clone(),
            source,
        })?;
        let auth = Secret::new(format!(
            "PVEAPIToken={}={}",
            cfg.token_id,
            cfg.token_secret.expose()
        ));
        Ok(ProxmoxClient {
            inner: Arc::new(Inner {
                cluster: cfg.cluster,
                bases,
                auth,
                tls,
                http,
                preferred: AtomicUsize::new(0),
                reached: bases_reached(cfg_endpoints_len),
                poll_min_ms: AtomicU64::new(250),
                poll_max_ms: AtomicU64::new(2000),
            }),
        })
    }

    /// Task polling starts at `min` and grows by half up to `max`.
    pub fn set_task_poll_interval(&self, min: Duration, max: Duration) {
        let min_ms = min.as_millis().max(1) as u64;
        self.inner.poll_min_ms.store(min_ms, Ordering::Relaxed);
        self.inner
            .poll_max_ms
            .store((max.as_millis() as u64).max(min_ms), Ordering::Relaxed);
    }

    pub fn cluster(&self) -> &str {
        &self.inner.cluster
    }

    /// The shared HTTP layer (stats, request count).
    pub fn http(&self) -> &Http {
        &self.inner.http
    }

    /// Each endpoint (`host:port`) with whether its last attempt got an
    /// answer (`None`: not tried yet).
    pub fn endpoint_reachability(&self) -> Vec<(String, Option<bool>)> {
        let inner = &self.inner;
        inner
            .bases
            .iter()
            .zip(&inner.reached)
            .map(|(base, state)| {
                let host = match (base.host_str(), base.port_or_known_default()) {
                    (Some(h), Some(p)) => format!("{h}:{p}"),
                    (h, _) => h.unwrap_or("?").to_owned(),
                };
                let state = match state.load(Ordering::Relaxed) {
                    ENDPOINT_UP => Some(true),
                    ENDPOINT_DOWN => Some(false),
                    _ => None,
                };
                (host, state)
            })
            .collect()
    }

    /// The endpoint that answered last (or the first one).
    pub fn current_endpoint(&self) -> &Url {
        &self.inner.bases[self.inner.preferred.load(Ordering::Relaxed) % self.inner.bases.len()]
    }

    fn url(base: &Url, call: &Call<'_>) -> Url {
        let mut url = base.clone();
        {
            let mut segs = url
                .path_segments_mut()
                .expect("api_base() only accepts base URLs");
            segs.pop_if_empty();
            segs.extend(call.segments.iter().copied());
        }
        if !call.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &call.query {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    fn request(&self, base: &Url, call: &Call<'_>) -> HttpRequest {
        let mut req = HttpRequest::new(call.method.clone(), Self::url(base, call), call.endpoint)
            .header("Authorization", self.inner.auth.clone())
            .idempotent(call.idempotent);
        if let Some(form) = &call.form {
            req = req.form(form.clone());
        }
        req
    }

    fn http_error(&self, source: HttpError) -> ProxmoxError {
        ProxmoxError::Http {
            cluster: self.inner.cluster.clone(),
            source,
        }
    }

    /// Sends the call, failing over to the next endpoint when one cannot be
    /// reached, and returns the envelope's `data`.
    async fn call(&self, call: Call<'_>) -> Result<Value, ProxmoxError> {
        let count = self.inner.bases.len();
        let first = self.inner.preferred.load(Ordering::Relaxed) % count;
        // With several endpoints a dead one is left at once for the next;
        // a single endpoint gets the HTTP layer's own retries.
        let scope = if count > 1 {
            RetryScope::AnswersOnly
        } else {
            RetryScope::All
        };
        let mut last_error = None;
        for offset in 0..count {
            let index = (first + offset) % count;
            let base = &self.inner.bases[index];
            match self
                .inner
                .http
                .execute_with(self.request(base, &call), scope)
                .await
            {
                Ok(resp) => {
                    if index != first {
                        tracing::warn!(
                            cluster = %self.inner.cluster,
                            endpoint = %base.host_str().unwrap_or("?"),
                            "failed over to another Proxmox endpoint"
                        );
                    }
                    self.inner.preferred.store(index, Ordering::Relaxed);
                    self.inner.reached[index].store(ENDPOINT_UP, Ordering::Relaxed);
                    if !resp.is_success() {
                        return Err(ProxmoxError::from_response(
                            &resp,
                            &self.inner.cluster,
                            call.node,
                        ));
                    }
                    return envelope_data(&resp, call.endpoint);
                }
                Err(err) => {
                    let may_fail_over =
                        err.is_endpoint_failure() && (call.idempotent || err.never_sent());
                    if !may_fail_over {
                        return Err(self.http_error(err));
                    }
                    self.inner.reached[index].store(ENDPOINT_DOWN, Ordering::Relaxed);
                    tracing::warn!(
                        cluster = %self.inner.cluster,
                        endpoint = %base.host_str().unwrap_or("?"),
                        error = %err,
                        "Proxmox endpoint unreachable"
                    );
                    last_error = Some(err);
                }
            }
        }
        Err(self.http_error(last_error.expect("at least one endpoint was tried")))
    }

    fn decode<T: serde::de::DeserializeOwned>(
        data: Value,
        endpoint: &'static str,
    ) -> Result<T, ProxmoxError> {
        serde_json::from_value(data).map_err(|e| ProxmoxError::Decode {
            endpoint,
            reason: e.to_string(),
        })
    }

    // ---------------------------------------------------------------------
    // Cluster.

    /// `GET /version`.
    pub async fn version(&self) -> Result<Version, ProxmoxError> {
        let ep = "GET /version";
        Self::decode(self.call(Call::get(vec!["version"], ep)).await?, ep)
    }

    /// `GET /version` on every endpoint separately (TLS and token check).
    pub async fn probe_endpoints(&self) -> Vec<EndpointProbe> {
        let mut out = Vec::new();
        for base in &self.inner.bases {
            let call = Call::get(vec!["version"], "GET /version");
            let result = match self
                .inner
                .http
                .execute_with(self.request(base, &call), RetryScope::AnswersOnly)
                .await
            {
                Ok(resp) if resp.is_success() => resp
                    .json::<Value>()
                    .ok()
                    .and_then(|mut v| v.get_mut("data").map(Value::take))
                    .ok_or_else(|| ProxmoxError::Decode {
                        endpoint: call.endpoint,
                        reason: "no data".into(),
                    })
                    .and_then(|data| Self::decode(data, call.endpoint)),
                Ok(resp) => Err(ProxmoxError::from_response(
                    &resp,
                    &self.inner.cluster,
                    None,
                )),
                Err(e) => Err(self.http_error(e)),
            };
            out.push(EndpointProbe {
                endpoint: base.clone(),
                result,
            });
        }
        out
    }

    /// `GET /cluster/resources?type=vm`: every guest the token may audit.
    /// One malformed guest entry fails the whole listing, so an observation
    /// is never silently incomplete.
    pub async fn cluster_resources(&self) -> Result<Vec<ClusterResource>, ProxmoxError> {
        let ep = "GET /cluster/resources";
        let mut call = Call::get(vec!["cluster", "resources"], ep);
        call.query.push(("type", "vm".into()));
        decode_resources(self.call(call).await?, ep)
    }

    /// `GET /nodes`.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ProxmoxError> {
        let ep = "GET /nodes";
        Self::decode(self.call(Call::get(vec!["nodes"], ep)).await?, ep)
    }

    /// `GET /cluster/status` (needs `Sys.Audit` on `/`).
    pub async fn cluster_status(&self) -> Result<ClusterStatus, ProxmoxError> {
        let ep = "GET /cluster/status";
        let entries: Vec<ClusterStatusEntry> = Self::decode(
            self.call(Call::get(vec!["cluster", "status"], ep)).await?,
            ep,
        )?;
        Ok(ClusterStatus { entries })
    }

    // ---------------------------------------------------------------------
    // Guests.

    /// `GET /nodes/N/{qemu|lxc}/V/config` (pending changes applied).
    pub async fn config(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
    ) -> Result<GuestConfig, ProxmoxError> {
        let ep = "GET /nodes/{node}/{kind}/{vmid}/config";
        let id = vmid.to_string();
        let data = self
            .call(Call::get(vec!["nodes", node, kind.as_str(), &id, "config"], ep).on_node(node))
            .await?;
        match data {
            Value::Object(map) => {
                GuestConfig::from_map(kind, map).map_err(|reason| ProxmoxError::Decode {
                    endpoint: ep,
                    reason,
                })
            }
            _ => Err(ProxmoxError::Decode {
                endpoint: ep,
                reason: "expected an object".into(),
            }),
        }
    }

    /// Writes the notes (`description`) with `PUT …/config`, guarded by the
    /// digest read with the config; empty notes delete the key. Not retried
    /// after an ambiguous failure: a repeated guarded write would report a
    /// digest mismatch for its own change.
    pub async fn set_notes(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
        notes: &str,
        digest: Option<&str>,
    ) -> Result<(), ProxmoxError> {
        let ep = "PUT /nodes/{node}/{kind}/{vmid}/config";
        let id = vmid.to_string();
        let mut form = if notes.is_empty() {
            vec![("delete".to_string(), Secret::new("description"))]
        } else {
            vec![("description".to_string(), Secret::new(notes))]
        };
        if let Some(digest) = digest {
            form.push(("digest".to_string(), Secret::new(digest)));
        }
        let call = Call {
            method: Method::PUT,
            segments: vec!["nodes", node, kind.as_str(), &id, "config"],
            query: Vec::new(),
            form: Some(form),
            endpoint: ep,
            idempotent: false,
            node: Some(node),
        };
        self.call(call).await?;
        Ok(())
    }

    /// `GET …/status/current`.
    pub async fn status_current(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
    ) -> Result<GuestStatus, ProxmoxError> {
        let ep = "GET /nodes/{node}/{kind}/{vmid}/status/current";
        let id = vmid.to_string();
        let data = self
            .call(
                Call::get(
                    vec!["nodes", node, kind.as_str(), &id, "status", "current"],
                    ep,
                )
                .on_node(node),
            )
            .await?;
        Self::decode(data, ep)
    }

    async fn power(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
        action: &'static str,
        endpoint: &'static str,
        form: Vec<(String, Secret)>,
    ) -> Result<Upid, ProxmoxError> {
        let id = vmid.to_string();
        let call = Call {
            method: Method::POST,
            segments: vec!["nodes", node, kind.as_str(), &id, "status", action],
            query: Vec::new(),
            form: Some(form),
            endpoint,
            idempotent: false,
            node: Some(node),
        };
        let data = self.call(call).await?;
        let text = data.as_str().ok_or_else(|| ProxmoxError::Decode {
            endpoint,
            reason: "expected a UPID string".into(),
        })?;
        text.parse()
            .map_err(|reason| ProxmoxError::Decode { endpoint, reason })
    }

    /// `POST …/status/start` → task id (VM errors surface in the task).
    pub async fn start(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
    ) -> Result<Upid, ProxmoxError> {
        self.power(
            node,
            kind,
            vmid,
            "start",
            "POST /nodes/{node}/{kind}/{vmid}/status/start",
            Vec::new(),
        )
        .await
    }

    /// `POST …/status/shutdown` (clean shutdown, optional timeout in seconds).
    pub async fn shutdown(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
        timeout: Option<Duration>,
    ) -> Result<Upid, ProxmoxError> {
        let form = timeout
            .map(|t| {
                vec![(
                    "timeout".to_string(),
                    Secret::new(t.as_secs().max(1).to_string()),
                )]
            })
            .unwrap_or_default();
        self.power(
            node,
            kind,
            vmid,
            "shutdown",
            "POST /nodes/{node}/{kind}/{vmid}/status/shutdown",
            form,
        )
        .await
    }

    /// `POST …/status/stop` (hard power-off).
    pub async fn stop(&self, node: &str, kind: GuestKind, vmid: u32) -> Result<Upid, ProxmoxError> {
        self.power(
            node,
            kind,
            vmid,
            "stop",
            "POST /nodes/{node}/{kind}/{vmid}/status/stop",
            Vec::new(),
        )
        .await
    }

    /// `GET /nodes/N/tasks/U/status` on the task's node.
    pub async fn task_status(&self, upid: &Upid) -> Result<TaskStatus, ProxmoxError> {
        let ep = "GET /nodes/{node}/tasks/{upid}/status";
        let data = self
            .call(
                Call::get(
                    vec!["nodes", &upid.node, "tasks", upid.as_str(), "status"],
                    ep,
                )
                .on_node(&upid.node),
            )
            .await?;
        Self::decode(data, ep)
    }

    /// Polls a task until it stops. `Ok` for `OK`/`WARNINGS`; a failed task is
    /// [`ProxmoxError::TaskFailed`] (see `task_cause()`), an unfinished one
    /// [`ProxmoxError::TaskTimeout`]; shutdown ends the polling with a
    /// `cancelled` error.
    pub async fn wait_task(
        &self,
        upid: &Upid,
        timeout: Duration,
    ) -> Result<TaskStatus, ProxmoxError> {
        self.poll_task(upid, timeout, true).await
    }

    /// [`ProxmoxClient::wait_task`] that keeps polling during shutdown: a
    /// guest the daemon powered up must be put back before the process exits.
    pub async fn wait_task_through_shutdown(
        &self,
        upid: &Upid,
        timeout: Duration,
    ) -> Result<TaskStatus, ProxmoxError> {
        self.poll_task(upid, timeout, false).await
    }

    async fn poll_task(
        &self,
        upid: &Upid,
        timeout: Duration,
        obey_shutdown: bool,
    ) -> Result<TaskStatus, ProxmoxError> {
        let started = Instant::now();
        let max = Duration::from_millis(self.inner.poll_max_ms.load(Ordering::Relaxed));
        let mut interval = Duration::from_millis(self.inner.poll_min_ms.load(Ordering::Relaxed));
        loop {
            let status = self.task_status(upid).await?;
            if !status.is_running() {
                if status.succeeded() {
                    return Ok(status);
                }
                return Err(ProxmoxError::TaskFailed {
                    upid: upid.to_string(),
                    exitstatus: status
                        .exitstatus
                        .unwrap_or_else(|| "unexpected status".into()),
                });
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(ProxmoxError::TaskTimeout {
                    upid: upid.to_string(),
                    waited,
                });
            }
            let pause = interval.min(timeout - waited);
            if obey_shutdown {
                // Shutdown ends the wait (the task itself runs on in Proxmox).
                self.inner
                    .http
                    .sleep(pause, "GET task status")
                    .await
                    .map_err(|source| ProxmoxError::Http {
                        cluster: self.inner.cluster.clone(),
                        source,
                    })?;
            } else {
                tokio::time::sleep(pause).await;
            }
            interval = (interval * 3 / 2).min(max);
        }
    }

    /// `GET /nodes/N/qemu/V/agent/network-get-interfaces`: the agent's view.
    /// An agent-reported error (HTTP 200) is [`ProxmoxError::AgentCommand`].
    pub async fn network_get_interfaces(
        &self,
        node: &str,
        vmid: u32,
    ) -> Result<Vec<GuestInterface>, ProxmoxError> {
        let ep = "GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces";
        let id = vmid.to_string();
        let data = self
            .call(
                Call::get(
                    vec![
                        "nodes",
                        node,
                        "qemu",
                        &id,
                        "agent",
                        "network-get-interfaces",
                    ],
                    ep,
                )
                .on_node(node),
            )
            .await?;
        parse_agent_interfaces(&data, ep)
    }

    /// `GET /nodes/N/lxc/V/interfaces`: `None` when the container is stopped
    /// (or missing).
    pub async fn container_interfaces(
        &self,
        node: &str,
        vmid: u32,
    ) -> Result<Option<Vec<GuestInterface>>, ProxmoxError> {
        let ep = "GET /nodes/{node}/lxc/{vmid}/interfaces";
        let id = vmid.to_string();
        let data = self
            .call(Call::get(vec!["nodes", node, "lxc", &id, "interfaces"], ep).on_node(node))
            .await?;
        parse_ct_interfaces(&data, ep)
    }

    // ---------------------------------------------------------------------
    // Permissions.

    /// `GET /access/permissions[?path=]` for the token itself.
    pub async fn permissions(&self, path: Option<&str>) -> Result<Permissions, ProxmoxError> {
        let ep = "GET /access/permissions";
        let mut call = Call::get(vec!["access", "permissions"], ep);
        if let Some(path) = path {
            call.query.push(("path", path.to_string()));
        }
        let data = self.call(call).await?;
        Permissions::from_value(&data).ok_or(ProxmoxError::Decode {
            endpoint: ep,
            reason: "expected an object".into(),
        })
    }

    /// The Proxmox half of `test-auth`: contacts every endpoint, then checks
    /// the privileges `features` need (through any endpoint that answered).
    pub async fn test_auth(&self, features: &[Feature]) -> AuthReport {
        let endpoints = self.probe_endpoints().await;
        let checks = if endpoints.iter().any(|e| e.result.is_ok()) {
            Some(self.check_privileges(features).await)
        } else {
            None
        };
        AuthReport {
            cluster: self.inner.cluster.clone(),
            tls: self.inner.tls.clone(),
            endpoints,
            checks,
        }
    }

    /// The privilege checks for `test-auth`: one line per feature, naming the
    /// privilege (PVE 9: `VM.GuestAgent.Audit`, PVE 8: `VM.Monitor`, decided
    /// by `/version`), its path and whether the token holds it. Each path is
    /// asked with `path=` (the exact effective privileges there, inherited
    /// and pool-derived ones included); the whole tree is read only to name
    /// guests that hold a privilege missing on `/vms`.
    pub async fn check_privileges(
        &self,
        features: &[Feature],
    ) -> Result<Vec<PrivilegeCheck>, ProxmoxError> {
        let version = self.version().await?;
        let major = version.major().unwrap_or(9);
        let mut held = Permissions::default();
        for path in checked_paths(features, major) {
            let answer = self.permissions(Some(path)).await?;
            held.0.insert(path.to_string(), answer.on(path));
        }
        let tree = if needs_tree(&held, features, major) {
            Some(self.permissions(None).await?)
        } else {
            None
        };
        Ok(evaluate(&held, tree.as_ref(), features, major))
    }
}

/// The `data` of a successful answer's `{"data": …}` envelope.
pub(super) fn envelope_data(
    resp: &HttpResponse,
    endpoint: &'static str,
) -> Result<Value, ProxmoxError> {
    let envelope: Value = resp.json().map_err(|e| ProxmoxError::Decode {
        endpoint,
        reason: format!("invalid JSON: {e}"),
    })?;
    match envelope {
        Value::Object(mut map) => Ok(map.remove("data").unwrap_or(Value::Null)),
        _ => Err(ProxmoxError::Decode {
            endpoint,
            reason: "the answer is not a JSON object".into(),
        }),
    }
}

/// Guests of a `/cluster/resources?type=vm` answer (other types skipped).
pub(super) fn decode_resources(
    data: Value,
    ep: &'static str,
) -> Result<Vec<ClusterResource>, ProxmoxError> {
    let list = data.as_array().ok_or_else(|| ProxmoxError::Decode {
        endpoint: ep,
        reason: "expected an array".into(),
    })?;
    list.iter()
        .filter(|entry| {
            matches!(
                entry.get("type").and_then(Value::as_str),
                Some("qemu") | Some("lxc")
            )
        })
        .map(|entry| ProxmoxClient::decode(entry.clone(), ep))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::TlsMode;

    fn config(endpoints: &[&str]) -> ProxmoxClientConfig {
        ProxmoxClientConfig {
            cluster: "lab".into(),
            endpoints: endpoints.iter().map(|e| e.parse().unwrap()).collect(),
            token_id: "svc@pve!daemon".into(),
            token_secret: Secret::new("00000000-1111-2222-3333-444444444444"),
            http: HttpConfig::new("proxmox:lab", TlsMode::Insecure),
        }
    }

    /// pve-http-server splits pairs on `;` as well as `&` and cuts a value at
    /// a second raw `=`: query values must carry all three percent-encoded.
    /// (`url`'s form serializer, also used for form bodies by `http::send`,
    /// leaves only `*-._` and alphanumerics raw and writes a space as `+`.)
    #[test]
    fn query_values_encode_pair_separators() {
        let base = api_base(&"https://h:8006".parse().unwrap()).unwrap();
        let mut call = Call::get(vec!["access", "permissions"], "GET /access/permissions");
        call.query.push(("path", "/vms;a=b&c d+e%".to_string()));
        let url = ProxmoxClient::url(&base, &call);
        assert_eq!(url.query(), Some("path=%2Fvms%3Ba%3Db%26c+d%2Be%25"));
    }

    #[test]
    fn api_base_normalises_paths() {
        for e in [
            "https://h:8006",
            "https://h:8006/",
            "https://h:8006/api2/json",
            "https://h:8006/api2/json/",
        ] {
            assert_eq!(
                api_base(&e.parse().unwrap()).unwrap().as_str(),
                "https://h:8006/api2/json"
            );
        }
        assert_eq!(
            api_base(&"https://h/pve/".parse().unwrap())
                .unwrap()
                .as_str(),
            "https://h/pve/api2/json"
        );
        assert!(api_base(&"http://h:8006".parse().unwrap()).is_err());
    }

    #[test]
    fn urls_encode_segments_and_query() {
        let base = api_base(&"https://h:8006".parse().unwrap()).unwrap();
        let mut call = Call::get(
            vec![
                "nodes",
                "pve1",
                "tasks",
                "UPID:pve1:1:2:3:qmstart:100:svc@pve!d:",
                "status",
            ],
            "x",
        );
        call.query.push(("path", "/vms".into()));
        let url = ProxmoxClient::url(&base, &call);
        assert_eq!(
            url.as_str(),
            "https://h:8006/api2/json/nodes/pve1/tasks/UPID:pve1:1:2:3:qmstart:100:svc@pve!d:/status?path=%2Fvms"
        );
    }

    #[test]
    fn config_is_validated_without_leaking_the_secret() {
        assert!(ProxmoxClient::new(config(&["https://127.0.0.1:8006"])).is_ok());
        let mut bad = config(&["https://127.0.0.1:8006"]);
        bad.token_id = "svc@pve".into();
        let err = ProxmoxClient::new(bad).unwrap_err();
        assert_eq!(err.label(), "config");
        assert!(!err.to_string().contains("0000"));
        assert_eq!(
            ProxmoxClient::new(config(&[])).unwrap_err().label(),
            "config"
        );
        let client = ProxmoxClient::new(config(&["https://127.0.0.1:8006"])).unwrap();
        assert!(!format!("{client:?}").contains("0000"));
        let req = client.request(
            &client.inner.bases[0],
            &Call::get(vec!["version"], "GET /version"),
        );
        assert_eq!(req.headers[0].0, "Authorization");
        assert_eq!(
            req.headers[0].1.expose(),
            "PVEAPIToken=svc@pve!daemon=00000000-1111-2222-3333-444444444444"
        );
        assert!(!format!("{req:?}").contains("0000"));
    }
}
