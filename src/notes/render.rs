//! Writes a credential back as a block of text that parses to the same
//! credential (used by property tests and by tools that generate notes).

use super::block::{AccessGrant, Credential, HostOverride, PasswordSource};
use super::keys::Protocol;

/// Quotes a value so the lexer reads it back unchanged: double quotes with
/// `\"`/`\\` escapes.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn items(items: &[(String, String)]) -> String {
    items
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// One `;`-terminated block. Settings items must not contain `,` or `=` in
/// names, nor `,` in values (the format has no way to write those).
pub fn render_credential(c: &Credential) -> String {
    let mut pairs = vec![format!("user:{}", quote(&c.user))];
    match &c.password {
        PasswordSource::Plain(p) => pairs.push(format!("pass:{}", quote(p.expose()))),
        PasswordSource::Encrypted(t) => {
            pairs.push(format!("encrypted_password:{}", quote(t.expose())))
        }
    }
    let protos: Vec<&str> = c.protocols.iter().map(|p| p.as_str()).collect();
    pairs.push(format!("protos:{}", quote(&protos.join(","))));
    if let Some(port) = c.port {
        pairs.push(format!("port:{port}"));
    }
    for (p, port) in &c.protocol_ports {
        pairs.push(format!("{}_port:{port}", p.as_str()));
    }
    if let Some(t) = &c.template {
        pairs.push(format!("connection_name:{}", quote(t)));
    }
    for (p, list) in &c.settings {
        if !list.is_empty() {
            pairs.push(format!("{}_settings:{}", p.as_str(), quote(&items(list))));
        }
    }
    if !c.wol_settings.is_empty() {
        pairs.push(format!("wol_settings:{}", quote(&items(&c.wol_settings))));
    }
    if c.wol_disabled {
        pairs.push("wol_disabled:true".to_owned());
    }
    if let Some(h) = &c.host {
        let text = match h {
            HostOverride::Ipv4(ip) => ip.to_string(),
            HostOverride::Name(n) => n.clone(),
        };
        pairs.push(format!("host:{}", quote(&text)));
    }
    if let Some(g) = &c.group {
        pairs.push(format!("group:{}", quote(&g.join("/"))));
    }
    if !c.access.is_empty() {
        let list: Vec<String> = c
            .access
            .iter()
            .map(|a| match a {
                AccessGrant::User(n) => format!("user:{n}"),
                AccessGrant::Group(n) => format!("group:{n}"),
            })
            .collect();
        pairs.push(format!("access:{}", quote(&list.join(","))));
    }
    format!("{};", pairs.join(" "))
}

/// Renders a protocol list the way operators write it.
pub fn protocols(list: &[Protocol]) -> String {
    list.iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(",")
}
