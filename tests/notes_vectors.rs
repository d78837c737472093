//! Vectors from spec/notes-format.md: one test per rule, old-format cases
//! included. Each asserts the exact connections (or the exact error).

use pve_guac_sync::crypto::Keyring;
use pve_guac_sync::notes::{
    AccessGrant, BlockErrorKind, ConnectionSpec, GuestContext, NotesPolicy, Passwords, Protocol,
    WarningKind, parse,
};
use pve_guac_sync::secret::Secret;

fn ctx() -> GuestContext {
    GuestContext {
        cluster: "pve1".into(),
        node: "node1".into(),
        vmid: 101,
        vmname: "web01".into(),
        address: Some("10.0.0.5".into()),
        hostname: "guac".into(),
    }
}

type Found = (usize, Option<&'static str>, BlockErrorKind);

fn resolve_with(text: &str, policy: &NotesPolicy) -> (Vec<ConnectionSpec>, Vec<Found>) {
    let r = parse(text).resolve(&ctx(), policy, Passwords::NoKeys);
    let errors = r
        .errors
        .into_iter()
        .map(|e| (e.block, e.key, e.kind))
        .collect();
    (r.connections, errors)
}

fn ok(text: &str) -> Vec<ConnectionSpec> {
    let (conns, errors) = resolve_with(text, &NotesPolicy::default());
    assert!(errors.is_empty(), "unexpected errors: {errors:?}");
    conns
}

/// (name, protocol, port, username, password)
fn summary(conns: &[ConnectionSpec]) -> Vec<(String, &'static str, u16, String, String)> {
    conns
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                c.protocol.as_str(),
                c.port,
                c.username.clone(),
                c.password.expose().to_owned(),
            )
        })
        .collect()
}

fn s(
    name: &str,
    proto: &'static str,
    port: u16,
    user: &str,
    pass: &str,
) -> (String, &'static str, u16, String, String) {
    (name.into(), proto, port, user.into(), pass.into())
}

fn only_error(text: &str) -> (usize, Option<&'static str>, BlockErrorKind) {
    let (conns, mut errors) = resolve_with(text, &NotesPolicy::default());
    assert!(conns.is_empty(), "expected no connections, got {conns:?}");
    assert_eq!(errors.len(), 1, "errors: {errors:?}");
    errors.remove(0)
}

// ---- §3 keys and the canonical example ----

#[test]
fn v01_spec_example() {
    let text =
        "Web frontend, owned by team A.\nuser:\"admin\" pass:\"S3cret\" protos:\"rdp,ssh\";\n";
    assert_eq!(
        summary(&ok(text)),
        vec![
            s("admin@web01-rdp", "rdp", 3389, "admin", "S3cret"),
            s("admin@web01-ssh", "ssh", 22, "admin", "S3cret")
        ]
    );
}

#[test]
fn v02_username_alias() {
    assert_eq!(
        summary(&ok("username:\"bob\" pass:\"x\" protos:\"ssh\";")),
        vec![s("bob@web01-ssh", "ssh", 22, "bob", "x")]
    );
}

#[test]
fn v03_password_alias() {
    assert_eq!(
        summary(&ok("user:bob password:pw protos:vnc;")),
        vec![s("bob@web01-vnc", "vnc", 5900, "bob", "pw")]
    );
}

#[test]
fn v04_protocols_and_proto_aliases() {
    assert_eq!(
        ok("user:a pass:b protocols:telnet;")[0].protocol,
        Protocol::Telnet
    );
    assert_eq!(ok("user:a pass:b proto:ssh;")[0].port, 22);
}

#[test]
fn v05_keys_are_case_insensitive() {
    assert_eq!(
        summary(&ok("USER:\"a\" Pass:\"b\" PROTOS:\"RDP\";")),
        vec![s("a@web01-rdp", "rdp", 3389, "a", "b")]
    );
}

#[test]
fn v06_all_default_ports() {
    let conns = ok("user:a pass:b protos:\"rdp,vnc,ssh,telnet\";");
    let ports: Vec<u16> = conns.iter().map(|c| c.port).collect();
    assert_eq!(ports, vec![3389, 5900, 22, 23]);
}

#[test]
fn v07_protocol_duplicates_collapse_and_order_kept() {
    let conns = ok("user:a pass:b protos:\"ssh, RDP ,ssh,rdp\";");
    let protos: Vec<&str> = conns.iter().map(|c| c.protocol.as_str()).collect();
    assert_eq!(protos, vec!["ssh", "rdp"]);
}

#[test]
fn v08_unknown_protocol_dropped_with_warning() {
    let text = "user:a pass:b protos:\"rdp,spice\";";
    assert_eq!(ok(text).len(), 1);
    let parsed = parse(text);
    assert!(parsed.warnings.iter().any(|w| w.kind
        == WarningKind::UnknownProtocol {
            name: "spice".into()
        }));
}

#[test]
fn v09_only_unknown_protocols_is_an_error() {
    assert_eq!(
        only_error("user:a pass:b protos:\"spice,x2go\";"),
        (1, Some("protos"), BlockErrorKind::NoKnownProtocol)
    );
}

#[test]
fn v10_per_protocol_ports() {
    let conns = ok(
        "user:a pass:b protos:\"rdp,vnc,ssh,telnet\" rdp_port:13389 vnc_port:5901 ssh_port:2222 telnet_port:2323;",
    );
    let ports: Vec<u16> = conns.iter().map(|c| c.port).collect();
    assert_eq!(ports, vec![13389, 5901, 2222, 2323]);
}

#[test]
fn v11_generic_port_with_per_protocol_override() {
    let conns = ok("user:a pass:b protos:\"rdp,ssh\" port:\"4000\" ssh_port:\"2222\";");
    assert_eq!(
        summary(&conns),
        vec![
            s("a@web01-rdp", "rdp", 4000, "a", "b"),
            s("a@web01-ssh", "ssh", 2222, "a", "b")
        ]
    );
}

#[test]
fn v12_old_rdp_dash_port_reads_as_port() {
    let conns = ok("user:a pass:b protos:\"rdp,ssh\" rdp-port:3390;");
    assert_eq!(
        conns.iter().map(|c| c.port).collect::<Vec<_>>(),
        vec![3390, 3390]
    );
}

#[test]
fn v13_port_range() {
    assert_eq!(ok("user:a pass:b protos:ssh port:1;")[0].port, 1);
    assert_eq!(ok("user:a pass:b protos:ssh port:65535;")[0].port, 65535);
    for bad in ["0", "65536", "-1", "22x", "abc"] {
        let text = format!("user:a pass:b protos:ssh ssh_port:{bad};");
        assert_eq!(
            only_error(&text),
            (1, Some("ssh_port"), BlockErrorKind::InvalidPort),
            "{bad}"
        );
    }
}

#[test]
fn v14_conf_name_template() {
    assert_eq!(
        ok("user:a pass:b protos:ssh confName:\"{vmname} ({proto})\";")[0].name,
        "web01 (ssh)"
    );
}

#[test]
fn v15_connection_name_wins_over_conf_name() {
    let conns = ok("user:a pass:b protos:ssh confName:\"old\" connection_name:\"new-{proto}\";");
    assert_eq!(conns[0].name, "new-ssh");
}

#[test]
fn v16_every_placeholder() {
    let t = "{vmname}|{user}|{username}|{proto}|{protocol}|{vmid}|{vm_id}|{node}|{vmnode}|{vm_node}|{ip}|{vmip}|{vm_ip}|{port}|{cluster}|{hostname}|{host}";
    let conns = ok(&format!("user:a pass:b protos:ssh connection_name:'{t}';"));
    assert_eq!(
        conns[0].name,
        "web01|a|a|ssh|ssh|101|101|node1|node1|node1|10.0.0.5|10.0.0.5|10.0.0.5|22|pve1|guac|guac"
    );
}

#[test]
fn v17_double_braces_and_unknown_placeholders_stay() {
    let conns = ok("user:admin pass:b protos:ssh confName:\"{vmname}-{{user}} {unknown}\";");
    assert_eq!(conns[0].name, "web01-{admin} {unknown}");
}

#[test]
fn v18_password_placeholder_rejected() {
    assert_eq!(
        only_error("user:a pass:b protos:ssh confName:\"{vmname}-{password}\";"),
        (1, Some("confName"), BlockErrorKind::PasswordPlaceholder)
    );
    let (_, errors) = resolve_with("default_conf_name:\"{PASSWORD}\";", &NotesPolicy::default());
    assert_eq!(
        errors,
        vec![(
            1,
            Some("default_conf_name"),
            BlockErrorKind::PasswordPlaceholder
        )]
    );
}

#[test]
fn v19_names_up_to_128_chars() {
    let exact = "n".repeat(128);
    assert_eq!(
        ok(&format!("user:a pass:b protos:ssh confName:\"{exact}\";"))[0].name,
        exact
    );
    let long = "n".repeat(129);
    assert_eq!(
        only_error(&format!("user:a pass:b protos:ssh confName:\"{long}\";")),
        (
            1,
            Some("confName"),
            BlockErrorKind::NameTooLong { chars: 129 }
        )
    );
    // Characters, not bytes.
    let wide = "é".repeat(128);
    assert_eq!(
        ok(&format!("user:a pass:b protos:ssh confName:\"{wide}\";"))[0].name,
        wide
    );
}

#[test]
fn v20_default_conf_name_anywhere() {
    let text = "user:a pass:b protos:ssh;\nsome text\ndefault_conf_name:\"{vmid}-{user}-{proto}\";\nuser:c pass:d protos:rdp confName:own;";
    let names: Vec<String> = ok(text).into_iter().map(|c| c.name).collect();
    assert_eq!(names, vec!["101-a-ssh", "own"]);
}

#[test]
fn v21_default_conf_name_sharing_a_credential_block() {
    let text = "user:a pass:b protos:ssh default_conf_name:\"X-{user}\"; user:c pass:d protos:ssh;";
    let names: Vec<String> = ok(text).into_iter().map(|c| c.name).collect();
    assert_eq!(names, vec!["X-a", "X-c"]);
}

#[test]
fn v22_configured_default_template() {
    let policy = NotesPolicy {
        default_template: Some("{cluster}/{vmname}/{proto}".into()),
        ..Default::default()
    };
    let (conns, errors) = resolve_with("user:a pass:b protos:ssh;", &policy);
    assert!(errors.is_empty());
    assert_eq!(conns[0].name, "pve1/web01/ssh");
    let (conns, _) = resolve_with(
        "default_conf_name:\"N-{user}\"; user:a pass:b protos:ssh;",
        &policy,
    );
    assert_eq!(conns[0].name, "N-a", "notes directive beats configuration");
}

// ---- §2 value forms ----

#[test]
fn v23_single_quotes_hold_double_quotes_and_semicolons() {
    assert_eq!(
        summary(&ok("user:'a' pass:'p\"w;x' protos:'ssh';")),
        vec![s("a@web01-ssh", "ssh", 22, "a", "p\"w;x")]
    );
}

#[test]
fn v24_double_quote_escapes_and_literal_semicolon() {
    assert_eq!(
        ok(r#"user:"a" pass:"p\"w\\x;y" protos:"ssh";"#)[0]
            .password
            .expose(),
        r#"p"w\x;y"#
    );
}

#[test]
fn v25_bare_values_with_colons() {
    let conns = ok("user:admin pass:a:b protos:rdp;");
    assert_eq!(conns[0].password.expose(), "a:b");
}

#[test]
fn v26_values_are_trimmed_and_whitespace_after_colon() {
    let conns = ok("user:  \"  admin \" pass:\n  \"pw\"   protos: \" ssh \";");
    assert_eq!(
        summary(&conns),
        vec![s("admin@web01-ssh", "ssh", 22, "admin", "pw")]
    );
}

#[test]
fn v27_empty_value_means_absent() {
    assert_eq!(
        ok("user:a pass:b protos:ssh port:\"\" confName:\"\";")[0].name,
        "a@web01-ssh"
    );
    assert_eq!(
        only_error("user:a pass:\"\" protos:ssh;"),
        (1, Some("pass"), BlockErrorKind::MissingPassword)
    );
}

// ---- §1 blocks ----

#[test]
fn v28_multi_line_block() {
    let text = "user:\"a\"\npass:\"b\"\n\nprotos:\"rdp\"\nrdp_port:\"3390\"\n;";
    assert_eq!(
        summary(&ok(text)),
        vec![s("a@web01-rdp", "rdp", 3390, "a", "b")]
    );
}

#[test]
fn v29_crlf_notes() {
    let text = "Owner: ops\r\nuser:\"a\"\r\npass:\"b\" protos:\"ssh\";\r\nuser:\"c\" pass:\"d\"\r\nprotos:\"vnc\";\r\n";
    let p = parse(text);
    assert_eq!(p.blocks.len(), 2);
    assert_eq!(p.blocks[1].line, 4);
    assert_eq!(
        summary(&ok(text)),
        vec![
            s("a@web01-ssh", "ssh", 22, "a", "b"),
            s("c@web01-vnc", "vnc", 5900, "c", "d")
        ]
    );
}

#[test]
fn v30_free_text_before_and_between_blocks() {
    let text = "Owner: alice; Backups nightly. Don't reboot!\nuser:a pass:b protos:ssh;\nSee wiki.\nuser:c pass:d protos:rdp;";
    let parsed = parse(text);
    assert_eq!(parsed.blocks.len(), 2, "Owner: alice; is prose");
    assert_eq!(parsed.blocks[0].ordinal, 1);
    assert_eq!(ok(text).len(), 2);
}

#[test]
fn v31_unknown_key_right_before_block_is_ignored() {
    let text = "Owner: alice user:a pass:b protos:ssh;";
    assert_eq!(ok(text).len(), 1);
    assert!(
        parse(text)
            .warnings
            .iter()
            .any(|w| w.kind == WarningKind::UnknownKey && w.line == 1)
    );
}

#[test]
fn v32_unterminated_last_block_accepted_with_warning() {
    let text = "user:a pass:b protos:ssh; user:c pass:d protos:rdp";
    assert_eq!(ok(text).len(), 2);
    let warnings = parse(text).warnings;
    assert_eq!(warnings.len(), 1);
    assert_eq!(
        (warnings[0].block, &warnings[0].kind),
        (2, &WarningKind::Unterminated)
    );
}

#[test]
fn v33_html_wrapping() {
    let text = "<p>Web server</p><p>user:\"a\" pass:\"b\" protos:\"rdp\";</p>\n<div>user:\"c\"<br>pass:\"d\"<br/>protos:\"ssh\";<br></div>";
    assert_eq!(
        summary(&ok(text)),
        vec![
            s("a@web01-rdp", "rdp", 3389, "a", "b"),
            s("c@web01-ssh", "ssh", 22, "c", "d")
        ]
    );
}

#[test]
fn v34_neighbouring_blocks_on_one_line() {
    let conns = ok("user:a pass:b protos:ssh;user:c pass:d protos:ssh;");
    assert_eq!(
        conns
            .iter()
            .map(|c| c.username.as_str())
            .collect::<Vec<_>>(),
        vec!["a", "c"]
    );
}

#[test]
fn v35_unicode_values() {
    let conns = ok(
        "Ünïcødé prose ✓\nuser:\"jürgen\" pass:\"pässwörd✓\" protos:ssh confName:\"{user}@{vmname} ✓\";",
    );
    assert_eq!(
        summary(&conns),
        vec![s("jürgen@web01 ✓", "ssh", 22, "jürgen", "pässwörd✓")]
    );
}

// ---- errors: one block only ----

#[test]
fn v36_bad_block_does_not_stop_others() {
    let text = "user:a protos:ssh;\nuser:c pass:d protos:ssh;";
    let (conns, errors) = resolve_with(text, &NotesPolicy::default());
    assert_eq!(conns.len(), 1);
    assert_eq!(
        errors,
        vec![(1, Some("pass"), BlockErrorKind::MissingPassword)]
    );
}

#[test]
fn v37_missing_user_and_protocols() {
    assert_eq!(
        only_error("pass:b protos:ssh;"),
        (1, Some("user"), BlockErrorKind::MissingUser)
    );
    assert_eq!(
        only_error("user:a pass:b;"),
        (1, Some("protos"), BlockErrorKind::MissingProtocols)
    );
}

#[test]
fn v38_duplicate_key_and_alias_is_an_error_never_last_wins() {
    assert_eq!(
        only_error("user:a pass:b pass:c protos:ssh;"),
        (1, Some("pass"), BlockErrorKind::DuplicateKey)
    );
    assert_eq!(
        only_error("user:a username:b pass:c protos:ssh;"),
        (1, Some("user"), BlockErrorKind::DuplicateKey)
    );
    assert_eq!(
        only_error("user:a pass:c protos:ssh port:1 rdp-port:2;"),
        (1, Some("port"), BlockErrorKind::DuplicateKey)
    );
}

#[test]
fn v39_plain_and_encrypted_password_together() {
    assert_eq!(
        only_error("user:a pass:b encrypted_password:\"gAAAAAxyz\" protos:ssh;"),
        (1, Some("encrypted_password"), BlockErrorKind::BothPasswords)
    );
}

#[test]
fn v40_unterminated_quote_is_an_error() {
    let (conns, errors) = resolve_with("user:a pass:\"b protos:ssh;", &NotesPolicy::default());
    assert!(conns.is_empty());
    assert_eq!(errors[0].2, BlockErrorKind::UnterminatedQuote);
}

#[test]
fn v41_error_reports_line_of_key() {
    let p = parse("intro\n\nuser:a\npass:b\nprotos:ssh\nssh_port:99999;");
    let e = p.errors().next().unwrap();
    assert_eq!((e.block, e.line, e.key), (1, 6, Some("ssh_port")));
    assert_eq!(
        e.to_string(),
        "block 1 (line 6), key ssh_port: port must be a number from 1 to 65535"
    );
    assert_eq!(
        e.describe(&ctx()),
        "pve1/node1/101 (web01): block 1 (line 6), key ssh_port: port must be a number from 1 to 65535"
    );
}

// ---- §6 settings ----

#[test]
fn v42_settings_applied_per_protocol_with_booleans() {
    let text = "user:a pass:b protos:\"rdp,vnc\" rdp_settings:\"ignore-cert=YES,security=nla,enable-wallpaper=no,junk\" vncSettings:\"read-only=1,color-depth=16\";";
    let conns = ok(text);
    assert_eq!(
        conns[0].settings,
        [
            ("enable-wallpaper", "false"),
            ("ignore-cert", "true"),
            ("security", "nla")
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into()
    );
    assert_eq!(
        conns[1].settings,
        [("color-depth", "16"), ("read-only", "true")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into()
    );
}

#[test]
fn v43_denied_settings() {
    for name in [
        "hostname",
        "port",
        "password",
        "drive-path",
        "recording-path",
        "remote-app",
        "initial-program",
        "static-channels",
        "printer-name",
        "gateway-hostname",
    ] {
        let text = format!("user:a pass:b protos:rdp rdp_settings:\"{name}=x\";");
        assert_eq!(
            only_error(&text),
            (
                1,
                Some("rdp_settings"),
                BlockErrorKind::DeniedSetting { name: name.into() }
            )
        );
    }
    assert_eq!(
        only_error("user:a pass:b protos:ssh ssh_settings:\"typescript-path=/tmp\";"),
        (
            1,
            Some("ssh_settings"),
            BlockErrorKind::DeniedSetting {
                name: "typescript-path".into()
            }
        )
    );
}

#[test]
fn v44_unknown_setting_is_a_warning_and_left_out() {
    // A typo, or a name of another protocol or of an old Guacamole release:
    // the block still yields its connection, without that parameter.
    let r = parse(
        "user:a pass:b protos:ssh ssh_settings:\"ignore-cert=true,font-size=12,enable-audio-typo=1\";",
    )
    .resolve(&ctx(), &NotesPolicy::default(), Passwords::NoKeys);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.connections.len(), 1);
    assert_eq!(
        r.connections[0].settings,
        [("font-size".to_owned(), "12".to_owned())].into()
    );
    let shown: Vec<(usize, Option<&str>, WarningKind)> = r
        .warnings
        .iter()
        .map(|w| (w.block, w.key, w.kind.clone()))
        .collect();
    assert_eq!(
        shown,
        vec![
            (
                1,
                Some("ssh_settings"),
                WarningKind::UnknownSetting {
                    protocol: Protocol::Ssh,
                    name: Some("ignore-cert".into())
                }
            ),
            (
                1,
                Some("ssh_settings"),
                WarningKind::UnknownSetting {
                    protocol: Protocol::Ssh,
                    name: Some("enable-audio-typo".into())
                }
            ),
        ]
    );
    assert_eq!(
        r.warnings[0].to_string(),
        "block 1 (line 1): setting 'ignore-cert' is not a ssh parameter; left out"
    );
}

#[test]
fn v44b_denied_setting_stays_an_error_beside_unknown_ones() {
    assert_eq!(
        only_error("user:a pass:b protos:rdp rdp_settings:\"typo-x=1,drive-path=/srv\";"),
        (
            1,
            Some("rdp_settings"),
            BlockErrorKind::DeniedSetting {
                name: "drive-path".into()
            }
        )
    );
}

#[test]
fn v44c_a_comma_inside_a_secret_value_never_shows_as_a_setting_name() {
    // `passphrase=ab,cd=ef`: "cd" is the passphrase's tail, not a name.
    let r = parse("user:a pass:b protos:ssh ssh_settings:\"passphrase=Tail1,LeakedPart=x\";")
        .resolve(&ctx(), &NotesPolicy::default(), Passwords::NoKeys);
    assert_eq!(r.connections.len(), 1);
    let text: Vec<String> = r.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        vec![
            "block 1 (line 1): an item is not a ssh parameter; left out (name not shown: it may be part of a value)"
        ]
    );
    assert!(
        !format!("{:?}", r.warnings)
            .to_lowercase()
            .contains("leaked")
    );
    // A name that is not shaped like a parameter name is not echoed either.
    let r = parse("user:a pass:b protos:ssh ssh_settings:\"we!rd stuff=1\";").resolve(
        &ctx(),
        &NotesPolicy::default(),
        Passwords::NoKeys,
    );
    assert_eq!(
        r.warnings[0].kind,
        WarningKind::UnknownSetting {
            protocol: Protocol::Ssh,
            name: None
        }
    );
}

#[test]
fn v45_extra_allowed_settings_from_configuration() {
    let mut policy = NotesPolicy::default();
    policy
        .extra_allowed_settings
        .insert(Protocol::Rdp, ["drive-path".to_owned()].into());
    let (conns, errors) = resolve_with(
        "user:a pass:b protos:rdp rdp_settings:\"drive-path=/srv/x\";",
        &policy,
    );
    assert!(errors.is_empty());
    assert_eq!(
        conns[0].settings.get("drive-path").map(String::as_str),
        Some("/srv/x")
    );
}

#[test]
fn v46_settings_for_unlisted_protocol_are_ignored() {
    let conns = ok("user:a pass:b protos:ssh rdp_settings:\"ignore-cert=true\";");
    assert!(conns[0].settings.is_empty());
}

#[test]
fn v47_wol_settings_prefix_optional_and_disable() {
    let conns = ok(
        "user:a pass:b protos:\"rdp,ssh\" wolSettings:\"broadcast-addr=10.0.0.255,wol-send-packet=Yes\";",
    );
    for c in &conns {
        assert_eq!(
            c.wol.get("wol-broadcast-addr").map(String::as_str),
            Some("10.0.0.255")
        );
        assert_eq!(
            c.wol.get("wol-send-packet").map(String::as_str),
            Some("true")
        );
    }
    let conns = ok("user:a pass:b protos:rdp wol_settings:\"udp-port=9\" wol_disabled:YES;");
    assert!(conns[0].wol_disabled && conns[0].wol.is_empty());
    assert!(!ok("user:a pass:b protos:rdp wolDisabled:off;")[0].wol_disabled);
    assert_eq!(
        only_error("user:a pass:b protos:rdp wol_settings:\"magic=1\";"),
        (
            1,
            Some("wol_settings"),
            BlockErrorKind::UnknownWolSetting {
                name: "magic".into()
            }
        )
    );
}

// ---- host, group, access ----

#[test]
fn v48_host_override_skips_discovery() {
    let text = "user:a pass:b protos:ssh host:192.168.1.7 confName:\"{ip}\";";
    let parsed = parse(text);
    assert!(!parsed.needs_discovery());
    let mut c = ctx();
    c.address = None;
    let r = parsed.resolve(&c, &NotesPolicy::default(), Passwords::NoKeys);
    assert_eq!(
        r.connections[0].host_override.as_deref(),
        Some("192.168.1.7")
    );
    assert_eq!(r.connections[0].name, "192.168.1.7");
    assert!(parse("user:a pass:b protos:ssh;").needs_discovery());
}

#[test]
fn v49_host_must_lie_in_allowed_ranges() {
    let policy = NotesPolicy {
        allowed_networks: vec!["10.0.0.0/8".parse().unwrap()],
        ..Default::default()
    };
    let (conns, errors) = resolve_with("user:a pass:b protos:ssh ip:10.1.2.3;", &policy);
    assert!(errors.is_empty() && conns.len() == 1);
    let (conns, errors) = resolve_with("user:a pass:b protos:ssh ip:192.168.1.1;", &policy);
    assert!(conns.is_empty());
    assert_eq!(
        errors,
        vec![(1, Some("host"), BlockErrorKind::AddressNotAllowed)]
    );
}

#[test]
fn v50_dns_names_only_where_allowed() {
    assert_eq!(
        only_error("user:a pass:b protos:ssh host:db.example.com;"),
        (1, Some("host"), BlockErrorKind::DnsNameNotAllowed)
    );
    let policy = NotesPolicy {
        allow_dns_names: true,
        ..Default::default()
    };
    let (conns, _) = resolve_with("user:a pass:b protos:ssh host:DB.example.com;", &policy);
    assert_eq!(conns[0].host_override.as_deref(), Some("db.example.com"));
    assert_eq!(
        only_error("user:a pass:b protos:ssh host:\"::1\";").2,
        BlockErrorKind::Ipv6Host
    );
    assert_eq!(
        only_error("user:a pass:b protos:ssh host:10.0.0.300;").2,
        BlockErrorKind::InvalidHost
    );
}

#[test]
fn v51_group_path() {
    assert_eq!(
        ok("user:a pass:b protos:ssh group:\"/Lab/Web/\";")[0].group,
        Some(vec!["Lab".to_owned(), "Web".to_owned()])
    );
    assert_eq!(
        only_error("user:a pass:b protos:ssh group:\"Lab//Web\";"),
        (1, Some("group"), BlockErrorKind::InvalidGroup)
    );
}

#[test]
fn v52_access_only_where_configuration_allows() {
    // A name the configuration does not allow is left out; the block's
    // connections are still made (the engine warns about the name).
    let (conns, errors) = resolve_with(
        "user:a pass:b protos:ssh access:\"user:alice\";",
        &NotesPolicy::default(),
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(conns.len(), 1);
    assert!(conns[0].access.is_empty());
    let policy = NotesPolicy {
        grantable_users: ["alice".to_owned()].into(),
        grantable_groups: ["ops".to_owned()].into(),
        ..Default::default()
    };
    let (conns, errors) = resolve_with(
        "user:a pass:b protos:ssh access:\"user:alice, group:ops, user:mallory\";",
        &policy,
    );
    assert!(errors.is_empty());
    assert_eq!(
        conns[0].access,
        vec![
            AccessGrant::User("alice".into()),
            AccessGrant::Group("ops".into())
        ]
    );
    assert_eq!(
        only_error("user:a pass:b protos:ssh access:\"alice\";").2,
        BlockErrorKind::InvalidAccess
    );
}

// ---- identities and encryption ----

#[test]
fn v53_identity_ordinals_count_repeats_including_bad_blocks() {
    let text = "user:a pass:b protos:\"rdp,ssh\"; user:a protos:rdp; user:a pass:c protos:rdp;";
    let p = parse(text);
    let ids: Vec<(String, &str, u32)> = p
        .blocks
        .iter()
        .flat_map(|b| {
            b.identities
                .iter()
                .map(|i| (i.user.clone(), i.protocol.as_str(), i.ordinal))
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            ("a".into(), "rdp", 0),
            ("a".into(), "ssh", 0),
            ("a".into(), "rdp", 1),
            ("a".into(), "rdp", 2)
        ]
    );
    let r = p.resolve(&ctx(), &NotesPolicy::default(), Passwords::NoKeys);
    let last = r.connections.last().unwrap();
    assert_eq!((last.block_ordinal, last.ordinal_in_guest), (3, 2));
    assert_eq!(
        p.blocks[1].user_protocols(),
        vec![("a".to_owned(), Protocol::Rdp)]
    );
}

#[test]
fn v54_encrypted_password_standard_and_legacy() {
    use base64::Engine;
    let ring = Keyring::new(&[Secret::new("legacy passphrase")]).unwrap();
    let token = ring.encrypt(&Secret::new("Secr3t"));
    let legacy = base64::engine::general_purpose::URL_SAFE.encode(token.expose());
    let text = format!(
        "user:a encrypted_password:\"{}\" protos:ssh;\nuser:b encrypted_password:{legacy} protos:ssh;",
        token.expose()
    );
    let r = parse(&text).resolve(&ctx(), &NotesPolicy::default(), Passwords::Decrypt(&ring));
    assert!(r.errors.is_empty());
    assert_eq!(
        r.connections
            .iter()
            .map(|c| c.password.expose())
            .collect::<Vec<_>>(),
        vec!["Secr3t", "Secr3t"]
    );
}

#[test]
fn v55_wrong_key_and_no_key_are_block_errors() {
    let ring = Keyring::new(&[Secret::new("one")]).unwrap();
    let other = Keyring::new(&[Secret::new("two")]).unwrap();
    let token = ring.encrypt(&Secret::new("pw"));
    let text = format!(
        "user:a encrypted_password:\"{}\" protos:ssh; user:b pass:c protos:ssh;",
        token.expose()
    );
    let parsed = parse(&text);
    let r = parsed.resolve(&ctx(), &NotesPolicy::default(), Passwords::Decrypt(&other));
    assert_eq!(r.connections.len(), 1);
    assert_eq!(r.errors[0].kind, BlockErrorKind::WrongKey);
    assert!(!r.errors[0].to_string().contains(token.expose()));
    let r = parsed.resolve(&ctx(), &NotesPolicy::default(), Passwords::NoKeys);
    assert_eq!(r.errors[0].kind, BlockErrorKind::NoKey);
}

#[test]
fn v56_address_placeholder_needs_an_address() {
    let mut c = ctx();
    c.address = None;
    let p = parse("user:a pass:b protos:ssh confName:\"{vmname}-{ip}\"; user:c pass:d protos:ssh;");
    let r = p.resolve(&c, &NotesPolicy::default(), Passwords::NoKeys);
    assert_eq!(r.connections.len(), 1);
    assert_eq!(r.errors[0].kind, BlockErrorKind::AddressUnknown);
}

#[test]
fn v57_text_after_a_bare_value_warns() {
    let text = "user:a pass:my secret protos:\"rdp\";";
    assert_eq!(ok(text)[0].password.expose(), "my");
    let w = parse(text).warnings;
    assert_eq!(w.len(), 1);
    assert_eq!(
        (w[0].key, &w[0].kind),
        (Some("pass"), &WarningKind::TextAfterBareValue)
    );
    assert!(!w[0].to_string().contains("secret"));
    // Quoted values followed by HTML, and prose before a block, do not warn.
    assert!(
        parse("Owner: alice user:\"a\"<br>pass:\"b\"<br>protos:\"ssh\";</p>")
            .warnings
            .iter()
            .all(|w| w.kind != WarningKind::TextAfterBareValue)
    );
}

#[test]
fn v48_audio_servername_is_denied() {
    for value in [
        "tcp:198.51.100.99:4713",
        "unix:/run/pulse/native",
        "10.0.0.9",
    ] {
        assert_eq!(
            only_error(&format!(
                "user:a pass:b protos:vnc vnc_settings:\"enable-audio=true,audio-servername={value}\";"
            )),
            (
                1,
                Some("vnc_settings"),
                BlockErrorKind::DeniedSetting {
                    name: "audio-servername".into()
                }
            )
        );
    }
}

#[test]
fn v49_wol_broadcast_must_lie_in_the_allowed_ranges() {
    let policy = NotesPolicy {
        allowed_networks: vec!["10.0.0.0/24".parse().unwrap()],
        ..NotesPolicy::default()
    };
    let (conns, errors) = resolve_with(
        "user:a pass:b protos:rdp wol_settings:\"send-packet=true,broadcast-addr=10.0.0.255\";",
        &policy,
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        conns[0].wol.get("wol-broadcast-addr").map(String::as_str),
        Some("10.0.0.255")
    );
    for bad in ["198.51.100.255", "255.255.255.255", "evil.example"] {
        let (conns, errors) = resolve_with(
            &format!("user:a pass:b protos:rdp wol_settings:\"broadcast-addr={bad}\";"),
            &policy,
        );
        assert!(conns.is_empty());
        assert_eq!(
            errors,
            vec![(
                1,
                Some("wol_settings"),
                BlockErrorKind::SettingAddressNotAllowed {
                    name: "wol-broadcast-addr".into()
                }
            )],
            "{bad}"
        );
    }
    // Without ranges any IPv4 address goes, but never a name.
    let (_, errors) = resolve_with(
        "user:a pass:b protos:rdp wol_settings:\"broadcast-addr=evil.example\";",
        &NotesPolicy::default(),
    );
    assert_eq!(errors.len(), 1);
    assert!(ok("user:a pass:b protos:rdp wol_settings:\"broadcast-addr=192.0.2.255\";").len() == 1);
}

#[test]
fn v49b_operator_allowed_address_settings_are_checked_too() {
    let mut policy = NotesPolicy {
        allowed_networks: vec!["10.0.0.0/24".parse().unwrap()],
        ..NotesPolicy::default()
    };
    policy
        .extra_allowed_settings
        .insert(Protocol::Rdp, ["gateway-hostname".to_owned()].into());
    let (_, errors) = resolve_with(
        "user:a pass:b protos:rdp rdp_settings:\"gateway-hostname=203.0.113.7\";",
        &policy,
    );
    assert_eq!(
        errors,
        vec![(
            1,
            Some("rdp_settings"),
            BlockErrorKind::SettingAddressNotAllowed {
                name: "gateway-hostname".into()
            }
        )]
    );
    let (conns, errors) = resolve_with(
        "user:a pass:b protos:rdp rdp_settings:\"gateway-hostname=10.0.0.7\";",
        &policy,
    );
    assert!(errors.is_empty());
    assert_eq!(conns.len(), 1);
}

#[test]
fn v50_control_characters_never_reach_names_or_messages() {
    // A newline in a name would forge a line in the text log.
    assert_eq!(
        only_error("user:a pass:b protos:ssh confName:\"x\nINFO forged\";"),
        (1, Some("confName"), BlockErrorKind::NameHasControl)
    );
    assert_eq!(
        only_error("user:\"a\u{7}b\" pass:b protos:ssh;"),
        (1, Some("user"), BlockErrorKind::NameHasControl)
    );
    let r = parse("user:a pass:b protos:\"ssh,rd\u{1b}[2Jp\";").resolve(
        &ctx(),
        &NotesPolicy::default(),
        Passwords::NoKeys,
    );
    let shown = parse("user:a pass:b protos:\"ssh,rd\u{1b}[2Jp\";").warnings[0].to_string();
    assert_eq!(r.connections.len(), 1);
    assert!(!shown.chars().any(char::is_control), "{shown:?}");
    assert!(shown.contains("rd\\u{1b}[2Jp"), "{shown}");
}
