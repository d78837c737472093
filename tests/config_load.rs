//! `Settings::load` / `Settings::from_yaml`: the typed result of a valid file,
//! and the exact message of each kind of mistake.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use pve_guac_sync::config::{
    ConfigError, Environment, Grouping, GuestFacts, LogFormat, Settings, TlsSettings, VmidRange,
};

struct FakeEnv(HashMap<String, String>);

impl Environment for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

fn env(pairs: &[(&str, &str)]) -> FakeEnv {
    FakeEnv(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn std_env() -> FakeEnv {
    env(&[("PGS_TOKEN", "CANARY-tok"), ("PGS_PW", "CANARY-pw")])
}

const BASE: &str = "\
proxmox:
  clusters:
    - name: lab
      endpoints: [https://127.0.0.1:8006]
      token_id: \"pve-guac-sync@pve!sync\"
      token_secret: {env: PGS_TOKEN}
guacamole:
  url: https://127.0.0.1:8443
  username: guacadmin
  password: {env: PGS_PW}
";

fn load(text: &str) -> Result<Settings, ConfigError> {
    Settings::from_yaml(text, Path::new("c.yaml"), Some(0o600), &std_env())
}

/// The rendered problems, one per line.
fn errors(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => panic!("expected problems"),
        Err(e) => {
            assert_eq!(e.label(), "config_invalid");
            e.to_string().lines().map(str::to_owned).collect()
        }
    }
}

#[test]
fn the_example_file_becomes_typed_settings() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("pve-lab-token", "CANARY-token\n"),
        ("guacamole-password", "CANARY-password"),
        ("fernet-key", "CANARY-key\n"),
    ] {
        std::fs::write(dir.path().join(name), value).unwrap();
    }
    let creds = dir.path().display().to_string();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml");
    let s = Settings::load_with(&path, &env(&[("CREDENTIALS_DIRECTORY", &creds)])).unwrap();

    let lab = &s.proxmox.clusters[0];
    assert_eq!(lab.name, "lab");
    assert_eq!(
        lab.endpoints.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
        [
            "https://pve1.example.net:8006/",
            "https://pve2.example.net:8006/"
        ]
    );
    assert_eq!(lab.token_secret.expose(), "CANARY-token");
    let TlsSettings::PinnedSha256(fp) = lab.api.tls else {
        panic!("expected a pin, got {:?}", lab.api.tls);
    };
    assert_eq!(fp[0], 0x5c);
    assert_eq!(fp[31], 0x44);
    assert_eq!(lab.api.rate_limit.per_second.get(), 20);
    assert_eq!(lab.api.retry.base_delay, Duration::from_millis(250));

    assert_eq!(s.guacamole.url.as_str(), "https://guac.example.net/");
    assert_eq!(s.guacamole.base_path, None);
    assert_eq!(s.guacamole.password.expose(), "CANARY-password");
    assert_eq!(s.guacamole.root_group, "pve-guac-sync");
    assert_eq!(s.guacamole.api.tls, TlsSettings::SystemRoots);

    assert_eq!(s.sync.interval, Duration::from_secs(300));
    assert_eq!(s.sync.grouping, Grouping::Node);
    assert!(s.sync.auto_encrypt);
    assert!(
        s.sync
            .address_allowed("10.20.3.4".parse::<IpAddr>().unwrap())
    );
    assert!(
        !s.sync
            .address_allowed("10.21.0.1".parse::<IpAddr>().unwrap())
    );
    assert!(s.sync.extra_parameter_allowed("RDP", "enable-drive"));
    assert!(!s.sync.extra_parameter_allowed("ssh", "enable-drive"));
    let tags = vec!["web".to_owned()];
    let guest = |vmid, tags: &'static [String]| GuestFacts {
        vmid,
        node: "pve1",
        pool: None,
        tags,
    };
    assert!(s.sync.selector.matches(&guest(100, &[])));
    assert!(!s.sync.selector.matches(&guest(900, &[])));
    assert!(s.sync.selector.matches(&GuestFacts {
        tags: &tags,
        ..guest(150, &[])
    }));
    assert_eq!(
        s.sync.selector.include.vmids,
        [VmidRange {
            first: 100,
            last: 899
        }]
    );
    assert_eq!(s.encryption.keys.len(), 1);
    assert_eq!(s.logging.format, LogFormat::Auto);
    assert!(s.warnings.is_empty());

    let debug = format!("{s:?}");
    assert!(!debug.contains("CANARY"), "Debug shows a secret: {debug}");
}

#[test]
fn defaults_fill_everything_left_out() {
    let s = load(BASE).unwrap();
    assert_eq!(s.state_dir, Path::new("/var/lib/pve-guac-sync"));
    assert_eq!(s.sync.name_template, "{user}@{vmname}-{proto}");
    assert_eq!(s.sync.jitter, 0.1);
    assert_eq!(s.sync.max_changes_per_cycle.get(), 100);
    assert!(s.sync.prune.enabled);
    assert_eq!(s.sync.prune.grace, Duration::from_secs(3600));
    assert!(!s.sync.auto_encrypt && !s.sync.dry_run && !s.sync.allow_dns_names);
    assert!(s.sync.selector.is_everything());
    assert!(s.sync.allowed_networks.is_empty());
    assert!(
        s.sync
            .address_allowed("203.0.113.9".parse::<IpAddr>().unwrap())
    );
    assert_eq!(s.guacamole.api.concurrency.get(), 4);
    assert_eq!(
        s.proxmox.clusters[0].api.timeouts.request,
        Duration::from_secs(45)
    );
    assert_eq!(s.guacamole.api.timeouts.request, Duration::from_secs(30));
    assert_eq!(s.logging.level, "info");
}

#[test]
fn guacamole_base_path_comes_from_the_url_or_the_key_not_both() {
    let s = load(&BASE.replace(
        "https://127.0.0.1:8443",
        "https://127.0.0.1:8443/guacamole/api/",
    ))
    .unwrap();
    assert_eq!(s.guacamole.url.as_str(), "https://127.0.0.1:8443/");
    assert_eq!(s.guacamole.base_path.as_deref(), Some("/guacamole/api"));

    let s = load(&format!("{BASE}  base_path: /api\n").replace("guacamole:\n", "guacamole:\n"))
        .unwrap();
    assert_eq!(s.guacamole.base_path.as_deref(), Some("/api"));

    let both = format!("{BASE}  base_path: /api\n").replace(
        "https://127.0.0.1:8443",
        "https://127.0.0.1:8443/guacamole/api",
    );
    assert_eq!(
        errors(&both),
        [
            "c.yaml:11: guacamole.base_path: given both here and as the path of guacamole.url; keep one"
        ]
    );
}

#[test]
fn plain_http_is_only_for_a_loopback_guacamole() {
    assert!(load(&BASE.replace("https://127.0.0.1:8443", "http://localhost:8080")).is_ok());
    assert_eq!(
        errors(&BASE.replace("https://127.0.0.1:8443", "http://guac.example.net")),
        [
            "c.yaml:8: guacamole.url: expected an https URL like https://guacamole.example.net \
          (http is accepted only for a loopback address)"
        ]
    );
}

#[test]
fn proxmox_endpoints_must_be_bare_https_origins() {
    assert_eq!(
        errors(&BASE.replace(
            "[https://127.0.0.1:8006]",
            "[https://127.0.0.1:8006/api2/json]"
        )),
        ["c.yaml:4: proxmox.clusters[0].endpoints[0]: leave out /api2/json: the client adds it"]
    );
    assert_eq!(
        errors(&BASE.replace(
            "[https://127.0.0.1:8006]",
            "[https://127.0.0.1:8006, \"https://127.0.0.1:8006/\"]"
        )),
        ["c.yaml:4: proxmox.clusters[0].endpoints[1]: this endpoint is listed twice"]
    );
    assert_eq!(
        errors(&BASE.replace("[https://127.0.0.1:8006]", "[]")),
        ["c.yaml:4: proxmox.clusters[0].endpoints: expected at least one endpoint URL"]
    );
}

#[test]
fn structural_mistakes_name_the_key() {
    assert_eq!(
        errors("proxmox:\n  clusters: []\n"),
        ["c.yaml:1: missing required key `guacamole`"]
    );
    assert_eq!(
        errors(&BASE.replace("      token_secret: {env: PGS_TOKEN}\n", "")),
        ["c.yaml:3: proxmox.clusters[0]: missing required key `token_secret`"]
    );
    assert_eq!(
        errors(&format!("{BASE}sync:\n  dry_run: maybe\n")),
        ["c.yaml:12: sync.dry_run: expected true or false"]
    );
    assert_eq!(
        errors(&format!("{BASE}sync:\n  max_changes_per_cycle: many\n")),
        ["c.yaml:12: sync.max_changes_per_cycle: expected a whole number, 0 or more"]
    );
    assert_eq!(
        errors(&format!("{BASE}sync:\n  dry_run: true\n  dry_run: false\n")),
        ["c.yaml:13: sync.dry_run: this key is given twice"]
    );
    assert_eq!(
        errors(&BASE.replace("{env: PGS_PW}", "{vault: pw}")),
        [
            "c.yaml:10: guacamole.password.vault: unknown key `vault`; expected one of: file, env, credential"
        ]
    );
}

#[test]
fn cross_checks_between_settings() {
    let two = BASE.replace(
        "guacamole:\n",
        "    - name: lab\n      endpoints: [https://127.0.0.2:8006]\n      token_id: \"a@pve!b\"\n      token_secret: {env: PGS_TOKEN}\nguacamole:\n",
    );
    assert_eq!(
        errors(&two),
        [
            "c.yaml:7: proxmox.clusters[1].name: cluster name `lab` is already used by proxmox.clusters[0]; names must be unique"
        ]
    );
    assert_eq!(
        errors(&format!("{BASE}sync:\n  auto_encrypt: true\n")),
        ["c.yaml:12: sync.auto_encrypt: needs at least one key under encryption.keys"]
    );
    assert_eq!(
        errors(&format!(
            "{BASE}  timeouts: {{connect: 1m, request: 10s}}\n  retry: {{base_delay: 10s, max_delay: 1s}}\n"
        )),
        [
            "c.yaml:11: guacamole.timeouts: connect must not be longer than request (the request timeout covers the connection too)",
            "c.yaml:12: guacamole.retry: base_delay must not be longer than max_delay",
        ]
    );
}

#[test]
fn policy_settings_refuse_what_notes_must_never_do() {
    assert_eq!(
        errors(&format!(
            "{BASE}sync:\n  name_template: \"{{user}}-{{password}}\"\n"
        )),
        ["c.yaml:12: sync.name_template: {password} is not allowed: secrets never go into names"]
    );
    assert_eq!(
        errors(&format!(
            "{BASE}sync:\n  extra_allowed_parameters:\n    rdp: [enable-wallpaper, password]\n    spice: [x]\n"
        )),
        [
            "c.yaml:13: sync.extra_allowed_parameters.rdp[1]: `password` is always set by pve-guac-sync; notes may not set it",
            "c.yaml:14: sync.extra_allowed_parameters.spice: expected one of rdp, vnc, ssh, telnet",
        ]
    );
    assert_eq!(
        errors(&format!("{BASE}sync:\n  jitter: 0.9\n")),
        ["c.yaml:12: sync.jitter: expected a fraction from 0 to 0.5, such as 0.1 (±10 %)"]
    );
    assert_eq!(
        errors(&format!(
            "{BASE}logging:\n  format: jsn\n  level: \"=,,==\"\n"
        )),
        [
            "c.yaml:12: logging.format: expected one of auto, journald, text, json (did you mean `json`?)",
            "c.yaml:13: logging.level: expected a level (error, warn, info, debug, trace) or a filter such as pve_guac_sync=debug,info",
        ]
    );
    let s = load(&format!(
        "{BASE}sync:\n  allowed_networks: [10.0.0.0/8, 192.0.2.7, \"fd00::/8\"]\n"
    ))
    .unwrap();
    assert!(
        s.sync
            .address_allowed("192.0.2.7".parse::<IpAddr>().unwrap())
    );
    assert!(
        !s.sync
            .address_allowed("192.0.2.8".parse::<IpAddr>().unwrap())
    );
}

#[test]
fn a_group_readable_secret_file_is_accepted_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("token");
    std::fs::write(&secret, "CANARY-file-token\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = BASE.replace(
        "{env: PGS_TOKEN}",
        &format!("{{file: {}}}", secret.display()),
    );
    let s = load(&text).unwrap();
    assert_eq!(
        s.proxmox.clusters[0].token_secret.expose(),
        "CANARY-file-token"
    );
    let warnings: Vec<String> = s.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [format!(
            "c.yaml:6: proxmox.clusters[0].token_secret: secret file {0} is readable by group or others (mode 0644); run `chmod 600 {0}`",
            secret.display()
        )]
    );
}

#[test]
fn no_message_ever_contains_an_inline_secret() {
    // Inline secrets next to many mistakes, in a world-readable file.
    let text = "\
proxmox:
  clusters:
    - name: lab
      endpoints: [http://x]
      token_id: nope
      token_secret: \"CANARY-inline-1\"
      tls: {fingerprint_sha256: \"CANARY-not-hex\"}
guacamole:
  url: CANARY-url
  username: u
  password: \"CANARY-inline-2\"
encryption:
  keys: [\"\", \"CANARY-inline-3\"]
";
    let err = Settings::from_yaml(text, Path::new("c.yaml"), Some(0o644), &std_env()).unwrap_err();
    let shown = format!("{err}\n{err:?}");
    assert!(err.problems().len() >= 5, "{shown}");
    for leaked in ["CANARY-inline", "CANARY-not-hex", "CANARY-url"] {
        assert!(!shown.contains(leaked), "{leaked} leaked:\n{shown}");
    }
    assert!(
        shown.contains("c.yaml:13: encryption.keys[0]: inline secret is empty"),
        "{shown}"
    );
}

#[test]
fn a_misplaced_secret_is_not_echoed_in_a_type_error() {
    let text = format!("{BASE}encryption:\n  keys: \"CANARY-fernet-key\"\n");
    let shown = errors(&text);
    assert_eq!(
        shown,
        ["c.yaml:12: encryption.keys: expected a list (`[a, b]`, or one `- item` per line)"]
    );
    let text = format!("{BASE}  tls: \"CANARY-pin\"\n");
    assert_eq!(
        errors(&text),
        ["c.yaml:11: guacamole.tls: expected a mapping (`key: value` lines)"]
    );
}

#[test]
fn an_endpoint_without_port_is_accepted_with_a_warning() {
    let s = load(&BASE.replace("https://127.0.0.1:8006", "https://pve.example.net")).unwrap();
    assert_eq!(
        s.proxmox.clusters[0].endpoints[0].as_str(),
        "https://pve.example.net/"
    );
    let warnings: Vec<String> = s.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "c.yaml:4: proxmox.clusters[0].endpoints[0]: no port given, so 443 is used; Proxmox VE itself \
          listens on 8006 (write :8006 unless a proxy serves 443)"
        ]
    );
}
