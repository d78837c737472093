//! The readiness rule: ready while the last completed cycle ended within
//! [`STALE_AFTER_INTERVALS`] sync intervals. A failed cycle does not count as
//! completed; a partial one (one cluster down, one action refused) does, since
//! the rest keeps syncing.

use std::time::{Duration, Instant};

pub(crate) const STALE_AFTER_INTERVALS: u32 = 3;

#[derive(Debug)]
pub(crate) struct Readiness {
    interval: Duration,
    last_completed: Option<Instant>,
    /// Label of the last failed cycle, cleared by a completed one.
    last_failure: Option<String>,
    stopping: bool,
}

impl Readiness {
    pub fn new(interval: Duration) -> Readiness {
        Readiness {
            interval,
            last_completed: None,
            last_failure: None,
            stopping: false,
        }
    }

    pub fn set_interval(&mut self, interval: Duration) {
        self.interval = interval;
    }

    pub fn completed(&mut self, at: Instant) {
        self.last_completed = Some(at);
        self.last_failure = None;
    }

    pub fn failed(&mut self, label: &str) {
        self.last_failure = Some(label.to_owned());
    }

    pub fn stopping(&mut self) {
        self.stopping = true;
    }

    /// `Ok(())` when ready, else why not (no secrets: labels and ages only).
    pub fn check(&self, now: Instant) -> Result<(), String> {
        if self.stopping {
            return Err("shutting down".to_owned());
        }
        let limit = self.interval * STALE_AFTER_INTERVALS;
        let mut reason = match self.last_completed {
            None => "no cycle has completed yet".to_owned(),
            Some(at) => {
                let age = now.saturating_duration_since(at);
                if age <= limit {
                    return Ok(());
                }
                format!(
                    "the last completed cycle ended {} ago, more than {STALE_AFTER_INTERVALS} \
                     sync intervals ({})",
                    whole_seconds(age),
                    whole_seconds(limit)
                )
            }
        };
        if let Some(label) = &self.last_failure {
            reason.push_str(&format!("; the last cycle failed: {label}"));
        }
        Err(reason)
    }
}

fn whole_seconds(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn ready_only_within_three_intervals_of_a_completed_cycle() {
        let t0 = Instant::now();
        let mut r = Readiness::new(MIN);
        assert_eq!(r.check(t0), Err("no cycle has completed yet".to_owned()));
        r.failed("guacamole_unreachable");
        assert_eq!(
            r.check(t0),
            Err("no cycle has completed yet; the last cycle failed: guacamole_unreachable".into())
        );
        r.completed(t0);
        assert_eq!(r.check(t0), Ok(()));
        assert_eq!(r.check(t0 + 3 * MIN), Ok(()));
        assert_eq!(
            r.check(t0 + 3 * MIN + Duration::from_secs(1)),
            Err("the last completed cycle ended 3m 1s ago, more than 3 sync intervals (3m)".into())
        );
        // A failure does not reset the clock of the last completed cycle.
        r.failed("proxmox_unreachable");
        assert_eq!(r.check(t0 + MIN), Ok(()));
        assert!(
            r.check(t0 + 4 * MIN)
                .unwrap_err()
                .ends_with("; the last cycle failed: proxmox_unreachable")
        );
        // A reload to a longer interval stretches the window.
        r.set_interval(2 * MIN);
        assert_eq!(r.check(t0 + 4 * MIN), Ok(()));
        r.stopping();
        assert_eq!(r.check(t0), Err("shutting down".to_owned()));
    }
}
