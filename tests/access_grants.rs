//! Access grants end to end: the real engine against the lab on Guacamole
//! 1.5 and 1.6, asserting the lab's permission sets, the permission PATCHes
//! it received and the state file.

mod common;

use std::collections::BTreeSet;

use common::*;
use pve_guac_lab::guacamole::{
    GuacVersion, GuacamoleSeed, ObjectPermission, UserGroupSeed, UserSeed,
};
use pve_guac_lab::{Lab, LabSeed, RequestMark};
use pve_guac_sync::reconcile::cycle::{CycleReport, Engine, Mode};
use serde_json::{Value, json};

const SYNC: &str = "  grouping: node\n  prune: {enabled: true, grace: 0s}";
const ROOT: &str = "pve-guac-sync";
const VERSIONS: [GuacVersion; 2] = [GuacVersion::V1_5, GuacVersion::V1_6];
const NOTES_MAY_GRANT: &str =
    "access:\n  notes_may_grant:\n    users: [alice, bob]\n    groups: [students]\n";

fn seed(version: GuacVersion) -> LabSeed {
    LabSeed {
        guacamole: GuacamoleSeed::example()
            .version(version)
            .user(UserSeed::new("alice", "alice-pw"))
            .user(UserSeed::new("bob", "bob-pw"))
            .user(UserSeed::new("mallory", "mallory-pw"))
            .user_group(UserGroupSeed::new("students")),
        ..LabSeed::default()
    }
}

/// The lab, and an engine whose configuration has this `access:` section.
async fn start(version: GuacVersion, access: &str) -> (Lab, Setup, Engine) {
    let lab = lab(seed(version)).await;
    let setup = config(&lab, SYNC);
    let mut text = std::fs::read_to_string(&setup.config).unwrap();
    text.push_str(access);
    std::fs::write(&setup.config, text).unwrap();
    let engine = engine(&setup);
    (lab, setup, engine)
}

async fn run(engine: &Engine) -> CycleReport {
    let report = cycle(engine).await;
    assert_eq!(
        report.summary.errors, 0,
        "{:#?}\n{:#?}",
        report.problems, report.outcome
    );
    report
}

fn conn_id(lab: &Lab, name: &str) -> String {
    lab.guacamole()
        .find_connection(name)
        .unwrap_or_else(|| panic!("no connection {name}"))
        .identifier
}

fn group_id(lab: &Lab, name: &str) -> String {
    lab.guacamole()
        .find_group(name)
        .unwrap_or_else(|| panic!("no group {name}"))
        .identifier
}

/// Ids of the objects of one kind a user or group holds READ on.
fn reads(set: Option<Value>, member: &str) -> BTreeSet<String> {
    let set = set.expect("grantee exists");
    set[member]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, ps)| ps.as_array().unwrap().contains(&json!("READ")))
        .map(|(id, _)| id.clone())
        .collect()
}

fn user_reads(lab: &Lab, user: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let g = lab.guacamole();
    (
        reads(g.permissions(user), "connectionPermissions"),
        reads(g.permissions(user), "connectionGroupPermissions"),
    )
}

fn group_reads(lab: &Lab, group: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let g = lab.guacamole();
    (
        reads(g.user_group_permissions(group), "connectionPermissions"),
        reads(
            g.user_group_permissions(group),
            "connectionGroupPermissions",
        ),
    )
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Permission PATCHes since `mark`: (path tail `users/alice`, body).
fn permission_patches(lab: &Lab, mark: RequestMark) -> Vec<(String, Value)> {
    lab.requests_since(mark)
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/permissions"))
        .map(|r| {
            let parts: Vec<&str> = r.path.rsplit('/').take(3).collect();
            (
                format!("{}/{}", parts[2], parts[1]),
                r.json.clone().unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// The body's entries as `op path` strings, sorted.
fn entries(body: &Value) -> Vec<String> {
    let mut out: Vec<String> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["value"], "READ", "{e}");
            format!(
                "{} {}",
                e["op"].as_str().unwrap(),
                e["path"].as_str().unwrap()
            )
        })
        .collect();
    out.sort();
    out
}

fn recorded_grants(setup: &Setup) -> Value {
    let text = std::fs::read_to_string(setup.dir.path().join("state/state.json")).unwrap();
    let state: Value = serde_json::from_str(&text).unwrap();
    state.get("grants").cloned().unwrap_or(json!({}))
}

const WEB_NOTES_GRANTING: &str = "user:\"admin\" pass:\"S3cret\" protos:\"rdp,ssh\" access:\"user:alice, group:students, user:mallory\";";

#[tokio::test]
async fn notes_grant_read_on_the_connections_and_the_groups_above_them() {
    for version in VERSIONS {
        let (lab, setup, engine) = start(version, NOTES_MAY_GRANT).await;
        lab.proxmox("lab").set_notes(100, WEB_NOTES_GRANTING);
        let mark = lab.request_mark();
        let first = run(&engine).await;

        let rdp = conn_id(&lab, "admin@web01-rdp");
        let ssh = conn_id(&lab, "admin@web01-ssh");
        let (root, pve1) = (group_id(&lab, ROOT), group_id(&lab, "pve1"));
        assert_eq!(
            user_reads(&lab, "alice"),
            (set(&[&rdp, &ssh]), set(&[&root, &pve1]))
        );
        assert_eq!(group_reads(&lab, "students"), user_reads(&lab, "alice"));
        // mallory is a real user, but notes may not grant to her.
        assert_eq!(user_reads(&lab, "mallory"), (set(&[]), set(&[])));
        assert!(
            first
                .problems
                .iter()
                .any(|p| p.contains("block 1 (line 1), key access")
                    && p.contains("user \"mallory\" is not listed in access.notes_may_grant")),
            "{version:?}: {:#?}",
            first.problems
        );
        // The other guests' connections are not granted to anyone.
        let db = conn_id(&lab, "dba@db01-ssh");
        assert!(!user_reads(&lab, "alice").0.contains(&db));

        // One PATCH per grantee, carrying all its grants.
        let patches = permission_patches(&lab, mark);
        assert_eq!(patches.len(), 2, "{version:?}: {patches:#?}");
        for (who, body) in &patches {
            assert!(
                who == "users/alice" || who == "userGroups/students",
                "{who}"
            );
            assert_eq!(
                entries(body),
                [
                    format!("add /connectionGroupPermissions/{pve1}"),
                    format!("add /connectionGroupPermissions/{root}"),
                    format!("add /connectionPermissions/{rdp}"),
                    format!("add /connectionPermissions/{ssh}"),
                ]
                .into_iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
            );
        }
        assert_eq!(first.summary.grants_changed, 8);
        let recorded = recorded_grants(&setup);
        assert_eq!(
            recorded["user:alice"],
            json!({"connections": set(&[&rdp, &ssh]), "groups": set(&[&root, &pve1])})
        );
        assert!(recorded.get("user:mallory").is_none());

        // Idempotence: nothing is written on the next cycle.
        let mark = lab.request_mark();
        let second = run(&engine).await;
        assert_eq!(changes(&lab, mark), Vec::<String>::new(), "{version:?}");
        assert_eq!(second.summary.grants_changed, 0);
        assert!(second.plan.actions.is_empty(), "{:#?}", second.plan.actions);
    }
}

#[tokio::test]
async fn a_tag_rule_grants_every_matching_guest_and_a_cluster_rule_its_vmids() {
    let access = "access:\n  rules:\n    - match: {tags: [prod]}\n      groups: [students]\n    - match: {clusters: [lab], vmids: [\"200\"]}\n      users: [bob]\n";
    for version in VERSIONS {
        let (lab, _setup, engine) = start(version, access).await;
        let report = run(&engine).await;
        let prod = set(&[
            &conn_id(&lab, "admin@web01-rdp"),
            &conn_id(&lab, "admin@web01-ssh"),
            &conn_id(&lab, "dba@db01-ssh"),
        ]);
        let (root, pve1) = (group_id(&lab, ROOT), group_id(&lab, "pve1"));
        assert_eq!(group_reads(&lab, "students"), (prod, set(&[&root, &pve1])));
        assert_eq!(
            user_reads(&lab, "bob"),
            (
                set(&[&conn_id(&lab, "root@ct-dns-ssh")]),
                set(&[&root, &pve1])
            )
        );
        // The plan said why.
        let reasons: Vec<&str> = report
            .plan
            .actions
            .iter()
            .filter(|a| a.action.kind() == "grant")
            .map(|a| a.reason.as_str())
            .collect();
        assert!(
            reasons.contains(&"named by access rule 1 (tags: prod)"),
            "{reasons:#?}"
        );
        assert!(
            reasons.contains(&"named by access rule 2 (clusters: lab; vmids: 200)"),
            "{reasons:#?}"
        );
        let mark = lab.request_mark();
        run(&engine).await;
        assert_eq!(changes(&lab, mark), Vec::<String>::new(), "{version:?}");
    }
}

#[tokio::test]
async fn removing_a_name_revokes_only_that_grant_and_manual_grants_survive() {
    for version in VERSIONS {
        let (lab, setup, engine) = start(version, NOTES_MAY_GRANT).await;
        lab.proxmox("lab").set_notes(100, WEB_NOTES_GRANTING);
        run(&engine).await;
        let rdp = conn_id(&lab, "admin@web01-rdp");
        let ssh = conn_id(&lab, "admin@web01-ssh");
        let db = conn_id(&lab, "dba@db01-ssh");
        let (root, pve1) = (group_id(&lab, ROOT), group_id(&lab, "pve1"));
        // An operator grants by hand: alice on db01, bob on web01 (rdp).
        let g = lab.guacamole();
        assert!(g.grant_connection("alice", &db, ObjectPermission::Read));
        assert!(g.grant_connection("bob", &rdp, ObjectPermission::Read));

        lab.proxmox("lab").set_notes(
            100,
            "user:\"admin\" pass:\"S3cret\" protos:\"rdp,ssh\" access:\"group:students\";",
        );
        let mark = lab.request_mark();
        let report = run(&engine).await;
        let patches = permission_patches(&lab, mark);
        assert_eq!(patches.len(), 1, "{version:?}: {patches:#?}");
        assert_eq!(patches[0].0, "users/alice");
        assert_eq!(
            entries(&patches[0].1),
            vec![
                format!("remove /connectionGroupPermissions/{pve1}"),
                format!("remove /connectionGroupPermissions/{root}"),
                format!("remove /connectionPermissions/{rdp}"),
                format!("remove /connectionPermissions/{ssh}"),
            ]
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
        );
        assert!(
            report
                .plan
                .actions
                .iter()
                .all(|a| a.reason.contains("any more")),
            "{:#?}",
            report.plan.actions
        );
        // The hand-made grants and the other grantee are untouched.
        assert_eq!(user_reads(&lab, "alice"), (set(&[&db]), set(&[])));
        assert_eq!(user_reads(&lab, "bob"), (set(&[&rdp]), set(&[])));
        assert_eq!(
            group_reads(&lab, "students"),
            (set(&[&rdp, &ssh]), set(&[&root, &pve1]))
        );
        assert!(recorded_grants(&setup).get("user:alice").is_none());

        // A manual grant of what a source names is not the daemon's either:
        // bob is named, then dropped again; his hand-made READ stays.
        lab.proxmox("lab").set_notes(
            100,
            "user:\"admin\" pass:\"S3cret\" protos:\"rdp\" access:\"group:students, user:bob\";",
        );
        run(&engine).await;
        lab.proxmox("lab").set_notes(
            100,
            "user:\"admin\" pass:\"S3cret\" protos:\"rdp\" access:\"group:students\";",
        );
        run(&engine).await;
        assert!(user_reads(&lab, "bob").0.contains(&rdp), "{version:?}");
    }
}

#[tokio::test]
async fn an_unknown_group_is_reported_by_name_and_the_rest_applies() {
    let access = "access:\n  rules:\n    - match: {tags: [web]}\n      groups: [nope, students]\n      users: [alice]\n";
    for version in VERSIONS {
        let (lab, _setup, engine) = start(version, access).await;
        let mark = lab.request_mark();
        let report = cycle(&engine).await;
        assert!(
            report.problems.iter().any(|p| p.contains(
                "access rule 1 (tags: web): user group \"nope\" does not exist in Guacamole"
            )),
            "{version:?}: {:#?}",
            report.problems
        );
        let rdp = conn_id(&lab, "admin@web01-rdp");
        assert!(group_reads(&lab, "students").0.contains(&rdp));
        assert!(user_reads(&lab, "alice").0.contains(&rdp));
        let patched: Vec<String> = permission_patches(&lab, mark)
            .into_iter()
            .map(|(who, _)| who)
            .collect();
        assert_eq!(patched.len(), 2, "{patched:?}");
        assert!(!patched.iter().any(|w| w.contains("nope")), "{patched:?}");
        // Nothing was created for it.
        assert!(lab.guacamole().user_group_permissions("nope").is_none());
    }
}

#[tokio::test]
async fn a_renamed_or_moved_connection_keeps_its_grants() {
    for version in VERSIONS {
        let (lab, setup, engine) = start(version, NOTES_MAY_GRANT).await;
        lab.proxmox("lab").set_notes(
            100,
            "user:\"admin\" pass:\"S3cret\" protos:\"rdp\" access:\"user:alice\";",
        );
        run(&engine).await;
        let id = conn_id(&lab, "admin@web01-rdp");
        let (root, pve1) = (group_id(&lab, ROOT), group_id(&lab, "pve1"));

        lab.proxmox("lab").set_notes(
            100,
            "user:\"admin\" pass:\"S3cret\" protos:\"rdp\" access:\"user:alice\" group:\"Lab/Web\" confName:\"web ({proto})\";",
        );
        let mark = lab.request_mark();
        run(&engine).await;
        let moved = lab.guacamole().connection(&id).unwrap();
        assert_eq!(moved.name, "web (rdp)");
        let (lab_g, web_g) = (group_id(&lab, "Lab"), group_id(&lab, "Web"));
        assert_eq!(moved.parent, web_g);
        assert_eq!(
            user_reads(&lab, "alice"),
            (set(&[&id]), set(&[&root, &lab_g, &web_g]))
        );
        let patches = permission_patches(&lab, mark);
        assert_eq!(patches.len(), 1, "{version:?}: {patches:#?}");
        assert_eq!(
            entries(&patches[0].1),
            vec![
                format!("add /connectionGroupPermissions/{lab_g}"),
                format!("add /connectionGroupPermissions/{web_g}"),
                format!("remove /connectionGroupPermissions/{pve1}"),
            ]
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
        );
        assert_eq!(
            recorded_grants(&setup)["user:alice"],
            json!({"connections": [id], "groups": set(&[&root, &lab_g, &web_g])})
        );
    }
}

#[tokio::test]
async fn a_deleted_connection_leaves_no_recorded_grant_behind() {
    for version in VERSIONS {
        let (lab, setup, engine) = start(version, NOTES_MAY_GRANT).await;
        lab.proxmox("lab").set_notes(
            100,
            "user:\"admin\" pass:\"S3cret\" protos:\"rdp,ssh\" access:\"user:alice\";",
        );
        run(&engine).await;
        let rdp = conn_id(&lab, "admin@web01-rdp");
        let ssh = conn_id(&lab, "admin@web01-ssh");

        // The ssh connection goes from the notes: deleted, and Guacamole
        // drops its permissions; no revoke is sent for it.
        lab.proxmox("lab").set_notes(
            100,
            "user:\"admin\" pass:\"S3cret\" protos:\"rdp\" access:\"user:alice\";",
        );
        let mark = lab.request_mark();
        let report = run(&engine).await;
        assert_eq!(report.summary.deleted, 1);
        assert_eq!(permission_patches(&lab, mark), Vec::new(), "{version:?}");
        assert!(lab.guacamole().connection(&ssh).is_none());
        let recorded = &recorded_grants(&setup)["user:alice"]["connections"];
        assert_eq!(recorded, &json!([rdp]), "{version:?}");

        // Deleted by hand: the record forgets it; the new one is granted.
        assert!(lab.guacamole().delete_connection(&rdp));
        run(&engine).await;
        let new = conn_id(&lab, "admin@web01-rdp");
        assert_ne!(new, rdp);
        assert_eq!(
            recorded_grants(&setup)["user:alice"]["connections"],
            json!([new])
        );
        assert!(user_reads(&lab, "alice").0.contains(&new));
    }
}

#[tokio::test]
async fn grants_count_against_the_budget_and_dry_run_writes_none() {
    for version in VERSIONS {
        let (lab, _setup, engine) = start(version, NOTES_MAY_GRANT).await;
        run(&engine).await;
        lab.proxmox("lab").set_notes(
            100,
            "user:\"admin\" pass:\"S3cret\" protos:\"rdp,ssh\" access:\"user:alice\";",
        );
        // plan shows each grant with its reason and writes nothing.
        let mark = lab.request_mark();
        let planned = engine.cycle(Mode::PlanOnly, false).await.unwrap();
        let lines: Vec<String> = planned
            .plan
            .actions
            .iter()
            .map(|a| format!("{} | {}", a.action.describe(), a.reason))
            .collect();
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(
            lines.iter().any(
                |l| l.starts_with("grant READ on connection lab/100/admin/rdp")
                    && l.ends_with("to user \"alice\" | named by notes block 1 (line 1) access")
            ),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("grant READ on the managed root group")),
            "{lines:#?}"
        );
        let dry = engine.cycle(Mode::DryRun, false).await.unwrap();
        assert_eq!(dry.summary.pending, 4);
        assert_eq!(changes(&lab, mark), Vec::<String>::new(), "{version:?}");
        assert_eq!(user_reads(&lab, "alice"), (set(&[]), set(&[])));
    }

    // A budget of 2: two grants now, the other two on the next cycle.
    let lab = lab(seed(GuacVersion::V1_6)).await;
    let setup = config(&lab, &format!("{SYNC}\n  max_changes_per_cycle: 2"));
    let mut text = std::fs::read_to_string(&setup.config).unwrap();
    text.push_str(NOTES_MAY_GRANT);
    std::fs::write(&setup.config, text).unwrap();
    let engine = engine(&setup);
    lab.proxmox("lab")
        .set_notes(100, "user:\"admin\" pass:\"S3cret\" protos:\"rdp\";");
    for _ in 0..8 {
        if cycle(&engine).await.summary.pending == 0 {
            break;
        }
    }
    lab.proxmox("lab").set_notes(
        100,
        "user:\"admin\" pass:\"S3cret\" protos:\"rdp,ssh\" access:\"user:alice\";",
    );
    // The ssh connection (1) and the rdp grant (1): the budget is spent.
    let first = cycle(&engine).await;
    assert_eq!(
        (first.summary.created, first.summary.grants_changed),
        (1, 1)
    );
    assert_eq!(first.summary.pending, 3, "{:#?}", first.plan.actions);
    let second = cycle(&engine).await;
    assert_eq!(second.summary.grants_changed, 2);
    let third = cycle(&engine).await;
    assert_eq!(third.summary.grants_changed, 1);
    assert_eq!(third.summary.pending, 0);
    let ssh = conn_id(&lab, "admin@web01-ssh");
    assert!(user_reads(&lab, "alice").0.contains(&ssh));
}

#[tokio::test]
async fn a_failed_permission_patch_records_nothing_and_the_next_cycle_grants() {
    for version in VERSIONS {
        let (lab, setup, engine) = start(version, NOTES_MAY_GRANT).await;
        lab.proxmox("lab").set_notes(
            100,
            "user:\"admin\" pass:\"S3cret\" protos:\"rdp\" access:\"user:alice\";",
        );
        lab.faults("guacamole").add(
            pve_guac_lab::FaultRule::error(500)
                .method("PATCH")
                .path_contains("/permissions")
                .times(10),
        );
        let first = cycle(&engine).await;
        assert_eq!(first.summary.errors, 3, "{:#?}", first.outcome);
        assert_eq!(first.summary.created, 5);
        assert_eq!(user_reads(&lab, "alice"), (set(&[]), set(&[])));
        assert_eq!(recorded_grants(&setup), json!({}));

        lab.faults("guacamole").clear();
        let second = run(&engine).await;
        assert_eq!(second.summary.grants_changed, 3, "{version:?}");
        let id = conn_id(&lab, "admin@web01-rdp");
        assert!(user_reads(&lab, "alice").0.contains(&id));
    }
}
