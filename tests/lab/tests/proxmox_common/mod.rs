//! Helpers for the Proxmox emulator's handler-level contract tests: build a
//! cluster on a frozen lab clock, send constructed requests straight to a
//! node's handler and look at the framed answer.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use pve_guac_lab::clock::Clock;
use pve_guac_lab::http::{Body, Request, Response};
use pve_guac_lab::proxmox::{ClusterSeed, EXAMPLE_TOKEN_ID, EXAMPLE_TOKEN_SECRET, ProxmoxCluster};
use serde_json::Value;

pub const ROOT_TOKEN: &str = "PVEAPIToken=root@pam!lab=c0ffee00-1234-4abc-9def-0123456789ab";

pub fn sync_token() -> String {
    format!("PVEAPIToken={EXAMPLE_TOKEN_ID}={EXAMPLE_TOKEN_SECRET}")
}

pub struct Pve {
    pub cluster: Arc<ProxmoxCluster>,
    pub clock: Clock,
    pub auth: String,
}

/// The framed answer of one request.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub reason: Option<String>,
    pub headers: Vec<(String, String)>,
    /// `None` for a close-delimited empty body.
    pub body: Option<Vec<u8>>,
    pub close: bool,
    pub route: Option<String>,
}

impl Answer {
    pub fn json(&self) -> Value {
        let body = self.body.as_deref().expect("a body");
        serde_json::from_slice(body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
    }

    pub fn data(&self) -> Value {
        self.json()["data"].clone()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.body.as_deref().unwrap_or_default()).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn reason(&self) -> &str {
        self.reason.as_deref().unwrap_or_default()
    }

    /// The `errors` map entry of a 400.
    pub fn param_error(&self, name: &str) -> String {
        self.json()["errors"][name]
            .as_str()
            .unwrap_or_else(|| panic!("no errors.{name} in {}", self.text()))
            .to_string()
    }

    #[track_caller]
    pub fn assert_error(&self, status: u16, message: &str) {
        assert_eq!(self.status, status, "{} {}", self.reason(), self.text());
        let first = message.lines().next().unwrap_or_default();
        assert_eq!(self.reason(), first);
        let msg = if message.ends_with('\n') || status == 501 {
            message.to_string()
        } else {
            format!("{message}\n")
        };
        assert_eq!(
            self.json()["message"],
            Value::String(msg),
            "{}",
            self.text()
        );
        assert!(self.close, "error answers close the connection");
    }
}

impl From<Response> for Answer {
    fn from(r: Response) -> Self {
        Answer {
            status: r.status,
            reason: r.reason,
            headers: r.headers,
            body: match r.body {
                Body::Bytes(b) => Some(b),
                Body::CloseDelimitedEmpty => None,
            },
            close: r.close,
            route: r.route,
        }
    }
}

/// A request as the server would hand it to the handler.
pub fn request(
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Request {
    let (raw_path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    Request {
        method: method.into(),
        path: percent_encoding::percent_decode_str(raw_path)
            .decode_utf8_lossy()
            .into_owned(),
        raw_path: raw_path.into(),
        query: query.into(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
            .collect(),
        body: body.to_vec(),
        chunked: false,
        peer: "127.0.0.1:40000".parse().unwrap(),
        minor_version: 1,
        oversized: false,
    }
}

impl Pve {
    /// The example cluster on a frozen clock, without the 401 delay.
    pub fn example() -> Pve {
        Pve::with_seed(ClusterSeed::example("lab").auth_delay(false))
    }

    pub fn with_seed(seed: ClusterSeed) -> Pve {
        Pve::with_clock(seed, Clock::new(0.0))
    }

    pub fn with_clock(seed: ClusterSeed, clock: Clock) -> Pve {
        Pve {
            cluster: ProxmoxCluster::new(seed, clock.clone()),
            clock,
            auth: sync_token(),
        }
    }

    pub fn with_root_token(mut self) -> Pve {
        self.auth = ROOT_TOKEN.into();
        self
    }

    pub async fn send(&self, node: &str, req: Request) -> Answer {
        self.cluster.handler(node).handle(req).await.into()
    }

    /// `method` on `/api2/json<path>` at pve1 with the current token.
    pub async fn call(&self, method: &str, path: &str) -> Answer {
        self.call_at("pve1", method, path).await
    }

    pub async fn call_at(&self, node: &str, method: &str, path: &str) -> Answer {
        let auth = self.auth.clone();
        let req = request(
            method,
            &format!("/api2/json{path}"),
            &[("Authorization", &auth)],
            b"",
        );
        self.send(node, req).await
    }

    /// A form-encoded write.
    pub async fn form(&self, method: &str, path: &str, form: &[(&str, &str)]) -> Answer {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let auth = self.auth.clone();
        let req = request(
            method,
            &format!("/api2/json{path}"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        );
        self.send("pve1", req).await
    }

    /// A JSON write.
    pub async fn json(&self, method: &str, path: &str, body: Value) -> Answer {
        let auth = self.auth.clone();
        let req = request(
            method,
            &format!("/api2/json{path}"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            &serde_json::to_vec(&body).unwrap(),
        );
        self.send("pve1", req).await
    }

    pub fn advance(&self, secs: f64) {
        self.clock.advance(Duration::from_secs_f64(secs));
    }

    pub async fn digest(&self, node: &str, kind: &str, vmid: u32) -> String {
        let a = self
            .call("GET", &format!("/nodes/{node}/{kind}/{vmid}/config"))
            .await;
        a.data()["digest"].as_str().expect("digest").to_string()
    }

    /// Task status of a UPID (path-encoded).
    pub async fn task(&self, upid: &str) -> Value {
        let node = upid.split(':').nth(1).unwrap();
        let a = self
            .call("GET", &format!("/nodes/{node}/tasks/{}/status", enc(upid)))
            .await;
        assert_eq!(a.status, 200, "{}", a.text());
        a.data()
    }
}

pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl Pve {
    /// Send a request while the frozen clock is stepped forward (0.25 s of
    /// virtual time every 2 ms), so answers that wait on the lab clock
    /// complete. Returns the answer and the virtual time it took.
    pub async fn call_advancing(&self, method: &str, path: &str) -> (Answer, Duration) {
        let start = self.clock.elapsed();
        let clock = self.clock.clone();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let ticker = tokio::spawn(async move {
            for _ in 0..20_000 {
                if flag.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                clock.advance(Duration::from_millis(250));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        let a = self.call(method, path).await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        ticker.await.unwrap();
        (a, self.clock.elapsed() - start)
    }
}

/// The example cluster plus accounts for permission tests:
/// `ops@pve` (PVEVMAdmin on `/`) with tokens `sep` (privsep, PVEVMUser on
/// `/vms`) and `full` (no privsep); `one@pve!only100` sees only VM 100;
/// `off@pve` is disabled; `sync@pve!old` expired.
pub fn restricted_seed() -> ClusterSeed {
    use pve_guac_lab::proxmox::{TokenSeed, UserSeed};
    let mut seed = ClusterSeed::example("lab")
        .auth_delay(false)
        .user("ops@pve")
        .user("one@pve")
        .role("AuditOnly", &["VM.Audit"])
        .acl("/", "ops@pve", "PVEVMAdmin")
        .acl("/vms", "ops@pve!sep", "PVEVMUser")
        .acl("/vms/100", "one@pve", "AuditOnly")
        .acl("/vms/100", "one@pve!only100", "AuditOnly")
        .token(TokenSeed::new(
            "ops@pve",
            "sep",
            "11111111-1111-4111-8111-111111111111",
        ))
        .token(
            TokenSeed::new("ops@pve", "full", "22222222-2222-4222-8222-222222222222")
                .privsep(false),
        )
        .token(TokenSeed::new(
            "one@pve",
            "only100",
            "33333333-3333-4333-8333-333333333333",
        ))
        .token(TokenSeed {
            expire: 1,
            ..TokenSeed::new("sync@pve", "old", "44444444-4444-4444-8444-444444444444")
        });
    seed.users.push(UserSeed {
        userid: "off@pve".into(),
        enabled: false,
        ..UserSeed::default()
    });
    seed.tokens.push(TokenSeed::new(
        "off@pve",
        "t1",
        "55555555-5555-4555-8555-555555555555",
    ));
    seed
}

pub const SEP_TOKEN: &str = "PVEAPIToken=ops@pve!sep=11111111-1111-4111-8111-111111111111";
pub const FULL_TOKEN: &str = "PVEAPIToken=ops@pve!full=22222222-2222-4222-8222-222222222222";
pub const ONLY100_TOKEN: &str = "PVEAPIToken=one@pve!only100=33333333-3333-4333-8333-333333333333";
