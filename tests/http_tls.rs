//! The shared HTTP layer against the lab: TLS trust modes, reason phrases,
//! retries with `Retry-After`, timeouts, the size cap and statistics.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::{Duration, Instant};

use pve_guac_lab::{FaultRule, Lab, LabSeed};
use pve_guac_sync::http::tls::parse_fingerprint;
use pve_guac_sync::http::{
    Http, HttpConfig, HttpError, HttpRequest, RetryPolicy, TimeoutPhase, TlsMode,
};
use reqwest::Method;

async fn lab() -> Lab {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Lab::start(LabSeed::default()).await.expect("lab starts")
}

fn config(tls: TlsMode) -> HttpConfig {
    let mut cfg = HttpConfig::new("proxmox:lab", tls);
    cfg.connect_timeout = Duration::from_secs(2);
    cfg.request_timeout = Duration::from_secs(5);
    cfg.retry = RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(20),
        cap: Duration::from_secs(2),
    };
    cfg
}

fn pinned(lab: &Lab) -> TlsMode {
    TlsMode::PinnedSha256(parse_fingerprint(&lab.fingerprint_sha256()).unwrap())
}

fn version_request(lab: &Lab) -> HttpRequest {
    let (id, secret) = lab.proxmox("lab").primary_token();
    let url = format!("{}/api2/json/version", lab.proxmox_url("lab"))
        .parse()
        .unwrap();
    HttpRequest::new(Method::GET, url, "GET /version")
        .header("Authorization", format!("PVEAPIToken={id}={secret}"))
}

fn proxmox_requests(lab: &Lab) -> usize {
    lab.requests()
        .iter()
        .filter(|r| r.server.starts_with("proxmox:"))
        .count()
}

#[tokio::test]
async fn right_pin_is_accepted() {
    let lab = lab().await;
    let http = Http::new(config(pinned(&lab))).unwrap();
    let resp = http.execute(version_request(&lab)).await.unwrap();
    assert_eq!(resp.status, 200);
    let body: serde_json::Value = resp.json().unwrap();
    assert!(body["data"]["version"].as_str().is_some(), "{body}");
    assert_eq!(http.request_count(), 1);
}

#[tokio::test]
async fn wrong_pin_is_refused_before_anything_is_sent() {
    let lab = lab().await;
    let mut wrong = lab.fingerprint_bytes();
    wrong[0] ^= 0xFF;
    let http = Http::new(config(TlsMode::PinnedSha256(wrong))).unwrap();
    let err = http.execute(version_request(&lab)).await.unwrap_err();
    match &err {
        HttpError::Tls { reason, host, .. } => {
            assert_eq!(
                reason,
                "certificate fingerprint does not match the pinned fingerprint"
            );
            assert!(host.starts_with("127.0.0.1:"), "{host}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert_eq!(err.label(), "tls");
    assert!(err.never_sent());
    assert_eq!(proxmox_requests(&lab), 0, "no request may reach the server");
    // The message carries neither the token nor the URL path.
    let text = err.to_string();
    let (_, secret) = lab.proxmox("lab").primary_token();
    assert!(
        !text.contains(&secret) && !text.contains("/api2/json"),
        "{text}"
    );
}

#[tokio::test]
async fn unpinned_self_signed_certificate_is_not_trusted() {
    let lab = lab().await;
    let http = Http::new(config(TlsMode::SystemRoots)).unwrap();
    let err = http.execute(version_request(&lab)).await.unwrap_err();
    match &err {
        HttpError::Tls { reason, .. } => assert!(
            reason.starts_with("certificate not trusted"),
            "unexpected reason: {reason}"
        ),
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert_eq!(proxmox_requests(&lab), 0);
}

#[tokio::test]
async fn ca_file_with_the_lab_certificate_is_accepted() {
    let lab = lab().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("lab-ca.pem");
    std::fs::write(&ca, lab.cert_pem()).unwrap();
    let http = Http::new(config(TlsMode::CaFile(ca))).unwrap();
    let resp = http.execute(version_request(&lab)).await.unwrap();
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn bad_ca_file_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("empty.pem");
    std::fs::write(&ca, "not a certificate\n").unwrap();
    let err = Http::new(config(TlsMode::CaFile(ca))).unwrap_err();
    assert_eq!(err.label(), "config");
    assert!(
        err.to_string().contains("holds no PEM certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn insecure_mode_connects() {
    let lab = lab().await;
    let http = Http::new(config(TlsMode::Insecure)).unwrap();
    assert_eq!(
        http.execute(version_request(&lab)).await.unwrap().status,
        200
    );
}

#[tokio::test]
async fn empty_401_exposes_the_reason_phrase() {
    let lab = lab().await;
    let http = Http::new(config(pinned(&lab))).unwrap();
    let url = format!("{}/api2/json/version", lab.proxmox_url("lab"))
        .parse()
        .unwrap();
    let resp = http
        .execute(HttpRequest::new(Method::GET, url, "GET /version"))
        .await
        .unwrap();
    assert_eq!(resp.status, 401);
    assert_eq!(resp.reason.as_deref(), Some("No ticket"));
    assert!(resp.body.is_empty());
}

#[tokio::test]
async fn retry_after_is_honoured_for_429_and_503() {
    let lab = lab().await;
    let http = Http::new(config(pinned(&lab))).unwrap();
    for status in [429, 503] {
        let faults = lab.faults("lab");
        faults.clear();
        faults.add(
            FaultRule::retry_after(status, 1)
                .path_prefix("/api2/json/version")
                .times(1),
        );
        let started = Instant::now();
        let resp = http.execute(version_request(&lab)).await.unwrap();
        let waited = started.elapsed();
        assert_eq!(resp.status, 200, "retried after {status}");
        assert!(
            waited >= Duration::from_millis(950),
            "Retry-After: 1 must be waited for, waited {waited:?}"
        );
        assert!(waited < Duration::from_secs(3), "{waited:?}");
    }
    let stats = http.stats();
    let version = stats.iter().find(|s| s.endpoint == "GET /version").unwrap();
    assert_eq!(version.count, 4);
    assert_eq!(version.retries, 2);
    assert_eq!(version.statuses.get(&429), Some(&1));
    assert_eq!(version.statuses.get(&503), Some(&1));
    assert_eq!(version.statuses.get(&200), Some(&2));
    assert_eq!(version.http_errors, 2);
}

#[tokio::test]
async fn retry_after_longer_than_the_cap_returns_the_answer() {
    let lab = lab().await;
    let http = Http::new(config(pinned(&lab))).unwrap(); // cap 2 s
    lab.faults("lab").add(
        FaultRule::retry_after(429, 30)
            .path_prefix("/api2/json/version")
            .times(1),
    );
    let started = Instant::now();
    let resp = http.execute(version_request(&lab)).await.unwrap();
    assert_eq!(resp.status, 429);
    assert_eq!(resp.retry_after(), Some(Duration::from_secs(30)));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(http.request_count(), 1);
}

#[tokio::test]
async fn a_long_retry_after_is_honoured_by_every_later_request() {
    let lab = lab().await;
    let http = Http::new(config(pinned(&lab))).unwrap(); // cap 2 s
    lab.faults("lab").add(
        FaultRule::retry_after(503, 30)
            .path_prefix("/api2/json/version")
            .times(1),
    );
    let resp = http.execute(version_request(&lab)).await.unwrap();
    assert_eq!(resp.status, 503);
    let left = http.paused_for().expect("the client is paused");
    assert!(
        left > Duration::from_secs(28) && left <= Duration::from_secs(30),
        "{left:?}"
    );
    // Not dropped: the next request is refused without reaching the server.
    let err = http.execute(version_request(&lab)).await.unwrap_err();
    assert_eq!(err.label(), "paused", "{err}");
    assert!(err.never_sent());
    assert_eq!(proxmox_requests(&lab), 1);
}

#[tokio::test]
async fn a_retry_after_pauses_the_whole_client_not_one_request() {
    let lab = lab().await;
    let http = Http::new(config(pinned(&lab))).unwrap();
    lab.faults("lab").add(
        FaultRule::retry_after(429, 1)
            .path_prefix("/api2/json/version")
            .times(1),
    );
    let first = {
        let http = http.clone();
        let req = version_request(&lab);
        tokio::spawn(async move { http.execute(req).await })
    };
    // Wait until the 429 has arrived, then send another request.
    let deadline = Instant::now() + Duration::from_secs(2);
    while http.paused_for().is_none() {
        assert!(Instant::now() < deadline, "no pause was set");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    let (id, secret) = lab.proxmox("lab").primary_token();
    let url = format!("{}/api2/json/nodes", lab.proxmox_url("lab"))
        .parse()
        .unwrap();
    let other = HttpRequest::new(Method::GET, url, "GET /nodes")
        .header("Authorization", format!("PVEAPIToken={id}={secret}"));
    assert_eq!(http.execute(other).await.unwrap().status, 200);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(700),
        "another request must wait for the pause too, waited {waited:?}"
    );
    assert_eq!(first.await.unwrap().unwrap().status, 200);
}

#[tokio::test]
async fn shutdown_ends_a_retry_pause_early() {
    let lab = lab().await;
    let mut cfg = config(pinned(&lab));
    cfg.retry.cap = Duration::from_secs(10);
    let cancel = cfg.cancel.clone();
    let http = Http::new(cfg).unwrap();
    lab.faults("lab").add(
        FaultRule::retry_after(503, 8)
            .path_prefix("/api2/json/version")
            .times(1),
    );
    let started = Instant::now();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
    });
    let err = http.execute(version_request(&lab)).await.unwrap_err();
    assert_eq!(err.label(), "cancelled", "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(proxmox_requests(&lab), 1);
    canceller.await.unwrap();
}

#[tokio::test]
async fn retry_after_as_http_date() {
    let lab = lab().await;
    let http = Http::new(config(pinned(&lab))).unwrap();
    let mut rule = FaultRule::retry_after(503, 1)
        .path_prefix("/api2/json/version")
        .times(1);
    if let pve_guac_lab::FaultAction::RetryAfter { http_date, .. } = &mut rule.action {
        *http_date = true;
    }
    lab.faults("lab").add(rule);
    let resp = http.execute(version_request(&lab)).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(http.request_count(), 2);
}

#[tokio::test]
async fn non_idempotent_request_is_not_retried_on_503() {
    let lab = lab().await;
    let http = Http::new(config(pinned(&lab))).unwrap();
    lab.faults("lab")
        .add(FaultRule::retry_after(503, 0).method("POST").times(1));
    let (id, secret) = lab.proxmox("lab").primary_token();
    let url = format!(
        "{}/api2/json/nodes/pve1/qemu/104/status/start",
        lab.proxmox_url("lab")
    )
    .parse()
    .unwrap();
    let req = HttpRequest::new(Method::POST, url, "POST start")
        .header("Authorization", format!("PVEAPIToken={id}={secret}"));
    let resp = http.execute(req).await.unwrap();
    assert_eq!(resp.status, 503);
    assert_eq!(http.request_count(), 1);
}

#[tokio::test]
async fn connection_reset_is_retried_for_idempotent_requests() {
    let lab = lab().await;
    let http = Http::new(config(pinned(&lab))).unwrap();
    lab.faults("lab").add(
        FaultRule::reset()
            .path_prefix("/api2/json/version")
            .times(2),
    );
    let resp = http.execute(version_request(&lab)).await.unwrap();
    assert_eq!(resp.status, 200);
    let stats = http.stats();
    assert_eq!(stats[0].errors, 2);
    assert_eq!(stats[0].count, 3);
}

#[tokio::test]
async fn hanging_server_times_out() {
    let lab = lab().await;
    let mut cfg = config(pinned(&lab));
    cfg.request_timeout = Duration::from_millis(300);
    cfg.retry.max_attempts = 2;
    let http = Http::new(cfg).unwrap();
    lab.faults("lab")
        .add(FaultRule::hang().path_prefix("/api2/json/version"));
    let started = Instant::now();
    let err = http.execute(version_request(&lab)).await.unwrap_err();
    assert!(
        matches!(
            err,
            HttpError::Timeout {
                phase: TimeoutPhase::Request,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.label(), "timeout");
    assert_eq!(http.request_count(), 2, "GET is retried once");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn response_size_cap_stops_reading() {
    let lab = lab().await;
    let mut cfg = config(pinned(&lab));
    cfg.max_response_bytes = 256;
    let http = Http::new(cfg).unwrap();
    let (id, secret) = lab.proxmox("lab").primary_token();
    let url = format!("{}/api2/json/cluster/resources", lab.proxmox_url("lab"))
        .parse()
        .unwrap();
    let req = HttpRequest::new(Method::GET, url, "GET /cluster/resources")
        .header("Authorization", format!("PVEAPIToken={id}={secret}"));
    let err = http.execute(req).await.unwrap_err();
    assert!(
        matches!(err, HttpError::ResponseTooLarge { limit: 256, .. }),
        "{err:?}"
    );
    assert_eq!(http.request_count(), 1, "a too large answer is not retried");
}

#[tokio::test]
async fn rate_limit_and_concurrency_shape_the_traffic() {
    let lab = lab().await;
    let mut cfg = config(pinned(&lab));
    cfg.rate_limit_per_sec = NonZeroU32::new(10);
    cfg.burst = NonZeroU32::new(2).unwrap();
    cfg.concurrency = NonZeroUsize::new(1).unwrap();
    let http = Http::new(cfg).unwrap();
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..6 {
        let http = http.clone();
        let req = version_request(&lab);
        handles.push(tokio::spawn(async move { http.execute(req).await }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap().unwrap().status, 200);
    }
    // Burst of 2, then 4 more at 100 ms intervals.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(350), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(http.request_count(), 6);
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A port nothing listens on: bind, read the port, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cfg = config(TlsMode::Insecure);
    cfg.retry.max_attempts = 2;
    let http = Http::new(cfg).unwrap();
    let url = format!("https://127.0.0.1:{port}/api2/json/version")
        .parse()
        .unwrap();
    let err = http
        .execute(HttpRequest::new(Method::GET, url, "GET /version"))
        .await
        .unwrap_err();
    assert_eq!(err.label(), "connect", "{err:?}");
    assert!(err.never_sent() && err.is_endpoint_failure());
    assert_eq!(http.request_count(), 2);
}
