//! A plain HTTP-level client for the Guacamole emulator's contract tests:
//! it builds raw requests (method, path, headers, body bytes) — no daemon
//! code involved. Two transports:
//! - direct: the emulator's handler is called in-process;
//! - HTTPS: a real [`Lab`] listener, via `reqwest` trusting only the lab
//!   certificate. Chosen when the test crate is `guacamole_contract_https`
//!   (which `include!`s the contract suite), so every rule is checked both
//!   ways with the same assertions.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pve_guac_lab::clock::Clock;
use pve_guac_lab::guacamole::{GuacVersion, GuacamoleSeed, GuacamoleServer};
use pve_guac_lab::http::{Body, Request, Response};
use pve_guac_lab::{Lab, LabSeed};
use serde_json::Value;

/// True inside the `guacamole_contract_https` test crate.
fn https_wanted() -> bool {
    module_path!().starts_with("guacamole_contract_https")
}

/// A running lab and the client that talks to it.
struct Https {
    // Field order matters: the lab (its listeners) goes before the runtime.
    lab: Lab,
    client: reqwest::Client,
    origin: String,
    rt: tokio::runtime::Runtime,
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub route: Option<String>,
}

impl Resp {
    fn from(r: Response) -> Resp {
        Resp {
            status: r.status,
            headers: r.headers,
            body: match r.body {
                Body::Bytes(b) => b,
                Body::CloseDelimitedEmpty => Vec::new(),
            },
            route: r.route,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str())
    }

    /// Assert a §3 JSON error: status, type and message.
    #[track_caller]
    pub fn assert_error(&self, status: u16, kind: &str, message: &str) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(self.content_type(), Some("application/json"));
        let v = self.json();
        assert_eq!(v["type"], kind, "body: {v}");
        assert_eq!(v["message"], message, "body: {v}");
        assert!(v.get("statusCode").is_some_and(Value::is_null), "{v}");
        v
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "body: {}", self.text());
        self
    }
}

/// The emulator plus a frozen clock the test steps by hand.
pub struct Guac {
    pub server: Arc<GuacamoleServer>,
    pub clock: Clock,
    pub base: String,
    pub peer: SocketAddr,
    https: Option<Https>,
}

impl Guac {
    pub fn new(seed: GuacamoleSeed) -> Guac {
        if https_wanted() {
            return Guac::over_https(seed);
        }
        let clock = Clock::new(0.0);
        let server = GuacamoleServer::new(seed, clock.clone());
        let base = server.base_path();
        Guac {
            server,
            clock,
            base,
            peer: "127.0.0.1:40000".parse().unwrap(),
            https: None,
        }
    }

    /// The same emulator behind the lab's HTTPS listener (frozen clock).
    pub fn over_https(seed: GuacamoleSeed) -> Guac {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let lab = rt
            .block_on(Lab::start(LabSeed {
                clusters: Vec::new(),
                guacamole: seed,
                clock_scale: 0.0,
                ..LabSeed::default()
            }))
            .expect("lab starts");
        let cert = reqwest::Certificate::from_pem(lab.cert_pem().as_bytes()).unwrap();
        let client = reqwest::Client::builder()
            .tls_certs_only([cert])
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .unwrap();
        Guac {
            server: lab.guacamole().clone(),
            clock: lab.clock().clone(),
            base: lab.guacamole().base_path(),
            peer: "127.0.0.1:0".parse().unwrap(),
            https: Some(Https {
                origin: lab.guacamole_origin(),
                lab,
                client,
                rt,
            }),
        }
    }

    pub fn is_https(&self) -> bool {
        self.https.is_some()
    }

    fn send_https(
        h: &Https,
        method: &str,
        full_path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = h.client.request(method, format!("{}{full_path}", h.origin));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if !body.is_empty() {
            rb = rb.body(body.to_vec());
        }
        h.rt.block_on(async move {
            let r = rb.send().await.expect("request reaches the lab");
            let status = r.status().as_u16();
            let headers = r
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            let body = r.bytes().await.expect("body").to_vec();
            Resp {
                status,
                headers,
                body,
                route: None,
            }
        })
    }

    pub fn default_v16() -> Guac {
        Guac::new(GuacamoleSeed::default())
    }

    pub fn with_version(v: GuacVersion) -> Guac {
        Guac::new(GuacamoleSeed::default().version(v))
    }

    /// Send a request to an absolute path (query allowed after `?`).
    pub fn raw(
        &self,
        method: &str,
        full_path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        if let Some(h) = &self.https {
            return Guac::send_https(h, method, full_path, headers, body);
        }
        let (path, query) = full_path.split_once('?').unwrap_or((full_path, ""));
        let req = Request {
            method: method.to_string(),
            path: path.to_string(),
            raw_path: path.to_string(),
            query: query.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect(),
            body: body.to_vec(),
            chunked: false,
            peer: self.peer,
            minor_version: 1,
            oversized: false,
        };
        Resp::from(self.server.respond(&req))
    }

    /// Send to a path relative to the base (`/tokens`, `/session/data/…`).
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        self.raw(method, &format!("{}{}", self.base, path), headers, body)
    }

    pub fn login_form(&self, form: &str) -> Resp {
        self.send(
            "POST",
            "/tokens",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            form.as_bytes(),
        )
    }

    #[track_caller]
    pub fn login(&self, user: &str, pass: &str) -> String {
        let r = self.login_form(&format!("username={user}&password={pass}"));
        assert_eq!(r.status, 200, "login failed: {}", r.text());
        r.json()["authToken"].as_str().unwrap().to_string()
    }

    pub fn admin(&self) -> String {
        self.login("guacadmin", "guacadmin")
    }

    /// `/session/data/postgresql` + `rest`.
    pub fn data(&self, rest: &str) -> String {
        format!("/session/data/postgresql{rest}")
    }

    pub fn get(&self, token: &str, path: &str) -> Resp {
        self.send("GET", &self.data(path), &[("Guacamole-Token", token)], b"")
    }

    pub fn json_call(&self, method: &str, token: &str, path: &str, body: &Value) -> Resp {
        self.send(
            method,
            &self.data(path),
            &[
                ("Guacamole-Token", token),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    }

    pub fn post(&self, token: &str, path: &str, body: &Value) -> Resp {
        self.json_call("POST", token, path, body)
    }

    pub fn put(&self, token: &str, path: &str, body: &Value) -> Resp {
        self.json_call("PUT", token, path, body)
    }

    pub fn patch(&self, token: &str, path: &str, body: &Value) -> Resp {
        self.json_call("PATCH", token, path, body)
    }

    pub fn delete(&self, token: &str, path: &str) -> Resp {
        self.send(
            "DELETE",
            &self.data(path),
            &[("Guacamole-Token", token)],
            b"",
        )
    }

    /// Create a connection as `token`; returns its id.
    #[track_caller]
    pub fn create_connection(&self, token: &str, name: &str, parent: &str) -> String {
        let r = self.post(
            token,
            "/connections",
            &serde_json::json!({
                "name": name, "parentIdentifier": parent, "protocol": "rdp",
                "parameters": {"hostname": "10.0.0.5", "port": "3389"},
                "attributes": {},
            }),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["identifier"].as_str().unwrap().to_string()
    }

    #[track_caller]
    pub fn create_group(&self, token: &str, name: &str, parent: &str) -> String {
        let r = self.post(
            token,
            "/connectionGroups",
            &serde_json::json!({
                "name": name, "parentIdentifier": parent, "type": "ORGANIZATIONAL",
                "attributes": {},
            }),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["identifier"].as_str().unwrap().to_string()
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }
}

pub fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}
