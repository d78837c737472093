//! Connection name templates (spec §4).

/// The default name template when neither the block, the notes nor the
/// configuration sets one.
pub const DEFAULT_TEMPLATE: &str = "{user}@{vmname}-{proto}";

/// Longest connection name a block may render, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// The values placeholders expand to.
#[derive(Debug, Clone, Default)]
pub struct TemplateValues<'a> {
    pub vmname: &'a str,
    pub user: &'a str,
    pub proto: &'a str,
    pub vmid: &'a str,
    pub node: &'a str,
    pub ip: &'a str,
    pub port: &'a str,
    pub cluster: &'a str,
    pub hostname: &'a str,
}

const IP_NAMES: [&str; 3] = ["ip", "vmip", "vm_ip"];

/// Whether a template would put a secret into a name. Matched without regard
/// to case so `{Password}` is caught as well.
pub fn mentions_password(template: &str) -> bool {
    template.to_ascii_lowercase().contains("{password}")
}

/// Whether the template needs the target address.
pub fn uses_address(template: &str) -> bool {
    IP_NAMES
        .iter()
        .any(|name| template.contains(&format!("{{{name}}}")))
}

/// Expands every known placeholder in one left-to-right pass, so text that a
/// placeholder inserted is never expanded again; unknown placeholders stay
/// verbatim and there is no brace escaping (`{{user}}` → `{admin}`).
pub fn render(template: &str, values: &TemplateValues<'_>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let expanded = after
            .find('}')
            .and_then(|close| lookup(&after[..close], values).map(|value| (value, close)));
        match expanded {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn lookup<'a>(name: &str, v: &TemplateValues<'a>) -> Option<&'a str> {
    Some(match name {
        "vmname" => v.vmname,
        "user" | "username" => v.user,
        "proto" | "protocol" => v.proto,
        "vmid" | "vm_id" => v.vmid,
        "node" | "vmnode" | "vm_node" => v.node,
        "ip" | "vmip" | "vm_ip" => v.ip,
        "port" => v.port,
        "cluster" => v.cluster,
        "hostname" | "host" => v.hostname,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_braces_and_unknown_placeholders() {
        let v = TemplateValues {
            vmname: "web01",
            user: "admin",
            ..Default::default()
        };
        assert_eq!(render("{vmname}-{{user}}", &v), "web01-{admin}");
        assert_eq!(render("{nope}-{user", &v), "{nope}-{user");
        let tricky = TemplateValues {
            vmname: "{user}",
            user: "admin",
            ..Default::default()
        };
        assert_eq!(render("{vmname}", &tricky), "{user}");
        assert!(mentions_password("x{PassWord}"));
        assert!(uses_address("{vm_ip}"));
    }
}
