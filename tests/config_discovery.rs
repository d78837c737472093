//! The `discovery:` section: defaults, a full section, and the message of
//! each kind of mistake (file, line, key).

use std::path::Path;
use std::time::Duration;

use pve_guac_sync::config::{Environment, Settings, SourceKind};

struct Env;

impl Environment for Env {
    fn var(&self, _: &str) -> Option<String> {
        Some("x".into())
    }
}

const BASE: &str = "\
proxmox:
  clusters:
    - name: lab
      endpoints: [https://127.0.0.1:8006]
      token_id: \"pve-guac-sync@pve!sync\"
      token_secret: {env: T}
guacamole:
  url: https://127.0.0.1:8443
  username: guacadmin
  password: {env: P}
";

fn load(extra: &str) -> Result<Settings, String> {
    Settings::from_yaml(&format!("{BASE}{extra}"), Path::new("c.yaml"), None, &Env)
        .map_err(|e| e.to_string())
}

#[test]
fn defaults_are_safe() {
    let d = load("").unwrap().discovery;
    use SourceKind::*;
    assert_eq!(d.sources, vec![Host, Agent, Container, Arp, Cache]);
    assert_eq!(d.refresh, Duration::from_secs(3600));
    assert!(!d.probe.enabled);
    assert!(!d.power_up.enabled);
    assert_eq!(d.power_up.tag, "guac-power-up");
    assert_eq!(d.power_up.wait, Duration::from_secs(180));
    assert_eq!(
        (
            d.power_up.max_concurrent.get(),
            d.power_up.max_per_cycle.get()
        ),
        (2, 5)
    );
    assert_eq!(d.power_up.cooldown, Duration::from_secs(86_400));
    assert!(d.wol.enabled);
    assert_eq!(d.arp_table, Path::new("/proc/net/arp"));
}

#[test]
fn a_full_section_is_read() {
    let s = load(
        "sync:\n  allowed_networks: [192.0.2.0/24]\ndiscovery:\n  sources: [agent, arp, probe]\n  refresh: 30m\n  arp_table: /tmp/arp\n  probe: {enabled: true, max_addresses: 16}\n  power_up: {enabled: true, tag: Wake, wait: 1m, max_concurrent: 1}\n  wol: {enabled: false, udp_port: 7}\n",
    )
    .unwrap();
    let d = s.discovery;
    assert_eq!(
        d.sources,
        vec![SourceKind::Agent, SourceKind::Arp, SourceKind::Probe]
    );
    assert_eq!(d.probe.max_addresses.get(), 16);
    assert_eq!(d.power_up.tag, "wake");
    assert_eq!(d.power_up.max_concurrent.get(), 1);
    assert!(!d.wol.enabled);
    assert_eq!(d.wol.udp_port, 7);
}

#[test]
fn mistakes_name_the_line_and_key() {
    let e = load("discovery:\n  sources: [agent, host, agnet]\n").unwrap_err();
    assert!(
        e.contains("c.yaml:12: discovery.sources[1]: a block's host/ip always wins"),
        "{e}"
    );
    assert!(
        e.contains("discovery.sources[2]: expected one of") && e.contains("did you mean `agent`"),
        "{e}"
    );
    let e = load("discovery:\n  probe: {enabled: true}\n").unwrap_err();
    assert!(
        e.contains("discovery.probe.enabled: the probe only connects inside sync.allowed_networks"),
        "{e}"
    );
    let e = load("discovery:\n  sources: [probe]\n").unwrap_err();
    assert!(e.contains("the active probe is off"), "{e}");
    let e = load("discovery:\n  power_up: {wait: soon, max_per_cycle: 0}\n  wol: {udp_port: 70000}\n  nope: 1\n").unwrap_err();
    assert!(e.contains("nope"), "{e}");
    let e =
        load("discovery:\n  power_up: {wait: soon, max_per_cycle: 0}\n  wol: {udp_port: 70000}\n")
            .unwrap_err();
    assert!(
        e.contains("discovery.power_up.wait: expected a duration"),
        "{e}"
    );
    assert!(
        e.contains("discovery.power_up.max_per_cycle: expected a whole number of at least 1"),
        "{e}"
    );
    assert!(e.contains("discovery.wol.udp_port: expected a port"), "{e}");
}
