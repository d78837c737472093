//! `test-auth` against the lab: every check passes for the example
//! accounts; a missing privilege, a non-admin Guacamole account and a wrong
//! TLS pin each fail with a line naming the cause.

mod common;

use std::process::Output;

use common::*;
use pve_guac_lab::LabSeed;
use pve_guac_lab::guacamole::{GuacamoleSeed, UserSeed};
use pve_guac_lab::proxmox::ClusterSeed;

async fn test_auth(setup: &Setup) -> (i32, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pve-guac-sync"));
    cmd.arg("--config").arg(&setup.config).arg("test-auth");
    let out: Output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains(TOKEN_SECRET), "secret leaked: {text}");
    (out.status.code().unwrap(), text)
}

const SYNC: &str = "  auto_encrypt: true";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_accounts_pass_every_check() {
    let lab = lab(LabSeed::default()).await;
    let (code, text) = test_auth(&config(&lab, SYNC)).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("VM.Config.Options"), "{text}");
    assert!(text.contains("all checks passed"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_privilege_is_named_with_the_feature_that_needs_it() {
    let mut cluster = ClusterSeed::example("lab");
    for role in cluster.roles.iter_mut().filter(|r| r.name == "GuacSync") {
        role.privs.retain(|p| p != "VM.Config.Options");
    }
    let lab = lab(LabSeed::with_clusters(vec![cluster])).await;
    let (code, text) = test_auth(&config(&lab, SYNC)).await;
    assert_eq!(code, 1, "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("VM.Config.Options"))
        .unwrap();
    assert!(line.starts_with("  FAIL"), "{line}");
    assert!(line.contains("note write-back"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guacamole_account_without_rights_fails() {
    let lab = lab(LabSeed {
        guacamole: GuacamoleSeed::default().user(UserSeed::new("guacadmin", "guacadmin")),
        ..LabSeed::default()
    })
    .await;
    let (code, text) = test_auth(&config(&lab, SYNC)).await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("FAIL") && l.contains("CREATE_CONNECTION")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_tls_pin_is_refused_clearly() {
    let lab = lab(LabSeed::default()).await;
    let setup = config(&lab, SYNC);
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let wrong = "AA:".repeat(31) + "AA";
    std::fs::write(
        &setup.config,
        text.replace(&lab.fingerprint_sha256(), &wrong),
    )
    .unwrap();
    let (code, text) = test_auth(&setup).await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("certificate fingerprint does not match the pinned fingerprint"),
        "{text}"
    );
}
