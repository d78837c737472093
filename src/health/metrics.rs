//! The Prometheus metrics of the daemon, all prefixed `pve_guac_sync_`, and
//! their text exposition (format 0.0.4).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::facts::CycleFacts;
use super::requests::RequestCollector;

pub(crate) const PREFIX: &str = "pve_guac_sync";

/// `Content-Type` of [`Metrics::encode`]'s output.
pub(crate) const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the cycle duration buckets: a steady cycle takes
/// well under a second, a first sync of a large site minutes.
const DURATION_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    label: String,
}

pub(crate) struct Metrics {
    registry: Registry,
    cycles: Family<OutcomeLabels, Counter>,
    cycle_duration: Histogram,
    changes: Family<ActionLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    pending: Gauge,
    guests: Gauge,
    connections: Gauge,
    last_success: Gauge<f64, AtomicU64>,
    interval: Gauge<f64, AtomicU64>,
}

impl Metrics {
    pub fn new(requests: RequestCollector) -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let m = Metrics {
            cycles: Family::default(),
            cycle_duration: Histogram::new(DURATION_BUCKETS),
            changes: Family::default(),
            errors: Family::default(),
            pending: Gauge::default(),
            guests: Gauge::default(),
            connections: Gauge::default(),
            last_success: Gauge::default(),
            interval: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "cycles",
            "Reconcile cycles by outcome: ok, pending (the change budget left work), errors \
             (completed with errors), failed (stopped early)",
            m.cycles.clone(),
        );
        registry.register_with_unit(
            "cycle_duration",
            "Duration of reconcile cycles, failed ones included",
            Unit::Seconds,
            m.cycle_duration.clone(),
        );
        registry.register(
            "changes",
            "Changes made to Guacamole and to guest notes, by action",
            m.changes.clone(),
        );
        registry.register(
            "errors",
            "Errors by stable label: failed actions, incomplete observations, failed cycles",
            m.errors.clone(),
        );
        registry.register(
            "pending_changes",
            "Planned changes left for a later cycle after the last completed cycle",
            m.pending.clone(),
        );
        registry.register(
            "guests_managed",
            "Guests with at least one desired connection after the last completed cycle",
            m.guests.clone(),
        );
        registry.register(
            "connections_managed",
            "Connections the configuration and notes ask for after the last completed cycle",
            m.connections.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time at which the last cycle without errors ended",
            m.last_success.clone(),
        );
        registry.register_with_unit(
            "sync_interval",
            "sync.interval in force (the unit of the readiness rule and of the alert on stale \
             cycles)",
            Unit::Seconds,
            m.interval.clone(),
        );
        registry.register_collector(Box::new(requests));
        Metrics { registry, ..m }
    }

    pub fn record(&self, facts: &CycleFacts, ended_unix: f64) {
        let outcome = facts.outcome;
        self.cycles
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
        self.cycle_duration.observe(facts.duration.as_secs_f64());
        for (label, n) in &facts.errors {
            self.errors
                .get_or_create(&ErrorLabels {
                    label: label.clone(),
                })
                .inc_by(*n);
        }
        let Some(done) = &facts.completed else {
            return;
        };
        for (action, n) in done.changes {
            if n > 0 {
                self.changes
                    .get_or_create(&ActionLabels { action })
                    .inc_by(n);
            }
        }
        self.pending.set(gauge_value(done.pending));
        self.guests.set(gauge_value(done.guests));
        self.connections.set(gauge_value(done.connections));
        if outcome.clean() {
            self.last_success.set(ended_unix);
        }
    }

    pub fn set_interval(&self, interval: std::time::Duration) {
        self.interval.set(interval.as_secs_f64());
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
