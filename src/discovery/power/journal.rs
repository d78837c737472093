//! The power journal (`power-journal.json` in the state directory): every
//! guest the daemon is about to start is written here **before** the start
//! call, and removed only once it is restored (or proven not ours). A crash
//! leaves the entry behind, and the next start restores the guest.
//! Written atomically with mode 0600 in an owner-only directory, like the
//! state file.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::proxmox::GuestKind;
use crate::state::{StateError, dir};

pub const JOURNAL_FILE: &str = "power-journal.json";

/// One guest the daemon powered up (or is about to).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JournalEntry {
    pub cluster: String,
    pub node: String,
    pub kind: GuestKind,
    pub vmid: u32,
    /// Unix seconds when the entry was written (before the start call).
    pub recorded_at: u64,
    /// The start task, once the start call returned it.
    #[serde(default)]
    pub start_upid: Option<String>,
    /// `uptime` right after our start finished: lower later means someone
    /// restarted the guest, which then is theirs.
    #[serde(default)]
    pub uptime_after_start: Option<u64>,
    /// Unix seconds (system clock) when that uptime was read.
    #[serde(default)]
    pub uptime_read_at: Option<u64>,
}

impl JournalEntry {
    pub fn key(&self) -> String {
        format!("{}/{}", self.cluster, self.vmid)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct JournalFile {
    entries: Vec<JournalEntry>,
}

/// The journal file; one process writes it, its tasks share this handle.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    lock: Mutex<()>,
}

impl Journal {
    pub fn new(state_dir: &Path) -> Journal {
        Journal {
            dir: state_dir.to_path_buf(),
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(JOURNAL_FILE)
    }

    fn io(&self, source: std::io::Error) -> StateError {
        StateError::Io {
            path: self.path(),
            source,
        }
    }

    pub fn entries(&self) -> Result<Vec<JournalEntry>, StateError> {
        let _g = self.lock.lock().expect("journal lock");
        self.read()
    }

    /// Adds or replaces the entry of that guest, durably.
    pub fn record(&self, entry: JournalEntry) -> Result<(), StateError> {
        self.change(|list| {
            list.retain(|e| e.key() != entry.key());
            list.push(entry);
        })
    }

    /// Changes the entry of `key`, if it is there.
    pub fn update(&self, key: &str, f: impl FnOnce(&mut JournalEntry)) -> Result<(), StateError> {
        self.change(|list| {
            if let Some(e) = list.iter_mut().find(|e| e.key() == key) {
                f(e);
            }
        })
    }

    pub fn remove(&self, key: &str) -> Result<(), StateError> {
        self.change(|list| list.retain(|e| e.key() != key))
    }

    fn change(&self, f: impl FnOnce(&mut Vec<JournalEntry>)) -> Result<(), StateError> {
        let _g = self.lock.lock().expect("journal lock");
        let mut list = self.read()?;
        f(&mut list);
        self.write(&list)
    }

    fn read(&self) -> Result<Vec<JournalEntry>, StateError> {
        match fs::metadata(&self.dir) {
            Ok(_) => dir::check_private(&self.dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(e)),
        }
        let bytes = match dir::read_regular(&self.path()) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(StateError::Corrupt {
                    path: self.path(),
                    message: e.to_string(),
                });
            }
            Err(e) => return Err(self.io(e)),
        };
        let file: JournalFile =
            serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
                path: self.path(),
                message: e.to_string(),
            })?;
        Ok(file.entries)
    }

    /// Same rules as the state file: owner-only directory, a unique 0600
    /// temp file created exclusively, fsync, rename.
    fn write(&self, entries: &[JournalEntry]) -> Result<(), StateError> {
        dir::ensure_private(&self.dir)?;
        let body = JournalFile {
            entries: entries.to_vec(),
        };
        let bytes = serde_json::to_vec_pretty(&body).expect("journal serialises");
        dir::write_atomic(&self.dir, JOURNAL_FILE, &bytes, |e| self.io(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(vmid: u32) -> JournalEntry {
        JournalEntry {
            cluster: "lab".into(),
            node: "pve1".into(),
            kind: GuestKind::Qemu,
            vmid,
            recorded_at: 5,
            start_upid: None,
            uptime_after_start: None,
            uptime_read_at: None,
        }
    }

    #[test]
    fn record_update_remove_survive_a_new_handle() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let j = Journal::new(&dir);
        assert!(j.entries().unwrap().is_empty());
        j.record(entry(100)).unwrap();
        j.record(entry(101)).unwrap();
        j.update("lab/100", |e| e.start_upid = Some("UPID:x".into()))
            .unwrap();
        let again = Journal::new(&dir);
        let list = again.entries().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].start_upid.as_deref(), Some("UPID:x"));
        again.remove("lab/100").unwrap();
        assert_eq!(j.entries().unwrap(), vec![entry(101)]);
    }

    #[test]
    fn the_journal_keeps_the_state_directory_rules() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("made/state");
        Journal::new(&made).record(entry(100)).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&made), 0o700);
        assert_eq!(mode(&made.join(JOURNAL_FILE)), 0o600);
        assert_eq!(fs::read_dir(&made).unwrap().count(), 1, "temp file left");

        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        let j = Journal::new(&open);
        assert_eq!(
            j.record(entry(100)).unwrap_err().label(),
            "state_dir_unsafe"
        );
        assert_eq!(j.entries().unwrap_err().label(), "state_dir_unsafe");
        assert_eq!(mode(&open), 0o755);
    }
}
