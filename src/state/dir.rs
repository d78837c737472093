//! The rules every file in the state directory shares (state, lock, power
//! journal): the directory is made owner-only (0700) when missing and
//! refused when group or others may enter it (an existing one is never
//! chmod-ed); files are written through a unique temp file created
//! exclusively with mode 0600, and never read through a symlink.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::StateError;

fn io(dir: &Path, source: std::io::Error) -> StateError {
    StateError::Io {
        path: dir.to_path_buf(),
        source,
    }
}

/// Makes `dir` owner-only when it does not exist yet; an existing one is
/// only checked (it may be shared, so it is never chmod-ed).
pub(crate) fn ensure_private(dir: &Path) -> Result<(), StateError> {
    match fs::metadata(dir) {
        Ok(_) => check_private(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io(dir, e)),
        Err(e) => Err(io(dir, e)),
    }
}

/// The directory holds who owns what: others must not enter it (nor swap
/// its files).
pub(crate) fn check_private(dir: &Path) -> Result<(), StateError> {
    let meta = fs::metadata(dir).map_err(|e| io(dir, e))?;
    let mode = meta.permissions().mode() & 0o7777;
    if !meta.is_dir() {
        return Err(io(dir, std::io::Error::other("not a directory")));
    }
    if mode & 0o077 != 0 {
        return Err(StateError::UnsafeDir {
            path: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// A fresh temp file for `name` in `dir`: a unique name, created
/// exclusively (`O_EXCL` also refuses a symlink planted under the name) with
/// mode 0600, so no leftover decides the mode of the file it replaces.
pub(crate) fn create_temp(dir: &Path, name: &str) -> Result<(PathBuf, fs::File), StateError> {
    loop {
        let tag: u64 = rand::random();
        let tmp = dir.join(format!(".{name}.{tag:016x}.tmp"));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(dir, e)),
        }
    }
}

/// Replaces `dir/name` with `bytes` atomically: a fresh temp file (see
/// [`create_temp`]), fsync, rename, then fsync of the directory. A failed
/// write leaves the old file in place and no temp file behind; `on_io` names
/// the path in the error.
pub(crate) fn write_atomic(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    on_io: impl Fn(std::io::Error) -> StateError,
) -> Result<(), StateError> {
    let (tmp, mut f) = create_temp(dir, name)?;
    let written = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .and_then(|()| {
            drop(f);
            fs::rename(&tmp, dir.join(name))
        });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(on_io(e));
    }
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a regular file without following a symlink at its name (a link
/// there is reported as invalid data, not read through).
pub(crate) fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.file_type().is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a regular file (a symlink or special file is never followed)",
        ));
    }
    fs::read(path)
}
