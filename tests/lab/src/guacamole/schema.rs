//! Schema endpoints (§8): protocol forms per version (Appendix A) and the
//! attribute forms of the database backend (§9).

use serde_json::{Value, json};

use super::seed::GuacVersion;

/// Field notation: `name` TEXT, `:n` NUMERIC, `:b` BOOLEAN, `:s` PASSWORD,
/// `:m` MULTILINE, `:e=a|b` ENUM, `:cs` terminal colour scheme; a leading
/// `+` marks a field that only exists from 1.6 on.
type Form = (&'static str, &'static [&'static str]);

const RECORDING: &[&str] = &[
    "recording-path",
    "recording-name",
    "recording-exclude-output:b",
    "recording-exclude-mouse:b",
    "recording-include-keys:b",
    "create-recording-path:b",
    "+recording-write-existing:b",
];
const RDP_RECORDING: &[&str] = &[
    "recording-path",
    "recording-name",
    "recording-exclude-output:b",
    "recording-exclude-mouse:b",
    "recording-exclude-touch:b",
    "recording-include-keys:b",
    "create-recording-path:b",
    "+recording-write-existing:b",
];
const FULL_SFTP: &[&str] = &[
    "enable-sftp:b",
    "sftp-hostname",
    "sftp-port:n",
    "+sftp-timeout:n",
    "sftp-host-key",
    "sftp-username",
    "sftp-password:s",
    "sftp-private-key:m",
    "sftp-passphrase:s",
    "+sftp-public-key:m",
    "sftp-root-directory",
    "sftp-directory",
    "sftp-server-alive-interval:n",
    "sftp-disable-download:b",
    "sftp-disable-upload:b",
];
const WOL: &[&str] = &[
    "wol-send-packet:b",
    "wol-mac-addr",
    "wol-broadcast-addr",
    "wol-udp-port:n",
    "wol-wait-time:n",
];
const TYPESCRIPT: &[&str] = &[
    "typescript-path",
    "typescript-name",
    "create-typescript-path:b",
    "+typescript-write-existing:b",
];
const TERMINAL_DISPLAY: &[&str] = &[
    "color-scheme:cs",
    "font-name",
    "font-size:e=8|9|10|11|12|14|18|24|30|36|48|60|72|96",
    "scrollback:n",
    "read-only:b",
];
const BACKSPACE: &str = "backspace:e=127|8";
const TERMINAL_TYPE: &str = "terminal-type:e=xterm|xterm-256color|vt220|vt100|ansi|linux";
const COLOR_DEPTH: &str = "color-depth:e=8|16|24|32";

const RDP: &[Form] = &[
    ("network", &["hostname", "port:n", "+timeout:n"]),
    (
        "authentication",
        &[
            "username",
            "password:s",
            "domain",
            "security:e=rdp|tls|nla|vmconnect|any",
            "disable-auth:b",
            "ignore-cert:b",
            "+cert-tofu:b",
            "+cert-fingerprints",
        ],
    ),
    (
        "gateway",
        &[
            "gateway-hostname",
            "gateway-port:n",
            "gateway-username",
            "gateway-password:s",
            "gateway-domain",
        ],
    ),
    (
        "basic-parameters",
        &[
            "initial-program",
            "client-name",
            "server-layout:layout",
            "timezone",
            "enable-touch:b",
            "console:b",
        ],
    ),
    (
        "display",
        &[
            "width:n",
            "height:n",
            "dpi:n",
            COLOR_DEPTH,
            "force-lossless:b",
            "resize-method:e=reconnect|display-update",
            "read-only:b",
        ],
    ),
    (
        "clipboard",
        &[
            "normalize-clipboard:e=preserve|unix|windows",
            "disable-copy:b",
            "disable-paste:b",
        ],
    ),
    (
        "device-redirection",
        &[
            "console-audio:b",
            "disable-audio:b",
            "enable-audio-input:b",
            "enable-printing:b",
            "printer-name",
            "enable-drive:b",
            "drive-name",
            "disable-download:b",
            "disable-upload:b",
            "drive-path",
            "create-drive-path:b",
            "static-channels",
        ],
    ),
    (
        "performance",
        &[
            "enable-wallpaper:b",
            "enable-theming:b",
            "enable-font-smoothing:b",
            "enable-full-window-drag:b",
            "enable-desktop-composition:b",
            "enable-menu-animations:b",
            "disable-bitmap-caching:b",
            "disable-offscreen-caching:b",
            "disable-glyph-caching:b",
            "+disable-gfx:b",
        ],
    ),
    (
        "remoteapp",
        &["remote-app", "remote-app-dir", "remote-app-args"],
    ),
    (
        "preconnection-pdu",
        &["preconnection-id:n", "preconnection-blob"],
    ),
    ("load-balancing", &["load-balance-info"]),
    ("recording", RDP_RECORDING),
    ("sftp", FULL_SFTP),
    ("wol", WOL),
];

const VNC: &[Form] = &[
    ("network", &["hostname", "port:n"]),
    ("authentication", &["username", "password:s"]),
    (
        "display",
        &[
            "read-only:b",
            "+disable-server-input:b",
            "+disable-display-resize:b",
            "swap-red-blue:b",
            "cursor:e=local|remote",
            COLOR_DEPTH,
            "force-lossless:b",
            "+compress-level:e=0|1|2|3|4|5|6|7|8|9",
            "+quality-level:e=0|1|2|3|4|5|6|7|8|9",
            "+encodings",
        ],
    ),
    (
        "clipboard",
        &[
            "clipboard-encoding:e=ISO8859-1|UTF-8|UTF-16|CP1252",
            "disable-copy:b",
            "disable-paste:b",
        ],
    ),
    ("repeater", &["dest-host", "dest-port:n"]),
    ("recording", RECORDING),
    ("sftp", FULL_SFTP),
    ("audio", &["enable-audio:b", "audio-servername"]),
    ("wol", WOL),
];

const SSH: &[Form] = &[
    ("network", &["hostname", "port:n", "host-key", "+timeout:n"]),
    (
        "authentication",
        &[
            "username",
            "password:s",
            "private-key:m",
            "passphrase:s",
            "+public-key:m",
        ],
    ),
    ("display", TERMINAL_DISPLAY),
    ("clipboard", &["disable-copy:b", "disable-paste:b"]),
    (
        "session",
        &["command", "locale", "timezone", "server-alive-interval:n"],
    ),
    ("behavior", &[BACKSPACE, TERMINAL_TYPE]),
    ("typescript", TYPESCRIPT),
    ("recording", RECORDING),
    (
        "sftp",
        &[
            "enable-sftp:b",
            "sftp-root-directory",
            "sftp-disable-download:b",
            "sftp-disable-upload:b",
        ],
    ),
    ("wol", WOL),
];

const TELNET: &[Form] = &[
    ("network", &["hostname", "port:n", "+timeout:n"]),
    (
        "authentication",
        &[
            "username",
            "password:s",
            "username-regex",
            "password-regex",
            "login-success-regex",
            "login-failure-regex",
        ],
    ),
    ("display", TERMINAL_DISPLAY),
    ("clipboard", &["disable-copy:b", "disable-paste:b"]),
    ("behavior", &[BACKSPACE, TERMINAL_TYPE]),
    ("typescript", TYPESCRIPT),
    ("recording", RECORDING),
    ("wol", WOL),
];

const KUBERNETES: &[Form] = &[
    (
        "network",
        &[
            "hostname",
            "port:n",
            "use-ssl:b",
            "ignore-cert:b",
            "ca-cert:m",
        ],
    ),
    (
        "container",
        &["namespace", "pod", "container", "exec-command"],
    ),
    ("authentication", &["client-cert:m", "client-key:m"]),
    ("display", TERMINAL_DISPLAY),
    ("behavior", &[BACKSPACE]),
    ("typescript", TYPESCRIPT),
    ("recording", RECORDING),
];

const PROTOCOLS: [(&str, &[Form]); 5] = [
    ("kubernetes", KUBERNETES),
    ("rdp", RDP),
    ("ssh", SSH),
    ("telnet", TELNET),
    ("vnc", VNC),
];

fn server_layouts(version: GuacVersion) -> Vec<&'static str> {
    let all = [
        ("cs-cz-qwertz", GuacVersion::V1_6),
        ("de-ch-qwertz", GuacVersion::V1_4),
        ("de-de-qwertz", GuacVersion::V1_4),
        ("en-gb-qwerty", GuacVersion::V1_4),
        ("en-us-qwerty", GuacVersion::V1_4),
        ("es-es-qwerty", GuacVersion::V1_4),
        ("es-latam-qwerty", GuacVersion::V1_4),
        ("failsafe", GuacVersion::V1_4),
        ("fr-be-azerty", GuacVersion::V1_4),
        ("fr-fr-azerty", GuacVersion::V1_4),
        ("fr-ca-qwerty", GuacVersion::V1_6),
        ("fr-ch-qwertz", GuacVersion::V1_4),
        ("hu-hu-qwertz", GuacVersion::V1_4),
        ("it-it-qwerty", GuacVersion::V1_4),
        ("ja-jp-qwerty", GuacVersion::V1_4),
        ("no-no-qwerty", GuacVersion::V1_4),
        ("pl-pl-qwerty", GuacVersion::V1_5),
        ("pt-br-qwerty", GuacVersion::V1_4),
        ("pt-pt-qwerty", GuacVersion::V1_6),
        ("ro-ro-qwerty", GuacVersion::V1_6),
        ("sv-se-qwerty", GuacVersion::V1_4),
        ("da-dk-qwerty", GuacVersion::V1_4),
        ("tr-tr-qwerty", GuacVersion::V1_4),
    ];
    all.iter()
        .filter(|(_, since)| *since <= version)
        .map(|(name, _)| *name)
        .collect()
}

fn field(spec: &str, version: GuacVersion) -> Option<Value> {
    let (spec, new_in_1_6) = match spec.strip_prefix('+') {
        Some(rest) => (rest, true),
        None => (spec, false),
    };
    if new_in_1_6 && !version.is_1_6() {
        return None;
    }
    let (name, kind) = spec.split_once(':').unwrap_or((spec, ""));
    let simple = |t: &str| json!({"name": name, "type": t});
    Some(match kind {
        "" if name == "username" => simple("USERNAME"),
        "" if name == "timezone" => simple("TIMEZONE"),
        "" => simple("TEXT"),
        "n" => simple("NUMERIC"),
        "s" => simple("PASSWORD"),
        "m" => simple("MULTILINE"),
        "b" => json!({"name": name, "type": "BOOLEAN", "options": ["true"]}),
        "cs" => json!({
            "name": name,
            "type": "TERMINAL_COLOR_SCHEME",
            "options": ["", "black-white", "gray-black", "green-black", "white-black"],
        }),
        "layout" => json!({"name": name, "type": "ENUM", "options": server_layouts(version)}),
        other => {
            let options: Vec<&str> = other.trim_start_matches("e=").split('|').collect();
            json!({"name": name, "type": "ENUM", "options": options})
        }
    })
}

fn forms(forms: &[Form], version: GuacVersion) -> Value {
    Value::Array(
        forms
            .iter()
            .map(|(name, fields)| {
                let fields: Vec<Value> = fields.iter().filter_map(|f| field(f, version)).collect();
                json!({"name": name, "fields": fields})
            })
            .collect(),
    )
}

/// `GET /schema/protocols`.
pub fn protocols(version: GuacVersion) -> Value {
    let mut out = serde_json::Map::new();
    for (name, proto_forms) in PROTOCOLS {
        out.insert(
            name.into(),
            json!({
                "name": name,
                "connectionForms": forms(proto_forms, version),
                "sharingProfileForms": [{
                    "name": "display",
                    "fields": [{"name": "read-only", "type": "BOOLEAN", "options": ["true"]}],
                }],
            }),
        );
    }
    Value::Object(out)
}

pub fn connection_attributes() -> Value {
    json!([
        {"name": "concurrency", "fields": [
            {"name": "max-connections", "type": "NUMERIC"},
            {"name": "max-connections-per-user", "type": "NUMERIC"},
        ]},
        {"name": "load-balancing", "fields": [
            {"name": "weight", "type": "NUMERIC"},
            {"name": "failover-only", "type": "BOOLEAN", "options": ["true"]},
        ]},
        {"name": "guacd", "fields": [
            {"name": "guacd-hostname", "type": "TEXT"},
            {"name": "guacd-port", "type": "NUMERIC"},
            {"name": "guacd-encryption", "type": "ENUM", "options": ["", "none", "ssl"]},
        ]},
    ])
}

pub fn connection_group_attributes() -> Value {
    json!([
        {"name": "concurrency", "fields": [
            {"name": "max-connections", "type": "NUMERIC"},
            {"name": "max-connections-per-user", "type": "NUMERIC"},
            {"name": "enable-session-affinity", "type": "BOOLEAN", "options": ["true"]},
        ]},
    ])
}

pub fn user_attributes(version: GuacVersion) -> Value {
    let mut restrictions = Vec::new();
    if !version.is_1_6() {
        restrictions.push(json!({"name": "disabled", "type": "BOOLEAN", "options": ["true"]}));
    }
    restrictions.extend([
        json!({"name": "expired", "type": "BOOLEAN", "options": ["true"]}),
        json!({"name": "access-window-start", "type": "TIME"}),
        json!({"name": "access-window-end", "type": "TIME"}),
        json!({"name": "valid-from", "type": "DATE"}),
        json!({"name": "valid-until", "type": "DATE"}),
        json!({"name": "timezone", "type": "TIMEZONE"}),
    ]);
    json!([
        {"name": "profile", "fields": [
            {"name": "guac-full-name", "type": "TEXT"},
            {"name": "guac-email-address", "type": "EMAIL"},
            {"name": "guac-organization", "type": "TEXT"},
            {"name": "guac-organizational-role", "type": "TEXT"},
        ]},
        {"name": "restrictions", "fields": restrictions},
    ])
}

pub fn user_group_attributes(version: GuacVersion) -> Value {
    if version.is_1_6() {
        json!([])
    } else {
        json!([{"name": "restrictions", "fields": [
            {"name": "disabled", "type": "BOOLEAN", "options": ["true"]},
        ]}])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(version: GuacVersion, proto: &str) -> usize {
        protocols(version)[proto]["connectionForms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["fields"].as_array().unwrap().len())
            .sum()
    }

    #[test]
    fn field_counts_match_appendix_a() {
        let v16 = [
            ("rdp", 88),
            ("vnc", 48),
            ("ssh", 42),
            ("telnet", 34),
            ("kubernetes", 28),
        ];
        let v15 = [
            ("rdp", 81),
            ("vnc", 40),
            ("ssh", 38),
            ("telnet", 31),
            ("kubernetes", 26),
        ];
        for (p, n) in v16 {
            assert_eq!(count(GuacVersion::V1_6, p), n, "1.6 {p}");
        }
        for (p, n) in v15 {
            assert_eq!(count(GuacVersion::V1_5, p), n, "1.5 {p}");
            assert_eq!(count(GuacVersion::V1_4, p), n, "1.4 {p}");
        }
    }

    #[test]
    fn layouts_per_version() {
        assert_eq!(server_layouts(GuacVersion::V1_6).len(), 23);
        assert!(server_layouts(GuacVersion::V1_5).contains(&"pl-pl-qwerty"));
        assert!(!server_layouts(GuacVersion::V1_4).contains(&"pl-pl-qwerty"));
        assert!(!server_layouts(GuacVersion::V1_5).contains(&"cs-cz-qwertz"));
    }
}
