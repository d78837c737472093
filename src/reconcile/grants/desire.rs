//! Who should have READ on each desired connection: the configuration's
//! access rules (by where the guest is) and the `access` key of the block
//! that made the connection, honoured only for the names
//! `access.notes_may_grant` lists. Pure.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{GrantSource, Grantee};
use crate::config::{AccessSettings, GuestFacts};
use crate::notes::{self, AccessGrant, Key};
use crate::reconcile::desire::{ClusterObservation, ConfigObservation, GuestObservation};
use crate::reconcile::model::{Desired, GuestKey, Identity, Problem};

/// The grants the sources ask for, per desired connection.
#[derive(Debug, Clone, Default)]
pub struct GrantWish {
    pub connections: BTreeMap<Identity, BTreeMap<Grantee, Vec<GrantSource>>>,
    /// Names a block's `access` may not grant (warnings, never granted).
    pub refused: Vec<Problem>,
}

impl GrantWish {
    /// Every grantee some source names.
    pub fn grantees(&self) -> BTreeSet<Grantee> {
        self.connections
            .values()
            .flat_map(|g| g.keys().cloned())
            .collect()
    }
}

pub fn desire_grants(
    observed: &[ClusterObservation],
    want: &Desired,
    access: &AccessSettings,
) -> GrantWish {
    let mut wish = GrantWish::default();
    let mut by_guest: BTreeMap<&GuestKey, Vec<&Identity>> = BTreeMap::new();
    for identity in want.connections.keys() {
        by_guest.entry(&identity.guest).or_default().push(identity);
    }
    for guest in observed.iter().flat_map(|c| &c.guests) {
        let Some(identities) = by_guest.get(&guest.key) else {
            continue;
        };
        for rule_grant in rule_grants(guest, access) {
            for identity in identities {
                add(
                    &mut wish,
                    identity,
                    rule_grant.0.clone(),
                    rule_grant.1.clone(),
                );
            }
        }
        notes_grants(guest, identities, access, &mut wish);
    }
    wish
}

fn add(wish: &mut GrantWish, identity: &Identity, grantee: Grantee, source: GrantSource) {
    let sources = wish
        .connections
        .entry(identity.clone())
        .or_default()
        .entry(grantee)
        .or_default();
    if !sources.contains(&source) {
        sources.push(source);
    }
}

fn rule_grants(guest: &GuestObservation, access: &AccessSettings) -> Vec<(Grantee, GrantSource)> {
    let facts = GuestFacts {
        vmid: guest.key.vmid,
        node: &guest.node,
        pool: guest.pool.as_deref(),
        tags: &guest.tags,
    };
    let mut out = Vec::new();
    for rule in access
        .rules
        .iter()
        .filter(|r| r.matches(&guest.key.cluster, &facts))
    {
        let source = GrantSource::Rule {
            number: rule.number,
            description: rule.describe(),
        };
        let users = rule.users.iter().cloned().map(Grantee::User);
        let groups = rule.groups.iter().cloned().map(Grantee::Group);
        out.extend(users.chain(groups).map(|g| (g, source.clone())));
    }
    out
}

/// The `access` key of each valid credential block, for the connections
/// that block yields.
fn notes_grants(
    guest: &GuestObservation,
    identities: &[&Identity],
    access: &AccessSettings,
    wish: &mut GrantWish,
) {
    let ConfigObservation::Read(facts) = &guest.config else {
        return;
    };
    let text = facts.notes.expose();
    // Most notes grant nothing: skip the second parse for them.
    if !text.to_ascii_lowercase().contains("access") {
        return;
    }
    let parsed = notes::parse(text);
    for block in parsed.blocks.iter().filter(|b| b.is_valid()) {
        let Some(cred) = block.credential() else {
            continue;
        };
        if cred.access.is_empty() {
            continue;
        }
        let line = block
            .pairs
            .iter()
            .find(|p| Key::lookup(&p.key) == Some(Key::Access))
            .map_or(block.line, |p| p.line);
        let source = GrantSource::Notes {
            block: block.ordinal,
            line,
        };
        let mine: Vec<&Identity> = block
            .identities
            .iter()
            .filter_map(|id| {
                identities.iter().copied().find(|i| {
                    i.user == id.user
                        && i.protocol == id.protocol.as_str()
                        && i.ordinal == id.ordinal
                })
            })
            .collect();
        if mine.is_empty() {
            continue;
        }
        for grant in &cred.access {
            let (grantee, allowed) = match grant {
                AccessGrant::User(n) => (Grantee::User(n.clone()), access.notes_users.contains(n)),
                AccessGrant::Group(n) => {
                    (Grantee::Group(n.clone()), access.notes_groups.contains(n))
                }
            };
            if !allowed {
                wish.refused
                    .push(refused(guest, block.ordinal, line, &grantee));
                continue;
            }
            for identity in &mine {
                add(wish, identity, grantee.clone(), source.clone());
            }
        }
    }
}

fn refused(guest: &GuestObservation, block: usize, line: usize, grantee: &Grantee) -> Problem {
    let name: String = grantee
        .name()
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    let what = match grantee {
        Grantee::User(_) => format!("user {name:?}"),
        Grantee::Group(_) => format!("user group {name:?}"),
    };
    Problem {
        guest: Some(guest.key.clone()),
        message: format!(
            "{} node {} vmid {} ({}): warning: block {block} (line {line}), key access: \
             {what} is not listed in access.notes_may_grant; not granted",
            guest.key.cluster, guest.node, guest.key.vmid, guest.name
        ),
    }
}
