//! Parameter schema of each endpoint (§1.1), checked on the node that
//! executes the call.

use super::agent;
use super::cluster;
use super::config;
use super::errors::ApiError;
use super::params::{INT, Kind, Params, STR};
use super::power::PowerAction;
use super::resources;
use super::routes::Endpoint;
use super::seed::GuestKind;

/// Parameter schema of each endpoint.
pub fn validate(e: Endpoint, p: &Params) -> Result<(), ApiError> {
    const NODE: (&str, Kind, bool) = ("node", Kind::Node, true);
    const VMID: (&str, Kind, bool) = ("vmid", Kind::Vmid, true);
    const TIMEOUT: (&str, Kind, bool) = (
        "timeout",
        Kind::Int {
            min: Some(0),
            max: None,
        },
        false,
    );
    let none = |_: &str| None;
    let b = |n: &'static str| (n, Kind::Bool, false);
    let schema: Vec<(&str, Kind, bool)> = match e {
        Endpoint::Root | Endpoint::Version | Endpoint::Nodes | Endpoint::ClusterStatus => vec![],
        Endpoint::ClusterResources => vec![("type", Kind::Enum(resources::TYPES), false)],
        Endpoint::AccessPermissions => vec![("userid", STR, false), ("path", STR, false)],
        Endpoint::GuestList(GuestKind::Qemu) => vec![NODE, b("full")],
        Endpoint::GuestList(GuestKind::Lxc) => vec![NODE],
        Endpoint::ConfigGet(_) => vec![NODE, VMID, b("current"), ("snapshot", STR, false)],
        Endpoint::ConfigPut(kind) => {
            return p.validate(&config::write_schema(kind, false), &|k| {
                config::key_spec(kind, k).map(|(t, _)| t)
            });
        }
        Endpoint::ConfigPost => {
            return p.validate(&config::write_schema(GuestKind::Qemu, true), &|k| {
                config::key_spec(GuestKind::Qemu, k).map(|(t, _)| t)
            });
        }
        Endpoint::StatusCurrent(_) | Endpoint::AgentIndex | Endpoint::LxcInterfaces => {
            vec![NODE, VMID]
        }
        Endpoint::AgentCommand(_) => vec![NODE, VMID],
        Endpoint::AgentLegacy => vec![NODE, VMID, ("command", Kind::Enum(agent::COMMANDS), true)],
        Endpoint::Power(GuestKind::Qemu, a) => {
            let mut s = vec![NODE, VMID, b("skiplock"), TIMEOUT];
            match a {
                PowerAction::Start => s.extend([
                    ("machine", STR, false),
                    ("migratedfrom", Kind::Node, false),
                    ("stateuri", STR, false),
                    ("targetstorage", STR, false),
                    ("force-cpu", STR, false),
                ]),
                PowerAction::Shutdown => s.extend([b("forceStop"), b("keepActive")]),
                PowerAction::Stop => s.extend([
                    b("keepActive"),
                    b("overrule-shutdown"),
                    ("migratedfrom", Kind::Node, false),
                ]),
            }
            s
        }
        Endpoint::Power(GuestKind::Lxc, a) => match a {
            PowerAction::Start => vec![NODE, VMID, b("skiplock"), b("debug")],
            PowerAction::Shutdown => vec![NODE, VMID, TIMEOUT, b("forceStop")],
            PowerAction::Stop => vec![NODE, VMID, b("skiplock"), b("overrule-shutdown")],
        },
        Endpoint::TaskStatus => vec![NODE, ("upid", STR, true)],
        Endpoint::TaskLog => vec![
            NODE,
            ("upid", STR, true),
            ("start", INT, false),
            ("limit", INT, false),
            b("download"),
        ],
        Endpoint::NodeNetwork => vec![NODE, ("type", Kind::Enum(cluster::NETWORK_TYPES), false)],
    };
    p.validate(&schema, &none)
}
