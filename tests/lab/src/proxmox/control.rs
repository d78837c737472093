//! Test-facing state API of [`ProxmoxCluster`]: read and change guests,
//! notes, agents and nodes the way a human or the cluster itself would, inject
//! digest races, and read what happened (power history, tasks, writes).

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::ProxmoxCluster;
use super::config::{self, ConfigWrite};
use super::seed::{
    AgentSeed, AgentState, ClusterOptions, GuestKind, GuestSeed, SeedStatus, TaskDurations,
};
use super::state::{Guest, PowerCounters, PowerEvent, State, value_text};

/// A guest as a test sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestSnapshot {
    pub vmid: u32,
    pub kind: GuestKind,
    pub node: String,
    pub name: String,
    /// `running` or `stopped`.
    pub status: String,
    /// QEMU state (`running`, `paused`, `stopped`); CTs: same as `status`.
    pub qmpstatus: String,
    pub lock: Option<String>,
    pub template: bool,
    /// Notes as the API returns them.
    pub notes: Option<String>,
    pub digest: String,
    pub tags: Option<String>,
    pub pool: Option<String>,
    /// The current `agent` config value.
    pub agent_config: Option<String>,
    /// Keys with pending changes.
    pub pending: Vec<String>,
}

/// A task as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSnapshot {
    pub upid: String,
    pub node: String,
    /// `qmstart`, `qmconfig`, `vzstop`, …
    pub kind: String,
    pub id: String,
    /// Full owner id (`user@realm!token` for token tasks).
    pub authid: String,
    pub done: bool,
    /// `OK` or the error text, once done.
    pub exitstatus: Option<String>,
}

fn snapshot(g: &Guest) -> GuestSnapshot {
    GuestSnapshot {
        vmid: g.vmid,
        kind: g.kind,
        node: g.node.clone(),
        name: g.display_name(),
        status: if g.is_running() { "running" } else { "stopped" }.into(),
        qmpstatus: if g.is_vm() {
            g.qmpstatus().to_string()
        } else if g.is_running() {
            "running".into()
        } else {
            "stopped".into()
        },
        lock: g.lock(),
        template: g.is_template(),
        notes: g.config.get("description").map(value_text),
        digest: g.digest.clone(),
        tags: g.tags(),
        pool: g.pool.clone(),
        agent_config: g.config.get("agent").map(value_text),
        pending: g.pending.keys().cloned().collect(),
    }
}

impl ProxmoxCluster {
    /// Run `f` on the state after applying every event due now.
    fn with_state<R>(&self, f: impl FnOnce(&mut State, Duration) -> R) -> R {
        let now = self.clock.elapsed();
        let mut st = self.state.lock().expect("state lock");
        st.settle(now);
        f(&mut st, now)
    }

    /// Apply every task/event due on the lab clock now.
    pub fn settle(&self) {
        self.with_state(|_, _| ());
    }

    pub fn guest(&self, vmid: u32) -> Option<GuestSnapshot> {
        self.with_state(|st, _| st.guests.get(&vmid).map(snapshot))
    }

    /// All guests, by VMID.
    pub fn guests(&self) -> Vec<GuestSnapshot> {
        self.with_state(|st, _| st.guests.values().map(snapshot).collect())
    }

    /// The notes as the API returns them (`None` when unset).
    pub fn notes(&self, vmid: u32) -> Option<String> {
        self.guest(vmid).and_then(|g| g.notes)
    }

    /// Edit the notes as a human in the UI would (stored by the §6.3 rules,
    /// the digest changes). Returns false if the guest does not exist.
    pub fn set_notes(&self, vmid: u32, text: &str) -> bool {
        self.with_state(|st, _| match st.guests.get_mut(&vmid) {
            Some(g) => {
                config::human_set_notes(g, text);
                true
            }
            None => false,
        })
    }

    /// The config as `GET .../config` shows it (pending applied, `digest`).
    pub fn config(&self, vmid: u32) -> Option<Map<String, Value>> {
        self.with_state(|st, _| {
            st.guests.get(&vmid).map(|g| {
                let mut m: Map<String, Value> = g.config_with_pending().into_iter().collect();
                m.insert("digest".into(), json!(g.digest));
                m
            })
        })
    }

    pub fn digest(&self, vmid: u32) -> Option<String> {
        self.guest(vmid).map(|g| g.digest)
    }

    /// Set (`Some`) or delete (`None`) one config key as a human would
    /// (non-hot-pluggable keys of a running VM become pending).
    pub fn set_config_value(&self, vmid: u32, key: &str, value: Option<Value>) -> bool {
        self.with_state(|st, _| match st.guests.get_mut(&vmid) {
            Some(g) => {
                let mut w = ConfigWrite::default();
                match value {
                    Some(v) => w.set.push((key.into(), v)),
                    None => w.delete.push(key.into()),
                }
                config::apply_write(g, &w);
                true
            }
            None => false,
        })
    }

    /// Create a guest (replaces one with the same VMID).
    pub fn add_guest(&self, seed: GuestSeed) {
        self.with_state(|st, now| {
            st.guests.insert(seed.vmid, Guest::from_seed(&seed, now));
        });
    }

    pub fn remove_guest(&self, vmid: u32) -> bool {
        self.with_state(|st, _| st.guests.remove(&vmid).is_some())
    }

    /// Move a guest to another node (its old node then answers "does not
    /// exist").
    pub fn migrate_guest(&self, vmid: u32, node: &str) -> bool {
        self.with_state(|st, _| match st.guests.get_mut(&vmid) {
            Some(g) => {
                g.node = node.to_string();
                true
            }
            None => false,
        })
    }

    /// Change the run state at once (recorded with cause `test`).
    pub fn set_status(&self, vmid: u32, status: SeedStatus) -> bool {
        self.with_state(|st, now| {
            if !st.guests.contains_key(&vmid) {
                return false;
            }
            match status {
                SeedStatus::Stopped => st.set_stopped(vmid, now, "test"),
                SeedStatus::Running => st.set_running(vmid, "running", now, "test"),
                SeedStatus::Paused => st.set_running(vmid, "paused", now, "test"),
            }
            true
        })
    }

    /// Set or clear the config `lock` (e.g. a backup starting); changes
    /// the digest.
    pub fn set_lock(&self, vmid: u32, lock: Option<&str>) -> bool {
        self.with_state(|st, _| match st.guests.get_mut(&vmid) {
            Some(g) => {
                match lock {
                    Some(l) => g.config.insert("lock".into(), json!(l)),
                    None => g.config.remove("lock"),
                };
                g.update_digest();
                true
            }
            None => false,
        })
    }

    /// Take a node offline (its guests go stale, then `unknown`; calls for it
    /// give 595) or back online.
    pub fn set_node_online(&self, node: &str, online: bool) -> bool {
        self.with_state(|st, now| match st.node_mut(node) {
            Some(n) => {
                if n.online != online {
                    n.online = online;
                    n.offline_since = (!online).then_some(now);
                }
                true
            }
            None => false,
        })
    }

    /// Force a node's quorum view (`None` = majority of online nodes).
    pub fn set_node_quorate(&self, node: &str, quorate: Option<bool>) -> bool {
        self.with_state(|st, _| match st.node_mut(node) {
            Some(n) => {
                n.quorate_override = quorate;
                true
            }
            None => false,
        })
    }

    /// Replace the guest-agent behaviour of a VM.
    pub fn set_agent(&self, vmid: u32, agent: AgentSeed) -> bool {
        self.with_state(|st, _| match st.guests.get_mut(&vmid) {
            Some(g) => {
                g.agent = agent;
                true
            }
            None => false,
        })
    }

    pub fn set_agent_state(&self, vmid: u32, state: AgentState) -> bool {
        self.with_state(|st, _| match st.guests.get_mut(&vmid) {
            Some(g) => {
                g.agent.state = state;
                true
            }
            None => false,
        })
    }

    /// Addresses the guest reports on NIC `net<index>` (`addr/prefix`).
    pub fn set_guest_addresses(&self, vmid: u32, index: usize, addresses: &[&str]) -> bool {
        self.with_state(|st, _| match st.guests.get_mut(&vmid) {
            Some(g) => {
                g.addresses
                    .insert(index, addresses.iter().map(|a| a.to_string()).collect());
                true
            }
            None => false,
        })
    }

    /// The next API config write of `vmid` finds that a human has just
    /// replaced the notes with `notes` (so a write with the old digest fails).
    pub fn inject_digest_race(&self, vmid: u32, notes: &str) {
        self.with_state(|st, _| {
            st.digest_races.insert(vmid, notes.to_string());
        });
    }

    pub fn set_task_durations(&self, d: TaskDurations) {
        self.with_state(|st, _| st.settings.options.tasks = d);
    }

    /// Change any option at run time.
    pub fn update_options(&self, f: impl FnOnce(&mut ClusterOptions)) {
        self.with_state(|st, _| f(&mut st.settings.options));
    }

    pub fn set_auth_failure_delay(&self, on: bool) {
        self.update_options(|o| o.auth_failure_delay = on);
    }

    /// Legacy error bodies `{"data":null}` on or off.
    pub fn set_legacy_error_body(&self, on: bool) {
        self.with_state(|st, _| st.settings.legacy_error_body = on);
    }

    /// Old, specific 401 texts on or off.
    pub fn set_legacy_auth_texts(&self, on: bool) {
        self.with_state(|st, _| st.settings.legacy_auth_texts = on);
    }

    pub fn set_resources_lag(&self, lag: Duration) {
        self.update_options(|o| o.resources_lag_secs = lag.as_secs_f64());
    }

    /// Grant `role` on `path` to `subject` (`user@realm`, `user@realm!tok`,
    /// `@group`).
    pub fn grant(&self, path: &str, subject: &str, role: &str) {
        self.with_state(|st, _| st.access.grant(path, subject, role));
    }

    /// Delete an API token (`user@realm!name`); its requests then get 401.
    pub fn revoke_token(&self, token_id: &str) -> bool {
        self.with_state(|st, _| st.access.tokens.remove(token_id).is_some())
    }

    /// Set a token's expiry (epoch seconds on the lab clock, 0 = never).
    pub fn set_token_expire(&self, token_id: &str, expire: u64) -> bool {
        self.with_state(|st, _| match st.access.tokens.get_mut(token_id) {
            Some(t) => {
                t.expire = expire;
                true
            }
            None => false,
        })
    }

    /// Enable or disable a user (and so all its tokens).
    pub fn set_user_enabled(&self, userid: &str, enabled: bool) -> bool {
        self.with_state(|st, _| match st.access.users.get_mut(userid) {
            Some(u) => {
                u.enabled = enabled;
                true
            }
            None => false,
        })
    }

    /// Every run-state transition so far, in order.
    pub fn power_history(&self) -> Vec<PowerEvent> {
        self.with_state(|st, _| st.power_log.clone())
    }

    /// VMIDs that were started (in order, repeats kept).
    pub fn started_guests(&self) -> Vec<u32> {
        self.power_filter("started")
    }

    pub fn stopped_guests(&self) -> Vec<u32> {
        self.power_filter("stopped")
    }

    fn power_filter(&self, change: &str) -> Vec<u32> {
        self.power_history()
            .into_iter()
            .filter(|e| e.change == change)
            .map(|e| e.vmid)
            .collect()
    }

    /// Power actions requested through the API.
    pub fn power_counters(&self) -> PowerCounters {
        self.with_state(|st, _| st.counters)
    }

    pub fn running_guests(&self) -> Vec<u32> {
        self.with_state(|st, _| {
            st.guests
                .values()
                .filter(|g| g.is_running())
                .map(|g| g.vmid)
                .collect()
        })
    }

    /// All tasks in creation order.
    pub fn tasks(&self) -> Vec<TaskSnapshot> {
        self.with_state(|st, _| {
            st.task_order
                .iter()
                .filter_map(|u| st.tasks.get(u))
                .map(|t| TaskSnapshot {
                    upid: t.upid.clone(),
                    node: t.node.clone(),
                    kind: t.kind.clone(),
                    id: t.id.clone(),
                    authid: t.authid(),
                    done: t.done,
                    exitstatus: t.done.then(|| t.exitstatus()),
                })
                .collect()
        })
    }

    /// Successful config writes of `vmid` through the API.
    pub fn config_writes(&self, vmid: u32) -> u64 {
        self.with_state(|st, _| st.config_writes.get(&vmid).copied().unwrap_or(0))
    }
}
