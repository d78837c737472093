//! Fault soak: the service loop (in-process [`Daemon`], one cycle per
//! [`Control::SyncNow`]) runs hundreds of cycles against the lab while a
//! seeded RNG injects faults and changes the cluster and Guacamole under it.
//! After every cycle the invariants are checked against the lab's state; at
//! the end the faults stop and the loop must converge to zero writes.
//!
//! Bounded by default (`SOAK_CYCLES`, 200); replay a run with its printed
//! seed: `SOAK_SEED=… SOAK_CYCLES=5000 cargo test --release --test soak -- --nocapture`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use pve_guac_lab::guacamole::{ConnectionGroupSeed, ConnectionSeed, GuacamoleSeed};
use pve_guac_lab::proxmox::{ClusterSeed, GuestSeed};
use pve_guac_lab::{FaultRule, Lab, LabSeed};
use pve_guac_sync::crypto::Keyring;
use pve_guac_sync::daemon::{Control, Daemon, DaemonStatus};
use pve_guac_sync::notes::{migrate, verify_migration};
use pve_guac_sync::secret::Secret;
use pve_guac_sync::systemd::Notifier;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, watch};

const ROOT: &str = "pve-guac-sync";
const TAG: &str = "guac-power-up";
const OUTSIDE_GROUP: &str = "Servers";
const NODES: [&str; 3] = ["pve1", "pve2", "pve3"];
/// The Guacamole admin's password in this run (a secret the logs must not show).
const GUAC_PASSWORD: &str = "Soak-Guac-Adm1n!";

/// Fault kinds, in the order the summary prints them.
const FAULTS: [&str; 11] = [
    "5xx",
    "hang",
    "reset",
    "429-retry-after",
    "503-retry-after",
    "token-expiry",
    "node-offline",
    "digest-race",
    "lab-restart",
    "state-deleted",
    "patch-5xx",
];

/// What the harness believes one guest is.
#[derive(Debug, Clone)]
struct Guest {
    name: String,
    user: String,
    password: String,
    protos: Vec<&'static str>,
    /// The note block is deliberately broken (connections must be held).
    broken: bool,
    power_up: bool,
    /// The notes as the harness last wrote them (plaintext passwords).
    notes: String,
    /// A digest race is armed with these notes and has not fired yet.
    race: Option<String>,
}

impl Guest {
    fn render(&self) -> String {
        let protos = self.protos.join(",");
        let block = if self.broken {
            format!(
                "user:\"{}\" pass:\"{}\" protos:\"bogus\";",
                self.user, self.password
            )
        } else {
            format!(
                "user:\"{}\" pass:\"{}\" protos:\"{protos}\";",
                self.user, self.password
            )
        };
        format!("Owner: team {}\n{block}\nfree text stays", self.name)
    }

    fn connection_name(&self, proto: &str) -> String {
        format!("{}@{}-{proto}", self.user, self.name)
    }
}

struct Soak {
    lab: Lab,
    rng: StdRng,
    guests: BTreeMap<u32, Guest>,
    next_vmid: u32,
    /// Guacamole id of each (vmid, protocol) connection seen so far.
    ids: BTreeMap<(u32, &'static str), String>,
    /// Every connection outside the managed group, as the harness left it.
    outside: BTreeMap<String, (String, String, String, BTreeMap<String, String>)>,
    /// Managed connections edited by hand, with the value planted.
    hand_edited: BTreeMap<String, String>,
    offline: Vec<&'static str>,
    running_since: BTreeMap<u32, std::time::Instant>,
    faults: BTreeMap<&'static str, u64>,
    violations: Vec<String>,
    keyring: Keyring,
    state_file: std::path::PathBuf,
}

fn address(vmid: u32) -> String {
    format!("192.0.2.{}/24", vmid % 250 + 1)
}

fn guest_seed(vmid: u32, g: &Guest) -> GuestSeed {
    let mut s = GuestSeed::vm(vmid, &g.name, NODES[vmid as usize % 3])
        .agent("1")
        .notes(&g.notes)
        .nic(
            &format!("BC:24:11:00:{:02X}:{:02X}", vmid / 256, vmid % 256),
            &address(vmid),
        );
    if g.power_up {
        s = s.tags(&[TAG]);
        s.guest_agent.boot_delay_secs = 5.0;
    } else {
        s = s.running();
    }
    s
}

fn new_guest(vmid: u32, power_up: bool) -> Guest {
    let mut g = Guest {
        name: format!("vm{vmid}"),
        user: format!("u{vmid}"),
        password: format!("Pw-{vmid}-0"),
        protos: vec!["ssh"],
        broken: false,
        power_up,
        notes: String::new(),
        race: None,
    };
    if vmid.is_multiple_of(4) {
        g.protos.push("rdp");
    }
    g.notes = g.render();
    g
}

fn lab_seed(guests: &BTreeMap<u32, Guest>) -> LabSeed {
    let mut cluster = ClusterSeed::example("lab");
    cluster.guests = guests.iter().map(|(v, g)| guest_seed(*v, g)).collect();
    let mut guac = GuacamoleSeed::default();
    let mut group = ConnectionGroupSeed::new(OUTSIDE_GROUP);
    group.identifier = Some(1);
    guac.connection_groups.push(group);
    for (i, name) in ["hand-ssh", "hand-vnc"].iter().enumerate() {
        guac.connections.push(ConnectionSeed {
            identifier: Some(i as u64 + 1),
            name: (*name).to_owned(),
            protocol: if i == 0 { "ssh" } else { "vnc" }.to_owned(),
            parent: Some("1".to_owned()),
            parameters: [("hostname".to_owned(), "192.0.2.10".to_owned())].into(),
            attributes: BTreeMap::new(),
            last_active_ms: None,
        });
    }
    // The managed group's name also appears by hand outside it.
    guac.connections.push(ConnectionSeed {
        identifier: Some(3),
        name: "u1000@vm1000-ssh".to_owned(),
        protocol: "ssh".to_owned(),
        parent: None,
        parameters: [("hostname".to_owned(), "192.0.2.11".to_owned())].into(),
        attributes: BTreeMap::new(),
        last_active_ms: None,
    });
    LabSeed {
        guacamole: guac,
        ..LabSeed::with_clusters(vec![cluster])
    }
}

fn sync_yaml() -> String {
    format!(
        "  interval: 1h\n  jitter: 0\n  grouping: none\n  auto_encrypt: true\n  max_changes_per_cycle: 500\n  verify_interval: 1h\n  prune: {{enabled: true, grace: 0s}}\ndiscovery:\n  power_up: {{enabled: true, tag: {TAG}, wait: 3s, shutdown_timeout: 10s}}"
    )
}

/// The shared test config with short timeouts, so a hung request costs
/// about a second.
fn soak_config(lab: &Lab) -> Setup {
    let setup = config(lab, &sync_yaml());
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let text = text
        .replace(
            "timeouts: {connect: 2s, request: 10s}",
            "timeouts: {connect: 1s, request: 1s}",
        )
        .replace(
            "  retry: {max_attempts: 2, base_delay: 10ms, max_delay: 200ms}\nsync:",
            "  retry: {max_attempts: 2, base_delay: 10ms, max_delay: 200ms}\n  timeouts: {connect: 1s, request: 1s}\nsync:",
        );
    let text = text.replace(
        "  password: guacadmin\n",
        &format!("  password: \"{GUAC_PASSWORD}\"\n"),
    );
    assert!(text.contains("request: 1s}\nsync:"), "{text}");
    assert!(text.contains(GUAC_PASSWORD));
    std::fs::write(&setup.config, text).unwrap();
    setup
}

/// Managed group identifier and every group below it.
fn managed_groups(lab: &Lab) -> BTreeSet<String> {
    let groups = lab.guacamole().groups();
    let mut inside: BTreeSet<String> = groups
        .iter()
        .filter(|g| g.name == ROOT && g.parent == "ROOT")
        .map(|g| g.identifier.clone())
        .collect();
    loop {
        let before = inside.len();
        for g in &groups {
            if inside.contains(&g.parent) {
                inside.insert(g.identifier.clone());
            }
        }
        if inside.len() == before {
            return inside;
        }
    }
}

type Snapshot = (String, String, String, BTreeMap<String, String>);

fn outside_connections(lab: &Lab) -> BTreeMap<String, Snapshot> {
    let managed = managed_groups(lab);
    lab.guacamole()
        .connections()
        .into_iter()
        .filter(|c| !managed.contains(&c.parent))
        .map(|c| {
            (
                c.identifier.clone(),
                (c.name, c.parent, c.protocol, c.parameters),
            )
        })
        .collect()
}

impl Soak {
    fn violation(&mut self, cycle: u64, what: String) {
        eprintln!("VIOLATION after cycle {cycle}: {what}");
        self.violations.push(format!("cycle {cycle}: {what}"));
    }

    fn fault(&mut self, kind: &'static str) {
        *self.faults.get_mut(kind).unwrap() += 1;
    }

    /// Arms zero to two faults for the next cycle.
    fn inject_faults(&mut self) {
        let pve = self.lab.proxmox("lab").clone();
        for node in std::mem::take(&mut self.offline) {
            pve.set_node_online(node, true);
        }
        self.lab.faults("guacamole").clear();
        self.lab.faults("lab").clear();
        if self.rng.random_bool(0.3) {
            return;
        }
        for _ in 0..self.rng.random_range(1..=2) {
            let server = if self.rng.random_bool(0.5) {
                "guacamole"
            } else {
                "lab"
            };
            let f = self.lab.faults(server);
            f.set_rng_seed(self.rng.random());
            match self.rng.random_range(0..11) {
                0 => {
                    let status = [500, 502, 503, 504][self.rng.random_range(0..4)];
                    f.add(FaultRule::error(status).probability(0.3).times(3));
                    self.fault("5xx");
                }
                1 => {
                    f.add(FaultRule::hang().probability(0.5).times(1));
                    self.fault("hang");
                }
                2 => {
                    f.add(FaultRule::reset().probability(0.3).times(2));
                    self.fault("reset");
                }
                3 => {
                    f.add(FaultRule::retry_after(429, 1).probability(0.5).times(1));
                    self.fault("429-retry-after");
                }
                4 => {
                    f.add(FaultRule::retry_after(503, 1).probability(0.5).times(1));
                    self.fault("503-retry-after");
                }
                5 => {
                    self.lab.guacamole().expire_all_tokens();
                    self.fault("token-expiry");
                }
                6 => {
                    let node = NODES[self.rng.random_range(1..3)];
                    pve.set_node_online(node, false);
                    self.offline.push(node);
                    self.fault("node-offline");
                }
                7 => {
                    if self.race() {
                        self.fault("digest-race");
                    }
                }
                8 => {
                    // What a restart of both servers does to a client:
                    // every session gone, every Proxmox node unreachable
                    // for this cycle; the data survives.
                    self.lab.guacamole().expire_all_tokens();
                    for node in NODES {
                        pve.set_node_online(node, false);
                        self.offline.push(node);
                    }
                    self.fault("lab-restart");
                }
                9 => {
                    let _ = std::fs::remove_file(&self.state_file);
                    self.fault("state-deleted");
                }
                _ => {
                    self.lab.faults("guacamole").add(
                        FaultRule::error([502, 504][self.rng.random_range(0..2)])
                            .method("PATCH")
                            .times(1),
                    );
                    self.fault("patch-5xx");
                }
            }
        }
    }

    /// Arms a digest race on a guest whose plaintext password the daemon is
    /// about to encrypt: a person saves new notes at the same moment.
    fn race(&mut self) -> bool {
        let pve = self.lab.proxmox("lab").clone();
        let candidates: Vec<u32> = self
            .guests
            .iter()
            .filter(|(v, g)| {
                !g.broken
                    && g.race.is_none()
                    && pve.notes(**v).is_some_and(|n| n.contains("pass:\""))
            })
            .map(|(v, _)| *v)
            .collect();
        if candidates.is_empty() {
            return false;
        }
        let vmid = candidates[self.rng.random_range(0..candidates.len())];
        let g = self.guests.get_mut(&vmid).unwrap();
        g.password = format!("{}-raced", g.password);
        let text = g.render();
        pve.inject_digest_race(vmid, &text);
        g.race = Some(text);
        true
    }

    /// Zero to three changes a person makes between cycles.
    fn change_world(&mut self) {
        let pve = self.lab.proxmox("lab").clone();
        for _ in 0..self.rng.random_range(0..=3) {
            let editable: Vec<u32> = self
                .guests
                .iter()
                .filter(|(_, g)| g.race.is_none() && !g.power_up)
                .map(|(v, _)| *v)
                .collect();
            let pick = |rng: &mut StdRng| editable[rng.random_range(0..editable.len())];
            match self.rng.random_range(0..9) {
                0 if self.guests.len() < 24 => {
                    let vmid = self.next_vmid;
                    self.next_vmid += 1;
                    let g = new_guest(vmid, false);
                    pve.add_guest(guest_seed(vmid, &g));
                    self.guests.insert(vmid, g);
                }
                1 if editable.len() > 6 => {
                    let vmid = pick(&mut self.rng);
                    pve.remove_guest(vmid);
                    self.guests.remove(&vmid);
                }
                2 if !editable.is_empty() => {
                    let vmid = pick(&mut self.rng);
                    let g = self.guests.get_mut(&vmid).unwrap();
                    g.name = format!("vm{vmid}-r{}", self.rng.random_range(0..1000));
                    pve.set_config_value(vmid, "name", Some(g.name.clone().into()));
                }
                3 if !editable.is_empty() => {
                    let vmid = pick(&mut self.rng);
                    let g = self.guests.get_mut(&vmid).unwrap();
                    g.password = format!("Pw-{vmid}-{}", self.rng.random_range(0..1000));
                    g.notes = g.render();
                    pve.set_notes(vmid, &g.notes);
                }
                4 if !editable.is_empty() => {
                    let vmid = pick(&mut self.rng);
                    let g = self.guests.get_mut(&vmid).unwrap();
                    g.broken = !g.broken;
                    g.notes = g.render();
                    pve.set_notes(vmid, &g.notes);
                }
                5 if !editable.is_empty() => {
                    let vmid = pick(&mut self.rng);
                    let g = self.guests.get_mut(&vmid).unwrap();
                    if g.protos.len() == 1 {
                        g.protos.push("vnc");
                    } else {
                        g.protos.pop();
                    }
                    g.notes = g.render();
                    pve.set_notes(vmid, &g.notes);
                }
                6 => self.edit_managed_by_hand(),
                7 => self.edit_outside_by_hand(),
                _ => {}
            }
        }
    }

    /// A person changes the hostname of a managed connection; the daemon
    /// puts it back (checked at the end).
    fn edit_managed_by_hand(&mut self) {
        let managed = managed_groups(&self.lab);
        let g = self.lab.guacamole().clone();
        let conns: Vec<_> = g
            .connections()
            .into_iter()
            .filter(|c| managed.contains(&c.parent))
            // A stopped guest's connection is held while its address is
            // unknown, so an edit there legitimately stays.
            .filter(|c| {
                !self
                    .guests
                    .values()
                    .any(|g| g.power_up && c.name.starts_with(&format!("{}@", g.user)))
            })
            .collect();
        if conns.is_empty() {
            return;
        }
        let c = &conns[self.rng.random_range(0..conns.len())];
        if self.rng.random_bool(0.3) {
            // Renamed by hand: put back next cycle (checked at the end by
            // name, all along by identifier).
            g.rename_connection(&c.identifier, &format!("{}-by-hand", c.name));
            return;
        }
        let value = format!("192.0.2.{}", 200 + self.rng.random_range(0..50));
        g.set_parameter(&c.identifier, "hostname", Some(&value));
        self.hand_edited.insert(c.identifier.clone(), value);
    }

    /// A person adds, renames or re-parameterises a connection outside the
    /// managed group; the harness records what it did.
    fn edit_outside_by_hand(&mut self) {
        let g = self.lab.guacamole().clone();
        let ids: Vec<String> = self.outside.keys().cloned().collect();
        match self.rng.random_range(0..3) {
            0 => {
                let n = self.rng.random_range(0..100_000);
                let parent = if self.rng.random_bool(0.5) {
                    "1"
                } else {
                    "ROOT"
                };
                let seed = ConnectionSeed {
                    identifier: None,
                    name: format!("hand-{n}"),
                    protocol: "rdp".to_owned(),
                    parent: (parent != "ROOT").then(|| parent.to_owned()),
                    parameters: [("hostname".to_owned(), "192.0.2.12".to_owned())].into(),
                    attributes: BTreeMap::new(),
                    last_active_ms: None,
                };
                g.add_connection(seed).expect("hand-made connection");
            }
            1 if !ids.is_empty() => {
                let id = &ids[self.rng.random_range(0..ids.len())];
                g.rename_connection(
                    id,
                    &format!("hand-renamed-{}", self.rng.random_range(0..1000)),
                );
            }
            _ if !ids.is_empty() => {
                let id = &ids[self.rng.random_range(0..ids.len())];
                g.set_parameter(
                    id,
                    "port",
                    Some(&self.rng.random_range(1000..2000).to_string()),
                );
            }
            _ => {}
        }
        self.outside = outside_connections(&self.lab);
    }

    /// Invariants after one cycle. `calm` = no fault was armed.
    fn check(&mut self, cycle: u64) {
        let g = self.lab.guacamole().clone();
        let managed = managed_groups(&self.lab);
        // 1. Nothing outside the managed group changed.
        let outside = outside_connections(&self.lab);
        if outside != self.outside {
            let before: BTreeSet<_> = self.outside.iter().collect();
            let after: BTreeSet<_> = outside.iter().collect();
            let gone: Vec<_> = before
                .difference(&after)
                .map(|(id, s)| (id, &s.0))
                .collect();
            let new: Vec<_> = after
                .difference(&before)
                .map(|(id, s)| (id, &s.0))
                .collect();
            self.violation(cycle, format!("outside changed: was {gone:?}, now {new:?}"));
            self.outside = outside;
        }
        let inside: Vec<_> = g
            .connections()
            .into_iter()
            .filter(|c| managed.contains(&c.parent))
            .collect();
        // 2. No duplicates in the managed group.
        let mut names = BTreeMap::<&str, usize>::new();
        for c in &inside {
            *names.entry(c.name.as_str()).or_default() += 1;
        }
        let dups: Vec<_> = names.iter().filter(|(_, n)| **n > 1).collect();
        if !dups.is_empty() {
            self.violation(cycle, format!("duplicate connections: {dups:?}"));
        }
        // 3. No connection of an existing guest lost (same Guacamole id).
        let by_id: BTreeMap<&str, &str> = inside
            .iter()
            .map(|c| (c.identifier.as_str(), c.name.as_str()))
            .collect();
        let by_name: BTreeMap<&str, &str> = inside
            .iter()
            .map(|c| (c.name.as_str(), c.identifier.as_str()))
            .collect();
        self.ids.retain(|(vmid, proto), _| {
            self.guests
                .get(vmid)
                .is_some_and(|g| g.protos.contains(proto))
        });
        let mut lost = Vec::new();
        for ((vmid, proto), id) in &self.ids {
            if !by_id.contains_key(id.as_str()) {
                lost.push(format!("vm {vmid} {proto} (id {id})"));
            }
        }
        for l in lost {
            self.violation(
                cycle,
                format!("connection of an existing guest deleted: {l}"),
            );
        }
        for (vmid, guest) in &self.guests {
            if guest.broken {
                continue;
            }
            for proto in &guest.protos {
                if let Some(id) = by_name.get(guest.connection_name(proto).as_str()) {
                    self.ids.insert((*vmid, proto), (*id).to_owned());
                }
            }
        }
        // 4. Notes differ from what the person wrote only by encryption.
        let pve = self.lab.proxmox("lab").clone();
        let vmids: Vec<u32> = self.guests.keys().copied().collect();
        for vmid in vmids {
            let actual = pve.notes(vmid).unwrap_or_default();
            let guest = self.guests.get_mut(&vmid).unwrap();
            if let Some(raced) = guest.race.clone()
                && self.encrypted_form_of(&raced, &actual)
            {
                let guest = self.guests.get_mut(&vmid).unwrap();
                guest.notes = raced;
                guest.race = None;
                continue;
            }
            let notes = self.guests[&vmid].notes.clone();
            if !self.encrypted_form_of(&notes, &actual) {
                if std::env::var_os("SOAK_DEBUG").is_some() {
                    eprintln!("wrote {notes:?}\nfound {actual:?}");
                }
                self.violation(cycle, format!("notes of {vmid} changed beyond encryption"));
            }
        }
        // 5. No guest the daemon started stays running past its power-up
        //    (`wait` + `shutdown_timeout` and some slack; they run beside
        //    the loop, so one may be up between two cycles).
        let now = std::time::Instant::now();
        let running = self.powered_up_running();
        self.running_since.retain(|v, _| running.contains(v));
        for v in running {
            let since = *self.running_since.entry(v).or_insert(now);
            if now - since > Duration::from_secs(30) {
                self.violation(cycle, format!("powered-up guest {v} left running"));
                self.running_since.remove(&v);
            }
        }
    }

    /// Power-up guests that are running and whose last start was ours.
    fn powered_up_running(&self) -> Vec<u32> {
        let pve = self.lab.proxmox("lab");
        let mut last: BTreeMap<u32, &'static str> = BTreeMap::new();
        for e in pve.power_history() {
            last.insert(e.vmid, e.change);
        }
        last.iter()
            .filter(|(v, change)| {
                **change == "started" && self.guests.get(v).is_some_and(|g| g.power_up)
            })
            .map(|(v, _)| *v)
            .filter(|v| pve.guest(*v).is_some_and(|g| g.status == "running"))
            .collect()
    }

    /// `actual` is `written` or `written` with plaintext passwords replaced
    /// by tokens that decrypt to them, every other byte equal.
    fn encrypted_form_of(&self, written: &str, actual: &str) -> bool {
        if written == actual {
            return true;
        }
        let m = migrate(written, &self.keyring, &BTreeSet::new());
        m.changed()
            && strip_tokens(&m.text) == strip_tokens(actual)
            && verify_migration(actual, &self.keyring, &m.migrated).is_ok()
    }

    /// Every desired connection exists, with what the daemon would write.
    fn check_converged(&mut self, cycle: u64) {
        let managed = managed_groups(&self.lab);
        let g = self.lab.guacamole().clone();
        let inside: BTreeMap<String, _> = g
            .connections()
            .into_iter()
            .filter(|c| managed.contains(&c.parent))
            .map(|c| (c.name.clone(), c))
            .collect();
        let mut missing = Vec::new();
        // A power-up guest whose power-up failed (a fault) waits out its
        // cooldown with its address unknown: held, legitimately absent.
        let mut expected = BTreeSet::new();
        for guest in self.guests.values().filter(|g| !g.broken && !g.power_up) {
            for proto in &guest.protos {
                expected.insert(guest.connection_name(proto));
                let name = guest.connection_name(proto);
                if !inside.contains_key(&name) {
                    missing.push(name);
                }
            }
        }
        if !missing.is_empty() {
            self.violation(
                cycle,
                format!("desired connections missing at the end: {missing:?}"),
            );
        }
        for (id, planted) in self.hand_edited.clone() {
            if let Some(c) = g.connection(&id)
                && managed.contains(&c.parent)
                && expected.contains(&c.name)
                && c.parameters.get("hostname") == Some(&planted)
            {
                self.violation(cycle, format!("hand edit of {} never repaired", c.name));
            }
        }
    }
}

fn strip_tokens(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("encrypted_password:\"") {
        let start = at + "encrypted_password:\"".len();
        out.push_str(&rest[..start]);
        let end = rest[start..].find('"').map_or(rest.len(), |e| start + e);
        out.push_str("TOKEN");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

struct Running {
    control: mpsc::UnboundedSender<Control>,
    status: watch::Receiver<DaemonStatus>,
    task: tokio::task::JoinHandle<i32>,
}

/// Sends `SyncNow` and waits (bounded) for the cycle it starts.
async fn one_cycle(run: &mut Running) -> std::sync::Arc<pve_guac_sync::daemon::CycleRecord> {
    let n = run.status.borrow().cycles;
    run.control.send(Control::SyncNow).unwrap();
    let s = tokio::time::timeout(
        Duration::from_secs(120),
        run.status.wait_for(|s| s.cycles > n),
    )
    .await
    .expect("a cycle finishes within 120 s")
    .expect("daemon alive")
    .clone();
    s.last.clone().expect("a record")
}

/// Captures the daemon's logs at debug level, for the secret scan.
fn capture_logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = buffer.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || LogSink(sink.clone()))
        .try_init()
        .expect("the soak owns the log subscriber");
    buffer
}

struct LogSink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn asked_for_a_pause(record: &pve_guac_sync::daemon::CycleRecord) -> bool {
    let pause = |t: &str| t.contains("asked for a pause");
    record.error.as_ref().is_some_and(|(_, e)| pause(e))
        || record
            .report
            .as_ref()
            .is_some_and(|r| r.problems.iter().any(|p| pause(p)))
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_loop_survives_random_faults_and_converges() {
    let seed = env_u64("SOAK_SEED").unwrap_or_else(rand::random);
    let cycles = env_u64("SOAK_CYCLES").unwrap_or(200);
    println!("soak: seed {seed}, {cycles} cycles (replay: SOAK_SEED={seed} SOAK_CYCLES={cycles})");
    eprintln!("soak: seed {seed}, {cycles} cycles");

    let logs = capture_logs();
    let mut soak = Soak::start(seed).await;
    assert!(
        soak.lab
            .guacamole()
            .set_password("guacadmin", GUAC_PASSWORD)
    );
    let setup = soak_config(&soak.lab);
    soak.state_file = setup.dir.path().join("state/state.json");
    soak.outside = outside_connections(&soak.lab);
    let notifier = Notifier::to_socket(setup.dir.path().join("no-notify.sock"));
    let daemon = Daemon::start(&setup.config, notifier).expect("daemon starts");
    let status = daemon.subscribe();
    let (control, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(daemon.run(rx));
    let mut run = Running {
        control,
        status,
        task,
    };

    let started = std::time::Instant::now();
    let mut outcomes = BTreeMap::<&'static str, u64>::new();
    let mut pauses = 0;
    // Cycle errors, problems and status lines, for the secret scan.
    let mut seen = String::new();
    for cycle in 1..=cycles {
        soak.inject_faults();
        soak.change_world();
        let record = one_cycle(&mut run).await;
        *outcomes.entry(record.outcome).or_default() += 1;
        seen.push_str(&format!(
            "{:?} {:?} {}\n",
            record.error,
            record.report.as_ref().map(|r| &r.problems),
            pve_guac_sync::daemon::status::status_line(&run.status.borrow())
        ));
        if std::env::var_os("SOAK_DEBUG").is_some() {
            let problems = record.report.as_ref().map(|r| r.problems.clone());
            eprintln!(
                "cycle {cycle}: {} {:?} {problems:?}",
                record.outcome, record.error
            );
        }
        soak.check(cycle);
        if asked_for_a_pause(&record) {
            // Honouring `Retry-After` is the point; cycles inside the pause
            // would test nothing new.
            pauses += 1;
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        if !soak.violations.is_empty() && std::env::var_os("SOAK_KEEP_GOING").is_none() {
            break;
        }
    }

    // The faults stop: the loop converges, then a cycle writes nothing.
    soak.lab.faults("guacamole").clear();
    soak.lab.faults("lab").clear();
    let pve = soak.lab.proxmox("lab").clone();
    for node in NODES {
        pve.set_node_online(node, true);
    }
    soak.offline.clear();
    let mut calm = 0;
    let mut converged = false;
    // A reload shortens `verify_interval`: the next cycles verify every
    // parameter, so hand edits made during the run come to light.
    let text = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        text.replace("verify_interval: 1h", "verify_interval: 1s"),
    )
    .unwrap();
    run.control.send(Control::Reload).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        run.status.borrow().reload_problems.is_empty(),
        "{:?}",
        run.status.borrow().reload_problems
    );
    // Power-ups run beside the loop: give them time between calm cycles.
    for _ in 0..30 {
        let record = one_cycle(&mut run).await;
        calm += 1;
        soak.check(cycles + calm);
        let quiet = record.report.as_ref().is_some_and(|r| {
            pve_guac_sync::daemon::status::changes(r) == 0 && r.summary.errors == 0
        }) && soak.powered_up_running().is_empty();
        if quiet {
            converged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if !converged {
        soak.violation(
            cycles + calm,
            "no quiet cycle after the faults stopped".into(),
        );
    }
    let mark = soak.lab.request_mark();
    one_cycle(&mut run).await;
    calm += 1;
    let writes = changes(&soak.lab, mark);
    if !writes.is_empty() {
        soak.violation(
            cycles + calm,
            format!("a converged cycle wrote: {writes:?}"),
        );
    }
    soak.check(cycles + calm);
    soak.check_converged(cycles + calm);

    run.control.send(Control::Shutdown).unwrap();
    let code = tokio::time::timeout(Duration::from_secs(30), run.task)
        .await
        .expect("stops in time")
        .unwrap();
    assert_eq!(code, 0);
    let left = soak.powered_up_running();
    if !left.is_empty() {
        soak.violation(
            cycles + calm,
            format!("powered-up guests running after shutdown: {left:?}"),
        );
    }

    // Secret hygiene: every log line (debug level), cycle error, problem
    // and status line of the run.
    let mut canary = SecretCanary::default().with(GUAC_PASSWORD);
    for guest in soak.guests.values() {
        canary = canary.with(guest.password.clone());
    }
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned() + &seen;
    assert!(text.contains("DEBUG"), "the log capture works");
    canary.assert_clean("soak daemon log", &text);
    let scanned = text.lines().count();

    println!(
        "\nsoak summary (seed {seed}, {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    println!("| item | count |\n|---|---|");
    println!("| cycles with faults and changes | {cycles} |");
    println!("| fault-free closing cycles | {calm} |");
    for (outcome, n) in &outcomes {
        println!("| cycle outcome `{outcome}` | {n} |");
    }
    for (kind, n) in &soak.faults {
        println!("| fault `{kind}` | {n} |");
    }
    println!("| waits for a server-asked pause | {pauses} |");
    println!("| log lines and problems scanned for secrets (0 hits) | {scanned} |");
    println!("| guests at the end | {} |", soak.guests.len());
    println!("| violations | {} |", soak.violations.len());
    assert!(
        soak.violations.is_empty(),
        "seed {seed}: {} violations:\n{}",
        soak.violations.len(),
        soak.violations.join("\n")
    );
}

impl Soak {
    async fn start(seed: u64) -> Self {
        let mut guests = BTreeMap::new();
        for vmid in 1000..1012 {
            guests.insert(vmid, new_guest(vmid, false));
        }
        for vmid in 1100..1103 {
            guests.insert(vmid, new_guest(vmid, true));
        }
        let lab = lab(lab_seed(&guests)).await;
        let keyring = Keyring::new(&[Secret::new(NOTES_PASSPHRASE)]).unwrap();
        Soak {
            lab,
            rng: StdRng::seed_from_u64(seed),
            guests,
            next_vmid: 1012,
            ids: BTreeMap::new(),
            outside: BTreeMap::new(),
            hand_edited: BTreeMap::new(),
            offline: Vec::new(),
            running_since: BTreeMap::new(),
            faults: FAULTS.iter().map(|f| (*f, 0)).collect(),
            violations: Vec::new(),
            keyring,
            state_file: std::path::PathBuf::new(),
        }
    }
}
