//! In-place migration: only the password pair's bytes change.

use std::collections::BTreeSet;

use pve_guac_sync::crypto::Keyring;
use pve_guac_sync::notes::{
    GuestContext, MigratedBlock, NotesPolicy, Passwords, VerifyError, migrate, parse,
    verify_migration,
};
use pve_guac_sync::secret::Secret;

fn ring() -> Keyring {
    Keyring::new(&[pve_guac_sync::crypto::generate_key()]).unwrap()
}

/// Replaces every `encrypted_password:"<token>"` the migration wrote with a
/// marker, so the rest can be compared byte for byte.
fn mask_tokens(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("encrypted_password:\"gAAAAA") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "encrypted_password:\"".len()..];
        let end = after.find('"').unwrap();
        out.push_str("ENC");
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn only_the_pair_changes_crlf_unicode_html_neighbours() {
    let text = "<p>Ünïcødé ✓ notes</p>\r\nuser:\"a\" pass:\"pä;ss\" protos:\"rdp\";user:b password:'x\"y' protos:ssh;\r\n<br>user:c pass:bare:val protos:vnc\r\n";
    let keys = ring();
    let m = migrate(text, &keys, &BTreeSet::new());
    assert_eq!(
        m.migrated
            .iter()
            .map(|b| b.block_ordinal)
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(
        mask_tokens(&m.text),
        "<p>Ünïcødé ✓ notes</p>\r\nuser:\"a\" ENC protos:\"rdp\";user:b ENC protos:ssh;\r\n<br>user:c ENC protos:vnc\r\n"
    );
    verify_migration(&m.text, &keys, &m.migrated).unwrap();
    let r = parse(&m.text).resolve(
        &GuestContext::default(),
        &NotesPolicy::default(),
        Passwords::Decrypt(&keys),
    );
    let pw: Vec<&str> = r.connections.iter().map(|c| c.password.expose()).collect();
    assert_eq!(pw, vec!["pä;ss", "x\"y", "bare:val"]);
}

#[test]
fn invalid_and_encrypted_and_skipped_blocks_stay() {
    let keys = ring();
    let token = keys.encrypt(&Secret::new("old"));
    let text = format!(
        "user:a pass:p1 pass:p2 protos:rdp;\nuser:b encrypted_password:\"{}\" protos:ssh;\nuser:c pass:p3 protos:ssh;\nuser:d pass:p4 protos:ssh;",
        token.expose()
    );
    let m = migrate(&text, &keys, &BTreeSet::from([4]));
    assert_eq!(
        m.migrated
            .iter()
            .map(|b| b.block_ordinal)
            .collect::<Vec<_>>(),
        vec![3]
    );
    let lines: Vec<&str> = m.text.lines().collect();
    let orig: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], orig[0]);
    assert_eq!(lines[1], orig[1]);
    assert_eq!(mask_tokens(lines[2]), "user:c ENC protos:ssh;");
    assert_eq!(lines[3], orig[3]);
}

#[test]
fn nothing_to_do_returns_identical_text() {
    let text = "Just prose; Owner: bob;\n";
    let m = migrate(text, &ring(), &BTreeSet::new());
    assert!(!m.changed());
    assert_eq!(m.text, text);
    // A second migration of migrated text changes nothing.
    let keys = ring();
    let once = migrate("user:a pass:b protos:ssh;", &keys, &BTreeSet::new());
    let twice = migrate(&once.text, &keys, &BTreeSet::new());
    assert_eq!(twice.text, once.text);
    assert!(!twice.changed());
}

#[test]
fn verify_detects_tampering() {
    let keys = ring();
    let m = migrate("user:a pass:b protos:ssh;", &keys, &BTreeSet::new());
    let wrong = vec![MigratedBlock {
        block_ordinal: 1,
        original: Secret::new("other"),
    }];
    assert_eq!(
        verify_migration(&m.text, &keys, &wrong),
        Err(VerifyError::Mismatch { block: 1 })
    );
    assert_eq!(
        verify_migration("user:a pass:b protos:ssh;", &keys, &m.migrated),
        Err(VerifyError::StillPlaintext { block: 1 })
    );
    assert_eq!(
        verify_migration("prose only", &keys, &m.migrated),
        Err(VerifyError::BlockMissing { block: 1 })
    );
    assert_eq!(
        verify_migration(&m.text, &ring(), &m.migrated),
        Err(VerifyError::Mismatch { block: 1 })
    );
}

#[test]
fn a_bare_password_followed_by_text_is_never_migrated() {
    // `pass:Correct Horse42` reads "Correct" and warns; encrypting it would
    // leave "Horse42" in clear beside the token.
    let keys = ring();
    let text = "user:a pass:Correct Horse42 protos:ssh;\nuser:b pass:ok protos:rdp;";
    let m = migrate(text, &keys, &BTreeSet::new());
    assert_eq!(
        m.migrated
            .iter()
            .map(|b| b.block_ordinal)
            .collect::<Vec<_>>(),
        vec![2]
    );
    assert_eq!(
        mask_tokens(&m.text),
        "user:a pass:Correct Horse42 protos:ssh;\nuser:b ENC protos:rdp;"
    );
}
