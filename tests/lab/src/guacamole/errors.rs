//! Guacamole's error responses: the JSON error body of spec §3, the
//! framework's text/plain 400 for unparsable JSON, and bare 404/405/415.

use serde_json::{Value, json};

use super::seed::GuacVersion;
use crate::http::Response;

/// The `type` member of an error body (§3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    BadRequest,
    InvalidCredentials,
    PermissionDenied,
    NotFound,
    InternalError,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadRequest => "BAD_REQUEST",
            ErrorType::InvalidCredentials => "INVALID_CREDENTIALS",
            ErrorType::PermissionDenied => "PERMISSION_DENIED",
            ErrorType::NotFound => "NOT_FOUND",
            ErrorType::InternalError => "INTERNAL_ERROR",
        }
    }
}

/// A Guacamole API error, rendered as the §3.1 JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct GuacError {
    pub status: u16,
    pub kind: ErrorType,
    pub message: String,
    /// Rarely-set members, boxed so `Result<_, GuacError>` stays small.
    pub extra: Option<Box<ErrorExtra>>,
}

/// The optional members of an error body.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ErrorExtra {
    /// A real translation key with its variables; `None` means the
    /// `APP.TEXT_UNTRANSLATED` wrapper around `message`.
    pub translation: Option<(String, Value)>,
    pub expected: Option<Value>,
    pub patches: Option<Value>,
}

impl GuacError {
    pub fn new(status: u16, kind: ErrorType, message: impl Into<String>) -> Self {
        GuacError {
            status,
            kind,
            message: message.into(),
            extra: None,
        }
    }

    pub fn extra_mut(&mut self) -> &mut ErrorExtra {
        self.extra.get_or_insert_with(Box::default)
    }

    pub fn with_patches(mut self, patches: Value) -> Self {
        self.extra_mut().patches = Some(patches);
        self
    }

    /// Token missing, unknown or expired (capital D).
    pub fn session_denied() -> Self {
        Self::new(403, ErrorType::PermissionDenied, "Permission Denied.")
    }

    /// Authenticated but lacking a right (lower-case d).
    pub fn denied() -> Self {
        Self::new(403, ErrorType::PermissionDenied, "Permission denied.")
    }

    pub fn not_found(id: &str) -> Self {
        Self::new(404, ErrorType::NotFound, format!("Not found: \"{id}\""))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, ErrorType::BadRequest, message)
    }

    /// A storage constraint or null-handling failure inside the server.
    pub fn internal() -> Self {
        Self::new(500, ErrorType::InternalError, "Unexpected internal error")
    }

    /// True for [`GuacError::internal`]: the framework's answer to an
    /// exception that is not a `GuacamoleException` (storage, null handling).
    pub fn is_unexpected(&self) -> bool {
        *self == Self::internal()
    }

    /// "Unsupported" operations: 501 with type INTERNAL_ERROR.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(501, ErrorType::InternalError, message)
    }

    pub fn invalid_login() -> Self {
        let mut e = Self::new(403, ErrorType::InvalidCredentials, "Invalid login");
        e.extra_mut().expected = Some(credential_fields());
        e
    }

    /// No provider produced a specific failure (e.g. no credentials at all).
    pub fn no_auth() -> Self {
        let mut e = Self::new(403, ErrorType::InvalidCredentials, "Permission Denied.");
        e.extra_mut().expected = Some(credential_fields());
        e
    }

    /// 1.6+ parameter value longer than 4096 characters.
    pub fn parameter_too_long(name: &str) -> Self {
        let mut e = Self::new(
            413,
            ErrorType::BadRequest,
            format!(
                "The value provided for connection parameter \"{name}\" exceeds the maximum allowed length."
            ),
        );
        e.extra_mut().translation = Some((
            "CONNECTION_PARAMETERS.DATABASE_PARAMETER_VALUE_TOO_LONG".into(),
            json!({"MAX_SIZE": 4096, "PARAMETER_NAME": name}),
        ));
        e
    }

    pub fn banned() -> Self {
        let mut e = Self::new(
            429,
            ErrorType::BadRequest,
            "Too many failed authentication attempts.",
        );
        e.extra_mut().translation = Some(("LOGIN.ERROR_TOO_MANY_ATTEMPTS".into(), Value::Null));
        e
    }

    pub fn too_large() -> Self {
        Self::new(413, ErrorType::BadRequest, "Request body/entity too large.")
    }

    /// The `translatableMessage` object (also used as a patch outcome's `error`).
    pub fn translatable(&self) -> Value {
        match self.extra.as_ref().and_then(|x| x.translation.as_ref()) {
            Some((key, vars)) => json!({"key": key, "variables": vars}),
            None => json!({
                "key": "APP.TEXT_UNTRANSLATED",
                "variables": {"MESSAGE": self.message},
            }),
        }
    }

    /// The §3.1 body; `patches` only exists from 1.6 on.
    pub fn body(&self, version: GuacVersion) -> Value {
        let mut body = json!({
            "message": self.message,
            "translatableMessage": self.translatable(),
            "statusCode": null,
            "expected": self.extra.as_ref().and_then(|x| x.expected.clone()).unwrap_or(Value::Null),
            "type": self.kind.as_str(),
        });
        if version.is_1_6() {
            body["patches"] = self
                .extra
                .as_ref()
                .and_then(|x| x.patches.clone())
                .unwrap_or(Value::Null);
        }
        body
    }
}

fn credential_fields() -> Value {
    json!([
        {"name": "username", "type": "USERNAME"},
        {"name": "password", "type": "PASSWORD"},
    ])
}

/// Every way a request can fail.
#[derive(Debug, Clone, PartialEq)]
pub enum Fail {
    /// JSON error body.
    Api(GuacError),
    /// The JSON parser rejected the body: 400 with a text/plain message.
    BadJson(String),
    /// The framework found no resource: 404, empty body.
    NoResource,
    /// The resource exists but not for this method: 405, empty body.
    MethodNotAllowed,
    /// A JSON endpoint received another Content-Type: 415, empty body.
    UnsupportedMediaType,
}

impl From<GuacError> for Fail {
    fn from(e: GuacError) -> Self {
        Fail::Api(e)
    }
}

impl Fail {
    pub fn into_response(self, version: GuacVersion) -> Response {
        match self {
            Fail::Api(e) => Response::json(e.status, &e.body(version)),
            Fail::BadJson(message) => {
                let mut r = Response::new(400);
                r.body = crate::http::Body::Bytes(message.into_bytes());
                r.header("Content-Type", "text/plain")
            }
            Fail::NoResource => Response::new(404),
            Fail::MethodNotAllowed => Response::new(405),
            Fail::UnsupportedMediaType => Response::new(415),
        }
    }
}
