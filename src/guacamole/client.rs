//! The Guacamole REST client: login and session handling (base path
//! detection, one transparent re-login on an expired token, logout), the
//! connection and group calls, and batches that use the atomic directory
//! PATCH on 1.6 and, on ≤1.5, concurrent per-object calls plus the
//! remove-only PATCH for deletes.
//!
//! The token travels only in the `Guacamole-Token` header — never in a URL,
//! where proxies and request logs would record it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{StreamExt, stream};
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, OnceCell};
use url::Url;

use crate::http::{Http, HttpConfig, HttpRequest, HttpResponse};
use crate::secret::Secret;

use super::error::{ErrorBody, GuacamoleError, error_from_response};
use super::patch::{
    BatchMode, BatchOutcome, DirectoryOp, OpResult, parse_patch_failure, parse_patch_success,
    patch_body, plan_requests, version_from_probe, waves,
};
use super::permissions::{self, ManagedGroup, PermissionChange, PermissionCheck};
use super::types::{
    AuthResult, Connection, ConnectionGroup, ConnectionSpec, GroupSpec, ObjectKind, Parameters,
    PermissionSet, ROOT_GROUP, ServerVersion, TreeGroup,
};

const TOKEN_HEADER: &str = "Guacamole-Token";

/// How to reach and log in to Guacamole.
#[derive(Debug, Clone)]
pub struct GuacamoleClientConfig {
    /// The server, e.g. `https://guac.example`, or the API base itself
    /// (`https://guac.example/guacamole/api`).
    pub url: Url,
    /// Path of the API below `url` (e.g. `/guacamole/api`). `None`: use `url`
    /// as is when it already ends in `/api`, else try `/guacamole/api`, then
    /// `/api`.
    pub base_path: Option<String>,
    pub username: String,
    pub password: Secret,
    /// `None`: the data source the login returns.
    pub data_source: Option<String>,
    pub http: HttpConfig,
}

/// What a login established (no token: that stays inside the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The API base in use, ending in `/api`.
    pub base_url: Url,
    pub username: String,
    pub data_source: String,
    pub available_data_sources: Vec<String>,
}

struct Session {
    info: SessionInfo,
    token: Secret,
    /// Incremented per login, so concurrent callers that all saw the same
    /// token expire trigger a single re-login.
    generation: u64,
    /// Detected once per session: a server restart (upgrade) ends sessions.
    /// Corrected when a 1.6-only request is refused as unsupported.
    version: std::sync::Mutex<Option<ServerVersion>>,
}

impl Session {
    fn cached_version(&self) -> Option<ServerVersion> {
        *self.version.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_version(&self, version: ServerVersion) {
        *self.version.lock().unwrap_or_else(|p| p.into_inner()) = Some(version);
    }
}

pub struct GuacamoleClient {
    http: Http,
    url: Url,
    base_path: Option<String>,
    username: String,
    password: Secret,
    data_source: Option<String>,
    session: Mutex<Option<Arc<Session>>>,
    /// The base that answered the first login; later logins go straight there.
    base: OnceCell<Url>,
    logins: AtomicU64,
}

impl std::fmt::Debug for GuacamoleClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuacamoleClient")
            .field("url", &display_url(&self.url))
            .field("username", &self.username)
            .field("data_source", &self.data_source)
            .finish_non_exhaustive()
    }
}

/// Where a request goes, relative to the base.
enum Scope {
    /// `<base>/...` (tokens, session).
    Base,
    /// `<base>/session/data/{ds}/...`.
    Data,
}

/// One API call, before the token and the base are filled in.
struct Call<'a> {
    method: Method,
    scope: Scope,
    segments: &'a [&'a str],
    body: Option<serde_json::Value>,
    endpoint: &'static str,
    idempotent: bool,
}

impl<'a> Call<'a> {
    fn new(method: Method, segments: &'a [&'a str], endpoint: &'static str) -> Self {
        let idempotent = matches!(method, Method::GET | Method::PUT | Method::DELETE);
        Call {
            method,
            scope: Scope::Data,
            segments,
            body: None,
            endpoint,
            idempotent,
        }
    }

    fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }
}

/// The login answer of one base-path candidate.
enum LoginAttempt {
    /// This is Guacamole and the login worked.
    Ok(AuthResult),
    /// This is Guacamole and it refused (credentials, ban, …).
    Refused(GuacamoleError),
    /// Throttled (429/503) by Guacamole or a proxy: stop, try again later.
    Throttled(GuacamoleError),
    /// Not a Guacamole API here (404, HTML, …): try the next candidate.
    NotHere(String),
}

#[derive(Deserialize)]
struct Created {
    identifier: String,
}

impl GuacamoleClient {
    /// Builds the client; no request is made until the first call (or
    /// [`GuacamoleClient::login`]).
    pub fn new(config: GuacamoleClientConfig) -> Result<Self, GuacamoleError> {
        if config.username.is_empty() {
            return Err(GuacamoleError::Config {
                message: "the Guacamole username is empty".to_owned(),
            });
        }
        if !matches!(config.url.scheme(), "https" | "http") {
            return Err(GuacamoleError::Config {
                message: format!(
                    "the Guacamole URL must be http(s): {}",
                    display_url(&config.url)
                ),
            });
        }
        // Fail early on an unusable base path rather than at the first login.
        base_candidates(&config.url, config.base_path.as_deref())?;
        let http = Http::new(config.http)?;
        Ok(GuacamoleClient {
            http,
            url: config.url,
            base_path: config.base_path,
            username: config.username,
            password: config.password,
            data_source: config.data_source,
            session: Mutex::new(None),
            base: OnceCell::new(),
            logins: AtomicU64::new(0),
        })
    }

    /// The HTTP layer (request counts and latencies for stats).
    pub fn http(&self) -> &Http {
        &self.http
    }

    /// Successful logins so far (the first one plus re-logins).
    pub fn login_count(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    /// Logs in unless a session exists, and describes the session.
    pub async fn login(&self) -> Result<SessionInfo, GuacamoleError> {
        Ok(self.current_session().await?.info.clone())
    }

    /// Ends the session (`DELETE /session`, falling back to
    /// `DELETE /tokens/{token}` on servers without it). A session that has
    /// already expired counts as ended.
    pub async fn logout(&self) -> Result<(), GuacamoleError> {
        let Some(session) = self.session.lock().await.take() else {
            return Ok(());
        };
        let call = Call {
            scope: Scope::Base,
            ..Call::new(Method::DELETE, &["session"], "DELETE /session")
        };
        let resp = self.send(&session, &call).await?;
        match resp.status {
            200..=299 | 403 => Ok(()),
            404 | 405 => {
                let token = session.token.expose().to_owned();
                let segments = ["tokens", token.as_str()];
                let call = Call {
                    scope: Scope::Base,
                    ..Call::new(Method::DELETE, &segments, "DELETE /tokens/{token}")
                };
                let resp = self.send(&session, &call).await?;
                match resp.status {
                    200..=299 | 404 => Ok(()),
                    _ => Err(map_error(&resp)),
                }
            }
            _ => Err(map_error(&resp)),
        }
    }

    /// Directory-PATCH capability, probed once per session with `PATCH []`.
    pub async fn server_version(&self) -> Result<ServerVersion, GuacamoleError> {
        let session = self.current_session().await?;
        if let Some(v) = session.cached_version() {
            return Ok(v);
        }
        self.probe_version().await
    }

    /// Sends the `PATCH []` probe and caches the answer on the session.
    async fn probe_version(&self) -> Result<ServerVersion, GuacamoleError> {
        let call = Call::new(Method::PATCH, &["connections"], "PATCH /connections")
            .json(serde_json::json!([]))
            .idempotent(true);
        let resp = self.execute(&call).await?;
        let version = version_from_probe(resp.status, &resp.body).ok_or_else(|| {
            if resp.is_success() {
                GuacamoleError::UnexpectedResponse {
                    status: resp.status,
                    detail:
                        "the version probe (PATCH []) answered neither 204 nor {\"patches\":[]}"
                            .to_owned(),
                }
            } else {
                map_error(&resp)
            }
        })?;
        // The session may have been replaced by a re-login meanwhile; cache
        // on whichever is current.
        self.current_session().await?.set_version(version);
        Ok(version)
    }

    // ----- connections -----

    /// Every readable connection, by identifier.
    pub async fn list_connections(&self) -> Result<BTreeMap<String, Connection>, GuacamoleError> {
        self.get_json(&["connections"], "GET /connections").await
    }

    pub async fn get_connection(&self, identifier: &str) -> Result<Connection, GuacamoleError> {
        self.get_json(&["connections", identifier], "GET /connections/{id}")
            .await
    }

    /// The stored parameters (values are secrets).
    pub async fn parameters(&self, identifier: &str) -> Result<Parameters, GuacamoleError> {
        self.get_json(
            &["connections", identifier, "parameters"],
            "GET /connections/{id}/parameters",
        )
        .await
    }

    /// Creates a connection and returns its identifier.
    pub async fn create_connection(&self, spec: &ConnectionSpec) -> Result<String, GuacamoleError> {
        let call =
            Call::new(Method::POST, &["connections"], "POST /connections").json(to_json(spec));
        let result = self.create(&call).await;
        self.explain_parent(result, &spec.parent_identifier).await
    }

    /// Full replace: name, parent, protocol, every parameter and attribute.
    pub async fn update_connection(
        &self,
        identifier: &str,
        spec: &ConnectionSpec,
    ) -> Result<(), GuacamoleError> {
        let segments = ["connections", identifier];
        let call = Call::new(Method::PUT, &segments, "PUT /connections/{id}").json(to_json(spec));
        let result = self.expect_success(&call).await;
        self.explain_parent(result, &spec.parent_identifier).await
    }

    pub async fn delete_connection(&self, identifier: &str) -> Result<(), GuacamoleError> {
        let segments = ["connections", identifier];
        let call = Call::new(Method::DELETE, &segments, "DELETE /connections/{id}");
        self.expect_success(&call).await
    }

    // ----- connection groups -----

    /// Every readable group (ROOT excluded), by identifier.
    pub async fn list_groups(&self) -> Result<BTreeMap<String, ConnectionGroup>, GuacamoleError> {
        self.get_json(&["connectionGroups"], "GET /connectionGroups")
            .await
    }

    pub async fn get_group(&self, identifier: &str) -> Result<ConnectionGroup, GuacamoleError> {
        self.get_json(
            &["connectionGroups", identifier],
            "GET /connectionGroups/{id}",
        )
        .await
    }

    /// The group with all its readable descendants, in one call.
    pub async fn tree(&self, group_identifier: &str) -> Result<TreeGroup, GuacamoleError> {
        self.get_json(
            &["connectionGroups", group_identifier, "tree"],
            "GET /connectionGroups/{id}/tree",
        )
        .await
    }

    /// The group called `name` directly under `parent`, if it exists and is
    /// readable.
    pub async fn find_group(
        &self,
        parent: &str,
        name: &str,
    ) -> Result<Option<ConnectionGroup>, GuacamoleError> {
        Ok(self.list_groups().await?.into_values().find(|g| {
            g.name == name && g.parent_identifier.as_deref().unwrap_or(ROOT_GROUP) == parent
        }))
    }

    pub async fn create_group(&self, spec: &GroupSpec) -> Result<String, GuacamoleError> {
        let call = Call::new(
            Method::POST,
            &["connectionGroups"],
            "POST /connectionGroups",
        )
        .json(to_json(spec));
        let result = self.create(&call).await;
        self.explain_parent(result, &spec.parent_identifier).await
    }

    /// Full replace of name, parent, type and attributes; children untouched.
    pub async fn update_group(
        &self,
        identifier: &str,
        spec: &GroupSpec,
    ) -> Result<(), GuacamoleError> {
        let segments = ["connectionGroups", identifier];
        let call =
            Call::new(Method::PUT, &segments, "PUT /connectionGroups/{id}").json(to_json(spec));
        let result = self.expect_success(&call).await;
        self.explain_parent(result, &spec.parent_identifier).await
    }

    /// Deletes the group **and everything inside it**.
    pub async fn delete_group(&self, identifier: &str) -> Result<(), GuacamoleError> {
        let segments = ["connectionGroups", identifier];
        let call = Call::new(Method::DELETE, &segments, "DELETE /connectionGroups/{id}");
        self.expect_success(&call).await
    }

    // ----- batches -----

    /// Applies the operations in order: on 1.6 as atomic directory PATCH
    /// requests (one per run of same-directory operations, split below the
    /// request size cap), on ≤1.5 one call per create or update (several
    /// at a time, up to the client's concurrency) and one remove-only PATCH
    /// per run of deletes (see `remove_by_patch`). Entry-level
    /// failures are reported per operation and do not stop the batch;
    /// request-level failures (transport, session) do (`stopped_by`). A 1.6
    /// request refused as a whole without per-entry results (e.g. 500 for an
    /// unknown parent) is retried one object at a time to isolate the entry.
    ///
    /// `Err` only when nothing was sent (login or version probe failed).
    pub async fn apply_batch(&self, ops: Vec<DirectoryOp>) -> Result<BatchOutcome, GuacamoleError> {
        if ops.is_empty() {
            return Ok(BatchOutcome {
                mode: BatchMode::AtomicPatch,
                results: Vec::new(),
                stopped_by: None,
            });
        }
        let mode = BatchMode::for_version(self.server_version().await?);
        let outcome = match mode {
            BatchMode::AtomicPatch => self.apply_patches(&ops).await,
            BatchMode::PerObject => self.apply_up_to_1_5(&ops).await,
        };
        Ok(outcome)
    }

    async fn apply_patches(&self, ops: &[DirectoryOp]) -> BatchOutcome {
        let mut results: Vec<OpResult> = vec![OpResult::NotAttempted; ops.len()];
        let mut stopped_by = None;
        for range in plan_requests(ops) {
            let chunk = &ops[range.clone()];
            let (segment, endpoint) = directory_of(&chunk[0]);
            let segments = [segment];
            let call = Call::new(Method::PATCH, &segments, endpoint)
                .json(patch_body(chunk))
                .idempotent(false);
            let chunk_results = match self.execute(&call).await {
                Ok(resp) if resp.status == 200 => match parse_patch_success(chunk, &resp.body) {
                    Ok(r) => r,
                    Err(err) => {
                        // Applied, but we cannot tell the new identifiers.
                        stopped_by = Some(err.clone());
                        vec![OpResult::Unknown { error: err }; chunk.len()]
                    }
                },
                Ok(resp) => match ErrorBody::parse(&resp.body).and_then(|b| b.patches) {
                    Some(patches) if resp.status == 400 => {
                        let secrets = call.body.as_ref().map(secret_values).unwrap_or_default();
                        parse_patch_failure(chunk, &patches)
                            .into_iter()
                            .map(|r| match r {
                                OpResult::Failed { error } => OpResult::Failed {
                                    error: error.redacted(&secrets),
                                },
                                other => other,
                            })
                            .collect()
                    }
                    _ => {
                        // The whole request failed and was rolled back (a 500
                        // from an unknown parent, a 413, …) without naming
                        // the entry. Rather than let one bad entry block the
                        // others on every cycle, isolate it: send this chunk
                        // again one object at a time.
                        let err = call_error(&call, &resp);
                        // A gateway error (502/503/504 from a proxy, or a 5xx
                        // without Guacamole's error body) does not say
                        // whether the batch applied: resending its entries
                        // could duplicate them. Unknown; the batch stops and
                        // the next cycle plans from a fresh tree.
                        if is_ambiguous(resp.status, &err) {
                            stopped_by = Some(err.clone());
                            let unknown = OpResult::Unknown { error: err };
                            results.splice(range, vec![unknown; chunk.len()]);
                            break;
                        }
                        // A ≤1.5 server refuses adds/replaces (501, or 400
                        // text/plain for object values): after a downgrade
                        // under a live session, re-probe before falling back.
                        let remove_only =
                            matches!(
                                err,
                                GuacamoleError::Unsupported { .. }
                                    | GuacamoleError::MalformedRequest
                            ) && matches!(self.probe_version().await, Ok(ServerVersion::UpTo1_5));
                        if err.stops_batch() || (chunk.len() == 1 && !remove_only) {
                            if err.stops_batch() {
                                stopped_by = Some(err.clone());
                            }
                            vec![OpResult::Failed { error: err }; chunk.len()]
                        } else {
                            tracing::warn!(
                                endpoint,
                                error = %err,
                                entries = chunk.len(),
                                "Guacamole rejected a directory PATCH as a whole; applying its entries one by one"
                            );
                            let fallback = self.apply_per_object(chunk).await;
                            stopped_by = fallback.stopped_by;
                            fallback.results
                        }
                    }
                },
                Err(err) => {
                    let result = request_failure(&err);
                    stopped_by = Some(err);
                    vec![result; chunk.len()]
                }
            };
            results.splice(range, chunk_results);
            if stopped_by.is_some() {
                break;
            }
        }
        BatchOutcome {
            mode: BatchMode::AtomicPatch,
            results,
            stopped_by,
        }
    }

    /// ≤1.5: runs of removals go as directory `PATCH` `remove` requests
    /// (one per directory, split like the 1.6 batches; spec §6.1), the other
    /// operations one call each, concurrently.
    async fn apply_up_to_1_5(&self, ops: &[DirectoryOp]) -> BatchOutcome {
        let is_remove = |op: &DirectoryOp| op.op_name() == "remove";
        let mut results = vec![OpResult::NotAttempted; ops.len()];
        let mut stopped_by = None;
        let mut start = 0;
        while start < ops.len() && stopped_by.is_none() {
            let removing = is_remove(&ops[start]);
            let end = ops[start..]
                .iter()
                .position(|op| is_remove(op) != removing)
                .map_or(ops.len(), |n| start + n);
            let run = &ops[start..end];
            let outcome = if removing {
                self.remove_by_patch(run).await
            } else {
                self.apply_per_object(run).await
            };
            results.splice(start..end, outcome.results);
            stopped_by = outcome.stopped_by;
            start = end;
        }
        BatchOutcome {
            mode: BatchMode::PerObject,
            results,
            stopped_by,
        }
    }

    /// ≤1.5 removals as directory `PATCH` requests. The server applies the
    /// entries one by one and not atomically, and removing an id that no
    /// longer exists succeeds, so the request may be repeated. When one is
    /// refused (e.g. 403 for one entry a delegated account may not delete),
    /// its entries are sent again as single `DELETE`s: those already
    /// removed answer 404, which counts as done, and the refused one gets
    /// its own error.
    async fn remove_by_patch(&self, ops: &[DirectoryOp]) -> BatchOutcome {
        let mut results = vec![OpResult::NotAttempted; ops.len()];
        let mut stopped_by = None;
        for range in plan_requests(ops) {
            let chunk = &ops[range.clone()];
            let (segment, endpoint) = directory_of(&chunk[0]);
            let segments = [segment];
            let call = Call::new(Method::PATCH, &segments, endpoint)
                .json(patch_body(chunk))
                .idempotent(true);
            let chunk_results = match self.execute(&call).await {
                Ok(resp) if resp.is_success() => chunk
                    .iter()
                    .map(|op| OpResult::Applied {
                        identifier: op.identifier().unwrap_or_default().to_owned(),
                    })
                    .collect(),
                Ok(resp) => {
                    let err = call_error(&call, &resp);
                    if err.stops_batch() {
                        stopped_by = Some(err.clone());
                        vec![OpResult::Failed { error: err }; chunk.len()]
                    } else {
                        tracing::warn!(
                            endpoint,
                            error = %err,
                            entries = chunk.len(),
                            "Guacamole refused a directory PATCH of removals; deleting its entries one by one"
                        );
                        let fallback = self.apply_per_object(chunk).await;
                        stopped_by = fallback.stopped_by;
                        fallback.results
                    }
                }
                Err(err) => {
                    let result = request_failure(&err);
                    stopped_by = Some(err);
                    vec![result; chunk.len()]
                }
            };
            results.splice(range, chunk_results);
            if stopped_by.is_some() {
                break;
            }
        }
        BatchOutcome {
            mode: BatchMode::PerObject,
            results,
            stopped_by,
        }
    }

    /// One call per operation, as many in flight as the client's
    /// concurrency allows (the same number as its request gate, so the two
    /// never disagree; the bound here is what keeps operations not yet
    /// started from being sent after a request-level failure). Results come
    /// back in input order. Operations that must follow others (see
    /// [`waves`]) wait for them.
    async fn apply_per_object(&self, ops: &[DirectoryOp]) -> BatchOutcome {
        let stop: std::sync::Mutex<Option<GuacamoleError>> = std::sync::Mutex::new(None);
        let stopped = || stop.lock().unwrap_or_else(|p| p.into_inner()).is_some();
        let mut results = vec![OpResult::NotAttempted; ops.len()];
        for wave in waves(ops) {
            if stopped() {
                break;
            }
            let done: Vec<(usize, OpResult)> = stream::iter(wave)
                .map(|i| {
                    let (stop, stopped) = (&stop, &stopped);
                    async move {
                        if stopped() {
                            return (i, OpResult::NotAttempted);
                        }
                        let (result, stops) = self.apply_one(&ops[i]).await;
                        if let Some(err) = stops {
                            stop.lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(err);
                        }
                        (i, result)
                    }
                })
                .buffer_unordered(self.http.concurrency().max(1))
                .collect()
                .await;
            for (i, result) in done {
                results[i] = result;
            }
        }
        BatchOutcome {
            mode: BatchMode::PerObject,
            results,
            stopped_by: stop.into_inner().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// One operation as its own call; the error that ends the batch, if any.
    async fn apply_one(&self, op: &DirectoryOp) -> (OpResult, Option<GuacamoleError>) {
        let outcome = match op {
            DirectoryOp::CreateConnection(spec) => self.create_connection(spec).await,
            DirectoryOp::UpdateConnection { identifier, spec } => self
                .update_connection(identifier, spec)
                .await
                .map(|()| identifier.clone()),
            DirectoryOp::DeleteConnection { identifier } => self
                .delete_connection(identifier)
                .await
                .map(|()| identifier.clone()),
            DirectoryOp::CreateGroup(spec) => self.create_group(spec).await,
            DirectoryOp::UpdateGroup { identifier, spec } => self
                .update_group(identifier, spec)
                .await
                .map(|()| identifier.clone()),
            DirectoryOp::DeleteGroup { identifier } => self
                .delete_group(identifier)
                .await
                .map(|()| identifier.clone()),
        };
        match outcome {
            Ok(identifier) => (OpResult::Applied { identifier }, None),
            // Already gone: the same outcome as a `remove`.
            Err(GuacamoleError::NotFound { .. }) if op.op_name() == "remove" => (
                OpResult::Applied {
                    identifier: op.identifier().unwrap_or_default().to_owned(),
                },
                None,
            ),
            Err(err) if err.stops_batch() => (request_failure(&err), Some(err)),
            Err(err) => (OpResult::Failed { error: err }, None),
        }
    }

    // ----- permissions -----

    /// Direct and inherited permissions of the logged-in account.
    pub async fn effective_permissions(&self) -> Result<PermissionSet, GuacamoleError> {
        self.get_json(
            &["self", "effectivePermissions"],
            "GET /self/effectivePermissions",
        )
        .await
    }

    /// The Guacamole checks of `test-auth`: what the account may do, and what
    /// the daemon needs it for (see [`permissions::evaluate`]).
    pub async fn check_permissions(
        &self,
        root_group_name: &str,
    ) -> Result<Vec<PermissionCheck>, GuacamoleError> {
        let perms = self.effective_permissions().await?;
        let managed = self
            .find_group(ROOT_GROUP, root_group_name)
            .await?
            .map(|g| ManagedGroup {
                identifier: g.identifier,
                name: g.name,
            });
        Ok(permissions::evaluate(
            &perms,
            root_group_name,
            managed.as_ref(),
        ))
    }

    /// Permissions granted directly to a user (`GET /users/{u}/permissions`);
    /// `NotFound` when the user does not exist.
    pub async fn user_permissions(&self, username: &str) -> Result<PermissionSet, GuacamoleError> {
        self.get_json(
            &["users", username, "permissions"],
            "GET /users/{u}/permissions",
        )
        .await
    }

    /// Permissions granted to a user group (`GET /userGroups/{g}/permissions`);
    /// `NotFound` when the group does not exist.
    pub async fn user_group_permissions(
        &self,
        group: &str,
    ) -> Result<PermissionSet, GuacamoleError> {
        self.get_json(
            &["userGroups", group, "permissions"],
            "GET /userGroups/{g}/permissions",
        )
        .await
    }

    /// Grants or revokes permissions of a user (`PATCH /users/{u}/permissions`).
    pub async fn change_user_permissions(
        &self,
        username: &str,
        changes: &[PermissionChange],
    ) -> Result<(), GuacamoleError> {
        self.patch_permissions(
            &["users", username, "permissions"],
            "PATCH /users/{u}/permissions",
            changes,
        )
        .await
    }

    /// Grants or revokes permissions of a user group
    /// (`PATCH /userGroups/{g}/permissions`).
    pub async fn change_user_group_permissions(
        &self,
        group: &str,
        changes: &[PermissionChange],
    ) -> Result<(), GuacamoleError> {
        self.patch_permissions(
            &["userGroups", group, "permissions"],
            "PATCH /userGroups/{g}/permissions",
            changes,
        )
        .await
    }

    async fn patch_permissions(
        &self,
        segments: &[&str],
        endpoint: &'static str,
        changes: &[PermissionChange],
    ) -> Result<(), GuacamoleError> {
        if changes.is_empty() {
            return Ok(());
        }
        let body =
            serde_json::Value::Array(changes.iter().map(PermissionChange::patch_entry).collect());
        // Adding a held permission or removing a missing one is a no-op, so
        // the request may be repeated.
        let call = Call::new(Method::PATCH, segments, endpoint)
            .json(body)
            .idempotent(true);
        self.expect_success(&call).await
    }

    // ----- plumbing -----

    async fn get_json<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        endpoint: &'static str,
    ) -> Result<T, GuacamoleError> {
        let call = Call::new(Method::GET, segments, endpoint);
        let resp = self.execute(&call).await?;
        if !resp.is_success() {
            return Err(map_error(&resp));
        }
        resp.json()
            .map_err(|e| GuacamoleError::decode(endpoint, &e))
    }

    /// POST create: 200 (not 201) with the echoed object. Only `identifier`
    /// is read from the echo (it also carries the parameters).
    async fn create(&self, call: &Call<'_>) -> Result<String, GuacamoleError> {
        let resp = self.execute(call).await?;
        if !resp.is_success() {
            return Err(call_error(call, &resp));
        }
        let created: Created = resp
            .json()
            .map_err(|e| GuacamoleError::decode(call.endpoint, &e))?;
        Ok(created.identifier)
    }

    async fn expect_success(&self, call: &Call<'_>) -> Result<(), GuacamoleError> {
        let resp = self.execute(call).await?;
        if resp.is_success() {
            Ok(())
        } else {
            Err(call_error(call, &resp))
        }
    }

    /// An unknown parent shows as a 500 (admin) or a 403 (delegated account);
    /// when the parent really is missing, say so.
    async fn explain_parent<T>(
        &self,
        result: Result<T, GuacamoleError>,
        parent: &str,
    ) -> Result<T, GuacamoleError> {
        match result {
            Err(
                err @ (GuacamoleError::ServerError { status: 500, .. }
                | GuacamoleError::PermissionDenied { .. }),
            ) if parent != ROOT_GROUP => match self.get_group(parent).await {
                Err(GuacamoleError::NotFound { .. }) => Err(GuacamoleError::UnknownParent {
                    parent: parent.to_owned(),
                }),
                _ => Err(err),
            },
            other => other,
        }
    }

    /// Sends an authenticated call; on an expired token logs in again once
    /// and repeats it. Returns any HTTP answer (mapping is the caller's).
    async fn execute(&self, call: &Call<'_>) -> Result<HttpResponse, GuacamoleError> {
        let session = self.current_session().await?;
        let resp = self.send(&session, call).await?;
        if !is_expired_token(&resp) {
            return Ok(resp);
        }
        tracing::info!(
            endpoint = call.endpoint,
            "Guacamole session token expired or was revoked; logging in again"
        );
        let fresh = self.relogin(session.generation).await?;
        // A second "Permission Denied." right after a fresh login is mapped
        // by the caller to `InvalidToken`: it is not retried again.
        self.send(&fresh, call).await
    }

    async fn send(
        &self,
        session: &Session,
        call: &Call<'_>,
    ) -> Result<HttpResponse, GuacamoleError> {
        let mut url = session.info.base_url.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| GuacamoleError::Config {
                    message: "the Guacamole URL cannot carry a path".to_owned(),
                })?;
            path.pop_if_empty();
            if let Scope::Data = call.scope {
                path.extend(["session", "data", session.info.data_source.as_str()]);
            }
            path.extend(call.segments);
        }
        let mut req = HttpRequest::new(call.method.clone(), url, call.endpoint)
            .header(TOKEN_HEADER, session.token.clone())
            .idempotent(call.idempotent);
        if let Some(body) = &call.body {
            req = req.json(body.clone());
        }
        Ok(self.http.execute(req).await?)
    }

    async fn current_session(&self) -> Result<Arc<Session>, GuacamoleError> {
        let mut guard = self.session.lock().await;
        if let Some(session) = guard.as_ref() {
            return Ok(session.clone());
        }
        let session = self.new_session(0).await?;
        *guard = Some(session.clone());
        Ok(session)
    }

    /// Replaces the session whose token expired, unless another caller
    /// already did.
    async fn relogin(&self, stale_generation: u64) -> Result<Arc<Session>, GuacamoleError> {
        let mut guard = self.session.lock().await;
        if let Some(session) = guard.as_ref()
            && session.generation != stale_generation
        {
            return Ok(session.clone());
        }
        *guard = None;
        let session = self.new_session(stale_generation + 1).await?;
        *guard = Some(session.clone());
        Ok(session)
    }

    async fn new_session(&self, generation: u64) -> Result<Arc<Session>, GuacamoleError> {
        let (base, auth) = self.authenticate().await?;
        let data_source = match &self.data_source {
            Some(ds) => {
                let offered = auth.data_source == *ds || auth.available_data_sources.contains(ds);
                if !offered {
                    return Err(GuacamoleError::UnknownDataSource {
                        data_source: ds.clone(),
                    });
                }
                ds.clone()
            }
            None => default_data_source(&auth.data_source, &auth.available_data_sources),
        };
        self.logins.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            base = %display_url(&base),
            username = %auth.username,
            data_source = %data_source,
            "logged in to Guacamole"
        );
        Ok(Arc::new(Session {
            info: SessionInfo {
                base_url: base,
                username: auth.username,
                data_source,
                available_data_sources: auth.available_data_sources,
            },
            token: auth.auth_token,
            generation,
            version: std::sync::Mutex::new(None),
        }))
    }

    /// Logs in at the known base, or finds the base by trying the candidates
    /// in order (the login itself is the probe: a Guacamole answers JSON).
    async fn authenticate(&self) -> Result<(Url, AuthResult), GuacamoleError> {
        let candidates = match self.base.get() {
            Some(base) => vec![base.clone()],
            None => base_candidates(&self.url, self.base_path.as_deref())?,
        };
        let mut tried = Vec::new();
        for base in candidates {
            match self.try_login(&base).await? {
                LoginAttempt::Ok(auth) => {
                    let _ = self.base.set(base.clone());
                    return Ok((base, auth));
                }
                LoginAttempt::Refused(err) => {
                    let _ = self.base.set(base);
                    return Err(err);
                }
                // Not known to be the API: the next login detects again.
                LoginAttempt::Throttled(err) => return Err(err),
                LoginAttempt::NotHere(why) => tried.push(format!("{} ({why})", display_url(&base))),
            }
        }
        Err(GuacamoleError::BasePathNotFound {
            tried: tried.join(", "),
        })
    }

    async fn try_login(&self, base: &Url) -> Result<LoginAttempt, GuacamoleError> {
        let mut url = base.clone();
        url.path_segments_mut()
            .map_err(|()| GuacamoleError::Config {
                message: "the Guacamole URL cannot carry a path".to_owned(),
            })?
            .pop_if_empty()
            .push("tokens");
        let form = vec![
            ("username".to_owned(), Secret::new(self.username.clone())),
            ("password".to_owned(), self.password.clone()),
        ];
        // Not idempotent: each login creates a session, and a banned address
        // must not be hammered.
        let req = HttpRequest::new(Method::POST, url, "POST /tokens")
            .form(form)
            .idempotent(false)
            .no_retry_when_declined();
        let resp = self.http.execute(req).await?;
        if resp.status == 200 {
            return Ok(match resp.json::<AuthResult>() {
                Ok(auth) => LoginAttempt::Ok(auth),
                Err(_) => LoginAttempt::NotHere("200 without a Guacamole login answer".to_owned()),
            });
        }
        if ErrorBody::parse(&resp.body).is_some_and(|b| b.error_type.is_some()) {
            return Ok(LoginAttempt::Refused(map_error(&resp)));
        }
        // Throttled (by Guacamole or a proxy in front): this may well be the
        // API, and the next candidate must not get the credentials too.
        if matches!(resp.status, 429 | 503) {
            return Ok(LoginAttempt::Throttled(GuacamoleError::RateLimited {
                status: resp.status,
                retry_after: resp.retry_after().map(|d| d.as_secs()),
            }));
        }
        Ok(LoginAttempt::NotHere(format!("HTTP {}", resp.status)))
    }
}

/// `Permission Denied.` (capital D): the token is missing, unknown or expired.
fn is_expired_token(resp: &HttpResponse) -> bool {
    resp.status == 403 && matches!(map_error(resp), GuacamoleError::InvalidToken)
}

/// The error of a call's answer, with every secret value of the call's
/// body removed: servers and proxies echo request bodies in their messages
/// (a JSON parse error quoting the input), and these texts reach logs and
/// audit events.
fn call_error(call: &Call<'_>, resp: &HttpResponse) -> GuacamoleError {
    let err = map_error(resp);
    match &call.body {
        Some(body) => err.redacted(&secret_values(body)),
        None => err,
    }
}

/// Values of secret-named fields (`password`, `*-passphrase`, …) anywhere
/// in a JSON request body.
fn secret_values(body: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![body];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match v {
                        serde_json::Value::String(s)
                            if !s.is_empty() && crate::notes::settings::is_secret_name(k) =>
                        {
                            out.push(s.clone())
                        }
                        other => stack.push(other),
                    }
                }
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    out
}

/// The directory (path segment and endpoint label) an operation belongs to.
fn directory_of(op: &DirectoryOp) -> (&'static str, &'static str) {
    match op.kind() {
        ObjectKind::Connection => ("connections", "PATCH /connections"),
        ObjectKind::ConnectionGroup => ("connectionGroups", "PATCH /connectionGroups"),
    }
}

/// The result of an operation whose request failed as a whole: unknown
/// when a transport failure came after it may have reached the server.
fn request_failure(err: &GuacamoleError) -> OpResult {
    match err {
        GuacamoleError::Transport(h) if !h.never_sent() => OpResult::Unknown { error: err.clone() },
        _ => OpResult::Failed { error: err.clone() },
    }
}

/// Whether a failed directory PATCH may still have been applied.
fn is_ambiguous(status: u16, err: &GuacamoleError) -> bool {
    matches!(status, 502..=504)
        || (status >= 500 && matches!(err, GuacamoleError::UnexpectedResponse { .. }))
}

fn map_error(resp: &HttpResponse) -> GuacamoleError {
    let content_type = resp.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    error_from_response(resp.status, content_type, &resp.body)
}

fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("Guacamole request types serialise")
}

/// The URL without credentials, query or fragment, for messages.
fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// The API bases to try, in order.
pub(crate) fn base_candidates(
    url: &Url,
    base_path: Option<&str>,
) -> Result<Vec<Url>, GuacamoleError> {
    if url.cannot_be_a_base() {
        return Err(GuacamoleError::Config {
            message: format!("the Guacamole URL {} cannot carry a path", display_url(url)),
        });
    }
    if url.query().is_some() {
        return Err(GuacamoleError::Config {
            message: "the Guacamole URL must not have a query".to_owned(),
        });
    }
    let join = |suffix: &str| {
        let mut u = url.clone();
        let trimmed = u.path().trim_end_matches('/').to_owned();
        let suffix = suffix.trim_matches('/');
        u.set_path(&if suffix.is_empty() {
            trimmed
        } else {
            format!("{trimmed}/{suffix}")
        });
        u
    };
    if let Some(path) = base_path {
        if path.split('/').any(|s| s == ".." || s == ".") {
            return Err(GuacamoleError::Config {
                message: format!("invalid Guacamole base path {path:?}"),
            });
        }
        return Ok(vec![join(path)]);
    }
    if url.path().trim_end_matches('/').ends_with("/api") {
        return Ok(vec![join("")]);
    }
    Ok(vec![join("guacamole/api"), join("api")])
}

/// The data source connections live in when none is configured: the
/// database provider among those offered. The one that authenticated may be
/// LDAP or SSO, which holds no connections; `-shared` only serves sharing
/// links.
fn default_data_source(authenticated: &str, available: &[String]) -> String {
    const DATABASES: [&str; 3] = ["postgresql", "mysql", "sqlserver"];
    available
        .iter()
        .find(|ds| DATABASES.contains(&ds.as_str()))
        .cloned()
        .unwrap_or_else(|| authenticated.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        s.parse().unwrap()
    }

    fn strs(urls: Vec<Url>) -> Vec<String> {
        urls.into_iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn base_path_candidates() {
        assert_eq!(
            strs(base_candidates(&u("https://g.example"), None).unwrap()),
            ["https://g.example/guacamole/api", "https://g.example/api"]
        );
        assert_eq!(
            strs(base_candidates(&u("https://g.example/"), None).unwrap()),
            ["https://g.example/guacamole/api", "https://g.example/api"]
        );
        assert_eq!(
            strs(base_candidates(&u("https://g.example/guacamole/api/"), None).unwrap()),
            ["https://g.example/guacamole/api"]
        );
        assert_eq!(
            strs(base_candidates(&u("https://g.example:8443/api"), None).unwrap()),
            ["https://g.example:8443/api"]
        );
        assert_eq!(
            strs(base_candidates(&u("https://g.example/remote"), None).unwrap()),
            [
                "https://g.example/remote/guacamole/api",
                "https://g.example/remote/api"
            ]
        );
        assert_eq!(
            strs(base_candidates(&u("https://g.example"), Some("/gw/api/")).unwrap()),
            ["https://g.example/gw/api"]
        );
        assert_eq!(
            strs(base_candidates(&u("https://g.example/api"), Some("")).unwrap()),
            ["https://g.example/api"]
        );
        assert!(base_candidates(&u("https://g.example"), Some("/../x")).is_err());
        assert!(base_candidates(&u("https://g.example/?token=x"), None).is_err());
    }

    #[test]
    fn display_url_hides_credentials() {
        let shown = display_url(&u("https://user:hunter2@g.example/api?token=ABC"));
        assert_eq!(shown, "https://g.example/api");
    }

    #[test]
    fn the_database_data_source_is_chosen_when_ldap_authenticated() {
        let offered = ["ldap", "postgresql", "postgresql-shared"].map(String::from);
        assert_eq!(default_data_source("ldap", &offered), "postgresql");
        let only = ["mysql-shared", "mysql"].map(String::from);
        assert_eq!(default_data_source("mysql", &only), "mysql");
        assert_eq!(default_data_source("custom", &[]), "custom");
    }
}
