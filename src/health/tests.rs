//! The exporter (parsed back from its text exposition) and the listener over
//! real TCP on 127.0.0.1, with a clock moved by hand.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::http::stats::{Outcome as Attempt, Stats};
use crate::reconcile::model::{DesiredConnection, GuestKey, Identity, Params};
use crate::reconcile::record::{ActionResult, CycleSummary, Outcome};

const INTERVAL: Duration = Duration::from_secs(60);

struct ManualClock {
    start: Instant,
    offset: Mutex<Duration>,
}

impl ManualClock {
    fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            start: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        })
    }
    fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap() += by;
    }
}

/// Wall time starts at 1 700 000 000 s and moves with the monotonic clock.
impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + *self.offset.lock().unwrap()
    }
    fn unix_seconds(&self) -> f64 {
        1_700_000_000.0 + self.offset.lock().unwrap().as_secs_f64()
    }
}

/// One sample of the exposition: metric name and labels.
type Series = (String, BTreeMap<String, String>);

/// Parses `name{a="x",b="y"} value` lines (label values here hold no
/// escaped quotes or commas).
fn parse(text: &str) -> BTreeMap<Series, f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').expect("closing brace");
                let labels = inner
                    .split(',')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').expect("label=value");
                        (k.to_owned(), v.trim_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        let value = value.parse().unwrap_or_else(|_| panic!("number in {line}"));
        assert!(out.insert((name, labels), value).is_none(), "twice: {line}");
    }
    out
}

fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parse(text).get(&(name.to_owned(), labels)).copied()
}

fn completed(changes: [u64; 6], pending: usize) -> Completed {
    let actions = [
        "create",
        "update",
        "delete",
        "rewrite_notes",
        "create_group",
        "delete_group",
    ];
    Completed {
        changes: std::array::from_fn(|i| (actions[i], changes[i])),
        pending,
        guests: 2,
        connections: 5,
    }
}

#[test]
fn exporter_counts_cycles_by_outcome_changes_errors_and_sets_the_gauges() {
    let clock = ManualClock::new();
    let health = Health::with_clock(INTERVAL, clock.clone());
    let m =
        |h: &Health, name: &str, labels: &[(&str, &str)]| sample(&h.metrics_text(), name, labels);

    // Changes left to the budget, no errors: a clean cycle.
    health.record(&CycleFacts {
        outcome: CycleOutcome::Pending,
        duration: Duration::from_millis(1500),
        errors: BTreeMap::new(),
        completed: Some(completed([3, 1, 0, 2, 1, 0], 4)),
    });
    let text = health.metrics_text();
    assert!(
        text.contains("# TYPE pve_guac_sync_cycles_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE pve_guac_sync_cycle_duration_seconds histogram\n"),
        "{text}"
    );
    assert_eq!(
        m(
            &health,
            "pve_guac_sync_cycles_total",
            &[("outcome", "pending")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m(
            &health,
            "pve_guac_sync_changes_total",
            &[("action", "create")]
        ),
        Some(3.0)
    );
    assert_eq!(
        m(
            &health,
            "pve_guac_sync_changes_total",
            &[("action", "update")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m(
            &health,
            "pve_guac_sync_changes_total",
            &[("action", "rewrite_notes")]
        ),
        Some(2.0)
    );
    assert_eq!(
        m(
            &health,
            "pve_guac_sync_changes_total",
            &[("action", "create_group")]
        ),
        Some(1.0)
    );
    // Actions that never happened have no series yet.
    assert_eq!(
        m(
            &health,
            "pve_guac_sync_changes_total",
            &[("action", "delete")]
        ),
        None
    );
    assert_eq!(m(&health, "pve_guac_sync_pending_changes", &[]), Some(4.0));
    assert_eq!(m(&health, "pve_guac_sync_guests_managed", &[]), Some(2.0));
    assert_eq!(
        m(&health, "pve_guac_sync_connections_managed", &[]),
        Some(5.0)
    );
    assert_eq!(
        m(&health, "pve_guac_sync_last_success_timestamp_seconds", &[]),
        Some(1_700_000_000.0)
    );
    assert_eq!(
        m(&health, "pve_guac_sync_cycle_duration_seconds_count", &[]),
        Some(1.0)
    );
    assert_eq!(
        m(&health, "pve_guac_sync_cycle_duration_seconds_sum", &[]),
        Some(1.5)
    );
    assert_eq!(
        m(
            &health,
            "pve_guac_sync_cycle_duration_seconds_bucket",
            &[("le", "1")]
        ),
        Some(0.0)
    );
    assert_eq!(
        m(
            &health,
            "pve_guac_sync_cycle_duration_seconds_bucket",
            &[("le", "2.5")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m(
            &health,
            "pve_guac_sync_cycle_duration_seconds_bucket",
            &[("le", "+Inf")]
        ),
        Some(1.0)
    );

    // A cycle with errors: changes add up, the last success stays where
    // it was.
    clock.advance(Duration::from_secs(60));
    health.record(&CycleFacts {
        outcome: CycleOutcome::Errors,
        duration: Duration::from_millis(200),
        errors: BTreeMap::from([
            ("guacamole_rejected".to_owned(), 1),
            ("observe_incomplete".to_owned(), 2),
        ]),
        completed: Some(completed([2, 0, 1, 0, 0, 0], 0)),
    });
    assert_eq!(
        m(
            &health,
            "pve_guac_sync_cycles_total",
            &[("outcome", "errors")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m(
            &health,
            "pve_guac_sync_changes_total",
            &[("action", "create")]
        ),
        Some(5.0)
    );
    assert_eq!(
        m(
            &health,
            "pve_guac_sync_changes_total",
            &[("action", "delete")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m(
            &health,
            "pve_guac_sync_errors_total",
            &[("label", "guacamole_rejected")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m(
            &health,
            "pve_guac_sync_errors_total",
            &[("label", "observe_incomplete")]
        ),
        Some(2.0)
    );
    assert_eq!(m(&health, "pve_guac_sync_pending_changes", &[]), Some(0.0));
    assert_eq!(
        m(&health, "pve_guac_sync_last_success_timestamp_seconds", &[]),
        Some(1_700_000_000.0)
    );

    // A failed cycle: counted with its label; the gauges keep the last
    // completed cycle's values.
    health.record_failure("guacamole_unreachable", Duration::from_secs(40));
    assert_eq!(
        m(
            &health,
            "pve_guac_sync_cycles_total",
            &[("outcome", "failed")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m(
            &health,
            "pve_guac_sync_cycles_total",
            &[("outcome", "pending")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m(&health, "pve_guac_sync_cycles_total", &[("outcome", "ok")]),
        None
    );
    assert_eq!(
        m(
            &health,
            "pve_guac_sync_errors_total",
            &[("label", "guacamole_unreachable")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m(&health, "pve_guac_sync_connections_managed", &[]),
        Some(5.0)
    );
    assert_eq!(
        m(&health, "pve_guac_sync_cycle_duration_seconds_count", &[]),
        Some(3.0)
    );
    assert_eq!(
        m(
            &health,
            "pve_guac_sync_cycle_duration_seconds_bucket",
            &[("le", "30")]
        ),
        Some(2.0)
    );

    clock.advance(Duration::from_secs(60));
    health.record(&CycleFacts {
        outcome: CycleOutcome::Ok,
        duration: Duration::from_millis(100),
        errors: BTreeMap::new(),
        completed: Some(completed([0; 6], 0)),
    });
    assert_eq!(
        m(&health, "pve_guac_sync_last_success_timestamp_seconds", &[]),
        Some(1_700_000_120.0)
    );
}

fn guest(vmid: u32) -> GuestKey {
    GuestKey {
        cluster: "lab".into(),
        vmid,
    }
}

fn wanted(vmid: u32, user: &str) -> (Identity, DesiredConnection) {
    let identity = Identity {
        guest: guest(vmid),
        user: user.into(),
        protocol: "ssh".into(),
        ordinal: 0,
    };
    let connection = DesiredConnection {
        identity: identity.clone(),
        name: format!("{user}@{vmid}"),
        group: Vec::new(),
        protocol: "ssh".into(),
        params: Params::default(),
        guest_name: format!("vm{vmid}"),
        node: "pve1".into(),
    };
    (identity, connection)
}

/// A report of cycle 1 with this summary and outcome, and nothing else.
fn report_of(summary: CycleSummary, duration_ms: u128, outcome: Outcome) -> CycleReport {
    CycleReport {
        summary,
        requests: BTreeMap::new(),
        duration_ms,
        degraded_clusters: Vec::new(),
        cycle: 1,
        problems: Vec::new(),
        plan: Default::default(),
        desired: Default::default(),
        tree: Default::default(),
        access: Default::default(),
        outcome,
    }
}

#[test]
fn facts_from_a_report_label_failed_actions_and_count_guests_once() {
    let mut report = report_of(
        CycleSummary {
            created: 2,
            updated: 1,
            deleted: 1,
            notes_rewritten: 1,
            pending: 3,
            errors: 4,
            ..CycleSummary::default()
        },
        2500,
        Outcome {
            results: vec![
                ActionResult::Done { id: None },
                ActionResult::Failed {
                    error: "guacamole_conflict".into(),
                    message: "m".into(),
                },
                ActionResult::Failed {
                    error: "notes_digest_mismatch".into(),
                    message: "m".into(),
                },
                ActionResult::Failed {
                    error: "guacamole_conflict".into(),
                    message: "m".into(),
                },
                ActionResult::Deferred,
            ],
        },
    );
    report.desired.connections = [wanted(100, "a"), wanted(100, "b"), wanted(101, "a")]
        .into_iter()
        .collect();
    let facts = CycleFacts::from_report(&report);
    assert_eq!(facts.outcome, CycleOutcome::Errors);
    assert_eq!(facts.duration, Duration::from_millis(2500));
    assert_eq!(
        facts.errors,
        BTreeMap::from([
            ("guacamole_conflict".to_owned(), 2),
            ("notes_digest_mismatch".to_owned(), 1),
            // Four errors in the summary, three from actions: one source
            // was not fully read.
            ("observe_incomplete".to_owned(), 1),
        ])
    );
    let done = facts.completed.unwrap();
    assert_eq!((done.guests, done.connections, done.pending), (2, 3, 3));
    assert_eq!(
        done.changes,
        [
            ("create", 2),
            ("update", 1),
            ("delete", 1),
            ("rewrite_notes", 1),
            ("create_group", 0),
            ("delete_group", 0)
        ]
    );

    // The same words as the journal and STATUS= use.
    report.summary.errors = 0;
    report.outcome.results.clear();
    assert_eq!(
        CycleFacts::from_report(&report).outcome,
        CycleOutcome::Pending
    );
    for errors in [0, 1] {
        for pending in [0, 2] {
            for dry_run in [false, true] {
                report.summary.errors = errors;
                report.summary.pending = pending;
                report.summary.dry_run = dry_run;
                assert_eq!(
                    CycleFacts::from_report(&report).outcome.as_str(),
                    crate::daemon::status::outcome_of(&report)
                );
            }
        }
    }
}

#[test]
fn request_counters_come_from_the_http_layer_and_survive_client_rebuilds() {
    let health = Health::new(INTERVAL);
    let old = Arc::new(Stats::default());
    let ms = Duration::from_millis(3);
    old.record(
        "proxmox:lab",
        "GET /cluster/resources",
        Attempt::Status(200),
        ms,
        false,
    );
    old.record(
        "proxmox:lab",
        "GET /cluster/resources",
        Attempt::Status(200),
        ms,
        false,
    );
    old.record(
        "proxmox:lab",
        "GET /cluster/resources",
        Attempt::Failed,
        ms,
        false,
    );
    old.record(
        "guacamole",
        "GET /session/data/{ds}/connectionGroups/{id}/tree",
        Attempt::Status(403),
        ms,
        false,
    );
    health.inner.requests.track(old.clone());
    health.inner.requests.track(old.clone());
    let text = health.metrics_text();
    assert!(
        text.contains("# TYPE pve_guac_sync_requests_total counter\n"),
        "{text}"
    );
    let n = |text: &str, api, endpoint, status| {
        sample(
            text,
            "pve_guac_sync_requests_total",
            &[("api", api), ("endpoint", endpoint), ("status", status)],
        )
    };
    assert_eq!(
        n(&text, "proxmox:lab", "GET /cluster/resources", "200"),
        Some(2.0)
    );
    assert_eq!(
        n(&text, "proxmox:lab", "GET /cluster/resources", "none"),
        Some(1.0)
    );
    assert_eq!(
        n(
            &text,
            "guacamole",
            "GET /session/data/{ds}/connectionGroups/{id}/tree",
            "403"
        ),
        Some(1.0)
    );

    // A rebuilt client starts at zero; the sum goes on from the old one.
    let new = Arc::new(Stats::default());
    new.record(
        "proxmox:lab",
        "GET /cluster/resources",
        Attempt::Status(200),
        ms,
        false,
    );
    health.inner.requests.track(new);
    let text = health.metrics_text();
    assert_eq!(
        n(&text, "proxmox:lab", "GET /cluster/resources", "200"),
        Some(3.0)
    );
    // Recorded after the scrape before: read live.
    old.record(
        "proxmox:lab",
        "GET /cluster/resources",
        Attempt::Status(200),
        ms,
        false,
    );
    assert_eq!(
        n(
            &health.metrics_text(),
            "proxmox:lab",
            "GET /cluster/resources",
            "200"
        ),
        Some(4.0)
    );
}

// ── Listener ───────────────────────────────────────────────────────────────

struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request` as is and reads until the server closes.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Answer {
    let io = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), io)
        .await
        .expect("answer within 10 s");
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let status = head[9..12].parse().unwrap();
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    exchange(addr, request.as_bytes()).await
}

async fn start(health: &Health) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
    let listener = health.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(listener.serve(cancel.clone()));
    (addr, cancel, task)
}

#[tokio::test]
async fn listener_serves_each_endpoint_and_readiness_follows_the_cycles() {
    let clock = ManualClock::new();
    let health = Health::with_clock(INTERVAL, clock.clone());
    let (addr, cancel, task) = start(&health).await;

    let a = get(addr, "/healthz").await;
    assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
    let a = get(addr, "/readyz").await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (503, "not ready: no cycle has completed yet\n")
    );

    health.record_failure("guacamole_unreachable", Duration::from_secs(1));
    let a = get(addr, "/readyz").await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (
            503,
            "not ready: no cycle has completed yet; the last cycle failed: guacamole_unreachable\n"
        )
    );

    health.record(&CycleFacts {
        outcome: CycleOutcome::Ok,
        duration: Duration::from_secs(1),
        errors: BTreeMap::new(),
        completed: Some(completed([1, 0, 0, 0, 0, 0], 0)),
    });
    let a = get(addr, "/readyz").await;
    assert_eq!((a.status, a.body.as_str()), (200, "ready\n"));
    clock.advance(3 * INTERVAL);
    assert_eq!(get(addr, "/readyz").await.status, 200);
    clock.advance(Duration::from_secs(1));
    let a = get(addr, "/readyz").await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (
            503,
            "not ready: the last completed cycle ended 3m 1s ago, more than 3 sync intervals (3m)\n"
        )
    );
    health.record(&CycleFacts {
        outcome: CycleOutcome::Errors,
        duration: Duration::from_secs(1),
        errors: BTreeMap::from([("observe_incomplete".to_owned(), 1)]),
        completed: Some(completed([0; 6], 0)),
    });
    assert_eq!(
        get(addr, "/readyz").await.status,
        200,
        "a cycle with errors completed"
    );

    let a = get(addr, "/metrics").await;
    assert_eq!(a.status, 200);
    assert!(
        a.head
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{}",
        a.head
    );
    assert_eq!(
        sample(&a.body, "pve_guac_sync_cycles_total", &[("outcome", "ok")]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &a.body,
            "pve_guac_sync_cycles_total",
            &[("outcome", "errors")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &a.body,
            "pve_guac_sync_cycles_total",
            &[("outcome", "failed")]
        ),
        Some(1.0)
    );

    health.stopping();
    let a = get(addr, "/readyz").await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (503, "not ready: shutting down\n")
    );

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops when cancelled")
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the port is closed"
    );
}

#[tokio::test]
async fn listener_refuses_other_methods_paths_and_oversized_requests() {
    let health = Health::new(INTERVAL);
    let (addr, cancel, _task) = start(&health).await;

    let a = get(addr, "/index.html").await;
    assert_eq!((a.status, a.body.as_str()), (404, "not found\n"));
    assert_eq!(get(addr, "/metrics/../secret").await.status, 404);
    // The status page is read-only too.
    let a = exchange(
        addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(a.status, 405);
    let a = exchange(addr, b"DELETE /status.json HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(a.status, 405);

    let a = exchange(
        addr,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
    )
    .await;
    assert_eq!(a.status, 405);
    assert!(
        a.head.to_ascii_lowercase().contains("allow: get, head"),
        "{}",
        a.head
    );
    assert_eq!(
        exchange(addr, b"DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .status,
        405
    );

    let a = exchange(addr, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!((a.status, a.body.as_str()), (200, ""));

    // A query string does not change the page.
    assert_eq!(get(addr, "/healthz?verbose=1").await.status, 200);

    // A request head beyond 8 KiB is refused, not buffered.
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let a = exchange(addr, big.as_bytes()).await;
    assert_eq!(a.status, 431);

    // Garbage gets an error status and a closed connection, and the
    // listener keeps serving.
    assert_eq!(
        exchange(addr, b"\x16\x03\x01 not http\r\n\r\n")
            .await
            .status,
        400
    );
    assert_eq!(get(addr, "/healthz").await.status, 200);
    cancel.cancel();
}

#[tokio::test]
async fn a_taken_port_is_an_error_naming_the_address() {
    let health = Health::new(INTERVAL);
    let first = health.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = first.local_addr();
    let Err(e) = health.bind(addr).await else {
        panic!("bound twice")
    };
    assert_eq!(e.label(), "health_bind");
    assert!(
        e.to_string().starts_with(&format!(
            "cannot listen on {addr} for health and metrics (health.listen): "
        )),
        "{e}"
    );
}

#[test]
fn a_retained_report_keeps_what_the_status_page_reads_and_no_password() {
    use crate::reconcile::model::{ManagedConnection, ParamValue};
    use crate::reconcile::plan::{Action, PlannedAction};
    const PASSWORD: &str = "retained-report-pw";
    let (identity, mut connection) = wanted(100, "a");
    connection
        .params
        .insert("password", ParamValue::secret(PASSWORD));
    let mut report = report_of(
        CycleSummary {
            pending: 1,
            ..CycleSummary::default()
        },
        10,
        Outcome {
            results: vec![ActionResult::Deferred],
        },
    );
    report.plan.actions.push(PlannedAction {
        action: Action::Create {
            identity: identity.clone(),
            connection: connection.clone(),
        },
        reason: "new credential block".into(),
    });
    report
        .desired
        .connections
        .insert(identity.clone(), connection);
    report.tree.connections.insert(
        "7".into(),
        ManagedConnection {
            id: "7".into(),
            name: "a@100".into(),
            group: Vec::new(),
            protocol: "ssh".into(),
            params: Some(report.desired.connections[&identity].params.clone()),
            outside: false,
            attributes: BTreeMap::new(),
        },
    );
    let facts_before = CycleFacts::from_report(&report);

    let kept = report.retained();

    // What the page and the metrics read is all there.
    assert_eq!(CycleFacts::from_report(&kept), facts_before);
    assert_eq!(kept.desired.connections[&identity].name, "a@100");
    assert_eq!(kept.plan.actions[0].action.connection_name(), Some("a@100"));
    // No parameter survives, so no password either.
    assert!(kept.desired.connections[&identity].params.is_empty());
    let Action::Create { connection, .. } = &kept.plan.actions[0].action else {
        panic!("the planned create is kept");
    };
    assert!(connection.params.is_empty());
    assert!(kept.tree.connections.is_empty());
}
