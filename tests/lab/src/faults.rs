//! Generic transport faults, applied by the server before a request reaches
//! its emulator: latency, error statuses, `429`/`503` with `Retry-After`,
//! hangs and connection resets. One [`Faults`] per server (a Proxmox cluster's
//! nodes share theirs; rules may name a node), settable from the seed and at
//! run time. Random choices use a seedable RNG so tests are repeatable.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

use crate::http::{Body, Response};

/// Which real server the faults imitate (shapes the default error bodies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Proxmox,
    Guacamole,
}

/// Fault settings of one server, as written in a seed file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSettings {
    /// Added to every request, in milliseconds.
    pub latency_ms: u64,
    /// Up to this many more milliseconds, uniformly random.
    pub jitter_ms: u64,
    /// Seed of the RNG behind `probability` and jitter (fixed default).
    pub rng_seed: Option<u64>,
    pub rules: Vec<FaultRule>,
}

/// One fault: which requests it hits, how often, and what happens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Only this method (case-insensitive).
    #[serde(default)]
    pub method: Option<String>,
    /// Only paths (decoded, without query) starting with this.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Only paths containing this.
    #[serde(default)]
    pub path_contains: Option<String>,
    /// Only requests that arrive at this Proxmox node's listener.
    #[serde(default)]
    pub node: Option<String>,
    /// Chance per matching request (default 1).
    #[serde(default)]
    pub probability: Option<f64>,
    /// Fire for the next N matching requests only, then disappear.
    #[serde(default)]
    pub count: Option<u32>,
    pub action: FaultAction,
}

/// What a fault does to the request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FaultAction {
    /// Extra latency for matching requests; other rules still apply.
    Delay { ms: u64 },
    /// Answer with this status instead of calling the emulator.
    Error {
        status: u16,
        #[serde(default)]
        reason: Option<String>,
        /// Body text; a server-shaped JSON error when absent.
        #[serde(default)]
        body: Option<String>,
        #[serde(default)]
        content_type: Option<String>,
        /// Close the connection after the answer (Proxmox default: yes).
        #[serde(default)]
        close: Option<bool>,
    },
    /// `429`/`503` with `Retry-After`, as a proxy or rate limiter sends it.
    RetryAfter {
        #[serde(default = "default_retry_status")]
        status: u16,
        /// Seconds to wait.
        seconds: u64,
        /// Send the value as an HTTP date instead of seconds.
        #[serde(default)]
        http_date: bool,
        #[serde(default)]
        body: RetryBody,
    },
    /// Read the request, never answer; the connection stays open until the
    /// client gives up (or the lab shuts down).
    Hang,
    /// Close the TCP connection abruptly (RST), no answer.
    Reset,
}

fn default_retry_status() -> u16 {
    503
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetryBody {
    #[default]
    Json,
    /// An nginx-style HTML page.
    Html,
    Empty,
}

impl FaultRule {
    fn with_action(action: FaultAction) -> Self {
        FaultRule {
            method: None,
            path_prefix: None,
            path_contains: None,
            node: None,
            probability: None,
            count: None,
            action,
        }
    }

    pub fn error(status: u16) -> Self {
        Self::with_action(FaultAction::Error {
            status,
            reason: None,
            body: None,
            content_type: None,
            close: None,
        })
    }

    pub fn retry_after(status: u16, seconds: u64) -> Self {
        Self::with_action(FaultAction::RetryAfter {
            status,
            seconds,
            http_date: false,
            body: RetryBody::Json,
        })
    }

    pub fn hang() -> Self {
        Self::with_action(FaultAction::Hang)
    }

    pub fn reset() -> Self {
        Self::with_action(FaultAction::Reset)
    }

    pub fn delay(by: Duration) -> Self {
        Self::with_action(FaultAction::Delay {
            ms: by.as_millis() as u64,
        })
    }

    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_string());
        self
    }

    pub fn path_prefix(mut self, prefix: &str) -> Self {
        self.path_prefix = Some(prefix.to_string());
        self
    }

    pub fn path_contains(mut self, part: &str) -> Self {
        self.path_contains = Some(part.to_string());
        self
    }

    pub fn node(mut self, node: &str) -> Self {
        self.node = Some(node.to_string());
        self
    }

    pub fn probability(mut self, p: f64) -> Self {
        self.probability = Some(p);
        self
    }

    /// Fire for the next `n` matching requests only.
    pub fn times(mut self, n: u32) -> Self {
        self.count = Some(n);
        self
    }

    fn matches(&self, method: &str, path: &str, node: Option<&str>) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
            && self.node.as_deref().is_none_or(|n| Some(n) == node)
    }
}

/// Handle to a rule added at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleId(u64);

/// What the server must do with one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    pub delay: Duration,
    /// The first matching non-delay action, if any.
    pub action: Option<FaultAction>,
}

const DEFAULT_RNG_SEED: u64 = 0x1ab_5eed;

/// Runtime-settable faults of one server.
#[derive(Debug)]
pub struct Faults {
    kind: ServerKind,
    inner: Mutex<FaultState>,
}

#[derive(Debug)]
struct FaultState {
    latency: Duration,
    jitter: Duration,
    rng: StdRng,
    rules: Vec<(RuleId, FaultRule)>,
    next_id: u64,
    fired: u64,
}

impl Faults {
    pub fn new(kind: ServerKind) -> Self {
        Faults {
            kind,
            inner: Mutex::new(FaultState {
                latency: Duration::ZERO,
                jitter: Duration::ZERO,
                rng: StdRng::seed_from_u64(DEFAULT_RNG_SEED),
                rules: Vec::new(),
                next_id: 0,
                fired: 0,
            }),
        }
    }

    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// Replace everything with these settings.
    pub fn apply(&self, settings: &FaultSettings) {
        self.clear();
        self.set_latency(
            Duration::from_millis(settings.latency_ms),
            Duration::from_millis(settings.jitter_ms),
        );
        self.set_rng_seed(settings.rng_seed.unwrap_or(DEFAULT_RNG_SEED));
        for rule in &settings.rules {
            self.add(rule.clone());
        }
    }

    /// Latency added to every request: `fixed` plus up to `jitter`.
    pub fn set_latency(&self, fixed: Duration, jitter: Duration) {
        let mut g = self.inner.lock().unwrap();
        g.latency = fixed;
        g.jitter = jitter;
    }

    pub fn set_rng_seed(&self, seed: u64) {
        self.inner.lock().unwrap().rng = StdRng::seed_from_u64(seed);
    }

    pub fn add(&self, rule: FaultRule) -> RuleId {
        let mut g = self.inner.lock().unwrap();
        let id = RuleId(g.next_id);
        g.next_id += 1;
        g.rules.push((id, rule));
        id
    }

    pub fn remove(&self, id: RuleId) {
        self.inner.lock().unwrap().rules.retain(|(i, _)| *i != id);
    }

    /// Remove all rules and the latency.
    pub fn clear(&self) {
        let mut g = self.inner.lock().unwrap();
        g.rules.clear();
        g.latency = Duration::ZERO;
        g.jitter = Duration::ZERO;
    }

    /// Rules still active (count-limited rules vanish when used up).
    pub fn active_rules(&self) -> usize {
        self.inner.lock().unwrap().rules.len()
    }

    /// Faults fired so far (delays included).
    pub fn fired(&self) -> u64 {
        self.inner.lock().unwrap().fired
    }

    /// Shorthand: the next `n` requests matching `method` and `path_prefix`
    /// (either may be empty for "any") fail with `status`.
    pub fn fail_next(&self, n: u32, method: &str, path_prefix: &str, status: u16) -> RuleId {
        let mut rule = FaultRule::error(status).times(n);
        if !method.is_empty() {
            rule = rule.method(method);
        }
        if !path_prefix.is_empty() {
            rule = rule.path_prefix(path_prefix);
        }
        self.add(rule)
    }

    /// Decide what happens to one request.
    pub fn decide(&self, method: &str, path: &str, node: Option<&str>) -> Decision {
        let mut g = self.inner.lock().unwrap();
        let g = &mut *g;
        let mut delay = g.latency;
        if !g.jitter.is_zero() {
            let extra = g.rng.random_range(0..=g.jitter.as_micros() as u64);
            delay += Duration::from_micros(extra);
        }
        let mut action = None;
        let mut exhausted = Vec::new();
        for (id, rule) in g.rules.iter_mut() {
            if !rule.matches(method, path, node) {
                continue;
            }
            if let Some(p) = rule.probability
                && g.rng.random::<f64>() >= p
            {
                continue;
            }
            let is_delay = matches!(rule.action, FaultAction::Delay { .. });
            if !is_delay && action.is_some() {
                continue;
            }
            if let Some(n) = rule.count.as_mut() {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    exhausted.push(*id);
                }
            }
            g.fired += 1;
            match &rule.action {
                FaultAction::Delay { ms } => delay += Duration::from_millis(*ms),
                other => action = Some(other.clone()),
            }
        }
        g.rules
            .retain(|(id, r)| !exhausted.contains(id) && r.count != Some(0));
        Decision { delay, action }
    }
}

/// The answer for an `Error` or `RetryAfter` action.
pub fn fault_response(kind: ServerKind, action: &FaultAction) -> Option<Response> {
    match action {
        FaultAction::Error {
            status,
            reason,
            body,
            content_type,
            close,
        } => {
            let phrase = reason
                .clone()
                .unwrap_or_else(|| default_message(kind, *status));
            let mut resp = Response::new(*status).reason(phrase.clone());
            let (bytes, ctype) = match body {
                Some(text) => (
                    text.clone().into_bytes(),
                    content_type
                        .clone()
                        .unwrap_or_else(|| "text/plain;charset=UTF-8".into()),
                ),
                None => (
                    error_body(kind, *status, &phrase),
                    content_type.clone().unwrap_or_else(|| json_type(kind)),
                ),
            };
            resp.body = Body::Bytes(bytes);
            resp.headers.push(("Content-Type".into(), ctype));
            resp.close = close.unwrap_or(kind == ServerKind::Proxmox);
            Some(resp)
        }
        FaultAction::RetryAfter {
            status,
            seconds,
            http_date,
            body,
        } => {
            let value = if *http_date {
                crate::server::http_date(SystemTime::now() + Duration::from_secs(*seconds))
            } else {
                seconds.to_string()
            };
            let mut resp = Response::new(*status).header("Retry-After", value);
            let phrase = crate::server::canonical_reason(*status);
            match body {
                RetryBody::Json => {
                    resp.body = Body::Bytes(
                        serde_json::json!({"error": phrase, "retry_after": seconds})
                            .to_string()
                            .into_bytes(),
                    );
                    resp.headers
                        .push(("Content-Type".into(), "application/json".into()));
                }
                RetryBody::Html => {
                    let html = format!(
                        "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
                    );
                    resp.body = Body::Bytes(html.into_bytes());
                    resp.headers
                        .push(("Content-Type".into(), "text/html".into()));
                }
                RetryBody::Empty => {}
            }
            Some(resp)
        }
        FaultAction::Delay { .. } | FaultAction::Hang | FaultAction::Reset => None,
    }
}

fn json_type(kind: ServerKind) -> String {
    match kind {
        ServerKind::Proxmox => "application/json;charset=UTF-8".into(),
        ServerKind::Guacamole => "application/json".into(),
    }
}

fn default_message(kind: ServerKind, status: u16) -> String {
    match (kind, status) {
        (ServerKind::Guacamole, 500) => "Unexpected internal error".into(),
        _ => format!("Injected fault ({status})"),
    }
}

fn error_body(kind: ServerKind, status: u16, message: &str) -> Vec<u8> {
    let value = match kind {
        ServerKind::Proxmox => serde_json::json!({"data": null, "message": format!("{message}\n")}),
        ServerKind::Guacamole => {
            let kind = match status {
                403 => "PERMISSION_DENIED",
                404 => "NOT_FOUND",
                400..=499 => "BAD_REQUEST",
                _ => "INTERNAL_ERROR",
            };
            serde_json::json!({
                "message": message,
                "translatableMessage": {"key": "APP.TEXT_UNTRANSLATED", "variables": {"MESSAGE": message}},
                "statusCode": null,
                "expected": null,
                "type": kind,
            })
        }
    };
    value.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_n_then_gone() {
        let f = Faults::new(ServerKind::Guacamole);
        f.fail_next(2, "GET", "/a", 500);
        assert!(f.decide("POST", "/a", None).action.is_none());
        assert!(f.decide("GET", "/b", None).action.is_none());
        assert!(f.decide("GET", "/a/x", None).action.is_some());
        assert!(f.decide("get", "/a", None).action.is_some());
        assert!(f.decide("GET", "/a", None).action.is_none());
        assert_eq!(f.active_rules(), 0);
        assert_eq!(f.fired(), 2);
    }

    #[test]
    fn probability_is_repeatable() {
        let run = || {
            let f = Faults::new(ServerKind::Proxmox);
            f.add(FaultRule::error(500).probability(0.3));
            (0..200)
                .map(|_| f.decide("GET", "/", None).action.is_some())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let hits = a.iter().filter(|h| **h).count();
        assert!((30..90).contains(&hits), "{hits}");
    }

    #[test]
    fn delays_add_up_and_node_filter() {
        let f = Faults::new(ServerKind::Proxmox);
        f.set_latency(Duration::from_millis(5), Duration::ZERO);
        f.add(FaultRule::delay(Duration::from_millis(7)).node("pve2"));
        f.add(FaultRule::reset().node("pve2"));
        let d = f.decide("GET", "/", Some("pve2"));
        assert_eq!(d.delay, Duration::from_millis(12));
        assert_eq!(d.action, Some(FaultAction::Reset));
        let d = f.decide("GET", "/", Some("pve1"));
        assert_eq!(d.delay, Duration::from_millis(5));
        assert_eq!(d.action, None);
    }

    #[test]
    fn seed_yaml() {
        let s: FaultSettings = serde_saphyr::from_str(
            "latency_ms: 3\nrules:\n  - method: GET\n    count: 1\n    action: { kind: retry-after, status: 429, seconds: 2, body: html }\n",
        )
        .unwrap();
        assert_eq!(s.rules.len(), 1);
        let err = serde_saphyr::from_str::<FaultSettings>(
            "rules:\n  - action: { kind: error, status: 500, x: 1 }\n",
        );
        assert!(err.is_err());
    }
}
