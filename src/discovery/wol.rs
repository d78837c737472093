//! Wake-on-LAN connection parameters (pure). Guacamole sends the magic
//! packet itself when a user opens the connection; the daemon only writes
//! the parameters, as the existing notes format does: `wol-send-packet`, the
//! `net0` MAC, broadcast address, UDP port and wait time from the
//! configuration, each overridable by the block's `wol_settings`.

use std::collections::BTreeMap;

use crate::config::WolSettings;

/// The `wol-*` parameters of one connection. `from_notes`: the block's
/// validated `wol_settings` (empty when `wol_disabled`). With WoL off in the
/// configuration only what the block sets itself is written.
pub fn parameters(
    from_notes: &BTreeMap<String, String>,
    wol_disabled: bool,
    net0_mac: Option<&str>,
    config: &WolSettings,
) -> BTreeMap<String, String> {
    if wol_disabled {
        return BTreeMap::new();
    }
    let mut out = BTreeMap::new();
    if config.enabled
        && let Some(mac) = net0_mac
    {
        out.insert("wol-send-packet".to_owned(), "true".to_owned());
        out.insert("wol-mac-addr".to_owned(), mac.to_ascii_lowercase());
        out.insert(
            "wol-broadcast-addr".to_owned(),
            config.broadcast_addr.to_string(),
        );
        out.insert("wol-udp-port".to_owned(), config.udp_port.to_string());
        if let Some(wait) = config.wait_time {
            out.insert("wol-wait-time".to_owned(), wait.to_string());
        }
    }
    for (k, v) in from_notes {
        out.insert(k.clone(), v.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_from_config_and_overrides_from_notes() {
        let cfg = WolSettings {
            wait_time: Some(20),
            ..WolSettings::default()
        };
        let none = BTreeMap::new();
        let p = parameters(&none, false, Some("BC:24:11:00:00:01"), &cfg);
        assert_eq!(p["wol-send-packet"], "true");
        assert_eq!(p["wol-mac-addr"], "bc:24:11:00:00:01");
        assert_eq!(p["wol-broadcast-addr"], "255.255.255.255");
        assert_eq!(p["wol-udp-port"], "9");
        assert_eq!(p["wol-wait-time"], "20");
        let notes: BTreeMap<String, String> =
            [("wol-broadcast-addr".to_owned(), "192.0.2.255".to_owned())].into();
        let p = parameters(&notes, false, Some("BC:24:11:00:00:01"), &cfg);
        assert_eq!(p["wol-broadcast-addr"], "192.0.2.255");
        assert!(parameters(&notes, true, Some("BC:24:11:00:00:01"), &cfg).is_empty());
        // No MAC: nothing to wake.
        assert!(parameters(&none, false, None, &cfg).is_empty());
        let off = WolSettings {
            enabled: false,
            ..cfg
        };
        assert_eq!(
            parameters(&notes, false, Some("BC:24:11:00:00:01"), &off),
            notes
        );
    }
}
