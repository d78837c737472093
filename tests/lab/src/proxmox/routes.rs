//! The API's path table: which endpoint a method and path name, with the
//! template used as the request log's counter key.

use super::power::PowerAction;
use super::seed::GuestKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Root,
    Version,
    Nodes,
    ClusterResources,
    ClusterStatus,
    AccessPermissions,
    GuestList(GuestKind),
    ConfigGet(GuestKind),
    ConfigPut(GuestKind),
    ConfigPost,
    StatusCurrent(GuestKind),
    Power(GuestKind, PowerAction),
    TaskStatus,
    TaskLog,
    AgentIndex,
    /// `POST .../agent` with `command=`.
    AgentLegacy,
    /// `network-get-interfaces` or `ping`.
    AgentCommand(&'static str),
    LxcInterfaces,
    NodeNetwork,
}

impl Endpoint {
    /// Calls forwarded to the node named in the path.
    pub fn node_scoped(self) -> bool {
        !matches!(
            self,
            Endpoint::Root
                | Endpoint::Version
                | Endpoint::Nodes
                | Endpoint::ClusterResources
                | Endpoint::ClusterStatus
                | Endpoint::AccessPermissions
        )
    }
}

#[derive(Debug, Clone)]
pub struct Matched {
    pub endpoint: Endpoint,
    /// e.g. `GET /nodes/{node}/qemu/{vmid}/config`.
    pub template: String,
    pub node: Option<String>,
    pub vmid: Option<String>,
    pub upid: Option<String>,
}

fn kind_of(s: &str) -> Option<GuestKind> {
    match s {
        "qemu" => Some(GuestKind::Qemu),
        "lxc" => Some(GuestKind::Lxc),
        _ => None,
    }
}

/// Look up `method` + `rel` (the path after `/api2/<format>`).
pub fn match_route(method: &str, rel: &str) -> Option<Matched> {
    let seg: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
    use Endpoint as E;
    let (endpoint, node, vmid, upid) = match (method, seg.as_slice()) {
        ("GET", []) => (E::Root, None, None, None),
        ("GET", ["version"]) => (E::Version, None, None, None),
        ("GET", ["nodes"]) => (E::Nodes, None, None, None),
        ("GET", ["cluster", "resources"]) => (E::ClusterResources, None, None, None),
        ("GET", ["cluster", "status"]) => (E::ClusterStatus, None, None, None),
        ("GET", ["access", "permissions"]) => (E::AccessPermissions, None, None, None),
        ("GET", ["nodes", n, "network"]) => (E::NodeNetwork, Some(n), None, None),
        ("GET", ["nodes", n, k]) => (E::GuestList(kind_of(k)?), Some(n), None, None),
        ("GET", ["nodes", n, "tasks", u, "status"]) => (E::TaskStatus, Some(n), None, Some(u)),
        ("GET", ["nodes", n, "tasks", u, "log"]) => (E::TaskLog, Some(n), None, Some(u)),
        ("GET", ["nodes", n, k, v, "config"]) => {
            (E::ConfigGet(kind_of(k)?), Some(n), Some(v), None)
        }
        ("PUT", ["nodes", n, k, v, "config"]) => {
            (E::ConfigPut(kind_of(k)?), Some(n), Some(v), None)
        }
        ("POST", ["nodes", n, "qemu", v, "config"]) => (E::ConfigPost, Some(n), Some(v), None),
        ("GET", ["nodes", n, k, v, "status", "current"]) => {
            (E::StatusCurrent(kind_of(k)?), Some(n), Some(v), None)
        }
        ("POST", ["nodes", n, k, v, "status", a]) => (
            E::Power(kind_of(k)?, PowerAction::parse(a)?),
            Some(n),
            Some(v),
            None,
        ),
        ("GET", ["nodes", n, "qemu", v, "agent"]) => (E::AgentIndex, Some(n), Some(v), None),
        ("POST", ["nodes", n, "qemu", v, "agent"]) => (E::AgentLegacy, Some(n), Some(v), None),
        ("GET", ["nodes", n, "qemu", v, "agent", "network-get-interfaces"]) => (
            E::AgentCommand("network-get-interfaces"),
            Some(n),
            Some(v),
            None,
        ),
        ("POST", ["nodes", n, "qemu", v, "agent", "ping"]) => {
            (E::AgentCommand("ping"), Some(n), Some(v), None)
        }
        ("GET", ["nodes", n, "lxc", v, "interfaces"]) => (E::LxcInterfaces, Some(n), Some(v), None),
        _ => return None,
    };
    let template = template(method, &seg, node.is_some(), vmid.is_some(), upid.is_some());
    Some(Matched {
        endpoint,
        template,
        node: node.map(|s| s.to_string()),
        vmid: vmid.map(|s| s.to_string()),
        upid: upid.map(|s| s.to_string()),
    })
}

/// Replace the variable segments (node at 1, vmid or upid at 3).
fn template(method: &str, seg: &[&str], node: bool, vmid: bool, upid: bool) -> String {
    let parts: Vec<&str> = seg
        .iter()
        .enumerate()
        .map(|(i, s)| match i {
            1 if node => "{node}",
            3 if vmid => "{vmid}",
            3 if upid => "{upid}",
            _ => s,
        })
        .collect();
    format!("{method} /{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let m = match_route("GET", "/nodes/pve1/qemu/100/config").unwrap();
        assert_eq!(m.template, "GET /nodes/{node}/qemu/{vmid}/config");
        assert_eq!(m.endpoint, Endpoint::ConfigGet(GuestKind::Qemu));
        let m = match_route("GET", "/nodes/pve1/tasks/UPID:x/status").unwrap();
        assert_eq!(m.template, "GET /nodes/{node}/tasks/{upid}/status");
        assert!(match_route("POST", "/nodes/pve1/lxc/100/config").is_none());
        assert!(match_route("GET", "/nodes/pve1/qemu/100/foo").is_none());
    }
}
