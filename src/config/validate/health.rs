//! Validation of `health`.

use std::net::SocketAddr;

use super::super::health::{HealthSettings, RawHealth};
use super::super::raw::At;
use super::Validator;

impl Validator<'_> {
    pub(super) fn health(&mut self, raw: Option<&At<RawHealth>>) -> HealthSettings {
        let Some(at) = raw.and_then(|h| h.value.listen.as_ref()) else {
            return HealthSettings::default();
        };
        const KEY: &str = "health.listen";
        let text = at.value.0.trim();
        let addr = match text.parse::<SocketAddr>() {
            Ok(addr) => addr,
            Err(_) => {
                self.error(
                    at,
                    KEY,
                    "expected an IP address and port, such as 127.0.0.1:9187 or [::1]:9187",
                );
                return HealthSettings::default();
            }
        };
        if addr.port() == 0 {
            self.error(at, KEY, "expected a fixed port (1-65535), not 0");
            return HealthSettings::default();
        }
        if !addr.ip().is_loopback() {
            self.warn(
                at,
                KEY,
                format!(
                    "{addr} is not a loopback address: metrics and health are served without \
                     authentication to every host that can reach it"
                ),
            );
        }
        HealthSettings { listen: Some(addr) }
    }
}
