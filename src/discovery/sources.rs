//! The address sources of this release, both through the Proxmox API: the
//! QEMU guest agent (VMs) and the container's interfaces (CTs). Each matches
//! the guest's `net0` MAC, so addresses of docker bridges, VPNs or other
//! guest-internal interfaces are never picked.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ipnet::IpNet;

use super::{AddressEvidence, AddressSource, EvidenceFuture, GuestFacts, Interface, pick_ipv4};
use crate::proxmox::{GuestInterface, ProxmoxClient, ProxmoxError};
use crate::reconcile::model::GuestKind;

/// VMs: `agent/network-get-interfaces`; containers: `interfaces`.
pub struct GuestInterfaces {
    client: Arc<ProxmoxClient>,
    allowed: Vec<IpNet>,
}

impl GuestInterfaces {
    pub fn new(client: Arc<ProxmoxClient>, allowed: Vec<IpNet>) -> Self {
        GuestInterfaces { client, allowed }
    }

    async fn resolve_guest(&self, guest: &GuestFacts) -> AddressEvidence {
        if !guest.running {
            return AddressEvidence::unknown("guest is not running");
        }
        let Some(mac) = &guest.primary_mac else {
            return AddressEvidence::unknown("no net0 MAC address in the config");
        };
        let (source, answer) = match guest.kind {
            GuestKind::Qemu if !guest.agent_enabled => {
                return AddressEvidence::unknown("guest agent not enabled in the config");
            }
            GuestKind::Qemu => (
                "agent",
                self.client
                    .network_get_interfaces(&guest.node, guest.key.vmid)
                    .await
                    .map(Some),
            ),
            GuestKind::Lxc => (
                "container",
                self.client
                    .container_interfaces(&guest.node, guest.key.vmid)
                    .await,
            ),
        };
        match answer {
            Ok(Some(interfaces)) => {
                let interfaces: Vec<Interface> = interfaces.iter().map(to_interface).collect();
                match pick_ipv4(&interfaces, mac, &self.allowed) {
                    Some(address) => AddressEvidence::Found { address, source },
                    None => AddressEvidence::unknown(format!(
                        "{source}: no usable IPv4 address on the interface with MAC {mac}"
                    )),
                }
            }
            Ok(None) => AddressEvidence::unknown(format!("{source}: container not running")),
            Err(e) => AddressEvidence::unknown(format!("{source}: {}", describe(&e))),
        }
    }
}

fn to_interface(i: &GuestInterface) -> Interface {
    Interface {
        mac: i.mac.map(|m| m.to_string()),
        ipv4: i
            .addresses
            .iter()
            .filter_map(|a| match a.ip {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .collect::<Vec<Ipv4Addr>>(),
    }
}

fn describe(e: &ProxmoxError) -> String {
    format!("{} ({})", e, e.label())
}

impl AddressSource for GuestInterfaces {
    fn name(&self) -> &'static str {
        "guest"
    }

    fn resolve<'a>(&'a self, guest: &'a GuestFacts) -> EvidenceFuture<'a> {
        Box::pin(self.resolve_guest(guest))
    }
}
