//! Power-up tasks: start an allowed stopped guest, wait for its address,
//! then put it back as it was (clean shutdown, hard stop after
//! `shutdown_timeout`). Every guest is in the [`journal::Journal`] before
//! the start call; a guest a person started or restarted meanwhile is never
//! stopped (start task failed, or its `uptime` went down since our start).

pub mod eligible;
pub mod journal;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use self::journal::{Journal, JournalEntry};
use super::{AddressEvidence, AddressSource, GuestFacts};
use crate::config::PowerUpSettings;
use crate::proxmox::{ProxmoxClient, ProxmoxError, Upid};
use crate::state::StateError;

/// How long a start task may take before the power-up gives up on it.
const START_TASK_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum PowerError {
    #[error("power journal: {0}")]
    Journal(#[from] StateError),
    #[error("{0}")]
    Proxmox(#[from] ProxmoxError),
    #[error("no client for cluster {0}")]
    UnknownCluster(String),
}

impl PowerError {
    pub fn label(&self) -> &'static str {
        match self {
            PowerError::Journal(e) => e.label(),
            PowerError::Proxmox(e) => e.label(),
            PowerError::UnknownCluster(_) => "unknown_cluster",
        }
    }
}

/// How a guest was left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Restored {
    /// Shut down cleanly.
    ShutDown,
    /// Shutdown timed out; stopped hard.
    Stopped,
    /// Already off when restore began.
    AlreadyOff,
    /// Started or restarted by someone else: left running.
    LeftRunning,
}

/// One power-up to do.
pub struct PowerRequest {
    pub client: Arc<ProxmoxClient>,
    /// The cluster's live sources (the cache is skipped while waiting).
    pub sources: Arc<Vec<Box<dyn AddressSource>>>,
    /// The guest as seen by this cycle (`running` is set once started).
    pub facts: GuestFacts,
}

/// What one power-up achieved.
#[derive(Debug, Clone, Serialize)]
pub struct PowerResult {
    pub guest: String,
    /// The `net0` MAC the address belongs to.
    pub mac: Option<String>,
    /// The address found while the guest ran, and its source.
    pub address: Option<(Ipv4Addr, &'static str)>,
    /// `None` when the guest was never started by us.
    pub restored: Option<Restored>,
    pub error: Option<String>,
}

/// The power-up machinery of one daemon: budget, journal, in-flight set.
pub struct PowerUps {
    pub settings: PowerUpSettings,
    pub journal: Arc<Journal>,
    permits: Arc<Semaphore>,
    in_flight: Mutex<BTreeSet<String>>,
}

impl PowerUps {
    pub fn new(settings: PowerUpSettings, journal: Arc<Journal>) -> PowerUps {
        PowerUps {
            permits: Arc::new(Semaphore::new(settings.max_concurrent.get() as usize)),
            settings,
            journal,
            in_flight: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn in_flight(&self) -> BTreeSet<String> {
        self.in_flight.lock().expect("in-flight lock").clone()
    }

    /// Start, wait for an address, restore. At most `max_concurrent` run at
    /// once (others wait for a permit). Shutdown (`cancel`) cuts the wait
    /// for an address short; the guest is still restored before this returns.
    pub async fn power_up(&self, req: PowerRequest, cancel: &CancellationToken) -> PowerResult {
        let key = req.facts.key.to_string();
        let mut result = PowerResult {
            guest: key.clone(),
            mac: req.facts.macs.first().map(ToString::to_string),
            address: None,
            restored: None,
            error: None,
        };
        if !self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .insert(key.clone())
        {
            result.error = Some("power-up already running".into());
            return result;
        }
        let permit = tokio::select! {
            p = self.permits.acquire() => Some(p.expect("semaphore open")),
            () = cancel.cancelled() => None,
        };
        if permit.is_some() {
            self.run(&req, cancel, &mut result).await;
        }
        drop(permit);
        self.in_flight.lock().expect("in-flight lock").remove(&key);
        result
    }

    async fn run(&self, req: &PowerRequest, cancel: &CancellationToken, result: &mut PowerResult) {
        let key = req.facts.key.to_string();
        match self.start(req).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                result.error = Some(format!("start: {e}"));
                // The entry stays when the start may have happened; restore decides.
                if self
                    .journal
                    .entries()
                    .is_ok_and(|l| l.iter().any(|e| e.key() == key))
                {
                    result.restored = self.restore_key(&req.client, &key).await.ok().flatten();
                }
                return;
            }
        }
        result.address = tokio::select! {
            found = self.wait_for_address(req) => found,
            () = cancel.cancelled() => None,
        };
        match self.restore_key(&req.client, &key).await {
            Ok(r) => result.restored = r,
            Err(e) => result.error = Some(format!("restore: {e}")),
        }
    }

    /// Journal, start, wait for the start task. `Ok(false)`: the start did
    /// not happen (a person started it first, a lock, a template …).
    async fn start(&self, req: &PowerRequest) -> Result<bool, PowerError> {
        let f = &req.facts;
        let key = f.key.to_string();
        self.journal.record(JournalEntry {
            cluster: f.key.cluster.clone(),
            node: f.node.clone(),
            kind: f.kind,
            vmid: f.key.vmid,
            recorded_at: f.now,
            start_upid: None,
            uptime_after_start: None,
            uptime_read_at: None,
        })?;
        let upid = match req.client.start(&f.node, f.kind, f.key.vmid).await {
            Ok(u) => u,
            // An answer (not a lost connection) means no start happened.
            Err(e) if !matches!(e, ProxmoxError::Http { .. }) => {
                self.journal.remove(&key)?;
                info!(guest = %key, error = %e, "power-up: start refused; guest left as it is");
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        info!(target: "pve_guac_sync::audit", action = "power_up_start", guest = %key,
            upid = %upid, result = "started", "power-up: started {key} to learn its address");
        self.journal
            .update(&key, |e| e.start_upid = Some(upid.to_string()))?;
        match req
            .client
            .wait_task_through_shutdown(&upid, START_TASK_TIMEOUT)
            .await
        {
            Ok(_) => {}
            Err(ProxmoxError::TaskFailed { exitstatus, .. }) => {
                // Not started by us (already running, locked …): never stop it.
                self.journal.remove(&key)?;
                info!(guest = %key, exitstatus = %exitstatus, "power-up: start task failed; guest left as it is");
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        }
        let status = req
            .client
            .status_current(&f.node, f.kind, f.key.vmid)
            .await?;
        let uptime = status.uptime.unwrap_or(0);
        let read_at = crate::reconcile::cycle::unix_now();
        self.journal.update(&key, |e| {
            e.uptime_after_start = Some(uptime);
            e.uptime_read_at = Some(read_at);
        })?;
        Ok(true)
    }

    /// Polls the live sources until an address shows up or `wait` ends.
    async fn wait_for_address(&self, req: &PowerRequest) -> Option<(Ipv4Addr, &'static str)> {
        let mut facts = req.facts.clone();
        facts.running = true;
        let deadline = Instant::now() + self.settings.wait;
        let poll =
            (self.settings.wait / 30).clamp(Duration::from_millis(200), Duration::from_secs(5));
        let live: Vec<&Box<dyn AddressSource>> = req
            .sources
            .iter()
            .filter(|s| s.name() != super::sources::CACHE)
            .collect();
        loop {
            for source in &live {
                if let AddressEvidence::Found { address, source } = source.resolve(&facts).await {
                    return Some((address, source));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            tokio::time::sleep(poll.min(left)).await;
        }
    }

    /// Restores the guest of one journal entry; `Ok(None)` if there is none.
    pub async fn restore_key(
        &self,
        client: &ProxmoxClient,
        key: &str,
    ) -> Result<Option<Restored>, PowerError> {
        let Some(entry) = self.journal.entries()?.into_iter().find(|e| e.key() == key) else {
            return Ok(None);
        };
        let restored = restore(client, &entry, self.settings.shutdown_timeout).await?;
        self.journal.remove(key)?;
        info!(target: "pve_guac_sync::audit", action = "power_up_restore", guest = %key,
            result = ?restored, "power-up: {key} restored ({restored:?})");
        Ok(Some(restored))
    }

    /// Journal entries no power-up is working on: guests whose restore
    /// failed (a lost connection, a server error) and are still up. In
    /// `run` they would otherwise stay running until the next start.
    /// The journal is read before the in-flight set: a power-up enters the
    /// in-flight set before its journal entry, so a fresh one is never taken
    /// for a leftover.
    pub fn leftovers(&self) -> Vec<JournalEntry> {
        let Ok(entries) = self.journal.entries() else {
            return Vec::new();
        };
        let busy = self.in_flight();
        entries
            .into_iter()
            .filter(|e| !busy.contains(&e.key()))
            .collect()
    }

    /// Retries the restore of one leftover entry, claiming it in the
    /// in-flight set so no power-up or second retry runs beside it.
    pub async fn retry_restore(&self, client: &ProxmoxClient, key: &str) {
        if !self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .insert(key.to_owned())
        {
            return;
        }
        if let Err(e) = self.restore_key(client, key).await {
            warn!(guest = %key, error = %e, "power-up: restore failed again; kept in the journal");
        }
        self.in_flight.lock().expect("in-flight lock").remove(key);
    }

    /// Restores every guest in the journal (at start after a crash, on
    /// shutdown, at the end of `once`). Entries that fail stay for the next try.
    pub async fn restore_all(
        &self,
        client_of: impl Fn(&str) -> Option<Arc<ProxmoxClient>>,
    ) -> Vec<(String, Result<Restored, PowerError>)> {
        let entries = match self.journal.entries() {
            Ok(e) => e,
            Err(e) => return vec![(String::new(), Err(e.into()))],
        };
        let mut out = Vec::new();
        for entry in entries {
            let key = entry.key();
            let Some(client) = client_of(&entry.cluster) else {
                out.push((key, Err(PowerError::UnknownCluster(entry.cluster.clone()))));
                continue;
            };
            let r = match self.restore_key(&client, &key).await {
                Ok(Some(r)) => Ok(r),
                Ok(None) => continue,
                Err(e) => {
                    warn!(guest = %key, error = %e, "power-up: restore failed; kept in the journal");
                    Err(e)
                }
            };
            out.push((key, r));
        }
        out
    }
}

/// Puts one guest back: left running when it is not ours (our start task
/// failed, or it restarted since), else shutdown, then stop after `timeout`.
async fn restore(
    client: &ProxmoxClient,
    e: &JournalEntry,
    timeout: Duration,
) -> Result<Restored, PowerError> {
    if let Some(upid) = e.start_upid.as_deref().and_then(|u| u.parse::<Upid>().ok()) {
        // Let our start finish first; a failed one means it was not ours.
        match client
            .wait_task_through_shutdown(&upid, START_TASK_TIMEOUT)
            .await
        {
            Ok(_) => {}
            Err(ProxmoxError::TaskFailed { .. }) => return Ok(Restored::LeftRunning),
            Err(err) => return Err(err.into()),
        }
    }
    if !still_ours(client, e).await? {
        let status = client.status_current(&e.node, e.kind, e.vmid).await?;
        return Ok(if status.is_running() {
            Restored::LeftRunning
        } else {
            Restored::AlreadyOff
        });
    }
    let upid = client
        .shutdown(&e.node, e.kind, e.vmid, Some(timeout))
        .await?;
    match client
        .wait_task_through_shutdown(&upid, timeout + Duration::from_secs(30))
        .await
    {
        Ok(_) => {
            if !running(client, e).await? {
                return Ok(Restored::ShutDown);
            }
        }
        Err(ProxmoxError::TaskFailed { .. } | ProxmoxError::TaskTimeout { .. }) => {}
        Err(err) => return Err(err.into()),
    }
    if !still_ours(client, e).await? {
        return Ok(Restored::LeftRunning);
    }
    let upid = client.stop(&e.node, e.kind, e.vmid).await?;
    client
        .wait_task_through_shutdown(&upid, START_TASK_TIMEOUT)
        .await?;
    Ok(Restored::Stopped)
}

async fn running(client: &ProxmoxClient, e: &JournalEntry) -> Result<bool, PowerError> {
    Ok(client
        .status_current(&e.node, e.kind, e.vmid)
        .await?
        .is_running())
}

/// Seconds of clock and rounding difference tolerated between our clock
/// and the guest's uptime.
const UPTIME_SLACK: u64 = 3;

/// Running, and not restarted since our start: its uptime must not have
/// gone down, and must have grown at least as much as our clock since we
/// read it (a person's stop and start shows as a younger boot).
async fn still_ours(client: &ProxmoxClient, e: &JournalEntry) -> Result<bool, PowerError> {
    let status = client.status_current(&e.node, e.kind, e.vmid).await?;
    if !status.is_running() {
        return Ok(false);
    }
    let now = crate::reconcile::cycle::unix_now();
    let Some(uptime) = status.uptime else {
        return Ok(true);
    };
    if e.start_upid.is_none() {
        // The start call may never have been made (crash right after the
        // journal write): only a guest that came up after the entry is ours.
        return Ok(uptime <= now.saturating_sub(e.recorded_at) + UPTIME_SLACK);
    }
    Ok(match (e.uptime_after_start, e.uptime_read_at) {
        (Some(before), Some(read_at)) => {
            uptime >= before && uptime + UPTIME_SLACK >= before + now.saturating_sub(read_at)
        }
        _ => true,
    })
}
