//! desired vs. actual → an ordered list of actions, each with its reason.
//! Pure: the same inputs always give the same plan, which is what `plan`
//! prints, what the audit log records and what the property tests check.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use super::model::{
    Desired, DesiredConnection, GroupPath, GuestKey, Identity, ManagedTree, NotesRewrite,
    display_path,
};
use crate::state::{GuacamoleBinding, State};

/// The knobs of planning that come from the configuration.
#[derive(Debug, Clone)]
pub struct PlanSettings {
    /// Delete connections of vanished guests and unattributed objects.
    pub prune: bool,
    /// How long a guest must be absent from complete observations first.
    pub prune_grace: Duration,
    /// How often every owned connection's parameters are read back in full.
    pub verify_interval: Duration,
    /// Delete managed groups left empty. Only safe when the account sees
    /// everything (Guacamole administrator): a group delete is recursive,
    /// and an account without READ on an object inside does not see it.
    pub prune_groups: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    CreateGroup {
        path: GroupPath,
    },
    Create {
        identity: Identity,
        connection: DesiredConnection,
    },
    Update {
        identity: Identity,
        id: String,
        connection: DesiredConnection,
        changes: Vec<Change>,
        /// The connection's current attributes, sent back as they are (a
        /// Guacamole update replaces everything).
        #[serde(skip)]
        attributes: BTreeMap<String, Option<String>>,
        /// The managed group it leaves, when this update moves it: that
        /// group may only be deleted once the move is done.
        #[serde(skip)]
        from_group: Option<GroupPath>,
    },
    RewriteNotes {
        rewrite: NotesRewrite,
    },
    Delete {
        identity: Option<Identity>,
        id: String,
        name: String,
        group: GroupPath,
    },
    DeleteGroup {
        id: String,
        path: GroupPath,
    },
    /// Grant or revoke READ for a user or user group (see `grants`).
    Grant(super::grants::GrantChange),
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::CreateGroup { .. } => "create_group",
            Action::Create { .. } => "create",
            Action::Update { .. } => "update",
            Action::RewriteNotes { .. } => "rewrite_notes",
            Action::Delete { .. } => "delete",
            Action::DeleteGroup { .. } => "delete_group",
            Action::Grant(change) => change.kind(),
        }
    }

    /// One line for humans: what and where, never a secret.
    pub fn describe(&self) -> String {
        match self {
            Action::CreateGroup { path } => format!("create group {}", display_path(path)),
            Action::Create {
                identity,
                connection,
            } => format!(
                "create {} \"{}\" in {}",
                identity,
                connection.name,
                display_path(&connection.group)
            ),
            Action::Update {
                identity,
                id,
                changes,
                ..
            } => {
                let what: Vec<String> = changes.iter().map(Change::describe).collect();
                format!("update {identity} (id {id}): {}", what.join(", "))
            }
            Action::RewriteNotes { rewrite } => format!(
                "encrypt {} plaintext password(s) in the notes of {}",
                rewrite.migrated_blocks, rewrite.guest
            ),
            Action::Delete {
                identity,
                id,
                name,
                group,
            } => match identity {
                Some(i) => format!("delete {i} \"{name}\" (id {id}) in {}", display_path(group)),
                None => format!("delete \"{name}\" (id {id}) in {}", display_path(group)),
            },
            Action::DeleteGroup { id, path } => {
                format!("delete empty group {} (id {id})", display_path(path))
            }
            Action::Grant(change) => change.describe(),
        }
    }

    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Action::Create { identity, .. } | Action::Update { identity, .. } => Some(identity),
            Action::Delete { identity, .. } => identity.as_ref(),
            Action::Grant(change) => change.identity(),
            _ => None,
        }
    }

    /// The guest the action is for (none for group actions and for
    /// unattributed objects).
    pub fn guest(&self) -> Option<&GuestKey> {
        match self {
            Action::RewriteNotes { rewrite } => Some(&rewrite.guest),
            other => other.identity().map(|i| &i.guest),
        }
    }

    /// The managed group it creates, deletes, writes into or deletes from.
    pub fn group(&self) -> Option<&GroupPath> {
        match self {
            Action::CreateGroup { path } | Action::DeleteGroup { path, .. } => Some(path),
            Action::Create { connection, .. } | Action::Update { connection, .. } => {
                Some(&connection.group)
            }
            Action::Delete { group, .. } => Some(group),
            Action::RewriteNotes { .. } => None,
            Action::Grant(change) => change.group(),
        }
    }

    /// The Guacamole identifier of the object it changes, when it exists
    /// already (a create learns its identifier only when applied).
    pub fn guacamole_id(&self) -> Option<&str> {
        match self {
            Action::Update { id, .. }
            | Action::Delete { id, .. }
            | Action::DeleteGroup { id, .. } => Some(id),
            Action::Grant(change) => change.target.id(),
            _ => None,
        }
    }

    /// The connection name it creates, updates to, or deletes.
    pub fn connection_name(&self) -> Option<&str> {
        match self {
            Action::Create { connection, .. } | Action::Update { connection, .. } => {
                Some(&connection.name)
            }
            Action::Delete { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// One difference that makes an update, named without values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Name {
        from: String,
        to: String,
    },
    Group {
        from: String,
        to: String,
    },
    Protocol {
        from: String,
        to: String,
    },
    Parameters {
        names: Vec<String>,
    },
    /// The daemon's record of what it wrote differs from the wish and the
    /// parameters were not read back this cycle.
    ParametersChanged,
}

impl Change {
    pub fn describe(&self) -> String {
        match self {
            Change::Name { from, to } => format!("name \"{from}\" → \"{to}\""),
            Change::Group { from, to } => format!("group {from} → {to}"),
            Change::Protocol { from, to } => format!("protocol {from} → {to}"),
            Change::Parameters { names } => format!("parameters {}", names.join(" ")),
            Change::ParametersChanged => "parameters".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedAction {
    #[serde(flatten)]
    pub action: Action,
    pub reason: String,
}

/// A connection the plan leaves alone although it is not (fully) desired.
#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub id: String,
    pub identity: Option<Identity>,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub actions: Vec<PlannedAction>,
    pub kept: Vec<Kept>,
    /// Desired connections already in the right shape.
    pub unchanged: Vec<(Identity, String)>,
    /// Ownership learnt this cycle: identity → existing connection id.
    pub adopted: Vec<(Identity, String)>,
    /// Identities whose parameters were compared in full this cycle.
    pub verified: Vec<Identity>,
    /// Guests newly seen absent (timer start) and guests whose timer resets.
    #[serde(skip)]
    pub absence: AbsenceUpdate,
    /// Records of grants to drop without a request (see `grants`).
    #[serde(skip)]
    pub forget_grants: Vec<super::grants::Forget>,
}

#[derive(Debug, Clone, Default)]
pub struct AbsenceUpdate {
    pub start: BTreeMap<GuestKey, u64>,
    pub clear: BTreeSet<GuestKey>,
    pub orphan_start: BTreeMap<String, u64>,
    pub orphan_clear: BTreeSet<String>,
}

/// Which identities own which existing connections: from the state file,
/// else (state lost, or a connection made by an earlier run) by finding a
/// connection with the desired name in the desired group.
#[derive(Debug, Default)]
pub struct Claims {
    pub owned: BTreeMap<Identity, String>,
    pub adopted: Vec<(Identity, String)>,
    /// Connection ids claimed by identities from the state file that are no
    /// longer desired.
    pub stale: BTreeMap<String, Identity>,
}

/// Ties the ownership records to the Guacamole observed now. Records made
/// for another one (another server or data source, a rebuilt or restored
/// database, a re-created root group) are dropped: their ids may name
/// someone else's objects. Connections in the managed group are then
/// adopted again where they match. Returns a message when records went.
pub fn check_binding(
    st: &mut State,
    api: &str,
    data_source: &str,
    have: &ManagedTree,
) -> Option<String> {
    let recorded = st.guacamole.as_ref()?;
    let same = recorded.api == api
        && recorded.data_source == data_source
        && have.root_id.as_deref() == Some(recorded.root_group_id.as_str());
    if same || st.connections.is_empty() {
        return None;
    }
    let message = format!(
        "the state file was written for another Guacamole (API {}, data source {}, managed group id {}; now API {api}, data source {data_source}, managed group id {}): {} ownership record(s) dropped, connections in the managed group are adopted again where they match",
        recorded.api,
        recorded.data_source,
        recorded.root_group_id,
        have.root_id.as_deref().unwrap_or("none"),
        st.connections.len()
    );
    st.connections.clear();
    st.orphan_since.clear();
    Some(message)
}

/// The binding to record once the managed root group exists.
pub fn binding(api: &str, data_source: &str, root_group_id: &str) -> GuacamoleBinding {
    GuacamoleBinding {
        api: api.to_owned(),
        data_source: data_source.to_owned(),
        root_group_id: root_group_id.to_owned(),
    }
}

/// Connections whose parameters [`claim`] needs: outside ones the state
/// says the daemon wrote (reclaimed only when they still carry exactly what
/// it wrote), and unowned ones sitting exactly where a create would go
/// (adopted when they match the wish). Both are rare; a steady cycle reads
/// none.
pub fn claim_reads(want: &Desired, have: &ManagedTree, st: &State) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let recorded: BTreeSet<&str> = st.connections.values().map(|o| o.id.as_str()).collect();
    for (key, owned) in &st.connections {
        if let (Some(identity), Some(c)) = (Identity::parse_key(key), have.outside.get(&owned.id))
            && c.name == owned.name
            && c.protocol == identity.protocol
        {
            ids.insert(owned.id.clone());
        }
    }
    let by_place = places(have);
    for (identity, conn) in &want.connections {
        let owned_live = st
            .connections
            .get(&identity.key())
            .is_some_and(|o| have.find(&o.id).is_some());
        if owned_live {
            continue;
        }
        if let Some(id) = by_place.get(&(&conn.group, conn.name.as_str(), conn.protocol.as_str()))
            && !recorded.contains(id)
        {
            ids.insert((*id).to_owned());
        }
    }
    ids
}

type Place<'a> = (&'a GroupPath, &'a str, &'a str);

/// Managed connections by (group, name, protocol).
fn places(have: &ManagedTree) -> BTreeMap<Place<'_>, &str> {
    have.connections
        .values()
        .map(|c| {
            (
                (&c.group, c.name.as_str(), c.protocol.as_str()),
                c.id.as_str(),
            )
        })
        .collect()
}

pub fn claim(want: &Desired, have: &ManagedTree, st: &State) -> Claims {
    let mut claims = Claims::default();
    let mut taken: BTreeSet<&str> = BTreeSet::new();
    for (key, owned) in &st.connections {
        let Some(identity) = Identity::parse_key(key) else {
            continue;
        };
        // Outside the managed group only a connection that still carries
        // exactly what the daemon wrote is reclaimed (its parameters read
        // and fingerprinted): a state file that outlived its Guacamole (ids
        // reused) must never take over someone's object.
        let found = match (have.connections.get(&owned.id), have.outside.get(&owned.id)) {
            (Some(_), _) => true,
            (None, Some(c)) => {
                c.name == owned.name
                    && c.protocol == identity.protocol
                    && c.params
                        .as_ref()
                        .is_some_and(|p| p.fingerprint(&st.fingerprint_key) == owned.fingerprint)
            }
            (None, None) => false,
        };
        if !found || !taken.insert(owned.id.as_str()) {
            continue;
        }
        if want.connections.contains_key(&identity) {
            claims.owned.insert(identity, owned.id.clone());
        } else if have.connections.contains_key(&owned.id) {
            claims.stale.insert(owned.id.clone(), identity);
        }
    }
    let by_place = places(have);
    // Adopting an unowned connection by its place is safe only when every
    // guest was judged: it might be a held guest's connection. One that
    // carries exactly what the daemon would write is this wish's either way.
    let may_adopt = want.held.is_empty() && want.complete_clusters == want.clusters;
    for (identity, conn) in &want.connections {
        if claims.owned.contains_key(identity) {
            continue;
        }
        let place = (&conn.group, conn.name.as_str(), conn.protocol.as_str());
        let Some(id) = by_place.get(&place).copied() else {
            continue;
        };
        let matches = have.connections[id]
            .params
            .as_ref()
            .is_some_and(|p| conn.params.differing_names(p).is_empty());
        // The same guest's connection under another identity (e.g. the
        // block's user changed, the name did not): take it over instead of
        // creating a twin and deleting the original.
        let same_guest = claims
            .stale
            .get(id)
            .is_some_and(|old| old.guest == identity.guest);
        if same_guest {
            claims.stale.remove(id);
        } else if !(may_adopt || matches) || !taken.insert(id) {
            continue;
        }
        claims.owned.insert(identity.clone(), id.to_owned());
        claims.adopted.push((identity.clone(), id.to_owned()));
    }
    claims
}

/// Ids whose parameters must be read before planning: adopted ones, those
/// whose last-written fingerprint differs from the wish, and those due for
/// periodic verification. For `plan`, dry-run and `explain`, which show
/// which parameters differ.
pub fn parameters_needed(
    want: &Desired,
    claims: &Claims,
    st: &State,
    now: u64,
    s: &PlanSettings,
) -> BTreeSet<String> {
    needed(want, claims, st, now, s, false)
}

/// Like [`parameters_needed`], for a cycle that writes: a connection the
/// state records as the daemon's whose wish changed since the daemon wrote
/// it (fingerprint differs, not due for verification) is updated without
/// reading it first — an update sends every parameter anyway, so the read
/// would only name them. Unless no recorded fingerprint matches at all:
/// then the fingerprint key itself may have changed (new encryption key or
/// Guacamole password, an old state file), and one read each, not one
/// write each, tells what really changed.
pub fn parameters_needed_to_apply(
    want: &Desired,
    claims: &Claims,
    st: &State,
    now: u64,
    s: &PlanSettings,
) -> BTreeSet<String> {
    needed(want, claims, st, now, s, true)
}

fn needed(
    want: &Desired,
    claims: &Claims,
    st: &State,
    now: u64,
    s: &PlanSettings,
    write_without_read: bool,
) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut changed_wishes = Vec::new();
    let mut key_vouched = false;
    for (identity, id) in &claims.owned {
        let wish = &want.connections[identity];
        match st.connections.get(&identity.key()) {
            Some(owned) if owned.id == *id => {
                let due = now.saturating_sub(owned.verified_at) >= s.verify_interval.as_secs();
                let same = owned.fingerprint == wish.params.fingerprint(&st.fingerprint_key);
                key_vouched |= same;
                if due {
                    ids.insert(id.clone());
                } else if !same {
                    changed_wishes.push(id);
                }
            }
            _ => {
                ids.insert(id.clone());
            }
        }
    }
    if !(write_without_read && key_vouched) {
        ids.extend(changed_wishes.into_iter().cloned());
    }
    ids
}

pub fn plan(want: &Desired, have: &ManagedTree, st: &State, now: u64, s: &PlanSettings) -> Plan {
    let claims = claim(want, have, st);
    let mut p = Plan {
        adopted: claims.adopted.clone(),
        ..Plan::default()
    };
    let mut creates = Vec::new();
    let mut updates = Vec::new();
    let mut deletes = Vec::new();

    for (identity, wish) in &want.connections {
        match claims.owned.get(identity) {
            None => creates.push(PlannedAction {
                action: Action::Create {
                    identity: identity.clone(),
                    connection: wish.clone(),
                },
                reason: "new credential block".to_owned(),
            }),
            Some(id) => {
                let actual = have.find(id).expect("claimed ids exist");
                let (changes, compared) = diff(wish, actual, st);
                if compared {
                    p.verified.push(identity.clone());
                }
                if changes.is_empty() {
                    p.unchanged.push((identity.clone(), id.clone()));
                } else {
                    let reason = update_reason(identity, wish, st, compared);
                    updates.push(PlannedAction {
                        action: Action::Update {
                            identity: identity.clone(),
                            id: id.clone(),
                            connection: wish.clone(),
                            changes,
                            attributes: actual.attributes.clone(),
                            from_group: (actual.group != wish.group && !actual.outside)
                                .then(|| actual.group.clone()),
                        },
                        reason,
                    });
                }
            }
        }
    }

    let claimed: BTreeSet<&String> = claims.owned.values().collect();
    for (id, actual) in &have.connections {
        if claimed.contains(id) {
            continue;
        }
        let verdict = match claims.stale.get(id) {
            Some(identity) => judge_undesired(identity, want, st, now, s, &mut p.absence),
            None => judge_orphan(id, want, st, now, s, &mut p.absence),
        };
        match verdict {
            Verdict::Delete(reason) => deletes.push(PlannedAction {
                action: Action::Delete {
                    identity: claims.stale.get(id).cloned(),
                    id: id.clone(),
                    name: actual.name.clone(),
                    group: actual.group.clone(),
                },
                reason,
            }),
            Verdict::Keep(reason) => p.kept.push(Kept {
                id: id.clone(),
                identity: claims.stale.get(id).cloned(),
                reason,
            }),
        }
    }
    // Guests present again, or whose cluster could not be fully observed,
    // restart their absence clock.
    for key in st.absent_since.keys() {
        if let Some(guest) = parse_guest_key(key)
            && ((want.present.contains(&guest) && !want.excluded.contains(&guest))
                || !want.complete_clusters.contains(&guest.cluster))
        {
            p.absence.clear.insert(guest);
        }
    }

    let mut groups = group_actions(want, have, &deletes, &updates);
    if !s.prune_groups {
        groups.deletes.clear();
    }
    p.actions.extend(groups.creates);
    p.actions.extend(creates);
    p.actions.extend(park_blocked_renames(have, &updates));
    p.actions.extend(updates);
    p.actions
        .extend(want.rewrites.iter().map(|r| PlannedAction {
            action: Action::RewriteNotes { rewrite: r.clone() },
            reason: "auto-encrypt: plaintext password in notes".to_owned(),
        }));
    p.actions.extend(deletes);
    p.actions.extend(groups.deletes);
    p
}

/// Connections trading names (A→B while B→C→A, in one group) would each
/// collide with the other's current name forever. Each such rename first
/// moves its connection to a temporary name, freeing its place; the real
/// renames that follow then succeed, in the same batch.
fn park_blocked_renames(have: &ManagedTree, updates: &[PlannedAction]) -> Vec<PlannedAction> {
    // Movers: updates that change a connection's place (group, name).
    let movers: BTreeMap<&str, (GroupPath, String)> = updates
        .iter()
        .filter_map(|a| match &a.action {
            Action::Update { id, connection, .. } => {
                let now = have.connections.get(id)?;
                let target = (connection.group.clone(), connection.name.clone());
                (target != (now.group.clone(), now.name.clone())).then_some((id.as_str(), target))
            }
            _ => None,
        })
        .collect();
    let targets: BTreeMap<&(GroupPath, String), &str> =
        movers.iter().map(|(id, t)| (t, *id)).collect();
    let mut parks = Vec::new();
    for a in updates {
        let Action::Update {
            identity,
            id,
            connection,
            attributes,
            ..
        } = &a.action
        else {
            continue;
        };
        if !movers.contains_key(id.as_str()) {
            continue;
        }
        // Another mover wants this connection's current place: vacate it
        // first (chains and swaps alike), so every real rename can follow.
        let now = &have.connections[id];
        let here = (now.group.clone(), now.name.clone());
        if targets.get(&here).is_none_or(|other| *other == id) {
            continue;
        }
        let mut temp = format!("{}~{id}", now.name);
        if temp.chars().count() > 128 {
            temp = format!("~{id}");
        }
        let mut parked = connection.clone();
        parked.name = temp.clone();
        parked.group = now.group.clone();
        parks.push(PlannedAction {
            action: Action::Update {
                identity: identity.clone(),
                id: id.clone(),
                connection: parked,
                changes: vec![Change::Name {
                    from: now.name.clone(),
                    to: temp,
                }],
                attributes: attributes.clone(),
                from_group: None,
            },
            reason: "temporary name: another managed connection takes this name in the same cycle"
                .to_owned(),
        });
    }
    parks
}

/// Compares a wish with what Guacamole has. The second value tells whether
/// the parameters were compared in full (read back this cycle).
fn diff(
    wish: &DesiredConnection,
    actual: &super::model::ManagedConnection,
    st: &State,
) -> (Vec<Change>, bool) {
    let mut changes = Vec::new();
    if wish.name != actual.name {
        changes.push(Change::Name {
            from: actual.name.clone(),
            to: wish.name.clone(),
        });
    }
    if wish.protocol != actual.protocol {
        changes.push(Change::Protocol {
            from: actual.protocol.clone(),
            to: wish.protocol.clone(),
        });
    }
    if wish.group != actual.group || actual.outside {
        changes.push(Change::Group {
            from: if actual.outside {
                super::model::OUTSIDE.to_owned()
            } else {
                display_path(&actual.group)
            },
            to: display_path(&wish.group),
        });
    }
    let compared = actual.params.is_some();
    match &actual.params {
        Some(params) => {
            let names = wish.params.differing_names(params);
            if !names.is_empty() {
                changes.push(Change::Parameters { names });
            }
        }
        None => {
            let last = st.connections.get(&wish.identity.key());
            if last.map(|o| o.fingerprint.as_str())
                != Some(&wish.params.fingerprint(&st.fingerprint_key))
            {
                changes.push(Change::ParametersChanged);
            }
        }
    }
    (changes, compared)
}

fn update_reason(
    identity: &Identity,
    wish: &DesiredConnection,
    st: &State,
    compared: bool,
) -> String {
    let Some(last) = st.connections.get(&identity.key()) else {
        return "adopted: existing connection differs from the notes".to_owned();
    };
    // The wish is what the daemon last wrote, so Guacamole was edited.
    let wish_unchanged = last.fingerprint == wish.params.fingerprint(&st.fingerprint_key)
        && last.name == wish.name
        && last.group == wish.group;
    if wish_unchanged {
        if compared {
            "drift: changed in Guacamole since the daemon wrote it".to_owned()
        } else {
            "drift: renamed or moved in Guacamole since the daemon wrote it".to_owned()
        }
    } else {
        "notes, address or configuration changed".to_owned()
    }
}

enum Verdict {
    Delete(String),
    Keep(String),
}

fn judge_undesired(
    identity: &Identity,
    want: &Desired,
    st: &State,
    now: u64,
    s: &PlanSettings,
    absence: &mut AbsenceUpdate,
) -> Verdict {
    let guest = &identity.guest;
    if let Some(hold) = want.held.get(guest) {
        return Verdict::Keep(format!("guest {guest}: {}", hold.as_str()));
    }
    if !want.clusters.contains(&guest.cluster) {
        return Verdict::Keep(format!("cluster {} is not configured", guest.cluster));
    }
    if !want.complete_clusters.contains(&guest.cluster) {
        return Verdict::Keep(format!(
            "cluster {} was not fully observed: no deletes",
            guest.cluster
        ));
    }
    let excluded = want.excluded.contains(guest);
    if want.present.contains(guest) && !excluded {
        return Verdict::Delete("credential block removed from the notes".to_owned());
    }
    // A vanished guest, or one the configuration no longer selects (a typo
    // in `include` must not wipe connections at once): grace and prune apply.
    let what = if excluded {
        "guest no longer selected (template, include or exclude)"
    } else if guest.is_external() {
        "external host removed from the configuration"
    } else {
        "guest vanished from the cluster"
    };
    if !s.prune {
        return Verdict::Keep(format!("{what}; pruning is off"));
    }
    let since = st.absent_since.get(&guest.to_string()).copied();
    if since.is_none() {
        absence.start.insert(guest.clone(), now);
    }
    after_grace(since, now, s, |age, grace| {
        if age >= grace {
            Verdict::Delete(format!("{what} {age}s ago (grace {grace}s)"))
        } else {
            Verdict::Keep(format!("{what} {age}s ago; pruned after {grace}s"))
        }
    })
}

/// How long something has been waiting (`since`: the recorded start, or
/// none yet, i.e. it starts now), judged against the prune grace.
fn after_grace(
    since: Option<u64>,
    now: u64,
    s: &PlanSettings,
    verdict: impl FnOnce(u64, u64) -> Verdict,
) -> Verdict {
    let age = now.saturating_sub(since.unwrap_or(now));
    verdict(age, s.prune_grace.as_secs())
}

/// An object in the managed tree nobody claims: made by hand, or left from a
/// lost state. Deleted only after the grace period, and only while every
/// cluster was fully observed (it may belong to a guest we could not see).
fn judge_orphan(
    id: &str,
    want: &Desired,
    st: &State,
    now: u64,
    s: &PlanSettings,
    absence: &mut AbsenceUpdate,
) -> Verdict {
    if want.complete_clusters != want.clusters || !want.held.is_empty() {
        absence.orphan_clear.insert(id.to_owned());
        return Verdict::Keep(
            "unattributed; not every guest was fully observed: no deletes".to_owned(),
        );
    }
    if !s.prune {
        return Verdict::Keep("unattributed; pruning is off".to_owned());
    }
    let since = st.orphan_since.get(id).copied();
    if since.is_none() {
        absence.orphan_start.insert(id.to_owned(), now);
    }
    after_grace(since, now, s, |age, grace| {
        if age >= grace {
            Verdict::Delete(format!(
                "in the managed group but matches no credential block for {age}s"
            ))
        } else {
            Verdict::Keep(format!("unattributed for {age}s; pruned after {grace}s"))
        }
    })
}

fn parse_guest_key(key: &str) -> Option<GuestKey> {
    let (cluster, vmid) = key.rsplit_once('/')?;
    Some(GuestKey {
        cluster: cluster.to_owned(),
        vmid: vmid.parse().ok()?,
    })
}

struct GroupActions {
    creates: Vec<PlannedAction>,
    deletes: Vec<PlannedAction>,
}

/// Groups needed by desired connections are created (parents first); managed
/// groups that will hold nothing are deleted (deepest first).
fn group_actions(
    want: &Desired,
    have: &ManagedTree,
    deletes: &[PlannedAction],
    updates: &[PlannedAction],
) -> GroupActions {
    let mut needed: BTreeSet<GroupPath> = BTreeSet::new();
    let mut add_with_parents = |path: &GroupPath| {
        for n in 1..=path.len() {
            needed.insert(path[..n].to_vec());
        }
    };
    for conn in want.connections.values() {
        add_with_parents(&conn.group);
    }
    let leaving: BTreeSet<&str> = deletes
        .iter()
        .chain(updates)
        .filter_map(|a| match &a.action {
            Action::Delete { id, .. }
            | Action::Update {
                id,
                from_group: Some(_),
                ..
            } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    // Every connection that stays where it is holds its group. One that this
    // plan deletes or moves away does not; apply deletes such a group only
    // after every delete and move out of it is done (Guacamole deletes
    // groups recursively).
    for c in have.connections.values() {
        if !leaving.contains(c.id.as_str()) {
            add_with_parents(&c.group);
        }
    }

    let mut creates: Vec<PlannedAction> = needed
        .iter()
        .filter(|p| !have.groups.contains_key(*p))
        .map(|p| PlannedAction {
            action: Action::CreateGroup { path: p.clone() },
            reason: "needed by a connection".to_owned(),
        })
        .collect();
    creates.sort_by_key(|a| match &a.action {
        Action::CreateGroup { path } => path.len(),
        _ => 0,
    });

    let mut deletes_g: Vec<PlannedAction> = have
        .groups
        .values()
        .filter(|g| !needed.contains(&g.path))
        .map(|g| PlannedAction {
            action: Action::DeleteGroup {
                id: g.id.clone(),
                path: g.path.clone(),
            },
            reason: "managed group left empty".to_owned(),
        })
        .collect();
    deletes_g.sort_by_key(|a| match &a.action {
        Action::DeleteGroup { path, .. } => std::cmp::Reverse(path.len()),
        _ => std::cmp::Reverse(0),
    });
    GroupActions {
        creates,
        deletes: deletes_g,
    }
}
