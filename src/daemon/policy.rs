//! When to run the next cycle. The normal pace is `sync.interval` ± jitter;
//! after a failure the error's label decides the first pause (the
//! controller-rs "error policy": an error maps to the next delay), doubling
//! with each further failure and never beyond the cap. A server's own
//! `Retry-After` pause is always waited out.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rand::Rng;

/// The first pause after an error with this label.
pub fn first_delay(label: &str) -> Duration {
    let secs = match label {
        // The server throttles us: give it room.
        "too_many_attempts" | "rate_limited" => 60,
        // Waiting does not fix credentials, permissions, certificates or a
        // broken state directory quickly; a reload or the operator does.
        "invalid_credentials"
        | "insufficient_credentials"
        | "auth_failed"
        | "permission_denied"
        | "tls"
        | "config"
        | "base_path_not_found"
        | "unknown_data_source"
        | "state_io"
        | "state_corrupt"
        | "state_locked" => 300,
        // Outages: connection refused, timeouts, 5xx, broken answers.
        _ => 10,
    };
    Duration::from_secs(secs)
}

/// The pause after `failures` consecutive failures (1 = the first), doubled
/// each time, at most `cap`, at least what the server asked for.
pub fn error_delay(
    label: &str,
    failures: u32,
    cap: Duration,
    server_pause: Option<Duration>,
) -> Duration {
    let doubled = first_delay(label).saturating_mul(1 << failures.clamp(1, 16).saturating_sub(1));
    doubled.min(cap).max(server_pause.unwrap_or(Duration::ZERO))
}

/// `base × (1 ± jitter)`, uniformly; `jitter` in `[0, 0.5]`.
pub fn jittered(base: Duration, jitter: f64) -> Duration {
    let jitter = jitter.clamp(0.0, 0.5);
    if jitter == 0.0 || base.is_zero() {
        return base;
    }
    let factor = rand::rng().random_range((1.0 - jitter)..=(1.0 + jitter));
    base.mul_f64(factor)
}

/// Consecutive failures of one target (Guacamole, or one cluster) and until
/// when it rests.
#[derive(Debug, Clone, Default)]
struct Failing {
    failures: u32,
    until: Option<Instant>,
}

/// Back-off per Proxmox cluster: a cluster whose observation failed is not
/// contacted again until its pause is over, while the others keep syncing.
#[derive(Debug, Default)]
pub struct ClusterBackoff {
    clusters: BTreeMap<String, Failing>,
}

impl ClusterBackoff {
    /// Records one cycle: `failed` clusters back off (or rest for as long as
    /// their server asked), the others are well again.
    pub fn record(
        &mut self,
        observed: &[String],
        failed: &BTreeSet<String>,
        cap: Duration,
        server_pause: impl Fn(&str) -> Option<Duration>,
        now: Instant,
    ) {
        for name in observed {
            if failed.contains(name) {
                let entry = self.clusters.entry(name.clone()).or_default();
                entry.failures += 1;
                let delay = error_delay("cluster", entry.failures, cap, server_pause(name));
                entry.until = Some(now + jittered(delay, 0.1));
            } else {
                self.clusters.remove(name);
            }
        }
    }

    /// Clusters still resting at `now`.
    pub fn resting(&self, now: Instant) -> BTreeSet<String> {
        self.clusters
            .iter()
            .filter(|(_, f)| f.until.is_some_and(|u| u > now))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Consecutive failures of `cluster`.
    pub fn failures(&self, cluster: &str) -> u32 {
        self.clusters.get(cluster).map_or(0, |f| f.failures)
    }

    /// Forget every pause (the operator asked for a sync now, or reloaded).
    pub fn clear(&mut self) {
        self.clusters.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_map_to_first_delays() {
        assert_eq!(first_delay("connect"), Duration::from_secs(10));
        assert_eq!(first_delay("server_error"), Duration::from_secs(10));
        assert_eq!(first_delay("too_many_attempts"), Duration::from_secs(60));
        assert_eq!(first_delay("invalid_credentials"), Duration::from_secs(300));
        assert_eq!(first_delay("state_locked"), Duration::from_secs(300));
    }

    #[test]
    fn delays_double_up_to_the_cap_and_honour_the_server() {
        let cap = Duration::from_secs(300);
        let d: Vec<u64> = (1..=7)
            .map(|n| error_delay("timeout", n, cap, None).as_secs())
            .collect();
        assert_eq!(d, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(error_delay("timeout", 40, cap, None), cap);
        // A long Retry-After wins over the cap.
        assert_eq!(
            error_delay("paused", 1, cap, Some(Duration::from_secs(3600))),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let base = Duration::from_secs(100);
        for _ in 0..200 {
            let d = jittered(base, 0.1);
            assert!(
                d >= Duration::from_secs(90) && d <= Duration::from_secs(110),
                "{d:?}"
            );
        }
        assert_eq!(jittered(base, 0.0), base);
    }

    #[test]
    fn a_failing_cluster_rests_while_the_others_do_not() {
        let mut b = ClusterBackoff::default();
        let now = Instant::now();
        let all = vec!["east".to_owned(), "west".to_owned()];
        let failed: BTreeSet<String> = ["east".to_owned()].into();
        let cap = Duration::from_secs(600);
        b.record(&all, &failed, cap, |_| None, now);
        assert_eq!(b.resting(now), failed);
        assert_eq!(b.failures("east"), 1);
        assert!(b.resting(now + Duration::from_secs(12)).is_empty());
        b.record(&all, &failed, cap, |_| None, now);
        assert_eq!(b.failures("east"), 2);
        // Recovered: forgotten.
        b.record(&all, &BTreeSet::new(), cap, |_| None, now);
        assert_eq!(b.failures("east"), 0);
        assert!(b.resting(now).is_empty());
        // The server's own pause is kept.
        b.record(&all, &failed, cap, |_| Some(Duration::from_secs(3600)), now);
        assert!(b.resting(now + Duration::from_secs(3000)).contains("east"));
        b.clear();
        assert!(b.resting(now).is_empty());
    }
}
