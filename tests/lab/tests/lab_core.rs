//! Lab core: the hand-written HTTP/1.1-over-TLS server (framing, limits,
//! keep-alive, chunked and oversized bodies), generic faults, the request
//! log's redaction and the certificate fingerprint — driven by a raw TLS
//! client so every byte on the wire is checked.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pve_guac_lab::faults::{FaultAction, FaultRule, Faults, RetryBody, ServerKind};
use pve_guac_lab::http::{Body, Handler, Request, Response, ServerLimits};
use pve_guac_lab::log::RequestLog;
use pve_guac_lab::server::{ListenerSpec, OnlineCheck, Shutdown, start_listener};
use pve_guac_lab::tls::{LabCert, fingerprint_of};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

// ---------------------------------------------------------------- test handler

/// Echoes what the server parsed; a few paths exercise response framing.
struct EchoHandler;

impl Handler for EchoHandler {
    fn handle(
        &self,
        req: Request,
    ) -> Pin<Box<dyn std::future::Future<Output = Response> + Send + '_>> {
        Box::pin(async move {
            match req.path.as_str() {
                "/close-empty" => {
                    let mut r = Response::new(401).reason("No ticket");
                    r.body = Body::CloseDelimitedEmpty;
                    r
                }
                "/close" => Response::json(200, &json!({"data": null})).close(),
                "/reason" => Response::json(500, &json!({"data": null}))
                    .reason("VM 100 is not running")
                    .route("GET /reason/{x}"),
                "/no-content" => Response::new(204),
                "/sleep" => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Response::new(200)
                }
                _ => Response::json(
                    200,
                    &json!({
                        "method": req.method,
                        "path": req.path,
                        "raw_path": req.raw_path,
                        "query": req.query,
                        "chunked": req.chunked,
                        "oversized": req.oversized,
                        "body": String::from_utf8_lossy(&req.body),
                        "minor": req.minor_version,
                        "headers": req.headers.len(),
                        "host": req.header("host"),
                    }),
                ),
            }
        })
    }
}

fn limits() -> ServerLimits {
    ServerLimits {
        max_header_lines: Some(64),
        max_header_bytes: Some(8192),
        max_requests_per_connection: 100,
        idle_timeout: Duration::from_millis(400),
        max_body_bytes: 64,
    }
}

struct TestServer {
    addr: SocketAddr,
    cert: Arc<LabCert>,
    log: Arc<RequestLog>,
    faults: Arc<Faults>,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

async fn start(kind: ServerKind, limits: ServerLimits, online: Option<OnlineCheck>) -> TestServer {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = Arc::new(LabCert::generate().unwrap());
    let log = Arc::new(RequestLog::default());
    let faults = Arc::new(Faults::new(kind));
    let shutdown = Shutdown::default();
    let spec = ListenerSpec {
        label: "test/pve1".into(),
        node: Some("pve1".into()),
        kind,
        port: 0,
        limits,
        handler: Arc::new(EchoHandler),
        faults: faults.clone(),
        online,
    };
    let running = start_listener(spec, cert.server_config().unwrap(), log.clone(), &shutdown)
        .await
        .unwrap();
    TestServer {
        addr: running.addr,
        cert,
        log,
        faults,
        shutdown,
        task: running.task,
    }
}

// ---------------------------------------------------------------- raw client

/// Accepts exactly the certificate with this SHA-256 pin, and remembers it.
#[derive(Debug)]
struct PinVerifier {
    pin: String,
    seen: Mutex<Option<Vec<u8>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap() = Some(end_entity.to_vec());
        if fingerprint_of(end_entity) == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("fingerprint mismatch".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

async fn connect_with(
    addr: SocketAddr,
    pin: &str,
) -> std::io::Result<(TlsStream<TcpStream>, Arc<PinVerifier>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinVerifier {
        pin: pin.to_string(),
        seen: Mutex::new(None),
        provider: provider.clone(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await?;
    let stream = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await?;
    Ok((stream, verifier))
}

async fn connect(s: &TestServer) -> TlsStream<TcpStream> {
    connect_with(s.addr, &s.cert.fingerprint_sha256())
        .await
        .unwrap()
        .0
}

#[derive(Debug)]
struct Raw {
    status: u16,
    reason: String,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Read one response: Content-Length body, or up to EOF when there is none.
async fn read_response(stream: &mut TlsStream<TcpStream>, buf: &mut Vec<u8>) -> Raw {
    tokio::time::timeout(Duration::from_secs(5), async {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = stream.read_buf(buf).await.unwrap();
            assert!(n > 0, "connection closed before a response head");
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
        buf.drain(..head_end + 4);
        let status_line = head.lines().next().unwrap().to_string();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"));
        let status: u16 = parts.next().unwrap().parse().unwrap();
        let reason = parts.next().unwrap_or_default().to_string();
        let mut raw = Raw {
            status,
            reason,
            head,
            body: Vec::new(),
        };
        match raw.header("content-length") {
            Some(len) => {
                let len: usize = len.parse().unwrap();
                while buf.len() < len {
                    assert!(stream.read_buf(buf).await.unwrap() > 0);
                }
                raw.body = buf.drain(..len).collect();
            }
            None if status == 204 || status == 304 => {}
            None => {
                read_until_close(stream, buf).await.unwrap();
                raw.body = std::mem::take(buf);
            }
        }
        raw
    })
    .await
    .expect("response within 5 s")
}

async fn roundtrip(stream: &mut TlsStream<TcpStream>, request: &str) -> Raw {
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    read_response(stream, &mut Vec::new()).await
}

/// Whether the server closed the connection (cleanly) within `within`.
/// The server closed the connection (with or without a TLS close_notify:
/// Proxmox listeners, like pve-http-server, send none).
async fn closed_within(stream: &mut TlsStream<TcpStream>, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(within, stream.read(&mut byte)).await {
        Ok(Ok(0)) => true,
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::UnexpectedEof,
        _ => false,
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
}

// ---------------------------------------------------------------- framing

#[tokio::test]
async fn keep_alive_and_exact_framing() {
    let s = start(ServerKind::Proxmox, limits(), None).await;
    let mut c = connect(&s).await;

    let r = roundtrip(&mut c, &get("/echo?a=1")).await;
    assert_eq!((r.status, r.reason.as_str()), (200, "OK"));
    assert_eq!(r.json()["query"], "a=1");
    assert_eq!(
        r.header("content-length").as_deref(),
        Some(&*r.body.len().to_string())
    );
    assert!(r.header("connection").is_none());
    assert!(r.header("date").is_some());

    // Handler's reason phrase, kept on the same connection.
    let r = roundtrip(&mut c, &get("/reason")).await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "VM 100 is not running")
    );

    let r = roundtrip(&mut c, &get("/no-content")).await;
    assert_eq!(r.status, 204);
    assert!(r.header("content-length").is_none());

    // Close-delimited empty body: no Content-Length / Content-Type, then EOF.
    let r = roundtrip(&mut c, &get("/close-empty")).await;
    assert_eq!((r.status, r.reason.as_str()), (401, "No ticket"));
    assert!(r.header("content-length").is_none(), "{}", r.head);
    assert!(r.header("content-type").is_none(), "{}", r.head);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert!(r.body.is_empty());

    // `close` on an ordinary response.
    let mut c = connect(&s).await;
    let r = roundtrip(&mut c, &get("/close")).await;
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert!(closed_within(&mut c, Duration::from_secs(2)).await);

    let routes = s.log.counts();
    assert_eq!(routes.get("GET /reason/{x}"), Some(&1));
    assert_eq!(routes.get("GET /echo"), Some(&1));
}

#[tokio::test]
async fn keep_alive_request_limit_and_idle_timeout() {
    let mut l = limits();
    l.max_requests_per_connection = 3;
    let s = start(ServerKind::Proxmox, l, None).await;
    let mut c = connect(&s).await;
    for i in 1..=3 {
        let r = roundtrip(&mut c, &get("/echo")).await;
        assert_eq!(r.status, 200);
        let conn = r.header("connection");
        if i < 3 {
            assert!(conn.is_none());
        } else {
            assert_eq!(conn.as_deref(), Some("close"));
        }
    }
    assert!(closed_within(&mut c, Duration::from_secs(2)).await);

    // An idle connection is closed after the idle timeout (400 ms here).
    let mut c = connect(&s).await;
    let t = Instant::now();
    assert!(closed_within(&mut c, Duration::from_secs(3)).await);
    assert!(
        t.elapsed() >= Duration::from_millis(350),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn http10_closes_unless_keep_alive() {
    let s = start(ServerKind::Guacamole, limits(), None).await;
    let mut c = connect(&s).await;
    let r = roundtrip(&mut c, "GET /echo HTTP/1.0\r\n\r\n").await;
    assert_eq!(r.json()["minor"], 0);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert!(closed_within(&mut c, Duration::from_secs(2)).await);

    let mut c = connect(&s).await;
    let req = "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    let r = roundtrip(&mut c, req).await;
    assert_eq!(r.header("connection").as_deref(), Some("keep-alive"));
    let r = roundtrip(&mut c, req).await;
    assert_eq!(r.status, 200);
}

// ---------------------------------------------------------------- limits

fn with_header_lines(n: usize) -> String {
    let mut req = String::from("GET /echo HTTP/1.1\r\n");
    for i in 0..n {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    req
}

#[tokio::test]
async fn header_line_limit_drops_without_answer() {
    let s = start(ServerKind::Proxmox, limits(), None).await;
    // 62 header lines + the blank line = 63 < 64: answered.
    let mut c = connect(&s).await;
    let r = roundtrip(&mut c, &with_header_lines(62)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"], 62);

    // 63 + blank reaches 64: no answer at all, closed after the idle timeout.
    let mut c = connect(&s).await;
    c.write_all(with_header_lines(63).as_bytes()).await.unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(3), read_until_close(&mut c, &mut buf))
        .await
        .expect("closed by the idle timeout");
    assert_eq!(n.unwrap(), 0, "no answer bytes");
    assert!(t.elapsed() >= Duration::from_millis(350));
    let last = s.log.all().pop().unwrap();
    assert_eq!(
        (last.status, last.note.as_deref()),
        (0, Some("header-limit"))
    );
}

#[tokio::test]
async fn header_byte_limit_drops_without_answer() {
    let s = start(ServerKind::Proxmox, limits(), None).await;
    // One header line of exactly `len` bytes (without CRLF).
    let req = |len: usize| {
        let value = "a".repeat(len - "X-Big: ".len());
        format!("GET /echo HTTP/1.1\r\nX-Big: {value}\r\n\r\n")
    };
    let mut c = connect(&s).await;
    assert_eq!(roundtrip(&mut c, &req(8191)).await.status, 200);

    let mut c = connect(&s).await;
    c.write_all(req(8192).as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(3), read_until_close(&mut c, &mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0);
}

// ---------------------------------------------------------------- bodies

#[tokio::test]
async fn chunked_body_is_decoded() {
    let s = start(ServerKind::Guacamole, limits(), None).await;
    let mut c = connect(&s).await;
    let req = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
               5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n";
    let r = roundtrip(&mut c, req).await;
    let v = r.json();
    assert_eq!(v["chunked"], true);
    assert_eq!(v["body"], "hello, world");
    // The connection is still in sync.
    assert_eq!(
        roundtrip(&mut c, &get("/echo")).await.json()["chunked"],
        false
    );
}

#[tokio::test]
async fn oversized_bodies_are_flagged_and_discarded() {
    let s = start(ServerKind::Proxmox, limits(), None).await;
    let mut c = connect(&s).await;
    let body = "x".repeat(100);
    let req = format!(
        "POST /echo HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let v = roundtrip(&mut c, &req).await.json();
    assert_eq!(
        (v["oversized"].clone(), v["body"].clone()),
        (json!(true), json!(""))
    );

    let fits = format!(
        "POST /echo HTTP/1.1\r\nContent-Length: 64\r\n\r\n{}",
        "y".repeat(64)
    );
    let v = roundtrip(&mut c, &fits).await.json();
    assert_eq!(v["oversized"], false);
    assert_eq!(v["body"].as_str().unwrap().len(), 64);

    let chunked = "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n".to_string()
        + &"z".repeat(64)
        + "\r\n1\r\nz\r\n0\r\n\r\n";
    let v = roundtrip(&mut c, &chunked).await.json();
    assert_eq!(
        (v["oversized"].clone(), v["chunked"].clone()),
        (json!(true), json!(true))
    );
}

// ---------------------------------------------------------------- faults

#[tokio::test]
async fn fault_latency() {
    let s = start(ServerKind::Proxmox, limits(), None).await;
    s.faults
        .set_latency(Duration::from_millis(150), Duration::from_millis(50));
    let mut c = connect(&s).await;
    let t = Instant::now();
    assert_eq!(roundtrip(&mut c, &get("/echo")).await.status, 200);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(s.log.all()[0].latency >= Duration::from_millis(150));
    s.faults.clear();
    let t = Instant::now();
    roundtrip(&mut c, &get("/echo")).await;
    assert!(t.elapsed() < Duration::from_millis(150));
}

#[tokio::test]
async fn fault_error_next_n_matching() {
    let s = start(ServerKind::Proxmox, limits(), None).await;
    s.faults.fail_next(2, "GET", "/api2/json/nodes", 500);
    let mut c = connect(&s).await;
    // Not matching: method or path differ.
    let r = roundtrip(
        &mut c,
        "POST /api2/json/nodes HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        roundtrip(&mut c, &get("/api2/json/version")).await.status,
        200
    );
    for _ in 0..2 {
        let mut c = connect(&s).await;
        let r = roundtrip(&mut c, &get("/api2/json/nodes/pve1/qemu")).await;
        assert_eq!((r.status, r.reason.as_str()), (500, "Injected fault (500)"));
        assert_eq!(
            r.json(),
            json!({"data": null, "message": "Injected fault (500)\n"})
        );
        assert_eq!(r.header("connection").as_deref(), Some("close"));
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json;charset=UTF-8")
        );
    }
    let mut c = connect(&s).await;
    assert_eq!(
        roundtrip(&mut c, &get("/api2/json/nodes/pve1/qemu"))
            .await
            .status,
        200
    );
    assert_eq!(s.faults.active_rules(), 0);
    let notes: Vec<_> = s.log.all().into_iter().filter_map(|r| r.note).collect();
    assert_eq!(notes, ["fault:error", "fault:error"]);
}

#[tokio::test]
async fn fault_error_rate_is_seeded() {
    let s = start(ServerKind::Guacamole, limits(), None).await;
    let run = |seed: u64| {
        let s = &s;
        async move {
            s.faults.clear();
            s.faults.set_rng_seed(seed);
            s.faults.add(
                FaultRule::error(502)
                    .probability(0.5)
                    .path_contains("/connections"),
            );
            let mut c = connect(s).await;
            let mut statuses = Vec::new();
            for _ in 0..20 {
                let r = roundtrip(&mut c, &get("/api/session/data/postgresql/connections")).await;
                statuses.push(r.status);
                if r.header("connection").as_deref() == Some("close") {
                    c = connect(s).await;
                }
            }
            statuses
        }
    };
    let a = run(7).await;
    assert_eq!(a, run(7).await);
    let failures = a.iter().filter(|st| **st == 502).count();
    assert!((3..=17).contains(&failures), "{a:?}");
    // Guacamole-shaped error body, connection kept open.
    s.faults.clear();
    s.faults.add(FaultRule::error(500).times(1));
    let mut c = connect(&s).await;
    let r = roundtrip(&mut c, &get("/x")).await;
    assert_eq!(r.json()["type"], "INTERNAL_ERROR");
    assert_eq!(r.json()["message"], "Unexpected internal error");
    assert!(r.header("connection").is_none());
}

#[tokio::test]
async fn fault_retry_after() {
    let s = start(ServerKind::Guacamole, limits(), None).await;
    s.faults.add(FaultRule::retry_after(429, 3).times(1));
    s.faults.add(FaultRule {
        action: FaultAction::RetryAfter {
            status: 503,
            seconds: 60,
            http_date: true,
            body: RetryBody::Html,
        },
        ..FaultRule::hang().times(1)
    });
    let mut c = connect(&s).await;
    let r = roundtrip(&mut c, &get("/a")).await;
    assert_eq!((r.status, r.reason.as_str()), (429, "Too Many Requests"));
    assert_eq!(r.header("retry-after").as_deref(), Some("3"));
    assert_eq!(r.json()["retry_after"], 3);
    let r = roundtrip(&mut c, &get("/a")).await;
    assert_eq!(r.status, 503);
    let date = r.header("retry-after").unwrap();
    assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
    assert_eq!(r.header("content-type").as_deref(), Some("text/html"));
    assert!(String::from_utf8_lossy(&r.body).contains("<h1>503 Service Unavailable</h1>"));
    assert_eq!(roundtrip(&mut c, &get("/a")).await.status, 200);
}

#[tokio::test]
async fn fault_hang_until_client_gives_up() {
    let s = start(ServerKind::Guacamole, limits(), None).await;
    s.faults
        .add(FaultRule::hang().path_prefix("/slow").times(1));
    let mut c = connect(&s).await;
    c.write_all(get("/slow").as_bytes()).await.unwrap();
    let mut byte = [0u8; 1];
    // Longer than the idle timeout: a hang is not an idle close.
    let waited = tokio::time::timeout(Duration::from_millis(900), c.read(&mut byte)).await;
    assert!(waited.is_err(), "no answer while hanging");
    drop(c);
    let last = s.log.all().pop().unwrap();
    assert_eq!((last.status, last.note.as_deref()), (0, Some("fault:hang")));
    // Other requests are unaffected.
    let mut c = connect(&s).await;
    assert_eq!(roundtrip(&mut c, &get("/slow")).await.status, 200);
}

#[tokio::test]
async fn fault_reset() {
    let s = start(ServerKind::Proxmox, limits(), None).await;
    s.faults.add(FaultRule::reset().method("DELETE"));
    let mut c = connect(&s).await;
    c.write_all(b"DELETE /x HTTP/1.1\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(2), c.read_to_end(&mut buf))
        .await
        .unwrap();
    let err = r.expect_err("a reset, not a clean close");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert!(buf.is_empty());
    assert_eq!(s.log.all()[0].note.as_deref(), Some("fault:reset"));
}

#[tokio::test]
async fn offline_listener_drops_connections() {
    let online = Arc::new(AtomicBool::new(true));
    let flag = online.clone();
    let check: OnlineCheck = Arc::new(move || flag.load(Ordering::SeqCst));
    let s = start(ServerKind::Proxmox, limits(), Some(check)).await;
    let pin = s.cert.fingerprint_sha256();
    let mut c = connect(&s).await;
    assert_eq!(roundtrip(&mut c, &get("/echo")).await.status, 200);
    online.store(false, Ordering::SeqCst);
    assert!(connect_with(s.addr, &pin).await.is_err());
    // A kept-alive connection is cut before its next request is answered.
    c.write_all(get("/echo").as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(2), c.read_to_end(&mut buf))
        .await
        .unwrap();
    assert!(r.is_err() && buf.is_empty());
    online.store(true, Ordering::SeqCst);
    let mut c = connect(&s).await;
    assert_eq!(roundtrip(&mut c, &get("/echo")).await.status, 200);
}

#[tokio::test]
async fn plain_http_on_the_tls_port() {
    async fn plain(addr: SocketAddr, request: &str) -> String {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(2), tcp.read_to_string(&mut out))
            .await
            .unwrap()
            .unwrap();
        out
    }
    let s = start(ServerKind::Proxmox, limits(), None).await;
    let out = plain(
        s.addr,
        "GET /api2/json/version?a=1 HTTP/1.1\r\nHost: pve1:8006\r\n\r\n",
    )
    .await;
    assert!(
        out.starts_with("HTTP/1.1 301 Moved Permanently\r\n"),
        "{out}"
    );
    assert!(
        out.contains("\r\nLocation: https://pve1:8006/api2/json/version?a=1\r\n"),
        "{out}"
    );
    let out = plain(
        s.addr,
        "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(
        out.starts_with("HTTP/1.1 308 Permanent Redirect\r\n"),
        "{out}"
    );
    assert_eq!(s.log.all()[0].note.as_deref(), Some("plain-http"));

    let s = start(ServerKind::Guacamole, limits(), None).await;
    let out = plain(s.addr, "GET /guacamole/api/languages HTTP/1.1\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400 \r\n"), "{out}");
    assert!(
        out.ends_with("\r\n\r\nBad Request\nThis combination of host and port requires TLS.\n"),
        "{out}"
    );
}

// ---------------------------------------------------------------- log, TLS, shutdown

#[tokio::test]
async fn request_log_redacts_secrets() {
    let mut l = limits();
    l.max_body_bytes = 4096;
    let s = start(ServerKind::Guacamole, l, None).await;
    let mut c = connect(&s).await;
    let form = "username=guacadmin&password=S3cr3t-form&description=user%3A%22a%22+pass%3A%22hunter2%22%3B";
    let req = format!(
        "POST /api/tokens?token=TOK-QUERY&x=1 HTTP/1.1\r\nAuthorization: PVEAPIToken=a@pam!b=HDR-SECRET\r\n\
         Guacamole-Token: GUAC-HDR\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{form}",
        form.len()
    );
    roundtrip(&mut c, &req).await;
    let json_body = r#"{"name":"vm","parameters":{"hostname":"192.0.2.1","password":"J-SECRET","private-key":"KEY"},"attributes":{"guac-Passphrase":"PP"},"list":[{"authToken":"T2"}]}"#;
    let req = format!(
        "PUT /api/session/data/postgresql/connections/1 HTTP/1.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{json_body}",
        json_body.len()
    );
    roundtrip(&mut c, &req).await;
    roundtrip(&mut c, "DELETE /api/tokens/ABCDEF0123 HTTP/1.1\r\n\r\n").await;

    let log = s.log.all();
    assert_eq!(log.len(), 3);
    let login = &log[0];
    assert_eq!(login.query, "token=***&x=1");
    assert_eq!(login.param("username"), Some("guacadmin"));
    assert_eq!(login.param("password"), Some("***"));
    assert_eq!(login.param("description"), Some("***"));
    assert!(!login.is_write(), "login is not a write");
    let put = &log[1];
    assert!(put.is_write());
    assert_eq!(
        put.json,
        Some(
            json!({"name":"vm","parameters":{"hostname":"192.0.2.1","password":"***","private-key":"***"},
            "attributes":{"guac-Passphrase":"***"},"list":[{"authToken":"***"}]})
        )
    );
    assert_eq!(log[2].path, "/api/tokens/***");
    let everything = format!("{log:?}");
    for secret in [
        "S3cr3t",
        "hunter2",
        "TOK-QUERY",
        "HDR-SECRET",
        "GUAC-HDR",
        "J-SECRET",
        "KEY\"",
        "PP\"",
        "T2",
        "ABCDEF0123",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked: {everything}"
        );
    }
    let mark = s.log.mark();
    roundtrip(&mut c, &get("/after")).await;
    let since = s.log.since(mark);
    assert_eq!(since.len(), 1);
    assert_eq!(since[0].path, "/after");
    assert_eq!(since[0].server, "test/pve1");
}

#[tokio::test]
async fn served_certificate_matches_fingerprint() {
    let s = start(ServerKind::Proxmox, limits(), None).await;
    let fp = s.cert.fingerprint_sha256();
    assert_eq!(fp.len(), 32 * 3 - 1);
    assert!(
        fp.chars()
            .all(|ch| ch == ':' || ch.is_ascii_digit() || ch.is_ascii_uppercase())
    );
    let (mut c, verifier) = connect_with(s.addr, &fp).await.unwrap();
    let served = verifier.seen.lock().unwrap().clone().unwrap();
    assert_eq!(served, s.cert.cert_der());
    assert_eq!(fingerprint_of(&served), fp);
    assert_eq!(c.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(roundtrip(&mut c, &get("/")).await.status, 200);
    assert!(s.cert.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    // A wrong pin is refused.
    let wrong = fp.replacen(&fp[..2], if &fp[..2] == "00" { "01" } else { "00" }, 1);
    assert!(connect_with(s.addr, &wrong).await.is_err());
}

#[tokio::test]
async fn graceful_shutdown_stops_listening() {
    let s = start(ServerKind::Proxmox, limits(), None).await;
    let mut idle = connect(&s).await;
    assert_eq!(roundtrip(&mut idle, &get("/")).await.status, 200);
    s.shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(3), s.task)
        .await
        .expect("listener ends")
        .unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(1)).await);
    assert!(TcpStream::connect(s.addr).await.is_err());
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let s = start(ServerKind::Guacamole, limits(), None).await;
    let mut c = connect(&s).await;
    c.write_all(get("/sleep").as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.shutdown.trigger();
    let r = read_response(&mut c, &mut Vec::new()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    tokio::time::timeout(Duration::from_secs(3), s.task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn certificate_pem_works_as_a_ca_file() {
    let s = start(ServerKind::Proxmox, limits(), None).await;
    let mut roots = rustls::RootCertStore::empty();
    let pem = s.cert.cert_pem();
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    roots.add(der).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(config));
    for name in ["127.0.0.1", "localhost"] {
        let tcp = TcpStream::connect(s.addr).await.unwrap();
        let mut c = connector
            .connect(ServerName::try_from(name).unwrap(), tcp)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(roundtrip(&mut c, &get("/")).await.status, 200);
    }
}

// ---------------------------------------------------------------- the Lab

use pve_guac_lab::{Lab, LabSeed};

/// `https://127.0.0.1:PORT[/base]` → socket address.
fn addr_of(url: &str) -> SocketAddr {
    let rest = url.strip_prefix("https://").unwrap();
    rest.split('/').next().unwrap().parse().unwrap()
}

async fn lab_connect(lab: &Lab, url: &str) -> TlsStream<TcpStream> {
    connect_with(addr_of(url), &lab.fingerprint_sha256())
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn lab_starts_fast_and_serves_both_emulators() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let t = Instant::now();
    let lab = Lab::start(LabSeed::default()).await.unwrap();
    let took = t.elapsed();
    println!(
        "Lab::start(LabSeed::default()) took {:.2} ms (inside: {:.2} ms)",
        took.as_secs_f64() * 1000.0,
        lab.startup_time().as_secs_f64() * 1000.0
    );
    assert!(took < Duration::from_secs(5), "{took:?}");

    assert_eq!(lab.cluster_names(), ["lab"]);
    let nodes = lab.proxmox("lab").node_names();
    let endpoints = lab.proxmox_endpoints("lab");
    assert_eq!(endpoints.len(), nodes.len());
    assert!(nodes.len() >= 2);
    assert_eq!(lab.proxmox_url("lab"), endpoints[0]);
    assert!(lab.guacamole_url().ends_with("/guacamole/api"));

    // Proxmox on every node, with the primary token.
    let (id, secret) = lab.proxmox("lab").primary_token();
    for url in &endpoints {
        let mut c = lab_connect(&lab, url).await;
        let req = format!(
            "GET /api2/json/version HTTP/1.1\r\nAuthorization: PVEAPIToken={id}={secret}\r\n\r\n"
        );
        let r = roundtrip(&mut c, &req).await;
        assert_eq!(r.status, 200, "{url}");
        assert!(r.json()["data"]["version"].is_string());
    }
    // Guacamole login.
    let (user, password) = lab.guacamole().admin_credentials();
    let mut c = lab_connect(&lab, &lab.guacamole_url()).await;
    let body = format!("username={user}&password={password}");
    let req = format!(
        "POST /guacamole/api/tokens HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = roundtrip(&mut c, &req).await;
    assert_eq!(r.status, 200);
    let token = r.json()["authToken"].as_str().unwrap().to_string();

    let log = lab.requests();
    assert_eq!(log.len(), endpoints.len() + 1);
    assert_eq!(log[0].server, format!("proxmox:lab/{}", nodes[0]));
    let login = log.last().unwrap();
    assert_eq!((login.server.as_str(), login.status), ("guacamole", 200));
    assert_eq!(login.param("password"), Some("***"));
    assert!(!format!("{log:?}").contains(&secret) && !format!("{log:?}").contains(&token));
    let counts = lab.request_counts();
    assert_eq!(counts.values().sum::<u64>(), log.len() as u64);
    lab.shutdown().await;
}

#[tokio::test]
async fn lab_runtime_faults_and_offline_nodes() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seed = LabSeed {
        auth_delay: Some(false),
        ..LabSeed::default()
    };
    let lab = Lab::start(seed).await.unwrap();
    let (id, secret) = lab.proxmox("lab").primary_token();
    let version = format!(
        "GET /api2/json/version HTTP/1.1\r\nAuthorization: PVEAPIToken={id}={secret}\r\n\r\n"
    );
    // "lab" and "proxmox:lab" name the same faults.
    lab.faults("proxmox:lab")
        .add(FaultRule::retry_after(503, 2).times(1));
    assert_eq!(lab.faults("lab").active_rules(), 1);
    let mut c = lab_connect(&lab, &lab.proxmox_url("lab")).await;
    let r = roundtrip(&mut c, &version).await;
    assert_eq!(
        (r.status, r.header("retry-after").as_deref()),
        (503, Some("2"))
    );
    assert_eq!(roundtrip(&mut c, &version).await.status, 200);

    lab.faults("guacamole").fail_next(1, "", "", 500);
    let mut g = lab_connect(&lab, &lab.guacamole_url()).await;
    let r = roundtrip(&mut g, "GET /guacamole/api/languages HTTP/1.1\r\n\r\n").await;
    assert_eq!(r.json()["type"], "INTERNAL_ERROR");

    // Taking the first node offline: its listener drops connections and the
    // lab's URL moves on to the next online node.
    let nodes = lab.proxmox("lab").node_names();
    let first = lab.proxmox_node_url("lab", &nodes[0]);
    assert!(lab.proxmox("lab").set_node_online(&nodes[0], false));
    assert!(
        connect_with(addr_of(&first), &lab.fingerprint_sha256())
            .await
            .is_err()
    );
    assert_eq!(
        lab.refused_connections()
            .get(&format!("proxmox:lab/{}", nodes[0])),
        Some(&1)
    );
    let now = lab.proxmox_url("lab");
    assert_ne!(now, first);
    let mut c = lab_connect(&lab, &now).await;
    assert_eq!(roundtrip(&mut c, &version).await.status, 200);
    lab.shutdown().await;
}

#[tokio::test]
async fn lab_seed_sets_faults_clock_and_ports() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A free port for Guacamole (no clusters, so only one is needed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = format!(
        "clusters: []\nclock_scale: 0\nport_base: {port}\nguacamole:\n  base_path: /api\n\
         transport:\n  guacamole:\n    idle_timeout_ms: 300\n\
         faults:\n  guacamole:\n    rules:\n      - path_prefix: /api/tokens\n        count: 1\n        action: {{ kind: reset }}\n"
    );
    let seed = LabSeed::from_yaml_str(&yaml, std::path::Path::new("inline.yaml")).unwrap();
    let lab = Lab::start(seed).await.unwrap();
    assert_eq!(lab.guacamole_url(), format!("https://127.0.0.1:{port}/api"));
    let before = lab.clock().elapsed();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        lab.clock().elapsed(),
        before,
        "clock_scale 0 freezes the clock"
    );
    let mut c = lab_connect(&lab, &lab.guacamole_url()).await;
    c.write_all(b"POST /api/tokens HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(2), c.read_to_end(&mut buf))
        .await
        .unwrap();
    assert!(r.is_err(), "reset by the seeded fault");
    assert_eq!(lab.requests()[0].note.as_deref(), Some("fault:reset"));
    // The transport override shortens Tomcat's 20 s keep-alive.
    let mut c = lab_connect(&lab, &lab.guacamole_url()).await;
    assert!(closed_within(&mut c, Duration::from_secs(2)).await);
    lab.shutdown().await;
}

#[test]
fn readme_seed_example_parses() {
    let readme = include_str!("../README.md");
    let start = readme.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let yaml = &readme[start..start + readme[start..].find("```").unwrap()];
    let seed = LabSeed::from_yaml_str(yaml, std::path::Path::new("README.md")).unwrap();
    assert_eq!(seed.clusters.len(), 1);
    assert_eq!(seed.clusters[0].nodes.len(), 3);
    assert_eq!(seed.clusters[0].guests.len(), 4);
    assert_eq!(seed.guacamole.connections.len(), 1);
    assert_eq!(seed.faults.guacamole.rules.len(), 1);
    assert_eq!(seed.faults.proxmox["lab"].rules.len(), 2);
    assert_eq!(seed.port_base, Some(18000));
}

#[test]
fn seed_errors_name_file_and_line() {
    let path = std::env::temp_dir().join(format!("lab-seed-{}.yaml", std::process::id()));
    std::fs::write(&path, "clock_scale: 2\nguacamole:\n  versoin: \"1.5\"\n").unwrap();
    let err = LabSeed::from_yaml_file(&path).unwrap_err().to_string();
    std::fs::remove_file(&path).unwrap();
    assert!(err.starts_with(&format!("{}:3:", path.display())), "{err}");
    assert!(err.contains("versoin"), "{err}");

    let err = LabSeed::from_yaml_str(
        "faults:\n  proxmox:\n    nope: {}\n",
        std::path::Path::new("x.yaml"),
    )
    .unwrap_err();
    assert_eq!(err.label(), "seed_invalid");
    assert!(
        err.to_string().contains("unknown cluster \"nope\""),
        "{err}"
    );
}

#[tokio::test]
async fn a_cluster_seed_with_a_duplicate_vmid_is_refused_at_start() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut cluster = pve_guac_lab::proxmox::ClusterSeed::example("lab");
    let twin = cluster.guests[0].clone();
    cluster.guests.push(twin);
    let err =
        match pve_guac_lab::Lab::start(pve_guac_lab::LabSeed::with_clusters(vec![cluster])).await {
            Ok(_) => panic!("a duplicate VMID must be refused"),
            Err(e) => e.to_string(),
        };
    assert!(err.contains("100"), "{err}");
}

/// Reads until the server closes. Proxmox closes the TCP stream without a
/// TLS close_notify (as pve-http-server does), which rustls reports as an
/// unexpected EOF: for a close-delimited answer that is its end.
async fn read_until_close<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let start = buf.len();
    loop {
        match stream.read_buf(buf).await {
            Ok(0) => return Ok(buf.len() - start),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(buf.len() - start),
            Err(e) => return Err(e),
        }
    }
}
