//! The pure planner against a model of Guacamole: scenarios for each safety
//! rule, and properties (a second cycle over unchanged input makes zero
//! writes; nothing outside the wish is ever deleted while a guest is held).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use pve_guac_sync::reconcile::model::*;
use pve_guac_sync::reconcile::plan::{Action, PlanSettings, parameters_needed, plan};
use pve_guac_sync::reconcile::record::{ActionResult, Outcome, record};
use pve_guac_sync::state::State;

const GRACE: u64 = 600;

fn settings() -> PlanSettings {
    PlanSettings {
        prune: true,
        prune_grace: Duration::from_secs(GRACE),
        verify_interval: Duration::from_secs(3600),
        prune_groups: true,
    }
}

/// Guacamole as the planner cannot see it: every parameter of every object.
#[derive(Default, Clone)]
struct Server {
    next_id: u64,
    groups: BTreeMap<GroupPath, String>,
    conns: BTreeMap<String, (String, GroupPath, String, Params)>,
    writes: usize,
}

impl Server {
    fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    /// The tree the observe stage would build, with parameters read only
    /// where the planner asks for them.
    fn observe(&self, want: &Desired, st: &State, now: u64) -> ManagedTree {
        let mut tree = self.tree_without_params();
        let claims = pve_guac_sync::reconcile::plan::claim(want, &tree, st);
        for id in parameters_needed(want, &claims, st, now, &settings()) {
            let params = self.conns[&id].3.clone();
            tree.connections.get_mut(&id).unwrap().params = Some(params);
        }
        tree
    }

    fn tree_without_params(&self) -> ManagedTree {
        ManagedTree {
            root_id: Some("root".into()),
            outside: Default::default(),
            groups: self
                .groups
                .iter()
                .map(|(p, id)| {
                    (
                        p.clone(),
                        ManagedGroup {
                            id: id.clone(),
                            path: p.clone(),
                        },
                    )
                })
                .collect(),
            connections: self
                .conns
                .iter()
                .map(|(id, (name, group, proto, _))| {
                    (
                        id.clone(),
                        ManagedConnection {
                            id: id.clone(),
                            name: name.clone(),
                            group: group.clone(),
                            protocol: proto.clone(),
                            params: None,
                            outside: false,
                            attributes: Default::default(),
                        },
                    )
                })
                .collect(),
        }
    }

    fn apply(&mut self, p: &pve_guac_sync::reconcile::plan::Plan) -> Outcome {
        let mut results = Vec::new();
        for a in &p.actions {
            let id = match &a.action {
                Action::CreateGroup { path } => {
                    let id = self.id();
                    self.groups.insert(path.clone(), id.clone());
                    Some(id)
                }
                Action::Create { connection: c, .. } => {
                    let id = self.id();
                    self.conns.insert(
                        id.clone(),
                        (
                            c.name.clone(),
                            c.group.clone(),
                            c.protocol.clone(),
                            c.params.clone(),
                        ),
                    );
                    Some(id)
                }
                Action::Update {
                    id, connection: c, ..
                } => {
                    self.conns.insert(
                        id.clone(),
                        (
                            c.name.clone(),
                            c.group.clone(),
                            c.protocol.clone(),
                            c.params.clone(),
                        ),
                    );
                    None
                }
                Action::Delete { id, .. } => {
                    self.conns.remove(id);
                    None
                }
                Action::DeleteGroup { path, .. } => {
                    self.groups.retain(|g, _| !g.starts_with(path));
                    self.conns.retain(|_, c| !c.1.starts_with(path));
                    None
                }
                Action::RewriteNotes { .. } | Action::Grant(_) => None,
            };
            self.writes += 1;
            results.push(ActionResult::Done { id });
        }
        Outcome { results }
    }

    /// One full cycle; returns the number of writes it made.
    fn cycle(&mut self, want: &Desired, st: &mut State, now: u64) -> usize {
        let before = self.writes;
        let tree = self.observe(want, st, now);
        let p = plan(want, &tree, st, now, &settings());
        let outcome = self.apply(&p);
        record(&p, &outcome, want, st, now);
        self.writes - before
    }
}

fn ident(cluster: &str, vmid: u32, user: &str, proto: &str) -> Identity {
    Identity {
        guest: GuestKey {
            cluster: cluster.into(),
            vmid,
        },
        user: user.into(),
        protocol: proto.into(),
        ordinal: 0,
    }
}

fn conn(i: &Identity, name: &str, group: &[&str], host: &str, password: &str) -> DesiredConnection {
    let mut params = Params::new();
    params.insert("hostname", ParamValue::plain(host));
    params.insert("port", ParamValue::plain("3389"));
    params.insert("username", ParamValue::plain(i.user.clone()));
    params.insert("password", ParamValue::secret(password));
    DesiredConnection {
        identity: i.clone(),
        name: name.into(),
        group: group.iter().map(|s| s.to_string()).collect(),
        protocol: i.protocol.clone(),
        params,
        guest_name: format!("vm{}", i.guest.vmid),
        node: "pve1".into(),
    }
}

fn desired(conns: Vec<DesiredConnection>) -> Desired {
    let mut d = Desired::default();
    d.clusters.insert("lab".into());
    d.complete_clusters.insert("lab".into());
    for c in conns {
        d.present.insert(c.identity.guest.clone());
        d.connections.insert(c.identity.clone(), c);
    }
    d
}

fn kinds(p: &pve_guac_sync::reconcile::plan::Plan) -> Vec<&'static str> {
    p.actions.iter().map(|a| a.action.kind()).collect()
}

#[test]
fn fresh_sync_creates_groups_then_connections_and_second_cycle_writes_nothing() {
    let a = ident("lab", 100, "admin", "rdp");
    let b = ident("lab", 101, "root", "ssh");
    let want = desired(vec![
        conn(&a, "admin@web-rdp", &["pve1"], "192.0.2.10", "pw1"),
        conn(&b, "root@db-ssh", &["pve1", "db"], "192.0.2.11", "pw2"),
    ]);
    let mut server = Server::default();
    let mut st = State::new();
    let p = plan(&want, &server.observe(&want, &st, 0), &st, 0, &settings());
    assert_eq!(
        kinds(&p),
        ["create_group", "create_group", "create", "create"],
        "{p:#?}"
    );
    assert_eq!(server.cycle(&want, &mut st, 0), 4);
    assert_eq!(server.cycle(&want, &mut st, 60), 0);
}

#[test]
fn rename_and_password_change_are_updates_of_the_same_connection() {
    let a = ident("lab", 100, "admin", "rdp");
    let mut server = Server::default();
    let mut st = State::new();
    server.cycle(
        &desired(vec![conn(&a, "old", &[], "192.0.2.10", "pw1")]),
        &mut st,
        0,
    );
    let id = st.connections[&a.key()].id.clone();

    let want = desired(vec![conn(&a, "new", &[], "192.0.2.10", "pw2")]);
    let p = plan(&want, &server.observe(&want, &st, 10), &st, 10, &settings());
    assert_eq!(kinds(&p), ["update"]);
    match &p.actions[0].action {
        Action::Update {
            id: uid, changes, ..
        } => {
            assert_eq!(uid, &id);
            let text = format!("{changes:?}");
            assert!(text.contains("new"), "{text}");
            assert!(!text.contains("pw2"), "secrets must not appear: {text}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.cycle(&want, &mut st, 10), 1);
    assert_eq!(st.connections[&a.key()].id, id);
    assert_eq!(server.cycle(&want, &mut st, 20), 0);
}

#[test]
fn hand_edit_in_guacamole_is_reverted_at_the_next_verification() {
    let a = ident("lab", 100, "admin", "rdp");
    let want = desired(vec![conn(&a, "n", &[], "192.0.2.10", "pw")]);
    let mut server = Server::default();
    let mut st = State::new();
    server.cycle(&want, &mut st, 0);
    let id = st.connections[&a.key()].id.clone();
    // A hand edit of a parameter: invisible until verification is due.
    server
        .conns
        .get_mut(&id)
        .unwrap()
        .3
        .insert("port", ParamValue::plain("3390"));
    assert_eq!(server.cycle(&want, &mut st, 60), 0);
    let p = plan(
        &want,
        &server.observe(&want, &st, 4000),
        &st,
        4000,
        &settings(),
    );
    assert_eq!(kinds(&p), ["update"]);
    assert!(
        p.actions[0].reason.starts_with("drift"),
        "{}",
        p.actions[0].reason
    );
    // A rename by hand is visible in the tree at once.
    server.cycle(&want, &mut st, 4000);
    server.conns.get_mut(&id).unwrap().0 = "renamed by hand".into();
    assert_eq!(server.cycle(&want, &mut st, 4010), 1);
    assert_eq!(server.conns[&id].0, "n");
}

#[test]
fn removed_block_deletes_but_held_guest_keeps_everything() {
    let a = ident("lab", 100, "admin", "rdp");
    let b = ident("lab", 100, "admin", "ssh");
    let mut server = Server::default();
    let mut st = State::new();
    server.cycle(
        &desired(vec![
            conn(&a, "a", &[], "192.0.2.10", "pw"),
            conn(&b, "b", &[], "192.0.2.10", "pw"),
        ]),
        &mut st,
        0,
    );
    // The ssh block has an error: the guest is held, nothing is deleted.
    let mut held = desired(vec![conn(&a, "a", &[], "192.0.2.10", "pw")]);
    held.held.insert(a.guest.clone(), HoldReason::BlockError);
    let p = plan(&held, &server.observe(&held, &st, 5), &st, 5, &settings());
    assert!(kinds(&p).is_empty(), "{p:#?}");
    assert_eq!(p.kept.len(), 1);
    // The block is removed: delete at once.
    let removed = desired(vec![conn(&a, "a", &[], "192.0.2.10", "pw")]);
    let p = plan(
        &removed,
        &server.observe(&removed, &st, 6),
        &st,
        6,
        &settings(),
    );
    assert_eq!(kinds(&p), ["delete"]);
    assert_eq!(
        p.actions[0].reason,
        "credential block removed from the notes"
    );
}

#[test]
fn vanished_guest_is_pruned_only_after_grace_of_complete_observations() {
    let a = ident("lab", 100, "admin", "rdp");
    let mut server = Server::default();
    let mut st = State::new();
    server.cycle(
        &desired(vec![conn(&a, "a", &["pve1"], "192.0.2.10", "pw")]),
        &mut st,
        0,
    );
    let gone = desired(vec![]);
    assert_eq!(server.cycle(&gone, &mut st, 100), 0);
    assert_eq!(st.absent_since["lab/100"], 100);
    // An incomplete observation restarts the clock.
    let mut incomplete = desired(vec![]);
    incomplete.complete_clusters.clear();
    assert_eq!(server.cycle(&incomplete, &mut st, 400), 0);
    assert!(!st.absent_since.contains_key("lab/100"));
    assert_eq!(server.cycle(&gone, &mut st, 500), 0);
    assert_eq!(server.cycle(&gone, &mut st, 500 + GRACE - 1), 0);
    // Grace over: the connection and its now-empty group go.
    assert_eq!(server.cycle(&gone, &mut st, 500 + GRACE), 2);
    assert!(server.conns.is_empty() && server.groups.is_empty());
    assert!(st.connections.is_empty() && st.absent_since.is_empty());
}

#[test]
fn lost_state_is_rebuilt_by_adoption_without_writes() {
    let a = ident("lab", 100, "admin", "rdp");
    let want = desired(vec![conn(&a, "a", &["g"], "192.0.2.10", "pw")]);
    let mut server = Server::default();
    let mut st = State::new();
    server.cycle(&want, &mut st, 0);
    let mut fresh = State::new();
    let p = plan(
        &want,
        &server.observe(&want, &fresh, 10),
        &fresh,
        10,
        &settings(),
    );
    assert!(p.actions.is_empty(), "{p:#?}");
    assert_eq!(p.adopted.len(), 1);
    assert_eq!(server.cycle(&want, &mut fresh, 10), 0);
    assert_eq!(fresh.connections[&a.key()].id, st.connections[&a.key()].id);
}

#[test]
fn unattributed_objects_wait_for_grace_and_complete_observations() {
    let mut server = Server::default();
    server.conns.insert(
        "77".into(),
        ("hand made".into(), vec![], "vnc".into(), Params::new()),
    );
    let mut st = State::new();
    let want = desired(vec![]);
    assert_eq!(server.cycle(&want, &mut st, 0), 0);
    let mut incomplete = desired(vec![]);
    incomplete.clusters.insert("other".into());
    assert_eq!(server.cycle(&incomplete, &mut st, GRACE + 1), 0);
    assert_eq!(server.cycle(&want, &mut st, GRACE + 2), 0);
    assert_eq!(server.cycle(&want, &mut st, 2 * GRACE + 2), 1);
}

#[test]
fn no_prune_when_disabled() {
    let a = ident("lab", 100, "admin", "rdp");
    let mut server = Server::default();
    let mut st = State::new();
    server.cycle(
        &desired(vec![conn(&a, "a", &[], "192.0.2.10", "pw")]),
        &mut st,
        0,
    );
    let s = PlanSettings {
        prune: false,
        ..settings()
    };
    let gone = desired(vec![]);
    let tree = server.observe(&gone, &st, 10_000);
    let p = plan(&gone, &tree, &st, 10_000, &s);
    assert!(p.actions.is_empty());
}

fn arb_wish() -> impl Strategy<Value = Vec<(u32, String, String, Vec<String>, String)>> {
    proptest::collection::vec(
        (
            100u32..110,
            prop_oneof!["admin", "root", "ops"].prop_map(String::from),
            prop_oneof!["rdp", "ssh", "vnc"].prop_map(String::from),
            proptest::collection::vec(prop_oneof!["a", "b"].prop_map(String::from), 0..3),
            "[a-z]{1,6}",
        ),
        0..12,
    )
}

fn build(items: &[(u32, String, String, Vec<String>, String)]) -> Desired {
    let mut conns = Vec::new();
    let mut seen = BTreeSet::new();
    for (vmid, user, proto, group, pw) in items {
        let i = ident("lab", *vmid, user, proto);
        if !seen.insert(i.clone()) {
            continue;
        }
        let g: Vec<&str> = group.iter().map(|s| s.as_str()).collect();
        conns.push(conn(
            &i,
            &format!("{user}@{vmid}-{proto}"),
            &g,
            "192.0.2.10",
            pw,
        ));
    }
    desired(conns)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    /// From any starting wish to any other: one cycle converges and the next
    /// one writes nothing.
    #[test]
    fn second_cycle_makes_zero_writes(first in arb_wish(), second in arb_wish()) {
        let mut server = Server::default();
        let mut st = State::new();
        server.cycle(&build(&first), &mut st, 0);
        prop_assert_eq!(server.cycle(&build(&first), &mut st, 1), 0);
        let want = build(&second);
        server.cycle(&want, &mut st, 2);
        // Vanished guests wait for their grace; after it everything is in step.
        server.cycle(&want, &mut st, 2 + GRACE);
        prop_assert_eq!(server.cycle(&want, &mut st, 3 + GRACE), 0);
        let names: BTreeSet<_> = server.conns.values().map(|c| c.0.clone()).collect();
        let wanted: BTreeSet<_> = want.connections.values().map(|c| c.name.clone()).collect();
        prop_assert_eq!(names, wanted);
    }

    /// A held guest never loses a connection, whatever else changes.
    #[test]
    fn held_guests_lose_nothing(first in arb_wish(), second in arb_wish()) {
        let mut server = Server::default();
        let mut st = State::new();
        server.cycle(&build(&first), &mut st, 0);
        let before: BTreeSet<String> = server.conns.keys().cloned().collect();
        let mut want = build(&second);
        for (vmid, ..) in &first {
            want.held.insert(GuestKey { cluster: "lab".into(), vmid: *vmid }, HoldReason::AddressUnknown);
        }
        server.cycle(&want, &mut st, 10 * GRACE);
        for id in before {
            prop_assert!(server.conns.contains_key(&id));
        }
    }
}

#[test]
fn a_group_emptied_by_a_move_goes_in_the_same_cycle() {
    let a = ident("lab", 100, "admin", "rdp");
    let mut server = Server::default();
    let mut st = State::new();
    server.cycle(
        &desired(vec![conn(&a, "a", &["old"], "192.0.2.10", "pw")]),
        &mut st,
        0,
    );
    let want = desired(vec![conn(&a, "a", &["new"], "192.0.2.10", "pw")]);
    let p = plan(&want, &server.observe(&want, &st, 1), &st, 1, &settings());
    // The emptied group goes in the same cycle, after the move (apply
    // defers it if the move does not happen).
    assert_eq!(
        kinds(&p),
        ["create_group", "update", "delete_group"],
        "{p:#?}"
    );
    match &p.actions[1].action {
        Action::Update { from_group, .. } => assert_eq!(from_group, &Some(vec!["old".to_owned()])),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.cycle(&want, &mut st, 1), 3);
    assert_eq!(server.cycle(&want, &mut st, 2), 0);
}

/// The daemon records every apply stage into one copy of the state, the
/// results so far each time: that must end where recording them once does.
#[test]
fn recording_stage_by_stage_equals_recording_once() {
    let keep = ident("lab", 100, "admin", "rdp");
    let change = ident("lab", 101, "root", "ssh");
    let gone = ident("lab", 102, "old", "ssh");
    let mut server = Server::default();
    let mut st = State::new();
    server.cycle(
        &desired(vec![
            conn(&keep, "keep", &["pve1"], "192.0.2.10", "pw1"),
            conn(&change, "change", &["pve1"], "192.0.2.11", "pw2"),
            conn(&gone, "gone", &["pve2"], "192.0.2.12", "pw3"),
        ]),
        &mut st,
        0,
    );
    // A new guest in a new group, a password change, a removed block.
    let fresh = ident("lab", 103, "new", "rdp");
    let mut want = desired(vec![
        conn(&keep, "keep", &["pve1"], "192.0.2.10", "pw1"),
        conn(&change, "change", &["pve1"], "192.0.2.11", "pw2-new"),
        conn(&fresh, "fresh", &["pve3"], "192.0.2.13", "pw4"),
    ]);
    // Guest 102 is still there; only its block went.
    want.present.insert(gone.guest.clone());
    let p = plan(&want, &server.observe(&want, &st, 10), &st, 10, &settings());
    for kind in ["create_group", "create", "update", "delete"] {
        assert!(kinds(&p).contains(&kind), "{kind}: {:?}", kinds(&p));
    }
    let outcome = server.apply(&p);

    let mut once = st.clone();
    record(&p, &outcome, &want, &mut once, 10);

    let mut staged = st.clone();
    for done in 1..=outcome.results.len() {
        let so_far = Outcome {
            results: outcome
                .results
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    if i < done {
                        r.clone()
                    } else {
                        ActionResult::Deferred
                    }
                })
                .collect(),
        };
        record(&p, &so_far, &want, &mut staged, 10);
    }
    assert_eq!(staged, once);
}
