//! One writer per state directory: an exclusive `flock` on `state_dir/lock`,
//! held for as long as a command owns the state (the whole life of `run`, one
//! cycle of `once`). The file also says who holds it (`pid role`), so
//! `sync-now` can find the running service, and an operator can see who is
//! in the way. The lock dies with its process; a stale file is harmless.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::StateError;

const LOCK_FILE: &str = "lock";

/// Who holds a lock: the process and what it runs (`run`, `once`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub role: String,
}

/// An exclusive lock on a state directory; released on drop.
#[derive(Debug)]
pub struct StateLock {
    file: File,
    path: PathBuf,
}

impl StateLock {
    /// Takes the lock without waiting, creating the directory (mode 0700)
    /// and the lock file when missing; a directory group or others may
    /// enter is refused. Held by another process: an error
    /// naming the directory and, when known, the holder.
    pub fn acquire(dir: &Path, role: &str) -> Result<StateLock, StateError> {
        let io = |source| StateError::Io {
            path: dir.to_path_buf(),
            source,
        };
        // The same directory rules as the state file: a lock taken before
        // the first save must not make a directory the save then refuses.
        super::dir::ensure_private(dir)?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StateError::Locked {
                    path: dir.to_path_buf(),
                    holder: read_holder(&mut file),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let record = format!("{} {role}\n", std::process::id());
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(record.as_bytes()).map_err(io)?;
        Ok(StateLock { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // Clear the record so a stale pid never points at another process;
        // the lock itself ends when the file is closed.
        let _ = self.file.set_len(0);
    }
}

/// The process holding the lock on `dir`, or `None` when nobody does (no
/// file, or its lock is free: a stale record is ignored).
pub fn holder(dir: &Path) -> Result<Option<Holder>, StateError> {
    let io = |source| StateError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut file = match File::open(dir.join(LOCK_FILE)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(None),
        Err(fs::TryLockError::WouldBlock) => Ok(read_holder(&mut file)),
        Err(fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    let (pid, role) = text.trim().split_once(' ')?;
    Some(Holder {
        pid: pid.parse().ok()?,
        role: role.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = StateLock::acquire(&state, "run").unwrap();
        let err = StateLock::acquire(&state, "once").unwrap_err();
        assert_eq!(err.label(), "state_locked");
        let text = err.to_string();
        assert!(text.contains(&state.display().to_string()), "{text}");
        assert!(
            text.contains(&format!("pid {} (run)", std::process::id())),
            "{text}"
        );
        assert_eq!(
            holder(&state).unwrap(),
            Some(Holder {
                pid: std::process::id(),
                role: "run".into()
            })
        );
        let mode = fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(first);
        assert_eq!(holder(&state).unwrap(), None);
        let again = StateLock::acquire(&state, "once").unwrap();
        assert_eq!(again.path(), state.join("lock"));
    }

    #[test]
    fn a_lock_on_an_open_directory_is_refused_and_never_chmods_it() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        let err = StateLock::acquire(&open, "run").unwrap_err();
        assert_eq!(err.label(), "state_dir_unsafe");
        let mode = fs::metadata(&open).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert!(!open.join(LOCK_FILE).exists());
    }

    #[test]
    fn no_lock_file_means_no_holder() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(holder(dir.path()).unwrap(), None);
    }
}
