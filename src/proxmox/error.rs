//! Proxmox errors, typed from the status, the body `message` (servers from
//! January 2025 on) or the reason phrase (older servers put the text only
//! there), following `spec/proxmox-api.md` §1.3, §2.3, §3, §6–§8, §11.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::http::{HttpError, HttpResponse};

/// Longest server text kept in an error (messages can echo parameters).
const MAX_MESSAGE_CHARS: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum ProxmoxError {
    /// No answer from any endpoint (connect, TLS, timeout, transport).
    #[error("proxmox {cluster}: {source}")]
    Http {
        cluster: String,
        #[source]
        source: HttpError,
    },
    /// 401: wrong, unknown, expired or malformed token.
    #[error(
        "proxmox {cluster}: authentication failed ({reason}); check the API token id and secret"
    )]
    AuthFailed { cluster: String, reason: String },
    /// 403 `Permission check failed (<path>, <priv>)`.
    #[error("permission check failed: {} on {path}", privileges.join(" or "))]
    PermissionDenied {
        path: String,
        /// Any one of these would do (an any-of check lists several).
        privileges: Vec<String>,
    },
    /// 595/596/597/599: the contacted node could not reach the guest's node.
    #[error("node {node} unreachable (HTTP {status}: {reason})")]
    NodeOffline {
        node: String,
        status: u16,
        reason: String,
    },
    /// 500 hostname lookup: `{node}` is not a cluster member.
    #[error("unknown node: {message}")]
    UnknownNode { message: String },
    /// 500 `Configuration file '…' does not exist` (or moved to another node).
    #[error("guest not found: {message}")]
    GuestNotFound { message: String },
    #[error("no QEMU guest agent configured")]
    AgentNotConfigured,
    #[error("QEMU guest agent is not running")]
    AgentNotRunning,
    /// `VM <V> is not running` (agent calls) / `CT <V> not running` (power).
    #[error("guest not running: {message}")]
    GuestNotRunning { message: String },
    /// `VM <V> already running` / `CT <V> already running`.
    #[error("guest already running: {message}")]
    GuestAlreadyRunning { message: String },
    /// The agent answered the ping but not the command in time.
    #[error("guest agent command timed out: {message}")]
    AgentTimeout { message: String },
    /// The agent reported an error (HTTP 200 QGA error object) or the agent
    /// socket failed.
    #[error("guest agent command failed: {}{desc}", class.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
    AgentCommand { class: Option<String>, desc: String },
    /// The config changed since it was read (VM and CT texts).
    #[error("config digest mismatch: {message}")]
    DigestMismatch { message: String },
    /// `VM is locked (<lock>)` / `CT is locked (<lock>)`.
    #[error("guest is locked ({lock})")]
    Locked { lock: String },
    /// The config file lock could not be taken within 10 s.
    #[error("config lock timeout: {message}")]
    LockTimeout { message: String },
    #[error("cluster not ready - no quorum")]
    NoQuorum,
    /// 400 with one text per bad parameter.
    #[error("bad parameter: {message}{}", format_param_errors(errors))]
    BadParameter {
        message: String,
        errors: BTreeMap<String, String>,
    },
    /// 501: unknown path/method, too large, or an old server without the call.
    #[error("not implemented: {message}")]
    NotImplemented { message: String },
    /// A task ended with an error exit status.
    #[error("task {upid} failed: {exitstatus}")]
    TaskFailed { upid: String, exitstatus: String },
    /// A task did not finish within the wait.
    #[error("task {upid} still running after {waited:?}")]
    TaskTimeout { upid: String, waited: Duration },
    /// Any other error status.
    #[error("server error (HTTP {status}): {message}")]
    Server { status: u16, message: String },
    /// A 2xx answer that does not have the documented shape.
    #[error("unexpected answer from {endpoint}: {reason}")]
    Decode {
        endpoint: &'static str,
        reason: String,
    },
    /// The client settings are unusable.
    #[error("proxmox client configuration: {reason}")]
    Config { reason: String },
}

fn format_param_errors(errors: &BTreeMap<String, String>) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = errors
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.trim_end()))
        .collect();
    format!(" ({})", parts.join("; "))
}

impl ProxmoxError {
    /// Short stable label for metrics and `STATUS=`.
    pub fn label(&self) -> &'static str {
        match self {
            ProxmoxError::Http { source, .. } => source.label(),
            ProxmoxError::AuthFailed { .. } => "auth_failed",
            ProxmoxError::PermissionDenied { .. } => "permission_denied",
            ProxmoxError::NodeOffline { .. } => "node_offline",
            ProxmoxError::UnknownNode { .. } => "unknown_node",
            ProxmoxError::GuestNotFound { .. } => "guest_not_found",
            ProxmoxError::AgentNotConfigured => "agent_not_configured",
            ProxmoxError::AgentNotRunning => "agent_not_running",
            ProxmoxError::GuestNotRunning { .. } => "guest_not_running",
            ProxmoxError::GuestAlreadyRunning { .. } => "guest_already_running",
            ProxmoxError::AgentTimeout { .. } => "agent_timeout",
            ProxmoxError::AgentCommand { .. } => "agent_command",
            ProxmoxError::DigestMismatch { .. } => "digest_mismatch",
            ProxmoxError::Locked { .. } => "locked",
            ProxmoxError::LockTimeout { .. } => "lock_timeout",
            ProxmoxError::NoQuorum => "no_quorum",
            ProxmoxError::BadParameter { .. } => "bad_parameter",
            ProxmoxError::NotImplemented { .. } => "not_implemented",
            ProxmoxError::TaskFailed { .. } => "task_failed",
            ProxmoxError::TaskTimeout { .. } => "task_timeout",
            ProxmoxError::Server { .. } => "server_error",
            ProxmoxError::Decode { .. } => "decode",
            ProxmoxError::Config { .. } => "config",
        }
    }

    /// Maps an error answer. `node` is the node the call addressed (for 595…).
    pub fn from_response(resp: &HttpResponse, cluster: &str, node: Option<&str>) -> ProxmoxError {
        let body: Option<Value> = serde_json::from_slice(&resp.body).ok();
        let message = body
            .as_ref()
            .and_then(|b| b.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .filter(|m| !m.trim().is_empty())
            .or_else(|| resp.reason.clone().filter(|r| !r.trim().is_empty()))
            .or_else(|| plain_text_body(resp, body.is_some()))
            .unwrap_or_else(|| canonical_reason(resp.status).to_string());
        let message = clip(message.trim_end());
        let errors: BTreeMap<String, String> = body
            .as_ref()
            .and_then(|b| b.get("errors"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let text = v
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string());
                        (k.clone(), clip(text.trim_end()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self::classify(resp.status, message, errors, cluster, node)
    }

    /// Maps a status and message (also used for task exit statuses, with 500).
    pub fn classify(
        status: u16,
        message: String,
        errors: BTreeMap<String, String>,
        cluster: &str,
        node: Option<&str>,
    ) -> ProxmoxError {
        match status {
            401 => ProxmoxError::AuthFailed {
                cluster: cluster.to_string(),
                reason: message,
            },
            403 => match parse_permission_failure(&message) {
                Some((path, privileges)) => ProxmoxError::PermissionDenied { path, privileges },
                None => ProxmoxError::Server { status, message },
            },
            400 => ProxmoxError::BadParameter { message, errors },
            501 => ProxmoxError::NotImplemented { message },
            595..=599 => ProxmoxError::NodeOffline {
                node: node.unwrap_or("?").to_string(),
                status,
                reason: message,
            },
            _ => classify_message(status, message),
        }
    }

    /// Maps a failed task's exit status to the matching typed error, if any.
    pub fn task_cause(&self) -> Option<ProxmoxError> {
        match self {
            ProxmoxError::TaskFailed { exitstatus, .. } => {
                match classify_message(500, exitstatus.clone()) {
                    ProxmoxError::Server { .. } => None,
                    typed => Some(typed),
                }
            }
            _ => None,
        }
    }

    /// The missing privileges, for a permission error.
    pub fn missing_privileges(&self) -> Option<(&str, &[String])> {
        match self {
            ProxmoxError::PermissionDenied { path, privileges } => {
                Some((path.as_str(), privileges.as_slice()))
            }
            _ => None,
        }
    }
}

/// Recognises the texts of a method error (500 and task exit statuses).
fn classify_message(status: u16, message: String) -> ProxmoxError {
    let m = message.as_str();
    if (m.starts_with("Configuration file '") && m.ends_with("does not exist"))
        || m.starts_with("unable to find configuration file for VM")
    {
        return ProxmoxError::GuestNotFound { message };
    }
    if m == "No QEMU guest agent configured" {
        return ProxmoxError::AgentNotConfigured;
    }
    if m == "QEMU guest agent is not running" {
        return ProxmoxError::AgentNotRunning;
    }
    if m.contains(" qga command ") {
        if m.ends_with("got timeout") {
            return ProxmoxError::AgentTimeout { message };
        }
        let desc = m
            .split_once(" failed - ")
            .map(|(_, r)| r.to_string())
            .unwrap_or_else(|| message.clone());
        return ProxmoxError::AgentCommand { class: None, desc };
    }
    if is_guest_phrase(m, "is not running") || is_guest_phrase(m, "not running") {
        return ProxmoxError::GuestNotRunning { message };
    }
    if is_guest_phrase(m, "already running") {
        return ProxmoxError::GuestAlreadyRunning { message };
    }
    // PVE 8's qemu-server spelled it "missmatch"; the suffix is stable.
    if m.starts_with("checksum mismatch")
        || m.starts_with("checksum missmatch")
        || m.starts_with("detected modified configuration - file changed by other user")
    {
        return ProxmoxError::DigestMismatch { message };
    }
    if let Some(lock) = ["VM is locked (", "CT is locked ("]
        .iter()
        .find_map(|p| m.strip_prefix(p))
        .and_then(|rest| rest.strip_suffix(')'))
    {
        return ProxmoxError::Locked {
            lock: lock.to_string(),
        };
    }
    if m.starts_with("can't lock file") && m.ends_with("got timeout") {
        return ProxmoxError::LockTimeout { message };
    }
    if m.starts_with("cluster not ready - no quorum") {
        return ProxmoxError::NoQuorum;
    }
    if m.starts_with("hostname lookup '") || m.starts_with("address lookup for '") {
        return ProxmoxError::UnknownNode { message };
    }
    ProxmoxError::Server { status, message }
}

/// `VM 100 <phrase>` or `CT 100 <phrase>` exactly.
fn is_guest_phrase(m: &str, phrase: &str) -> bool {
    let Some(rest) = m.strip_prefix("VM ").or_else(|| m.strip_prefix("CT ")) else {
        return false;
    };
    let Some((id, tail)) = rest.split_once(' ') else {
        return false;
    };
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && tail == phrase
}

/// `Permission check failed (/vms/100, VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted)`.
pub fn parse_permission_failure(message: &str) -> Option<(String, Vec<String>)> {
    let inner = message
        .trim()
        .strip_prefix("Permission check failed (")?
        .strip_suffix(')')?;
    let (path, privs) = inner.rsplit_once(", ")?;
    let mut privileges: Vec<String> = Vec::new();
    for p in privs.split('|').map(str::trim).filter(|p| !p.is_empty()) {
        if !privileges.iter().any(|q| q == p) {
            privileges.push(p.to_string());
        }
    }
    Some((path.trim().to_string(), privileges))
}

/// A short non-JSON body (501 `for data too large`, `no such uri`).
fn plain_text_body(resp: &HttpResponse, was_json: bool) -> Option<String> {
    if was_json || resp.body.is_empty() || resp.body.len() > 1024 {
        return None;
    }
    let text = std::str::from_utf8(&resp.body).ok()?.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn canonical_reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("no reason given")
}

fn clip(text: &str) -> String {
    if text.chars().count() <= MAX_MESSAGE_CHARS {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use reqwest::header::HeaderMap;

    fn resp(status: u16, reason: Option<&str>, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            reason: reason.map(str::to_string),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_string()),
        }
    }

    /// The same error from a current server (body message) and a legacy one
    /// (reason phrase only) maps identically.
    fn both(status: u16, text: &str) -> [ProxmoxError; 2] {
        let first_line = text.lines().next().unwrap();
        let body = serde_json::json!({"data": null, "message": format!("{text}\n")}).to_string();
        [
            ProxmoxError::from_response(
                &resp(status, Some(first_line), &body),
                "lab",
                Some("pve2"),
            ),
            ProxmoxError::from_response(
                &resp(status, Some(first_line), r#"{"data":null}"#),
                "lab",
                Some("pve2"),
            ),
        ]
    }

    #[test]
    fn auth_failures_from_empty_body() {
        for reason in [
            "Authentication failed!",
            "No ticket",
            "no such token 'daemon' for user 'svc@pve'",
        ] {
            let e = ProxmoxError::from_response(&resp(401, Some(reason), ""), "lab", None);
            assert_eq!(e.label(), "auth_failed");
            assert!(e.to_string().contains(reason), "{e}");
        }
        // Even without any reason phrase.
        let e = ProxmoxError::from_response(&resp(401, None, ""), "lab", None);
        assert!(
            matches!(e, ProxmoxError::AuthFailed { ref reason, .. } if reason == "Unauthorized")
        );
    }

    #[test]
    fn permission_denied_names_the_privilege() {
        for e in both(403, "Permission check failed (/vms/100, VM.Config.Options)") {
            let (path, privs) = e.missing_privileges().unwrap();
            assert_eq!(path, "/vms/100");
            assert_eq!(privs, ["VM.Config.Options"]);
        }
        let [e, _] = both(
            403,
            "Permission check failed (/vms/101, VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted)",
        );
        assert_eq!(
            e.missing_privileges().unwrap().1,
            ["VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"]
        );
        assert_eq!(
            e.to_string(),
            "permission check failed: VM.GuestAgent.Audit or VM.GuestAgent.Unrestricted on /vms/101"
        );
        // The doubled legacy-agent text collapses.
        let [e, _] = both(
            403,
            "Permission check failed (/vms/1, VM.GuestAgent.Unrestricted|VM.GuestAgent.Unrestricted)",
        );
        assert_eq!(
            e.missing_privileges().unwrap().1,
            ["VM.GuestAgent.Unrestricted"]
        );
    }

    #[test]
    fn node_offline_pseudo_codes() {
        for status in [595, 596, 597, 599] {
            let e = ProxmoxError::from_response(
                &resp(status, Some("No route to host"), ""),
                "lab",
                Some("pve2"),
            );
            match e {
                ProxmoxError::NodeOffline {
                    node,
                    status: s,
                    reason,
                } => {
                    assert_eq!(
                        (node.as_str(), s, reason.as_str()),
                        ("pve2", status, "No route to host")
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn method_errors_in_both_body_shapes() {
        let cases: &[(&str, &str)] = &[
            (
                "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist",
                "guest_not_found",
            ),
            (
                "Configuration file 'nodes/pve1/lxc/998.conf' does not exist",
                "guest_not_found",
            ),
            ("No QEMU guest agent configured", "agent_not_configured"),
            ("QEMU guest agent is not running", "agent_not_running"),
            ("VM 100 is not running", "guest_not_running"),
            ("CT 200 not running", "guest_not_running"),
            ("CT 200 already running", "guest_already_running"),
            (
                "VM 100 qga command 'guest-network-get-interfaces' failed - got timeout",
                "agent_timeout",
            ),
            (
                "VM 100 qga command 'guest-network-get-interfaces' failed - unable to connect",
                "agent_command",
            ),
            (
                "checksum mismatch (file change by other user?)",
                "digest_mismatch",
            ),
            (
                "detected modified configuration - file changed by other user? Try again.",
                "digest_mismatch",
            ),
            ("VM is locked (backup)", "locked"),
            ("CT is locked (snapshot)", "locked"),
            (
                "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout",
                "lock_timeout",
            ),
            ("cluster not ready - no quorum?", "no_quorum"),
            (
                "hostname lookup 'nope' failed - failed to get address info for: nope: Name or service not known",
                "unknown_node",
            ),
            ("no options specified", "server_error"),
        ];
        for (text, label) in cases {
            for e in both(500, text) {
                assert_eq!(e.label(), *label, "{text}");
            }
        }
        let [e, _] = both(500, "VM is locked (backup)");
        assert!(matches!(e, ProxmoxError::Locked { ref lock } if lock == "backup"));
        let [e, _] = both(500, "no options specified");
        assert_eq!(
            e.to_string(),
            "server error (HTTP 500): no options specified"
        );
    }

    #[test]
    fn bad_parameter_keeps_the_errors_map() {
        let body = r#"{"data":null,"message":"Parameter verification failed.\n","errors":{"vmid":"invalid format - value does not look like a valid VM ID\n"}}"#;
        let e = ProxmoxError::from_response(
            &resp(400, Some("Parameter verification failed."), body),
            "lab",
            None,
        );
        match &e {
            ProxmoxError::BadParameter { message, errors } => {
                assert_eq!(message, "Parameter verification failed.");
                assert_eq!(
                    errors["vmid"],
                    "invalid format - value does not look like a valid VM ID"
                );
            }
            other => panic!("{other:?}"),
        }
        // Legacy body: errors map without message.
        let e = ProxmoxError::from_response(
            &resp(
                400,
                Some("Parameter verification failed."),
                r#"{"data":null,"errors":{"description":"value may only be 8192 characters long"}}"#,
            ),
            "lab",
            None,
        );
        assert_eq!(
            e.to_string(),
            "bad parameter: Parameter verification failed. (description: value may only be 8192 characters long)"
        );
    }

    #[test]
    fn not_implemented_and_plain_text_bodies() {
        let e = ProxmoxError::from_response(&resp(501, None, "for data too large"), "lab", None);
        assert!(
            matches!(e, ProxmoxError::NotImplemented { ref message } if message == "for data too large")
        );
        let e = ProxmoxError::from_response(
            &resp(
                501,
                Some("Method 'GET /nodes/pve1/qemu/100/foo' not implemented"),
                r#"{"data":null,"message":"Method 'GET /nodes/pve1/qemu/100/foo' not implemented"}"#,
            ),
            "lab",
            None,
        );
        assert_eq!(e.label(), "not_implemented");
    }

    #[test]
    fn task_exit_status_maps_to_a_cause() {
        let e = ProxmoxError::TaskFailed {
            upid: "UPID:x".into(),
            exitstatus: "VM 100 already running".into(),
        };
        assert_eq!(e.task_cause().unwrap().label(), "guest_already_running");
        let e = ProxmoxError::TaskFailed {
            upid: "UPID:x".into(),
            exitstatus: "VM quit/powerdown failed - got timeout".into(),
        };
        assert!(e.task_cause().is_none());
    }

    #[test]
    fn long_messages_are_clipped() {
        let long = "x".repeat(5000);
        let e = ProxmoxError::from_response(&resp(500, Some(&long), ""), "lab", None);
        assert!(e.to_string().chars().count() < 400);
    }

    #[test]
    fn pve8_digest_mismatch_spelling_is_a_digest_mismatch() {
        for e in both(500, "checksum missmatch (file change by other user?)") {
            assert_eq!(e.label(), "digest_mismatch", "{e}");
        }
    }

    #[test]
    fn a_blank_reason_phrase_falls_back_to_the_standard_text() {
        let e = ProxmoxError::from_response(&resp(500, Some(""), ""), "lab", None);
        assert!(!e.to_string().trim().is_empty(), "{e:?}");
        assert!(e.to_string().contains("Internal Server Error"), "{e}");
    }
}
