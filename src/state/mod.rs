//! The state directory: which Guacamole objects the daemon owns (identity →
//! identifier and a fingerprint of what it last wrote), how long guests have
//! been absent, and the last known addresses. Written atomically (temp file,
//! fsync, rename, fsync of the directory) with mode 0600, so a crash never
//! leaves a half-written file.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod lock;

pub use lock::{Holder, StateLock, holder};

const STATE_FILE: &str = "state.json";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub version: u32,
    /// Salt for parameter fingerprints (see `Params::fingerprint`).
    pub salt: String,
    /// Identity key → the connection the daemon owns for it.
    #[serde(default)]
    pub connections: BTreeMap<String, OwnedConnection>,
    /// Guest key (`cluster/vmid`) → unix seconds since when it is absent from a
    /// complete observation.
    #[serde(default)]
    pub absent_since: BTreeMap<String, u64>,
    /// Guacamole id → unix seconds since when an unattributed object sits in
    /// the managed tree.
    #[serde(default)]
    pub orphan_since: BTreeMap<String, u64>,
    /// Guest key → last known address.
    #[serde(default)]
    pub addresses: BTreeMap<String, CachedAddress>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OwnedConnection {
    pub id: String,
    /// Fingerprint of the parameters last written or verified.
    pub fingerprint: String,
    /// Unix seconds of the last full parameter comparison.
    pub verified_at: u64,
    /// Name and group path last written, to tell a hand edit (drift) from a
    /// change of the wish.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub group: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CachedAddress {
    pub address: String,
    pub source: String,
    pub seen_at: u64,
}

impl State {
    pub fn new() -> Self {
        let salt: [u8; 16] = rand::random();
        State {
            version: FORMAT_VERSION,
            salt: crate::reconcile::model::hex(&salt),
            connections: BTreeMap::new(),
            absent_since: BTreeMap::new(),
            orphan_since: BTreeMap::new(),
            addresses: BTreeMap::new(),
        }
    }
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path} is not valid: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("state directory {} is in use by {}; only one pve-guac-sync may own it at a time (stop the service, or wait for the other command)", path.display(), describe_holder(holder.as_ref()))]
    Locked {
        path: PathBuf,
        holder: Option<Holder>,
    },
}

fn describe_holder(holder: Option<&Holder>) -> String {
    match holder {
        Some(h) => format!("pid {} ({})", h.pid, h.role),
        None => "another process".to_owned(),
    }
}

impl StateError {
    pub fn label(&self) -> &'static str {
        match self {
            StateError::Io { .. } => "state_io",
            StateError::Corrupt { .. } => "state_corrupt",
            StateError::Locked { .. } => "state_locked",
        }
    }
}

/// Reads and writes the state file in one directory.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    fn io(&self, source: std::io::Error) -> StateError {
        StateError::Io {
            path: self.dir.clone(),
            source,
        }
    }

    /// The saved state, or a fresh one when there is none yet. A corrupt file
    /// is an error rather than a silent reset: ownership would be lost.
    pub fn load(&self) -> Result<State, StateError> {
        let path = self.file();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::new()),
            Err(e) => return Err(self.io(e)),
        };
        let state: State = serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if state.version != FORMAT_VERSION {
            return Err(StateError::Corrupt {
                path,
                message: format!("unsupported format version {}", state.version),
            });
        }
        Ok(state)
    }

    pub fn save(&self, state: &State) -> Result<(), StateError> {
        fs::create_dir_all(&self.dir).map_err(|e| self.io(e))?;
        let _ = fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700));
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(state).expect("state serialises");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| self.io(e))?;
        f.write_all(&bytes).map_err(|e| self.io(e))?;
        f.sync_all().map_err(|e| self.io(e))?;
        drop(f);
        fs::rename(&tmp, self.file()).map_err(|e| self.io(e))?;
        if let Ok(d) = fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// The state of one directory, owned: the lock, the store and what was last
/// written (so an unchanged state is not written again).
#[derive(Debug)]
pub struct StateFile {
    store: StateStore,
    saved: Option<State>,
    _lock: StateLock,
}

impl StateFile {
    /// Locks the directory and loads its state (fresh when there is none).
    pub fn open(dir: &Path, role: &str) -> Result<(StateFile, State), StateError> {
        let lock = StateLock::acquire(dir, role)?;
        let store = StateStore::new(dir);
        let state = store.load()?;
        let file = StateFile {
            store,
            saved: Some(state.clone()),
            _lock: lock,
        };
        Ok((file, state))
    }

    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    /// Writes `state` unless it equals what was last written.
    pub fn save(&mut self, state: &State) -> Result<(), StateError> {
        if self.saved.as_ref() == Some(state) {
            return Ok(());
        }
        self.store.save(state)?;
        self.saved = Some(state.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_gives_fresh_state_and_save_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("state"));
        let mut st = store.load().unwrap();
        assert!(st.connections.is_empty());
        st.connections.insert(
            "lab/100/admin/rdp".into(),
            OwnedConnection {
                id: "7".into(),
                fingerprint: "ab".into(),
                verified_at: 5,
                name: "admin@web-rdp".into(),
                group: vec!["pve1".into()],
            },
        );
        store.save(&st).unwrap();
        assert_eq!(store.load().unwrap(), st);
        let mode = fs::metadata(store.file()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path());
        fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        let err = store.load().unwrap_err();
        assert_eq!(err.label(), "state_corrupt");
    }

    #[test]
    fn a_state_file_writes_only_changes_and_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let (mut file, mut st) = StateFile::open(&path, "once").unwrap();
        assert_eq!(
            StateFile::open(&path, "run").unwrap_err().label(),
            "state_locked"
        );
        // Unchanged fresh state: nothing written yet.
        file.save(&st).unwrap();
        assert!(!path.join(STATE_FILE).exists());
        st.absent_since.insert("lab/100".into(), 5);
        file.save(&st).unwrap();
        assert_eq!(StateStore::new(&path).load().unwrap(), st);
        drop(file);
        let (_again, loaded) = StateFile::open(&path, "run").unwrap();
        assert_eq!(loaded, st);
    }
}
