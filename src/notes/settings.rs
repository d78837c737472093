//! Which Guacamole parameters `*_settings` and `wol_settings` may set
//! (spec §6), from the Guacamole 1.6.0 forms plus the names guacd accepts
//! without a form field (guacamole-api.md Appendix A).

use std::collections::{BTreeMap, BTreeSet};

use super::error::BlockErrorKind;
use super::keys::{Protocol, truthy};

/// Guacamole 1.6 rejects longer parameter values.
pub const MAX_VALUE_CHARS: usize = 4096;

const WOL: &[&str] = &[
    "wol-send-packet",
    "wol-mac-addr",
    "wol-broadcast-addr",
    "wol-udp-port",
    "wol-wait-time",
];

const RECORDING: &[&str] = &[
    "recording-path",
    "recording-name",
    "recording-exclude-output",
    "recording-exclude-mouse",
    "recording-include-keys",
    "create-recording-path",
    "recording-write-existing",
];

const TYPESCRIPT: &[&str] = &[
    "typescript-path",
    "typescript-name",
    "create-typescript-path",
    "typescript-write-existing",
];

const SFTP_FULL: &[&str] = &[
    "enable-sftp",
    "sftp-hostname",
    "sftp-port",
    "sftp-timeout",
    "sftp-host-key",
    "sftp-username",
    "sftp-password",
    "sftp-private-key",
    "sftp-passphrase",
    "sftp-public-key",
    "sftp-root-directory",
    "sftp-directory",
    "sftp-server-alive-interval",
    "sftp-disable-download",
    "sftp-disable-upload",
];

const RDP: &[&str] = &[
    "hostname",
    "port",
    "timeout",
    "username",
    "password",
    "domain",
    "security",
    "disable-auth",
    "ignore-cert",
    "cert-tofu",
    "cert-fingerprints",
    "gateway-hostname",
    "gateway-port",
    "gateway-username",
    "gateway-password",
    "gateway-domain",
    "initial-program",
    "client-name",
    "server-layout",
    "timezone",
    "enable-touch",
    "console",
    "width",
    "height",
    "dpi",
    "color-depth",
    "force-lossless",
    "resize-method",
    "read-only",
    "normalize-clipboard",
    "disable-copy",
    "disable-paste",
    "console-audio",
    "disable-audio",
    "enable-audio-input",
    "enable-printing",
    "printer-name",
    "enable-drive",
    "drive-name",
    "disable-download",
    "disable-upload",
    "drive-path",
    "create-drive-path",
    "static-channels",
    "enable-wallpaper",
    "enable-theming",
    "enable-font-smoothing",
    "enable-full-window-drag",
    "enable-desktop-composition",
    "enable-menu-animations",
    "disable-bitmap-caching",
    "disable-offscreen-caching",
    "disable-glyph-caching",
    "disable-gfx",
    "remote-app",
    "remote-app-dir",
    "remote-app-args",
    "preconnection-id",
    "preconnection-blob",
    "load-balance-info",
];

const VNC: &[&str] = &[
    "hostname",
    "port",
    "username",
    "password",
    "read-only",
    "disable-server-input",
    "disable-display-resize",
    "swap-red-blue",
    "cursor",
    "color-depth",
    "force-lossless",
    "compress-level",
    "quality-level",
    "encodings",
    "clipboard-encoding",
    "disable-copy",
    "disable-paste",
    "dest-host",
    "dest-port",
    "enable-audio",
    "audio-servername",
    // accepted by guacd without a form field
    "autoretry",
    "reverse-connect",
    "listen-timeout",
];

const SSH: &[&str] = &[
    "hostname",
    "port",
    "host-key",
    "timeout",
    "username",
    "password",
    "private-key",
    "passphrase",
    "public-key",
    "color-scheme",
    "font-name",
    "font-size",
    "scrollback",
    "read-only",
    "disable-copy",
    "disable-paste",
    "command",
    "locale",
    "timezone",
    "server-alive-interval",
    "backspace",
    "terminal-type",
    "enable-sftp",
    "sftp-root-directory",
    "sftp-disable-download",
    "sftp-disable-upload",
    // accepted by guacd without a form field
    "enable-agent",
];

const TELNET: &[&str] = &[
    "hostname",
    "port",
    "timeout",
    "username",
    "password",
    "username-regex",
    "password-regex",
    "login-success-regex",
    "login-failure-regex",
    "color-scheme",
    "font-name",
    "font-size",
    "scrollback",
    "read-only",
    "disable-copy",
    "disable-paste",
    "backspace",
    "terminal-type",
];

/// Parameters that take a boolean (sent as `true`/`false`).
const BOOLEANS: &[&str] = &[
    "disable-auth",
    "ignore-cert",
    "cert-tofu",
    "enable-touch",
    "console",
    "force-lossless",
    "read-only",
    "disable-copy",
    "disable-paste",
    "console-audio",
    "disable-audio",
    "enable-audio-input",
    "enable-printing",
    "enable-drive",
    "disable-download",
    "disable-upload",
    "create-drive-path",
    "enable-wallpaper",
    "enable-theming",
    "enable-font-smoothing",
    "enable-full-window-drag",
    "enable-desktop-composition",
    "enable-menu-animations",
    "disable-bitmap-caching",
    "disable-offscreen-caching",
    "disable-glyph-caching",
    "disable-gfx",
    "recording-exclude-output",
    "recording-exclude-mouse",
    "recording-exclude-touch",
    "recording-include-keys",
    "create-recording-path",
    "recording-write-existing",
    "enable-sftp",
    "sftp-disable-download",
    "sftp-disable-upload",
    "wol-send-packet",
    "disable-server-input",
    "disable-display-resize",
    "swap-red-blue",
    "enable-audio",
    "create-typescript-path",
    "typescript-write-existing",
    "use-ssl",
    "autoretry",
    "reverse-connect",
    "enable-agent",
];

/// Never settable from notes, even though Guacamole knows them: the target
/// and its credentials belong to the daemon, and everything else here touches
/// the Guacamole server's file system, runs programs there, or points the
/// proxy at another address (a pivot past the allowed ranges).
const DENIED: &[&str] = &[
    "hostname",
    "port",
    "username",
    "password",
    // server file system: drives, recordings, typescripts, SFTP root
    "drive-path",
    "create-drive-path",
    "recording-path",
    "recording-name",
    "create-recording-path",
    "recording-write-existing",
    "recording-exclude-output",
    "recording-exclude-mouse",
    "recording-exclude-touch",
    "recording-include-keys",
    "typescript-path",
    "typescript-name",
    "create-typescript-path",
    "typescript-write-existing",
    "sftp-root-directory",
    // programs and channels
    "enable-printing",
    "printer-name",
    "static-channels",
    "remote-app",
    "remote-app-dir",
    "remote-app-args",
    "initial-program",
    // other addresses
    "gateway-hostname",
    "gateway-port",
    "sftp-hostname",
    "sftp-port",
    "dest-host",
    "dest-port",
    // guacd would stream the session's audio to this PulseAudio server
    "audio-servername",
];

/// Parameters whose value is an address guacd connects or sends to. Notes
/// may set one only when the configuration allows the name (or, for the
/// Wake-on-LAN broadcast, always), and its value must then be an IPv4
/// address inside `allowed_networks` (spec §8: no pivot past the ranges).
const ADDRESS_BEARING: &[&str] = &[
    "wol-broadcast-addr",
    "gateway-hostname",
    "sftp-hostname",
    "dest-host",
    "audio-servername",
];

/// The daemon always sets these itself; not even the operator's extra
/// allow-list can hand them to notes.
const RESERVED: &[&str] = &["hostname", "port", "username", "password"];

fn known(protocol: Protocol) -> impl Iterator<Item = &'static str> {
    let (own, sftp): (&[&str], &[&str]) = match protocol {
        Protocol::Rdp => (RDP, SFTP_FULL),
        Protocol::Vnc => (VNC, SFTP_FULL),
        Protocol::Ssh => (SSH, &[]),
        Protocol::Telnet => (TELNET, &[]),
    };
    own.iter()
        .chain(sftp)
        .chain(RECORDING)
        .chain(WOL)
        .chain(if matches!(protocol, Protocol::Ssh | Protocol::Telnet) {
            TYPESCRIPT
        } else {
            &[]
        })
        .copied()
}

/// Whether `name` is a Guacamole parameter of `protocol` (1.6.0 forms + A.7).
pub fn is_known(protocol: Protocol, name: &str) -> bool {
    known(protocol).any(|n| n == name)
        || (protocol == Protocol::Rdp && name == "recording-exclude-touch")
}

pub fn is_boolean(name: &str) -> bool {
    BOOLEANS.contains(&name)
}

pub fn is_denied(name: &str) -> bool {
    DENIED.contains(&name)
}

/// Allowed names per protocol beyond the built-in list (from configuration).
pub type ExtraAllowed = BTreeMap<Protocol, BTreeSet<String>>;

/// Whether notes may set `name` for `protocol`.
pub fn is_allowed(protocol: Protocol, name: &str, extra: &ExtraAllowed) -> bool {
    if RESERVED.contains(&name) {
        return false;
    }
    if extra.get(&protocol).is_some_and(|set| set.contains(name)) {
        return true;
    }
    is_known(protocol, name) && !is_denied(name)
}

/// Splits a `k=v,k=v` value into trimmed items; items without `=` are ignored
/// (as before). Names are lower-cased: Guacamole's names are all lower case.
pub fn split_items(value: &str) -> Vec<(String, String)> {
    value
        .split(',')
        .filter_map(|item| item.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// One protocol's settings after the allow-list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validated {
    /// Parameters to send; booleans are `true`/`false`.
    pub params: BTreeMap<String, String>,
    /// Items that name no parameter of the protocol: left out with a warning.
    /// `None` where the name is not shown (see [`shown_name`]).
    pub unknown: Vec<Option<String>>,
}

/// Validates one protocol's settings; a repeated name keeps the last value
/// (as before). A denied parameter is an error for the block; an unknown one
/// (a typo, an old Guacamole name) is left out and reported (spec §6).
pub fn validate(
    protocol: Protocol,
    items: &[(String, String)],
    extra: &ExtraAllowed,
) -> Result<Validated, BlockErrorKind> {
    let mut out = Validated::default();
    for (i, (name, value)) in items.iter().enumerate() {
        if !is_allowed(protocol, name, extra) {
            let in_extra = extra.get(&protocol).is_some_and(|s| s.contains(name));
            if is_known(protocol, name) || in_extra || is_denied(name) {
                return Err(BlockErrorKind::DeniedSetting { name: name.clone() });
            }
            out.unknown.push(shown_name(items, i));
            continue;
        }
        out.params.insert(name.clone(), normalise(name, value)?);
    }
    Ok(out)
}

/// An unknown item's name, if a message may show it. A `,` inside a value
/// (`passphrase=ab,cd=x`) makes the value's tail look like a name: after a
/// secret parameter, or when it is not shaped like a parameter name at all,
/// the name is not shown.
pub fn shown_name(items: &[(String, String)], i: usize) -> Option<String> {
    let name = &items[i].0;
    let after_secret = i > 0 && is_secret_name(&items[i - 1].0);
    let shaped = name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    (shaped && !after_secret).then(|| name.clone())
}

/// Parameters that hold credentials or keys: never shown, never echoed.
pub fn is_secret_name(name: &str) -> bool {
    name.contains("password") || name.contains("passphrase") || name.contains("private-key")
}

/// Whether a parameter's value is an address guacd reaches out to.
pub fn is_address_bearing(name: &str) -> bool {
    ADDRESS_BEARING.contains(&name)
}

/// An address-bearing parameter's value must be an IPv4 address inside the
/// allowed ranges (any IPv4 address when no ranges are configured).
pub fn address_value_allowed(value: &str, allowed: &[ipnet::IpNet]) -> bool {
    match value.trim().parse::<std::net::Ipv4Addr>() {
        Ok(ip) => {
            let ip = std::net::IpAddr::V4(ip);
            allowed.is_empty() || allowed.iter().any(|n| n.contains(&ip))
        }
        Err(_) => false,
    }
}

/// Validates `wol_settings`: the five `wol-*` names, prefix optional.
pub fn validate_wol(
    items: &[(String, String)],
) -> Result<BTreeMap<String, String>, BlockErrorKind> {
    let mut out = BTreeMap::new();
    for (name, value) in items {
        let full = if name.starts_with("wol-") {
            name.clone()
        } else {
            format!("wol-{name}")
        };
        if !WOL.contains(&full.as_str()) {
            let name = super::error::printable(name);
            return Err(BlockErrorKind::UnknownWolSetting { name });
        }
        let value = normalise(&full, value)?;
        out.insert(full, value);
    }
    Ok(out)
}

fn normalise(name: &str, value: &str) -> Result<String, BlockErrorKind> {
    if is_boolean(name) {
        return Ok(if truthy(value) { "true" } else { "false" }.to_owned());
    }
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(BlockErrorKind::SettingTooLong {
            name: name.to_owned(),
        });
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_the_appendix() {
        // 1.6.0 form counts (rdp 88, vnc 48, ssh 42, telnet 34) plus the A.7 names.
        assert_eq!(known(Protocol::Rdp).count() + 1, 88);
        assert_eq!(known(Protocol::Vnc).count(), 48 + 3);
        assert_eq!(known(Protocol::Ssh).count(), 42 + 1);
        assert_eq!(known(Protocol::Telnet).count(), 34);
    }

    #[test]
    fn deny_and_extra() {
        let none = ExtraAllowed::new();
        assert!(is_allowed(Protocol::Rdp, "ignore-cert", &none));
        assert!(!is_allowed(Protocol::Rdp, "drive-path", &none));
        assert!(!is_allowed(Protocol::Ssh, "ignore-cert", &none));
        let mut extra = ExtraAllowed::new();
        extra.insert(
            Protocol::Rdp,
            ["drive-path".to_owned(), "hostname".to_owned()].into(),
        );
        assert!(is_allowed(Protocol::Rdp, "drive-path", &extra));
        assert!(!is_allowed(Protocol::Rdp, "hostname", &extra));
    }
}
