//! Per-block errors and warnings. Messages name keys, setting names and
//! protocol names, never a value of a password, ciphertext or settings item.

use std::fmt;

use super::keys::Protocol;

/// What is wrong with a block. Only names (keys, parameters, protocols,
/// user or group names from `access`) are ever carried, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockErrorKind {
    #[error("the value is missing its closing quote")]
    UnterminatedQuote,
    #[error("key given more than once in this block")]
    DuplicateKey,
    #[error("no username (user:)")]
    MissingUser,
    #[error("no password (pass: or encrypted_password:)")]
    MissingPassword,
    #[error("both a plaintext and an encrypted password")]
    BothPasswords,
    #[error("no protocol (protos:)")]
    MissingProtocols,
    #[error("none of the listed protocols is known (rdp, vnc, ssh, telnet)")]
    NoKnownProtocol,
    #[error("port must be a number from 1 to 65535")]
    InvalidPort,
    #[error("the {{password}} placeholder is not allowed in names")]
    PasswordPlaceholder,
    #[error("not an IPv4 address or host name")]
    InvalidHost,
    #[error("IPv6 addresses are not supported; use an IPv4 address")]
    Ipv6Host,
    #[error("host names are not allowed by the configuration; use an IPv4 address")]
    DnsNameNotAllowed,
    #[error("the address is outside the allowed address ranges")]
    AddressNotAllowed,
    #[error("the guest's address is not known yet")]
    AddressUnknown,
    #[error(
        "group path has an empty element, one longer than 128 characters, or a control character"
    )]
    InvalidGroup,
    #[error("access items must be user:NAME or group:NAME")]
    InvalidAccess,
    #[error("setting '{name}' is not a {protocol} parameter")]
    UnknownSetting { protocol: Protocol, name: String },
    #[error("setting '{name}' is not allowed in notes")]
    DeniedSetting { name: String },
    #[error("setting '{name}' has a value longer than 4096 characters")]
    SettingTooLong { name: String },
    #[error("setting '{name}' must be an IPv4 address inside the allowed address ranges")]
    SettingAddressNotAllowed { name: String },
    #[error("control characters (such as a line break) are not allowed here")]
    NameHasControl,
    #[error("'{name}' is not a Wake-on-LAN setting")]
    UnknownWolSetting { name: String },
    #[error("the connection name is empty")]
    EmptyName,
    #[error("the connection name is {chars} characters long (at most 128)")]
    NameTooLong { chars: usize },
    #[error("no encryption key is configured to open the encrypted password")]
    NoKey,
    #[error("no configured key opens the encrypted password")]
    WrongKey,
    #[error("the decrypted password is not valid UTF-8")]
    DecryptedNotUtf8,
}

impl BlockErrorKind {
    pub fn label(&self) -> &'static str {
        use BlockErrorKind::*;
        match self {
            UnterminatedQuote => "unterminated_quote",
            DuplicateKey => "duplicate_key",
            MissingUser => "missing_user",
            MissingPassword => "missing_password",
            BothPasswords => "both_passwords",
            MissingProtocols => "missing_protocols",
            NoKnownProtocol => "no_known_protocol",
            InvalidPort => "invalid_port",
            PasswordPlaceholder => "password_placeholder",
            InvalidHost => "invalid_host",
            Ipv6Host => "ipv6_host",
            DnsNameNotAllowed => "dns_name_not_allowed",
            AddressNotAllowed => "address_not_allowed",
            AddressUnknown => "address_unknown",
            InvalidGroup => "invalid_group",
            InvalidAccess => "invalid_access",
            UnknownSetting { .. } => "unknown_setting",
            DeniedSetting { .. } => "denied_setting",
            SettingTooLong { .. } => "setting_too_long",
            UnknownWolSetting { .. } => "unknown_wol_setting",
            SettingAddressNotAllowed { .. } => "setting_address_not_allowed",
            NameHasControl => "name_has_control",
            EmptyName => "empty_name",
            NameTooLong { .. } => "name_too_long",
            NoKey => "no_key",
            WrongKey => "wrong_key",
            DecryptedNotUtf8 => "decrypted_not_utf8",
        }
    }
}

/// An error that invalidates one block (and only that block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockError {
    /// 1-based ordinal of the block among the non-prose blocks of the notes.
    pub block: usize,
    /// 1-based line of the offending key (or of the block's first key).
    pub line: usize,
    /// Canonical name of the offending key, when one key is to blame.
    pub key: Option<&'static str>,
    pub kind: BlockErrorKind,
}

impl BlockError {
    pub fn label(&self) -> &'static str {
        self.kind.label()
    }

    /// The message without the location (the `kind`'s text).
    pub fn message(&self) -> String {
        self.kind.to_string()
    }

    /// The error with the guest it belongs to, as logs and STATUS show it
    /// (spec §7): `pve1/node1/101 (web01): block 2 (line 4), key pass: …`.
    pub fn describe(&self, guest: &super::GuestContext) -> String {
        format!(
            "{}/{}/{} ({}): {self}",
            guest.cluster, guest.node, guest.vmid, guest.vmname
        )
    }
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "block {} (line {})", self.block, self.line)?;
        if let Some(key) = self.key {
            write!(f, ", key {key}")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for BlockError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarningKind {
    /// The last block has no closing `;`; it is used anyway.
    Unterminated,
    /// A protocol name that is not rdp/vnc/ssh/telnet was dropped.
    UnknownProtocol { name: String },
    /// A key the format does not know, inside a credential block. Its name
    /// is not kept: a bare password with a space (`pass:my secret:x`) would
    /// otherwise leak its tail as a "key" name.
    UnknownKey,
    /// A second `default_conf_name` with another value; the first one applies.
    DefaultTemplateRepeated,
    /// `*_settings` or `*_port` for a protocol the block does not list.
    UnusedProtocolKey,
    /// Text follows an unquoted value: `pass:my secret` reads `my` only.
    TextAfterBareValue,
    /// A `*_settings` item that is no parameter of the protocol; left out.
    /// `name` is `None` where it may be part of a value (not shown).
    UnknownSetting {
        protocol: Protocol,
        name: Option<String>,
    },
}

/// Something worth telling the operator that does not stop the block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub block: usize,
    pub line: usize,
    pub key: Option<&'static str>,
    pub kind: WarningKind,
}

impl Warning {
    /// The message without the location.
    pub fn message(&self) -> String {
        WarningText(self).to_string()
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "block {} (line {}): {}",
            self.block,
            self.line,
            WarningText(self)
        )
    }
}

struct WarningText<'a>(&'a Warning);

impl fmt::Display for WarningText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.0;
        match &w.kind {
            WarningKind::Unterminated => f.write_str("the last block has no closing ';' (used anyway)"),
            WarningKind::UnknownProtocol { name } => {
                write!(f, "unknown protocol '{}' dropped", printable(name))
            }
            WarningKind::UnknownKey => f.write_str("unknown key ignored"),
            WarningKind::DefaultTemplateRepeated => f.write_str(
                "default_conf_name is set more than once with different values; the first one applies",
            ),
            WarningKind::TextAfterBareValue => write!(
                f,
                "text after the unquoted value of {} is ignored; quote values that contain spaces",
                w.key.unwrap_or("?")
            ),
            WarningKind::UnknownSetting {
                protocol,
                name: Some(name),
            } => write!(
                f,
                "setting '{}' is not a {protocol} parameter; left out",
                printable(name)
            ),
            WarningKind::UnknownSetting {
                protocol,
                name: None,
            } => write!(
                f,
                "an item is not a {protocol} parameter; left out (name not shown: it may be part of a value)"
            ),
            WarningKind::UnusedProtocolKey => write!(
                f,
                "key {} is for a protocol this block does not list (ignored)",
                w.key.unwrap_or("?")
            ),
        }
    }
}

/// Names from notes shown in messages: cut to 64 characters, control
/// characters escaped (`\u{a}`), so a note can never forge a log line.
pub(crate) fn printable(name: &str) -> String {
    name.chars()
        .take(64)
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_unicode().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}
