//! Validation of the `external:` section (see `config::external`).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use super::super::external::{ExternalHost, RawExternal, RawExternalSettings};
use super::super::raw::{At, Text};
use super::super::settings::{ProxmoxSettings, SyncSettings};
use super::Validator;
use crate::notes::Protocol;
use crate::notes::settings::{ExtraAllowed, validate as validate_settings};
use crate::reconcile::model::EXTERNAL_CLUSTER;

/// Guacamole (and the notes format) cap names and group names at this.
const MAX_NAME_CHARS: usize = 128;

impl Validator<'_> {
    pub(super) fn external(
        &mut self,
        raw: Option<&At<Vec<At<RawExternal>>>>,
        sync: &SyncSettings,
        proxmox: &ProxmoxSettings,
    ) -> Vec<ExternalHost> {
        let Some(list) = raw else {
            return Vec::new();
        };
        if let Some(c) = proxmox.clusters.iter().find(|c| c.name == EXTERNAL_CLUSTER) {
            self.error(
                list,
                "external",
                format!(
                    "a Proxmox cluster is named `{}`, which external hosts use; rename the cluster",
                    c.name
                ),
            );
        }
        let extra = extra_allowed(sync);
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut out = Vec::new();
        for (i, item) in list.value.iter().enumerate() {
            let base = format!("external[{i}]");
            let host = self.external_host(&item.value, &base, sync, &extra);
            if let Some(first) = seen.get(&host.name) {
                self.error(
                    &item.value.name,
                    &format!("{base}.name"),
                    format!(
                        "name `{}` is already used by external[{first}]; names must be unique",
                        host.name
                    ),
                );
                continue;
            }
            seen.insert(host.name.clone(), i);
            out.push(host);
        }
        out
    }

    fn external_host(
        &mut self,
        raw: &RawExternal,
        base: &str,
        sync: &SyncSettings,
        extra: &ExtraAllowed,
    ) -> ExternalHost {
        let name = raw.name.value.0.trim().to_owned();
        if name.is_empty()
            || name.chars().count() > MAX_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            self.error(
                &raw.name,
                &format!("{base}.name"),
                format!("expected a name of 1 to {MAX_NAME_CHARS} printable characters"),
            );
        }
        let username = raw.username.value.0.trim().to_owned();
        if username.is_empty() {
            self.error(
                &raw.username,
                &format!("{base}.username"),
                "expected a login name",
            );
        }
        let protocols = self.external_protocols(&raw.protocols, base);
        let port = raw
            .port
            .as_ref()
            .and_then(|at| match u16::try_from(at.value) {
                Ok(p) if p > 0 => Some(p),
                _ => {
                    self.error(
                        at,
                        &format!("{base}.port"),
                        "expected a port from 1 to 65535",
                    );
                    None
                }
            });
        ExternalHost {
            host: self.external_target(&raw.host, base, sync),
            password: self.secret(&raw.password, &format!("{base}.password")),
            group: self.external_group(raw.group.as_ref(), base),
            settings: self.external_settings(raw.settings.as_ref(), base, &protocols, extra),
            name,
            protocols,
            port,
            username,
        }
    }

    fn external_protocols(&mut self, at: &At<Vec<At<Text>>>, base: &str) -> Vec<Protocol> {
        let mut out = Vec::new();
        for (i, item) in at.value.iter().enumerate() {
            match Protocol::parse(&item.value.0) {
                Some(p) if !out.contains(&p) => out.push(p),
                Some(_) => {}
                None => self.error(
                    item,
                    &format!("{base}.protocols[{i}]"),
                    "expected one of rdp, vnc, ssh, telnet",
                ),
            }
        }
        if at.value.is_empty() {
            self.error(
                at,
                &format!("{base}.protocols"),
                "expected at least one protocol",
            );
        }
        out
    }

    /// The same rules as a note's `host:`: an IPv4 address inside the
    /// allowed ranges, or a name only where names are allowed and no ranges
    /// are set (a name cannot be checked without a lookup).
    fn external_target(&mut self, at: &At<Text>, base: &str, sync: &SyncSettings) -> String {
        let key = format!("{base}.host");
        let text = at.value.0.trim().to_owned();
        if let Ok(ip) = text.parse::<Ipv4Addr>() {
            if !sync.address_allowed(IpAddr::V4(ip)) {
                self.error(at, &key, format!("{ip} lies outside sync.allowed_networks"));
            }
        } else if text.parse::<IpAddr>().is_ok() {
            self.error(
                at,
                &key,
                "IPv6 addresses are not supported; use an IPv4 address",
            );
        } else if !sync.allow_dns_names {
            self.error(
                at,
                &key,
                "expected an IPv4 address (host names need sync.allow_dns_names)",
            );
        } else if !sync.allowed_networks.is_empty() {
            self.error(
                at,
                &key,
                "a host name cannot be checked against sync.allowed_networks; use an IPv4 address",
            );
        } else if text.is_empty()
            || !text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            self.error(at, &key, "expected an IPv4 address or a host name");
        }
        text
    }

    fn external_group(&mut self, at: Option<&At<Text>>, base: &str) -> Vec<String> {
        let Some(at) = at else { return Vec::new() };
        let path: Vec<String> = at
            .value
            .0
            .trim()
            .trim_matches('/')
            .split('/')
            .map(|s| s.trim().to_owned())
            .collect();
        if path
            .iter()
            .any(|p| p.is_empty() || p.chars().count() > MAX_NAME_CHARS)
        {
            self.error(
                at,
                &format!("{base}.group"),
                format!("expected a group path below the managed root such as Network/Core (elements 1 to {MAX_NAME_CHARS} characters)"),
            );
        }
        path
    }

    fn external_settings(
        &mut self,
        at: Option<&At<RawExternalSettings>>,
        base: &str,
        protocols: &[Protocol],
        extra: &ExtraAllowed,
    ) -> BTreeMap<Protocol, BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        let Some(at) = at else { return out };
        for (proto, params) in &at.value.0 {
            let key = format!("{base}.settings.{}", proto.value.0);
            let Some(p) = Protocol::parse(&proto.value.0).filter(|p| protocols.contains(p)) else {
                self.error(proto, &key, "expected one of the host's protocols");
                continue;
            };
            let items: Vec<(String, String)> = params
                .value
                .0
                .iter()
                .map(|(k, v)| {
                    (
                        k.value.0.trim().to_ascii_lowercase(),
                        v.value.0.trim().to_owned(),
                    )
                })
                .collect();
            // Names only in messages: a settings value may be a secret.
            match validate_settings(p, &items, extra) {
                Ok(valid) => {
                    // Like notes: an unknown name is left out with a warning.
                    for name in &valid.unknown {
                        let shown = name.as_deref().unwrap_or("(name not shown)");
                        self.warn(params, &key, format!("unknown parameter {shown} left out"));
                    }
                    out.insert(p, valid.params);
                }
                Err(e) => self.error(params, &key, e.to_string()),
            }
        }
        out
    }
}

fn extra_allowed(sync: &SyncSettings) -> ExtraAllowed {
    let mut extra = ExtraAllowed::new();
    for (protocol, names) in &sync.extra_allowed_parameters {
        if let Some(p) = Protocol::parse(protocol) {
            extra.entry(p).or_default().extend(names.iter().cloned());
        }
    }
    extra
}
