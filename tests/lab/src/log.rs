//! The request log: every request any lab server received, with secrets
//! redacted, so tests can assert exactly which calls the daemon made.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::http::{Request, parse_form};

/// What replaces a secret value in the log.
pub const REDACTED: &str = "***";

/// Entries kept before the oldest are forgotten (counters keep counting), so
/// long benchmarks do not grow the log without bound.
pub const DEFAULT_LOG_CAPACITY: usize = 200_000;

/// One request as the lab saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// Position in the log (0 for the first request of the lab).
    pub seq: u64,
    /// `proxmox:<cluster>/<node>` or `guacamole`.
    pub server: String,
    pub method: String,
    /// Decoded path without query (`/tokens/<token>` segments redacted).
    pub path: String,
    /// Raw query string with secret values replaced by `***`.
    pub query: String,
    /// Query pairs followed by form-body pairs, secrets redacted.
    pub params: Vec<(String, String)>,
    /// A JSON body, secrets redacted at any depth.
    pub json: Option<Value>,
    /// Answered status; 0 when the request got no answer at all.
    pub status: u16,
    /// From the end of the request to the end of the answer.
    pub latency: Duration,
    /// The emulator's endpoint template, or `METHOD path` when it gave none.
    pub route: String,
    /// Why no (normal) answer was sent: `header-limit`, `fault:reset`,
    /// `fault:hang`, `fault:error`, `fault:retry-after`, … `None` otherwise.
    pub note: Option<String>,
}

impl RecordedRequest {
    /// True for requests that change state: POST/PUT/DELETE/PATCH, except a
    /// Guacamole login (`POST …/tokens`).
    pub fn is_write(&self) -> bool {
        match self.method.as_str() {
            "POST" => !self.path.ends_with("/tokens"),
            "PUT" | "DELETE" | "PATCH" => true,
            _ => false,
        }
    }

    /// Value of a (redacted) parameter, query or form.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Marks a position in the log; see [`RequestLog::since`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestMark(pub u64);

/// Shared, thread-safe log of all lab servers.
#[derive(Debug)]
pub struct RequestLog {
    inner: Mutex<LogInner>,
}

#[derive(Debug)]
struct LogInner {
    entries: VecDeque<RecordedRequest>,
    next_seq: u64,
    capacity: usize,
    counts: BTreeMap<String, u64>,
    refused: BTreeMap<String, u64>,
}

impl Default for RequestLog {
    fn default() -> Self {
        RequestLog::with_capacity(DEFAULT_LOG_CAPACITY)
    }
}

impl RequestLog {
    pub fn with_capacity(capacity: usize) -> Self {
        RequestLog {
            inner: Mutex::new(LogInner {
                entries: VecDeque::new(),
                next_seq: 0,
                capacity: capacity.max(1),
                counts: BTreeMap::new(),
                refused: BTreeMap::new(),
            }),
        }
    }

    /// Append an entry; its `seq` is assigned here.
    pub fn record(&self, mut entry: RecordedRequest) {
        let mut g = self.inner.lock().unwrap();
        entry.seq = g.next_seq;
        g.next_seq += 1;
        *g.counts.entry(entry.route.clone()).or_insert(0) += 1;
        if g.entries.len() == g.capacity {
            g.entries.pop_front();
        }
        g.entries.push_back(entry);
    }

    /// All entries still held, oldest first.
    pub fn all(&self) -> Vec<RecordedRequest> {
        self.inner.lock().unwrap().entries.iter().cloned().collect()
    }

    /// The current end of the log.
    pub fn mark(&self) -> RequestMark {
        RequestMark(self.inner.lock().unwrap().next_seq)
    }

    /// Entries recorded after `mark` was taken.
    pub fn since(&self, mark: RequestMark) -> Vec<RecordedRequest> {
        let g = self.inner.lock().unwrap();
        g.entries
            .iter()
            .filter(|e| e.seq >= mark.0)
            .cloned()
            .collect()
    }

    /// Requests per route since the lab started (or the last [`clear`](Self::clear)).
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.inner.lock().unwrap().counts.clone()
    }

    /// Total requests recorded.
    pub fn total(&self) -> u64 {
        self.inner.lock().unwrap().next_seq
    }

    /// Count a connection an offline server dropped before any request.
    pub fn record_refused(&self, server: &str) {
        *self
            .inner
            .lock()
            .unwrap()
            .refused
            .entry(server.to_string())
            .or_insert(0) += 1;
    }

    /// Connections dropped by offline servers, per server label.
    pub fn refused_connections(&self) -> BTreeMap<String, u64> {
        self.inner.lock().unwrap().refused.clone()
    }

    /// Forget entries and counters (sequence numbers keep increasing).
    pub fn clear(&self) {
        let mut g = self.inner.lock().unwrap();
        g.entries.clear();
        g.counts.clear();
        g.refused.clear();
    }
}

/// Build the redacted record of `req` (status, latency, route filled in by the caller).
pub fn redacted_record(server: &str, req: &Request) -> RecordedRequest {
    let mut params: Vec<(String, String)> = req
        .query_pairs()
        .into_iter()
        .map(|(k, v)| redact_pair(k, v))
        .collect();
    let content_type = req
        .header("content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut json = None;
    if !req.body.is_empty() {
        if content_type.contains("json") {
            json = serde_json::from_slice::<Value>(&req.body)
                .ok()
                .map(redact_json);
        } else if content_type.is_empty()
            || content_type.starts_with("application/x-www-form-urlencoded")
        {
            params.extend(
                parse_form(&req.body)
                    .into_iter()
                    .map(|(k, v)| redact_pair(k, v)),
            );
        }
    }
    RecordedRequest {
        seq: 0,
        server: server.to_string(),
        method: req.method.clone(),
        path: redact_path(&req.path),
        query: redact_query(&req.query),
        params,
        json,
        status: 0,
        latency: Duration::ZERO,
        route: String::new(),
        note: None,
    }
}

/// Whether the value of a key with this name must never be logged.
pub fn is_secret_key(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "description"
        || [
            "password",
            "passwd",
            "secret",
            "token",
            "passphrase",
            "private-key",
        ]
        .iter()
        .any(|needle| lower.contains(needle))
}

fn redact_pair(key: String, value: String) -> (String, String) {
    if is_secret_key(&key) {
        (key, REDACTED.to_string())
    } else {
        (key, value)
    }
}

/// Replace secret values in any object, at any depth.
pub fn redact_json(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    if is_secret_key(&k) {
                        (k, Value::String(REDACTED.into()))
                    } else {
                        (k, redact_json(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact_json).collect()),
        other => other,
    }
}

/// Redact secret values in a raw query string, keeping everything else as sent.
pub fn redact_query(raw: &str) -> String {
    raw.split('&')
        .map(|pair| {
            let (key, _) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = parse_form(key.as_bytes())
                .into_iter()
                .next()
                .map(|(k, _)| k)
                .unwrap_or_default();
            if pair.contains('=') && is_secret_key(&decoded) {
                format!("{key}={REDACTED}")
            } else {
                pair.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Guacamole's logout path carries the session token: `…/tokens/<token>`.
fn redact_path(path: &str) -> String {
    match path.find("/tokens/") {
        Some(at) if at + "/tokens/".len() < path.len() => {
            format!("{}/tokens/{REDACTED}", &path[..at])
        }
        _ => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_keys() {
        for k in [
            "password",
            "Guac-Password",
            "passwd",
            "client_secret",
            "authToken",
            "ssh-passphrase",
            "private-key",
            "description",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["username", "hostname", "descriptions-count", "port"] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn query_and_json_redaction() {
        assert_eq!(
            redact_query("token=ABC&x=1&password=p%20w&flag"),
            "token=***&x=1&password=***&flag"
        );
        let v = redact_json(
            json!({"a": [{"parameters": {"password": "x", "port": "22"}}],
            "description": "user:\"a\" pass:\"b\";"}),
        );
        assert_eq!(
            v,
            json!({"a": [{"parameters": {"password": "***", "port": "22"}}], "description": "***"})
        );
        assert_eq!(
            redact_path("/guacamole/api/tokens/ABCDEF"),
            "/guacamole/api/tokens/***"
        );
        assert_eq!(
            redact_path("/guacamole/api/tokens"),
            "/guacamole/api/tokens"
        );
    }
}
