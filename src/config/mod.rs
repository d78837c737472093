//! Configuration in stages: YAML text → raw serde structs that keep each
//! value's line (`raw`, `decode`) → validated [`Settings`] with real types,
//! defaults applied and secrets resolved (`validate`, `secrets`).
//!
//! Every problem names the file, the line and the key path, and all of them
//! are reported together. No secret value ever appears in a message.

mod access;
mod decode;
mod discovery;
mod external;
mod health;
mod perms;
mod problem;
mod raw;
mod secrets;
mod selector;
mod settings;
mod tree;
mod validate;

use std::path::{Path, PathBuf};

pub use access::{AccessRule, AccessSettings};
pub use discovery::{DiscoverySettings, PowerUpSettings, ProbeSettings, SourceKind, WolSettings};
pub use external::ExternalHost;
pub use health::HealthSettings;
pub use problem::Problem;
pub(crate) use secrets::read_small_regular_file;
pub use secrets::{Environment, ProcessEnvironment};
pub use selector::{Filter, GuestFacts, Selector, VmidRange, VmidRangeError};
pub use settings::*;
pub use validate::{DEFAULT_NAME_TEMPLATE, DEFAULT_ROOT_GROUP, DEFAULT_STATE_DIR};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the configuration file: {}", path.display(), secrets::io_reason(source))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// One or more problems, each on its own line as `FILE:LINE: key: message`.
    #[error("{}", render_problems(problems))]
    Invalid { problems: Vec<Problem> },
}

impl ConfigError {
    pub fn label(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "config_read",
            ConfigError::Invalid { .. } => "config_invalid",
        }
    }

    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems } => problems,
        }
    }
}

fn render_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Settings {
    /// Reads, validates and resolves the configuration file, taking secrets
    /// from the process environment and `$CREDENTIALS_DIRECTORY`.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        Settings::load_with(path, &ProcessEnvironment)
    }

    /// [`Settings::load`] with an explicit environment (tests).
    pub fn load_with(path: &Path, env: &dyn Environment) -> Result<Settings, ConfigError> {
        let read_error = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        let mode = perms::file_mode(path).map_err(read_error)?;
        Settings::from_yaml(&text, path, Some(mode), env)
    }

    /// Validates configuration text as if read from `file` with permission
    /// bits `mode` (`None`: skip the permission checks).
    pub fn from_yaml(
        text: &str,
        file: &Path,
        mode: Option<u32>,
        env: &dyn Environment,
    ) -> Result<Settings, ConfigError> {
        let decoded = decode::decode(text, file);
        let mut problems = decoded.problems;
        let Some(raw) = decoded.raw else {
            return Err(ConfigError::Invalid { problems });
        };
        let mut validator = validate::Validator::new(file, env);
        let mut settings = validator.settings(&raw);
        problems.append(&mut validator.problems);
        if let Some(mode) = mode {
            problems.extend(permission_problem(file, mode, &validator.inline_secrets));
            if perms::writable_by_group_or_others(mode) {
                validator.warnings.push(Problem {
                    file: file.to_path_buf(),
                    line: None,
                    key: String::new(),
                    message: format!(
                        "writable by group or others (mode {mode:04o}): whoever can change it \
                         decides where credentials are sent; run `chmod go-w {}`",
                        file.display()
                    ),
                });
            }
        }
        if !problems.is_empty() {
            problems.sort_by_key(|p| p.line.unwrap_or(0));
            return Err(ConfigError::Invalid { problems });
        }
        settings.warnings = validator.warnings;
        Ok(settings)
    }

    /// Key paths of TLS settings that turn verification off.
    pub fn insecure_tls(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .proxmox
            .clusters
            .iter()
            .filter(|c| c.api.tls == TlsSettings::Insecure)
            .map(|c| format!("proxmox cluster {}", c.name))
            .collect();
        if self.guacamole.api.tls == TlsSettings::Insecure {
            out.push("guacamole".to_owned());
        }
        out
    }
}

/// The `state_dir` a configuration file names (or the default), without
/// validating the rest or reading any secret: for `sync-now`, which runs
/// where the service's credentials are not available.
pub fn state_dir_of(path: &Path) -> Result<PathBuf, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let decoded = decode::decode(&text, path);
    let Some(raw) = decoded.raw else {
        return Err(ConfigError::Invalid {
            problems: decoded.problems,
        });
    };
    Ok(raw
        .state_dir
        .map(|at| PathBuf::from(at.value.0))
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)))
}

/// `health.listen` of a configuration file, without reading its secrets
/// (for `status`, which may run as a user who cannot read them). `Ok(None)`:
/// the listener is off.
pub fn health_listen_of(path: &Path) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let decoded = decode::decode(&text, path);
    let Some(raw) = decoded.raw else {
        return Err(ConfigError::Invalid {
            problems: decoded.problems,
        });
    };
    let Some(at) = raw.health.and_then(|h| h.value.listen) else {
        return Ok(None);
    };
    at.value
        .0
        .trim()
        .parse()
        .map(Some)
        .map_err(|_| ConfigError::Invalid {
            problems: vec![Problem {
                file: path.to_path_buf(),
                line: Some(at.referenced.line()),
                key: "health.listen".to_owned(),
                message: "expected an IP address and port, such as 127.0.0.1:9187".to_owned(),
            }],
        })
}

/// A file holding inline secrets must be readable by its owner only.
fn permission_problem(file: &Path, mode: u32, inline: &[String]) -> Option<Problem> {
    if inline.is_empty() || !perms::readable_by_group_or_others(mode) {
        return None;
    }
    let shown = file.display();
    Some(Problem {
        file: file.to_path_buf(),
        line: None,
        key: String::new(),
        message: format!(
            "holds inline secrets ({}) but is readable by group or others (mode {mode:04o}); \
             refusing to load. Fix: `chmod 600 {shown}` (and make the daemon's user its owner), \
             or move each secret out of the file: {{file: /etc/pve-guac-sync/NAME}} (mode 600), \
             {{credential: NAME}} (systemd LoadCredential=) or {{env: NAME}}",
            inline.join(", ")
        ),
    })
}
