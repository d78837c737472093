//! Validation of `sync`, `encryption` and `logging`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use ipnet::IpNet;

use super::super::raw::{At, ParameterLists, RawEncryption, RawFilter, RawLogging, RawSync, Text};
use super::super::selector::{Filter, Selector, VmidRange};
use super::super::settings::{
    EncryptionSettings, Grouping, LogFormat, LoggingSettings, PruneSettings, SyncSettings,
};
use super::{DEFAULT_NAME_TEMPLATE, Validator, one_of_message};

const PROTOCOLS: &[&str] = &["rdp", "vnc", "ssh", "telnet"];
/// Parameters the daemon always sets itself; notes may never override them.
const RESERVED_PARAMETERS: &[&str] = &["hostname", "port", "username", "password"];

impl Validator<'_> {
    // ── Sync ───────────────────────────────────────────────────────────────

    pub(super) fn sync(
        &mut self,
        raw: Option<&At<RawSync>>,
        encryption: &EncryptionSettings,
    ) -> SyncSettings {
        let empty = RawSync {
            interval: None,
            jitter: None,
            dry_run: None,
            max_changes_per_cycle: None,
            prune: None,
            name_template: None,
            grouping: None,
            include: None,
            exclude: None,
            auto_encrypt: None,
            allowed_networks: None,
            allow_dns_names: None,
            extra_allowed_parameters: None,
            verify_interval: None,
        };
        let s = raw.map_or(&empty, |at| &at.value);
        let interval = self.duration(
            s.interval.as_ref(),
            "sync.interval",
            Duration::from_secs(300),
            false,
        );
        let jitter = match &s.jitter {
            Some(at) if !(0.0..=0.5).contains(&at.value) => {
                self.error(
                    at,
                    "sync.jitter",
                    "expected a fraction from 0 to 0.5, such as 0.1 (±10 %)",
                );
                0.1
            }
            Some(at) => at.value,
            None => 0.1,
        };
        let max_changes = self.nonzero_u32(
            s.max_changes_per_cycle.as_ref(),
            "sync.max_changes_per_cycle",
            100,
        );
        let prune = match &s.prune {
            Some(at) => PruneSettings {
                enabled: at.value.enabled.as_ref().is_none_or(|b| b.value),
                grace: self.duration(
                    at.value.grace.as_ref(),
                    "sync.prune.grace",
                    Duration::from_secs(3600),
                    true,
                ),
            },
            None => PruneSettings {
                enabled: true,
                grace: Duration::from_secs(3600),
            },
        };
        let name_template = match &s.name_template {
            Some(at) => {
                let t = at.value.0.clone();
                if t.trim().is_empty() {
                    self.error(
                        at,
                        "sync.name_template",
                        "expected a name template such as {user}@{vmname}-{proto}",
                    );
                } else if t.to_ascii_lowercase().contains("{password}") {
                    self.error(
                        at,
                        "sync.name_template",
                        "{password} is not allowed: secrets never go into names",
                    );
                }
                t
            }
            None => DEFAULT_NAME_TEMPLATE.to_owned(),
        };
        let grouping = match &s.grouping {
            Some(at) => Grouping::parse(at.value.0.trim()).unwrap_or_else(|| {
                self.error(
                    at,
                    "sync.grouping",
                    one_of_message(&at.value.0, Grouping::NAMES),
                );
                Grouping::None
            }),
            None => Grouping::None,
        };
        let selector = Selector {
            include: self.filter(s.include.as_ref(), "sync.include"),
            exclude: self.filter(s.exclude.as_ref(), "sync.exclude"),
        };
        let auto_encrypt = s.auto_encrypt.as_ref().is_some_and(|b| b.value);
        if let Some(at) = &s.auto_encrypt
            && at.value
            && encryption.keys.is_empty()
        {
            self.error(
                at,
                "sync.auto_encrypt",
                "needs at least one key under encryption.keys",
            );
        }
        let allowed_networks = self.networks(s.allowed_networks.as_ref());
        let allow_dns_names = s.allow_dns_names.as_ref().is_some_and(|b| b.value);
        let extra_allowed_parameters = self.extra_parameters(s.extra_allowed_parameters.as_ref());
        let verify_interval = self.duration(
            s.verify_interval.as_ref(),
            "sync.verify_interval",
            Duration::from_secs(3600),
            false,
        );
        SyncSettings {
            interval,
            jitter,
            dry_run: s.dry_run.as_ref().is_some_and(|b| b.value),
            max_changes_per_cycle: NonZeroUsize::new(max_changes.get() as usize).expect("non-zero"),
            prune,
            name_template,
            grouping,
            selector,
            auto_encrypt,
            allowed_networks,
            allow_dns_names,
            extra_allowed_parameters,
            verify_interval,
        }
    }

    fn filter(&mut self, at: Option<&At<RawFilter>>, key: &str) -> Filter {
        let Some(at) = at else {
            return Filter::default();
        };
        let f = &at.value;
        let mut filter = Filter {
            tags: self.names(f.tags.as_ref(), &format!("{key}.tags"), "a tag"),
            nodes: self.names(f.nodes.as_ref(), &format!("{key}.nodes"), "a node name"),
            pools: self.names(f.pools.as_ref(), &format!("{key}.pools"), "a pool name"),
            vmids: Vec::new(),
        };
        for t in &mut filter.tags {
            *t = t.to_lowercase();
        }
        if let Some(list) = &f.vmids {
            for (i, item) in list.value.iter().enumerate() {
                match VmidRange::parse(&item.value.0) {
                    Ok(r) => filter.vmids.push(r),
                    Err(e) => self.error(item, &format!("{key}.vmids[{i}]"), e.to_string()),
                }
            }
        }
        filter
    }

    fn names(&mut self, list: Option<&At<Vec<At<Text>>>>, key: &str, what: &str) -> Vec<String> {
        let Some(list) = list else { return Vec::new() };
        let mut out = Vec::new();
        for (i, item) in list.value.iter().enumerate() {
            let name = item.value.0.trim();
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == ',' || c == ';')
            {
                self.error(
                    item,
                    &format!("{key}[{i}]"),
                    format!("expected {what} (no spaces, commas or semicolons)"),
                );
            } else {
                out.push(name.to_owned());
            }
        }
        out
    }

    fn networks(&mut self, list: Option<&At<Vec<At<Text>>>>) -> Vec<IpNet> {
        let Some(list) = list else { return Vec::new() };
        let mut out = Vec::new();
        for (i, item) in list.value.iter().enumerate() {
            let key = format!("sync.allowed_networks[{i}]");
            let text = item.value.0.trim();
            let net = match (text.parse::<IpNet>(), text.parse::<IpAddr>()) {
                (Ok(net), _) => net,
                (_, Ok(addr)) => IpNet::from(addr),
                _ => {
                    self.error(item, &key, "expected an address range in CIDR form, such as 10.20.0.0/16, or one address");
                    continue;
                }
            };
            if net.trunc() != net {
                self.error(
                    item,
                    &key,
                    format!(
                        "has bits set after the prefix length; did you mean {}?",
                        net.trunc()
                    ),
                );
                continue;
            }
            out.push(net);
        }
        out
    }

    fn extra_parameters(
        &mut self,
        raw: Option<&At<ParameterLists>>,
    ) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let Some(raw) = raw else { return out };
        for (proto, params) in &raw.value.0 {
            let name = proto.value.0.trim().to_ascii_lowercase();
            let key = format!("sync.extra_allowed_parameters.{name}");
            if !PROTOCOLS.contains(&name.as_str()) {
                self.error(proto, &key, one_of_message(&name, PROTOCOLS));
                continue;
            }
            let set = out.entry(name).or_default();
            for (i, p) in params.value.iter().enumerate() {
                let param = p.value.0.trim();
                let key = format!("{key}[{i}]");
                if param.is_empty()
                    || !param
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                {
                    self.error(
                        p,
                        &key,
                        "expected a Guacamole parameter name such as enable-wallpaper",
                    );
                } else if RESERVED_PARAMETERS.contains(&param) {
                    self.error(
                        p,
                        &key,
                        format!("`{param}` is always set by pve-guac-sync; notes may not set it"),
                    );
                } else {
                    set.insert(param.to_owned());
                }
            }
        }
        out
    }

    // ── Encryption, logging ────────────────────────────────────────────────

    pub(super) fn encryption(&mut self, raw: Option<&At<RawEncryption>>) -> EncryptionSettings {
        let mut keys = Vec::new();
        if let Some(list) = raw.and_then(|at| at.value.keys.as_ref()) {
            for (i, k) in list.value.iter().enumerate() {
                let key = format!("encryption.keys[{i}]");
                let secret = self.secret(k, &key);
                if let Some(chars) = crate::crypto::broken_fernet_key(secret.expose()) {
                    self.warn(
                        k,
                        &key,
                        format!(
                            "looks like a Fernet key but is not a valid one ({chars} characters, a Fernet key has 44); it would be used as a legacy passphrase"
                        ),
                    );
                }
                keys.push(secret);
            }
        }
        EncryptionSettings { keys }
    }

    pub(super) fn logging(&mut self, raw: Option<&At<RawLogging>>) -> LoggingSettings {
        let mut logging = LoggingSettings {
            format: LogFormat::Auto,
            level: "info".to_owned(),
        };
        let Some(at) = raw else { return logging };
        if let Some(f) = &at.value.format {
            match LogFormat::parse(f.value.0.trim()) {
                Some(format) => logging.format = format,
                None => self.error(
                    f,
                    "logging.format",
                    one_of_message(&f.value.0, LogFormat::NAMES),
                ),
            }
        }
        if let Some(l) = &at.value.level {
            let level = l.value.0.trim().to_owned();
            if level.is_empty() || tracing_subscriber::EnvFilter::try_new(&level).is_err() {
                self.error(
                    l,
                    "logging.level",
                    "expected a level (error, warn, info, debug, trace) or a filter such as pve_guac_sync=debug,info",
                );
            } else {
                logging.level = level;
            }
        }
        logging
    }
}
