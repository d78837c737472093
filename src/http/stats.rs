//! Per-endpoint request counters and latencies, for `stats` output and tests.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Figures for one endpoint label (e.g. `GET /cluster/resources`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointStats {
    pub api: String,
    pub endpoint: &'static str,
    /// Attempts sent (each retry counts).
    pub count: u64,
    /// Attempts that ended without a response (transport, TLS, timeout…).
    pub errors: u64,
    /// Attempts answered with status ≥ 400.
    pub http_errors: u64,
    /// Attempts that were retries of an earlier one.
    pub retries: u64,
    pub latency_sum: Duration,
    pub latency_max: Duration,
    /// Answers per status code.
    pub statuses: BTreeMap<u16, u64>,
}

impl EndpointStats {
    pub fn latency_mean(&self) -> Duration {
        if self.count == 0 {
            Duration::ZERO
        } else {
            self.latency_sum / self.count as u32
        }
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Status(u16),
    Failed,
}

#[derive(Debug, Default)]
pub struct Stats {
    total: AtomicU64,
    by_endpoint: Mutex<BTreeMap<&'static str, EndpointStats>>,
}

impl Stats {
    pub fn record(
        &self,
        api: &str,
        endpoint: &'static str,
        outcome: Outcome,
        latency: Duration,
        retry: bool,
    ) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut map = self.by_endpoint.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(endpoint).or_insert_with(|| EndpointStats {
            api: api.to_string(),
            endpoint,
            ..EndpointStats::default()
        });
        entry.count += 1;
        if retry {
            entry.retries += 1;
        }
        match outcome {
            Outcome::Status(code) => {
                *entry.statuses.entry(code).or_insert(0) += 1;
                if code >= 400 {
                    entry.http_errors += 1;
                }
            }
            Outcome::Failed => entry.errors += 1,
        }
        entry.latency_sum += latency;
        entry.latency_max = entry.latency_max.max(latency);
    }

    pub fn snapshot(&self) -> Vec<EndpointStats> {
        let map = self.by_endpoint.lock().unwrap_or_else(|p| p.into_inner());
        map.values().cloned().collect()
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_endpoint() {
        let s = Stats::default();
        s.record(
            "p",
            "GET /a",
            Outcome::Status(200),
            Duration::from_millis(10),
            false,
        );
        s.record(
            "p",
            "GET /a",
            Outcome::Status(503),
            Duration::from_millis(30),
            false,
        );
        s.record(
            "p",
            "GET /a",
            Outcome::Failed,
            Duration::from_millis(5),
            true,
        );
        s.record(
            "p",
            "PUT /b",
            Outcome::Status(200),
            Duration::from_millis(1),
            false,
        );
        assert_eq!(s.total(), 4);
        let snap = s.snapshot();
        let a = snap.iter().find(|e| e.endpoint == "GET /a").unwrap();
        assert_eq!((a.count, a.errors, a.http_errors, a.retries), (3, 1, 1, 1));
        assert_eq!(a.latency_max, Duration::from_millis(30));
        assert_eq!(a.latency_sum, Duration::from_millis(45));
        assert_eq!(a.latency_mean(), Duration::from_millis(15));
        assert_eq!(a.statuses.get(&503), Some(&1));
    }
}
