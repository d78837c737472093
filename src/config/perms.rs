//! File permission checks for files that hold secrets.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Permission bits (`0o777` part) of the file a path leads to.
pub(crate) fn file_mode(path: &Path) -> io::Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o7777)
}

/// Whether anyone besides the owner can read the file: the group-read or
/// other-read bit. (Write or execute bits alone do not leak its content.)
pub(crate) fn readable_by_group_or_others(mode: u32) -> bool {
    mode & 0o044 != 0
}

/// Whether anyone besides the owner can change the file.
pub(crate) fn writable_by_group_or_others(mode: u32) -> bool {
    mode & 0o022 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_bits_count_as_readable() {
        assert!(!readable_by_group_or_others(0o600));
        assert!(!readable_by_group_or_others(0o400));
        assert!(!readable_by_group_or_others(0o620));
        assert!(!readable_by_group_or_others(0o700));
        assert!(readable_by_group_or_others(0o640));
        assert!(readable_by_group_or_others(0o604));
        assert!(readable_by_group_or_others(0o644));
        assert!(writable_by_group_or_others(0o620));
        assert!(!writable_by_group_or_others(0o644));
    }

    #[test]
    fn reads_the_mode_of_a_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(file_mode(&path).unwrap(), 0o640);
    }
}
