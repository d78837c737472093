//! One block's pairs → a credential (or a directive), with every check that
//! needs no guest context or configuration (spec §2–§5).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;

use super::error::{BlockError, BlockErrorKind, Warning, WarningKind};
use super::keys::{Key, Protocol, truthy};
use super::lexer::{Quote, RawBlock, RawPair};
use super::settings::split_items;
use super::template::mentions_password;
use crate::secret::Secret;

/// Where the block's password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    Plain(Secret),
    Encrypted(Secret),
}

/// A target address written in the notes (`host:`/`ip:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOverride {
    Ipv4(Ipv4Addr),
    /// A DNS name; allowed only where the configuration allows names.
    Name(String),
}

impl HostOverride {
    pub fn as_string(&self) -> String {
        match self {
            HostOverride::Ipv4(ip) => ip.to_string(),
            HostOverride::Name(name) => name.clone(),
        }
    }
}

/// Someone the notes ask to grant use of the block's connections.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AccessGrant {
    User(String),
    Group(String),
}

/// A well-formed credential block, before guest context and configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub user: String,
    pub password: PasswordSource,
    /// In the order written, duplicates collapsed.
    pub protocols: Vec<Protocol>,
    /// The generic `port` (also the old `rdp-port`).
    pub port: Option<u16>,
    pub protocol_ports: BTreeMap<Protocol, u16>,
    /// The block's own name template (`connection_name` over `confName`).
    pub template: Option<String>,
    /// Raw `k=v` items per protocol, validated at resolution (the allow-list
    /// can be extended by configuration).
    pub settings: BTreeMap<Protocol, Vec<(String, String)>>,
    pub wol_settings: Vec<(String, String)>,
    pub wol_disabled: bool,
    pub host: Option<HostOverride>,
    pub group: Option<Vec<String>>,
    pub access: Vec<AccessGrant>,
}

/// Settings values may hold secrets (`sftp-password=…`): `{:?}` shows names only.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let settings: BTreeMap<Protocol, Vec<&str>> = self
            .settings
            .iter()
            .map(|(p, items)| (*p, items.iter().map(|(k, _)| k.as_str()).collect()))
            .collect();
        let wol: Vec<&str> = self.wol_settings.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Credential")
            .field("user", &self.user)
            .field("password", &self.password)
            .field("protocols", &self.protocols)
            .field("port", &self.port)
            .field("protocol_ports", &self.protocol_ports)
            .field("template", &self.template)
            .field("settings", &settings)
            .field("wol_settings", &wol)
            .field("wol_disabled", &self.wol_disabled)
            .field("host", &self.host)
            .field("group", &self.group)
            .field("access", &self.access)
            .finish()
    }
}

/// What a (non-prose) block turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockKind {
    /// Only `default_conf_name`.
    Directive,
    /// A valid credential.
    Credential(Box<Credential>),
    /// Credential keys, but errors (see `Block::errors`).
    Invalid,
}

/// The stable identity of one connection within a guest: the engine adds the
/// cluster and VMID. `ordinal` is 0 for the first block of a guest with this
/// (user, protocol) pair and counts up for repeats, in notes order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionIdentity {
    pub user: String,
    pub protocol: Protocol,
    pub ordinal: u32,
}

/// A block that holds at least one recognised key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// 1-based among the non-prose blocks of the notes.
    pub ordinal: usize,
    /// Line of the block's first recognised key.
    pub line: usize,
    /// Bytes of the block, including free text before it and its `;`.
    pub span: Range<usize>,
    pub terminated: bool,
    pub pairs: Vec<RawPair>,
    pub kind: BlockKind,
    pub errors: Vec<BlockError>,
    /// The `default_conf_name` of this block, when present and acceptable.
    pub default_conf_name: Option<String>,
    /// Identities this block's connections have (or had, for an invalid
    /// block: from its `user` and `protos` as written, so the engine can keep
    /// the connections of a block that broke).
    pub identities: Vec<ConnectionIdentity>,
}

impl Block {
    pub fn credential(&self) -> Option<&Credential> {
        match &self.kind {
            BlockKind::Credential(c) => Some(c),
            _ => None,
        }
    }

    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// Whether the block's address must be discovered (a credential block
    /// without `host`/`ip`). Invalid blocks never need one.
    pub fn needs_discovery(&self) -> bool {
        self.credential().is_some_and(|c| c.host.is_none())
    }

    /// The (user, protocol) pairs the block yields, before any address is known.
    pub fn user_protocols(&self) -> Vec<(String, Protocol)> {
        self.identities
            .iter()
            .map(|id| (id.user.clone(), id.protocol))
            .collect()
    }

    /// The pair that carries a plaintext password, if any.
    pub fn plaintext_password_pair(&self) -> Option<&RawPair> {
        self.pairs
            .iter()
            .find(|p| Key::lookup(&p.key) == Some(Key::Password) && !p.value.is_empty())
    }
}

/// The outcome of reading one raw block.
pub(crate) enum Interpreted {
    Prose,
    Block {
        block: Box<Block>,
        warnings: Vec<Warning>,
        /// (user, protocols) as written, for identities.
        written: Option<(String, Vec<Protocol>)>,
    },
}

/// Interprets one raw block; `ordinal` is what the block gets if not prose.
pub(crate) fn interpret(raw: RawBlock, ordinal: usize) -> Interpreted {
    let recognised: Vec<(Key, &RawPair)> = raw
        .pairs
        .iter()
        .filter_map(|p| Key::lookup(&p.key).map(|k| (k, p)))
        .collect();
    let Some(first) = recognised.first() else {
        return Interpreted::Prose;
    };
    let line = first.1.line;
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let err = |pair: &RawPair, key: Key, kind| BlockError {
        block: ordinal,
        line: pair.line,
        key: Some(key.canonical()),
        kind,
    };

    // Unknown keys, unterminated quotes, duplicates.
    let is_credential = recognised.iter().any(|(k, _)| *k != Key::DefaultConfName);
    let mut values: HashMap<Key, &RawPair> = HashMap::new();
    let mut ordered: Vec<(Key, &RawPair)> = Vec::new();
    for pair in &raw.pairs {
        let Some(key) = Key::lookup(&pair.key) else {
            if is_credential {
                warnings.push(Warning {
                    block: ordinal,
                    line: pair.line,
                    key: None,
                    kind: WarningKind::UnknownKey,
                });
            }
            continue;
        };
        if pair.unterminated {
            errors.push(err(pair, key, BlockErrorKind::UnterminatedQuote));
            continue;
        }
        if pair.text_after && pair.quote == Quote::Bare {
            warnings.push(Warning {
                block: ordinal,
                line: pair.line,
                key: Some(key.canonical()),
                kind: WarningKind::TextAfterBareValue,
            });
        }
        if pair.value.is_empty() {
            continue; // an empty value means the key is absent
        }
        if values.insert(key, pair).is_some() {
            errors.push(err(pair, key, BlockErrorKind::DuplicateKey));
        } else {
            ordered.push((key, pair));
        }
    }
    if !raw.terminated {
        warnings.push(Warning {
            block: ordinal,
            line,
            key: None,
            kind: WarningKind::Unterminated,
        });
    }

    let mut default_conf_name = None;
    if let Some(pair) = values.get(&Key::DefaultConfName) {
        if mentions_password(&pair.value) {
            errors.push(err(
                pair,
                Key::DefaultConfName,
                BlockErrorKind::PasswordPlaceholder,
            ));
        } else {
            default_conf_name = Some(pair.value.clone());
        }
    }

    let written_user = values.get(&Key::User).map(|p| p.value.clone());
    let mut protocols = Vec::new();
    if let Some(pair) = values.get(&Key::Protocols) {
        for name in pair
            .value
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            match Protocol::parse(name) {
                Some(p) if !protocols.contains(&p) => protocols.push(p),
                Some(_) => {}
                None => warnings.push(Warning {
                    block: ordinal,
                    line: pair.line,
                    key: Some(Key::Protocols.canonical()),
                    kind: WarningKind::UnknownProtocol {
                        name: name.to_owned(),
                    },
                }),
            }
        }
    }
    let written = written_user.clone().map(|u| (u, protocols.clone()));

    if !is_credential {
        let kind = BlockKind::Directive;
        let block = Block {
            ordinal,
            line,
            span: raw.span,
            terminated: raw.terminated,
            kind,
            errors,
            default_conf_name,
            identities: Vec::new(),
            pairs: raw.pairs,
        };
        return Interpreted::Block {
            block: Box::new(block),
            warnings,
            written: None,
        };
    }

    let missing = |key: Key, kind| BlockError {
        block: ordinal,
        line,
        key: Some(key.canonical()),
        kind,
    };
    if written_user.is_none() {
        errors.push(missing(Key::User, BlockErrorKind::MissingUser));
    }
    let password = match (
        values.get(&Key::Password),
        values.get(&Key::EncryptedPassword),
    ) {
        (Some(_), Some(enc)) => {
            errors.push(err(
                enc,
                Key::EncryptedPassword,
                BlockErrorKind::BothPasswords,
            ));
            None
        }
        (Some(p), None) => Some(PasswordSource::Plain(Secret::new(p.value.clone()))),
        (None, Some(e)) => Some(PasswordSource::Encrypted(Secret::new(e.value.clone()))),
        (None, None) => {
            errors.push(missing(Key::Password, BlockErrorKind::MissingPassword));
            None
        }
    };
    match values.get(&Key::Protocols) {
        None => errors.push(missing(Key::Protocols, BlockErrorKind::MissingProtocols)),
        Some(pair) if protocols.is_empty() => {
            errors.push(err(pair, Key::Protocols, BlockErrorKind::NoKnownProtocol))
        }
        Some(_) => {}
    }

    let mut port = None;
    let mut protocol_ports = BTreeMap::new();
    let mut settings = BTreeMap::new();
    for &(key, pair) in &ordered {
        match key {
            Key::Port | Key::ProtocolPort(_) => match parse_port(&pair.value) {
                Some(n) => match key {
                    Key::ProtocolPort(p) => {
                        protocol_ports.insert(p, n);
                    }
                    _ => port = Some(n),
                },
                None => errors.push(err(pair, key, BlockErrorKind::InvalidPort)),
            },
            Key::Settings(p) => {
                settings.insert(p, split_items(&pair.value));
            }
            _ => {}
        }
        if let Key::ProtocolPort(p) | Key::Settings(p) = key
            && !protocols.contains(&p)
            && !protocols.is_empty()
        {
            warnings.push(Warning {
                block: ordinal,
                line: pair.line,
                key: Some(key.canonical()),
                kind: WarningKind::UnusedProtocolKey,
            });
        }
    }

    let template = values
        .get(&Key::ConnectionName)
        .map(|p| (Key::ConnectionName, *p))
        .or_else(|| values.get(&Key::ConfName).map(|p| (Key::ConfName, *p)));
    for key in [Key::ConnectionName, Key::ConfName] {
        if let Some(pair) = values.get(&key)
            && mentions_password(&pair.value)
        {
            errors.push(err(pair, key, BlockErrorKind::PasswordPlaceholder));
        }
    }

    let host = match values.get(&Key::Host) {
        None => None,
        Some(pair) => match parse_host(&pair.value) {
            Ok(h) => Some(h),
            Err(kind) => {
                errors.push(err(pair, Key::Host, kind));
                None
            }
        },
    };
    let group = match values.get(&Key::Group) {
        None => None,
        Some(pair) => match parse_group(&pair.value) {
            Ok(g) => g,
            Err(kind) => {
                errors.push(err(pair, Key::Group, kind));
                None
            }
        },
    };
    let access = match values.get(&Key::Access) {
        None => Vec::new(),
        Some(pair) => parse_access(&pair.value).unwrap_or_else(|kind| {
            errors.push(err(pair, Key::Access, kind));
            Vec::new()
        }),
    };

    // Errors come out in the order of the text.
    errors.sort_by_key(|e| e.line);
    let kind = match (errors.is_empty(), written_user, password) {
        (true, Some(user), Some(password)) => BlockKind::Credential(Box::new(Credential {
            user,
            password,
            protocols,
            port,
            protocol_ports,
            template: template.map(|(_, p)| p.value.clone()),
            settings,
            wol_settings: values
                .get(&Key::WolSettings)
                .map(|p| split_items(&p.value))
                .unwrap_or_default(),
            wol_disabled: values
                .get(&Key::WolDisabled)
                .is_some_and(|p| truthy(&p.value)),
            host,
            group,
            access,
        })),
        _ => BlockKind::Invalid,
    };
    let block = Block {
        ordinal,
        line,
        span: raw.span,
        terminated: raw.terminated,
        kind,
        errors,
        default_conf_name,
        identities: Vec::new(),
        pairs: raw.pairs,
    };
    Interpreted::Block {
        block: Box::new(block),
        warnings,
        written,
    }
}

fn parse_port(value: &str) -> Option<u16> {
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<u16>().ok().filter(|&n| n != 0)
}

fn parse_host(value: &str) -> Result<HostOverride, BlockErrorKind> {
    match value.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => return Ok(HostOverride::Ipv4(ip)),
        Ok(IpAddr::V6(_)) => return Err(BlockErrorKind::Ipv6Host),
        Err(_) => {}
    }
    let name = value.strip_suffix('.').unwrap_or(value);
    let labels_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    // An all-digit last label is a mistyped address, not a name.
    let last_numeric = name
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    if labels_ok && !last_numeric {
        Ok(HostOverride::Name(name.to_ascii_lowercase()))
    } else {
        Err(BlockErrorKind::InvalidHost)
    }
}

/// `Lab/Web` → `["Lab", "Web"]`; outer slashes are ignored.
fn parse_group(value: &str) -> Result<Option<Vec<String>>, BlockErrorKind> {
    let trimmed = value.trim().trim_matches('/');
    if trimmed.is_empty() {
        return Ok(None);
    }
    let parts: Vec<String> = trimmed.split('/').map(|s| s.trim().to_owned()).collect();
    // Guacamole group names hold at most 128 characters.
    if parts
        .iter()
        .any(|p| p.is_empty() || p.chars().count() > 128 || p.chars().any(char::is_control))
    {
        return Err(BlockErrorKind::InvalidGroup);
    }
    Ok(Some(parts))
}

fn parse_access(value: &str) -> Result<Vec<AccessGrant>, BlockErrorKind> {
    let mut grants = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (kind, name) = item.split_once(':').ok_or(BlockErrorKind::InvalidAccess)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(BlockErrorKind::InvalidAccess);
        }
        let grant = match kind.trim().to_ascii_lowercase().as_str() {
            "user" => AccessGrant::User(name.to_owned()),
            "group" => AccessGrant::Group(name.to_owned()),
            _ => return Err(BlockErrorKind::InvalidAccess),
        };
        if !grants.contains(&grant) {
            grants.push(grant);
        }
    }
    Ok(grants)
}
