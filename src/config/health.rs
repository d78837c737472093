//! The `health` section: where the metrics and health listener binds, if
//! anywhere. Kept apart from the other sections so the listener's settings
//! travel together (raw form, validated form).

use std::net::SocketAddr;

use serde::Deserialize;

use super::raw::{At, Text};

/// `health:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealth {
    pub listen: Option<At<Text>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthSettings {
    /// `None`: no listener (the default).
    pub listen: Option<SocketAddr>,
}

impl HealthSettings {
    /// Whether the listener would be reachable from other hosts.
    pub fn exposed(&self) -> bool {
        self.listen.is_some_and(|a| !a.ip().is_loopback())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{ProcessEnvironment, Settings};

    const BASE: &str = "\
proxmox:
  clusters:
    - {name: lab, endpoints: [https://127.0.0.1:8006], token_id: a@pve!t, token_secret: x}
guacamole: {url: https://127.0.0.1:8443, username: u, password: x}
";

    fn load(health: &str) -> Result<Settings, Vec<String>> {
        let text = format!("{BASE}{health}");
        Settings::from_yaml(&text, Path::new("c.yaml"), None, &ProcessEnvironment)
            .map_err(|e| e.problems().iter().map(ToString::to_string).collect())
    }

    fn warnings(s: &Settings) -> Vec<String> {
        s.warnings.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn off_unless_an_address_is_given() {
        for text in ["", "health:\n", "health: {}\n"] {
            let s = load(text).unwrap();
            assert_eq!(s.health.listen, None, "{text:?}");
            assert!(!s.health.exposed());
        }
    }

    #[test]
    fn loopback_addresses_are_taken_quietly() {
        let s = load("health:\n  listen: 127.0.0.1:9187\n").unwrap();
        assert_eq!(s.health.listen, Some("127.0.0.1:9187".parse().unwrap()));
        assert!(!s.health.exposed());
        assert_eq!(warnings(&s), Vec::<String>::new());
        let s = load("health: {listen: \"[::1]:9187\"}\n").unwrap();
        assert_eq!(s.health.listen, Some("[::1]:9187".parse().unwrap()));
    }

    #[test]
    fn any_other_address_is_allowed_with_a_warning() {
        let s = load("health:\n  listen: 0.0.0.0:9187\n").unwrap();
        assert!(s.health.exposed());
        assert_eq!(
            warnings(&s),
            [
                "c.yaml:6: health.listen: 0.0.0.0:9187 is not a loopback address: metrics and \
              health are served without authentication to every host that can reach it"
            ]
        );
    }

    #[test]
    fn mistakes_name_the_line_and_key() {
        assert_eq!(
            load("health:\n  listen: localhost:9187\n").unwrap_err(),
            [
                "c.yaml:6: health.listen: expected an IP address and port, such as 127.0.0.1:9187 \
              or [::1]:9187"
            ]
        );
        assert_eq!(
            load("health:\n  listen: 127.0.0.1\n").unwrap_err(),
            [
                "c.yaml:6: health.listen: expected an IP address and port, such as 127.0.0.1:9187 \
              or [::1]:9187"
            ]
        );
        assert_eq!(
            load("health:\n  listen: 127.0.0.1:0\n").unwrap_err(),
            ["c.yaml:6: health.listen: expected a fixed port (1-65535), not 0"]
        );
        assert_eq!(
            load("health:\n  listne: 127.0.0.1:9187\n").unwrap_err(),
            [
                "c.yaml:6: health.listne: unknown key `listne` (did you mean `listen`?); \
              expected one of: listen"
            ]
        );
    }
}
