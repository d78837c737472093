//! `pve-guac-sync --config FILE check-config` as an operator runs it: exit
//! codes, the exact `FILE:LINE: key: message` lines, and no secret value in
//! any output.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const CANARY: &str = "CANARY";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A scratch directory with a copy of a fixture at a chosen mode, and a
/// credentials directory.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let s = Scratch {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(s.creds()).unwrap();
        s
    }

    fn creds(&self) -> PathBuf {
        self.dir.path().join("creds")
    }

    fn credential(&self, name: &str, value: &str) {
        std::fs::write(self.creds().join(name), value).unwrap();
    }

    fn config(&self, fixture: &str, mode: u32) -> PathBuf {
        let text = std::fs::read_to_string(fixture_path(fixture)).unwrap();
        self.config_text(fixture, &text, mode)
    }

    fn config_text(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

fn fixture_path(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if name == "config.example.yaml" {
        root.join(name)
    } else {
        root.join("tests/fixtures/config").join(name)
    }
}

/// Runs check-config with exactly the given environment (nothing inherited).
fn check_config(config: &Path, env: &[(&str, &str)]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_pve-guac-sync"))
        .arg("--config")
        .arg(config)
        .arg("check-config")
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert!(
        !run.stdout.contains(CANARY) && !run.stderr.contains(CANARY),
        "a secret value leaked:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    run
}

fn env_secrets() -> Vec<(&'static str, &'static str)> {
    vec![
        ("PGS_TOKEN", "CANARY-env-token-91c2"),
        ("PGS_GUAC_PASSWORD", "CANARY-env-password-91c2"),
    ]
}

/// The problem lines of stderr, with the scratch path replaced by `FILE`.
fn problems(run: &Run, config: &Path) -> Vec<String> {
    let shown = config.display().to_string();
    run.stderr
        .lines()
        .filter(|l| l.starts_with(&shown) && !l.contains("problem"))
        .map(|l| l.replacen(&shown, "FILE", 1))
        .collect()
}

#[test]
fn the_example_file_validates() {
    let s = Scratch::new();
    s.credential("pve-lab-token", "CANARY-cred-token-1b7e\n");
    s.credential("guacamole-password", "CANARY-cred-password-1b7e\n");
    s.credential("fernet-key", "CANARY-cred-key-1b7e\n");
    let config = fixture_path("config.example.yaml");
    let creds = s.creds().display().to_string();
    let run = check_config(&config, &[("CREDENTIALS_DIRECTORY", &creds)]);
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    assert!(
        run.stdout.contains("configuration is valid"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "lab: token pve-guac-sync@pve!sync, endpoints https://pve1.example.net:8006/ → https://pve2.example.net:8006/"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("guacamole: https://guac.example.net/ (API path auto-detected)")
    );
    assert!(run.stdout.contains(
        "sync: every 5m ±10 %, writes enabled, at most 100 changes per cycle, prune after 1h"
    ));
    assert!(run.stdout.contains("encryption: 1 key(s)"));
    assert!(
        run.stdout
            .contains("health: off (no metrics or health listener)")
    );
    assert_eq!(run.stderr, "", "the example must produce no warnings");
}

#[test]
fn a_minimal_file_validates_with_defaults() {
    let s = Scratch::new();
    let config = s.config("minimal.yaml", 0o644);
    let run = check_config(&config, &env_secrets());
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    assert!(
        run.stdout
            .contains("guacamole: https://127.0.0.1:8443/ (API path /guacamole/api)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("managed group \"pve-guac-sync\""));
    assert!(
        run.stdout.contains(
            "TLS system roots, timeouts 5s/45s, 20/s burst 10, concurrency 8, 3 attempts"
        )
    );
    assert!(run.stdout.contains("state: /var/lib/pve-guac-sync"));
}

#[test]
fn every_unknown_key_is_reported_with_its_line_and_a_suggestion() {
    let s = Scratch::new();
    let config = s.config("unknown-keys.yaml", 0o600);
    let run = check_config(&config, &env_secrets());
    assert_eq!(run.code, 2);
    assert_eq!(
        problems(&run, &config),
        [
            "FILE:7: proxmox.clusters[0].timeoutz: unknown key `timeoutz` (did you mean `timeouts`?); \
             expected one of: name, endpoints, token_id, token_secret, tls, timeouts, rate_limit, concurrency, retry",
            "FILE:14: sync.intervall: unknown key `intervall` (did you mean `interval`?); \
             expected one of: interval, jitter, dry_run, max_changes_per_cycle, prune, name_template, grouping, \
             include, exclude, auto_encrypt, allowed_networks, allow_dns_names, extra_allowed_parameters, verify_interval",
        ]
    );
    assert!(
        run.stderr
            .ends_with("2 problems found; nothing was contacted\n"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_values_are_all_reported_with_file_line_and_key() {
    let s = Scratch::new();
    let config = s.config("bad-values.yaml", 0o600);
    let run = check_config(&config, &env_secrets());
    assert_eq!(run.code, 2);
    assert_eq!(
        problems(&run, &config),
        [
            "FILE:6: proxmox.clusters[0].endpoints[1]: expected an https URL like https://pve1.example.net:8006 \
             (the Proxmox API is served over https only)",
            "FILE:10: proxmox.clusters[0].tls.fingerprint_sha256: expected a SHA-256 certificate fingerprint \
             such as AB:CD:…:EF or plain hex: expected 64 hex digits (32 bytes), found 6",
            "FILE:12: proxmox.clusters[0].rate_limit.per_second: expected a whole number of at least 1, not 0",
            "FILE:14: proxmox.clusters[0].concurrency: expected a whole number of at least 1, not 0",
            "FILE:21: proxmox.clusters[1].tls: choose one of ca_file, fingerprint_sha256 or insecure: true; \
             found fingerprint_sha256 and insecure: true",
            "FILE:27: sync.interval: expected a duration with a unit, such as 30s, 5m or 1h 30m",
            "FILE:28: sync.max_changes_per_cycle: expected a whole number of at least 1, not 0",
            "FILE:29: sync.allowed_networks[1]: has bits set after the prefix length; did you mean 10.0.0.0/8?",
            "FILE:29: sync.allowed_networks[2]: expected an address range in CIDR form, such as 10.20.0.0/16, or one address",
            "FILE:31: sync.exclude.vmids[1]: the range starts after it ends; write it low-high, like 100-199",
            "FILE:31: sync.exclude.vmids[2]: expected a VMID like 105 or a range like 100-199",
        ]
    );
}

#[test]
fn missing_secret_sources_are_named_without_values() {
    let s = Scratch::new();
    let config = s.config("secret-sources.yaml", 0o600);
    let run = check_config(&config, &[]);
    assert_eq!(run.code, 2);
    let lines = problems(&run, &config);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(
        lines[0],
        "FILE:6: proxmox.clusters[0].token_secret: secret file /nonexistent/pve-guac-sync/token: does not exist"
    );
    assert_eq!(
        lines[1],
        "FILE:10: guacamole.password: environment variable `PGS_UNSET_PASSWORD` is not set"
    );
    assert!(
        lines[2].starts_with(
            "FILE:13: encryption.keys[0]: credential `fernet-key` needs $CREDENTIALS_DIRECTORY, which is not set"
        ),
        "{}",
        lines[2]
    );

    // With the credentials directory but without that credential in it.
    let creds = s.creds().display().to_string();
    let run = check_config(&config, &[("CREDENTIALS_DIRECTORY", &creds)]);
    assert!(
        problems(&run, &config).contains(&format!(
            "FILE:13: encryption.keys[0]: credential file {creds}/fernet-key: does not exist"
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn inline_secrets_in_a_group_readable_file_are_refused_with_the_fix() {
    let s = Scratch::new();
    let config = s.config("inline-secrets.yaml", 0o644);
    let run = check_config(&config, &[]);
    assert_eq!(run.code, 2);
    let lines = problems(&run, &config);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with(
            "FILE: holds inline secrets (proxmox.clusters[0].token_secret, guacamole.password, encryption.keys[0]) \
             but is readable by group or others (mode 0644); refusing to load."
        ),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains(&format!("Fix: `chmod 600 {}`", config.display())),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("{credential: NAME}"), "{}", lines[0]);

    // Group-readable only (0640) is refused too.
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(check_config(&config, &[]).code, 2);
}

#[test]
fn inline_secrets_in_an_owner_only_file_are_accepted() {
    let s = Scratch::new();
    let config = s.config("inline-secrets.yaml", 0o600);
    let run = check_config(&config, &[]);
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    assert!(run.stdout.contains("auto-encrypt on"));
}

#[test]
fn insecure_tls_is_accepted_with_a_warning() {
    let s = Scratch::new();
    let text = std::fs::read_to_string(fixture_path("minimal.yaml"))
        .unwrap()
        .replace(
            "      token_secret: {env: PGS_TOKEN}\n",
            "      token_secret: {env: PGS_TOKEN}\n      tls:\n        insecure: true\n",
        );
    let config = s.config_text("insecure.yaml", &text, 0o600);
    let run = check_config(&config, &env_secrets());
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    let shown = config.display();
    assert!(
        run.stderr.starts_with(&format!(
            "warning: {shown}:9: proxmox.clusters[0].tls.insecure: TLS certificate verification is OFF"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout
            .contains("TLS INSECURE (no certificate verification)")
    );
}

#[test]
fn syntax_errors_and_unreadable_files_exit_2() {
    let s = Scratch::new();
    let config = s.config_text(
        "broken.yaml",
        "proxmox:\n  clusters: [\n    password: \"CANARY-x\"\n",
        0o600,
    );
    let run = check_config(&config, &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.starts_with(&format!("{}:", config.display()))
            && run.stderr.contains("not valid YAML"),
        "{}",
        run.stderr
    );

    let missing = s.dir.path().join("nope.yaml");
    let run = check_config(&missing, &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.starts_with(&format!(
            "{}: cannot read the configuration file: does not exist",
            missing.display()
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn a_fernet_key_one_character_short_is_warned_about() {
    let s = Scratch::new();
    let good = pve_guac_sync::crypto::generate_key();
    // One character lost in copying (not the padding).
    let short = &format!("{}{}", &good.expose()[..10], &good.expose()[11..]);
    let text = std::fs::read_to_string(fixture_path("minimal.yaml")).unwrap()
        + &format!(
            "encryption:\n  keys: [\"{}\", \"a long legacy passphrase\"]\n",
            good.expose()
        );
    let config = s.config_text("fernet-ok.yaml", &text, 0o600);
    let run = check_config(&config, &env_secrets());
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));

    let text = text.replace(good.expose(), short);
    let config = s.config_text("fernet-short.yaml", &text, 0o600);
    let run = check_config(&config, &env_secrets());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stderr.replace(&config.display().to_string(), "FILE"),
        "warning: FILE:13: encryption.keys[0]: looks like a Fernet key but is not a valid one (43 characters, a Fernet key has 44); it would be used as a legacy passphrase\n"
    );
    assert!(!run.stderr.contains(short));
}
