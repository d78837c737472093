//! Which guests are synchronised: `sync.include` / `sync.exclude`.
//!
//! Semantics: every *non-empty* include list must match (lists are ANDed,
//! entries within a list ORed); then any match in any exclude list removes the
//! guest. Empty include lists select everything. Tags compare
//! case-insensitively (Proxmox lowercases them in places); node and pool
//! names compare exactly. Templates are skipped by the caller, always.

use std::fmt;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    pub include: Filter,
    pub exclude: Filter,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Lower-case.
    pub tags: Vec<String>,
    pub vmids: Vec<VmidRange>,
    pub nodes: Vec<String>,
    pub pools: Vec<String>,
}

/// Inclusive range of VMIDs; a single VMID is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmidRange {
    pub first: u32,
    pub last: u32,
}

/// What the selector looks at, borrowed from whatever guest type the caller has.
#[derive(Debug, Clone, Copy)]
pub struct GuestFacts<'a> {
    pub vmid: u32,
    pub node: &'a str,
    pub pool: Option<&'a str>,
    pub tags: &'a [String],
}

impl Selector {
    pub fn matches(&self, guest: &GuestFacts<'_>) -> bool {
        self.include.all_nonempty_lists_match(guest) && !self.exclude.any_entry_matches(guest)
    }

    pub fn is_everything(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
            && self.vmids.is_empty()
            && self.nodes.is_empty()
            && self.pools.is_empty()
    }

    fn tag_matches(&self, guest: &GuestFacts<'_>) -> bool {
        guest
            .tags
            .iter()
            .any(|t| self.tags.iter().any(|want| want.eq_ignore_ascii_case(t)))
    }

    fn vmid_matches(&self, guest: &GuestFacts<'_>) -> bool {
        self.vmids.iter().any(|r| r.contains(guest.vmid))
    }

    fn node_matches(&self, guest: &GuestFacts<'_>) -> bool {
        self.nodes.iter().any(|n| n == guest.node)
    }

    fn pool_matches(&self, guest: &GuestFacts<'_>) -> bool {
        guest
            .pool
            .is_some_and(|p| self.pools.iter().any(|want| want == p))
    }

    fn all_nonempty_lists_match(&self, guest: &GuestFacts<'_>) -> bool {
        (self.tags.is_empty() || self.tag_matches(guest))
            && (self.vmids.is_empty() || self.vmid_matches(guest))
            && (self.nodes.is_empty() || self.node_matches(guest))
            && (self.pools.is_empty() || self.pool_matches(guest))
    }

    fn any_entry_matches(&self, guest: &GuestFacts<'_>) -> bool {
        self.tag_matches(guest)
            || self.vmid_matches(guest)
            || self.node_matches(guest)
            || self.pool_matches(guest)
    }
}

impl VmidRange {
    pub fn contains(&self, vmid: u32) -> bool {
        (self.first..=self.last).contains(&vmid)
    }

    /// `"105"` or `"100-199"` (spaces around `-` allowed).
    pub fn parse(text: &str) -> Result<VmidRange, VmidRangeError> {
        let number = |s: &str| {
            s.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(VmidRangeError::NotANumber)
        };
        let range = match text.split_once('-') {
            Some((a, b)) => VmidRange {
                first: number(a)?,
                last: number(b)?,
            },
            None => {
                let n = number(text)?;
                VmidRange { first: n, last: n }
            }
        };
        if range.first > range.last {
            return Err(VmidRangeError::Reversed);
        }
        Ok(range)
    }
}

impl fmt::Display for VmidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VmidRangeError {
    #[error("expected a VMID like 105 or a range like 100-199")]
    NotANumber,
    #[error("the range starts after it ends; write it low-high, like 100-199")]
    Reversed,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest<'a>(
        vmid: u32,
        node: &'a str,
        pool: Option<&'a str>,
        tags: &'a [String],
    ) -> GuestFacts<'a> {
        GuestFacts {
            vmid,
            node,
            pool,
            tags,
        }
    }

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn empty_selector_takes_everything() {
        let s = Selector::default();
        assert!(s.is_everything());
        assert!(s.matches(&guest(100, "pve1", None, &[])));
    }

    #[test]
    fn include_lists_are_anded_and_entries_ored() {
        let s = Selector {
            include: Filter {
                tags: tags(&["guac", "rdp"]),
                nodes: tags(&["pve1"]),
                ..Filter::default()
            },
            ..Selector::default()
        };
        let t = tags(&["web", "GUAC"]);
        assert!(s.matches(&guest(100, "pve1", None, &t)));
        assert!(
            !s.matches(&guest(100, "pve2", None, &t)),
            "node list must match too"
        );
        assert!(!s.matches(&guest(100, "pve1", None, &tags(&["web"]))));
        assert!(s.matches(&guest(100, "pve1", None, &tags(&["rdp"]))));
    }

    #[test]
    fn any_exclude_entry_wins_over_include() {
        let s = Selector {
            include: Filter {
                vmids: vec![VmidRange::parse("100-199").unwrap()],
                ..Filter::default()
            },
            exclude: Filter {
                vmids: vec![VmidRange::parse("150").unwrap()],
                pools: tags(&["quarantine"]),
                tags: tags(&["no-guac"]),
                ..Filter::default()
            },
        };
        assert!(s.matches(&guest(100, "n", Some("prod"), &[])));
        assert!(s.matches(&guest(199, "n", None, &[])));
        assert!(!s.matches(&guest(200, "n", None, &[])));
        assert!(!s.matches(&guest(150, "n", None, &[])));
        assert!(!s.matches(&guest(101, "n", Some("quarantine"), &[])));
        assert!(!s.matches(&guest(101, "n", None, &tags(&["No-Guac"]))));
    }

    #[test]
    fn a_pool_filter_never_matches_a_guest_without_pool() {
        let s = Selector {
            include: Filter {
                pools: tags(&["prod"]),
                ..Filter::default()
            },
            ..Selector::default()
        };
        assert!(!s.matches(&guest(100, "n", None, &[])));
        assert!(s.matches(&guest(100, "n", Some("prod"), &[])));
    }

    #[test]
    fn vmid_ranges_parse_strictly() {
        assert_eq!(
            VmidRange::parse("100 - 199"),
            Ok(VmidRange {
                first: 100,
                last: 199
            })
        );
        assert_eq!(
            VmidRange::parse("105").map(|r| r.to_string()),
            Ok("105".to_owned())
        );
        assert_eq!(VmidRange::parse("199-100"), Err(VmidRangeError::Reversed));
        assert_eq!(VmidRange::parse("abc"), Err(VmidRangeError::NotANumber));
        assert_eq!(VmidRange::parse("100-"), Err(VmidRangeError::NotANumber));
        assert_eq!(VmidRange::parse("0"), Err(VmidRangeError::NotANumber));
        assert_eq!(VmidRange::parse("-5"), Err(VmidRangeError::NotANumber));
    }
}
