//! Fuzz target: the notes parser and resolver must never panic, every span
//! they report must slice the input, and migration must keep every byte
//! outside the rewritten pairs.
#![no_main]

use std::collections::BTreeSet;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pve_guac_sync::crypto::Keyring;
use pve_guac_sync::notes::{GuestContext, NotesPolicy, Passwords, migrate, parse};
use pve_guac_sync::secret::Secret;

fn keyring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(|| Keyring::new(&[Secret::new("fuzz passphrase")]).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse(text);
    for block in &parsed.blocks {
        assert!(text.get(block.span.clone()).is_some());
        for pair in &block.pairs {
            assert!(text[pair.span()].starts_with(pair.key.as_str()));
        }
    }
    let ctx = GuestContext {
        cluster: "c".into(),
        node: "n".into(),
        vmid: 1,
        vmname: "vm".into(),
        address: Some("10.0.0.1".into()),
        hostname: "h".into(),
    };
    let policy = NotesPolicy {
        allow_dns_names: true,
        ..NotesPolicy::default()
    };
    let _ = parsed.resolve(&ctx, &policy, Passwords::Decrypt(keyring()));
    let m = migrate(text, keyring(), &BTreeSet::new());
    if m.migrated.is_empty() {
        assert_eq!(m.text, text);
    } else {
        pve_guac_sync::notes::verify_migration(&m.text, keyring(), &m.migrated).unwrap();
    }
});
