//! The secret-hygiene check itself: it must find a planted secret in every
//! form it claims to cover, and (run by CI after the whole suite, see
//! `.ci/run`) every file under `target/test-logs/` plus the suite's own
//! captured output must be free of the seeded secrets.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use common::{SecretCanary, assert_no_secrets, canary::test_logs_dir};

const PLANTED: &str = "Planted-S3cret/with+odd=chars ü";

fn canary() -> SecretCanary {
    SecretCanary::default().with(PLANTED)
}

#[test]
fn a_planted_secret_is_found_plain_base64_and_url_encoded() {
    let c = canary();
    assert!(c.hits("nothing to see here").is_empty());
    assert!(
        !c.hits(&format!("log line: password={PLANTED} end"))
            .is_empty()
    );
    // Base64 inside a longer blob, at each byte alignment, both alphabets.
    for prefix in ["", "x", "xy", "xyz"] {
        let blob = format!("{prefix}{PLANTED}, trailing bytes");
        for encoded in [STANDARD.encode(&blob), URL_SAFE.encode(&blob)] {
            assert!(
                !c.hits(&format!("token {encoded} ...")).is_empty(),
                "missed at offset {}",
                prefix.len()
            );
        }
    }
    let url: String = url::form_urlencoded::byte_serialize(PLANTED.as_bytes()).collect();
    assert!(!c.hits(&format!("GET /x?password={url}")).is_empty());
    assert!(!c.hits(&url.replace('+', "%20")).is_empty());
    // Every lab secret too, e.g. the token secret.
    assert!(
        !c.hits(&format!(
            "Authorization: PVEAPIToken=x={}",
            common::TOKEN_SECRET
        ))
        .is_empty()
    );
}

#[test]
fn the_report_names_the_form_never_the_secret() {
    let hits = canary().hits(PLANTED);
    let text = format!("{hits:?}");
    assert!(!text.contains("Planted"), "{text}");
    let panic = std::panic::catch_unwind(|| canary().check("planted", PLANTED))
        .expect_err("the check fails on a planted secret");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("seeded secret found"), "{message}");
    assert!(!message.contains("Planted"), "{message}");
}

/// CI runs this after `cargo test --workspace --locked`, whose output it
/// saved in `target/test-output.log`: every captured log, stdout/stderr,
/// plan, audit event and panic message of the suite.
#[test]
#[ignore = "run by .ci/run after the whole suite"]
fn nothing_the_suite_captured_holds_a_seeded_secret() {
    let mut files = Vec::new();
    collect(&test_logs_dir(), &mut files);
    let output = test_logs_dir().join("../test-output.log");
    if output.exists() {
        files.push(output);
    }
    assert!(!files.is_empty(), "nothing captured: run the suite first");
    let canary = SecretCanary::default();
    let mut dirty = Vec::new();
    for file in &files {
        let text = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
        let hits = canary.hits(&text);
        if !hits.is_empty() {
            dirty.push(format!("{}: {hits:?}", file.display()));
        }
    }
    println!("scanned {} captured files", files.len());
    assert!(
        dirty.is_empty(),
        "seeded secrets in captured output:\n{}",
        dirty.join("\n")
    );
    assert_no_secrets("scan summary", &format!("{} files", files.len()));
}

fn collect(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}
