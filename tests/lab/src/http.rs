//! A small HTTP/1.1 server over TLS, written by hand so the emulators control
//! framing exactly as the real servers do (empty bodies without
//! `Content-Length`, `Connection: close` after errors, requests dropped without
//! an answer when their headers are too large).
//!
//! This file defines the request/response types and the [`Handler`] trait the
//! two emulators implement; the connection loop lives in `server.rs`.

use std::net::SocketAddr;
use std::time::Duration;

/// One parsed request, as an emulator sees it. `Debug` shows header names
/// and the body length only: values may be tokens or passwords.
#[derive(Clone)]
pub struct Request {
    pub method: String,
    /// Percent-decoded path, without the query string.
    pub path: String,
    /// The raw path as sent (still percent-encoded), for exact error texts.
    pub raw_path: String,
    /// The raw query string (without `?`), empty when absent.
    pub query: String,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// True when the body arrived with `Transfer-Encoding: chunked`.
    pub chunked: bool,
    pub peer: SocketAddr,
    /// HTTP minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The body exceeded `ServerLimits::max_body_bytes`; it was read and
    /// discarded and `body` is empty. The emulator answers as its server does.
    pub oversized: bool,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &names)
            .field("body_len", &self.body.len())
            .field("chunked", &self.chunked)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Request {
    /// First header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Decoded `key=value` pairs of the query string, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        parse_form(self.query.as_bytes())
    }
}

/// Decode `application/x-www-form-urlencoded` bytes (`+` is a space).
pub fn parse_form(raw: &[u8]) -> Vec<(String, String)> {
    raw.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |b| *b == b'=');
            let k = it.next().unwrap_or_default();
            let v = it.next().unwrap_or_default();
            (form_decode(k), form_decode(v))
        })
        .collect()
}

fn form_decode(raw: &[u8]) -> String {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

/// What a handler answers.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Reason phrase; the server's defaults when `None`.
    pub reason: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// Close the connection after this response.
    pub close: bool,
    /// Endpoint template for the request log's counters, e.g.
    /// `GET /nodes/{node}/qemu/{vmid}/config`.
    pub route: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Body {
    /// Sent with `Content-Length`.
    Bytes(Vec<u8>),
    /// No body, no `Content-Length`, no `Content-Type`: the body "ends" when the
    /// server closes the connection (Proxmox 401/595 style). Implies close.
    CloseDelimitedEmpty,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Response {
            status,
            reason: None,
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
            close: false,
            route: None,
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        let mut r = Response::new(status);
        r.body = Body::Bytes(serde_json::to_vec(value).expect("JSON values serialise"));
        r.headers
            .push(("Content-Type".into(), "application/json".into()));
        r
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn close(mut self) -> Self {
        self.close = true;
        self
    }

    pub fn route(mut self, route: impl Into<String>) -> Self {
        self.route = Some(route.into());
        self
    }
}

/// Limits the connection loop enforces before a handler sees the request.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Header lines (counting the blank terminator) at which the request is
    /// dropped without an answer; `None` for no limit.
    pub max_header_lines: Option<usize>,
    /// Total header bytes (without CRLF) at which the request is dropped.
    pub max_header_bytes: Option<usize>,
    /// Requests served on one connection before it is closed.
    pub max_requests_per_connection: usize,
    /// Idle time after which a kept-alive connection is closed.
    pub idle_timeout: Duration,
    /// Largest accepted request body; bigger bodies are read and discarded and
    /// the handler sees `Request::oversized`.
    pub max_body_bytes: usize,
}

/// An emulator. Called once per complete request; may be slow (it is async so
/// latency faults and slow operations do not block other connections).
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        req: Request,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send + '_>>;
}
