//! Typed Guacamole errors and the mapping from a response (status, media type,
//! body) to them (spec §3). The mapping is pure so every body of the spec can
//! be unit-tested.
//!
//! Messages are taken from the server's JSON error body, which names objects
//! and parameters but never carries parameter values. The one body that may
//! echo request content — the `text/plain` parser message of a malformed-JSON
//! 400 — is dropped, so no password can reach an error or a log line.

use std::sync::Arc;

use serde::Deserialize;

use crate::http::HttpError;

use super::types::ObjectKind;

/// Longest server message kept in an error (a misbehaving proxy must not be
/// able to flood logs).
const MAX_MESSAGE_CHARS: usize = 300;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GuacamoleError {
    #[error("Guacamole transport error: {0}")]
    Transport(#[source] Arc<HttpError>),

    #[error("Guacamole rejected the login: {message}")]
    InvalidCredentials { message: String },

    #[error("Guacamole wants further credentials (expired password, TOTP, …): {message}")]
    InsufficientCredentials { message: String },

    #[error("Guacamole refused login attempts from this address: {message}")]
    TooManyAttempts { message: String },

    /// The session token is missing, unknown or expired (`Permission Denied.`).
    /// A 429 (or 503) answer to a login without Guacamole's error body: a
    /// proxy or the server is throttling. Base-path detection stops here
    /// rather than posting the credentials to the next candidate.
    #[error("Guacamole answered HTTP {status} to the login (rate limited{}); try again later", retry_after.map(|s| format!(", retry after {s} s")).unwrap_or_default())]
    RateLimited {
        status: u16,
        retry_after: Option<u64>,
    },

    #[error("Guacamole session token is invalid or expired")]
    InvalidToken,

    /// Authenticated but lacking a right (`Permission denied.`, or the
    /// parameters-read denial).
    #[error("Guacamole permission denied: {message}")]
    PermissionDenied { message: String },

    #[error("Guacamole: {message}")]
    NotFound { message: String },

    #[error("Guacamole data source {data_source:?} is not available to this account")]
    UnknownDataSource { data_source: String },

    #[error("Guacamole: the {kind} {name:?} already exists in that parent group")]
    DuplicateName { kind: ObjectKind, name: String },

    #[error("Guacamole: parent connection group {parent:?} does not exist or is not visible")]
    UnknownParent { parent: String },

    #[error("Guacamole: a connection group may not contain itself")]
    GroupContainsItself,

    #[error("Guacamole: the value of connection parameter {parameter:?} is too long")]
    ParameterValueTooLong { parameter: String },

    #[error("Guacamole: request too large: {message}")]
    PayloadTooLarge { message: String },

    #[error("Guacamole rejected the request: {message}")]
    BadRequest { message: String },

    /// 400 with a `text/plain` body: the server could not parse the JSON sent.
    /// The parser message is dropped (it may quote request content).
    #[error("Guacamole could not parse the request body (400 text/plain)")]
    MalformedRequest,

    /// 501 other than the group cycle, e.g. a non-remove directory PATCH on ≤1.5.
    #[error("Guacamole does not support this operation: {message}")]
    Unsupported { message: String },

    #[error("Guacamole server error {status}: {message}")]
    ServerError { status: u16, message: String },

    /// A 1.6 directory PATCH failed as a whole (nothing was applied); the
    /// individual failures are in the batch outcome.
    #[error(
        "Guacamole rejected the batch: {failed} of {total} entries failed, nothing was applied"
    )]
    BatchRejected { failed: usize, total: usize },

    #[error("unexpected Guacamole response {status}: {detail}")]
    UnexpectedResponse { status: u16, detail: String },

    /// A success body that does not have the documented shape. Only the
    /// position is kept: serde messages can quote values.
    #[error("cannot decode Guacamole response of {endpoint} (line {line}, column {column})")]
    Decode {
        endpoint: &'static str,
        line: usize,
        column: usize,
    },

    #[error("no Guacamole API found under {tried}")]
    BasePathNotFound { tried: String },

    #[error("Guacamole client configuration: {message}")]
    Config { message: String },
}

impl GuacamoleError {
    /// Short stable name for metrics and the `STATUS=` line.
    pub fn label(&self) -> &'static str {
        match self {
            GuacamoleError::Transport(_) => "transport",
            GuacamoleError::InvalidCredentials { .. } => "invalid_credentials",
            GuacamoleError::InsufficientCredentials { .. } => "insufficient_credentials",
            GuacamoleError::TooManyAttempts { .. } => "too_many_attempts",
            GuacamoleError::RateLimited { .. } => "rate_limited",
            GuacamoleError::InvalidToken => "invalid_token",
            GuacamoleError::PermissionDenied { .. } => "permission_denied",
            GuacamoleError::NotFound { .. } => "not_found",
            GuacamoleError::UnknownDataSource { .. } => "unknown_data_source",
            GuacamoleError::DuplicateName { .. } => "duplicate_name",
            GuacamoleError::UnknownParent { .. } => "unknown_parent",
            GuacamoleError::GroupContainsItself => "group_cycle",
            GuacamoleError::ParameterValueTooLong { .. } => "parameter_too_long",
            GuacamoleError::PayloadTooLarge { .. } => "payload_too_large",
            GuacamoleError::BadRequest { .. } => "bad_request",
            GuacamoleError::MalformedRequest => "malformed_request",
            GuacamoleError::Unsupported { .. } => "unsupported",
            GuacamoleError::ServerError { .. } => "server_error",
            GuacamoleError::BatchRejected { .. } => "batch_rejected",
            GuacamoleError::UnexpectedResponse { .. } => "unexpected_response",
            GuacamoleError::Decode { .. } => "decode",
            GuacamoleError::BasePathNotFound { .. } => "base_path_not_found",
            GuacamoleError::Config { .. } => "config",
        }
    }

    /// Errors that end a batch: the session or the connection is gone, so the
    /// following operations would fail the same way. Entry-level errors
    /// (duplicate, not found, permission on one object, …) do not.
    pub fn stops_batch(&self) -> bool {
        matches!(
            self,
            GuacamoleError::Transport(_)
                | GuacamoleError::InvalidCredentials { .. }
                | GuacamoleError::InsufficientCredentials { .. }
                | GuacamoleError::TooManyAttempts { .. }
                | GuacamoleError::RateLimited { .. }
                | GuacamoleError::InvalidToken
                | GuacamoleError::UnknownDataSource { .. }
                | GuacamoleError::BasePathNotFound { .. }
                | GuacamoleError::Config { .. }
        )
    }

    /// The same error with each of `secrets` (and its JSON-escaped form)
    /// replaced by `***` in every text the server supplied.
    pub(crate) fn redacted(self, secrets: &[String]) -> Self {
        if secrets.is_empty() {
            return self;
        }
        let scrub = |text: String| {
            let mut text = text;
            for secret in secrets {
                let escaped = serde_json::to_string(secret).unwrap_or_default();
                let escaped = escaped.trim_matches('"');
                for form in [secret.as_str(), escaped] {
                    if !form.is_empty() {
                        text = text.replace(form, "***");
                    }
                }
            }
            text
        };
        use GuacamoleError as E;
        match self {
            E::InvalidCredentials { message } => E::InvalidCredentials {
                message: scrub(message),
            },
            E::InsufficientCredentials { message } => E::InsufficientCredentials {
                message: scrub(message),
            },
            E::TooManyAttempts { message } => E::TooManyAttempts {
                message: scrub(message),
            },
            E::PermissionDenied { message } => E::PermissionDenied {
                message: scrub(message),
            },
            E::NotFound { message } => E::NotFound {
                message: scrub(message),
            },
            E::DuplicateName { kind, name } => E::DuplicateName {
                kind,
                name: scrub(name),
            },
            E::UnknownParent { parent } => E::UnknownParent {
                parent: scrub(parent),
            },
            E::ParameterValueTooLong { parameter } => E::ParameterValueTooLong {
                parameter: scrub(parameter),
            },
            E::PayloadTooLarge { message } => E::PayloadTooLarge {
                message: scrub(message),
            },
            E::BadRequest { message } => E::BadRequest {
                message: scrub(message),
            },
            E::Unsupported { message } => E::Unsupported {
                message: scrub(message),
            },
            E::ServerError { status, message } => E::ServerError {
                status,
                message: scrub(message),
            },
            E::UnexpectedResponse { status, detail } => E::UnexpectedResponse {
                status,
                detail: scrub(detail),
            },
            other => other,
        }
    }

    pub(crate) fn decode(endpoint: &'static str, err: &serde_json::Error) -> Self {
        GuacamoleError::Decode {
            endpoint,
            line: err.line(),
            column: err.column(),
        }
    }
}

impl From<HttpError> for GuacamoleError {
    fn from(err: HttpError) -> Self {
        GuacamoleError::Transport(Arc::new(err))
    }
}

/// `translatableMessage` of an error body, and `error` of a failed patch entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct TranslatableMessage {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub variables: Option<serde_json::Map<String, serde_json::Value>>,
}

impl TranslatableMessage {
    fn variable(&self, name: &str) -> Option<String> {
        let value = self.variables.as_ref()?.get(name)?;
        Some(match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// The untranslated message if there is one, else the key itself.
    pub fn text(&self) -> String {
        self.variable("MESSAGE").unwrap_or_else(|| self.key.clone())
    }
}

/// The JSON error body of §3.1 (every member optional: be tolerant).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ErrorBody {
    pub message: Option<String>,
    pub translatable_message: Option<TranslatableMessage>,
    #[serde(rename = "type")]
    pub error_type: Option<String>,
    pub patches: Option<Vec<serde_json::Value>>,
}

impl ErrorBody {
    /// Parses a body as the JSON error shape; `None` when it is not one
    /// (empty, HTML, text/plain, or JSON without `type`/`message`).
    pub fn parse(body: &[u8]) -> Option<ErrorBody> {
        let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
        (parsed.error_type.is_some() || parsed.message.is_some()).then_some(parsed)
    }

    fn message(&self) -> String {
        let text = self
            .message
            .clone()
            .or_else(|| self.translatable_message.as_ref().map(|t| t.text()))
            .unwrap_or_default();
        truncate(&text)
    }
}

fn truncate(text: &str) -> String {
    if text.chars().count() <= MAX_MESSAGE_CHARS {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
        s.push('…');
        s
    }
}

/// Whether a media type is `text/plain` (ignoring parameters and case).
fn is_text_plain(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mt| mt.trim().eq_ignore_ascii_case("text/plain"))
}

/// Maps a non-success response to a typed error.
pub(crate) fn error_from_response(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> GuacamoleError {
    let parsed = ErrorBody::parse(body);
    let Some(err) = parsed else {
        return match status {
            400 if is_text_plain(content_type) || !body.is_empty() => {
                GuacamoleError::MalformedRequest
            }
            _ => GuacamoleError::UnexpectedResponse {
                status,
                detail: describe_unparsed(content_type, body),
            },
        };
    };
    let message = err.message();
    let error_type = err.error_type.as_deref().unwrap_or("");
    if status == 413 {
        if let Some(t) = &err.translatable_message
            && let Some(parameter) = too_long_parameter(t)
        {
            return GuacamoleError::ParameterValueTooLong { parameter };
        }
        return GuacamoleError::PayloadTooLarge { message };
    }
    if let Some(patches) = &err.patches {
        let failed = patches
            .iter()
            .filter(|p| p.get("error").is_some_and(|e| !e.is_null()))
            .count();
        return GuacamoleError::BatchRejected {
            failed,
            total: patches.len(),
        };
    }
    match (status, error_type) {
        (429, _) => GuacamoleError::TooManyAttempts { message },
        (_, "INVALID_CREDENTIALS") => GuacamoleError::InvalidCredentials { message },
        (_, "INSUFFICIENT_CREDENTIALS") => GuacamoleError::InsufficientCredentials { message },
        _ => classify_message(status, &message),
    }
}

/// The 1.6 translatable key for an over-long parameter value names the
/// parameter in its variables.
fn too_long_parameter(t: &TranslatableMessage) -> Option<String> {
    (t.key == "CONNECTION_PARAMETERS.DATABASE_PARAMETER_VALUE_TOO_LONG")
        .then(|| t.variable("PARAMETER_NAME"))
        .flatten()
}

/// Maps a failed 1.6 patch entry's `error` (a translatable message, no status)
/// to a typed error.
pub(crate) fn error_from_patch_entry(error: &TranslatableMessage) -> GuacamoleError {
    if let Some(parameter) = too_long_parameter(error) {
        return GuacamoleError::ParameterValueTooLong { parameter };
    }
    classify_message(0, &truncate(&error.text()))
}

/// Classifies by the exact messages of §3.3; `status` 0 means "unknown"
/// (patch entries carry no status).
fn classify_message(status: u16, message: &str) -> GuacamoleError {
    if message == "Permission Denied." {
        return GuacamoleError::InvalidToken;
    }
    if message == "Permission denied."
        || message == "Permission to read connection parameters denied."
    {
        return GuacamoleError::PermissionDenied {
            message: message.to_owned(),
        };
    }
    if let Some(name) = quoted_between(message, "The connection group \"", "\" already exists.") {
        return GuacamoleError::DuplicateName {
            kind: ObjectKind::ConnectionGroup,
            name,
        };
    }
    if let Some(name) = quoted_between(message, "The connection \"", "\" already exists.") {
        return GuacamoleError::DuplicateName {
            kind: ObjectKind::Connection,
            name,
        };
    }
    if let Some(data_source) = quoted_between(
        message,
        "Session not associated with authentication provider \"",
        "\".",
    ) {
        return GuacamoleError::UnknownDataSource { data_source };
    }
    if message == "A connection group may not contain itself." {
        return GuacamoleError::GroupContainsItself;
    }
    let message = message.to_owned();
    match status {
        403 => GuacamoleError::PermissionDenied { message },
        404 => GuacamoleError::NotFound { message },
        501 => GuacamoleError::Unsupported { message },
        500..=599 => GuacamoleError::ServerError { status, message },
        400..=499 => GuacamoleError::BadRequest { message },
        // Patch entries: no status; recognise the remaining documented texts.
        _ if message.starts_with("Not found: ") => GuacamoleError::NotFound { message },
        _ => GuacamoleError::BadRequest { message },
    }
}

fn quoted_between(message: &str, prefix: &str, suffix: &str) -> Option<String> {
    message
        .strip_prefix(prefix)?
        .strip_suffix(suffix)
        .map(str::to_owned)
}

/// A short, value-free description of a body that is not the JSON error shape.
fn describe_unparsed(content_type: Option<&str>, body: &[u8]) -> String {
    if body.is_empty() {
        "empty body".to_owned()
    } else {
        format!(
            "{} bytes of {}",
            body.len(),
            content_type.unwrap_or("unknown content type")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(message: &str, error_type: &str) -> Vec<u8> {
        serde_json::json!({
            "message": message,
            "translatableMessage": {"key": "APP.TEXT_UNTRANSLATED", "variables": {"MESSAGE": message}},
            "statusCode": null, "expected": null, "patches": null, "type": error_type
        })
        .to_string()
        .into_bytes()
    }

    fn map(status: u16, message: &str, error_type: &str) -> GuacamoleError {
        error_from_response(status, Some("application/json"), &body(message, error_type))
    }

    #[test]
    fn expired_token_and_real_denial_are_distinct() {
        let expired = map(403, "Permission Denied.", "PERMISSION_DENIED");
        assert!(matches!(expired, GuacamoleError::InvalidToken));
        assert_eq!(expired.label(), "invalid_token");
        let denied = map(403, "Permission denied.", "PERMISSION_DENIED");
        assert!(matches!(denied, GuacamoleError::PermissionDenied { .. }));
        assert_eq!(denied.label(), "permission_denied");
        let params = map(
            403,
            "Permission to read connection parameters denied.",
            "PERMISSION_DENIED",
        );
        assert!(matches!(params, GuacamoleError::PermissionDenied { .. }));
    }

    #[test]
    fn login_failures() {
        let invalid = map(403, "Invalid login", "INVALID_CREDENTIALS");
        assert!(
            matches!(invalid, GuacamoleError::InvalidCredentials { ref message } if message == "Invalid login")
        );
        // "Permission Denied." with INVALID_CREDENTIALS is a login failure, not a token problem.
        let generic = map(403, "Permission Denied.", "INVALID_CREDENTIALS");
        assert_eq!(generic.label(), "invalid_credentials");
        let more = map(403, "TOTP required", "INSUFFICIENT_CREDENTIALS");
        assert_eq!(more.label(), "insufficient_credentials");
        let banned = map(
            429,
            "Too many failed authentication attempts.",
            "BAD_REQUEST",
        );
        assert_eq!(banned.label(), "too_many_attempts");
    }

    #[test]
    fn duplicates_name_the_object_and_its_kind() {
        match map(
            400,
            "The connection \"web-01\" already exists.",
            "BAD_REQUEST",
        ) {
            GuacamoleError::DuplicateName { kind, name } => {
                assert_eq!(kind, ObjectKind::Connection);
                assert_eq!(name, "web-01");
            }
            other => panic!("{other:?}"),
        }
        match map(
            400,
            "The connection group \"pve\" already exists.",
            "BAD_REQUEST",
        ) {
            GuacamoleError::DuplicateName { kind, name } => {
                assert_eq!(kind, ObjectKind::ConnectionGroup);
                assert_eq!(name, "pve");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn not_found_and_data_source() {
        let nf = map(404, "Not found: \"42\"", "NOT_FOUND");
        assert!(
            matches!(nf, GuacamoleError::NotFound { ref message } if message == "Not found: \"42\"")
        );
        let token = map(404, "No such token.", "NOT_FOUND");
        assert_eq!(token.label(), "not_found");
        let ds = map(
            404,
            "Session not associated with authentication provider \"mysql\".",
            "NOT_FOUND",
        );
        assert!(
            matches!(ds, GuacamoleError::UnknownDataSource { ref data_source } if data_source == "mysql")
        );
    }

    #[test]
    fn bad_requests_and_server_errors() {
        for m in [
            "Connection names must not be blank.",
            "Connection group names must not be blank.",
            "Data must be submitted when creating objects.",
            "Patch paths must start with \"/\".",
            "Unsupported patch path: \"/x\"",
        ] {
            let e = map(400, m, "BAD_REQUEST");
            assert!(
                matches!(e, GuacamoleError::BadRequest { ref message } if message == m),
                "{m}"
            );
        }
        let internal = map(500, "Unexpected internal error", "INTERNAL_ERROR");
        assert!(matches!(
            internal,
            GuacamoleError::ServerError { status: 500, .. }
        ));
        let cycle = map(
            501,
            "A connection group may not contain itself.",
            "INTERNAL_ERROR",
        );
        assert!(matches!(cycle, GuacamoleError::GroupContainsItself));
        let remove_only = map(
            501,
            "Only the \"remove\" operation is supported.",
            "INTERNAL_ERROR",
        );
        assert_eq!(remove_only.label(), "unsupported");
        let op = map(
            501,
            "Unsupported patch operation \"move\". Only add, replace, and remove are supported.",
            "INTERNAL_ERROR",
        );
        assert_eq!(op.label(), "unsupported");
    }

    #[test]
    fn payload_limits() {
        let too_large = map(413, "Request body/entity too large.", "BAD_REQUEST");
        assert_eq!(too_large.label(), "payload_too_large");
        let long = serde_json::json!({
            "message": "The value provided for connection parameter \"password\" exceeds the maximum allowed length.",
            "translatableMessage": {"key": "CONNECTION_PARAMETERS.DATABASE_PARAMETER_VALUE_TOO_LONG",
                                    "variables": {"MAX_SIZE": 4096, "PARAMETER_NAME": "password"}},
            "statusCode": null, "expected": null, "patches": null, "type": "BAD_REQUEST"
        });
        let e = error_from_response(413, Some("application/json"), long.to_string().as_bytes());
        assert!(
            matches!(e, GuacamoleError::ParameterValueTooLong { ref parameter } if parameter == "password")
        );
    }

    #[test]
    fn failed_batch_body_counts_failed_entries() {
        let body = serde_json::json!({
            "message": "The provided patches failed to apply.",
            "translatableMessage": {"key": "APP.TEXT_UNTRANSLATED", "variables": {"MESSAGE": "The provided patches failed to apply."}},
            "statusCode": null, "expected": null, "type": "BAD_REQUEST",
            "patches": [
                {"op": "add", "identifier": null, "path": "/"},
                {"op": "add", "identifier": null, "path": "/",
                 "error": {"key": "APP.TEXT_UNTRANSLATED", "variables": {"MESSAGE": "The connection \"a\" already exists."}}}
            ]
        });
        let e = error_from_response(400, Some("application/json"), body.to_string().as_bytes());
        assert!(
            matches!(
                e,
                GuacamoleError::BatchRejected {
                    failed: 1,
                    total: 2
                }
            ),
            "{e:?}"
        );
        // `patches: null` (1.6 ordinary errors) is not a batch failure.
        let e = map(400, "Connection names must not be blank.", "BAD_REQUEST");
        assert_eq!(e.label(), "bad_request");
    }

    #[test]
    fn text_plain_400_drops_the_parser_message() {
        let e = error_from_response(
            400,
            Some("text/plain;charset=UTF-8"),
            b"Unrecognized token 'hunter2': was expecting ...",
        );
        assert!(matches!(e, GuacamoleError::MalformedRequest));
        assert!(!format!("{e} {e:?}").contains("hunter2"));
    }

    #[test]
    fn framework_responses_without_json() {
        let e = error_from_response(404, Some("text/html"), b"<html>nope</html>");
        assert!(
            matches!(e, GuacamoleError::UnexpectedResponse { status: 404, ref detail } if detail == "17 bytes of text/html")
        );
        let e = error_from_response(405, None, b"");
        assert!(
            matches!(e, GuacamoleError::UnexpectedResponse { status: 405, ref detail } if detail == "empty body")
        );
        let e = error_from_response(415, None, b"");
        assert_eq!(e.label(), "unexpected_response");
    }

    #[test]
    fn patch_entry_errors() {
        let t = |m: &str| TranslatableMessage {
            key: "APP.TEXT_UNTRANSLATED".into(),
            variables: Some(
                serde_json::json!({"MESSAGE": m})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        };
        assert_eq!(
            error_from_patch_entry(&t("The connection \"web-01\" already exists.")).label(),
            "duplicate_name"
        );
        assert_eq!(
            error_from_patch_entry(&t("Not found: \"9\"")).label(),
            "not_found"
        );
        assert_eq!(
            error_from_patch_entry(&t("Permission denied.")).label(),
            "permission_denied"
        );
        assert_eq!(
            error_from_patch_entry(&t("Connection names must not be blank.")).label(),
            "bad_request"
        );
        let long = TranslatableMessage {
            key: "CONNECTION_PARAMETERS.DATABASE_PARAMETER_VALUE_TOO_LONG".into(),
            variables: Some(
                serde_json::json!({"MAX_SIZE": 4096, "PARAMETER_NAME": "private-key"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        };
        assert!(matches!(
            error_from_patch_entry(&long),
            GuacamoleError::ParameterValueTooLong { ref parameter } if parameter == "private-key"
        ));
    }

    #[test]
    fn long_messages_are_truncated() {
        let long = "x".repeat(5000);
        let e = map(400, &long, "BAD_REQUEST");
        match e {
            GuacamoleError::BadRequest { message } => {
                assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1)
            }
            other => panic!("{other:?}"),
        }
    }
}
