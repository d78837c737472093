//! The pure desire stage: notes + addresses + configuration → the wish.

use pve_guac_sync::config::WolSettings;
use pve_guac_sync::config::{Filter, Grouping, Selector};
use pve_guac_sync::crypto::Keyring;
use pve_guac_sync::discovery::{AddressEvidence, DiscoveryStep};
use pve_guac_sync::notes::NotesPolicy;
use pve_guac_sync::reconcile::desire::*;
use pve_guac_sync::reconcile::model::{GuestKey, GuestKind, HoldReason};
use pve_guac_sync::secret::Secret;

fn guest(vmid: u32, notes: &str, address: Option<&str>) -> GuestObservation {
    GuestObservation {
        key: GuestKey {
            cluster: "lab".into(),
            vmid,
        },
        kind: GuestKind::Qemu,
        node: "pve1".into(),
        name: format!("web{vmid}"),
        status: "running".into(),
        template: false,
        tags: vec!["prod".into(), "web".into()],
        pool: Some("team-a".into()),
        config: ConfigObservation::Read(GuestConfigFacts {
            notes: notes.into(),
            digest: "d".repeat(40),
            primary_mac: Some("BC:24:11:00:00:01".into()),
            agent_enabled: true,
            locked: false,
        }),
        address: match address {
            Some(a) => AddressEvidence::Found {
                address: a.parse().unwrap(),
                source: "agent",
            },
            None => AddressEvidence::unknown("agent not running"),
        },
        uptime: Some(100),
        lock: None,
        ha_managed: false,
        discovery: DiscoveryStep::Asked,
    }
}

struct Fixture {
    policy: NotesPolicy,
    keyring: Keyring,
    selector: Selector,
    clusters: Vec<String>,
    wol: WolSettings,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            policy: NotesPolicy::default(),
            keyring: Keyring::new(&[Secret::new("correct horse battery staple")]).unwrap(),
            selector: Selector::default(),
            clusters: vec!["lab".into()],
            wol: WolSettings::default(),
        }
    }

    fn settings(&self, grouping: Grouping, auto_encrypt: bool) -> DesireSettings<'_> {
        DesireSettings {
            policy: &self.policy,
            keyring: Some(&self.keyring),
            grouping,
            selector: &self.selector,
            hostname: "daemonhost",
            auto_encrypt,
            clusters: &self.clusters,
            wol: &self.wol,
        }
    }
}

fn cluster(guests: Vec<GuestObservation>) -> Vec<ClusterObservation> {
    vec![ClusterObservation {
        name: "lab".into(),
        complete: true,
        guests,
        errors: vec![],
    }]
}

#[test]
fn each_protocol_of_a_block_is_one_connection_with_full_parameters() {
    let f = Fixture::new();
    let obs = cluster(vec![guest(
        101,
        "Owner: ops\nuser:\"admin\" pass:\"S3cret\" protos:\"rdp,ssh\" rdp_settings:\"ignore-cert=true\";",
        Some("192.0.2.10"),
    )]);
    let want = desire(&obs, &f.settings(Grouping::Node, false));
    assert!(want.held.is_empty(), "{:?}", want.problems);
    let names: Vec<_> = want.connections.values().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["admin@web101-rdp", "admin@web101-ssh"]);
    let rdp = want.connections.values().next().unwrap();
    assert_eq!(rdp.group, ["pve1"]);
    let wire = rdp.params.to_wire();
    assert_eq!(wire["hostname"], "192.0.2.10");
    assert_eq!(wire["port"], "3389");
    assert_eq!(wire["username"], "admin");
    assert_eq!(wire["password"], "S3cret");
    assert_eq!(wire["ignore-cert"], "true");
    let ssh = want.connections.values().nth(1).unwrap();
    assert_eq!(ssh.params.to_wire()["port"], "22");
    assert!(!ssh.params.to_wire().contains_key("ignore-cert"));
    // Secrets never print.
    let printed = format!("{want:?}");
    assert!(!printed.contains("S3cret"), "{printed}");
}

#[test]
fn grouping_follows_configuration_and_group_key_wins() {
    let f = Fixture::new();
    let notes = "user:a pass:p protos:ssh; user:b pass:p protos:ssh group:\"Lab/Web\";";
    for (grouping, expect) in [
        (Grouping::None, vec![]),
        (Grouping::Node, vec!["pve1"]),
        (Grouping::Pool, vec!["team-a"]),
        (Grouping::Tag, vec!["prod"]),
        (Grouping::Cluster, vec!["lab"]),
    ] {
        let want = desire(
            &cluster(vec![guest(101, notes, Some("192.0.2.10"))]),
            &f.settings(grouping, false),
        );
        let groups: Vec<_> = want.connections.values().map(|c| c.group.clone()).collect();
        assert_eq!(groups[0], expect, "{grouping:?}");
        assert_eq!(groups[1], ["Lab", "Web"]);
    }
}

#[test]
fn unknown_address_holds_the_guest_but_host_key_needs_no_discovery() {
    let f = Fixture::new();
    let obs = cluster(vec![
        guest(101, "user:a pass:p protos:rdp;", None),
        guest(102, "user:a pass:p protos:rdp host:192.0.2.99;", None),
    ]);
    let want = desire(&obs, &f.settings(Grouping::None, false));
    assert_eq!(
        want.held.get(&GuestKey {
            cluster: "lab".into(),
            vmid: 101
        }),
        Some(&HoldReason::AddressUnknown)
    );
    assert_eq!(want.connections.len(), 1);
    let c = want.connections.values().next().unwrap();
    assert_eq!(c.params.to_wire()["hostname"], "192.0.2.99");
}

#[test]
fn a_bad_block_holds_the_guest_and_the_good_blocks_still_sync() {
    let f = Fixture::new();
    let obs = cluster(vec![guest(
        101,
        "user:a pass:p protos:rdp;\nuser:b pass:p protos:ssh ssh_port:99999;",
        Some("192.0.2.10"),
    )]);
    let want = desire(&obs, &f.settings(Grouping::None, false));
    assert_eq!(want.connections.len(), 1);
    assert_eq!(want.held.values().next(), Some(&HoldReason::BlockError));
    let msg = &want.problems[0].message;
    assert!(msg.contains("lab node pve1 vmid 101 (web101)"), "{msg}");
    assert!(msg.contains("block 2 (line 2), key ssh_port"), "{msg}");
}

#[test]
fn same_name_in_same_group_goes_to_the_lower_vmid() {
    let f = Fixture::new();
    let notes = "user:a pass:p protos:rdp connection_name:\"shared\";";
    let obs = cluster(vec![
        guest(205, notes, Some("192.0.2.11")),
        guest(104, notes, Some("192.0.2.10")),
    ]);
    let want = desire(&obs, &f.settings(Grouping::None, false));
    assert_eq!(want.connections.len(), 1);
    assert_eq!(want.connections.keys().next().unwrap().guest.vmid, 104);
    assert_eq!(
        want.held.get(&GuestKey {
            cluster: "lab".into(),
            vmid: 205
        }),
        Some(&HoldReason::NameConflict)
    );
}

#[test]
fn templates_and_excluded_guests_yield_nothing_but_stay_present() {
    let mut f = Fixture::new();
    f.selector = Selector {
        include: Filter::default(),
        exclude: Filter {
            tags: vec!["web".into()],
            ..Filter::default()
        },
    };
    let mut tpl = guest(900, "user:a pass:p protos:rdp;", Some("192.0.2.10"));
    tpl.template = true;
    tpl.tags.clear();
    let obs = cluster(vec![
        tpl,
        guest(101, "user:a pass:p protos:rdp;", Some("192.0.2.10")),
    ]);
    let want = desire(&obs, &f.settings(Grouping::None, false));
    assert!(want.connections.is_empty());
    assert_eq!(want.present.len(), 2);
}

#[test]
fn auto_encrypt_rewrites_only_valid_blocks_with_the_observed_digest() {
    let f = Fixture::new();
    let notes =
        "<p>user:\"a\" pass:\"S3cret\" protos:rdp;</p>\r\nuser:b pass:x protos:rdp rdp_port:0;";
    let want = desire(
        &cluster(vec![guest(101, notes, Some("192.0.2.10"))]),
        &f.settings(Grouping::None, true),
    );
    assert_eq!(want.rewrites.len(), 1);
    let r = &want.rewrites[0];
    assert_eq!(r.digest, "d".repeat(40));
    assert_eq!(r.migrated_blocks, 1);
    let text = r.new_notes.expose();
    assert!(
        text.starts_with("<p>user:\"a\" encrypted_password:\"gAAAAA"),
        "{text}"
    );
    assert!(
        text.ends_with("</p>\r\nuser:b pass:x protos:rdp rdp_port:0;"),
        "{text}"
    );
    assert!(!format!("{r:?}").contains("gAAAAA"));
}

#[test]
fn unreadable_config_holds_the_guest() {
    let f = Fixture::new();
    let mut g = guest(101, "", Some("192.0.2.10"));
    g.config = ConfigObservation::Failed {
        error: "server_error".into(),
    };
    let want = desire(&cluster(vec![g]), &f.settings(Grouping::None, false));
    assert_eq!(
        want.held.values().next(),
        Some(&HoldReason::ConfigUnavailable)
    );
}

#[test]
fn a_dns_host_is_refused_when_allowed_networks_are_set() {
    let mut f = Fixture::new();
    f.policy.allow_dns_names = true;
    f.policy.allowed_networks = vec!["192.0.2.0/24".parse().unwrap()];
    let obs = cluster(vec![guest(
        101,
        "user:a pass:p protos:rdp host:web.example.net;",
        Some("192.0.2.10"),
    )]);
    let want = desire(&obs, &f.settings(Grouping::None, false));
    assert!(want.connections.is_empty());
    assert_eq!(want.held.values().next(), Some(&HoldReason::BlockError));
    assert!(
        want.problems[0].message.contains("DNS name"),
        "{:?}",
        want.problems
    );
}

#[test]
fn notes_that_encryption_would_push_past_8192_characters_are_left_alone() {
    let f = Fixture::new();
    let filler = "x".repeat(8100);
    let notes = format!("{filler}\nuser:a pass:p protos:rdp;");
    let want = desire(
        &cluster(vec![guest(101, &notes, Some("192.0.2.10"))]),
        &f.settings(Grouping::None, true),
    );
    assert!(want.rewrites.is_empty());
    assert_eq!(want.connections.len(), 1);
    assert!(
        want.problems[0].message.contains("8192"),
        "{:?}",
        want.problems
    );
}

#[test]
fn a_group_name_longer_than_guacamole_allows_is_a_block_error() {
    let f = Fixture::new();
    let notes = format!(
        "user:a pass:p protos:rdp group:\"Lab/{}\";",
        "g".repeat(129)
    );
    let want = desire(
        &cluster(vec![guest(101, &notes, Some("192.0.2.10"))]),
        &f.settings(Grouping::None, false),
    );
    assert!(want.connections.is_empty());
    assert_eq!(want.held.values().next(), Some(&HoldReason::BlockError));
}

#[test]
fn wake_on_lan_parameters_from_net0_config_and_notes() {
    let mut fx = Fixture::new();
    let notes = "user:\"a\" pass:\"p\" protos:\"rdp\";\n\
                 user:\"b\" pass:\"p\" protos:\"vnc\" wol_settings:\"broadcast-addr=192.0.2.255,wait-time=30\";\n\
                 user:\"c\" pass:\"p\" protos:\"ssh\" wol_disabled:\"true\";";
    let obs = cluster(vec![guest(100, notes, Some("192.0.2.10"))]);
    let want = desire(&obs, &fx.settings(Grouping::None, false));
    let params = |user: &str| {
        want.connections
            .values()
            .find(|c| c.identity.user == user)
            .unwrap()
            .params
            .clone()
    };
    let a = params("a");
    assert_eq!(a.get("wol-send-packet").unwrap().expose(), "true");
    assert_eq!(a.get("wol-mac-addr").unwrap().expose(), "bc:24:11:00:00:01");
    assert_eq!(
        a.get("wol-broadcast-addr").unwrap().expose(),
        "255.255.255.255"
    );
    assert_eq!(a.get("wol-udp-port").unwrap().expose(), "9");
    assert!(a.get("wol-wait-time").is_none());
    let b = params("b");
    assert_eq!(b.get("wol-broadcast-addr").unwrap().expose(), "192.0.2.255");
    assert_eq!(b.get("wol-wait-time").unwrap().expose(), "30");
    let c = params("c");
    assert!(c.get("wol-send-packet").is_none() && c.get("wol-mac-addr").is_none());

    // Turned off in the configuration: nothing automatic.
    fx.wol.enabled = false;
    let want = desire(&obs, &fx.settings(Grouping::None, false));
    let a = want
        .connections
        .values()
        .find(|c| c.identity.user == "a")
        .unwrap();
    assert!(a.params.get("wol-send-packet").is_none());
}
