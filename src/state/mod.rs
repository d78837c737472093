//! The state directory: which Guacamole objects the daemon owns (identity →
//! identifier and a fingerprint of what it last wrote), how long guests have
//! been absent, and the last known addresses. Written atomically (a unique
//! temp file created exclusively with mode 0600, fsync, rename, fsync of the
//! directory), so a crash never leaves a half-written file. The directory
//! must be owner-only: made 0700 when missing, refused when group or others
//! may enter it (it is never chmod-ed).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::reconcile::model::FingerprintKey;

pub(crate) mod dir;
mod lock;

pub use lock::{Holder, StateLock, holder};

const STATE_FILE: &str = "state.json";
/// Version 2: keyed fingerprints (no salt in the file). Version 1 files are
/// read; their salted fingerprints never match a keyed one, so each owned
/// connection is re-verified by one parameter read (no writes).
const FORMAT_VERSION: u32 = 2;
const READABLE_VERSIONS: [u32; 2] = [1, 2];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub version: u32,
    /// Key of the parameter fingerprints (see `Params::fingerprint`): set by
    /// the store, never written to the file.
    #[serde(skip)]
    pub fingerprint_key: FingerprintKey,
    /// The Guacamole the ownership records below were written for; `None`
    /// in files of format 1 and before the first write.
    #[serde(default)]
    pub guacamole: Option<GuacamoleBinding>,
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
    /// Grantee key (`user:NAME`, `group:NAME`) → the READ permissions the
    /// daemon granted it. Only these are ever revoked.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub grants: BTreeMap<String, GrantRecord>,
    /// Guest key → when its address is asked again (discovery scheduler).
    #[serde(default)]
    pub discovery: BTreeMap<String, crate::discovery::schedule::DiscoveryRecord>,
    /// Guest key → unix seconds until which it is not powered up again.
    #[serde(default)]
    pub power_cooldown: BTreeMap<String, u64>,
}

/// READ permissions the daemon granted one user or user group.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct GrantRecord {
    /// Connection identifiers.
    #[serde(default)]
    pub connections: std::collections::BTreeSet<String>,
    /// Connection group identifiers (the managed root and groups below it).
    #[serde(default)]
    pub groups: std::collections::BTreeSet<String>,
}

impl GrantRecord {
    pub fn is_empty(&self) -> bool {
        self.connections.is_empty() && self.groups.is_empty()
    }
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

/// What ties ownership records to one Guacamole: its API base, the data
/// source, and the identifier the server gave the managed root group. A
/// rebuilt or restored database, another server or a re-created root group
/// gives another binding (identifiers restart, so ids alone prove nothing).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuacamoleBinding {
    pub api: String,
    pub data_source: String,
    pub root_group_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CachedAddress {
    pub address: String,
    pub source: String,
    pub seen_at: u64,
    /// The `net0` MAC the address was learnt for; a new NIC invalidates it.
    #[serde(default)]
    pub mac: Option<String>,
}

impl State {
    pub fn new() -> Self {
        State {
            version: FORMAT_VERSION,
            fingerprint_key: FingerprintKey::random(),
            guacamole: None,
            connections: BTreeMap::new(),
            absent_since: BTreeMap::new(),
            orphan_since: BTreeMap::new(),
            addresses: BTreeMap::new(),
            grants: BTreeMap::new(),
            discovery: BTreeMap::new(),
            power_cooldown: BTreeMap::new(),
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
    #[error(
        "state directory {path} is accessible to group or others (mode {mode:04o}); use a directory only its owner can enter (chmod 700), not a shared one such as /var/lib"
    )]
    UnsafeDir { path: PathBuf, mode: u32 },
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
            StateError::UnsafeDir { .. } => "state_dir_unsafe",
            StateError::Locked { .. } => "state_locked",
        }
    }
}

/// Reads and writes the state file in one directory.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
    fingerprint_key: FingerprintKey,
}

impl StateStore {
    /// A store whose fingerprint key is random (nothing verified carries
    /// over to another process): see [`StateStore::with_fingerprint_key`].
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateStore {
            dir: dir.into(),
            fingerprint_key: FingerprintKey::random(),
        }
    }

    /// The key loaded states fingerprint parameters with.
    pub fn with_fingerprint_key(mut self, key: FingerprintKey) -> Self {
        self.fingerprint_key = key;
        self
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
        match fs::metadata(&self.dir) {
            Ok(_) => self.check_dir()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(self.fresh()),
            Err(e) => return Err(self.io(e)),
        }
        let bytes = match dir::read_regular(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(self.fresh()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(StateError::Corrupt {
                    path,
                    message: e.to_string(),
                });
            }
            Err(e) => return Err(self.io(e)),
        };
        let mut state: State = serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if !READABLE_VERSIONS.contains(&state.version) {
            return Err(StateError::Corrupt {
                path,
                message: format!("unsupported format version {}", state.version),
            });
        }
        state.version = FORMAT_VERSION;
        state.fingerprint_key = self.fingerprint_key.clone();
        Ok(state)
    }

    fn fresh(&self) -> State {
        State {
            fingerprint_key: self.fingerprint_key.clone(),
            ..State::new()
        }
    }

    pub fn save(&self, state: &State) -> Result<(), StateError> {
        self.write(&encode(state))
    }

    fn write(&self, bytes: &[u8]) -> Result<(), StateError> {
        dir::ensure_private(&self.dir)?;
        dir::write_atomic(&self.dir, STATE_FILE, bytes, |e| self.io(e))
    }

    fn check_dir(&self) -> Result<(), StateError> {
        dir::check_private(&self.dir)
    }
}

fn encode(state: &State) -> Vec<u8> {
    serde_json::to_vec_pretty(state).expect("state serialises")
}

/// SHA-256 of the file's bytes.
type Digest = [u8; 32];

fn digest(bytes: &[u8]) -> Digest {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

/// The state of one directory, owned: the lock, the store and a digest of
/// what was last written (so an unchanged state is not written again; a
/// digest, not a copy: at thousands of guests the state is megabytes).
#[derive(Debug)]
pub struct StateFile {
    store: StateStore,
    saved: Option<Digest>,
    _lock: StateLock,
}

impl StateFile {
    /// Locks the store's directory and loads its state (fresh when there is
    /// none).
    pub fn open(store: StateStore, role: &str) -> Result<(StateFile, State), StateError> {
        let lock = StateLock::acquire(store.dir(), role)?;
        let state = store.load()?;
        let file = StateFile {
            store,
            saved: Some(digest(&encode(&state))),
            _lock: lock,
        };
        Ok((file, state))
    }

    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    /// Writes `state` unless it equals what was last written.
    pub fn save(&mut self, state: &State) -> Result<(), StateError> {
        let bytes = encode(state);
        let written = digest(&bytes);
        if self.saved == Some(written) {
            return Ok(());
        }
        self.store.write(&bytes)?;
        self.saved = Some(written);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A scratch directory only its owner may enter.
    fn private_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

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
        let dir = private_dir();
        let store = StateStore::new(dir.path());
        fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        let err = store.load().unwrap_err();
        assert_eq!(err.label(), "state_corrupt");
    }

    #[test]
    fn an_existing_directory_is_never_chmodded_and_an_open_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        let store = StateStore::new(&open);
        let err = store.save(&State::new()).unwrap_err();
        assert_eq!(err.label(), "state_dir_unsafe");
        assert_eq!(
            err.to_string(),
            format!(
                "state directory {} is accessible to group or others (mode 0755); use a directory only its owner can enter (chmod 700), not a shared one such as /var/lib",
                open.display()
            )
        );
        assert_eq!(store.load().unwrap_err().label(), "state_dir_unsafe");
        let mode = fs::metadata(&open).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o755,
            "save must not chmod a directory it did not make"
        );
        assert!(!open.join(STATE_FILE).exists());

        // A directory save makes itself is owner-only.
        let made = StateStore::new(dir.path().join("made/state"));
        made.save(&State::new()).unwrap();
        let mode = fs::metadata(made.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn leftover_temp_files_and_symlinks_never_shape_the_state_file() {
        let dir = private_dir();
        let store = StateStore::new(dir.path());
        // A stale world-readable temp file, and a temp name planted as a
        // symlink to a file elsewhere.
        let stale = dir.path().join(format!("{STATE_FILE}.tmp"));
        fs::write(&stale, b"old").unwrap();
        fs::set_permissions(&stale, fs::Permissions::from_mode(0o644)).unwrap();
        let victim = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(victim.path(), dir.path().join(".state.json.planted")).unwrap();
        store.save(&State::new()).unwrap();
        let mode = fs::metadata(store.file()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::read(victim.path()).unwrap(), b"");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            3,
            "temp file left"
        );
        // A state file that is a symlink is not read.
        fs::remove_file(store.file()).unwrap();
        fs::write(victim.path(), serde_json::to_vec(&State::new()).unwrap()).unwrap();
        std::os::unix::fs::symlink(victim.path(), store.file()).unwrap();
        assert_eq!(store.load().unwrap_err().label(), "state_corrupt");
    }

    #[test]
    fn a_state_file_writes_only_changes_and_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let store = || StateStore::new(&path).with_fingerprint_key(FingerprintKey::derive("k"));
        let (mut file, mut st) = StateFile::open(store(), "once").unwrap();
        assert_eq!(
            StateFile::open(store(), "run").unwrap_err().label(),
            "state_locked"
        );
        // Unchanged fresh state: nothing written yet.
        file.save(&st).unwrap();
        assert!(!path.join(STATE_FILE).exists());
        st.absent_since.insert("lab/100".into(), 5);
        file.save(&st).unwrap();
        assert_eq!(store().load().unwrap(), st);
        drop(file);
        let (_again, loaded) = StateFile::open(store(), "run").unwrap();
        assert_eq!(loaded, st);
    }
}
