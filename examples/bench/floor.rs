//! The floor: the fewest requests the two APIs allow for a phase's work, and
//! the wall time those requests need at the configured rate and concurrency.

use std::collections::BTreeMap;

use anyhow::bail;
use serde_json::{Value, json};

use crate::seed::Mix;

/// Connections one Guacamole 1.6 directory `PATCH` can carry within the
/// server's default 2 MiB request limit (about 600 bytes each).
const CONNECTIONS_PER_PATCH: u64 = 3000;

/// Client limits written into the daemon's configuration (the rate and
/// burst apply to both APIs).
#[derive(Clone, Copy)]
pub(crate) struct Limits {
    pub name: &'static str,
    pub per_second: f64,
    pub burst: u64,
    pub concurrency: u64,
    pub guac_concurrency: u64,
}

impl Limits {
    /// The daemon's defaults.
    pub const DEFAULT: Limits = Limits {
        name: "default",
        per_second: 20.0,
        burst: 10,
        concurrency: 8,
        guac_concurrency: 4,
    };
    pub const RAISED: Limits = Limits {
        name: "raised",
        per_second: 1000.0,
        burst: 100,
        concurrency: 16,
        guac_concurrency: 8,
    };

    pub fn by_name(name: &str) -> anyhow::Result<Limits> {
        match name {
            "default" => Ok(Limits::DEFAULT),
            "raised" => Ok(Limits::RAISED),
            other => bail!("--limits: {other:?} is neither default nor raised"),
        }
    }

    pub fn to_json(self) -> Value {
        json!({"name": self.name, "per_second": self.per_second, "burst": self.burst,
               "concurrency": self.concurrency, "guacamole_concurrency": self.guac_concurrency})
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Latency {
    pub mean_s: f64,
    /// A "guest agent is not running" answer.
    pub agent_down_s: f64,
}

/// What a phase has to read, whatever the writes.
pub(crate) struct Work {
    pub listings: u64,
    pub configs: u64,
    pub agent_asks: u64,
    pub agent_down: u64,
    pub logins: u64,
}

impl Work {
    /// Everything unknown: every running VM's agent is asked once.
    pub fn first(mix: &Mix) -> Work {
        Work {
            listings: 1,
            configs: mix.guests as u64,
            agent_asks: mix.agent_asks(),
            agent_down: mix.agent_down(),
            logins: 1,
        }
    }

    /// Addresses fresh, but the guests whose address is still unknown are
    /// asked again once their discovery backoff runs out (their agent is
    /// not running: each ask is a slow "not running" answer). The daemon
    /// decides when; the floor counts the asks it made, up to the number of
    /// guests whose address is unknown.
    pub fn with_unknown_retried(mut self, mix: &Mix, asked: u64) -> Work {
        let retried = asked.min(mix.agent_down());
        self.agent_asks = retried;
        self.agent_down = retried;
        self
    }

    /// Addresses fresh: listing and configs only.
    pub fn steady(mix: &Mix) -> Work {
        Work {
            listings: 1,
            configs: mix.guests as u64,
            agent_asks: 0,
            agent_down: 0,
            logins: 0,
        }
    }

    /// The floor for this work plus the writes the daemon reported.
    pub fn floor(
        &self,
        changes: &BTreeMap<String, u64>,
        version: &str,
        limits: &Limits,
        latency: Latency,
    ) -> Floor {
        let get = |k: &str| changes.get(k).copied().unwrap_or(0);
        let writes = Writes::needed(
            get("create_group"),
            get("create"),
            get("update"),
            get("delete"),
            version,
            limits,
        );
        let proxmox = self.listings + self.configs + self.agent_asks;
        let guacamole = self.logins + 1 + writes.requests;
        Floor {
            proxmox,
            guacamole,
            wall_s: self.proxmox_wall(limits, latency) + writes.wall(limits, latency),
        }
    }

    /// The listing, then configs and agent asks as fast as the rate, the
    /// concurrency and the slowest answer allow (Guacamole reads overlap).
    fn proxmox_wall(&self, limits: &Limits, latency: Latency) -> f64 {
        let rest = self.configs + self.agent_asks;
        let total = self.listings + rest;
        let by_rate = total.saturating_sub(limits.burst) as f64 / limits.per_second;
        let busy = (rest - self.agent_down) as f64 * latency.mean_s
            + self.agent_down as f64 * latency.agent_down_s;
        let by_concurrency = busy / limits.concurrency as f64;
        // A "not running" answer cannot be split: some request slot serves
        // at least ceil(down / concurrency) of them in a row, each after its
        // guest's config.
        let slowest = if self.agent_down > 0 {
            self.agent_down.div_ceil(limits.concurrency) as f64 * latency.agent_down_s
                + latency.mean_s
        } else if rest > 0 {
            latency.mean_s
        } else {
            0.0
        };
        latency.mean_s * self.listings as f64 + by_rate.max(by_concurrency).max(slowest)
    }
}

pub(crate) struct Floor {
    pub proxmox: u64,
    pub guacamole: u64,
    pub wall_s: f64,
}

/// Guacamole writes: their count and how many latencies they take in a row.
struct Writes {
    requests: u64,
    rounds: u64,
}

impl Writes {
    /// The rounds one latency each, unless the rate (Guacamole's is
    /// configured like Proxmox's) spaces the requests further apart.
    fn wall(&self, limits: &Limits, latency: Latency) -> f64 {
        let by_rate = self.requests.saturating_sub(limits.burst) as f64 / limits.per_second;
        (self.rounds as f64 * latency.mean_s).max(by_rate)
    }

    fn needed(
        groups: u64,
        creates: u64,
        updates: u64,
        deletes: u64,
        version: &str,
        limits: &Limits,
    ) -> Writes {
        if version == "1.6" {
            // Groups first (connections name their parent), then one PATCH
            // per CONNECTIONS_PER_PATCH connection changes.
            let group_patch = u64::from(groups > 0);
            let conn_patches = (creates + updates + deletes).div_ceil(CONNECTIONS_PER_PATCH);
            let n = group_patch + conn_patches;
            return Writes {
                requests: n,
                rounds: n,
            };
        }
        // 1.4/1.5: the directory PATCH only removes; creates and updates go
        // one by one (groups: the root, then the node groups beneath it).
        let c = limits.guac_concurrency.max(1);
        let group_rounds = match groups {
            0 => 0,
            1 => 1,
            _ => 2,
        };
        let deletes_patch = u64::from(deletes > 0);
        Writes {
            requests: groups + creates + updates + deletes_patch,
            rounds: group_rounds + creates.div_ceil(c) + updates.div_ceil(c) + deletes_patch,
        }
    }
}
