//! Errors of the shared HTTP layer. They name the API, the endpoint label and
//! the host, never a URL query, a header value or a body: those may carry
//! tokens or passwords.

use std::time::Duration;

/// Why one HTTP exchange failed before a complete response was available.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The TLS handshake failed: untrusted or mismatching certificate, or a
    /// protocol failure. `reason` is one of the clear texts of [`TlsFailure`].
    #[error("{api}: TLS with {host} failed: {reason}")]
    Tls {
        api: String,
        host: String,
        reason: String,
    },
    /// No TCP connection could be made (refused, unreachable, DNS). The request
    /// never reached the server.
    #[error("{api}: cannot connect to {host}: {reason}")]
    Connect {
        api: String,
        host: String,
        reason: String,
    },
    /// The connection or the whole exchange took longer than allowed.
    #[error("{api}: {endpoint} on {host} timed out after {after:?} ({phase})")]
    Timeout {
        api: String,
        host: String,
        endpoint: &'static str,
        phase: TimeoutPhase,
        after: Duration,
    },
    /// The response body grew beyond `max_response_bytes`; reading stopped.
    #[error("{api}: {endpoint} answer exceeds {limit} bytes")]
    ResponseTooLarge {
        api: String,
        endpoint: &'static str,
        limit: usize,
    },
    /// The connection broke while sending or reading (reset, malformed answer).
    #[error("{api}: {endpoint} on {host} failed: {reason}")]
    Transport {
        api: String,
        host: String,
        endpoint: &'static str,
        reason: String,
    },
    /// The client could not be built (bad CA file, bad settings).
    #[error("{api}: HTTP client configuration: {reason}")]
    Config { api: String, reason: String },
    /// Not sent: the server asked (`Retry-After`) for a pause longer than
    /// the retry cap, and it is not over yet.
    #[error("{api}: {endpoint} not sent: the server asked for a pause, {}s left", remaining.as_secs())]
    Paused {
        api: String,
        endpoint: &'static str,
        remaining: Duration,
    },
    /// Not sent again: the process is shutting down.
    #[error("{api}: {endpoint} not repeated: shutting down")]
    Cancelled { api: String, endpoint: &'static str },
}

/// Which deadline expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    Connect,
    Request,
}

impl std::fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "connect",
            TimeoutPhase::Request => "request",
        })
    }
}

/// Clear texts for TLS failures, so operators see what to fix.
pub struct TlsFailure;

impl TlsFailure {
    pub const PIN_MISMATCH: &'static str =
        "certificate fingerprint does not match the pinned fingerprint";
    pub const NOT_TRUSTED: &'static str = "certificate not trusted (unknown issuer or self-signed; \
         configure a CA file or a pinned SHA-256 fingerprint)";
    pub const WRONG_NAME: &'static str = "certificate not valid for this host name";
    pub const EXPIRED: &'static str = "certificate expired or not yet valid";
}

impl HttpError {
    /// Short stable label for metrics and the `STATUS=` line.
    pub fn label(&self) -> &'static str {
        match self {
            HttpError::Tls { .. } => "tls",
            HttpError::Connect { .. } => "connect",
            HttpError::Timeout { .. } => "timeout",
            HttpError::ResponseTooLarge { .. } => "response_too_large",
            HttpError::Transport { .. } => "transport",
            HttpError::Config { .. } => "config",
            HttpError::Paused { .. } => "paused",
            HttpError::Cancelled { .. } => "cancelled",
        }
    }

    /// True when the request provably never reached the server (no
    /// connection, or the handshake failed), so even a non-idempotent request
    /// may be sent again, here or to another endpoint.
    pub fn never_sent(&self) -> bool {
        matches!(
            self,
            HttpError::Connect { .. }
                | HttpError::Tls { .. }
                | HttpError::Paused { .. }
                | HttpError::Timeout {
                    phase: TimeoutPhase::Connect,
                    ..
                }
        )
    }

    /// True when another endpoint of the same API may work: the failure is
    /// about reaching this host, not about the request.
    pub fn is_endpoint_failure(&self) -> bool {
        matches!(
            self,
            HttpError::Connect { .. } | HttpError::Tls { .. } | HttpError::Timeout { .. }
        )
    }
}
