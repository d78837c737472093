//! Permission checks of the endpoints (§3.3, made on the contacted node
//! before forwarding) and `GET /access/permissions` (§3.2).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::acl::Identity;
use super::auth::split_token_id;
use super::errors::ApiError;
use super::routes::{Endpoint, Matched};
use super::seed::GuestKind;
use super::state::State;

const FIXED_PATHS: &[&str] = &[
    "/",
    "/access",
    "/access/groups",
    "/nodes",
    "/pool",
    "/sdn",
    "/storage",
    "/vms",
];

pub fn permissions(
    state: &State,
    caller: &Identity,
    userid: Option<&str>,
    path: Option<&str>,
) -> Result<Value, ApiError> {
    let target = match userid {
        None => caller.clone(),
        Some(id) => {
            let allowed = id == caller.authid()
                || matches!(caller, Identity::User(u) if split_token_id(id).is_some_and(|(owner, _)| owner == u));
            if !allowed
                && !state
                    .access
                    .privs_on(caller, "/access", None)
                    .has("Sys.Audit")
            {
                return Err(ApiError::forbidden("/access", &["Sys.Audit"]));
            }
            match split_token_id(id) {
                Some((user, name)) => Identity::Token {
                    user: user.into(),
                    name: name.into(),
                    privsep: state.access.tokens.get(id).is_none_or(|t| t.privsep),
                },
                None => Identity::User(id.into()),
            }
        }
    };
    let pool_of = |p: &str| -> Option<String> {
        p.strip_prefix("/vms/")
            .and_then(|v| v.parse::<u32>().ok())
            .and_then(|v| state.guests.get(&v))
            .and_then(|g| g.pool.clone())
    };
    if let Some(p) = path {
        let map = state
            .access
            .permission_map(&target, p, pool_of(p).as_deref());
        return Ok(json!({ p: map }));
    }
    let mut paths: BTreeSet<String> = FIXED_PATHS.iter().map(|s| s.to_string()).collect();
    paths.extend(state.access.acl_paths());
    for g in state.guests.values().filter(|g| g.pool.is_some()) {
        paths.insert(format!("/vms/{}", g.vmid));
    }
    let mut out = serde_json::Map::new();
    for p in paths {
        let map = state
            .access
            .permission_map(&target, &p, pool_of(&p).as_deref());
        if !map.is_empty() {
            out.insert(p, json!(map));
        }
    }
    Ok(Value::Object(out))
}

/// The permission check of the endpoint's schema (before forwarding).
pub fn pre_check(st: &State, who: &Identity, m: &Matched) -> Result<(), ApiError> {
    let v9 = st.settings.version.major >= 9;
    let vmid = m.vmid.clone().unwrap_or_default();
    let vm_path = format!("/vms/{vmid}");
    let (path, privs): (String, &[&str]) = match m.endpoint {
        Endpoint::ClusterStatus => ("/".into(), &["Sys.Audit"]),
        Endpoint::ConfigGet(_) | Endpoint::StatusCurrent(_) | Endpoint::LxcInterfaces => {
            (vm_path, &["VM.Audit"])
        }
        Endpoint::ConfigPut(GuestKind::Qemu) | Endpoint::ConfigPost => (
            vm_path,
            &[
                "VM.Config.Disk",
                "VM.Config.CDROM",
                "VM.Config.CPU",
                "VM.Config.Memory",
                "VM.Config.Network",
                "VM.Config.HWType",
                "VM.Config.Options",
                "VM.Config.Cloudinit",
            ],
        ),
        Endpoint::ConfigPut(GuestKind::Lxc) => (
            vm_path,
            &[
                "VM.Config.Disk",
                "VM.Config.CPU",
                "VM.Config.Memory",
                "VM.Config.Network",
                "VM.Config.Options",
            ],
        ),
        Endpoint::Power(..) => (vm_path, &["VM.PowerMgmt"]),
        Endpoint::AgentCommand(_) if v9 => (
            vm_path,
            &["VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"],
        ),
        Endpoint::AgentLegacy if v9 => (
            vm_path,
            &["VM.GuestAgent.Unrestricted", "VM.GuestAgent.Unrestricted"],
        ),
        Endpoint::AgentCommand(_) | Endpoint::AgentLegacy => (vm_path, &["VM.Monitor"]),
        _ => return Ok(()),
    };
    let pool = vmid
        .parse::<u32>()
        .ok()
        .and_then(|v| st.guests.get(&v))
        .and_then(|g| g.pool.as_deref());
    let have = st.access.privs_on(who, &path, pool);
    if privs.iter().any(|p| have.has(p)) {
        Ok(())
    } else {
        Err(ApiError::forbidden(&path, privs))
    }
}
