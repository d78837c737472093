//! Privilege names, a compact privilege set, and the built-in roles of PVE 8
//! and PVE 9 (which differ in the guest-agent privileges).

use std::fmt;

/// Every privilege name the emulator knows, PVE 8 and PVE 9 together.
/// The bit of a privilege in [`PrivSet`] is its index here.
const ALL: &[&str] = &[
    "Datastore.Allocate",
    "Datastore.AllocateSpace",
    "Datastore.AllocateTemplate",
    "Datastore.Audit",
    "Group.Allocate",
    "Mapping.Audit",
    "Mapping.Modify",
    "Mapping.Use",
    "Permissions.Modify",
    "Pool.Allocate",
    "Pool.Audit",
    "Realm.Allocate",
    "Realm.AllocateUser",
    "SDN.Allocate",
    "SDN.Audit",
    "SDN.Use",
    "Sys.AccessNetwork",
    "Sys.Audit",
    "Sys.Console",
    "Sys.Incoming",
    "Sys.Modify",
    "Sys.PowerMgmt",
    "Sys.Syslog",
    "User.Modify",
    "VM.Allocate",
    "VM.Audit",
    "VM.Backup",
    "VM.Clone",
    "VM.Config.CDROM",
    "VM.Config.CPU",
    "VM.Config.Cloudinit",
    "VM.Config.Disk",
    "VM.Config.HWType",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
    "VM.Console",
    "VM.Migrate",
    "VM.PowerMgmt",
    "VM.Snapshot",
    "VM.Snapshot.Rollback",
    // PVE 8 only.
    "VM.Monitor",
    // PVE 9 only.
    "VM.GuestAgent.Audit",
    "VM.GuestAgent.FileRead",
    "VM.GuestAgent.FileWrite",
    "VM.GuestAgent.FileSystemMgmt",
    "VM.GuestAgent.Unrestricted",
    "VM.Replicate",
];

const PVE8_ONLY: &[&str] = &["VM.Monitor"];
const PVE9_ONLY: &[&str] = &[
    "VM.GuestAgent.Audit",
    "VM.GuestAgent.FileRead",
    "VM.GuestAgent.FileWrite",
    "VM.GuestAgent.FileSystemMgmt",
    "VM.GuestAgent.Unrestricted",
    "VM.Replicate",
];

/// A set of privileges as a bit set (one bit per entry of `ALL`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PrivSet(u64);

impl PrivSet {
    pub const EMPTY: PrivSet = PrivSet(0);

    /// The bit of a privilege name, if the emulator knows it at all.
    pub fn bit(name: &str) -> Option<PrivSet> {
        ALL.iter().position(|p| *p == name).map(|i| PrivSet(1 << i))
    }

    pub fn contains(self, other: PrivSet) -> bool {
        other.0 != 0 && self.0 & other.0 == other.0
    }

    pub fn has(self, name: &str) -> bool {
        PrivSet::bit(name).is_some_and(|b| self.contains(b))
    }

    pub fn union(self, other: PrivSet) -> PrivSet {
        PrivSet(self.0 | other.0)
    }

    pub fn intersect(self, other: PrivSet) -> PrivSet {
        PrivSet(self.0 & other.0)
    }

    #[cfg(test)]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Privilege names in the set, sorted.
    pub fn names(self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect();
        v.sort_unstable();
        v
    }
}

impl fmt::Debug for PrivSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

/// Which privilege names a server of this major version knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrivCatalog {
    pub major: u32,
}

impl PrivCatalog {
    /// The set named by `names`, silently dropping names this version does not
    /// know (the server ignores unknown names in stored roles).
    pub fn set_of<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> PrivSet {
        names
            .into_iter()
            .filter(|n| self.knows(n))
            .filter_map(PrivSet::bit)
            .fold(PrivSet::EMPTY, PrivSet::union)
    }

    pub fn knows(&self, name: &str) -> bool {
        if !ALL.contains(&name) {
            return false;
        }
        if self.major >= 9 {
            !PVE8_ONLY.contains(&name)
        } else {
            !PVE9_ONLY.contains(&name)
        }
    }

    /// Every privilege this version knows.
    pub fn all(&self) -> PrivSet {
        self.set_of(ALL.iter().copied())
    }

    /// A built-in role's privileges, `None` if `role` is not built in.
    pub fn builtin_role(&self, role: &str) -> Option<PrivSet> {
        let all = self.all();
        let set = match role {
            "Administrator" => all,
            "NoAccess" => PrivSet::EMPTY,
            "PVEAdmin" => {
                let excluded = self.set_of([
                    "Sys.PowerMgmt",
                    "Sys.Modify",
                    "Realm.Allocate",
                    "Permissions.Modify",
                ]);
                PrivSet(all.0 & !excluded.0)
            }
            "PVEVMAdmin" => {
                let vm: Vec<&str> = ALL
                    .iter()
                    .copied()
                    .filter(|p| p.starts_with("VM."))
                    .collect();
                self.set_of(vm)
            }
            "PVEVMUser" => self.set_of([
                "VM.Audit",
                "VM.Backup",
                "VM.Config.CDROM",
                "VM.Config.Cloudinit",
                "VM.Console",
                "VM.PowerMgmt",
                "VM.GuestAgent.Audit",
            ]),
            "PVEAuditor" => self.set_of([
                "Datastore.Audit",
                "Mapping.Audit",
                "Pool.Audit",
                "SDN.Audit",
                "Sys.Audit",
                "VM.Audit",
                "VM.GuestAgent.Audit",
            ]),
            "PVEPoolUser" => self.set_of(["Pool.Audit"]),
            "PVESDNUser" => self.set_of(["SDN.Audit", "SDN.Use"]),
            "PVEDatastoreUser" => self.set_of(["Datastore.AllocateSpace", "Datastore.Audit"]),
            _ => return None,
        };
        Some(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_user_differs_between_versions() {
        let v8 = PrivCatalog { major: 8 };
        let v9 = PrivCatalog { major: 9 };
        assert!(
            !v8.builtin_role("PVEVMUser")
                .unwrap()
                .has("VM.GuestAgent.Audit")
        );
        assert!(
            v9.builtin_role("PVEVMUser")
                .unwrap()
                .has("VM.GuestAgent.Audit")
        );
        assert!(
            !v9.builtin_role("PVEVMUser")
                .unwrap()
                .has("VM.Config.Options")
        );
        assert!(v8.builtin_role("PVEVMAdmin").unwrap().has("VM.Monitor"));
        assert!(!v9.builtin_role("PVEVMAdmin").unwrap().has("VM.Monitor"));
        assert!(v9.set_of(["VM.Monitor"]).is_empty());
    }
}
