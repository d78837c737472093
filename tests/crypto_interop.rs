//! Fernet interoperability with Python's `cryptography` (the old tool's
//! library): committed vectors made by tests/vectors/make_fernet_vectors.py,
//! and a live round trip through python3 when it is available.

use std::io::Write;
use std::process::{Command, Stdio};

use pve_guac_sync::crypto::{CryptoError, KeyKind, Keyring, generate_key, passphrase_key};
use pve_guac_sync::secret::Secret;
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/fernet_vectors.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn keyring(case: &Value) -> Keyring {
    let keys: Vec<Secret> = case["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| Secret::new(k.as_str().unwrap()))
        .collect();
    Keyring::new(&keys).unwrap()
}

#[test]
fn python_tokens_decrypt_in_rust() {
    let v = vectors();
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 15);
    let mut legacy = 0;
    for case in cases {
        let ring = keyring(case);
        let token = Secret::new(case["token"].as_str().unwrap());
        let plain = ring
            .decrypt(&token)
            .unwrap_or_else(|e| panic!("{}: {e}", case["note"]));
        assert_eq!(
            plain.expose(),
            case["plaintext"].as_str().unwrap(),
            "{}",
            case["note"]
        );
        if case["form"] == "legacy" {
            assert!(token.expose().starts_with("Z0FBQUFB"));
            legacy += 1;
        }
    }
    assert!(legacy >= 4);
}

#[test]
fn python_tokens_refuse_wrong_keys() {
    let v = vectors();
    for case in v["wrong_key"].as_array().unwrap() {
        let ring = keyring(case);
        let token = Secret::new(case["token"].as_str().unwrap());
        assert_eq!(
            ring.decrypt(&token),
            Err(CryptoError::WrongKey),
            "{}",
            case["note"]
        );
    }
}

#[test]
fn passphrase_key_derivation_matches_python() {
    let v = vectors();
    for p in v["passphrase_keys"].as_array().unwrap() {
        let derived = passphrase_key(p["passphrase"].as_str().unwrap());
        assert_eq!(derived.expose(), p["fernet_key"].as_str().unwrap());
        let ring = Keyring::new(&[Secret::new(p["passphrase"].as_str().unwrap())]).unwrap();
        assert_eq!(ring.kinds(), &[KeyKind::Passphrase]);
    }
}

const PY_DECRYPT: &str = r#"
import base64, hashlib, json, sys
from cryptography.fernet import Fernet
cases = json.load(sys.stdin)
out = []
for c in cases:
    key = c["key"]
    try:
        f = Fernet(key.encode())
    except Exception:
        f = Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()))
    out.append(f.decrypt(c["token"].encode()).decode())
print(json.dumps(out))
"#;

fn python_available() -> bool {
    Command::new("python3")
        .args(["-c", "import cryptography"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn rust_tokens_decrypt_in_python() {
    if !python_available() {
        eprintln!(
            "SKIPPED rust_tokens_decrypt_in_python: python3 with `cryptography` is not installed"
        );
        return;
    }
    let std_key = generate_key();
    let plaintexts = ["S3cret", "pä;ss \"quoted\" ✓", ""];
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for key in [std_key.expose(), "a legacy passphrase"] {
        let ring = Keyring::new(&[Secret::new(key)]).unwrap();
        for p in plaintexts {
            let token = ring.encrypt(&Secret::new(p));
            assert!(
                token.expose().starts_with("gAAAAA"),
                "new tokens are standard"
            );
            cases.push(serde_json::json!({"key": key, "token": token.expose()}));
            expected.push(p);
        }
    }
    let mut child = Command::new("python3")
        .args(["-c", PY_DECRYPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&cases).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let got: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got, expected);
}
