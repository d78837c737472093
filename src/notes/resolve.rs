//! Phase 2: a valid credential block + guest context + configuration +
//! keys → the connections it yields, or the block's error.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::block::{
    AccessGrant, Block, ConnectionIdentity, Credential, HostOverride, PasswordSource,
};
use super::error::{BlockError, BlockErrorKind, Warning, WarningKind};
use super::keys::{Key, Protocol};
use super::settings::{self, ExtraAllowed};
use super::template::{self, DEFAULT_TEMPLATE, MAX_NAME_CHARS, TemplateValues};
use crate::crypto::{CryptoError, Keyring};
use crate::secret::Secret;

/// What the notes are evaluated against: one guest and the daemon host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestContext {
    pub cluster: String,
    pub node: String,
    pub vmid: u32,
    pub vmname: String,
    /// The guest's discovered target address, when known.
    pub address: Option<String>,
    /// Short host name of the machine running the daemon.
    pub hostname: String,
}

/// The configuration's say over what notes may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotesPolicy {
    /// The configured name template, used when the notes set none.
    pub default_template: Option<String>,
    /// Addresses a `host:` may name; empty means any.
    pub allowed_networks: Vec<IpNet>,
    /// Whether `host:` may be a DNS name.
    pub allow_dns_names: bool,
    /// Parameter names notes may set beyond the built-in allow-list.
    pub extra_allowed_settings: ExtraAllowed,
    /// Port per protocol when the block sets none.
    pub default_ports: BTreeMap<Protocol, u16>,
    /// Guacamole users notes may grant access to (none by default).
    pub grantable_users: BTreeSet<String>,
    /// Guacamole user groups notes may grant access to (none by default).
    pub grantable_groups: BTreeSet<String>,
}

impl Default for NotesPolicy {
    fn default() -> Self {
        NotesPolicy {
            default_template: None,
            allowed_networks: Vec::new(),
            allow_dns_names: false,
            extra_allowed_settings: ExtraAllowed::new(),
            default_ports: Protocol::ALL
                .into_iter()
                .map(|p| (p, p.default_port()))
                .collect(),
            grantable_users: BTreeSet::new(),
            grantable_groups: BTreeSet::new(),
        }
    }
}

impl NotesPolicy {
    pub fn address_allowed(&self, ip: IpAddr) -> bool {
        self.allowed_networks.is_empty() || self.allowed_networks.iter().any(|n| n.contains(&ip))
    }

    /// Whether a block's `access` may name this user or group.
    pub fn may_grant(&self, grant: &AccessGrant) -> bool {
        match grant {
            AccessGrant::User(n) => self.grantable_users.contains(n),
            AccessGrant::Group(n) => self.grantable_groups.contains(n),
        }
    }

    fn port(&self, protocol: Protocol) -> u16 {
        self.default_ports
            .get(&protocol)
            .copied()
            .unwrap_or_else(|| protocol.default_port())
    }
}

/// What to do with encrypted passwords.
#[derive(Debug, Clone, Copy)]
pub enum Passwords<'a> {
    /// Decrypt with these keys; a token none of them opens is a block error.
    Decrypt(&'a Keyring),
    /// No key is configured: encrypted passwords are a block error.
    NoKeys,
    /// Do not decrypt (linting): connections from encrypted blocks carry an
    /// empty password. Never use this for connections that are written.
    Unchecked,
}

/// One connection a block yields.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionSpec {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub username: String,
    pub password: Secret,
    /// Validated Guacamole parameters from `*_settings`; booleans are `true`/`false`.
    pub settings: BTreeMap<String, String>,
    /// `wol-*` parameters from `wol_settings` (empty when disabled).
    pub wol: BTreeMap<String, String>,
    pub wol_disabled: bool,
    /// Group path below the managed root.
    pub group: Option<Vec<String>>,
    /// The address from `host:`/`ip:`, which replaces discovery.
    pub host_override: Option<String>,
    /// Grants the configuration allows (names it does not allow are left out).
    pub access: Vec<AccessGrant>,
    pub block_ordinal: usize,
    /// Counts repeats of (username, protocol) within the guest, from 0.
    pub ordinal_in_guest: u32,
}

/// Settings values may hold secrets (`sftp-password=…`): `{:?}` shows names only.
impl std::fmt::Debug for ConnectionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
        f.debug_struct("ConnectionSpec")
            .field("name", &self.name)
            .field("protocol", &self.protocol)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("settings", &names(&self.settings))
            .field("wol", &self.wol)
            .field("wol_disabled", &self.wol_disabled)
            .field("group", &self.group)
            .field("host_override", &self.host_override)
            .field("access", &self.access)
            .field("block_ordinal", &self.block_ordinal)
            .field("ordinal_in_guest", &self.ordinal_in_guest)
            .finish()
    }
}

impl ConnectionSpec {
    pub fn identity(&self) -> ConnectionIdentity {
        ConnectionIdentity {
            user: self.username.clone(),
            protocol: self.protocol,
            ordinal: self.ordinal_in_guest,
        }
    }
}

/// What one valid block yields: its connections and the warnings found
/// while resolving it (unknown settings left out).
#[derive(Debug, Clone, Default)]
pub struct ResolvedBlock {
    pub connections: Vec<ConnectionSpec>,
    pub warnings: Vec<Warning>,
}

/// Resolves one block. `notes_template` is the notes' `default_conf_name`.
pub(crate) fn resolve_block(
    block: &Block,
    notes_template: Option<&str>,
    ctx: &GuestContext,
    policy: &NotesPolicy,
    passwords: Passwords<'_>,
) -> Result<ResolvedBlock, BlockError> {
    if let Some(first) = block.errors.first() {
        return Err(first.clone());
    }
    let Some(cred) = block.credential() else {
        return Ok(ResolvedBlock::default());
    };
    let line_of = |key: Key| {
        block
            .pairs
            .iter()
            .find(|p| Key::lookup(&p.key) == Some(key))
            .map_or(block.line, |p| p.line)
    };
    let fail = |key: Key, kind| BlockError {
        block: block.ordinal,
        line: line_of(key),
        key: Some(key.canonical()),
        kind,
    };
    let mut warnings = Vec::new();

    // A control character in a name would forge a line in a text log.
    if cred.user.chars().any(char::is_control) {
        return Err(fail(Key::User, BlockErrorKind::NameHasControl));
    }
    let host_override = check_host(cred, policy).map_err(|kind| fail(Key::Host, kind))?;
    let access = allowed_access(cred, policy);
    let wol = if cred.wol_disabled {
        BTreeMap::new()
    } else {
        settings::validate_wol(&cred.wol_settings).map_err(|kind| fail(Key::WolSettings, kind))?
    };
    check_addresses(&wol, policy).map_err(|kind| fail(Key::WolSettings, kind))?;
    let password = match (&cred.password, passwords) {
        (PasswordSource::Plain(p), _) => p.clone(),
        (PasswordSource::Encrypted(_), Passwords::Unchecked) => Secret::default(),
        (PasswordSource::Encrypted(_), Passwords::NoKeys) => {
            return Err(fail(Key::EncryptedPassword, BlockErrorKind::NoKey));
        }
        (PasswordSource::Encrypted(token), Passwords::Decrypt(ring)) => {
            ring.decrypt(token).map_err(|e| {
                let kind = match e {
                    CryptoError::NotUtf8 => BlockErrorKind::DecryptedNotUtf8,
                    _ => BlockErrorKind::WrongKey,
                };
                fail(Key::EncryptedPassword, kind)
            })?
        }
    };

    let (template, template_key) = match (&cred.template, notes_template) {
        (Some(t), _) => (t.as_str(), template_source_key(block)),
        (None, Some(t)) => (t, Key::DefaultConfName),
        (None, None) => (
            policy
                .default_template
                .as_deref()
                .unwrap_or(DEFAULT_TEMPLATE),
            Key::ConfName,
        ),
    };
    let address = host_override.clone().or_else(|| ctx.address.clone());
    if template::uses_address(template) && address.is_none() {
        return Err(fail(template_key, BlockErrorKind::AddressUnknown));
    }
    let address = address.unwrap_or_default();
    let vmid = ctx.vmid.to_string();

    let mut specs = Vec::with_capacity(cred.protocols.len());
    for &protocol in &cred.protocols {
        let port = cred
            .protocol_ports
            .get(&protocol)
            .copied()
            .or(cred.port)
            .unwrap_or_else(|| policy.port(protocol));
        let items = cred
            .settings
            .get(&protocol)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let checked = settings::validate(protocol, items, &policy.extra_allowed_settings)
            .map_err(|kind| fail(Key::Settings(protocol), kind))?;
        check_addresses(&checked.params, policy)
            .map_err(|kind| fail(Key::Settings(protocol), kind))?;
        let key = Key::Settings(protocol);
        warnings.extend(checked.unknown.into_iter().map(|name| Warning {
            block: block.ordinal,
            line: line_of(key),
            key: Some(key.canonical()),
            kind: WarningKind::UnknownSetting { protocol, name },
        }));
        let params = checked.params;
        let port_text = port.to_string();
        let values = TemplateValues {
            vmname: &ctx.vmname,
            user: &cred.user,
            proto: protocol.as_str(),
            vmid: &vmid,
            node: &ctx.node,
            ip: &address,
            port: &port_text,
            cluster: &ctx.cluster,
            hostname: &ctx.hostname,
        };
        let name = template::render(template, &values).trim().to_owned();
        let chars = name.chars().count();
        if chars == 0 {
            return Err(fail(template_key, BlockErrorKind::EmptyName));
        }
        if chars > MAX_NAME_CHARS {
            return Err(fail(template_key, BlockErrorKind::NameTooLong { chars }));
        }
        if name.chars().any(char::is_control) {
            return Err(fail(template_key, BlockErrorKind::NameHasControl));
        }
        let ordinal_in_guest = block
            .identities
            .iter()
            .find(|id| id.protocol == protocol)
            .map_or(0, |id| id.ordinal);
        specs.push(ConnectionSpec {
            name,
            protocol,
            port,
            username: cred.user.clone(),
            password: password.clone(),
            settings: params,
            wol: wol.clone(),
            wol_disabled: cred.wol_disabled,
            group: cred.group.clone(),
            host_override: host_override.clone(),
            access: access.clone(),
            block_ordinal: block.ordinal,
            ordinal_in_guest,
        });
    }
    Ok(ResolvedBlock {
        connections: specs,
        warnings,
    })
}

/// Every address-bearing parameter (WoL broadcast, and any an operator
/// allowed) must name an IPv4 address inside the allowed ranges.
fn check_addresses(
    params: &BTreeMap<String, String>,
    policy: &NotesPolicy,
) -> Result<(), BlockErrorKind> {
    for (name, value) in params {
        if settings::is_address_bearing(name)
            && !settings::address_value_allowed(value, &policy.allowed_networks)
        {
            return Err(BlockErrorKind::SettingAddressNotAllowed { name: name.clone() });
        }
    }
    Ok(())
}

fn template_source_key(block: &Block) -> Key {
    let has = |key| {
        block
            .pairs
            .iter()
            .any(|p| Key::lookup(&p.key) == Some(key) && !p.value.is_empty())
    };
    if has(Key::ConnectionName) {
        Key::ConnectionName
    } else {
        Key::ConfName
    }
}

fn check_host(cred: &Credential, policy: &NotesPolicy) -> Result<Option<String>, BlockErrorKind> {
    match &cred.host {
        None => Ok(None),
        Some(HostOverride::Ipv4(ip)) => {
            if policy.address_allowed(IpAddr::V4(*ip)) {
                Ok(Some(ip.to_string()))
            } else {
                Err(BlockErrorKind::AddressNotAllowed)
            }
        }
        // A name can only be checked against the ranges once resolved; the
        // configuration that allows names takes that on.
        Some(HostOverride::Name(name)) if policy.allow_dns_names => Ok(Some(name.clone())),
        Some(HostOverride::Name(_)) => Err(BlockErrorKind::DnsNameNotAllowed),
    }
}

/// Only the names the configuration lets notes grant; the others are left
/// out (a warning the engine reports), and the block still yields its
/// connections.
fn allowed_access(cred: &Credential, policy: &NotesPolicy) -> Vec<AccessGrant> {
    cred.access
        .iter()
        .filter(|grant| policy.may_grant(grant))
        .cloned()
        .collect()
}
