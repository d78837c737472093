//! Fuzzing entry point (not an API): one answer body through every typed
//! decoding the client applies to Guacamole answers. Used by
//! `fuzz/fuzz_targets/guacamole_decode.rs`; must never panic.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use super::error::{ErrorBody, error_from_response};
use super::patch::{DirectoryOp, parse_patch_failure, parse_patch_success, version_from_probe};
use super::types::{
    AuthResult, Connection, ConnectionGroup, ConnectionSpec, GroupSpec, Parameters, PermissionSet,
    TreeGroup,
};

/// Decodes `body` as an answer with `status` (and JSON, HTML or no content
/// type, chosen by `content_type`), the way the client does. Errors are fine;
/// panics are bugs.
#[doc(hidden)]
pub fn decode_answer(status: u16, content_type: u8, body: &[u8]) {
    let content_type = match content_type % 3 {
        0 => Some("application/json"),
        1 => Some("text/html"),
        _ => None,
    };
    let e = error_from_response(status, content_type, body);
    let _ = (e.to_string(), e.label());
    let _ = version_from_probe(status, body);
    if let Some(parsed) = ErrorBody::parse(body) {
        let ops = sample_ops();
        let _ = parse_patch_failure(&ops, parsed.patches.as_deref().unwrap_or_default());
    }
    let _ = parse_patch_success(&sample_ops(), body);
    typed::<AuthResult>(body);
    typed::<BTreeMap<String, Connection>>(body);
    typed::<Connection>(body);
    typed::<Parameters>(body);
    typed::<BTreeMap<String, ConnectionGroup>>(body);
    typed::<ConnectionGroup>(body);
    typed::<TreeGroup>(body);
    typed::<PermissionSet>(body);
}

fn typed<T: DeserializeOwned + std::fmt::Debug>(body: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(body) {
        let _ = format!("{value:?}");
    }
}

/// One operation of each kind, as a batch sends them.
fn sample_ops() -> Vec<DirectoryOp> {
    let spec = || ConnectionSpec::new("c", "1", "ssh", Parameters::new());
    let group = || GroupSpec::organizational("g", "ROOT");
    vec![
        DirectoryOp::CreateConnection(spec()),
        DirectoryOp::UpdateConnection {
            identifier: "2".into(),
            spec: spec(),
        },
        DirectoryOp::DeleteConnection {
            identifier: "3".into(),
        },
        DirectoryOp::CreateGroup(group()),
        DirectoryOp::UpdateGroup {
            identifier: "4".into(),
            spec: group(),
        },
        DirectoryOp::DeleteGroup {
            identifier: "5".into(),
        },
    ]
}
