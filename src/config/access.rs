//! The `access:` section: who may use the synced connections. Raw structs
//! (as written), the validated [`AccessSettings`], and its validation.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::raw::{At, Text};
use super::selector::{Filter, GuestFacts, VmidRange};
use super::validate::Validator;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccess {
    pub rules: Option<At<Vec<At<RawRule>>>>,
    pub notes_may_grant: Option<At<RawNames>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    #[serde(rename = "match")]
    pub selector: Option<At<RawMatch>>,
    pub users: Option<At<Vec<At<Text>>>>,
    pub groups: Option<At<Vec<At<Text>>>>,
}

/// The selector keys of `sync.include`, plus `clusters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatch {
    pub tags: Option<At<Vec<At<Text>>>>,
    pub vmids: Option<At<Vec<At<Text>>>>,
    pub nodes: Option<At<Vec<At<Text>>>>,
    pub pools: Option<At<Vec<At<Text>>>>,
    pub clusters: Option<At<Vec<At<Text>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNames {
    pub users: Option<At<Vec<At<Text>>>>,
    pub groups: Option<At<Vec<At<Text>>>>,
}

/// Grants of READ on managed connections (and the groups above them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessSettings {
    pub rules: Vec<AccessRule>,
    /// Guacamole users a block's `access:` key may name (none by default).
    pub notes_users: BTreeSet<String>,
    /// Guacamole user groups a block's `access:` key may name.
    pub notes_groups: BTreeSet<String>,
}

impl AccessSettings {
    /// Whether anything can be granted at all; when not, the daemon makes no
    /// permission requests (except to revoke what it granted earlier).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.notes_users.is_empty() && self.notes_groups.is_empty()
    }
}

/// `access.rules[n]`: guests it matches → users and user groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessRule {
    /// 1-based position in `access.rules`, for reasons and messages.
    pub number: usize,
    /// Line of the rule in the configuration file.
    pub line: u64,
    /// Every non-empty list must match (lists ANDed, entries ORed), as in
    /// `sync.include`; an empty match selects every synced guest.
    pub filter: Filter,
    pub clusters: Vec<String>,
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

impl AccessRule {
    pub fn matches(&self, cluster: &str, guest: &GuestFacts<'_>) -> bool {
        (self.clusters.is_empty() || self.clusters.iter().any(|c| c == cluster))
            && (self.filter.is_empty()
                || crate::config::Selector {
                    include: self.filter.clone(),
                    exclude: Filter::default(),
                }
                .matches(guest))
    }

    /// `rule 1 (tags: lab)`, for plan reasons and problems.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let mut list = |name: &str, items: Vec<String>| {
            if !items.is_empty() {
                parts.push(format!("{name}: {}", items.join(",")));
            }
        };
        list("clusters", self.clusters.clone());
        list("tags", self.filter.tags.clone());
        list(
            "vmids",
            self.filter
                .vmids
                .iter()
                .map(|r| {
                    if r.first == r.last {
                        r.first.to_string()
                    } else {
                        format!("{}-{}", r.first, r.last)
                    }
                })
                .collect(),
        );
        list("nodes", self.filter.nodes.clone());
        list("pools", self.filter.pools.clone());
        if parts.is_empty() {
            format!("access rule {} (every guest)", self.number)
        } else {
            format!("access rule {} ({})", self.number, parts.join("; "))
        }
    }
}

impl Validator<'_> {
    pub(crate) fn access(
        &mut self,
        raw: Option<&At<RawAccess>>,
        clusters: &[String],
    ) -> AccessSettings {
        let Some(at) = raw else {
            return AccessSettings::default();
        };
        let mut out = AccessSettings::default();
        if let Some(rules) = &at.value.rules {
            for (i, rule) in rules.value.iter().enumerate() {
                let key = format!("access.rules[{i}]");
                out.rules
                    .push(self.access_rule(rule, i + 1, &key, clusters));
            }
        }
        if let Some(names) = &at.value.notes_may_grant {
            let n = &names.value;
            out.notes_users = self
                .grantee_names(n.users.as_ref(), "access.notes_may_grant.users")
                .into_iter()
                .collect();
            out.notes_groups = self
                .grantee_names(n.groups.as_ref(), "access.notes_may_grant.groups")
                .into_iter()
                .collect();
        }
        out
    }

    fn access_rule(
        &mut self,
        rule: &At<RawRule>,
        number: usize,
        key: &str,
        clusters: &[String],
    ) -> AccessRule {
        let r = &rule.value;
        let mut out = AccessRule {
            number,
            line: rule.referenced.line(),
            users: self.grantee_names(r.users.as_ref(), &format!("{key}.users")),
            groups: self.grantee_names(r.groups.as_ref(), &format!("{key}.groups")),
            ..AccessRule::default()
        };
        if out.users.is_empty() && out.groups.is_empty() {
            self.error(
                rule,
                key,
                "a rule needs at least one name under users or groups",
            );
        }
        let Some(m) = &r.selector else {
            return out;
        };
        let m = &m.value;
        let mkey = format!("{key}.match");
        out.filter.tags = self
            .selector_names(m.tags.as_ref(), &format!("{mkey}.tags"))
            .into_iter()
            .map(|t| t.to_lowercase())
            .collect();
        out.filter.nodes = self.selector_names(m.nodes.as_ref(), &format!("{mkey}.nodes"));
        out.filter.pools = self.selector_names(m.pools.as_ref(), &format!("{mkey}.pools"));
        if let Some(list) = &m.vmids {
            for (i, item) in list.value.iter().enumerate() {
                match VmidRange::parse(&item.value.0) {
                    Ok(r) => out.filter.vmids.push(r),
                    Err(e) => self.error(item, &format!("{mkey}.vmids[{i}]"), e.to_string()),
                }
            }
        }
        if let Some(list) = &m.clusters {
            for (i, item) in list.value.iter().enumerate() {
                let name = item.value.0.trim();
                if clusters.iter().any(|c| c == name) {
                    out.clusters.push(name.to_owned());
                } else {
                    self.error(
                        item,
                        &format!("{mkey}.clusters[{i}]"),
                        format!(
                            "no cluster named {name:?} under proxmox.clusters (known: {})",
                            clusters.join(", ")
                        ),
                    );
                }
            }
        }
        out
    }

    fn selector_names(&mut self, list: Option<&At<Vec<At<Text>>>>, key: &str) -> Vec<String> {
        let Some(list) = list else { return Vec::new() };
        let mut out = Vec::new();
        for (i, item) in list.value.iter().enumerate() {
            let name = item.value.0.trim();
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == ',') {
                self.error(
                    item,
                    &format!("{key}[{i}]"),
                    "expected a name (no spaces or commas)",
                );
            } else {
                out.push(name.to_owned());
            }
        }
        out
    }

    /// Guacamole user or group names: taken verbatim (Guacamole compares
    /// them exactly), but never blank and never with a `/` (they go into
    /// request paths).
    fn grantee_names(&mut self, list: Option<&At<Vec<At<Text>>>>, key: &str) -> Vec<String> {
        let Some(list) = list else { return Vec::new() };
        let mut out: Vec<String> = Vec::new();
        for (i, item) in list.value.iter().enumerate() {
            let name = item.value.0.trim();
            if name.is_empty() || name.contains(['/', ',']) || name.chars().any(char::is_control) {
                self.error(
                    item,
                    &format!("{key}[{i}]"),
                    "expected a Guacamole user or group name (not blank; no '/', ',' or control characters)",
                );
            } else if !out.iter().any(|n| n == name) {
                out.push(name.to_owned());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{ProcessEnvironment, Settings};

    const BASE: &str = "proxmox:\n  clusters:\n    - name: lab\n      endpoints: [\"https://127.0.0.1:8006\"]\n      token_id: \"a@pve!t\"\n      token_secret: x\nguacamole:\n  url: \"https://127.0.0.1:8443\"\n  username: u\n  password: p\n";

    fn load(access: &str) -> Result<Settings, crate::config::ConfigError> {
        let text = format!("{BASE}{access}");
        Settings::from_yaml(&text, Path::new("/etc/x.yaml"), None, &ProcessEnvironment)
    }

    #[test]
    fn rules_and_notes_names_are_read() {
        let s = load(
            "access:\n  rules:\n    - match: {tags: [Lab], clusters: [lab], vmids: [\"100-199\"]}\n      groups: [students]\n    - users: [alice]\n  notes_may_grant:\n    users: [alice]\n    groups: [ops, students]\n",
        )
        .unwrap();
        let a = &s.access;
        assert_eq!(a.rules.len(), 2);
        assert_eq!(a.rules[0].filter.tags, ["lab"]);
        assert_eq!(a.rules[0].clusters, ["lab"]);
        assert_eq!(a.rules[0].groups, ["students"]);
        assert_eq!(
            a.rules[0].describe(),
            "access rule 1 (clusters: lab; tags: lab; vmids: 100-199)"
        );
        assert_eq!(a.rules[1].describe(), "access rule 2 (every guest)");
        assert!(a.notes_users.contains("alice"));
        assert_eq!(a.notes_groups.len(), 2);
    }

    #[test]
    fn mistakes_are_named_with_line_and_key() {
        let err = load(
            "access:\n  rules:\n    - match: {clusters: [nope], colour: [x]}\n      users: []\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("colour"), "{err}");
        let err = load("access:\n  rules:\n    - match: {clusters: [nope]}\n      users: []\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":13: access.rules[0]: a rule needs at least one name"),
            "{err}"
        );
        assert!(
            err.contains("access.rules[0].match.clusters[0]: no cluster named \"nope\""),
            "{err}"
        );
        let err = load("access:\n  notes_may_grant: {users: [\"a/b\"]}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("access.notes_may_grant.users[0]"), "{err}");
    }

    #[test]
    fn no_section_grants_nothing() {
        assert!(load("").unwrap().access.is_empty());
    }
}
