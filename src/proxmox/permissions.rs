//! `GET /access/permissions` and the privilege checks of `test-auth`: which
//! privilege each enabled feature needs (spec §3.3), evaluated before any
//! change is attempted.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::types::lenient_bool;

/// Effective privileges: ACL path → privilege → propagate flag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions(pub BTreeMap<String, BTreeMap<String, bool>>);

impl Permissions {
    pub fn from_value(data: &Value) -> Option<Permissions> {
        let obj = data.as_object()?;
        let mut out = BTreeMap::new();
        for (path, privs) in obj {
            let privs = privs
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(name, flag)| (name.clone(), lenient_bool(flag).unwrap_or(false)))
                        .collect()
                })
                .unwrap_or_default();
            out.insert(path.clone(), privs);
        }
        Some(Permissions(out))
    }

    /// The privileges on `path` from either shape of the answer: the
    /// `path=` shape `{path: {…}}` (possibly empty) or the whole-tree map,
    /// which lists `path` only when something is granted there.
    pub fn on(&self, path: &str) -> BTreeMap<String, bool> {
        self.0.get(path).cloned().unwrap_or_default()
    }

    /// True when `path` lists `privilege`.
    pub fn has(&self, path: &str, privilege: &str) -> bool {
        self.0
            .get(path)
            .is_some_and(|privs| privs.contains_key(privilege))
    }

    /// Paths under `prefix/` that list `privilege`.
    fn below<'a>(&'a self, prefix: &str, privilege: &str) -> Vec<&'a str> {
        let prefix = format!("{}/", prefix.trim_end_matches('/'));
        self.0
            .iter()
            .filter(|(path, privs)| path.starts_with(&prefix) && privs.contains_key(privilege))
            .map(|(path, _)| path.as_str())
            .collect()
    }
}

/// What the daemon does that needs a privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// See guests and read their config and status.
    Inventory,
    /// Write encrypted notes back into guest configs.
    NoteWriteBack,
    /// Ask the QEMU guest agent for addresses.
    GuestAgent,
    /// Power stopped guests up briefly to learn their address.
    PowerUp,
    /// Read cluster status (quorum, node health).
    ClusterStatus,
}

impl Feature {
    pub const ALL: [Feature; 5] = [
        Feature::Inventory,
        Feature::NoteWriteBack,
        Feature::GuestAgent,
        Feature::PowerUp,
        Feature::ClusterStatus,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            Feature::Inventory => "guest inventory",
            Feature::NoteWriteBack => "note write-back (auto-encrypt)",
            Feature::GuestAgent => "address discovery via the guest agent",
            Feature::PowerUp => "power-up for address discovery",
            Feature::ClusterStatus => "cluster status",
        }
    }

    /// The ACL path and the privileges (any one suffices) this feature needs
    /// on a server of major version `pve_major`.
    pub fn requirement(self, pve_major: u32) -> (&'static str, &'static [&'static str]) {
        match self {
            Feature::Inventory => ("/vms", &["VM.Audit"]),
            Feature::NoteWriteBack => ("/vms", &["VM.Config.Options"]),
            Feature::GuestAgent if pve_major >= 9 => (
                "/vms",
                &["VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"],
            ),
            Feature::GuestAgent => ("/vms", &["VM.Monitor"]),
            Feature::PowerUp => ("/vms", &["VM.PowerMgmt"]),
            Feature::ClusterStatus => ("/", &["Sys.Audit"]),
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// One line of `test-auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivilegeCheck {
    pub feature: Feature,
    /// `VM.Audit`, or alternatives joined by `|`.
    pub privilege: String,
    pub path: String,
    pub passed: bool,
    /// Why it passed partially or failed.
    pub detail: String,
}

impl fmt::Display for PrivilegeCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} on {} (needed for {})",
            if self.passed { "ok  " } else { "FAIL" },
            self.privilege,
            self.path,
            self.feature
        )?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// The Proxmox half of `test-auth` for one cluster: every endpoint contacted
/// directly (TLS and token), then the privileges the features need.
#[derive(Debug)]
pub struct AuthReport {
    pub cluster: String,
    /// How the certificate is verified (for the report line).
    pub tls: String,
    pub endpoints: Vec<super::client::EndpointProbe>,
    /// `None` when no endpoint answered, so nothing could be checked.
    pub checks: Option<Result<Vec<PrivilegeCheck>, super::error::ProxmoxError>>,
}

impl AuthReport {
    /// True when every endpoint answered and every privilege is held.
    pub fn passed(&self) -> bool {
        self.endpoints.iter().all(|e| e.result.is_ok())
            && matches!(&self.checks, Some(Ok(checks)) if checks.iter().all(|c| c.passed))
    }

    /// One line per check, for printing.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for probe in &self.endpoints {
            let host = probe.endpoint.origin().ascii_serialization();
            out.push(match &probe.result {
                Ok(v) => format!(
                    "ok   proxmox {}: {host}: TLS ({}) and token accepted, pve-manager {}",
                    self.cluster, self.tls, v.version
                ),
                Err(e) => format!("FAIL proxmox {}: {host}: {e}", self.cluster),
            });
        }
        match &self.checks {
            None => out.push(format!(
                "FAIL proxmox {}: privileges not checked: no endpoint answered",
                self.cluster
            )),
            Some(Err(e)) => out.push(format!(
                "FAIL proxmox {}: cannot read the token's permissions: {e}",
                self.cluster
            )),
            Some(Ok(checks)) => out.extend(
                checks
                    .iter()
                    .map(|c| format!("{c} [proxmox {}]", self.cluster)),
            ),
        }
        out
    }
}

/// The distinct ACL paths the features are checked on, in first-use order:
/// `test-auth` asks `/access/permissions?path=` once for each.
pub fn checked_paths(features: &[Feature], pve_major: u32) -> Vec<&'static str> {
    let mut paths: Vec<&'static str> = Vec::new();
    for f in features {
        let (path, _) = f.requirement(pve_major);
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    paths
}

/// True when some feature's privilege is missing on a path other than `/`,
/// so the whole tree is worth reading to find grants below that path.
pub fn needs_tree(held: &Permissions, features: &[Feature], pve_major: u32) -> bool {
    features.iter().any(|f| {
        let (path, alternatives) = f.requirement(pve_major);
        path != "/" && !alternatives.iter().any(|p| held.has(path, p))
    })
}

/// Evaluates the features against the caller's effective permissions:
/// `held` has the privileges on each checked path (from `path=` answers),
/// `tree` the whole-tree map when it was read. A `/vms` privilege granted
/// only on some guests (per-guest or pool ACLs) passes with a note: the
/// daemon then works on those guests only.
pub fn evaluate(
    held: &Permissions,
    tree: Option<&Permissions>,
    features: &[Feature],
    pve_major: u32,
) -> Vec<PrivilegeCheck> {
    features
        .iter()
        .map(|&feature| {
            let (path, alternatives) = feature.requirement(pve_major);
            let privilege = alternatives.join("|");
            let held_here = alternatives.iter().any(|p| held.has(path, p));
            let (passed, detail) = if held_here {
                (true, String::new())
            } else if path == "/" {
                (
                    false,
                    format!("missing; grant {privilege} on / to the token"),
                )
            } else {
                let mut partial: Vec<&str> = alternatives
                    .iter()
                    .flat_map(|p| tree.map(|t| t.below(path, p)).unwrap_or_default())
                    .collect();
                partial.sort_unstable();
                partial.dedup();
                if partial.is_empty() {
                    (
                        false,
                        format!("missing; grant {privilege} on {path} to the token"),
                    )
                } else {
                    (
                        true,
                        format!(
                            "granted only on {} path(s) below {path} (e.g. {})",
                            partial.len(),
                            partial[0]
                        ),
                    )
                }
            };
            PrivilegeCheck {
                feature,
                privilege,
                path: path.to_string(),
                passed,
                detail,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn perms(v: Value) -> Permissions {
        Permissions::from_value(&v).unwrap()
    }

    #[test]
    fn full_grant_on_pve9() {
        let p = perms(json!({
            "/": {"Sys.Audit": 1},
            "/vms": {"VM.Audit":1,"VM.Config.Options":1,"VM.PowerMgmt":1,"VM.GuestAgent.Audit":1}
        }));
        let checks = evaluate(&p, Some(&p), &Feature::ALL, 9);
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
        let agent = checks
            .iter()
            .find(|c| c.feature == Feature::GuestAgent)
            .unwrap();
        assert_eq!(
            agent.privilege,
            "VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted"
        );
    }

    #[test]
    fn pve8_needs_vm_monitor() {
        let p = perms(json!({"/vms": {"VM.Audit":1,"VM.GuestAgent.Audit":1}}));
        let checks = evaluate(&p, Some(&p), &[Feature::GuestAgent], 8);
        assert!(!checks[0].passed);
        assert_eq!(checks[0].privilege, "VM.Monitor");
        assert_eq!(
            checks[0].to_string(),
            "FAIL VM.Monitor on /vms (needed for address discovery via the guest agent): missing; grant VM.Monitor on /vms to the token"
        );
    }

    #[test]
    fn missing_note_write_back_is_named() {
        // PVEVMUser on PVE 9: no VM.Config.Options.
        let p = perms(json!({"/vms": {"VM.Audit":1,"VM.PowerMgmt":1,"VM.GuestAgent.Audit":1}}));
        let checks = evaluate(&p, Some(&p), &Feature::ALL, 9);
        let failed: Vec<_> = checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.privilege.as_str())
            .collect();
        assert_eq!(failed, ["VM.Config.Options", "Sys.Audit"]);
    }

    #[test]
    fn both_answer_shapes_give_the_privileges_of_the_asked_path() {
        let asked = perms(json!({"/vms": {"VM.Audit": 1}}));
        let tree = perms(json!({"/": {"Sys.Audit": 1}, "/vms": {"VM.Audit": 0}}));
        for p in [&asked, &tree] {
            assert_eq!(p.on("/vms").keys().collect::<Vec<_>>(), ["VM.Audit"]);
        }
        assert!(perms(json!({"/vms": {}})).on("/vms").is_empty());
        assert!(asked.on("/").is_empty());
    }

    #[test]
    fn paths_are_asked_once_and_the_tree_only_when_needed() {
        assert_eq!(checked_paths(&Feature::ALL, 9), ["/vms", "/"]);
        let held = perms(json!({"/vms": {"VM.Audit": 1}, "/": {}}));
        assert!(!needs_tree(
            &held,
            &[Feature::Inventory, Feature::ClusterStatus],
            9
        ));
        assert!(needs_tree(&held, &[Feature::PowerUp], 9));
        // Without the tree a missing /vms privilege fails plainly.
        let c = &evaluate(&held, None, &[Feature::PowerUp], 9)[0];
        assert!(!c.passed);
        assert_eq!(c.detail, "missing; grant VM.PowerMgmt on /vms to the token");
    }

    #[test]
    fn per_guest_grant_passes_with_note() {
        let p = perms(json!({"/vms/100": {"VM.Audit":1}, "/vms/101": {"VM.Audit":1}}));
        let c = &evaluate(&p, Some(&p), &[Feature::Inventory], 9)[0];
        assert!(c.passed);
        assert!(c.detail.contains("2 path(s)"), "{}", c.detail);
    }
}
