//! End-to-end contract tests of the Proxmox emulator over HTTPS through the
//! lab's real listeners: a raw HTTP/1.1-over-TLS client for wire-level
//! checks (exact status lines, missing `Content-Length`, connection close,
//! no answer at all) and `reqwest` for ordinary calls.

use std::sync::Arc;
use std::time::Duration;

use pve_guac_lab::proxmox::{ClusterSeed, EXAMPLE_TOKEN_ID, EXAMPLE_TOKEN_SECRET};
use pve_guac_lab::{Lab, LabSeed};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

fn auth() -> String {
    format!("PVEAPIToken={EXAMPLE_TOKEN_ID}={EXAMPLE_TOKEN_SECRET}")
}

async fn lab(cluster: ClusterSeed, clock_scale: f64, auth_delay: bool) -> Lab {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seed = LabSeed {
        clusters: vec![cluster],
        clock_scale,
        auth_delay: Some(auth_delay),
        ..LabSeed::default()
    };
    Lab::start(seed).await.expect("lab starts")
}

/// A raw answer: status line parts, headers, body, and whether the server
/// closed the connection.
#[derive(Debug)]
struct Wire {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Wire {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Send `head` (+ body) over TLS to `url` and read until the server closes
/// (or `wait` passes: then `None`, i.e. no answer).
async fn raw(lab: &Lab, url: &str, request: Vec<u8>, wait: Duration) -> Option<Wire> {
    let addr = url.trim_start_matches("https://").to_string();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(lab.cert_der().to_vec()))
        .unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(&addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(&request).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(wait, async {
        let mut chunk = [0u8; 8192];
        loop {
            match tls.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    if read.is_err() && buf.is_empty() {
        return None;
    }
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"));
    let status = parts.next().unwrap().parse().unwrap();
    let reason = parts.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    Some(Wire {
        status,
        reason,
        headers,
        body: buf[split + 4..].to_vec(),
    })
}

fn get(path: &str, auth: Option<&str>) -> Vec<u8> {
    let mut s =
        format!("GET /api2/json{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(a) = auth {
        s.push_str(&format!("Authorization: {a}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

fn client(lab: &Lab) -> reqwest::Client {
    let cert = reqwest::Certificate::from_pem(lab.cert_pem().as_bytes()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([cert])
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn e2e_rule01_json_over_https_with_merged_parameters() {
    let lab = lab(ClusterSeed::example("lab"), 0.0, false).await;
    let c = client(&lab);
    let base = format!("{}/api2/json", lab.proxmox_url("lab"));
    let r = c
        .get(format!("{base}/version"))
        .header("Authorization", auth())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/json;charset=UTF-8"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["release"], "9.1");

    let r = c
        .put(format!(
            "{base}/nodes/pve1/qemu/100/config?description=query"
        ))
        .header("Authorization", auth())
        .form(&[("description", "body"), ("tags", "prod;web;e2e")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"data": null}));
    let cfg = lab.proxmox("lab").config(100).unwrap();
    assert_eq!(
        (cfg["description"].as_str(), cfg["tags"].as_str()),
        (Some("query"), Some("prod;web;e2e"))
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn e2e_rule02_401_is_empty_close_delimited_and_delayed() {
    let lab = lab(ClusterSeed::example("lab"), 1000.0, true).await;
    let url = lab.proxmox_url("lab");
    let before = lab.clock().elapsed();
    let w = raw(&lab, &url, get("/version", None), WAIT)
        .await
        .expect("an answer");
    assert_eq!((w.status, w.reason.as_str()), (401, "No ticket"));
    assert!(w.header("Content-Length").is_none() && w.header("Content-Type").is_none());
    assert!(w.body.is_empty());
    assert!(lab.clock().elapsed() - before >= Duration::from_secs(3));
    let bad = format!("PVEAPIToken={EXAMPLE_TOKEN_ID}=00000000-0000-4000-8000-000000000000");
    let w = raw(&lab, &url, get("/version", Some(&bad)), WAIT)
        .await
        .unwrap();
    assert_eq!(
        (w.status, w.reason.as_str()),
        (401, "Authentication failed!")
    );
    let space = format!("PVEAPIToken {EXAMPLE_TOKEN_ID}={EXAMPLE_TOKEN_SECRET}");
    let w = raw(&lab, &url, get("/version", Some(&space)), WAIT)
        .await
        .unwrap();
    assert_eq!(w.status, 200);
    lab.shutdown().await;
}

#[tokio::test]
async fn e2e_rule05_errors_on_the_wire() {
    let lab = lab(ClusterSeed::example("lab"), 0.0, false).await;
    let url = lab.proxmox_url("lab");
    let w = raw(
        &lab,
        &url,
        get("/nodes/pve1/qemu/999/status/current", Some(&auth())),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(w.status, 500);
    assert_eq!(
        w.reason,
        "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist"
    );
    assert_eq!(
        w.json(),
        json!({"data": null, "message": "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist\n"})
    );
    assert_eq!(w.header("Connection"), Some("close"));
    let w = raw(
        &lab,
        &url,
        get("/nodes/pve1/qemu/100/foo", Some(&auth())),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(
        (w.status, w.reason.as_str()),
        (501, "Method 'GET /nodes/pve1/qemu/100/foo' not implemented")
    );
    let w = raw(
        &lab,
        &url,
        get("/nodes/pve1/qemu/99/config", Some(&auth())),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(
        (w.status, w.reason.as_str()),
        (400, "Parameter verification failed.")
    );
    assert_eq!(
        w.json()["errors"]["vmid"],
        "invalid format - value does not look like a valid VM ID\n"
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn e2e_rule16_offline_node_gives_595_without_body() {
    let lab = lab(
        ClusterSeed::example("lab").with_node_offline("pve3"),
        0.0,
        false,
    )
    .await;
    let url = lab.proxmox_node_url("lab", "pve1");
    let w = raw(
        &lab,
        &url,
        get("/nodes/pve3/qemu/106/config", Some(&auth())),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!((w.status, w.reason.as_str()), (595, "No route to host"));
    assert!(w.header("Content-Length").is_none() && w.header("Content-Type").is_none());
    assert!(w.body.is_empty());
    let c = client(&lab);
    let r = c
        .get(format!("{url}/api2/json/cluster/status"))
        .header("Authorization", auth())
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let pve3 = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "pve3")
        .unwrap()
        .clone();
    assert_eq!(pve3["online"], 0);
    lab.shutdown().await;
}

#[tokio::test]
async fn e2e_rule17_request_limits() {
    let lab = lab(ClusterSeed::example("lab"), 0.0, false).await;
    let url = lab.proxmox_url("lab");
    // Body over 512 KiB → 501 plain text.
    let body = format!("description={}", "a".repeat(600 * 1024));
    let mut req = format!(
        "PUT /api2/json/nodes/pve1/qemu/100/config HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        auth(),
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body.as_bytes());
    let w = raw(&lab, &url, req, WAIT).await.unwrap();
    assert_eq!((w.status, w.reason.as_str()), (501, "for data too large"));
    assert_eq!(String::from_utf8_lossy(&w.body), "for data too large");

    // 64 header lines → no answer at all.
    let mut head = String::from("GET /api2/json/version HTTP/1.1\r\nHost: x\r\n");
    for i in 0..70 {
        head.push_str(&format!("X-Filler-{i}: y\r\n"));
    }
    head.push_str("\r\n");
    let none = raw(&lab, &url, head.into_bytes(), Duration::from_millis(800)).await;
    assert!(none.is_none(), "no answer: {none:?}");

    // Chunked → 501.
    let req = format!(
        "POST /api2/json/nodes/pve1/qemu/100/agent/ping HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
        auth()
    );
    let w = raw(&lab, &url, req.into_bytes(), WAIT).await.unwrap();
    assert_eq!(
        (w.status, w.reason.as_str()),
        (501, "chunked transfer encoding not supported")
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn e2e_rule18_no_404_and_no_429() {
    let lab = lab(ClusterSeed::example("lab"), 0.0, false).await;
    let c = client(&lab);
    let base = format!("{}/api2/json", lab.proxmox_url("lab"));
    for path in ["/nope", "/nodes/pve1/nope/deeper", "/access/nope"] {
        let r = c
            .get(format!("{base}{path}"))
            .header("Authorization", auth())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 501, "{path}");
    }
    for _ in 0..200 {
        let r = c
            .get(format!("{base}/cluster/resources?type=vm"))
            .header("Authorization", auth())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    lab.shutdown().await;
}

#[tokio::test]
async fn e2e_rule19_requests_are_recorded_with_secrets_redacted() {
    let lab = lab(ClusterSeed::example("lab"), 0.0, false).await;
    let c = client(&lab);
    let base = format!("{}/api2/json", lab.proxmox_url("lab"));
    let mark = lab.request_mark();
    let r = c
        .put(format!("{base}/nodes/pve1/qemu/100/config"))
        .header("Authorization", auth())
        .form(&[
            (
                "description",
                "user:\"a\" pass:\"TopSecret\" protos:\"ssh\";",
            ),
            ("digest", "deadbeef"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500, "wrong digest");
    let log = lab.requests_since(mark);
    assert_eq!(log.len(), 1);
    let rec = &log[0];
    assert_eq!(
        (rec.method.as_str(), rec.path.as_str()),
        ("PUT", "/api2/json/nodes/pve1/qemu/100/config")
    );
    assert_eq!(rec.status, 500);
    assert_eq!(rec.route, "PUT /nodes/{node}/qemu/{vmid}/config");
    assert_eq!(rec.param("description"), Some("***"));
    assert_eq!(rec.param("digest"), Some("deadbeef"));
    assert!(!format!("{log:?}").contains("TopSecret"));
    assert!(!format!("{log:?}").contains(EXAMPLE_TOKEN_SECRET));
    assert_eq!(
        lab.request_counts()
            .get("PUT /nodes/{node}/qemu/{vmid}/config"),
        Some(&1)
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn e2e_power_cycle_through_tasks() {
    let lab = lab(ClusterSeed::example("lab"), 0.0, false).await;
    let c = client(&lab);
    let base = format!("{}/api2/json", lab.proxmox_url("lab"));
    let r = c
        .post(format!("{base}/nodes/pve3/qemu/104/status/start"))
        .header("Authorization", auth())
        .send()
        .await
        .unwrap();
    let upid = r.json::<Value>().await.unwrap()["data"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        upid.starts_with("UPID:pve3:") && upid.ends_with(":qmstart:104:sync@pve!pve-guac-sync:")
    );
    lab.clock().advance(Duration::from_secs(2));
    let r = c
        .get(format!("{base}/nodes/pve3/tasks/{upid}/status"))
        .header("Authorization", auth())
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (
            v["data"]["status"].as_str(),
            v["data"]["exitstatus"].as_str()
        ),
        (Some("stopped"), Some("OK"))
    );
    assert_eq!(lab.proxmox("lab").guest(104).unwrap().status, "running");
    lab.shutdown().await;
}

#[tokio::test]
async fn an_empty_or_zero_digest_checks_nothing() {
    // pve-server's `$digest && …`: neither "" nor "0" is compared.
    let lab = lab(ClusterSeed::example("lab"), 0.0, false).await;
    let c = client(&lab);
    let base = format!("{}/api2/json", lab.proxmox_url("lab"));
    for digest in ["", "0"] {
        let r = c
            .put(format!("{base}/nodes/pve1/qemu/100/config"))
            .header("Authorization", auth())
            .form(&[("description", "hello"), ("digest", digest)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "digest {digest:?}");
    }
    lab.shutdown().await;
}
