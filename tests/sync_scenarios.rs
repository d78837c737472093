//! The reconcile core end to end: the real engine against the lab, asserting
//! the lab's resulting state and the requests it received.

mod common;

use common::*;
use pve_guac_lab::guacamole::{GuacVersion, GuacamoleSeed};
use pve_guac_lab::proxmox::ClusterSeed;
use pve_guac_lab::{FaultRule, LabSeed};
use pve_guac_sync::crypto::Keyring;
use pve_guac_sync::notes;
use pve_guac_sync::secret::Secret;

const SYNC: &str = "  grouping: node\n  auto_encrypt: true\n  prune: {enabled: true, grace: 0s}";
const ROOT: &str = "pve-guac-sync";

/// The example cluster with the example Guacamole (hand-made objects the
/// daemon must leave alone).
fn seed() -> LabSeed {
    LabSeed {
        guacamole: GuacamoleSeed::example(),
        ..LabSeed::default()
    }
}

const EXPECTED: [&str; 6] = [
    "admin@web01-rdp",
    "admin@web01-ssh",
    "dba@db01-ssh",
    "files@files01-ssh",
    "root@ct-dns-ssh",
    "viewer@docker01-vnc",
];

fn conn_id(lab: &pve_guac_lab::Lab, name: &str) -> String {
    lab.guacamole()
        .connections()
        .into_iter()
        .find(|c| c.name == name && c.parent != "ROOT" && c.parent != "1")
        .unwrap_or_else(|| panic!("no managed connection {name}"))
        .identifier
}

fn params(lab: &pve_guac_lab::Lab, name: &str) -> std::collections::BTreeMap<String, String> {
    lab.guacamole().parameters(&conn_id(lab, name)).unwrap()
}

#[tokio::test]
async fn fresh_sync_creates_the_expected_tree_and_a_second_cycle_writes_nothing() {
    let lab = lab(seed()).await;
    let before_unmanaged = (
        lab.guacamole().connection("1").unwrap(),
        lab.guacamole().connection("2").unwrap(),
    );
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    let first = cycle(&engine).await;
    assert_eq!(managed_names(&lab, ROOT), EXPECTED, "{:#?}", first.problems);
    assert_eq!(first.summary.created, 6);
    assert_eq!(first.summary.errors, 0, "{:#?}", first.outcome);

    // Sub-groups by node under the managed root.
    let g = lab.guacamole();
    let root = g.find_group(ROOT).unwrap();
    assert_eq!(root.parent, "ROOT");
    let pve1 = g.groups().into_iter().find(|x| x.name == "pve1").unwrap();
    assert_eq!(pve1.parent, root.identifier);
    let web = g.connection(&conn_id(&lab, "admin@web01-rdp")).unwrap();
    assert_eq!(web.parent, pve1.identifier);
    assert_eq!(web.protocol, "rdp");

    // Parameters: discovered address, default and explicit ports, settings,
    // decrypted passwords.
    let p = params(&lab, "admin@web01-rdp");
    assert_eq!(p["hostname"], "192.0.2.10");
    assert_eq!(p["port"], "3389");
    assert_eq!(p["username"], "admin");
    assert_eq!(p["password"], "S3cret");
    let db = params(&lab, "dba@db01-ssh");
    assert_eq!(
        (db["port"].as_str(), db["password"].as_str()),
        ("2222", "Enc-Passw0rd!")
    );
    let ct = params(&lab, "root@ct-dns-ssh");
    assert_eq!(ct["hostname"], "192.0.2.50");
    // The docker bridge inside the VM is not the guest's address.
    let vnc = params(&lab, "viewer@docker01-vnc");
    assert_eq!(vnc["hostname"], "203.0.113.20");
    assert_eq!(vnc["read-only"], "true");

    // Hand-made connections are exactly as they were.
    assert_eq!(lab.guacamole().connection("1").unwrap(), before_unmanaged.0);
    assert_eq!(lab.guacamole().connection("2").unwrap(), before_unmanaged.1);

    // Plaintext passwords were encrypted in place; the locked guest waits.
    let keyring = Keyring::new(&[Secret::new(NOTES_PASSPHRASE)]).unwrap();
    let web_notes = lab.proxmox("lab").notes(100).unwrap();
    assert!(
        web_notes.starts_with(
            "Web frontend, owned by team A.\nuser:\"admin\" encrypted_password:\"gAAAAA"
        )
    );
    let parsed = notes::parse(&web_notes);
    let cred = parsed.blocks[0].credential().unwrap();
    match &cred.password {
        notes::PasswordSource::Encrypted(t) => {
            assert_eq!(keyring.decrypt(t).unwrap().expose(), "S3cret")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        lab.proxmox("lab")
            .notes(108)
            .unwrap()
            .contains("pass:\"F1les!\"")
    );

    let mark = lab.request_mark();
    let second = cycle(&engine).await;
    assert_eq!(
        writes(&lab, mark),
        Vec::<String>::new(),
        "{:?}",
        second.summary
    );
    assert_eq!(second.summary.unchanged, 6);
}

#[tokio::test]
async fn a_cycle_costs_one_listing_per_cluster_and_one_tree_call() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    cycle(&engine).await;
    let mark = lab.request_mark();
    cycle(&engine).await;
    let reqs = lab.requests_since(mark);
    let count = |route: &str| reqs.iter().filter(|r| r.route == route).count();
    assert_eq!(
        count("GET /cluster/resources"),
        1,
        "{:#?}",
        lab.request_counts()
    );
    assert_eq!(
        count("GET /session/data/{ds}/connectionGroups/{id}/tree"),
        1
    );
    // Parameters are not read again while the state file vouches for them.
    assert_eq!(
        count("GET /session/data/{ds}/connections/{id}/parameters"),
        0
    );
}

#[tokio::test]
async fn an_unmanaged_connection_with_our_name_is_left_alone() {
    let mut seed = seed();
    seed.guacamole = seed.guacamole.connection(
        pve_guac_lab::guacamole::ConnectionSeed::new("admin@web01-rdp", "rdp")
            .identifier(50)
            .parameter("hostname", "198.51.100.99"),
    );
    let lab = lab(seed).await;
    let setup = config(&lab, SYNC);
    cycle(&engine(&setup)).await;
    let theirs = lab.guacamole().connection("50").unwrap();
    assert_eq!(theirs.parent, "ROOT");
    assert_eq!(theirs.parameters["hostname"], "198.51.100.99");
    assert_eq!(params(&lab, "admin@web01-rdp")["hostname"], "192.0.2.10");
}

#[tokio::test]
async fn note_edits_rename_and_password_change_update_the_same_connection() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    cycle(&engine).await;
    let id = conn_id(&lab, "admin@web01-rdp");

    let pve = lab.proxmox("lab");
    pve.set_notes(
        100,
        "user:\"admin\" pass:\"N3w-pass\" protos:\"rdp,ssh,vnc\" confName:\"{vmname} ({proto})\";",
    );
    let report = cycle(&engine).await;
    assert_eq!(
        (report.summary.created, report.summary.updated),
        (1, 2),
        "{:#?}",
        report.plan.actions
    );
    let renamed = lab.guacamole().connection(&id).unwrap();
    assert_eq!(renamed.name, "web01 (rdp)");
    assert_eq!(renamed.parameters["password"], "N3w-pass");
    assert!(managed_names(&lab, ROOT).contains(&"web01 (vnc)".to_owned()));
}

#[tokio::test]
async fn a_removed_block_is_deleted_and_a_vanished_guest_is_pruned() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    cycle(&engine).await;
    let pve = lab.proxmox("lab");
    pve.set_notes(100, "user:\"admin\" pass:\"S3cret\" protos:\"rdp\";");
    assert!(pve.remove_guest(200));
    let report = cycle(&engine).await;
    assert_eq!(report.summary.deleted, 2, "{:#?}", report.plan.actions);
    let names = managed_names(&lab, ROOT);
    assert!(!names.contains(&"admin@web01-ssh".to_owned()));
    assert!(!names.contains(&"root@ct-dns-ssh".to_owned()));
    assert!(names.contains(&"admin@web01-rdp".to_owned()));
}

#[tokio::test]
async fn a_vanished_guest_waits_for_the_grace_period() {
    let lab = lab(seed()).await;
    let setup = config(
        &lab,
        "  grouping: node\n  prune: {enabled: true, grace: 1h}",
    );
    let engine = engine(&setup);
    cycle(&engine).await;
    lab.proxmox("lab").remove_guest(200);
    let report = cycle(&engine).await;
    assert_eq!(report.summary.deleted, 0);
    assert!(managed_names(&lab, ROOT).contains(&"root@ct-dns-ssh".to_owned()));
    assert!(
        report.plan.kept[0].reason.contains("pruned after 3600s"),
        "{:?}",
        report.plan.kept
    );
}

#[tokio::test]
async fn offline_node_and_failing_listing_delete_nothing() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    cycle(&engine).await;
    let before = managed_names(&lab, ROOT);

    // pve3 goes offline: docker01 (on pve3) keeps its connection.
    lab.proxmox("lab").set_node_online("pve3", false);
    let mark = lab.request_mark();
    let report = cycle(&engine).await;
    assert_eq!(managed_names(&lab, ROOT), before);
    assert!(writes(&lab, mark).is_empty(), "{:?}", report.summary);

    // The listing fails while a guest is gone: no deletes that cycle.
    lab.proxmox("lab").set_node_online("pve3", true);
    lab.proxmox("lab").remove_guest(200);
    lab.faults("lab").add(
        FaultRule::error(500)
            .path_prefix("/api2/json/cluster/resources")
            .times(10),
    );
    let mark = lab.request_mark();
    let report = cycle(&engine).await;
    assert_eq!(managed_names(&lab, ROOT), before);
    assert!(writes(&lab, mark).is_empty(), "{:?}", report.summary);
    assert_eq!(
        report.summary.errors, 1,
        "an unobserved cluster is an error"
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("guest listing failed")),
        "{:?}",
        report.problems
    );
}

#[tokio::test]
async fn a_bad_block_keeps_the_old_connections_unchanged() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    cycle(&engine).await;
    let before = params(&lab, "admin@web01-ssh");
    lab.proxmox("lab").set_notes(
        100,
        "user:\"admin\" pass:\"changed\" protos:\"rdp,ssh\" ssh_port:\"99999\";",
    );
    let mark = lab.request_mark();
    let report = cycle(&engine).await;
    assert!(writes(&lab, mark).is_empty(), "{:#?}", report.plan.actions);
    assert_eq!(params(&lab, "admin@web01-ssh"), before);
    assert!(managed_names(&lab, ROOT).contains(&"admin@web01-rdp".to_owned()));
    let problem = report
        .problems
        .iter()
        .find(|p| p.contains("vmid 100"))
        .unwrap();
    assert!(problem.contains("key ssh_port"), "{problem}");
    assert!(!problem.contains("changed"), "{problem}");
}

#[tokio::test]
async fn a_digest_race_preserves_the_human_edit() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    let human = "Edited by a human meanwhile.\nuser:\"admin\" pass:\"Hum4n\" protos:\"rdp\";";
    lab.proxmox("lab").inject_digest_race(100, human);
    let report = cycle(&engine).await;
    assert_eq!(lab.proxmox("lab").notes(100).unwrap(), human);
    assert!(
        report
            .outcome
            .results
            .iter()
            .any(|r| format!("{r:?}").contains("digest_mismatch"))
    );
    // The next cycle migrates what the human wrote.
    cycle(&engine).await;
    let notes = lab.proxmox("lab").notes(100).unwrap();
    assert!(
        notes.starts_with(
            "Edited by a human meanwhile.\nuser:\"admin\" encrypted_password:\"gAAAAA"
        ),
        "{notes}"
    );
}

#[tokio::test]
async fn the_change_budget_is_respected_and_reported() {
    let lab = lab(seed()).await;
    let setup = config(
        &lab,
        &format!("{SYNC}\n  max_changes_per_cycle: 3\n  auto_encrypt: false")
            .replace("  auto_encrypt: true\n", ""),
    );
    let engine = engine(&setup);
    let first = cycle(&engine).await;
    let writes_made = first.summary.created + first.summary.groups_created;
    assert_eq!(writes_made, 3, "{:?}", first.summary);
    assert!(first.summary.pending > 0);
    let mut cycles = 1;
    while cycle(&engine).await.summary.pending > 0 {
        cycles += 1;
        assert!(cycles < 10, "never converged");
    }
    assert_eq!(managed_names(&lab, ROOT), EXPECTED);
}

#[tokio::test]
async fn guacamole_1_5_converges_with_per_object_calls() {
    let mut seed = seed();
    seed.guacamole = GuacamoleSeed::example().version(GuacVersion::V1_5);
    let lab = lab(seed).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    let mark = lab.request_mark();
    cycle(&engine).await;
    assert_eq!(managed_names(&lab, ROOT), EXPECTED);
    let posts = lab
        .requests_since(mark)
        .into_iter()
        .filter(|r| {
            r.server == "guacamole" && r.method == "POST" && r.path.ends_with("/connections")
        })
        .count();
    assert_eq!(posts, 6);
    let mark = lab.request_mark();
    cycle(&engine).await;
    assert!(writes(&lab, mark).is_empty());
}

#[tokio::test]
async fn guacamole_1_5_removes_with_one_patch_per_directory() {
    let mut seed = seed();
    seed.guacamole = GuacamoleSeed::example().version(GuacVersion::V1_5);
    let lab = lab(seed).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    cycle(&engine).await;
    let pve = lab.proxmox("lab");
    pve.set_notes(100, "user:\"admin\" pass:\"S3cret\" protos:\"rdp\";");
    assert!(pve.remove_guest(200));
    let mark = lab.request_mark();
    let report = cycle(&engine).await;
    assert_eq!(report.summary.deleted, 2, "{:#?}", report.plan.actions);
    assert_eq!(report.summary.errors, 0, "{:#?}", report.outcome);
    let removals: Vec<(String, usize)> = lab
        .requests_since(mark)
        .into_iter()
        .filter(|r| r.server == "guacamole" && r.is_write())
        .filter(|r| r.method != "PUT" && r.json != Some(serde_json::json!([])))
        .map(|r| {
            let n = r
                .json
                .as_ref()
                .and_then(|j| j.as_array())
                .map_or(0, Vec::len);
            (r.route, n)
        })
        .collect();
    assert_eq!(
        removals,
        [("PATCH /session/data/{ds}/connections".to_owned(), 2)],
        "no DELETE per connection"
    );
    let names = managed_names(&lab, ROOT);
    assert!(!names.contains(&"admin@web01-ssh".to_owned()));
    assert!(!names.contains(&"root@ct-dns-ssh".to_owned()));
}

#[tokio::test]
async fn an_edited_note_is_written_without_reading_the_parameters_first() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    cycle(&engine).await;
    lab.proxmox("lab").set_notes(
        100,
        "Web frontend, owned by team A.\nuser:\"admin\" pass:\"N3w-pass\" protos:\"rdp,ssh\";",
    );
    let reads = |mark| {
        lab.requests_since(mark)
            .into_iter()
            .filter(|r| r.method == "GET" && r.path.ends_with("/parameters"))
            .count()
    };
    // A dry run still reads them, to show which parameters differ.
    let mark = lab.request_mark();
    let dry = engine
        .cycle(pve_guac_sync::reconcile::cycle::Mode::DryRun, false)
        .await
        .unwrap();
    assert_eq!(reads(mark), 2);
    let described: Vec<String> = dry
        .plan
        .actions
        .iter()
        .map(|a| a.action.describe())
        .collect();
    assert!(
        described
            .iter()
            .filter(|d| d.contains("parameters password"))
            .count()
            == 2,
        "{described:#?}"
    );
    // Applying needs no read: the update carries every parameter anyway.
    let mark = lab.request_mark();
    let report = cycle(&engine).await;
    assert_eq!(report.summary.updated, 2, "{:#?}", report.plan.actions);
    assert_eq!(reads(mark), 0);
    assert_eq!(params(&lab, "admin@web01-rdp")["password"], "N3w-pass");
    assert_eq!(params(&lab, "admin@web01-ssh")["password"], "N3w-pass");
    let mark = lab.request_mark();
    cycle(&engine).await;
    assert!(changes(&lab, mark).is_empty());
}

#[tokio::test]
async fn guacamole_1_6_writes_in_patch_batches() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let mark = lab.request_mark();
    cycle(&engine(&setup)).await;
    let guac_writes: Vec<_> = lab
        .requests_since(mark)
        .into_iter()
        .filter(|r| r.server == "guacamole" && r.is_write())
        .map(|r| {
            let batch = r.json.as_ref().and_then(|j| j.as_array()).map(|a| a.len());
            (r.route, batch)
        })
        .collect();
    // Root group, the version probe (an empty PATCH), then one batch of
    // sub-groups and one of connections.
    let patch = |dir: &str, n| (format!("PATCH /session/data/{{ds}}/{dir}"), Some(n));
    assert_eq!(
        guac_writes,
        [
            ("POST /session/data/{ds}/connectionGroups".to_owned(), None),
            patch("connections", 0),
            patch("connectionGroups", 2),
            patch("connections", 6),
        ]
    );
}

#[tokio::test]
async fn two_clusters_sync_into_one_guacamole() {
    let mut seed = LabSeed::with_clusters(vec![
        ClusterSeed::example("east"),
        ClusterSeed::example("west"),
    ]);
    seed.guacamole = GuacamoleSeed::example();
    let lab = lab(seed).await;
    let setup = config(&lab, "  grouping: cluster");
    let engine = engine(&setup);
    let report = cycle(&engine).await;
    assert_eq!(report.summary.created, 12, "{:?}", report.problems);
    let g = lab.guacamole();
    for cluster in ["east", "west"] {
        let group = g.groups().into_iter().find(|x| x.name == cluster).unwrap();
        let n = g
            .connections()
            .into_iter()
            .filter(|c| c.parent == group.identifier)
            .count();
        assert_eq!(n, 6, "{cluster}");
    }
    let mark = lab.request_mark();
    cycle(&engine).await;
    assert!(writes(&lab, mark).is_empty());
}

#[tokio::test]
async fn hand_edits_in_guacamole_are_put_back() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    cycle(&engine).await;
    let id = conn_id(&lab, "admin@web01-rdp");
    let g = lab.guacamole();
    // Name and place are visible in every cycle's tree: a rename inside the
    // group, and a move out of it (recognised by its id, name and protocol).
    g.rename_connection(&id, "renamed by hand");
    assert_eq!(cycle(&engine).await.summary.updated, 1);
    g.move_connection(&id, "ROOT");
    assert_eq!(cycle(&engine).await.summary.updated, 1);
    assert_ne!(g.connection(&id).unwrap().parent, "ROOT");
    // Renamed *and* moved out: no longer recognisably ours, so it is left
    // where it is and a new connection takes its place.
    g.rename_connection(&id, "mine now");
    g.move_connection(&id, "ROOT");
    let report = cycle(&engine).await;
    assert_eq!((report.summary.created, report.summary.updated), (1, 0));
    let theirs = g.connection(&id).unwrap();
    assert_eq!(
        (theirs.name.as_str(), theirs.parent.as_str()),
        ("mine now", "ROOT")
    );
    let id = conn_id(&lab, "admin@web01-rdp");
    // A parameter edit is found by the periodic full verification.
    g.set_parameter(&id, "hostname", Some("198.51.100.66"));
    assert_eq!(cycle(&engine).await.summary.updated, 0);
    let report = engine
        .cycle(pve_guac_sync::reconcile::cycle::Mode::Apply, true)
        .await
        .unwrap();
    assert!(
        report.plan.actions[0].reason.starts_with("drift"),
        "{:?}",
        report.plan.actions
    );
    assert_eq!(report.summary.updated, 1, "{:#?}", report.plan.actions);
    let c = g.connection(&id).unwrap();
    assert_eq!(c.name, "admin@web01-rdp");
    assert_eq!(c.parameters["hostname"], "192.0.2.10");
    assert_ne!(c.parent, "ROOT");
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let lab = lab(seed()).await;
    let setup = config(&lab, &format!("{SYNC}\n  dry_run: true"));
    let engine = engine(&setup);
    let mark = lab.request_mark();
    let report = engine
        .cycle(pve_guac_sync::reconcile::cycle::Mode::DryRun, false)
        .await
        .unwrap();
    assert!(writes(&lab, mark).is_empty());
    assert!(report.summary.dry_run);
    assert!(report.summary.pending >= 6);
    assert!(managed_names(&lab, ROOT).is_empty());
}

#[tokio::test]
async fn excluding_a_guest_removes_its_connections_and_nothing_else() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    cycle(&engine(&setup)).await;
    // The operator excludes the `web` tag (web01) and reloads.
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let text = text.replace("sync:\n", "sync:\n  exclude: {tags: [web]}\n");
    std::fs::write(&setup.config, text).unwrap();
    let report = cycle(&engine(&setup)).await;
    assert_eq!(report.summary.deleted, 2, "{:#?}", report.plan.actions);
    assert!(
        report
            .plan
            .actions
            .iter()
            .all(|a| a.reason.starts_with("guest no longer selected"))
    );
    let names = managed_names(&lab, ROOT);
    assert_eq!(names.len(), 4);
    assert!(!names.iter().any(|n| n.contains("web01")));
}

#[tokio::test]
async fn a_connection_deleted_by_hand_is_created_again_and_forgotten() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    cycle(&engine).await;
    let old = conn_id(&lab, "admin@web01-rdp");
    lab.guacamole().delete_connection(&old);
    let report = cycle(&engine).await;
    assert_eq!(report.summary.created, 1);
    let new = conn_id(&lab, "admin@web01-rdp");
    assert_ne!(new, old);
    let state = std::fs::read_to_string(setup.dir.path().join("state/state.json")).unwrap();
    assert!(state.contains(&format!("\"id\": \"{new}\"")), "{state}");
    assert!(!state.contains(&format!("\"id\": \"{old}\"")), "{state}");
    assert!(!state.contains("S3cret"));
}

#[tokio::test]
async fn an_update_keeps_the_attributes_an_operator_set() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    cycle(&engine).await;
    let id = conn_id(&lab, "admin@web01-rdp");
    let g = lab.guacamole();
    assert!(g.set_attributes(
        &id,
        &[("guacd-hostname", "guacd-dmz"), ("max-connections", "2")]
    ));
    lab.proxmox("lab")
        .set_notes(100, "user:\"admin\" pass:\"N3w\" protos:\"rdp,ssh\";");
    assert_eq!(cycle(&engine).await.summary.updated, 2);
    let attrs = g.connection(&id).unwrap().attributes;
    assert_eq!(attrs["guacd-hostname"].as_deref(), Some("guacd-dmz"));
    assert_eq!(attrs["max-connections"].as_deref(), Some("2"));
    assert_eq!(g.parameters(&id).unwrap()["password"], "N3w");
    let mark = lab.request_mark();
    cycle(&engine).await;
    assert!(writes(&lab, mark).is_empty());
}

/// Guests 100 and 101 name their ssh connections `before`, then `after`:
/// the same two connections must carry the new names after one cycle, with
/// no error and nothing left to write.
async fn rename_two(version: GuacVersion, before: [&str; 2], after: [&str; 2]) {
    let mut seed = seed();
    seed.guacamole = GuacamoleSeed::example().version(version);
    let lab = lab(seed).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    let pve = lab.proxmox("lab");
    let name =
        |vmid, n: &str| pve.set_notes(vmid, &format!("user:a pass:p protos:ssh confName:{n};"));
    name(100, before[0]);
    name(101, before[1]);
    cycle(&engine).await;
    let ids = [conn_id(&lab, before[0]), conn_id(&lab, before[1])];
    name(100, after[0]);
    name(101, after[1]);
    let report = cycle(&engine).await;
    assert_eq!(report.summary.errors, 0, "{:#?}", report.outcome);
    assert_eq!([conn_id(&lab, after[0]), conn_id(&lab, after[1])], ids);
    let mark = lab.request_mark();
    cycle(&engine).await;
    assert!(writes(&lab, mark).is_empty());
}

#[tokio::test]
async fn two_connections_swapping_names_converge_in_one_cycle_on_1_6() {
    rename_two(GuacVersion::V1_6, ["alpha", "beta"], ["beta", "alpha"]).await;
}

#[tokio::test]
async fn two_connections_swapping_names_converge_in_one_cycle_on_1_5() {
    rename_two(GuacVersion::V1_5, ["alpha", "beta"], ["beta", "alpha"]).await;
}

#[tokio::test]
async fn a_protocol_changed_by_hand_is_put_back() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    cycle(&engine).await;
    let id = conn_id(&lab, "admin@web01-rdp");
    lab.guacamole().set_protocol(&id, "vnc");
    let report = engine
        .cycle(pve_guac_sync::reconcile::cycle::Mode::Apply, true)
        .await
        .unwrap();
    assert_eq!(report.summary.updated, 1, "{:#?}", report.plan.actions);
    assert_eq!(lab.guacamole().connection(&id).unwrap().protocol, "rdp");
}

#[tokio::test]
async fn a_non_admin_account_never_deletes_groups_it_may_not_fully_see() {
    let mut seed = seed();
    seed.guacamole = seed.guacamole.user(
        pve_guac_lab::guacamole::UserSeed::new("sync", "sync-pw")
            .system_permission("CREATE_CONNECTION")
            .system_permission("CREATE_CONNECTION_GROUP"),
    );
    let lab = lab(seed).await;
    let setup = config(&lab, SYNC);
    let text = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        text.replace(
            "username: guacadmin\n  password: guacadmin",
            "username: sync\n  password: sync-pw",
        ),
    )
    .unwrap();
    let engine = engine(&setup);
    assert_eq!(cycle(&engine).await.summary.created, 6);
    // docker01 is the only guest on pve3: its group empties.
    lab.proxmox("lab").remove_guest(106);
    let report = cycle(&engine).await;
    assert_eq!(
        (report.summary.deleted, report.summary.groups_deleted),
        (1, 0)
    );
    assert!(lab.guacamole().groups().iter().any(|g| g.name == "pve3"));
    let mark = lab.request_mark();
    cycle(&engine).await;
    assert!(writes(&lab, mark).is_empty());
}

#[tokio::test]
async fn an_administrator_removes_groups_left_empty() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    cycle(&engine).await;
    lab.proxmox("lab").remove_guest(106);
    let report = cycle(&engine).await;
    assert_eq!(
        (report.summary.deleted, report.summary.groups_deleted),
        (1, 1)
    );
    assert!(!lab.guacamole().groups().iter().any(|g| g.name == "pve3"));
}

#[tokio::test]
async fn a_state_file_from_another_guacamole_never_takes_over_foreign_objects() {
    // Cycle against one Guacamole, then point the same state at a fresh one
    // whose hand-made connections happen to reuse the ids.
    let first = lab(seed()).await;
    let setup = config(&first, SYNC);
    cycle(&engine(&setup)).await;
    let state = std::fs::read(setup.dir.path().join("state/state.json")).unwrap();

    let mut seed = seed();
    for i in 3..=12u64 {
        seed.guacamole = seed.guacamole.connection(
            pve_guac_lab::guacamole::ConnectionSeed::new(format!("someone-else-{i}"), "rdp")
                .identifier(i)
                .parameter("hostname", "198.51.100.200"),
        );
    }
    let second = lab(seed).await;
    let setup2 = config(&second, SYNC);
    plant_state(&setup2, &state);
    let before: Vec<_> = second
        .guacamole()
        .connections()
        .into_iter()
        .filter(|c| c.name.starts_with("someone-else"))
        .collect();
    cycle(&engine(&setup2)).await;
    for c in before {
        assert_eq!(second.guacamole().connection(&c.identifier).unwrap(), c);
    }
    assert_eq!(managed_names(&second, ROOT), EXPECTED);
}

#[tokio::test]
async fn an_unreadable_config_anywhere_in_the_cluster_stops_every_delete() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    cycle(&engine).await;
    lab.proxmox("lab")
        .set_notes(100, "user:\"admin\" pass:\"S3cret\" protos:\"rdp\";");
    lab.faults("lab").add(
        FaultRule::error(500)
            .path_prefix("/api2/json/nodes/pve1/qemu/101/config")
            .times(10),
    );
    let report = cycle(&engine).await;
    assert_eq!(report.summary.deleted, 0, "{:#?}", report.plan.actions);
    assert!(managed_names(&lab, ROOT).contains(&"admin@web01-ssh".to_owned()));
}

#[tokio::test]
async fn a_held_guest_keeps_its_connection_even_when_state_is_lost() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    cycle(&engine(&setup)).await;
    let id = conn_id(&lab, "admin@web01-rdp");
    let pve = lab.proxmox("lab");
    // web01 gets a bad block (held); db01 now wants web01's connection name.
    pve.set_notes(
        100,
        "user:\"admin\" pass:\"x\" protos:\"rdp\" rdp_port:\"0\";",
    );
    pve.set_notes(
        101,
        "user:\"admin\" pass:\"y\" protos:\"rdp\" confName:\"admin@web01-rdp\";",
    );
    std::fs::remove_file(setup.dir.path().join("state/state.json")).unwrap();
    cycle(&engine(&setup)).await;
    let c = lab.guacamole().connection(&id).unwrap();
    assert_eq!(
        c.parameters["hostname"], "192.0.2.10",
        "web01's connection kept"
    );
}

#[tokio::test]
async fn a_chain_of_renames_converges_in_one_cycle() {
    rename_two(GuacVersion::V1_6, ["web01", "db01"], ["db01", "db02"]).await;
}

#[tokio::test]
async fn a_chain_of_renames_converges_in_one_cycle_on_1_5() {
    rename_two(GuacVersion::V1_5, ["web01", "db01"], ["db01", "db02"]).await;
}

#[tokio::test]
async fn a_new_user_under_the_same_name_updates_the_connection() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    let pve = lab.proxmox("lab");
    pve.set_notes(100, "user:alice pass:p protos:ssh confName:web01;");
    cycle(&engine).await;
    let id = conn_id(&lab, "web01");
    pve.set_notes(100, "user:bob pass:p protos:ssh confName:web01;");
    let report = cycle(&engine).await;
    assert_eq!(report.summary.errors, 0, "{:#?}", report.outcome);
    assert_eq!(
        conn_id(&lab, "web01"),
        id,
        "kept, not deleted and re-created"
    );
    assert_eq!(lab.guacamole().parameters(&id).unwrap()["username"], "bob");
    let mark = lab.request_mark();
    cycle(&engine).await;
    assert!(writes(&lab, mark).is_empty());
}

#[tokio::test]
async fn a_failed_move_keeps_the_group_it_was_leaving() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    cycle(&engine).await;
    let id = conn_id(&lab, "viewer@docker01-vnc");
    // docker01 is alone in pve3; its block now asks for another group.
    let notes = lab.proxmox("lab").notes(106).unwrap();
    lab.proxmox("lab").set_notes(
        106,
        &notes.replace("protos:\"vnc\"", "protos:\"vnc\" group:\"Elsewhere\""),
    );
    let g = lab.guacamole();
    let faults = lab.faults("guacamole");
    let patch = faults.add(
        FaultRule::error(500)
            .method("PATCH")
            .path_contains("/connections"),
    );
    let put = faults.add(
        FaultRule::error(500)
            .method("PUT")
            .path_contains("/connections/"),
    );
    let report = cycle(&engine).await;
    assert!(report.summary.errors > 0, "{:#?}", report.outcome);
    // The move failed, so deleting pve3 (recursive) would have taken the
    // connection with it: both are still there.
    assert!(g.connection(&id).is_some());
    assert!(g.groups().iter().any(|x| x.name == "pve3"));
    faults.remove(patch);
    faults.remove(put);
    let report = cycle(&engine).await;
    assert_eq!(
        (report.summary.updated, report.summary.groups_deleted),
        (1, 1)
    );
    let moved = g.connection(&id).unwrap();
    assert_eq!(g.group(&moved.parent).unwrap().name, "Elsewhere");
    let mark = lab.request_mark();
    cycle(&engine).await;
    assert!(writes(&lab, mark).is_empty());
}

#[tokio::test]
async fn an_unknown_setting_is_left_out_with_a_warning_and_the_connection_is_made() {
    let lab = lab(seed()).await;
    lab.proxmox("lab").set_notes(
        100,
        "user:\"admin\" pass:\"S3cret\" protos:\"rdp\" rdp_settings:\"ignore-cert=true,old-name-x=1\";",
    );
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    let report = cycle(&engine).await;
    let p = params(&lab, "admin@web01-rdp");
    assert_eq!(p["ignore-cert"], "true");
    assert!(!p.contains_key("old-name-x"), "{p:?}");
    assert!(
        report.problems.iter().any(|m| m.contains(
            "block 1 (line 1), key rdp_settings: warning: setting 'old-name-x' is not a rdp parameter; left out"
        )),
        "{:#?}",
        report.problems
    );
    // Denied stays an error for the block: nothing is made from it.
    lab.proxmox("lab").set_notes(
        100,
        "user:\"other\" pass:\"S3cret\" protos:\"rdp\" rdp_settings:\"drive-path=/srv\";",
    );
    let report = cycle(&engine).await;
    assert!(!managed_names(&lab, ROOT).contains(&"other@web01-rdp".to_owned()));
    assert!(
        report
            .problems
            .iter()
            .any(|m| m.contains("setting 'drive-path' is not allowed in notes")),
        "{:#?}",
        report.problems
    );
}

/// A config answer that is `200` but not a config (no digest, or notes of
/// the wrong type) is a failed read: nothing deleted, nothing written.
async fn malformed_config_answer(body: &str) {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    cycle(&engine).await;
    let before = managed_names(&lab, ROOT);
    let mut rule = pve_guac_lab::FaultRule::error(200)
        .method("GET")
        .path_contains("/qemu/100/config");
    if let pve_guac_lab::FaultAction::Error {
        body: b,
        content_type,
        ..
    } = &mut rule.action
    {
        *b = Some(body.to_owned());
        *content_type = Some("application/json;charset=UTF-8".into());
    }
    lab.faults("lab").add(rule);
    let mark = lab.request_mark();
    let report = cycle(&engine).await;
    assert_eq!(
        managed_names(&lab, ROOT),
        before,
        "{:#?}",
        report.plan.actions
    );
    assert_eq!(report.summary.deleted, 0);
    assert_eq!(changes(&lab, mark), Vec::<String>::new());
    assert!(report.summary.errors > 0, "an incomplete read is an error");
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("config not readable")),
        "{:#?}",
        report.problems
    );
}

#[tokio::test]
async fn a_config_answer_without_digest_deletes_nothing() {
    malformed_config_answer(r#"{"data":{}}"#).await;
}

#[tokio::test]
async fn a_config_answer_with_non_string_notes_deletes_nothing() {
    malformed_config_answer(r#"{"data":{"description":["x"],"digest":"5c1e9d7a0b6f4a0e2c3d4b5a69788796a5b4c3d2","name":"web01"}}"#).await;
}

#[tokio::test]
async fn a_stale_state_never_reclaims_an_outside_connection_that_reuses_an_id() {
    stale_state_meets_a_rebuilt_guacamole(false).await;
}

#[tokio::test]
async fn an_unbound_state_reclaims_outside_only_what_still_matches_its_fingerprint() {
    // Without the binding (a format-1 file) the fingerprint alone decides.
    stale_state_meets_a_rebuilt_guacamole(true).await;
}

async fn stale_state_meets_a_rebuilt_guacamole(drop_binding: bool) {
    // A rebuilt Guacamole (ids restart) holds a hand-made `Servers/NAME`
    // with the id the old state recorded for NAME: it must stay theirs.
    let first = lab(seed()).await;
    let setup = config(&first, SYNC);
    cycle(&engine(&setup)).await;
    let old_id: u64 = conn_id(&first, "admin@web01-ssh").parse().unwrap();
    let mut state = std::fs::read(setup.dir.path().join("state/state.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&state).unwrap();
    assert!(json["guacamole"]["root_group_id"].is_string(), "{json:#}");
    if drop_binding {
        json.as_object_mut().unwrap().remove("guacamole");
        state = serde_json::to_vec(&json).unwrap();
    }

    let mut seed = seed();
    seed.guacamole = seed
        .guacamole
        .connection_group(
            pve_guac_lab::guacamole::ConnectionGroupSeed::new("Servers").identifier(50),
        )
        .connection(
            pve_guac_lab::guacamole::ConnectionSeed::new("admin@web01-ssh", "ssh")
                .identifier(old_id)
                .parent("50")
                .parameter("hostname", "198.51.100.7")
                .parameter("port", "22")
                .parameter("username", "admin")
                .parameter("password", "theirs"),
        );
    let second = lab(seed).await;
    let setup2 = config(&second, SYNC);
    plant_state(&setup2, &state);
    let theirs = second.guacamole().connection(&old_id.to_string()).unwrap();
    let report = cycle(&engine(&setup2)).await;
    assert_eq!(
        second.guacamole().connection(&old_id.to_string()).unwrap(),
        theirs,
        "{:#?}",
        report.plan.actions
    );
    assert_eq!(managed_names(&second, ROOT), EXPECTED);
}

#[tokio::test]
async fn old_salted_fingerprints_are_re_verified_once_without_writes() {
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    cycle(&engine).await;
    let path = setup.dir.path().join("state/state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    // The fingerprint is keyed (HMAC): nothing in the file lets anyone
    // test a password guess offline.
    assert!(state.get("salt").is_none(), "{state:#}");
    assert_eq!(state["version"], 2);
    for (_, owned) in state["connections"].as_object().unwrap() {
        assert!(
            owned["fingerprint"]
                .as_str()
                .unwrap()
                .starts_with("hmac-sha256:"),
            "{owned}"
        );
    }
    // The same file as the previous format wrote it: version 1, a salt and
    // salted SHA-256 fingerprints.
    state["version"] = 1.into();
    state["salt"] = "00112233445566778899aabbccddeeff".into();
    for (_, owned) in state["connections"].as_object_mut().unwrap() {
        owned["fingerprint"] = "ab".repeat(32).into();
    }
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();

    let reads = |mark| {
        lab.requests_since(mark)
            .into_iter()
            .filter(|r| r.method == "GET" && r.path.ends_with("/parameters"))
            .count()
    };
    let mark = lab.request_mark();
    let report = cycle(&engine).await;
    assert_eq!(
        changes(&lab, mark),
        Vec::<String>::new(),
        "{:#?}",
        report.plan.actions
    );
    assert_eq!(
        reads(mark),
        6,
        "each old fingerprint is verified by one read"
    );
    assert_eq!(report.summary.unchanged, 6);
    let mark = lab.request_mark();
    cycle(&engine).await;
    assert_eq!(reads(mark), 0, "verified once, trusted after");
    assert!(changes(&lab, mark).is_empty());
}

#[tokio::test]
async fn lost_ownership_heals_while_a_guest_is_held() {
    // State lost (or a save failed after the writes) while one guest has a
    // bad block: the others' connections sit exactly where creates would go
    // and match what the daemon would write, so they are adopted, not
    // re-created into duplicate_name failures every cycle.
    let lab = lab(seed()).await;
    let setup = config(&lab, SYNC);
    let engine = engine(&setup);
    cycle(&engine).await;
    let ids: Vec<String> = EXPECTED.iter().map(|n| conn_id(&lab, n)).collect();
    let pve = lab.proxmox("lab");
    let notes = pve.notes(101).unwrap();
    pve.set_notes(101, &notes.replace("ssh_port", "ssh_port:\"0\" x_port"));
    std::fs::remove_file(setup.dir.path().join("state/state.json")).unwrap();
    let mark = lab.request_mark();
    let report = cycle(&engine).await;
    assert_eq!(
        changes(&lab, mark),
        Vec::<String>::new(),
        "{:#?}",
        report.plan.actions
    );
    assert_eq!(report.summary.errors, 0, "{:#?}", report.outcome);
    assert_eq!(report.summary.unchanged, 5, "{:#?}", report.plan);
    assert_eq!(
        EXPECTED
            .iter()
            .map(|n| conn_id(&lab, n))
            .collect::<Vec<_>>(),
        ids
    );
    // Ownership is recorded again: the next cycle reads nothing more.
    let mark = lab.request_mark();
    let report = cycle(&engine).await;
    assert_eq!(report.summary.unchanged, 5);
    assert!(changes(&lab, mark).is_empty());
}
