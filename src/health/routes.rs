//! Which path serves what. One table, so more pages (a status page, JSON)
//! slot in as new [`Page`]s.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    ALLOW, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderName, HeaderValue,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use hyper::{Method, Response, StatusCode};

use super::metrics::CONTENT_TYPE as METRICS_TYPE;
use super::{Health, page};

const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    Healthz,
    Readyz,
    Metrics,
    Status,
    StatusJson,
}

impl Page {
    fn of(path: &str) -> Option<Page> {
        Some(match path {
            "/healthz" => Page::Healthz,
            "/readyz" => Page::Readyz,
            "/metrics" => Page::Metrics,
            "/" => Page::Status,
            "/status.json" => Page::StatusJson,
            _ => return None,
        })
    }
}

/// The answer to one request; only `GET` and `HEAD` of a known path succeed.
/// (hyper sends no body in answer to `HEAD`.)
pub(crate) fn respond(health: &Health, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let Some(page) = Page::of(path) else {
        return reply(StatusCode::NOT_FOUND, TEXT, "not found\n".into());
    };
    if method != Method::GET && method != Method::HEAD {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "only GET and HEAD\n".into(),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match page {
        Page::Healthz => reply(StatusCode::OK, TEXT, "ok\n".into()),
        Page::Readyz => match health.ready() {
            Ok(()) => reply(StatusCode::OK, TEXT, "ready\n".into()),
            Err(reason) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                format!("not ready: {reason}\n"),
            ),
        },
        Page::Metrics => reply(StatusCode::OK, METRICS_TYPE, health.metrics_text()),
        Page::Status => {
            let mut r = reply(StatusCode::OK, HTML, page::render(&health.view()));
            let h = r.headers_mut();
            if let Ok(csp) = HeaderValue::from_str(&page::CSP) {
                h.insert(CONTENT_SECURITY_POLICY, csp);
            }
            h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            h.insert(
                HeaderName::from_static("cross-origin-resource-policy"),
                HeaderValue::from_static("same-origin"),
            );
            r
        }
        Page::StatusJson => {
            let mut body = serde_json::to_string_pretty(&health.view())
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
            body.push('\n');
            reply(StatusCode::OK, JSON, body)
        }
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}
