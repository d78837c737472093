//! Validation of `discovery`.

use std::net::Ipv4Addr;
use std::num::NonZeroU32;
use std::time::Duration;

use super::super::discovery::{
    DiscoverySettings, PowerUpSettings, ProbeSettings, RawDiscovery, RawPowerUp, RawProbe, RawWol,
    SourceKind, WolSettings,
};
use super::super::raw::{At, Text};
use super::super::settings::SyncSettings;
use super::{Validator, one_of_message};

impl Validator<'_> {
    pub(super) fn discovery(
        &mut self,
        raw: Option<&At<RawDiscovery>>,
        sync: &SyncSettings,
    ) -> DiscoverySettings {
        let mut out = DiscoverySettings::default();
        let Some(at) = raw else { return out };
        let d = &at.value;
        out.refresh = self.duration(d.refresh.as_ref(), "discovery.refresh", out.refresh, false);
        out.cache_ttl = self.duration(
            d.cache_ttl.as_ref(),
            "discovery.cache_ttl",
            out.cache_ttl,
            true,
        );
        if let Some(b) = &d.backoff {
            out.backoff_initial = self.duration(
                b.value.initial.as_ref(),
                "discovery.backoff.initial",
                out.backoff_initial,
                false,
            );
            out.backoff_max = self.duration(
                b.value.max.as_ref(),
                "discovery.backoff.max",
                out.backoff_max,
                false,
            );
            if out.backoff_max < out.backoff_initial {
                self.error(
                    b,
                    "discovery.backoff.max",
                    "must not be shorter than discovery.backoff.initial",
                );
            }
        }
        if let Some(list) = &d.interface_exclude {
            out.interface_exclude = self.patterns(list);
        }
        if let Some(p) = &d.arp_table {
            out.arp_table = self.absolute_path(p, "discovery.arp_table");
        }
        out.probe = self.probe(d.probe.as_ref(), sync);
        if let Some(list) = &d.sources {
            out.sources = self.sources(list, out.probe.enabled);
        } else if out.probe.enabled {
            out.sources.push(SourceKind::Probe);
        }
        out.power_up = self.power_up(d.power_up.as_ref());
        out.wol = self.wol(d.wol.as_ref());
        out
    }

    fn sources(&mut self, list: &At<Vec<At<Text>>>, probe_enabled: bool) -> Vec<SourceKind> {
        let mut out: Vec<SourceKind> = Vec::new();
        for (i, item) in list.value.iter().enumerate() {
            let key = format!("discovery.sources[{i}]");
            let name = item.value.0.trim().to_ascii_lowercase();
            let Some(kind) = SourceKind::parse(&name) else {
                self.error(item, &key, one_of_message(&name, SourceKind::NAMES));
                continue;
            };
            if out.contains(&kind) {
                self.error(item, &key, format!("`{name}` is listed twice"));
            } else if kind == SourceKind::Host && i != 0 {
                self.error(
                    item,
                    &key,
                    "a block's host/ip always wins over discovery: list `host` first or leave it out",
                );
            } else if kind == SourceKind::Probe && !probe_enabled {
                self.error(
                    item,
                    &key,
                    "the active probe is off: set discovery.probe.enabled: true to use it",
                );
            } else {
                out.push(kind);
            }
        }
        if out.is_empty() && !list.value.is_empty() {
            return out;
        }
        if probe_enabled && !out.contains(&SourceKind::Probe) {
            out.push(SourceKind::Probe);
        }
        out
    }

    fn patterns(&mut self, list: &At<Vec<At<Text>>>) -> Vec<String> {
        let mut out = Vec::new();
        for (i, item) in list.value.iter().enumerate() {
            let p = item.value.0.trim();
            if p.is_empty() || p.contains(char::is_whitespace) {
                self.error(
                    item,
                    &format!("discovery.interface_exclude[{i}]"),
                    "expected an interface name pattern such as docker* (no spaces)",
                );
            } else {
                out.push(p.to_owned());
            }
        }
        out
    }

    fn probe(&mut self, raw: Option<&At<RawProbe>>, sync: &SyncSettings) -> ProbeSettings {
        let mut out = ProbeSettings::default();
        let Some(at) = raw else { return out };
        let p = &at.value;
        out.enabled = p.enabled.as_ref().is_some_and(|b| b.value);
        out.per_second = self.nonzero_u32(
            p.per_second.as_ref(),
            "discovery.probe.per_second",
            out.per_second.get(),
        );
        out.max_addresses = self.nonzero_u32(
            p.max_addresses.as_ref(),
            "discovery.probe.max_addresses",
            out.max_addresses.get(),
        );
        if out.max_addresses.get() > 65_536 {
            if let Some(m) = &p.max_addresses {
                self.error(m, "discovery.probe.max_addresses", "expected at most 65536");
            }
            out.max_addresses = NonZeroU32::new(65_536).expect("non-zero");
        }
        out.timeout = self.duration(
            p.timeout.as_ref(),
            "discovery.probe.timeout",
            out.timeout,
            false,
        );
        out.interval = self.duration(
            p.interval.as_ref(),
            "discovery.probe.interval",
            out.interval,
            true,
        );
        // Never a scan of unknown space: the probe needs IPv4 ranges to stay in.
        if out.enabled
            && !sync.allowed_networks.iter().any(|n| n.addr().is_ipv4())
            && let Some(e) = &p.enabled
        {
            self.error(
                e,
                "discovery.probe.enabled",
                "the probe only connects inside sync.allowed_networks: set at least one IPv4 range there",
            );
        }
        out
    }

    fn power_up(&mut self, raw: Option<&At<RawPowerUp>>) -> PowerUpSettings {
        let mut out = PowerUpSettings::default();
        let Some(at) = raw else { return out };
        let p = &at.value;
        out.enabled = p.enabled.as_ref().is_some_and(|b| b.value);
        if let Some(t) = &p.tag {
            let tag = t.value.0.trim().to_ascii_lowercase();
            if tag.is_empty() || tag.contains(|c: char| c.is_whitespace() || c == ';' || c == ',') {
                self.error(
                    t,
                    "discovery.power_up.tag",
                    "expected one Proxmox tag (no spaces, commas or semicolons)",
                );
            } else {
                out.tag = tag;
            }
        }
        let key = |k: &str| format!("discovery.power_up.{k}");
        out.wait = self.duration(p.wait.as_ref(), &key("wait"), out.wait, false);
        out.shutdown_timeout = self.duration(
            p.shutdown_timeout.as_ref(),
            &key("shutdown_timeout"),
            out.shutdown_timeout,
            false,
        );
        out.max_concurrent = self.nonzero_u32(
            p.max_concurrent.as_ref(),
            &key("max_concurrent"),
            out.max_concurrent.get(),
        );
        out.max_per_cycle = self.nonzero_u32(
            p.max_per_cycle.as_ref(),
            &key("max_per_cycle"),
            out.max_per_cycle.get(),
        );
        out.cooldown = self.duration(p.cooldown.as_ref(), &key("cooldown"), out.cooldown, true);
        if out.wait > Duration::from_secs(3600)
            && let Some(w) = &p.wait
        {
            self.error(w, &key("wait"), "expected at most 1h");
        }
        out
    }

    fn wol(&mut self, raw: Option<&At<RawWol>>) -> WolSettings {
        let mut out = WolSettings::default();
        let Some(at) = raw else { return out };
        let w = &at.value;
        out.enabled = w.enabled.as_ref().is_none_or(|b| b.value);
        if let Some(b) = &w.broadcast_addr {
            match b.value.0.trim().parse::<Ipv4Addr>() {
                Ok(a) => out.broadcast_addr = a,
                Err(_) => self.error(
                    b,
                    "discovery.wol.broadcast_addr",
                    "expected an IPv4 address such as 255.255.255.255 or 192.0.2.255",
                ),
            }
        }
        if let Some(p) = &w.udp_port {
            match u16::try_from(p.value) {
                Ok(port) if port > 0 => out.udp_port = port,
                _ => self.error(
                    p,
                    "discovery.wol.udp_port",
                    "expected a port from 1 to 65535",
                ),
            }
        }
        if let Some(t) = &w.wait_time {
            match u32::try_from(t.value) {
                Ok(s) if s <= 3600 => out.wait_time = Some(s),
                _ => self.error(
                    t,
                    "discovery.wol.wait_time",
                    "expected whole seconds from 0 to 3600",
                ),
            }
        }
        out
    }
}
