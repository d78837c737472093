//! The optional active probe: plain TCP connects (no raw sockets) to the
//! addresses of the IPv4 allowed ranges, so the kernel resolves their
//! neighbours and the neighbour table learns them. Bounded: at most
//! `max_addresses` per sweep, `per_second` new connects, a short timeout,
//! one sweep per `interval`; never IPv6, never outside the ranges.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use ipnet::{IpNet, Ipv4Net};
use tracing::debug;

use crate::config::ProbeSettings;

pub struct Prober {
    settings: ProbeSettings,
    ranges: Vec<Ipv4Net>,
    last_sweep: tokio::sync::Mutex<Option<Instant>>,
    attempts: Mutex<u64>,
}

impl Prober {
    /// `allowed`: `sync.allowed_networks`; IPv6 ranges are dropped here.
    pub fn new(settings: ProbeSettings, allowed: Vec<IpNet>) -> Prober {
        let ranges = allowed
            .into_iter()
            .filter_map(|n| match n {
                IpNet::V4(v4) => Some(v4),
                IpNet::V6(_) => None,
            })
            .collect();
        Prober {
            settings,
            ranges,
            last_sweep: tokio::sync::Mutex::new(None),
            attempts: Mutex::new(0),
        }
    }

    /// Connect attempts made so far (for tests and metrics).
    pub fn attempts(&self) -> u64 {
        *self.attempts.lock().expect("probe counter")
    }

    /// The addresses one sweep tries, in order, at most `max_addresses`.
    pub fn targets(&self) -> Vec<Ipv4Addr> {
        let max = self.settings.max_addresses.get() as usize;
        self.ranges
            .iter()
            .flat_map(|n| n.hosts())
            .take(max)
            .collect()
    }

    /// One sweep to `port` unless one ran within `interval` (callers of the
    /// same cycle share it). Returns the number of connects attempted.
    pub async fn sweep(&self, port: u16) -> usize {
        let mut last = self.last_sweep.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.settings.interval) {
            return 0;
        }
        let targets = self.targets();
        let gap = Duration::from_secs(1) / self.settings.per_second.get();
        let timeout = self.settings.timeout;
        let mut pending = Vec::with_capacity(targets.len());
        let mut ticker = tokio::time::interval(gap);
        for address in &targets {
            ticker.tick().await;
            *self.attempts.lock().expect("probe counter") += 1;
            let addr = SocketAddr::from((*address, port));
            pending.push(tokio::spawn(async move {
                let _ = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await;
            }));
        }
        join_all(pending).await;
        debug!(count = targets.len(), port, "probe sweep done");
        *last = Some(Instant::now());
        targets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    fn settings(max: u32) -> ProbeSettings {
        ProbeSettings {
            enabled: true,
            per_second: NonZeroU32::new(1000).unwrap(),
            max_addresses: NonZeroU32::new(max).unwrap(),
            timeout: Duration::from_millis(200),
            interval: Duration::from_secs(600),
        }
    }

    #[test]
    fn targets_stay_inside_ipv4_ranges_and_the_count() {
        let p = Prober::new(
            settings(5),
            vec![
                "2001:db8::/120".parse().unwrap(),
                "127.0.0.0/29".parse().unwrap(),
                "127.0.1.0/30".parse().unwrap(),
            ],
        );
        let t: Vec<String> = p.targets().iter().map(|a| a.to_string()).collect();
        assert_eq!(
            t,
            [
                "127.0.0.1",
                "127.0.0.2",
                "127.0.0.3",
                "127.0.0.4",
                "127.0.0.5"
            ]
        );
        let p = Prober::new(settings(100), vec!["2001:db8::/120".parse().unwrap()]);
        assert!(p.targets().is_empty());
    }

    #[tokio::test]
    async fn a_sweep_connects_once_per_target_and_not_again_within_the_interval() {
        // Loopback only: a listener on 127.0.0.2 counts what reaches it.
        let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((_s, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let p = Prober::new(settings(3), vec!["127.0.0.0/29".parse().unwrap()]);
        assert_eq!(p.sweep(port).await, 3);
        assert_eq!(p.sweep(port).await, 0, "within the interval");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(p.attempts(), 3);
    }
}
