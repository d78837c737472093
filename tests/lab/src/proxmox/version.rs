//! The pve-manager version and the behaviours that hang on it.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PveVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl PveVersion {
    /// Parse `9.0.10`; missing parts are 0, garbage gives 9.0.0.
    pub fn parse(s: &str) -> PveVersion {
        let mut it = s.split(['.', '-']).map(|p| p.parse::<u32>().ok());
        let major = it.next().flatten().unwrap_or(9);
        PveVersion {
            major,
            minor: it.next().flatten().unwrap_or(0),
            patch: it.next().flatten().unwrap_or(0),
        }
    }

    const fn v(major: u32, minor: u32, patch: u32) -> PveVersion {
        PveVersion {
            major,
            minor,
            patch,
        }
    }

    /// Error bodies without `message` (API server before January 2025).
    pub fn legacy_error_body(self) -> bool {
        self < PveVersion::v(8, 4, 0)
    }

    /// The specific old 401 texts (before 9.1.5 / 8.4.17).
    pub fn legacy_auth_texts(self) -> bool {
        let new =
            self >= PveVersion::v(9, 1, 5) || (self.major == 8 && self >= PveVersion::v(8, 4, 17));
        !new
    }

    /// Percent escapes in notes are decoded on read before 8.2.
    pub fn decodes_percent_in_notes(self) -> bool {
        self < PveVersion::v(8, 2, 0)
    }

    /// `/nodes/N/lxc/V/interfaces` exists from 8.1 on.
    pub fn has_lxc_interfaces(self) -> bool {
        self >= PveVersion::v(8, 1, 0)
    }

    /// `memhost` in VM lists and resources.
    pub fn has_memhost(self) -> bool {
        self.major >= 9
    }
}

impl fmt::Display for PveVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_switches() {
        assert!(PveVersion::parse("8.2.4").legacy_error_body());
        assert!(!PveVersion::parse("8.4.1").legacy_error_body());
        assert!(PveVersion::parse("9.0.10").legacy_auth_texts());
        assert!(!PveVersion::parse("9.1.5").legacy_auth_texts());
        assert!(!PveVersion::parse("8.4.17").legacy_auth_texts());
        assert!(PveVersion::parse("8.4.16").legacy_auth_texts());
    }
}
