//! How many requests per second the lab sustains on one core.
//!
//! The lab runs on a single-threaded Tokio runtime in its own thread; the load
//! generator runs on another thread with keep-alive connections (reconnecting
//! whenever the server closes, e.g. after Proxmox's 100 requests per
//! connection). Run with:
//!
//!     cargo run --release -p pve-guac-lab --example lab_bench -- [SECONDS] [CONNECTIONS] [GUESTS]
//!
//! The default example seed is measured first, then a large one (GUESTS
//! guests over three nodes and as many Guacamole connections, default 3000).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pve_guac_lab::guacamole::{ConnectionSeed, GuacamoleSeed};
use pve_guac_lab::proxmox::{ClusterSeed, GuestSeed, TokenSeed};
use pve_guac_lab::{Lab, LabSeed};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

struct Target {
    name: &'static str,
    addr: String,
    request: String,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let connections: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let guests: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3000);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let length = Duration::from_secs(seconds);

    println!("== default seed");
    bench(
        LabSeed {
            auth_delay: Some(false),
            ..LabSeed::default()
        },
        connections,
        length,
    );
    println!("== {guests} guests, {guests} Guacamole connections");
    bench(large_seed(guests), connections, length);
}

/// `guests` VMs over three nodes, and as many Guacamole connections.
fn large_seed(guests: u32) -> LabSeed {
    let mut cluster = ClusterSeed::new("big")
        .node("pve1")
        .node("pve2")
        .node("pve3")
        .token(
            TokenSeed::new("root@pam", "bench", "11111111-2222-4333-8444-555555555555")
                .privsep(false),
        )
        .auth_delay(false);
    let mut guac = GuacamoleSeed::default();
    for i in 0..guests {
        let vmid = 100 + i;
        let node = format!("pve{}", i % 3 + 1);
        let name = format!("vm{vmid}");
        let mut guest = GuestSeed::vm(vmid, &name, &node)
            .notes("user:\"admin\" pass:\"pw\" protos:\"rdp,ssh\";")
            .nic(
                &format!(
                    "BC:24:11:{:02X}:{:02X}:{:02X}",
                    i >> 16 & 0xff,
                    i >> 8 & 0xff,
                    i & 0xff
                ),
                "192.0.2.10/24",
            );
        if i % 2 == 0 {
            guest = guest.running();
        }
        cluster = cluster.guest(guest);
        guac = guac.connection(
            ConnectionSeed::new(format!("{name}-rdp"), "rdp")
                .parameter("hostname", "192.0.2.10")
                .parameter("port", "3389"),
        );
    }
    LabSeed {
        clusters: vec![cluster],
        guacamole: guac,
        ..LabSeed::default()
    }
}

fn bench(seed: LabSeed, connections: usize, length: Duration) {
    // The lab on one core.
    let (info_tx, info_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let lab_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let lab = Lab::start(seed).await.expect("lab starts");
            let cluster = lab.cluster_names()[0].clone();
            let (token_id, secret) = lab.proxmox(&cluster).primary_token();
            let (user, password) = lab.guacamole().admin_credentials();
            info_tx
                .send((
                    lab.startup_time(),
                    lab.proxmox_url(&cluster),
                    format!("PVEAPIToken={token_id}={secret}"),
                    lab.guacamole_url(),
                    (user, password),
                    lab.cert_pem().to_string(),
                ))
                .unwrap();
            let _ = stop_rx.await;
            let total = lab.request_log().total();
            lab.shutdown().await;
            total
        })
    });
    let (startup, pve_url, pve_auth, guac_url, (user, password), pem) = info_rx.recv().unwrap();
    println!("lab start: {:.1} ms", startup.as_secs_f64() * 1000.0);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let connector = connector(&pem);
        let (guac_addr, guac_base) = split_url(&guac_url);
        let token = guac_login(&connector, &guac_addr, &guac_base, &user, &password).await;
        let (pve_addr, _) = split_url(&pve_url);
        let targets = [
            Target {
                name: "proxmox GET /api2/json/version",
                addr: pve_addr.clone(),
                request: format!(
                    "GET /api2/json/version HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {pve_auth}\r\n\r\n"
                ),
            },
            Target {
                name: "proxmox GET /api2/json/cluster/resources?type=vm",
                addr: pve_addr.clone(),
                request: format!(
                    "GET /api2/json/cluster/resources?type=vm HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {pve_auth}\r\n\r\n"
                ),
            },
            Target {
                name: "guacamole GET connections",
                addr: guac_addr.clone(),
                request: format!(
                    "GET {guac_base}/session/data/postgresql/connections HTTP/1.1\r\nHost: 127.0.0.1\r\nGuacamole-Token: {token}\r\n\r\n"
                ),
            },
        ];
        for target in &targets {
            run(target, &connector, connections, length).await;
        }
    });
    stop_tx.send(()).unwrap();
    let total = lab_thread.join().unwrap();
    println!("requests recorded by the lab: {total}");
}

async fn run(target: &Target, connector: &TlsConnector, connections: usize, length: Duration) {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + length;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (connector, done, errors) = (connector.clone(), done.clone(), errors.clone());
        let (addr, request) = (target.addr.clone(), target.request.clone());
        tasks.push(tokio::spawn(async move {
            let mut buf = Vec::with_capacity(64 * 1024);
            while Instant::now() < deadline {
                let mut stream = connect(&connector, &addr).await;
                loop {
                    if Instant::now() >= deadline {
                        return;
                    }
                    match exchange(&mut stream, request.as_bytes(), &mut buf).await {
                        Some((status, close)) => {
                            if status == 200 {
                                done.fetch_add(1, Ordering::Relaxed);
                            } else {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                            if close {
                                break;
                            }
                        }
                        None => break,
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = done.load(Ordering::Relaxed);
    println!(
        "{:<52} {:>9.0} req/s  ({n} ok, {} errors, {connections} connections, {:?})",
        target.name,
        n as f64 / length.as_secs_f64(),
        errors.load(Ordering::Relaxed),
        length
    );
}

/// `https://127.0.0.1:PORT/base` → (`127.0.0.1:PORT`, `/base`).
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("https://").unwrap();
    match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), String::new()),
    }
}

fn connector(pem: &str) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn connect(connector: &TlsConnector, addr: &str) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap()
}

/// Send one request, read its response; `(status, server closes)`.
async fn exchange(
    stream: &mut TlsStream<TcpStream>,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> Option<(u16, bool)> {
    stream.write_all(request).await.ok()?;
    buf.clear();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if stream.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .ok()?
        .to_ascii_lowercase();
    let status = head.get(9..12)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + 4 + length {
        if stream.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
    Some((status, head.contains("connection: close")))
}

async fn guac_login(
    connector: &TlsConnector,
    addr: &str,
    base: &str,
    user: &str,
    password: &str,
) -> String {
    let mut stream = connect(connector, addr).await;
    let body = format!("username={user}&password={password}");
    let request = format!(
        "POST {base}/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut buf = Vec::new();
    let (status, _) = exchange(&mut stream, request.as_bytes(), &mut buf)
        .await
        .expect("login answered");
    assert_eq!(status, 200, "guacamole login");
    let text = String::from_utf8_lossy(&buf);
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["authToken"].as_str().unwrap().to_string()
}
