//! Address discovery end to end: the real engine against the lab, asserting
//! the connections it makes and exactly which address requests it sends.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use pve_guac_lab::proxmox::{
    AgentState, ClusterSeed, GuestSeed, IfaceSeed, LxcInterfacesShape, SeedStatus,
};
use pve_guac_lab::{FaultRule, Lab, LabSeed, RecordedRequest, RequestMark};

const NOTES: &str = "user:\"admin\" pass:\"pw\" protos:\"ssh\";";

/// The example cluster's nodes, tokens and ACLs with only these guests.
pub fn cluster(name: &str, guests: Vec<GuestSeed>) -> ClusterSeed {
    let mut c = ClusterSeed::example(name);
    c.guests = guests;
    c
}

pub fn only(guests: Vec<GuestSeed>) -> LabSeed {
    LabSeed::with_clusters(vec![cluster("lab", guests)])
}

pub fn vm(vmid: u32, name: &str, mac: &str, address: &str) -> GuestSeed {
    GuestSeed::vm(vmid, name, "pve1")
        .running()
        .agent("1")
        .notes(NOTES)
        .nic(mac, address)
}

pub fn proxmox(lab: &Lab, mark: RequestMark) -> Vec<RecordedRequest> {
    lab.requests_since(mark)
        .into_iter()
        .filter(|r| r.server.starts_with("proxmox"))
        .collect()
}

pub fn address_calls(reqs: &[RecordedRequest]) -> usize {
    reqs.iter()
        .filter(|r| {
            r.path.ends_with("/agent/network-get-interfaces") || r.path.ends_with("/interfaces")
        })
        .count()
}

pub fn hostname(lab: &Lab, name: &str) -> Option<String> {
    let g = lab.guacamole();
    let c = g.connections().into_iter().find(|c| c.name == name)?;
    g.parameters(&c.identifier)?.get("hostname").cloned()
}

fn sync(discovery: &str) -> String {
    format!("  grouping: none\n  max_changes_per_cycle: 500\ndiscovery:\n{discovery}")
}

#[tokio::test]
async fn the_net0_address_wins_over_a_docker_bridge_and_link_local_addresses() {
    let mut g = vm(101, "dock", "BC:24:11:00:01:01", "192.0.2.10/24");
    g.guest_agent.interfaces = Some(vec![
        IfaceSeed {
            name: "lo".into(),
            mac: Some("00:00:00:00:00:00".into()),
            addresses: vec!["127.0.0.1/8".into()],
        },
        IfaceSeed {
            name: "docker0".into(),
            mac: Some("02:42:ac:11:00:01".into()),
            addresses: vec!["172.17.0.1/16".into()],
        },
        IfaceSeed {
            name: "br-3f2a".into(),
            mac: Some("02:42:ac:12:00:01".into()),
            addresses: vec!["172.18.0.1/16".into()],
        },
        IfaceSeed {
            name: "ens18".into(),
            mac: Some("bc:24:11:00:01:01".into()),
            addresses: vec![
                "fe80::be24:11ff:fe00:101/64".into(),
                "169.254.10.20/16".into(),
                "192.0.2.10/24".into(),
            ],
        },
    ]);
    let lab = lab(only(vec![g])).await;
    let setup = config(&lab, &sync("  refresh: 1h"));
    let report = cycle(&engine(&setup)).await;
    assert_eq!(
        hostname(&lab, "admin@dock-ssh").as_deref(),
        Some("192.0.2.10"),
        "{:#?}",
        report.problems
    );
    // WoL parameters from net0 by default; Guacamole sends the packet.
    let g = lab.guacamole();
    let c = g
        .connections()
        .into_iter()
        .find(|c| c.name == "admin@dock-ssh")
        .unwrap();
    let p = g.parameters(&c.identifier).unwrap();
    assert_eq!(p["wol-send-packet"], "true");
    assert_eq!(p["wol-mac-addr"], "bc:24:11:00:01:01");
}

#[tokio::test]
async fn an_agent_that_is_not_running_is_asked_only_as_the_backoff_allows() {
    let g = vm(102, "late", "BC:24:11:00:01:02", "192.0.2.12/24").agent_state(AgentState::Down);
    let lab = lab(only(vec![g])).await;
    let setup = config(&lab, &sync("  backoff: {initial: 30s, max: 1h}"));
    let engine = engine(&setup);
    let mark = lab.request_mark();
    let mut asked_in = Vec::new();
    for n in 0..20 {
        let before = address_calls(&proxmox(&lab, mark));
        cycle(&engine).await;
        if address_calls(&proxmox(&lab, mark)) > before {
            asked_in.push(n);
        }
        engine.advance_clock(Duration::from_secs(30));
    }
    // 30 s, 60 s, 2 min, 4 min … between asks.
    assert_eq!(asked_in, vec![0, 1, 3, 7, 15]);
    assert_eq!(address_calls(&proxmox(&lab, mark)), 5);
    assert_eq!(hostname(&lab, "admin@late-ssh"), None);

    // The agent comes up; once the backoff allows, the connection appears.
    lab.proxmox("lab").set_agent_state(102, AgentState::Up);
    engine.advance_clock(Duration::from_secs(480));
    cycle(&engine).await;
    assert_eq!(
        hostname(&lab, "admin@late-ssh").as_deref(),
        Some("192.0.2.12")
    );
}

/// Found by the fault soak: a server error or a pause on the address
/// request says nothing about the guest, so it must not start the backoff
/// (a new guest waited a minute for its connection after one `503`).
#[tokio::test]
async fn a_server_that_fails_to_answer_starts_no_backoff() {
    let lab = lab(only(vec![vm(
        103,
        "fresh",
        "BC:24:11:00:01:03",
        "192.0.2.13/24",
    )]))
    .await;
    lab.faults("lab").add(
        FaultRule::error(503)
            .path_contains("/agent/network-get-interfaces")
            .times(2),
    );
    let setup = config(&lab, &sync("  backoff: {initial: 1h, max: 1h}"));
    let engine = engine(&setup);
    let first = cycle(&engine).await;
    assert_eq!(hostname(&lab, "admin@fresh-ssh"), None);
    assert!(
        first
            .problems
            .iter()
            .any(|p| p.contains("503") || p.contains("Injected")),
        "{:#?}",
        first.problems
    );
    // Next cycle, no clock advance: asked again and found.
    let mark = lab.request_mark();
    cycle(&engine).await;
    assert_eq!(address_calls(&proxmox(&lab, mark)), 1);
    assert_eq!(
        hostname(&lab, "admin@fresh-ssh").as_deref(),
        Some("192.0.2.13")
    );
}

#[tokio::test]
async fn a_steady_cycle_makes_one_listing_and_one_config_per_guest_and_a_restart_is_asked_again() {
    let guests: Vec<GuestSeed> = (0..100u32)
        .map(|i| {
            vm(
                1000 + i,
                &format!("vm{i}"),
                &format!("BC:24:11:00:{:02X}:{:02X}", i / 256, i % 256),
                &format!("192.0.2.{}/24", 1 + i),
            )
        })
        .collect();
    let lab = lab(only(guests)).await;
    let setup = config(&lab, &sync("  refresh: 1h"));
    let engine = engine(&setup);
    let first = cycle(&engine).await;
    assert_eq!(first.summary.created, 100, "{:#?}", first.problems);

    let mark = lab.request_mark();
    let second = cycle(&engine).await;
    let reqs = proxmox(&lab, mark);
    let listings = reqs
        .iter()
        .filter(|r| r.path.ends_with("/cluster/resources"))
        .count();
    let configs = reqs.iter().filter(|r| r.path.ends_with("/config")).count();
    println!(
        "steady cycle, 100 guests: {} Proxmox requests ({listings} listing, {configs} configs, {} address), {} total",
        reqs.len(),
        address_calls(&reqs),
        second.requests.values().sum::<u64>()
    );
    assert_eq!((listings, configs, address_calls(&reqs)), (1, 100, 0));
    assert_eq!(reqs.len(), 101);
    assert_eq!(second.summary.unchanged, 100);

    // Guest 1050 restarts (its uptime goes down): only it is asked again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pve = lab.proxmox("lab");
    pve.set_status(1050, SeedStatus::Stopped);
    pve.set_status(1050, SeedStatus::Running);
    let mark = lab.request_mark();
    cycle(&engine).await;
    let asked: Vec<String> = proxmox(&lab, mark)
        .into_iter()
        .filter(|r| r.path.ends_with("/network-get-interfaces"))
        .map(|r| r.path)
        .collect();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(asked[0].contains("/qemu/1050/"), "{asked:?}");
}

#[tokio::test]
async fn containers_in_both_interface_shapes_get_their_addresses() {
    let ct = |vmid, name: &str, mac: &str, addr: &str| {
        GuestSeed::ct(vmid, name, "pve1")
            .running()
            .notes(NOTES)
            .nic(mac, addr)
    };
    let new = cluster(
        "new",
        vec![ct(200, "ctnew", "BC:24:11:00:02:00", "192.0.2.50/24")],
    );
    let mut old = cluster(
        "old",
        vec![ct(201, "ctold", "BC:24:11:00:02:01", "192.0.2.51/24")],
    );
    old.options.lxc_interfaces_shape = LxcInterfacesShape::Legacy;
    let lab = lab(LabSeed::with_clusters(vec![new, old])).await;
    let setup = config(&lab, &sync("  refresh: 1h"));
    let report = cycle(&engine(&setup)).await;
    assert_eq!(
        hostname(&lab, "admin@ctnew-ssh").as_deref(),
        Some("192.0.2.50"),
        "{:#?}",
        report.problems
    );
    assert_eq!(
        hostname(&lab, "admin@ctold-ssh").as_deref(),
        Some("192.0.2.51")
    );
}

/// A running container whose `net0` has this `ip=` in its config; its
/// kernel reports `live` (what `/interfaces` would answer).
fn static_ct(vmid: u32, name: &str, mac: &str, config_ip: &str, live: &str) -> GuestSeed {
    let mut g = GuestSeed::ct(vmid, name, "pve1")
        .running()
        .notes(NOTES)
        .nic(mac, live);
    g.nets[0].config_ip = Some(config_ip.to_owned());
    g
}

#[tokio::test]
async fn a_static_container_address_inside_the_allowed_ranges_needs_no_request() {
    let lab = lab(only(vec![
        static_ct(
            210,
            "ctstatic",
            "BC:24:11:00:02:10",
            "192.0.2.60/24",
            "192.0.2.60/24",
        ),
        // Outside the allowed ranges: not trusted, the kernel is asked.
        static_ct(
            211,
            "ctforeign",
            "BC:24:11:00:02:11",
            "203.0.113.7/24",
            "192.0.2.61/24",
        ),
        // DHCP: only the kernel knows.
        static_ct(212, "ctdhcp", "BC:24:11:00:02:12", "dhcp", "192.0.2.62/24"),
    ]))
    .await;
    let setup = config(
        &lab,
        &format!(
            "  allowed_networks: [\"192.0.2.0/24\"]\n{}",
            sync("  sources: [host, agent, static, container, arp, cache]")
        ),
    );
    let mark = lab.request_mark();
    let report = cycle(&engine(&setup)).await;
    let reqs = proxmox(&lab, mark);
    let asked: Vec<&str> = reqs
        .iter()
        .filter(|r| r.path.ends_with("/interfaces"))
        .filter_map(|r| r.path.split("/lxc/").nth(1))
        .collect();
    assert_eq!(
        asked,
        vec!["211/interfaces", "212/interfaces"],
        "only the containers without a trusted static ip= are asked"
    );
    assert_eq!(
        hostname(&lab, "admin@ctstatic-ssh").as_deref(),
        Some("192.0.2.60"),
        "{:#?}",
        report.problems
    );
    assert_eq!(
        hostname(&lab, "admin@ctforeign-ssh").as_deref(),
        Some("192.0.2.61")
    );
    assert_eq!(
        hostname(&lab, "admin@ctdhcp-ssh").as_deref(),
        Some("192.0.2.62")
    );
}

#[tokio::test]
async fn a_host_override_needs_no_discovery() {
    let g = vm(103, "fixed", "BC:24:11:00:01:03", "192.0.2.13/24")
        .notes("user:\"admin\" pass:\"pw\" protos:\"ssh\" host:\"198.51.100.7\";");
    let lab = lab(only(vec![g])).await;
    let setup = config(&lab, &sync("  refresh: 1h"));
    let mark = lab.request_mark();
    cycle(&engine(&setup)).await;
    assert_eq!(
        hostname(&lab, "admin@fixed-ssh").as_deref(),
        Some("198.51.100.7")
    );
    assert_eq!(address_calls(&proxmox(&lab, mark)), 0);
}

#[tokio::test]
async fn the_cache_stands_in_when_the_agent_stops() {
    let g = vm(104, "cached", "BC:24:11:00:01:04", "192.0.2.14/24");
    let lab = lab(only(vec![g])).await;
    let setup = config(&lab, &sync("  refresh: 1h"));
    let engine = engine(&setup);
    cycle(&engine).await;
    assert_eq!(
        hostname(&lab, "admin@cached-ssh").as_deref(),
        Some("192.0.2.14")
    );

    lab.proxmox("lab").set_agent_state(104, AgentState::Down);
    engine.advance_clock(Duration::from_secs(3601));
    let mark = lab.request_mark();
    let report = cycle(&engine).await;
    let reqs = proxmox(&lab, mark);
    // Asked again (refresh due), failed, and the cached address held.
    assert_eq!(address_calls(&reqs), 1);
    assert_eq!(
        hostname(&lab, "admin@cached-ssh").as_deref(),
        Some("192.0.2.14")
    );
    assert_eq!(changes(&lab, mark), Vec::<String>::new());
    assert_eq!(report.summary.unchanged, 1);
}

#[tokio::test]
async fn a_neighbour_table_file_gives_a_vm_without_agent_its_address() {
    let g = GuestSeed::vm(105, "noagent", "pve1")
        .running()
        .notes(NOTES)
        .nic("BC:24:11:00:01:05", "");
    let lab = lab(only(vec![g])).await;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("arp");
    std::fs::write(
        &table,
        "IP address       HW type     Flags       HW address            Mask     Device\n\
         192.0.2.90       0x1         0x0         bc:24:11:00:01:05     *        vmbr0\n\
         192.0.2.77       0x1         0x2         bc:24:11:00:01:05     *        vmbr0\n",
    )
    .unwrap();
    let setup = config(
        &lab,
        &sync(&format!("  arp_table: \"{}\"", table.display())),
    );
    let mark = lab.request_mark();
    let report = cycle(&engine(&setup)).await;
    assert_eq!(
        hostname(&lab, "admin@noagent-ssh").as_deref(),
        Some("192.0.2.77"),
        "{:#?}",
        report.problems
    );
    // "No agent configured" is known from the config: never asked.
    assert_eq!(address_calls(&proxmox(&lab, mark)), 0);
}

/// How many of `vmids` ran at the same time at most, from the power history.
pub fn max_running_together(lab: &Lab, vmids: &[u32]) -> usize {
    let mut running = BTreeMap::new();
    let mut max = 0;
    for e in lab.proxmox("lab").power_history() {
        if !vmids.contains(&e.vmid) {
            continue;
        }
        running.insert(e.vmid, e.change == "started");
        max = max.max(running.values().filter(|r| **r).count());
    }
    max
}
