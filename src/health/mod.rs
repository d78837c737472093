//! Metrics and health over HTTP for the daemon (`health.listen`, off by
//! default): `GET /healthz`, `GET /readyz`, `GET /metrics` in the
//! Prometheus text format, and the status page (`GET /`, `GET
//! /status.json`). Read-only; it serves counts, labels, names and ages,
//! never a secret, a guest's notes or a connection's parameters.
//!
//! The loop owns one [`Health`] (cheap to clone), calls
//! [`Health::record_cycle`] or [`Health::record_failure`] after every cycle
//! and [`Health::track_clients`] whenever it builds API clients; the status
//! page reads the daemon's [`DaemonStatus`] channel ([`Health::watch_status`]).
//! The listener ([`Health::bind`], then [`HealthListener::serve`]) reads the
//! same handle.

mod facts;
mod metrics;
mod page;
mod readiness;
mod requests;
mod routes;
mod server;
mod view;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

pub use facts::{Completed, CycleFacts, CycleOutcome};
pub use server::HealthListener;

use tokio::sync::watch;

use crate::daemon::DaemonStatus;
use crate::discovery::power::PowerUps;
use crate::reconcile::clients::Clients;
use crate::reconcile::cycle::CycleReport;
use metrics::Metrics;
use readiness::Readiness;
use requests::RequestCollector;

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("cannot listen on {addr} for health and metrics (health.listen): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl HealthError {
    pub fn label(&self) -> &'static str {
        match self {
            HealthError::Bind { .. } => "health_bind",
        }
    }
}

/// Where readiness and timestamps take the time from (tests move it by hand).
pub(crate) trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
    fn unix_seconds(&self) -> f64;
}

struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn unix_seconds(&self) -> f64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }
}

/// What the daemon tells the listener. Clones share everything.
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

struct Inner {
    metrics: Metrics,
    requests: RequestCollector,
    readiness: Mutex<Readiness>,
    clock: Arc<dyn Clock>,
    /// The daemon's status channel, for the status page.
    status: Mutex<Option<watch::Receiver<DaemonStatus>>>,
    /// The power-up machinery in force (replaced on some reloads).
    power: Mutex<Option<Arc<PowerUps>>>,
}

impl Health {
    /// `interval` is `sync.interval`, the unit of the readiness rule.
    pub fn new(interval: Duration) -> Health {
        Health::with_clock(interval, Arc::new(SystemClock))
    }

    pub(crate) fn with_clock(interval: Duration, clock: Arc<dyn Clock>) -> Health {
        let requests = RequestCollector::default();
        let metrics = Metrics::new(requests.clone());
        metrics.set_interval(interval);
        Health {
            inner: Arc::new(Inner {
                metrics,
                requests,
                readiness: Mutex::new(Readiness::new(interval)),
                clock,
                status: Mutex::new(None),
                power: Mutex::new(None),
            }),
        }
    }

    /// After a reload that changed `sync.interval`.
    pub fn set_interval(&self, interval: Duration) {
        self.inner.metrics.set_interval(interval);
        self.readiness().set_interval(interval);
    }

    /// Exports the request counters of these clients (call again after
    /// rebuilding any of them; counters already tracked are not added twice).
    pub fn track_clients(&self, clients: &Clients) {
        self.inner
            .requests
            .track(clients.guacamole.http().stats_source());
        for client in clients.proxmox.values() {
            self.inner.requests.track(client.http().stats_source());
        }
    }

    /// The status page shows what this channel carries.
    pub fn watch_status(&self, status: watch::Receiver<DaemonStatus>) {
        *lock(&self.inner.status) = Some(status);
    }

    /// The status page lists the guests these power-ups have under way.
    pub fn track_power_ups(&self, power: Arc<PowerUps>) {
        *lock(&self.inner.power) = Some(power);
    }

    /// What the status page and `/status.json` show, as of now.
    pub(crate) fn view(&self) -> view::StatusView {
        let status = lock(&self.inner.status)
            .as_ref()
            .map(|rx| rx.borrow().clone());
        let power_ups = lock(&self.inner.power)
            .as_ref()
            .map(|p| p.in_flight().into_iter().collect())
            .unwrap_or_default();
        view::build(view::Context {
            now: SystemTime::now(),
            ready: self.ready(),
            power_ups,
            status: status.as_ref(),
        })
    }

    /// After a cycle that ran to its end (errors inside it included).
    pub fn record_cycle(&self, report: &CycleReport) {
        self.record(&CycleFacts::from_report(report));
    }

    /// After a cycle that ended early with the error of this `label()`.
    pub fn record_failure(&self, label: &str, duration: Duration) {
        self.record(&CycleFacts::failed(label, duration));
    }

    pub fn record(&self, facts: &CycleFacts) {
        let clock = &self.inner.clock;
        self.inner.metrics.record(facts, clock.unix_seconds());
        let mut readiness = self.readiness();
        if facts.outcome.completed() {
            readiness.completed(clock.now());
        } else {
            let label = facts.errors.keys().next().map_or("unknown", String::as_str);
            readiness.failed(label);
        }
    }

    /// Graceful shutdown began: `/readyz` answers 503 from now on.
    pub fn stopping(&self) {
        self.readiness().stopping();
    }

    /// `Ok(())` when ready, else the reason.
    pub fn ready(&self) -> Result<(), String> {
        self.readiness().check(self.inner.clock.now())
    }

    /// The Prometheus text exposition of every metric.
    pub fn metrics_text(&self) -> String {
        self.inner.metrics.encode()
    }

    /// Binds the listener now (so a taken port fails at start); serve it with
    /// [`HealthListener::serve`].
    pub async fn bind(&self, addr: SocketAddr) -> Result<HealthListener, HealthError> {
        HealthListener::bind(addr, self.clone()).await
    }

    fn readiness(&self) -> MutexGuard<'_, Readiness> {
        self.inner
            .readiness
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
