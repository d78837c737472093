//! Shared HTTP layer of the Proxmox and Guacamole clients: TLS trust, timeouts,
//! admission (rate and concurrency), retries with decorrelated-jitter backoff
//! and `Retry-After`, a response size cap, and per-endpoint statistics.
//!
//! Nothing here logs or formats header values or bodies: they carry tokens and
//! passwords. Errors name the API, the endpoint label and the host only.

pub mod error;
pub mod limits;
pub mod retry;
pub mod stats;
pub mod tls;

use std::fmt;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use reqwest::header::{
    CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER,
    TRANSFER_ENCODING,
};
use tokio_util::sync::CancellationToken;

use crate::secret::Secret;

pub use error::{HttpError, TimeoutPhase, TlsFailure};
pub use retry::RetryPolicy;
pub use stats::EndpointStats;
pub use tls::TlsMode;

use limits::Limits;
use retry::{Backoff, parse_retry_after};
use stats::{Outcome, Stats};

/// Settings of one API client (one per Proxmox cluster, one for Guacamole).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Name used in errors and stats, e.g. `proxmox:lab` or `guacamole`.
    pub api: String,
    pub tls: TlsMode,
    pub connect_timeout: Duration,
    /// Deadline for one attempt: sending and reading the whole answer.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    /// Requests per second; `None` = unlimited.
    pub rate_limit_per_sec: Option<NonZeroU32>,
    pub burst: NonZeroU32,
    /// Requests in flight at once.
    pub concurrency: NonZeroUsize,
    pub max_response_bytes: usize,
    /// Shutdown: retry sleeps and `Retry-After` pauses end early with
    /// [`HttpError::Cancelled`]; a request already sent is never cut.
    pub cancel: CancellationToken,
}

impl HttpConfig {
    /// Sensible defaults: 5 s connect, 30 s per attempt, 3 attempts, no rate
    /// limit, 4 in flight, 16 MiB answers.
    pub fn new(api: impl Into<String>, tls: TlsMode) -> Self {
        HttpConfig {
            api: api.into(),
            tls,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            rate_limit_per_sec: None,
            burst: NonZeroU32::new(10).expect("non-zero"),
            concurrency: NonZeroUsize::new(4).expect("non-zero"),
            max_response_bytes: 16 * 1024 * 1024,
            cancel: CancellationToken::new(),
        }
    }
}

/// Request body. `Debug` shows only its shape: bodies carry passwords.
#[derive(Clone, Default)]
pub enum RequestBody {
    #[default]
    None,
    /// `application/x-www-form-urlencoded`; values are secrets by default
    /// because forms carry passwords and notes.
    Form(Vec<(String, Secret)>),
    /// `application/json`.
    Json(serde_json::Value),
}

/// One request as the clients describe it. `Debug` leaves out the query,
/// header values and body contents.
#[derive(Clone)]
pub struct HttpRequest {
    pub method: reqwest::Method,
    pub url: url::Url,
    /// Extra headers; values are secrets (tokens), marked sensitive on the wire.
    pub headers: Vec<(String, Secret)>,
    pub body: RequestBody,
    /// May be sent again after an ambiguous failure (timeout, 503).
    pub idempotent: bool,
    /// Stable label for stats and errors, e.g. `GET /cluster/resources`.
    pub endpoint: &'static str,
    /// Repeat after a `429` (the server declined it). Off for logins: a
    /// login refused by a ban must not be repeated into a longer ban.
    pub retry_declined: bool,
}

impl HttpRequest {
    /// A request without headers or body; GET, HEAD, PUT and DELETE are
    /// idempotent, others not (change with [`HttpRequest::idempotent`]).
    pub fn new(method: reqwest::Method, url: url::Url, endpoint: &'static str) -> Self {
        let idempotent = matches!(
            method,
            reqwest::Method::GET
                | reqwest::Method::HEAD
                | reqwest::Method::PUT
                | reqwest::Method::DELETE
        );
        HttpRequest {
            method,
            url,
            headers: Vec::new(),
            body: RequestBody::None,
            idempotent,
            endpoint,
            retry_declined: true,
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<Secret>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn form(mut self, fields: Vec<(String, Secret)>) -> Self {
        self.body = RequestBody::Form(fields);
        self
    }

    pub fn json(mut self, value: serde_json::Value) -> Self {
        self.body = RequestBody::Json(value);
        self
    }

    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// Return a `429` to the caller instead of repeating the request.
    pub fn no_retry_when_declined(mut self) -> Self {
        self.retry_declined = false;
        self
    }
}

/// A complete answer (body read up to the cap). `Debug` shows header names
/// and the body length only.
#[derive(Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// The reason phrase when the server sent a non-canonical one (legacy
    /// Proxmox servers carry their error text only there).
    pub reason: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Decodes the body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The `Retry-After` delay, if the server sent a valid one.
    pub fn retry_after(&self) -> Option<Duration> {
        let value = self.headers.get(RETRY_AFTER)?.to_str().ok()?;
        parse_retry_after(value, SystemTime::now())
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestBody::None => f.write_str("None"),
            RequestBody::Form(fields) => f
                .debug_tuple("Form")
                .field(&fields.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
                .finish(),
            RequestBody::Json(_) => f.write_str("Json(…)"),
        }
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("host", &host_of(&self.url))
            .field("path", &self.url.path())
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("body", &self.body)
            .field("idempotent", &self.idempotent)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// Which failures `execute` retries against the same URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryScope {
    /// Retry retryable answers (429, 503…) and connection failures.
    All,
    /// Retry retryable answers only; connection, TLS and timeout failures are
    /// returned at once (the caller fails over to another endpoint instead).
    AnswersOnly,
}

/// Cheap to clone; clones share limits and statistics.
#[derive(Clone)]
pub struct Http {
    inner: Arc<Inner>,
}

struct Inner {
    api: String,
    client: reqwest::Client,
    connect_timeout: Duration,
    request_timeout: Duration,
    retry: RetryPolicy,
    max_response_bytes: usize,
    limits: Limits,
    /// Shared so the metrics exporter can read it at scrape time.
    stats: Arc<Stats>,
    /// Until when the server asked this client to send nothing (`429`/`503`
    /// with `Retry-After`); every request waits for it, not just the one
    /// that was refused.
    paused_until: Mutex<Option<Instant>>,
    cancel: CancellationToken,
}

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http")
            .field("api", &self.inner.api)
            .finish()
    }
}

/// The decision after one attempt.
enum Next {
    Done(Result<HttpResponse, HttpError>),
    /// Try again once the client's pause (set from `Retry-After`) is over.
    AfterPause,
    Backoff,
}

impl Http {
    pub fn new(cfg: HttpConfig) -> Result<Http, HttpError> {
        let config_error = |reason: String| HttpError::Config {
            api: cfg.api.clone(),
            reason,
        };
        if cfg.retry.max_attempts == 0 {
            return Err(config_error("retry.max_attempts must be at least 1".into()));
        }
        if cfg.tls == TlsMode::Insecure {
            tracing::warn!(
                api = %cfg.api,
                "TLS certificate verification is OFF (insecure: true): anyone on the network \
                 path can read the credentials sent to this API"
            );
        }
        let tls = tls::client_config(&cfg.tls).map_err(config_error)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .http1_only()
            .connect_timeout(cfg.connect_timeout)
            // Proxmox closes idle connections after 5 s; drop ours before that
            // so a request never races the server's close.
            .pool_idle_timeout(Duration::from_secs(4))
            .redirect(reqwest::redirect::Policy::none())
            // Retries are ours (`retry.rs`); reqwest's default policy only
            // covers HTTP/2 refusals yet clones every request in case.
            .retry(reqwest::retry::never())
            .user_agent(concat!("pve-guac-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                config_error(format!("cannot build the HTTP client: {}", root_cause(&e)))
            })?;
        Ok(Http {
            inner: Arc::new(Inner {
                api: cfg.api.clone(),
                client,
                connect_timeout: cfg.connect_timeout,
                request_timeout: cfg.request_timeout,
                retry: cfg.retry,
                max_response_bytes: cfg.max_response_bytes,
                limits: Limits::new(cfg.rate_limit_per_sec, cfg.burst, cfg.concurrency),
                stats: Arc::default(),
                paused_until: Mutex::new(None),
                cancel: cfg.cancel,
            }),
        })
    }

    pub fn api(&self) -> &str {
        &self.inner.api
    }

    /// The configured concurrency: how many requests may be in flight at once.
    pub fn concurrency(&self) -> usize {
        self.inner.limits.capacity()
    }

    /// Sends the request, retrying as the policy allows. An HTTP error status
    /// is not an `Err`: the caller maps it (only transport failures are).
    pub async fn execute(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.execute_with(req, RetryScope::All).await
    }

    /// Like [`Http::execute`], choosing which failures are retried here.
    pub async fn execute_with(
        &self,
        req: HttpRequest,
        scope: RetryScope,
    ) -> Result<HttpResponse, HttpError> {
        let policy = self.inner.retry;
        let mut backoff = Backoff::new(&policy);
        let mut attempt = 1u32;
        loop {
            self.wait_out_pause(&req).await?;
            let outcome = self.attempt(&req, attempt > 1).await;
            let last = attempt >= policy.max_attempts;
            let next = match outcome {
                Ok(resp) => self.after_answer(&req, resp, last),
                Err(err) => {
                    let retry_here = match scope {
                        RetryScope::All => true,
                        RetryScope::AnswersOnly => !err.is_endpoint_failure(),
                    };
                    let safe = err.never_sent()
                        || (req.idempotent
                            && matches!(
                                err,
                                HttpError::Timeout { .. } | HttpError::Transport { .. }
                            ));
                    if !last && retry_here && safe {
                        Next::Backoff
                    } else {
                        Next::Done(Err(err))
                    }
                }
            };
            match next {
                Next::Done(result) => return result,
                // The pause itself is waited out before the next attempt;
                // keep the backoff state moving so a later failure waits longer.
                Next::AfterPause => {
                    backoff.next_delay();
                }
                Next::Backoff => {
                    let pause = backoff.next_delay();
                    tracing::debug!(
                        api = %self.inner.api,
                        endpoint = req.endpoint,
                        attempt,
                        pause_ms = pause.as_millis() as u64,
                        "retrying request"
                    );
                    self.sleep(pause, req.endpoint).await?;
                }
            }
            attempt += 1;
        }
    }

    /// A `429` or `503` with `Retry-After` pauses the whole client (all its
    /// requests wait, as the server asked). 429 means the server declined
    /// the request, so any request may be repeated; 502/503/504 only when
    /// idempotent. A pause within the policy cap is waited out and the
    /// request repeated; after a longer one the answer goes back to the
    /// caller at once, and later requests fail fast with
    /// [`HttpError::Paused`] until it is over.
    fn after_answer(&self, req: &HttpRequest, resp: HttpResponse, last: bool) -> Next {
        let wait = match resp.status {
            429 | 503 => resp.retry_after(),
            _ => None,
        };
        if let Some(wait) = wait {
            self.pause_for(wait);
        }
        let retryable = match resp.status {
            429 => req.retry_declined,
            502..=504 => req.idempotent,
            _ => false,
        };
        if !retryable || last {
            return Next::Done(Ok(resp));
        }
        match wait {
            Some(wait) if wait > self.inner.retry.cap => Next::Done(Ok(resp)),
            Some(_) => Next::AfterPause,
            None => Next::Backoff,
        }
    }

    /// Extends the client-wide pause to at least `wait` from now.
    fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self
            .inner
            .paused_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
        if wait > self.inner.retry.cap {
            tracing::warn!(api = %self.inner.api, pause_s = wait.as_secs(),
                "the server asked for a long pause (Retry-After); nothing is sent to it until then");
        }
    }

    /// How long the server still wants this client to wait, if at all.
    pub fn paused_for(&self) -> Option<Duration> {
        let paused = *self
            .inner
            .paused_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        paused
            .map(|until| until.saturating_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }

    /// Before each attempt: sit out a pause within the cap, refuse the
    /// request during a longer one.
    async fn wait_out_pause(&self, req: &HttpRequest) -> Result<(), HttpError> {
        let Some(remaining) = self.paused_for() else {
            return Ok(());
        };
        if remaining > self.inner.retry.cap {
            return Err(HttpError::Paused {
                api: self.inner.api.clone(),
                endpoint: req.endpoint,
                remaining,
            });
        }
        self.sleep(remaining, req.endpoint).await
    }

    /// A wait that ends early, as [`HttpError::Cancelled`], on shutdown.
    pub(crate) async fn sleep(
        &self,
        pause: Duration,
        endpoint: &'static str,
    ) -> Result<(), HttpError> {
        tokio::select! {
            () = tokio::time::sleep(pause) => Ok(()),
            () = self.inner.cancel.cancelled() => Err(HttpError::Cancelled {
                api: self.inner.api.clone(),
                endpoint,
            }),
        }
    }

    /// One admitted, timed attempt.
    async fn attempt(&self, req: &HttpRequest, is_retry: bool) -> Result<HttpResponse, HttpError> {
        let _permit = self.inner.limits.admit().await;
        let started = Instant::now();
        let result = match tokio::time::timeout(self.inner.request_timeout, self.send(req)).await {
            Ok(result) => result,
            Err(_) => Err(HttpError::Timeout {
                api: self.inner.api.clone(),
                host: host_of(&req.url),
                endpoint: req.endpoint,
                phase: TimeoutPhase::Request,
                after: self.inner.request_timeout,
            }),
        };
        let outcome = match &result {
            Ok(resp) => Outcome::Status(resp.status),
            Err(_) => Outcome::Failed,
        };
        self.inner.stats.record(
            &self.inner.api,
            req.endpoint,
            outcome,
            started.elapsed(),
            is_retry,
        );
        result
    }

    async fn send(&self, req: &HttpRequest) -> Result<HttpResponse, HttpError> {
        let mut builder = self
            .inner
            .client
            .request(req.method.clone(), req.url.clone())
            .headers(self.headers(req)?);
        match &req.body {
            RequestBody::None => {}
            RequestBody::Form(fields) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                for (name, value) in fields {
                    form.append_pair(name, value.expose());
                }
                builder = builder
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form.finish());
            }
            RequestBody::Json(value) => {
                let bytes = serde_json::to_vec(value).map_err(|e| HttpError::Config {
                    api: self.inner.api.clone(),
                    reason: format!("{}: cannot encode JSON body: {e}", req.endpoint),
                })?;
                builder = builder.header(CONTENT_TYPE, "application/json").body(bytes);
            }
        }
        let mut resp = builder.send().await.map_err(|e| self.classify(e, req))?;
        let status = resp.status().as_u16();
        let reason = resp
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
        let headers = resp.headers().clone();
        let limit = self.inner.max_response_bytes;
        let too_large = || HttpError::ResponseTooLarge {
            api: self.inner.api.clone(),
            endpoint: req.endpoint,
            limit,
        };
        if resp.content_length().is_some_and(|len| len > limit as u64) {
            return Err(too_large());
        }
        // A body without Content-Length or chunked framing ends when the
        // server closes; real Proxmox nodes close the TCP stream without a
        // TLS close_notify (their empty 401/595 answers), which rustls
        // reports as an unexpected EOF. For such a body that EOF is its end.
        let close_delimited =
            !headers.contains_key(CONTENT_LENGTH) && !headers.contains_key(TRANSFER_ENCODING);
        // Sized from Content-Length when given: a body of megabytes (the
        // tree of thousands of connections) grown by doubling would peak
        // at twice its size.
        let expected = resp.content_length().unwrap_or(0) as usize;
        let mut body = BytesMut::with_capacity(expected.min(limit));
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) if close_delimited && is_unexpected_eof(&e) => break,
                Err(e) => return Err(self.classify(e, req)),
            };
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            reason,
            headers,
            body: body.freeze(),
        })
    }

    fn headers(&self, req: &HttpRequest) -> Result<HeaderMap, HttpError> {
        let mut map = HeaderMap::new();
        for (name, value) in &req.headers {
            let bad = || HttpError::Config {
                api: self.inner.api.clone(),
                reason: format!("{}: invalid value for header {name}", req.endpoint),
            };
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            let mut value = HeaderValue::from_str(value.expose()).map_err(|_| bad())?;
            value.set_sensitive(true);
            map.append(header, value);
        }
        Ok(map)
    }

    /// Maps a reqwest failure to a typed error without its URL (which could
    /// carry a query token).
    fn classify(&self, err: reqwest::Error, req: &HttpRequest) -> HttpError {
        let api = self.inner.api.clone();
        let host = host_of(&req.url);
        if let Some(tls_err) = find_rustls_error(&err) {
            return HttpError::Tls {
                api,
                host,
                reason: tls::describe_tls_error(tls_err),
            };
        }
        if err.is_timeout() {
            let phase = if err.is_connect() {
                TimeoutPhase::Connect
            } else {
                TimeoutPhase::Request
            };
            let after = match phase {
                TimeoutPhase::Connect => self.inner.connect_timeout,
                TimeoutPhase::Request => self.inner.request_timeout,
            };
            return HttpError::Timeout {
                api,
                host,
                endpoint: req.endpoint,
                phase,
                after,
            };
        }
        let reason = root_cause(&err);
        if err.is_connect() {
            HttpError::Connect { api, host, reason }
        } else {
            HttpError::Transport {
                api,
                host,
                endpoint: req.endpoint,
                reason,
            }
        }
    }

    /// Per-endpoint counters and latencies.
    pub fn stats(&self) -> Vec<EndpointStats> {
        self.inner.stats.snapshot()
    }

    /// Attempts sent so far (retries included).
    pub fn request_count(&self) -> u64 {
        self.inner.stats.total()
    }

    /// The live counters, for exporters that read them at scrape time
    /// (without keeping the client and its connection pool alive).
    pub fn stats_source(&self) -> Arc<Stats> {
        Arc::clone(&self.inner.stats)
    }
}

fn host_of(url: &url::Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        _ => "?".into(),
    }
}

/// Walks an error chain, looking inside `io::Error`s too (their `source()`
/// skips a custom inner error).
fn chain<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| {
        match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        }
    })
}

/// The innermost error text (an OS or protocol message). Texts holding a URL
/// are skipped: reqwest's outer text embeds it, and a query may carry a token.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    chain(err)
        .map(|e| e.to_string())
        .filter(|text| !text.contains("://"))
        .last()
        .unwrap_or_else(|| "request failed".into())
}

/// Finds a rustls error anywhere in the chain.
fn find_rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    chain(err).find_map(|e| e.downcast_ref::<rustls::Error>())
}

/// Whether the error is (caused by) an I/O unexpected EOF.
fn is_unexpected_eof(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::UnexpectedEof
        {
            return true;
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_builder_defaults_idempotency_by_method() {
        let url: url::Url = "https://127.0.0.1:8006/api2/json/version".parse().unwrap();
        assert!(HttpRequest::new(reqwest::Method::GET, url.clone(), "GET /version").idempotent);
        assert!(HttpRequest::new(reqwest::Method::PUT, url.clone(), "PUT /x").idempotent);
        assert!(!HttpRequest::new(reqwest::Method::POST, url.clone(), "POST /x").idempotent);
        let req = HttpRequest::new(reqwest::Method::POST, url, "POST /x")
            .header("Authorization", "PVEAPIToken=a@pve!t=s3cr3t")
            .idempotent(true);
        assert!(req.idempotent);
        assert!(!format!("{req:?}").contains("s3cr3t"));
    }

    #[test]
    fn debug_output_hides_query_headers_and_bodies() {
        let url: url::Url = "https://g.example/api/session?token=QUERYTOKEN"
            .parse()
            .unwrap();
        let req = HttpRequest::new(reqwest::Method::POST, url, "POST /session")
            .header("Guacamole-Token", "HEADERTOKEN")
            .json(serde_json::json!({"parameters": {"password": "JSONPASS"}}));
        let dbg = format!("{req:?}");
        for secret in ["QUERYTOKEN", "HEADERTOKEN", "JSONPASS"] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
        assert!(
            dbg.contains("Guacamole-Token") && dbg.contains("/api/session"),
            "{dbg}"
        );
        let form = RequestBody::Form(vec![("password".into(), Secret::new("FORMPASS"))]);
        assert_eq!(format!("{form:?}"), r#"Form(["password"])"#);
        let resp = HttpResponse {
            status: 200,
            reason: None,
            headers: HeaderMap::new(),
            body: Bytes::from_static(br#"{"authToken":"RESPTOKEN"}"#),
        };
        assert!(!format!("{resp:?}").contains("RESPTOKEN"));
    }

    #[test]
    fn io_wrapped_rustls_error_is_found() {
        let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, inner);
        let found = find_rustls_error(&io).expect("found");
        assert!(matches!(found, rustls::Error::InvalidCertificate(_)));
        assert!(root_cause(&io).contains("UnknownIssuer") || root_cause(&io).contains("issuer"));
    }

    #[test]
    fn host_label_has_port() {
        let url: url::Url = "https://pve1.example:8006/api2/json".parse().unwrap();
        assert_eq!(host_of(&url), "pve1.example:8006");
        let url: url::Url = "https://guac.example/guacamole/api?token=x"
            .parse()
            .unwrap();
        assert_eq!(host_of(&url), "guac.example:443");
    }

    #[test]
    fn http_builds_for_pinned_and_insecure() {
        for tls in [TlsMode::PinnedSha256([1; 32]), TlsMode::Insecure] {
            let http = Http::new(HttpConfig::new("proxmox:test", tls)).unwrap();
            assert_eq!(http.request_count(), 0);
            assert!(http.stats().is_empty());
        }
        let mut cfg = HttpConfig::new("x", TlsMode::Insecure);
        cfg.retry.max_attempts = 0;
        assert_eq!(Http::new(cfg).unwrap_err().label(), "config");
    }

    #[test]
    fn retry_after_header_is_read() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let resp = HttpResponse {
            status: 429,
            reason: None,
            headers,
            body: Bytes::new(),
        };
        assert_eq!(resp.retry_after(), Some(Duration::from_secs(7)));
        assert!(!resp.is_success());
    }
}
