//! `WATCHDOG=1` only while the loop makes progress. The pings are sent by
//! the loop task itself (so a wedged runtime or a blocked loop sends none),
//! and during a cycle only while requests keep completing: a cycle that has
//! finished no request for longer than any legitimate wait (`stall_limit`,
//! derived from the timeouts and retry settings) counts as hung, and
//! systemd restarts the service.

use std::time::{Duration, Instant};

use crate::config::{ApiSettings, Settings};
use crate::systemd::Notifier;

pub(crate) struct Watchdog {
    ticker: Option<tokio::time::Interval>,
    stall_limit: Duration,
    last_total: u64,
    last_progress: Instant,
}

impl Watchdog {
    /// `every`: half of `$WATCHDOG_USEC`; `None` = no watchdog.
    pub(crate) fn new(every: Option<Duration>, stall_limit: Duration) -> Self {
        let ticker = every.filter(|d| !d.is_zero()).map(|d| {
            let mut t = tokio::time::interval(d);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        Watchdog {
            ticker,
            stall_limit,
            last_total: 0,
            last_progress: Instant::now(),
        }
    }

    /// Resolves at the next ping time; never without a watchdog.
    pub(crate) async fn tick(&mut self) {
        match &mut self.ticker {
            Some(t) => {
                t.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    pub(crate) fn set_stall_limit(&mut self, limit: Duration) {
        self.stall_limit = limit;
    }

    /// A cycle begins; `total` is the number of requests sent so far.
    pub(crate) fn cycle_started(&mut self, total: u64) {
        self.last_total = total;
        self.last_progress = Instant::now();
    }

    /// Between cycles the loop is waiting in `select!`: alive.
    pub(crate) fn ping_idle(&self, notifier: &Notifier) {
        notifier.watchdog();
    }

    /// During a cycle: ping only if a request completed recently.
    pub(crate) fn ping_if_progress(&mut self, total: u64, notifier: &Notifier) -> bool {
        let now = Instant::now();
        if total != self.last_total {
            self.last_total = total;
            self.last_progress = now;
        }
        let alive = now.duration_since(self.last_progress) < self.stall_limit;
        if alive {
            notifier.watchdog();
        } else {
            tracing::error!(
                quiet_s = now.duration_since(self.last_progress).as_secs(),
                "the cycle has made no progress; withholding the watchdog ping"
            );
        }
        alive
    }
}

/// The longest a healthy cycle can go without finishing a request: one
/// request with all its attempts and pauses, plus a margin; at least 2 min.
pub(crate) fn stall_limit(settings: &Settings) -> Duration {
    let one = |api: &ApiSettings| {
        let attempts = api.retry.max_attempts.get();
        api.timeouts.request.saturating_mul(attempts) + api.retry.max_delay.saturating_mul(attempts)
    };
    let longest = settings
        .proxmox
        .clusters
        .iter()
        .map(|c| one(&c.api))
        .chain(std::iter::once(one(&settings.guacamole.api)))
        .max()
        .unwrap_or_default();
    (longest + Duration::from_secs(60)).max(Duration::from_secs(120))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn a_cycle_without_finished_requests_stops_the_pings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        server.set_nonblocking(true).unwrap();
        let notifier = Notifier::to_socket(&path);
        let mut w = Watchdog::new(None, Duration::from_millis(50));
        w.cycle_started(10);
        assert!(w.ping_if_progress(10, &notifier), "fresh cycle");
        std::thread::sleep(Duration::from_millis(80));
        assert!(!w.ping_if_progress(10, &notifier), "no request finished");
        assert!(w.ping_if_progress(11, &notifier), "progress again");
        let mut buf = [0u8; 64];
        let mut pings = 0;
        while let Ok(n) = server.recv(&mut buf) {
            assert_eq!(&buf[..n], b"WATCHDOG=1\n");
            pings += 1;
        }
        assert_eq!(pings, 2);
    }
}
