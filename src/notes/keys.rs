//! The keys of the notes format and their aliases (spec §3).

use std::fmt;

/// The four protocols notes can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Rdp,
    Vnc,
    Ssh,
    Telnet,
}

impl Protocol {
    pub const ALL: [Protocol; 4] = [
        Protocol::Rdp,
        Protocol::Vnc,
        Protocol::Ssh,
        Protocol::Telnet,
    ];

    /// The Guacamole protocol name (also the `{proto}` placeholder value).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Rdp => "rdp",
            Protocol::Vnc => "vnc",
            Protocol::Ssh => "ssh",
            Protocol::Telnet => "telnet",
        }
    }

    /// Case-insensitive; surrounding whitespace ignored.
    pub fn parse(name: &str) -> Option<Protocol> {
        let name = name.trim();
        Protocol::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(name))
    }

    pub fn default_port(self) -> u16 {
        match self {
            Protocol::Rdp => 3389,
            Protocol::Vnc => 5900,
            Protocol::Ssh => 22,
            Protocol::Telnet => 23,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A recognised key, aliases folded together. Two pairs with the same `Key`
/// in one block are a duplicate (`ConfName` and `ConnectionName` are distinct
/// on purpose: together they are allowed and `connection_name` wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    User,
    Password,
    EncryptedPassword,
    Protocols,
    /// `port` (and the old `rdp-port`): for protocols without their own port.
    Port,
    ProtocolPort(Protocol),
    ConfName,
    ConnectionName,
    Settings(Protocol),
    WolSettings,
    WolDisabled,
    Host,
    Group,
    Access,
    DefaultConfName,
}

impl Key {
    /// Looks a key up case-insensitively; `None` for keys the format does not know.
    pub fn lookup(name: &str) -> Option<Key> {
        let lower = name.to_ascii_lowercase();
        let key = match lower.as_str() {
            "user" | "username" => Key::User,
            "pass" | "password" => Key::Password,
            "encrypted_password" => Key::EncryptedPassword,
            "protos" | "protocols" | "proto" => Key::Protocols,
            "port" | "rdp-port" => Key::Port,
            "rdp_port" => Key::ProtocolPort(Protocol::Rdp),
            "vnc_port" => Key::ProtocolPort(Protocol::Vnc),
            "ssh_port" => Key::ProtocolPort(Protocol::Ssh),
            "telnet_port" => Key::ProtocolPort(Protocol::Telnet),
            "confname" => Key::ConfName,
            "connection_name" => Key::ConnectionName,
            "rdp_settings" | "rdpsettings" => Key::Settings(Protocol::Rdp),
            "vnc_settings" | "vncsettings" => Key::Settings(Protocol::Vnc),
            "ssh_settings" | "sshsettings" => Key::Settings(Protocol::Ssh),
            "telnet_settings" | "telnetsettings" => Key::Settings(Protocol::Telnet),
            "wol_settings" | "wolsettings" => Key::WolSettings,
            "wol_disabled" | "woldisabled" => Key::WolDisabled,
            "host" | "ip" => Key::Host,
            "group" => Key::Group,
            "access" => Key::Access,
            "default_conf_name" => Key::DefaultConfName,
            _ => return None,
        };
        Some(key)
    }

    /// The canonical spelling, used in errors and when rendering.
    pub fn canonical(self) -> &'static str {
        match self {
            Key::User => "user",
            Key::Password => "pass",
            Key::EncryptedPassword => "encrypted_password",
            Key::Protocols => "protos",
            Key::Port => "port",
            Key::ProtocolPort(Protocol::Rdp) => "rdp_port",
            Key::ProtocolPort(Protocol::Vnc) => "vnc_port",
            Key::ProtocolPort(Protocol::Ssh) => "ssh_port",
            Key::ProtocolPort(Protocol::Telnet) => "telnet_port",
            Key::ConfName => "confName",
            Key::ConnectionName => "connection_name",
            Key::Settings(Protocol::Rdp) => "rdp_settings",
            Key::Settings(Protocol::Vnc) => "vnc_settings",
            Key::Settings(Protocol::Ssh) => "ssh_settings",
            Key::Settings(Protocol::Telnet) => "telnet_settings",
            Key::WolSettings => "wol_settings",
            Key::WolDisabled => "wol_disabled",
            Key::Host => "host",
            Key::Group => "group",
            Key::Access => "access",
            Key::DefaultConfName => "default_conf_name",
        }
    }

    /// Whether a value of this key may be a secret (password, ciphertext or a
    /// settings item); such values never appear in any message.
    pub fn value_is_sensitive(self) -> bool {
        matches!(
            self,
            Key::Password | Key::EncryptedPassword | Key::Settings(_) | Key::WolSettings
        )
    }
}

/// The boolean spelling shared by the format and the old tool:
/// `true`/`1`/`yes` in any case are true, anything else is false.
pub fn truthy(value: &str) -> bool {
    let v = value.trim();
    v.eq_ignore_ascii_case("true") || v == "1" || v.eq_ignore_ascii_case("yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_fold_and_case_is_ignored() {
        assert_eq!(Key::lookup("USERNAME"), Some(Key::User));
        assert_eq!(
            Key::lookup("rdpSettings"),
            Some(Key::Settings(Protocol::Rdp))
        );
        assert_eq!(Key::lookup("rdp-port"), Some(Key::Port));
        assert_eq!(Key::lookup("Owner"), None);
        assert_eq!(Protocol::parse(" SSH "), Some(Protocol::Ssh));
        assert!(truthy("Yes") && truthy("1") && !truthy("on"));
    }
}
