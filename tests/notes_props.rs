//! Property tests for the notes grammar.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use pve_guac_sync::crypto::Keyring;
use pve_guac_sync::notes::render::render_credential;
use pve_guac_sync::notes::{
    AccessGrant, Credential, GuestContext, HostOverride, NotesPolicy, PasswordSource, Passwords,
    Protocol, migrate, parse, verify_migration,
};
use pve_guac_sync::secret::Secret;

fn ctx() -> GuestContext {
    GuestContext {
        cluster: "c".into(),
        node: "n".into(),
        vmid: 7,
        vmname: "vm".into(),
        address: Some("10.1.1.1".into()),
        hostname: "h".into(),
    }
}

/// A value as operators write them: any printable text (quotes, `;`,
/// backslashes, Unicode included) without surrounding whitespace.
fn value() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ;:'\"\\\\{}@=/.ü✓-]{1,24}"
        .prop_map(|s| s.trim().to_owned())
        .prop_filter("non-empty", |s| !s.is_empty())
}

fn name_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.-]{1,12}"
}

fn protocols() -> impl Strategy<Value = Vec<Protocol>> {
    proptest::sample::subsequence(Protocol::ALL.to_vec(), 1..=4).prop_shuffle()
}

const SETTINGS: &[(Protocol, &str)] = &[
    (Protocol::Rdp, "ignore-cert"),
    (Protocol::Rdp, "security"),
    (Protocol::Rdp, "server-layout"),
    (Protocol::Vnc, "read-only"),
    (Protocol::Vnc, "color-depth"),
    (Protocol::Ssh, "font-size"),
    (Protocol::Ssh, "command"),
    (Protocol::Telnet, "terminal-type"),
];

prop_compose! {
    fn credential()(
        user in value(),
        pass in value(),
        encrypted in any::<bool>(),
        protocols in protocols(),
        port in proptest::option::of(1u16..),
        own_ports in proptest::collection::btree_map(0usize..4, 1u16.., 0..3),
        template in proptest::option::of("[a-z {}_-]{1,20}".prop_map(|s| s.trim().to_owned()).prop_filter("t", |s| !s.is_empty() && !s.contains("{password}"))),
        settings in proptest::collection::vec((0usize..SETTINGS.len(), "[a-zA-Z0-9 ./:=-]{0,10}"), 0..4),
        wol in proptest::option::of("[0-9.]{1,15}"),
        wol_disabled in any::<bool>(),
        host in proptest::option::of(prop_oneof![
            any::<[u8; 4]>().prop_map(|o| HostOverride::Ipv4(o.into())),
            "[a-z][a-z0-9]{0,8}\\.[a-z]{2,5}".prop_map(HostOverride::Name),
        ]),
        group in proptest::option::of(proptest::collection::vec(name_text(), 1..3)),
        access in proptest::collection::vec((any::<bool>(), name_text()), 0..3),
    ) -> Credential {
        let mut settings_map: BTreeMap<Protocol, Vec<(String, String)>> = BTreeMap::new();
        for (i, v) in settings {
            let (p, name) = SETTINGS[i];
            if protocols.contains(&p) {
                settings_map.entry(p).or_default().push((name.to_owned(), v.trim().to_owned()));
            }
        }
        let mut grants: Vec<AccessGrant> = Vec::new();
        for (is_user, n) in access {
            let g = if is_user { AccessGrant::User(n) } else { AccessGrant::Group(n) };
            if !grants.contains(&g) { grants.push(g); }
        }
        Credential {
            user,
            password: if encrypted { PasswordSource::Encrypted(Secret::new(pass)) } else { PasswordSource::Plain(Secret::new(pass)) },
            protocol_ports: own_ports.into_iter().map(|(i, p)| (Protocol::ALL[i], p)).collect(),
            protocols,
            port,
            template,
            settings: settings_map,
            wol_settings: wol.map(|w| vec![("wol-broadcast-addr".to_owned(), w)]).unwrap_or_default(),
            wol_disabled,
            host,
            group,
            access: grants,
        }
    }
}

/// Free text that holds no key and no `;`.
fn prose() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,.!?<>/\r\n'ü]{0,30}"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parsing_never_panics(text in "\\PC{0,300}") {
        let parsed = parse(&text);
        let r = parsed.resolve(&ctx(), &NotesPolicy::default(), Passwords::NoKeys);
        let _ = r.connections.len() + r.errors.len();
    }

    #[test]
    fn parsing_never_panics_on_notes_like_text(
        parts in proptest::collection::vec(prop_oneof![
            Just("user:".to_owned()), Just("pass:".to_owned()), Just("protos:".to_owned()),
            Just("rdp_settings:".to_owned()), Just("confName:".to_owned()), Just("host:".to_owned()),
            Just("default_conf_name:".to_owned()), Just("port:".to_owned()), Just("access:".to_owned()),
            Just("\"".to_owned()), Just("'".to_owned()), Just(";".to_owned()), Just("\\".to_owned()),
            Just("{vmname}".to_owned()), Just("\r\n".to_owned()), Just("é".to_owned()),
            "[a-z0-9 ,=.:/-]{0,8}",
        ], 0..40)
    ) {
        let text = parts.concat();
        let parsed = parse(&text);
        for block in &parsed.blocks {
            for pair in &block.pairs {
                // Spans are on char boundaries and point at the key.
                prop_assert!(text[pair.span()].starts_with(pair.key.as_str()));
            }
            prop_assert!(text.get(block.span.clone()).is_some());
        }
        let _ = parsed.resolve(&ctx(), &NotesPolicy::default(), Passwords::NoKeys);
    }

    #[test]
    fn render_then_parse_gives_the_same_block(c in credential(), before in prose(), after in prose()) {
        let text = format!("{before}\n{}\n{after}", render_credential(&c));
        let parsed = parse(&text);
        prop_assert_eq!(parsed.blocks.len(), 1);
        prop_assert_eq!(parsed.blocks[0].credential(), Some(&c));
        // And the same connections once more through render.
        let again = render_credential(parsed.blocks[0].credential().unwrap());
        let policy = NotesPolicy {
            allow_dns_names: true,
            grantable_users: c.access.iter().filter_map(|a| match a { AccessGrant::User(n) => Some(n.clone()), _ => None }).collect(),
            grantable_groups: c.access.iter().filter_map(|a| match a { AccessGrant::Group(n) => Some(n.clone()), _ => None }).collect(),
            ..NotesPolicy::default()
        };
        let one = parse(&text).resolve(&ctx(), &policy, Passwords::Unchecked);
        let two = parse(&again).resolve(&ctx(), &policy, Passwords::Unchecked);
        prop_assert_eq!(&one.connections, &two.connections);
        // The texts differ in their lines; the errors otherwise agree.
        let found = |r: &pve_guac_sync::notes::Resolution| -> Vec<_> {
            r.errors.iter().map(|e| (e.block, e.key, e.kind.clone())).collect()
        };
        prop_assert_eq!(found(&one), found(&two));
    }

    #[test]
    fn errors_never_contain_secret_values(
        secret in "Zq[A-Za-z0-9]{10,16}",
        setting_secret in "Zs[A-Za-z0-9]{10,16}",
        variant in 0usize..10,
        decoy in "[a-z]{0,6}",
    ) {
        let keys = Keyring::new(&[Secret::new("k1")]).unwrap();
        let other = Keyring::new(&[Secret::new("k2")]).unwrap();
        let token = other.encrypt(&Secret::new(secret.clone()));
        let tok = token.expose();
        let text = match variant {
            0 => format!("user:a pass:\"{secret}\" pass:x protos:rdp;"),
            1 => format!("user:a pass:\"{secret}\" encrypted_password:\"{tok}\" protos:rdp;"),
            2 => format!("user:a encrypted_password:\"{tok}\" protos:rdp;"),
            3 => format!("user:a pass:{secret} protos:rdp rdp_settings:\"drive-path={setting_secret}\";"),
            4 => format!("user:a pass:{secret} protos:ssh ssh_settings:\"{decoy}x={setting_secret}\";"),
            5 => format!("user:a pass:\"{secret} protos:rdp"),
            6 => format!("user:a pass:{secret} {setting_secret}:x protos:rdp port:0;"),
            7 => format!("user:a pass:{secret} protos:rdp wol_settings:\"zz{decoy}={setting_secret}\";"),
            // A `,` inside a secret value: its tail must not show as a name.
            8 => format!("user:a pass:{secret} protos:ssh ssh_settings:\"passphrase=p{decoy},{}=x\";", setting_secret.to_lowercase()),
            _ => format!("user:a pass:\"{secret}\" protos:ssh connection_name:\"{{password}}\";"),
        };
        let parsed = parse(&text);
        let r = parsed.resolve(&ctx(), &NotesPolicy::default(), Passwords::Decrypt(&keys));
        // Variants 4 and 8 (unknown settings) only warn.
        prop_assert!(!r.errors.is_empty() || !r.warnings.is_empty(), "variant {} made no error", variant);
        let mut shown = String::new();
        for e in &r.errors {
            shown.push_str(&format!("{e}\n{e:?}\n{}\n", e.message()));
        }
        for w in parsed.warnings.iter().chain(&r.warnings) {
            shown.push_str(&format!("{w}\n{w:?}\n"));
        }
        let shown_lower = shown.to_lowercase();
        prop_assert!(!shown_lower.contains(&setting_secret.to_lowercase()), "settings value leaked: {}", shown);
        shown.push_str(&format!("{parsed:?}\n{:?}", r.connections));
        prop_assert!(!shown.contains(&secret), "password leaked: {}", shown);
        prop_assert!(!shown.contains(&setting_secret), "settings value leaked");
        prop_assert!(!shown.contains(tok), "ciphertext leaked");
    }

    #[test]
    fn migration_changes_only_the_password_pair(
        c in credential(), before in prose(), after in prose(), pass in value(),
    ) {
        let mut c = c;
        c.password = PasswordSource::Plain(Secret::new(pass.clone()));
        c.host = None;
        let block = render_credential(&c);
        let text = format!("{before};{block}{after}");
        let keys = Keyring::new(&[pve_guac_sync::crypto::generate_key()]).unwrap();
        let m = migrate(&text, &keys, &BTreeSet::new());
        prop_assert_eq!(m.migrated.len(), 1);
        let pair = pve_guac_sync::notes::render::quote(&pass);
        let old_pair = format!("pass:{pair}");
        let at = text.find(&old_pair).unwrap();
        let new_at = m.text.find("encrypted_password:\"").unwrap();
        prop_assert_eq!(at, new_at);
        prop_assert_eq!(&m.text[..at], &text[..at]);
        let tail_old = &text[at + old_pair.len()..];
        prop_assert!(m.text.ends_with(tail_old));
        verify_migration(&m.text, &keys, &m.migrated).unwrap();
    }
}
