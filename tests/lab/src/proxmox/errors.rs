//! API errors and how a PVE node frames them (§1.3), plus the framing of the
//! non-JSON answers (plain-text 501s, empty-bodied 401/595).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::http::{Body, Response};

/// An error raised by an API method, before it is framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400 `Parameter verification failed.` with one text per parameter.
    Param(BTreeMap<String, String>),
    /// 403 `Permission check failed (<what>)`; `what` = `<path>, <priv>`.
    Forbidden(String),
    /// 500 with the message (a trailing `\n` is added when missing).
    Failed(String),
    /// 501 `Method '<M> <path>' not implemented` (no trailing newline).
    NotImplemented { method: String, path: String },
}

impl ApiError {
    pub fn param(name: &str, text: impl Into<String>) -> Self {
        let mut m = BTreeMap::new();
        m.insert(name.to_string(), text.into());
        ApiError::Param(m)
    }

    pub fn forbidden(path: &str, privs: &[&str]) -> Self {
        ApiError::Forbidden(format!("{path}, {}", privs.join("|")))
    }

    pub fn failed(msg: impl Into<String>) -> Self {
        ApiError::Failed(msg.into())
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::Param(_) => 400,
            ApiError::Forbidden(_) => 403,
            ApiError::Failed(_) => 500,
            ApiError::NotImplemented { .. } => 501,
        }
    }

    /// The full message as the server has it (trailing newline included
    /// where the real one has it).
    pub fn message(&self) -> String {
        match self {
            ApiError::Param(_) => "Parameter verification failed.\n".into(),
            ApiError::Forbidden(what) => format!("Permission check failed ({what})\n"),
            ApiError::Failed(m) if m.ends_with('\n') => m.clone(),
            ApiError::Failed(m) => format!("{m}\n"),
            ApiError::NotImplemented { method, path } => {
                format!("Method '{method} {path}' not implemented")
            }
        }
    }

    /// The JSON body: `{"data":null,"message":…}` or, for legacy servers,
    /// `{"data":null}`; plus `errors` for parameter errors.
    pub fn body(&self, legacy: bool) -> Value {
        let mut body = json!({ "data": null });
        if !legacy {
            body["message"] = Value::String(self.message());
        }
        if let ApiError::Param(errors) = self {
            body["errors"] = json!(errors);
        }
        body
    }
}

/// The reason phrase: the first line of the message.
pub fn reason_of(message: &str) -> String {
    message.lines().next().unwrap_or_default().to_string()
}

/// `{"data": …}` (plus extra top-level keys) with the API headers.
pub fn json_response(status: u16, body: &Value) -> Response {
    let mut r = Response::new(status);
    r.body = Body::Bytes(serde_json::to_vec(body).expect("JSON values serialise"));
    r.headers.push((
        "Content-Type".into(),
        "application/json;charset=UTF-8".into(),
    ));
    add_common_headers(&mut r);
    r
}

/// A framed API error (JSON body, reason = first line, connection closed).
pub fn error_response(err: &ApiError, legacy: bool) -> Response {
    let mut r = json_response(err.status(), &err.body(legacy));
    r.reason = Some(reason_of(&err.message()));
    r.close = true;
    r
}

/// A plain-text error from the HTTP layer (`for data too large`, …).
pub fn plain_error(status: u16, text: &str) -> Response {
    let mut r = Response::new(status);
    r.reason = Some(text.to_string());
    r.body = Body::Bytes(text.as_bytes().to_vec());
    r.headers
        .push(("Content-Type".into(), "text/plain;charset=UTF-8".into()));
    add_common_headers(&mut r);
    r.close = true;
    r
}

/// An answer without body, `Content-Type` or `Content-Length` (401, 595,
/// 501 method not available); the body ends when the connection closes.
pub fn empty_response(status: u16, reason: &str) -> Response {
    let mut r = Response::new(status);
    r.reason = Some(reason.to_string());
    r.body = Body::CloseDelimitedEmpty;
    r.headers
        .push(("Server".into(), "pve-api-daemon/3.0".into()));
    r.close = true;
    r
}

/// `Expires` is the (real) time of the answer, like the server's `Date`.
fn add_common_headers(r: &mut Response) {
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    r.headers
        .push(("Server".into(), "pve-api-daemon/3.0".into()));
    r.headers.push(("Cache-Control".into(), "max-age=0".into()));
    r.headers.push(("Pragma".into(), "no-cache".into()));
    r.headers.push(("Expires".into(), http_date(now_unix)));
}

/// RFC 7231 IMF-fixdate, e.g. `Wed, 25 Nov 2026 12:00:00 GMT`.
pub fn http_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date_is_imf_fixdate() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_735_689_600), "Wed, 01 Jan 2025 00:00:00 GMT");
    }

    #[test]
    fn message_and_reason() {
        let e = ApiError::failed("VM 100 is not running");
        assert_eq!(e.message(), "VM 100 is not running\n");
        assert_eq!(reason_of(&e.message()), "VM 100 is not running");
        assert_eq!(e.body(true), json!({"data": null}));
    }
}
