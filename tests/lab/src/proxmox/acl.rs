//! Users, tokens, roles and ACLs (§3): who may do what on which path.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::privs::{PrivCatalog, PrivSet};
use super::seed::{ClusterSeed, TokenSeed, UserSeed};

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    User(String),
    Token {
        user: String,
        name: String,
        privsep: bool,
    },
}

impl Identity {
    /// `user@realm` or `user@realm!name`.
    pub fn authid(&self) -> String {
        match self {
            Identity::User(u) => u.clone(),
            Identity::Token { user, name, .. } => format!("{user}!{name}"),
        }
    }

    pub fn owner(&self) -> &str {
        match self {
            Identity::User(u) => u,
            Identity::Token { user, .. } => user,
        }
    }

    pub fn token_name(&self) -> Option<&str> {
        match self {
            Identity::User(_) => None,
            Identity::Token { name, .. } => Some(name),
        }
    }
}

#[derive(Debug, Clone)]
enum Subject {
    User(String),
    Group(String),
    Token(String),
}

#[derive(Debug, Clone)]
struct AclEntry {
    subject: Subject,
    role: String,
    propagate: bool,
}

/// Roles set for a subject on a path: role name → propagate flag
/// (pve-access-control `AccessControl::roles`).
type RoleFlags = BTreeMap<String, bool>;

const NO_ACCESS: &str = "NoAccess";

/// Privileges on one path, with the propagate flag of the granting entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grant {
    pub privs: PrivSet,
    pub propagating: PrivSet,
}

impl Grant {
    fn intersect(self, o: Grant) -> Grant {
        Grant {
            privs: self.privs.intersect(o.privs),
            propagating: self.propagating.intersect(o.propagating),
        }
    }
}

/// The access-control configuration of the cluster (`user.cfg`).
#[derive(Debug, Clone)]
pub struct Access {
    pub catalog: PrivCatalog,
    pub users: HashMap<String, UserSeed>,
    /// By full token id.
    pub tokens: HashMap<String, TokenSeed>,
    roles: HashMap<String, PrivSet>,
    acls: HashMap<String, Vec<AclEntry>>,
    pub pools: Vec<String>,
}

impl Access {
    pub fn from_seed(seed: &ClusterSeed, catalog: PrivCatalog) -> Access {
        let mut users: HashMap<String, UserSeed> = seed
            .users
            .iter()
            .map(|u| (u.userid.clone(), u.clone()))
            .collect();
        users.entry("root@pam".into()).or_default();
        let tokens = seed
            .tokens
            .iter()
            .map(|t| (t.full_id(), t.clone()))
            .collect();
        let roles: HashMap<String, PrivSet> = seed
            .roles
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    catalog.set_of(r.privs.iter().map(String::as_str)),
                )
            })
            .collect();
        let mut access = Access {
            catalog,
            users,
            tokens,
            roles,
            acls: HashMap::new(),
            pools: seed.pools.iter().map(|p| p.name.clone()).collect(),
        };
        for a in &seed.acls {
            let subject = if let Some(t) = &a.token {
                Subject::Token(t.clone())
            } else if let Some(g) = &a.group {
                Subject::Group(g.clone())
            } else {
                Subject::User(a.user.clone().unwrap_or_default())
            };
            access.add_acl(&a.path, subject, &a.role, a.propagate);
        }
        access
    }

    fn add_acl(&mut self, path: &str, subject: Subject, role: &str, propagate: bool) {
        self.acls
            .entry(normalise_path(path))
            .or_default()
            .push(AclEntry {
                subject,
                role: role.to_string(),
                propagate,
            });
    }

    fn role_privs(&self, role: &str) -> PrivSet {
        self.catalog
            .builtin_role(role)
            .or_else(|| self.roles.get(role).copied())
            .unwrap_or_default()
    }

    /// Grant an ACL at run time (test API): `subject` is `user@realm`,
    /// `user@realm!token` or `@group`.
    pub fn grant(&mut self, path: &str, subject: &str, role: &str) {
        let s = if let Some(g) = subject.strip_prefix('@') {
            Subject::Group(g.into())
        } else if subject.contains('!') {
            Subject::Token(subject.into())
        } else {
            Subject::User(subject.into())
        };
        self.add_acl(path, s, role, true);
    }

    /// Every node of the ACL tree: each ACL path and every path above it
    /// (pve-access-control `iterate_acl_tree` walks intermediate nodes too).
    pub fn acl_paths(&self) -> BTreeSet<String> {
        self.acls.keys().flat_map(|p| path_prefixes(p)).collect()
    }

    /// Effective privileges of `who` on `path`. `pool` is the pool of the
    /// guest when `path` is `/vms/<V>` (pool ACLs apply to members).
    ///
    /// As `RPCEnvironment::permissions` + `$compile_acl_path`: a privsep
    /// token gets (its path roles ∪ its pool roles) ∩ (the owner's privileges
    /// on the path, the owner's pool roles included); the propagate flag of a
    /// privilege held by both is the AND of the two.
    pub fn grant_on(&self, who: &Identity, path: &str, pool: Option<&str>) -> Grant {
        let path = normalise_path(path);
        match who {
            Identity::User(u) => self.user_grant(u, &path, pool),
            Identity::Token {
                user,
                name,
                privsep,
            } => {
                if !privsep {
                    return self.user_grant(user, &path, pool);
                }
                let token = self.compile(&format!("{user}!{name}"), true, &[], &path, pool);
                if user == "root@pam" {
                    token
                } else {
                    token.intersect(self.user_grant(user, &path, pool))
                }
            }
        }
    }

    pub fn privs_on(&self, who: &Identity, path: &str, pool: Option<&str>) -> PrivSet {
        self.grant_on(who, path, pool).privs
    }

    fn user_grant(&self, user: &str, path: &str, pool: Option<&str>) -> Grant {
        if user == "root@pam" {
            let all = self.catalog.all();
            return Grant {
                privs: all,
                propagating: all,
            };
        }
        let groups = self
            .users
            .get(user)
            .map(|u| u.groups.clone())
            .unwrap_or_default();
        self.compile(user, false, &groups, path, pool)
    }

    /// One subject's privileges on `path`: its roles there, plus the roles
    /// it holds on the guest's pool, turned into privileges.
    fn compile(
        &self,
        id: &str,
        is_token: bool,
        groups: &[String],
        path: &str,
        pool: Option<&str>,
    ) -> Grant {
        let mut roles = self.roles(id, is_token, groups, path);
        if let Some(pool) = pool {
            let pool_roles = self.roles(id, is_token, groups, &format!("/pool/{pool}"));
            add_pool_roles(&mut roles, &pool_roles);
        }
        let mut grant = Grant::default();
        for (role, propagate) in &roles {
            let privs = self.role_privs(role);
            grant.privs = grant.privs.union(privs);
            if *propagate {
                grant.propagating = grant.propagating.union(privs);
            }
        }
        grant
    }

    /// Walk from `/` down to `path`; the deepest level with entries for the
    /// subject replaces what was found above (token entries, else user
    /// entries, else group entries of that level); entries above `path` count
    /// only when propagating. A `NoAccess` in the result replaces every other
    /// role (`AccessControl::roles`).
    fn roles(&self, id: &str, is_token: bool, groups: &[String], path: &str) -> RoleFlags {
        let mut result = RoleFlags::new();
        for prefix in path_prefixes(path) {
            let Some(entries) = self.acls.get(&prefix) else {
                continue;
            };
            let exact = prefix == path;
            let applicable: Vec<&AclEntry> =
                entries.iter().filter(|e| exact || e.propagate).collect();
            let of = |keep: &dyn Fn(&Subject) -> bool| -> Option<RoleFlags> {
                let set: RoleFlags = applicable
                    .iter()
                    .filter(|e| keep(&e.subject))
                    .map(|e| (e.role.clone(), e.propagate))
                    .collect();
                (!set.is_empty()).then_some(set)
            };
            let level = if is_token {
                of(&|s| matches!(s, Subject::Token(t) if t == id))
            } else {
                of(&|s| matches!(s, Subject::User(u) if u == id))
                    .or_else(|| of(&|s| matches!(s, Subject::Group(g) if groups.contains(g))))
            };
            if let Some(level) = level {
                result = level;
            }
        }
        match result.get(NO_ACCESS) {
            Some(&flag) => RoleFlags::from([(NO_ACCESS.to_string(), flag)]),
            None => result,
        }
    }

    /// Privilege map of `/access/permissions` for one path.
    pub fn permission_map(
        &self,
        who: &Identity,
        path: &str,
        pool: Option<&str>,
    ) -> BTreeMap<String, u8> {
        let g = self.grant_on(who, path, pool);
        g.privs
            .names()
            .into_iter()
            .map(|n| {
                let p = PrivSet::bit(n).is_some_and(|b| g.propagating.contains(b));
                (n.to_string(), u8::from(p))
            })
            .collect()
    }
}

/// Pool roles join the path's roles with propagate flag 0 and never replace
/// a role the path already set; a `NoAccess` on the path is kept, a `NoAccess`
/// among the pool roles replaces everything (`$compile_acl_path`).
fn add_pool_roles(roles: &mut RoleFlags, pool_roles: &RoleFlags) {
    if pool_roles.is_empty() || roles.contains_key(NO_ACCESS) {
        return;
    }
    if pool_roles.contains_key(NO_ACCESS) {
        *roles = RoleFlags::from([(NO_ACCESS.to_string(), false)]);
        return;
    }
    for role in pool_roles.keys() {
        roles.entry(role.clone()).or_insert(false);
    }
}

/// `/`, `/vms`, `/vms/100` for `/vms/100`.
fn path_prefixes(path: &str) -> Vec<String> {
    let mut out = vec!["/".to_string()];
    let mut cur = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        cur.push('/');
        cur.push_str(part);
        out.push(cur.clone());
    }
    out
}

fn normalise_path(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(seed: ClusterSeed) -> Access {
        Access::from_seed(&seed, PrivCatalog { major: 9 })
    }

    #[test]
    fn privsep_intersects_and_specific_path_wins() {
        let seed = ClusterSeed::new("t")
            .user("svc@pve")
            .token(TokenSeed::new("svc@pve", "d", "x"))
            .acl("/", "svc@pve", "PVEVMAdmin")
            .acl("/vms", "svc@pve!d", "PVEVMUser")
            .acl("/vms/101", "svc@pve!d", "NoAccess");
        let a = access(seed);
        let tok = Identity::Token {
            user: "svc@pve".into(),
            name: "d".into(),
            privsep: true,
        };
        let p = a.privs_on(&tok, "/vms/100", None);
        assert!(p.has("VM.Audit") && p.has("VM.PowerMgmt"));
        assert!(!p.has("VM.Config.Options"));
        assert!(a.privs_on(&tok, "/vms/101", None).is_empty());
        let nosep = Identity::Token {
            user: "svc@pve".into(),
            name: "d".into(),
            privsep: false,
        };
        assert!(
            a.privs_on(&nosep, "/vms/101", None)
                .has("VM.Config.Options")
        );
    }
}
