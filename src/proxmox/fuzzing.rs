//! Fuzzing entry point (not an API): one answer body through every typed
//! decoding the client applies to Proxmox answers. Used by
//! `fuzz/fuzz_targets/proxmox_decode.rs`; must never panic.

use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::agent::{parse_agent_interfaces, parse_ct_interfaces};
use super::client::envelope_data;
use super::error::ProxmoxError;
use super::permissions::Permissions;
use super::tasks::Upid;
use super::types::{
    ClusterStatusEntry, GuestConfig, GuestKind, GuestStatus, NodeInfo, TaskStatus, Version,
};
use crate::http::HttpResponse;

const EP: &str = "fuzz";

/// Decodes `body` as an answer with `status`, the way the client does:
/// error mapping for failures, the `{"data":…}` envelope and each typed
/// decoder for successes. Errors are fine; panics are bugs.
#[doc(hidden)]
pub fn decode_answer(status: u16, body: &[u8]) {
    let resp = HttpResponse {
        status,
        reason: None,
        headers: HeaderMap::new(),
        body: Bytes::copy_from_slice(body),
    };
    if !resp.is_success() {
        let e = ProxmoxError::from_response(&resp, "fuzz", Some("pve1"));
        let _ = (e.to_string(), e.label());
        return;
    }
    let Ok(data) = envelope_data(&resp, EP) else {
        return;
    };
    decode_data(&data);
}

fn decode_data(data: &Value) {
    let _ = super::client::decode_resources(data.clone(), EP);
    let _ = serde_json::from_value::<Vec<NodeInfo>>(data.clone());
    let _ = serde_json::from_value::<Vec<ClusterStatusEntry>>(data.clone());
    let _ = serde_json::from_value::<GuestStatus>(data.clone());
    let _ = serde_json::from_value::<TaskStatus>(data.clone());
    let _ = serde_json::from_value::<Version>(data.clone());
    if let Value::Object(map) = data {
        for kind in [GuestKind::Qemu, GuestKind::Lxc] {
            let config = GuestConfig::from_map(kind, map.clone());
            let _ = format!("{config:?}");
        }
    }
    if let Some(text) = data.as_str() {
        let _ = text.parse::<Upid>();
    }
    let _ = parse_agent_interfaces(data, EP);
    let _ = parse_ct_interfaces(data, EP);
    let _ = Permissions::from_value(data);
    let _: Result<ProxmoxError, _> = Ok::<_, ()>(ProxmoxError::Decode {
        endpoint: EP,
        reason: String::new(),
    });
}
