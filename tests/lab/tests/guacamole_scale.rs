//! The Guacamole emulator must not become the bottleneck with thousands of
//! connections: list, tree, create and batch PATCH stay linear. Bounds are
//! generous (debug builds on a loaded 2-core machine) but catch O(n²).

mod guacamole_support;

use std::time::{Duration, Instant};

use guacamole_support::Guac;
use pve_guac_lab::guacamole::{GuacamoleSeed, UserSeed};
use serde_json::json;

const GROUPS: usize = 50;
const CONNECTIONS: usize = 5000;

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

#[test]
fn thousands_of_connections_stay_fast_for_a_non_admin_sync_account() {
    let g = Guac::new(
        GuacamoleSeed::default()
            .user(UserSeed::admin("guacadmin", "guacadmin"))
            .user(
                UserSeed::new("sync", "pw")
                    .system_permission("CREATE_CONNECTION")
                    .system_permission("CREATE_CONNECTION_GROUP"),
            ),
    );
    // The recommended least-privilege account: every object it creates adds
    // creator grants, so its permission set grows with the tree.
    let t = g.login("sync", "pw");
    let groups: Vec<String> = (0..GROUPS)
        .map(|i| g.create_group(&t, &format!("node-{i}"), "ROOT"))
        .collect();
    let (_, create_all) = timed(|| {
        for i in 0..CONNECTIONS {
            let parent = &groups[i % GROUPS];
            let r = g.post(
                &t,
                "/connections",
                &json!({
                    "name": format!("vm-{i}"), "parentIdentifier": parent, "protocol": "rdp",
                    "parameters": {"hostname": format!("10.0.{}.{}", i / 250, i % 250), "port": "3389"},
                    "attributes": {},
                }),
            );
            assert_eq!(r.status, 200);
        }
    });
    let per_create = create_all / CONNECTIONS as u32;

    let (list, list_time) = timed(|| g.get(&t, "/connections"));
    assert_eq!(list.json().as_object().unwrap().len(), CONNECTIONS);
    let (tree, tree_time) = timed(|| g.get(&t, "/connectionGroups/ROOT/tree"));
    let tree = tree.json();
    assert_eq!(
        tree["childConnectionGroups"].as_array().unwrap().len(),
        GROUPS
    );
    let (_, self_time) = timed(|| g.get(&t, "/self/effectivePermissions"));

    // A 1.6 batch PATCH (atomic: works on a copy of the database).
    let batch: Vec<_> = (0..100)
        .map(|i| {
            json!({"op": "add", "path": "/", "value": {
            "name": format!("batch-{i}"), "parentIdentifier": groups[0], "protocol": "ssh",
            "parameters": {"hostname": "h"}, "attributes": {}}})
        })
        .collect();
    let (r, patch_time) = timed(|| g.patch(&t, "/connections", &json!(batch)));
    assert_eq!(r.status, 200, "{}", r.text());

    // Many small reads: the sustained request rate of the emulator core.
    let n = 2000;
    let (_, reads) = timed(|| {
        for i in 0..n {
            let id = (i % CONNECTIONS) + 1;
            assert_eq!(g.get(&t, &format!("/connections/{id}")).status, 200);
        }
    });
    let rate = n as f64 / reads.as_secs_f64();
    eprintln!(
        "guacamole scale: {CONNECTIONS} connections; create {per_create:?}/req, list {list_time:?}, \
         tree {tree_time:?}, effectivePermissions {self_time:?}, 100-entry PATCH {patch_time:?}, \
         single GET {rate:.0} req/s (handler only, debug build)"
    );
    assert!(
        per_create < Duration::from_millis(20),
        "create {per_create:?}"
    );
    assert!(list_time < Duration::from_secs(2), "list {list_time:?}");
    assert!(tree_time < Duration::from_secs(2), "tree {tree_time:?}");
    assert!(patch_time < Duration::from_secs(3), "patch {patch_time:?}");
    assert!(rate > 200.0, "single GET rate {rate:.0}/s");
}
