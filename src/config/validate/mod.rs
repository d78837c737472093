//! Raw structs → [`Settings`]: applies defaults, checks every value, resolves
//! secrets. Problems are collected, not returned at the first one, so an
//! operator fixes the whole file in one go.

mod discovery;
mod external;
mod health;
mod servers;
mod sync;

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::problem::{Problem, did_you_mean};
use super::raw::{At, RawConfig, RawSecret, Text};
use super::secrets::{self, Environment};
use super::settings::Settings;
use crate::secret::Secret;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/pve-guac-sync";
pub const DEFAULT_ROOT_GROUP: &str = "pve-guac-sync";
/// The notes format's default (spec §3).
pub const DEFAULT_NAME_TEMPLATE: &str = "{user}@{vmname}-{proto}";

pub(crate) struct Validator<'a> {
    file: &'a Path,
    env: &'a dyn Environment,
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
    /// Key paths of secrets written inline in the file.
    pub inline_secrets: Vec<String>,
}

impl<'a> Validator<'a> {
    pub fn new(file: &'a Path, env: &'a dyn Environment) -> Self {
        Validator {
            file,
            env,
            problems: Vec::new(),
            warnings: Vec::new(),
            inline_secrets: Vec::new(),
        }
    }

    fn problem(&self, line: u64, key: &str, message: impl Into<String>) -> Problem {
        Problem {
            file: self.file.to_path_buf(),
            line: (line > 0).then_some(line),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn error<T>(&mut self, at: &At<T>, key: &str, message: impl Into<String>) {
        let p = self.problem(at.referenced.line(), key, message);
        self.problems.push(p);
    }

    pub(crate) fn warn<T>(&mut self, at: &At<T>, key: &str, message: impl Into<String>) {
        let p = self.problem(at.referenced.line(), key, message);
        self.warnings.push(p);
    }

    pub fn settings(&mut self, raw: &RawConfig) -> Settings {
        let proxmox = self.proxmox(&raw.proxmox);
        let guacamole = self.guacamole(&raw.guacamole);
        let encryption = self.encryption(raw.encryption.as_ref());
        let sync = self.sync(raw.sync.as_ref(), &encryption);
        let state_dir = match &raw.state_dir {
            Some(at) => self.absolute_path(at, "state_dir"),
            None => PathBuf::from(DEFAULT_STATE_DIR),
        };
        let logging = self.logging(raw.logging.as_ref());
        let health = self.health(raw.health.as_ref());
        let names: Vec<String> = proxmox.clusters.iter().map(|c| c.name.clone()).collect();
        let access = self.access(raw.access.as_ref(), &names);
        let discovery = self.discovery(raw.discovery.as_ref(), &sync);
        let external = self.external(raw.external.as_ref(), &sync, &proxmox);
        Settings {
            file: self.file.to_path_buf(),
            proxmox,
            guacamole,
            sync,
            encryption,
            state_dir,
            logging,
            health,
            access,
            discovery,
            external,
            warnings: Vec::new(),
        }
    }

    // ── Leaves ─────────────────────────────────────────────────────────────

    fn secret(&mut self, at: &At<RawSecret>, key: &str) -> Secret {
        if matches!(at.value, RawSecret::Inline(_)) {
            self.inline_secrets.push(key.to_owned());
        }
        match secrets::resolve(&at.value, self.env) {
            Ok(resolved) => {
                if let Some(w) = resolved.warning {
                    self.warn(at, key, w);
                }
                resolved.secret
            }
            Err(message) => {
                self.error(at, key, message);
                Secret::default()
            }
        }
    }

    fn duration(
        &mut self,
        at: Option<&At<Text>>,
        key: &str,
        default: Duration,
        zero_ok: bool,
    ) -> Duration {
        let Some(at) = at else { return default };
        match humantime::parse_duration(at.value.0.trim()) {
            Ok(d) if d.is_zero() && !zero_ok => {
                self.error(at, key, "expected a duration longer than zero");
                default
            }
            Ok(d) => d,
            Err(_) => {
                self.error(
                    at,
                    key,
                    "expected a duration with a unit, such as 30s, 5m or 1h 30m",
                );
                default
            }
        }
    }

    fn nonzero_u32(&mut self, at: Option<&At<u64>>, key: &str, default: u32) -> NonZeroU32 {
        let fallback = NonZeroU32::new(default).expect("non-zero default");
        let Some(at) = at else { return fallback };
        match u32::try_from(at.value).ok().and_then(NonZeroU32::new) {
            Some(n) => n,
            None if at.value == 0 => {
                self.error(at, key, "expected a whole number of at least 1, not 0");
                fallback
            }
            None => {
                self.error(
                    at,
                    key,
                    format!("expected a whole number of at most {}", u32::MAX),
                );
                fallback
            }
        }
    }

    fn absolute_path(&mut self, at: &At<Text>, key: &str) -> PathBuf {
        let path = PathBuf::from(at.value.0.trim());
        if !path.is_absolute() {
            self.error(at, key, "expected an absolute path (starting with /)");
        }
        path
    }
}

fn one_of_message(got: &str, names: &[&str]) -> String {
    let mut m = format!("expected one of {}", names.join(", "));
    if let Some(near) = did_you_mean(got.trim(), names) {
        m.push_str(&format!(" (did you mean `{near}`?)"));
    }
    m
}
