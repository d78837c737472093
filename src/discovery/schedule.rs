//! When a guest's address is asked again (pure). A steady cycle asks
//! nothing: a guest is asked only when its address is unknown, its cache
//! entry is older than `discovery.refresh`, it restarted (`uptime` in
//! `/cluster/resources` went down) or its status changed; after a failed
//! ask it waits an exponentially growing backoff.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::proxmox::MacAddr;
use crate::state::CachedAddress;

/// What the scheduler remembers of one guest between cycles.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DiscoveryRecord {
    /// Status in `/cluster/resources` when last seen.
    pub status: String,
    pub uptime: Option<u64>,
    /// Failed asks in a row since the last success or restart.
    pub failures: u32,
    /// Unix seconds before which the guest is not asked again (0: any time).
    pub retry_at: u64,
}

/// The guest as this cycle's listing shows it.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub status: &'a str,
    pub uptime: Option<u64>,
    /// `net0` MAC from the config.
    pub mac: Option<MacAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    Unknown,
    RefreshDue,
    Restarted,
    StatusChanged,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Unknown => "address unknown",
            Why::RefreshDue => "refresh due",
            Why::Restarted => "guest restarted",
            Why::StatusChanged => "status changed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Run the sources.
    Ask(Why),
    /// The cached address is fresh: no request.
    Keep(Ipv4Addr),
    /// A recent ask failed: no request before `until` (unix seconds).
    Wait { until: u64 },
}

/// The cached address when it belongs to this MAC (entries from before MACs
/// were recorded match any).
pub fn cached_for(cached: Option<&CachedAddress>, mac: Option<MacAddr>) -> Option<&CachedAddress> {
    cached.filter(|c| match (&c.mac, mac) {
        (Some(m), Some(now)) => m.parse::<MacAddr>().is_ok_and(|m| m == now),
        (Some(_), None) => false,
        (None, _) => true,
    })
}

pub fn decide(
    record: Option<&DiscoveryRecord>,
    cached: Option<&CachedAddress>,
    seen: Seen<'_>,
    now: u64,
    refresh: Duration,
) -> Decision {
    if let Some(why) = record.and_then(|r| changed(r, seen)) {
        return Decision::Ask(why);
    }
    let cached = cached_for(cached, seen.mac);
    if let Some(c) = cached
        && now.saturating_sub(c.seen_at) < refresh.as_secs()
        && let Ok(address) = c.address.parse()
    {
        return Decision::Keep(address);
    }
    if let Some(r) = record
        && r.retry_at > now
    {
        return Decision::Wait { until: r.retry_at };
    }
    Decision::Ask(if cached.is_some() {
        Why::RefreshDue
    } else {
        Why::Unknown
    })
}

fn changed(r: &DiscoveryRecord, seen: Seen<'_>) -> Option<Why> {
    if r.status != seen.status {
        return Some(Why::StatusChanged);
    }
    match (r.uptime, seen.uptime) {
        (Some(before), Some(now)) if now < before => Some(Why::Restarted),
        _ => None,
    }
}

/// The record after this cycle. `asked`: `Some(found)` when the sources ran
/// (`found`: a live source gave an address), `None` when nothing was asked.
pub fn update(
    record: Option<&DiscoveryRecord>,
    seen: Seen<'_>,
    asked: Option<bool>,
    now: u64,
    backoff: (Duration, Duration),
) -> DiscoveryRecord {
    let mut next = record.cloned().unwrap_or_default();
    // A restart or a status change starts a new count.
    if record.is_some_and(|r| changed(r, seen).is_some()) {
        next.failures = 0;
        next.retry_at = 0;
    }
    next.status = seen.status.to_owned();
    next.uptime = seen.uptime;
    match asked {
        Some(true) => {
            next.failures = 0;
            next.retry_at = 0;
        }
        Some(false) => {
            next.failures = next.failures.saturating_add(1);
            next.retry_at = now + backoff_after(next.failures, backoff).as_secs();
        }
        None => {}
    }
    next
}

/// `initial × 2^(failures-1)`, at most `max`.
pub fn backoff_after(failures: u32, (initial, max): (Duration, Duration)) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(20);
    initial.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFRESH: Duration = Duration::from_secs(3600);
    const BACKOFF: (Duration, Duration) = (Duration::from_secs(30), Duration::from_secs(600));

    fn seen(status: &str, uptime: u64) -> Seen<'_> {
        Seen {
            status,
            uptime: Some(uptime),
            mac: Some("bc:24:11:00:00:01".parse().unwrap()),
        }
    }

    fn cache(seen_at: u64, mac: &str) -> CachedAddress {
        CachedAddress {
            address: "192.0.2.10".into(),
            source: "agent".into(),
            seen_at,
            mac: Some(mac.into()),
        }
    }

    #[test]
    fn fresh_address_is_kept_without_asking() {
        let rec = update(None, seen("running", 100), Some(true), 1000, BACKOFF);
        let c = cache(1000, "BC:24:11:00:00:01");
        let d = decide(Some(&rec), Some(&c), seen("running", 200), 1100, REFRESH);
        assert_eq!(d, Decision::Keep("192.0.2.10".parse().unwrap()));
        // Stale, restarted, status change, other MAC: asked.
        let d = decide(Some(&rec), Some(&c), seen("running", 4000), 4601, REFRESH);
        assert_eq!(d, Decision::Ask(Why::RefreshDue));
        let d = decide(Some(&rec), Some(&c), seen("running", 5), 1100, REFRESH);
        assert_eq!(d, Decision::Ask(Why::Restarted));
        let d = decide(Some(&rec), Some(&c), seen("stopped", 0), 1100, REFRESH);
        assert_eq!(d, Decision::Ask(Why::StatusChanged));
        let other = cache(1000, "BC:24:11:00:00:99");
        let d = decide(
            Some(&rec),
            Some(&other),
            seen("running", 200),
            1100,
            REFRESH,
        );
        assert_eq!(d, Decision::Ask(Why::Unknown));
    }

    #[test]
    fn failures_back_off_exponentially_and_a_restart_resets() {
        let mut rec = None;
        let mut asked_at = Vec::new();
        for cycle in 0..20u64 {
            let now = cycle * 30;
            let s = seen("running", 100 + now);
            let d = decide(rec.as_ref(), None, s, now, REFRESH);
            let asked = matches!(d, Decision::Ask(_));
            if asked {
                asked_at.push(cycle);
            }
            rec = Some(update(
                rec.as_ref(),
                s,
                asked.then_some(false),
                now,
                BACKOFF,
            ));
        }
        assert_eq!(asked_at, vec![0, 1, 3, 7, 15]);
        let r = rec.unwrap();
        assert_eq!(r.failures, 5);
        let restarted = seen("running", 3);
        assert_eq!(
            decide(Some(&r), None, restarted, 600, REFRESH),
            Decision::Ask(Why::Restarted)
        );
        assert_eq!(
            update(Some(&r), restarted, Some(false), 600, BACKOFF).failures,
            1
        );
        assert_eq!(backoff_after(30, BACKOFF), Duration::from_secs(600));
    }
}
