//! How config values are stored (§6.1, §6.3): `description` rules for VMs
//! and CTs, NIC property strings (MAC generation, key order), and what an
//! `agent` value means.

use super::seed::{GuestKind, NetSeed};

/// `agent` value → enabled? (`1`, `enabled=1,…`; first bare value wins).
pub fn agent_enabled(v: &str) -> bool {
    for part in v.split(',') {
        match part.split_once('=') {
            None => return part.trim() == "1",
            Some(("enabled", x)) => return matches!(x, "1" | "yes" | "on" | "true"),
            _ => {}
        }
    }
    false
}

/// How a written `description` changes the stored one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DescriptionChange {
    Unchanged,
    Remove,
    Set(String),
}

/// §6.3: VM → trailing whitespace stripped (only-newlines → no change);
/// CT → one line each with `\n`, trailing empty lines dropped.
pub fn store_description(kind: GuestKind, input: &str) -> DescriptionChange {
    if input.is_empty() || input == "0" {
        return DescriptionChange::Remove;
    }
    match kind {
        GuestKind::Qemu => {
            if input.chars().all(|c| c == '\n') {
                return DescriptionChange::Unchanged;
            }
            let t = input.trim_end();
            if t.is_empty() {
                DescriptionChange::Remove
            } else {
                DescriptionChange::Set(t.to_string())
            }
        }
        GuestKind::Lxc => {
            let mut lines: Vec<&str> = input.split('\n').collect();
            while lines.last().is_some_and(|l| l.is_empty()) {
                lines.pop();
            }
            if lines.is_empty() {
                return DescriptionChange::Remove;
            }
            DescriptionChange::Set(lines.iter().map(|l| format!("{l}\n")).collect())
        }
    }
}

const VM_MODELS: &[&str] = &[
    "virtio", "e1000", "e1000e", "rtl8139", "vmxnet3", "i82551", "i82557b", "i82559er", "ne2k_isa",
    "ne2k_pci", "pcnet",
];

pub fn vm_net_string(model: &str, mac: &str, net: &NetSeed) -> String {
    let mut s = format!("{model}={mac},bridge={}", net.bridge);
    if net.firewall {
        s.push_str(",firewall=1");
    }
    if let Some(tag) = net.tag {
        s.push_str(&format!(",tag={tag}"));
    }
    s
}

pub fn ct_net_string(index: usize, mac: &str, net: &NetSeed) -> String {
    let mut parts = vec![
        format!("bridge={}", net.bridge),
        format!("hwaddr={mac}"),
        format!(
            "ip={}",
            net.config_ip.clone().unwrap_or_else(|| "dhcp".into())
        ),
        "type=veth".to_string(),
    ];
    if net.firewall {
        parts.push("firewall=1".into());
    }
    if let Some(gw) = &net.gateway {
        parts.push(format!("gw={gw}"));
    }
    if let Some(tag) = net.tag {
        parts.push(format!("tag={tag}"));
    }
    parts.sort();
    format!("name=eth{index},{}", parts.join(","))
}

fn random_mac() -> String {
    let b: [u8; 3] = rand::random();
    format!("BC:24:11:{:02X}:{:02X}:{:02X}", b[0], b[1], b[2])
}

/// Normalise a written `netX`: model (VM) / `name` (CT) first, MAC
/// generated when missing, other keys sorted.
pub fn normalise_net(kind: GuestKind, value: &str) -> Result<String, String> {
    let mut head: Option<String> = None;
    let mut rest: Vec<(String, String)> = Vec::new();
    for part in value.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        match kind {
            GuestKind::Qemu if VM_MODELS.contains(&k) => {
                let mac = if v.is_empty() {
                    random_mac()
                } else {
                    v.to_string()
                };
                head = Some(format!("{k}={mac}"));
            }
            GuestKind::Qemu if k == "model" || k == "macaddr" => rest.push((k.into(), v.into())),
            GuestKind::Lxc if k == "name" => head = Some(format!("name={v}")),
            _ => rest.push((k.to_string(), v.to_string())),
        }
    }
    // `model=virtio,macaddr=…` is the long form of `virtio=…`.
    if kind == GuestKind::Qemu && head.is_none() {
        let model = rest
            .iter()
            .find(|(k, _)| k == "model")
            .map(|(_, v)| v.clone());
        if let Some(m) = model.filter(|m| VM_MODELS.contains(&m.as_str())) {
            let mac = rest
                .iter()
                .find(|(k, _)| k == "macaddr")
                .map(|(_, v)| v.clone())
                .unwrap_or_else(random_mac);
            head = Some(format!("{m}={mac}"));
        }
        rest.retain(|(k, _)| k != "model" && k != "macaddr");
    }
    let Some(head) = head else {
        let missing = if kind == GuestKind::Qemu {
            "model"
        } else {
            "name"
        };
        return Err(format!(
            "invalid format - format error\n{missing}: property is missing and it is not optional\n"
        ));
    };
    if kind == GuestKind::Lxc && !rest.iter().any(|(k, _)| k == "hwaddr") {
        rest.push(("hwaddr".into(), random_mac()));
    }
    rest.sort();
    let mut out = head;
    for (k, v) in rest {
        out.push_str(&format!(",{k}={v}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use DescriptionChange::*;

    #[test]
    fn description_table_vm() {
        let vm = |s| store_description(GuestKind::Qemu, s);
        assert_eq!(vm("a\nb"), Set("a\nb".into()));
        assert_eq!(vm("a\n\nb\n\n\n"), Set("a\n\nb".into()));
        assert_eq!(vm("  x  \n"), Set("  x".into()));
        assert_eq!(vm("\nfirst line empty"), Set("\nfirst line empty".into()));
        assert_eq!(vm("x\r\ny"), Set("x\r\ny".into()));
        assert_eq!(vm(""), Remove);
        assert_eq!(vm("0"), Remove);
        assert_eq!(vm("\n\n"), Unchanged);
        assert_eq!(vm("   "), Remove);
    }

    #[test]
    fn description_table_ct() {
        let ct = |s| store_description(GuestKind::Lxc, s);
        assert_eq!(ct("a\nb"), Set("a\nb\n".into()));
        assert_eq!(ct("a\n\nb\n\n\n"), Set("a\n\nb\n".into()));
        assert_eq!(ct("  x  \n"), Set("  x  \n".into()));
        assert_eq!(ct("\nfirst line empty"), Set("\nfirst line empty\n".into()));
        assert_eq!(ct("x\r\ny"), Set("x\r\ny\n".into()));
        assert_eq!(ct("\n\n"), Remove);
        assert_eq!(ct("   "), Set("   \n".into()));
    }

    #[test]
    fn nets_are_normalised() {
        let n = normalise_net(
            GuestKind::Qemu,
            "virtio=bc:24:11:00:00:01,firewall=1,bridge=vmbr0",
        )
        .unwrap();
        assert_eq!(n, "virtio=bc:24:11:00:00:01,bridge=vmbr0,firewall=1");
        let g = normalise_net(GuestKind::Qemu, "bridge=vmbr0,virtio").unwrap();
        assert!(g.starts_with("virtio=BC:24:11:") && g.ends_with(",bridge=vmbr0"));
        assert!(normalise_net(GuestKind::Qemu, "bridge=vmbr0").is_err());
    }

    #[test]
    fn agent_values() {
        assert!(agent_enabled("1"));
        assert!(!agent_enabled("0"));
        assert!(agent_enabled("enabled=1,fstrim_cloned_disks=1"));
        assert!(agent_enabled("1,type=virtio"));
        assert!(!agent_enabled("type=virtio"));
    }
}
