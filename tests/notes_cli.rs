//! The notes commands, run as the real binary (no configuration file).

use std::io::Write;
use std::process::{Command, Output, Stdio};

use pve_guac_sync::crypto::Keyring;
use pve_guac_sync::secret::Secret;

fn run(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pve-guac-sync"));
    cmd.args(args)
        .args(["--config", "/nonexistent/config.yaml"])
        .env_remove("PVE_GUAC_SYNC_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn lint_json_lists_connections_and_errors_exactly() {
    let notes = "Owner: ops;\nuser:\"admin\" pass:\"S3cretPW\" protos:\"rdp,ssh\" group:\"Lab/Web\" rdp_settings:\"ignore-cert=yes\";\nuser:\"x\" protos:\"ssh\";\n";
    let o = run(
        &[
            "notes",
            "lint",
            "--vmname",
            "web01",
            "--vmid",
            "101",
            "--node",
            "n1",
            "--ip",
            "10.0.0.5",
            "--cluster",
            "c1",
            "--json",
        ],
        notes,
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "connections": [
                {"name": "admin@web01-rdp", "protocol": "rdp", "port": 3389, "username": "admin", "group": "Lab/Web", "settings": {"ignore-cert": "true"}},
                {"name": "admin@web01-ssh", "protocol": "ssh", "port": 22, "username": "admin", "group": "Lab/Web", "settings": {}}
            ],
            "errors": [
                {"block": 2, "line": 3, "key": "pass", "message": "no password (pass: or encrypted_password:)"}
            ],
            "warnings": []
        })
    );
    assert!(!stdout(&o).contains("S3cretPW"));
}

#[test]
fn lint_text_masks_passwords_and_exits_zero() {
    let o = run(
        &["notes", "lint", "--vmname", "db"],
        "user:root pass:hunter2xyz protos:ssh confName:\"{vmname}-{ip}\";",
        &[],
    );
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(
        out.contains("connection \"db-{ip}\": ssh port 22 user root password ***"),
        "{out}"
    );
    assert!(!out.contains("hunter2xyz"));
    assert!(out.ends_with("1 connection(s), 0 error(s)\n"));
}

#[test]
fn gen_key_then_encrypt_then_lint_decrypts() {
    let o = run(&["gen-key"], "", &[]);
    assert_eq!(o.status.code(), Some(0));
    let key = stdout(&o).trim().to_owned();
    assert_eq!(key.len(), 44);
    Keyring::new(&[Secret::new(key.clone())]).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("keys");
    std::fs::write(
        &key_file,
        format!("# rotation: first encrypts\n{key}\n\nold passphrase\n"),
    )
    .unwrap();
    let kf = key_file.to_str().unwrap();
    let o = run(&["encrypt", "--key-file", kf], "Pa ss;\"w\n", &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let pair = stdout(&o).trim().to_owned();
    assert!(pair.starts_with("encrypted_password:\"gAAAAA") && pair.ends_with('"'));
    let token = &pair["encrypted_password:\"".len()..pair.len() - 1];
    let ring = Keyring::new(&[Secret::new(key)]).unwrap();
    assert_eq!(
        ring.decrypt(&Secret::new(token)).unwrap().expose(),
        "Pa ss;\"w"
    );

    let notes = format!("user:a {pair} protos:ssh;");
    assert_eq!(
        run(&["notes", "lint", "--key-file", kf], &notes, &[])
            .status
            .code(),
        Some(0)
    );
    let other = dir.path().join("other");
    std::fs::write(&other, "another passphrase\n").unwrap();
    let o = run(
        &[
            "notes",
            "lint",
            "--json",
            "--key-file",
            other.to_str().unwrap(),
        ],
        &notes,
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("no configured key opens the encrypted password"));
    assert!(!stdout(&o).contains(token));
}

#[test]
fn encrypt_key_from_environment_and_missing_key() {
    let o = run(
        &["encrypt"],
        "pw\n",
        &[("PVE_GUAC_SYNC_KEY", "env passphrase")],
    );
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    let token = out
        .trim()
        .trim_start_matches("encrypted_password:\"")
        .trim_end_matches('"');
    let ring = Keyring::new(&[Secret::new("env passphrase")]).unwrap();
    assert_eq!(ring.decrypt(&Secret::new(token)).unwrap().expose(), "pw");

    let o = run(&["encrypt"], "pw\n", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no key"));
}

#[test]
fn lint_masks_secret_setting_values_in_text_and_json() {
    let notes = "user:a pass:pw protos:ssh,rdp ssh_settings:\"passphrase=PhraseXyz1,private-key=KeyMatXyz2,font-size=12\" rdp_settings:\"gateway-password=GwPassXyz3\";";
    for json in [false, true] {
        let mut args = vec!["notes", "lint"];
        if json {
            args.push("--json");
        }
        let o = run(&args, notes, &[]);
        assert_eq!(o.status.code(), Some(0));
        let out = stdout(&o);
        for secret in ["PhraseXyz1", "KeyMatXyz2", "GwPassXyz3"] {
            assert!(!out.contains(secret), "{secret} shown: {out}");
        }
        assert!(out.contains("12"), "{out}");
        if json {
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["connections"][0]["settings"]["passphrase"], "***");
            assert_eq!(v["connections"][0]["settings"]["font-size"], "12");
            assert_eq!(v["connections"][1]["settings"]["gateway-password"], "***");
        } else {
            assert!(out.contains("  passphrase=***\n"), "{out}");
            assert!(out.contains("  private-key=***\n"), "{out}");
        }
    }
}

#[test]
fn lint_lists_unknown_settings_as_block_warnings() {
    let notes = "user:a pass:pw protos:ssh ssh_settings:\"font-size=12,ignore-cert=true\";\nuser:b pass:pw protos:rdp rdp_settings:\"drive-path=/x\";";
    let o = run(&["notes", "lint", "--json"], notes, &[]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["connections"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["connections"][0]["settings"],
        serde_json::json!({"font-size": "12"})
    );
    assert_eq!(
        v["warnings"],
        serde_json::json!([{"block": 1, "line": 1, "key": "ssh_settings",
            "message": "setting 'ignore-cert' is not a ssh parameter; left out"}])
    );
    assert_eq!(v["errors"][0]["block"], 2);
    assert_eq!(
        v["errors"][0]["message"],
        "setting 'drive-path' is not allowed in notes"
    );

    let o = run(&["notes", "lint"], notes, &[]);
    let out = stdout(&o);
    assert!(
        out.contains("warning: block 1 (line 1), key ssh_settings: setting 'ignore-cert' is not a ssh parameter; left out\n"),
        "{out}"
    );
    assert!(
        out.ends_with("1 connection(s), 1 error(s), 1 warning(s)\n"),
        "{out}"
    );
}
