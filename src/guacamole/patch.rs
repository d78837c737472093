//! Directory batches (spec §6): the operations the reconcile engine hands to
//! [`GuacamoleClient::apply_batch`](super::GuacamoleClient::apply_batch), the
//! 1.6 JSON-patch body built from them, and the parsing of the `patches`
//! outcomes (success and the atomic-failure body).
//!
//! Pure code: no I/O here, the client sends what this module builds.

use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{GuacamoleError, TranslatableMessage, error_from_patch_entry};
use super::types::{ConnectionSpec, GroupSpec, ObjectKind, ServerVersion};

/// Bodies are split below the server's default 2 MiB request cap.
pub const MAX_PATCH_BYTES: usize = 1024 * 1024;
/// And kept to a size one database transaction handles comfortably.
pub const MAX_PATCH_ENTRIES: usize = 250;

/// One change to a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryOp {
    CreateConnection(ConnectionSpec),
    UpdateConnection {
        identifier: String,
        spec: ConnectionSpec,
    },
    DeleteConnection {
        identifier: String,
    },
    CreateGroup(GroupSpec),
    UpdateGroup {
        identifier: String,
        spec: GroupSpec,
    },
    /// Recursive: everything inside the group goes too.
    DeleteGroup {
        identifier: String,
    },
}

impl DirectoryOp {
    pub fn kind(&self) -> ObjectKind {
        match self {
            DirectoryOp::CreateConnection(_)
            | DirectoryOp::UpdateConnection { .. }
            | DirectoryOp::DeleteConnection { .. } => ObjectKind::Connection,
            DirectoryOp::CreateGroup(_)
            | DirectoryOp::UpdateGroup { .. }
            | DirectoryOp::DeleteGroup { .. } => ObjectKind::ConnectionGroup,
        }
    }

    /// `add`, `replace` or `remove`.
    pub fn op_name(&self) -> &'static str {
        match self {
            DirectoryOp::CreateConnection(_) | DirectoryOp::CreateGroup(_) => "add",
            DirectoryOp::UpdateConnection { .. } | DirectoryOp::UpdateGroup { .. } => "replace",
            DirectoryOp::DeleteConnection { .. } | DirectoryOp::DeleteGroup { .. } => "remove",
        }
    }

    /// Identifier of the existing object (`None` for creates).
    pub fn identifier(&self) -> Option<&str> {
        match self {
            DirectoryOp::CreateConnection(_) | DirectoryOp::CreateGroup(_) => None,
            DirectoryOp::UpdateConnection { identifier, .. }
            | DirectoryOp::DeleteConnection { identifier }
            | DirectoryOp::UpdateGroup { identifier, .. }
            | DirectoryOp::DeleteGroup { identifier } => Some(identifier),
        }
    }

    /// The JSON-patch entry of this operation (1.6).
    pub fn patch_entry(&self) -> Value {
        let path = match self.identifier() {
            Some(id) => format!("/{id}"),
            None => "/".to_owned(),
        };
        let value = match self {
            DirectoryOp::CreateConnection(spec) | DirectoryOp::UpdateConnection { spec, .. } => {
                Some(serde_json::to_value(spec).expect("connection spec serialises"))
            }
            DirectoryOp::CreateGroup(spec) | DirectoryOp::UpdateGroup { spec, .. } => {
                Some(serde_json::to_value(spec).expect("group spec serialises"))
            }
            DirectoryOp::DeleteConnection { .. } | DirectoryOp::DeleteGroup { .. } => None,
        };
        match value {
            Some(value) => json!({"op": self.op_name(), "path": path, "value": value}),
            None => json!({"op": self.op_name(), "path": path}),
        }
    }
}

/// How a batch was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchMode {
    /// 1.6: directory PATCH, each request atomic.
    AtomicPatch,
    /// ≤1.5: one POST/PUT/DELETE per operation, not atomic.
    PerObject,
}

impl BatchMode {
    pub fn for_version(version: ServerVersion) -> Self {
        match version {
            ServerVersion::UpTo1_5 => BatchMode::PerObject,
            ServerVersion::From1_6 => BatchMode::AtomicPatch,
        }
    }
}

/// What happened to one operation.
#[derive(Debug, Clone)]
pub enum OpResult {
    /// Done. `identifier` is the new id for creates, the object's id otherwise.
    Applied { identifier: String },
    /// This operation failed; nothing of it was applied.
    Failed { error: GuacamoleError },
    /// 1.6: another entry of the same atomic request failed, so this one was
    /// rolled back. It may succeed if sent again without the failed entries.
    RolledBack,
    /// An earlier request-level failure ended the batch before this operation.
    NotAttempted,
    /// The request broke after it may have reached the server: re-read the
    /// tree before assuming either outcome.
    Unknown { error: GuacamoleError },
}

impl OpResult {
    pub fn is_applied(&self) -> bool {
        matches!(self, OpResult::Applied { .. })
    }

    /// Short stable name (audit events, metrics).
    pub fn label(&self) -> &'static str {
        match self {
            OpResult::Applied { .. } => "applied",
            OpResult::Failed { .. } => "failed",
            OpResult::RolledBack => "rolled_back",
            OpResult::NotAttempted => "not_attempted",
            OpResult::Unknown { .. } => "unknown",
        }
    }
}

/// Outcome of [`GuacamoleClient::apply_batch`](super::GuacamoleClient::apply_batch):
/// one result per operation, in the order given.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    pub mode: BatchMode,
    pub results: Vec<OpResult>,
    /// The request-level failure that ended the batch early, if any.
    pub stopped_by: Option<GuacamoleError>,
}

impl BatchOutcome {
    pub fn all_applied(&self) -> bool {
        self.results.iter().all(OpResult::is_applied)
    }

    pub fn applied_count(&self) -> usize {
        self.results.iter().filter(|r| r.is_applied()).count()
    }

    /// `(index, error)` of every operation that failed on its own.
    pub fn failures(&self) -> Vec<(usize, &GuacamoleError)> {
        self.results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                OpResult::Failed { error } => Some((i, error)),
                _ => None,
            })
            .collect()
    }
}

/// Splits operations into consecutive runs of one directory, each run cut
/// into chunks under the size and entry caps. Returns index ranges into `ops`.
pub fn plan_requests(ops: &[DirectoryOp]) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut bytes = 2; // "[]"
    for (i, op) in ops.iter().enumerate() {
        let size = op.patch_entry().to_string().len() + 1;
        let new_run = i > start && ops[start].kind() != op.kind();
        let full = i > start && (i - start >= MAX_PATCH_ENTRIES || bytes + size > MAX_PATCH_BYTES);
        if new_run || full {
            ranges.push(start..i);
            start = i;
            bytes = 2;
        }
        bytes += size;
    }
    if start < ops.len() {
        ranges.push(start..ops.len());
    }
    ranges
}

/// How ≤1.5 per-object calls may overlap: index ranges into `ops`, in
/// order; the calls of one range run concurrently, and a range starts only
/// once the one before it has finished.
///
/// The only dependency a batch carries is an object changed twice: a
/// temporary rename that frees a name other renames in the same batch take
/// (see the planner's parked renames). Such first changes (and what comes
/// before them) finish before anything after them starts.
pub fn waves(ops: &[DirectoryOp]) -> Vec<std::ops::Range<usize>> {
    let mut later = std::collections::HashSet::new();
    let mut changed_again = vec![false; ops.len()];
    for (i, op) in ops.iter().enumerate().rev() {
        if let Some(id) = op.identifier() {
            changed_again[i] = !later.insert((op.kind(), id));
        }
    }
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut holds_first_change = false;
    for (i, again) in changed_again.iter().enumerate() {
        if holds_first_change && !again {
            ranges.push(start..i);
            start = i;
            holds_first_change = false;
        }
        holds_first_change |= again;
    }
    if start < ops.len() {
        ranges.push(start..ops.len());
    }
    ranges
}

/// The body of one 1.6 directory PATCH.
pub fn patch_body(ops: &[DirectoryOp]) -> Value {
    Value::Array(ops.iter().map(DirectoryOp::patch_entry).collect())
}

/// One element of `patches` in a 1.6 response.
#[derive(Debug, Clone, Deserialize)]
struct PatchOutcome {
    #[serde(default)]
    op: String,
    #[serde(default)]
    identifier: Option<String>,
    #[serde(default)]
    path: String,
    #[serde(default)]
    error: Option<TranslatableMessage>,
}

#[derive(Debug, Deserialize)]
struct PatchResponse {
    patches: Vec<PatchOutcome>,
}

/// Parses a 1.6 success body (`200 {"patches":[…]}`) into one result per
/// operation. Creates need the new identifier; the others fall back to the
/// identifier they were sent with.
pub fn parse_patch_success(
    ops: &[DirectoryOp],
    body: &[u8],
) -> Result<Vec<OpResult>, GuacamoleError> {
    let response: PatchResponse =
        serde_json::from_slice(body).map_err(|e| GuacamoleError::decode("PATCH directory", &e))?;
    if response.patches.len() != ops.len() {
        return Err(GuacamoleError::UnexpectedResponse {
            status: 200,
            detail: format!(
                "{} patch outcomes for {} entries",
                response.patches.len(),
                ops.len()
            ),
        });
    }
    ops.iter()
        .zip(response.patches)
        .map(|(op, outcome)| {
            let identifier = outcome
                .identifier
                .or_else(|| op.identifier().map(str::to_owned))
                .ok_or_else(|| GuacamoleError::UnexpectedResponse {
                    status: 200,
                    detail: format!(
                        "no identifier for the {} entry at {}",
                        outcome.op, outcome.path
                    ),
                })?;
            Ok(OpResult::Applied { identifier })
        })
        .collect()
}

/// Parses the `patches` of a 1.6 failure body (400 "The provided patches
/// failed to apply."): failed entries carry their error, every other entry
/// was rolled back. Entries the server did not list count as rolled back too.
pub fn parse_patch_failure(ops: &[DirectoryOp], patches: &[Value]) -> Vec<OpResult> {
    let mut results: Vec<OpResult> = patches
        .iter()
        .take(ops.len())
        .map(
            |raw| match serde_json::from_value::<PatchOutcome>(raw.clone()) {
                Ok(PatchOutcome {
                    error: Some(error), ..
                }) => OpResult::Failed {
                    error: error_from_patch_entry(&error),
                },
                _ => OpResult::RolledBack,
            },
        )
        .collect();
    results.resize(ops.len(), OpResult::RolledBack);
    results
}

/// Interprets the answer to the `[]` probe (§6.4).
pub fn version_from_probe(status: u16, body: &[u8]) -> Option<ServerVersion> {
    match status {
        204 => Some(ServerVersion::UpTo1_5),
        200 => {
            let parsed: PatchResponse = serde_json::from_slice(body).ok()?;
            parsed.patches.is_empty().then_some(ServerVersion::From1_6)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guacamole::types::{Parameters, ROOT_GROUP};

    fn conn(name: &str) -> ConnectionSpec {
        let params: Parameters = [("hostname", "10.0.0.5"), ("password", "hunter2")]
            .into_iter()
            .collect();
        ConnectionSpec::new(name, "3", "rdp", params)
    }

    #[test]
    fn entries_have_the_documented_shape() {
        let ops = vec![
            DirectoryOp::CreateConnection(conn("web-01")),
            DirectoryOp::UpdateConnection {
                identifier: "7".into(),
                spec: conn("web-02"),
            },
            DirectoryOp::DeleteConnection {
                identifier: "9".into(),
            },
        ];
        let body = patch_body(&ops);
        assert_eq!(
            body,
            json!([
                {"op":"add","path":"/","value":{"name":"web-01","parentIdentifier":"3","protocol":"rdp",
                    "parameters":{"hostname":"10.0.0.5","password":"hunter2"},"attributes":{}}},
                {"op":"replace","path":"/7","value":{"name":"web-02","parentIdentifier":"3","protocol":"rdp",
                    "parameters":{"hostname":"10.0.0.5","password":"hunter2"},"attributes":{}}},
                {"op":"remove","path":"/9"}
            ])
        );
        let g = DirectoryOp::CreateGroup(GroupSpec::organizational("pve", ROOT_GROUP));
        assert_eq!(
            g.patch_entry(),
            json!({"op":"add","path":"/","value":{"name":"pve","parentIdentifier":"ROOT",
                   "type":"ORGANIZATIONAL","attributes":{}}})
        );
        // Debug of an op never shows parameter values.
        assert!(!format!("{ops:?}").contains("hunter2"));
    }

    #[test]
    fn success_body_gives_new_identifiers_in_order() {
        let ops = vec![
            DirectoryOp::CreateConnection(conn("a")),
            DirectoryOp::UpdateConnection {
                identifier: "7".into(),
                spec: conn("b"),
            },
            DirectoryOp::DeleteConnection {
                identifier: "9".into(),
            },
            DirectoryOp::CreateConnection(conn("c")),
        ];
        let body = br#"{"patches":[{"op":"add","identifier":"12","path":"/"},
            {"op":"replace","identifier":"7","path":"/7"},
            {"op":"remove","identifier":"9","path":"/9"},
            {"op":"add","identifier":"13","path":"/"}]}"#;
        let results = parse_patch_success(&ops, body).unwrap();
        let ids: Vec<&str> = results
            .iter()
            .map(|r| match r {
                OpResult::Applied { identifier } => identifier.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, ["12", "7", "9", "13"]);
    }

    #[test]
    fn success_body_with_wrong_count_or_missing_add_id_is_rejected() {
        let ops = vec![DirectoryOp::CreateConnection(conn("a"))];
        assert_eq!(
            parse_patch_success(&ops, br#"{"patches":[]}"#)
                .unwrap_err()
                .label(),
            "unexpected_response"
        );
        assert_eq!(
            parse_patch_success(
                &ops,
                br#"{"patches":[{"op":"add","identifier":null,"path":"/"}]}"#
            )
            .unwrap_err()
            .label(),
            "unexpected_response"
        );
        assert_eq!(
            parse_patch_success(&ops, b"not json").unwrap_err().label(),
            "decode"
        );
    }

    #[test]
    fn failure_body_with_nulled_identifiers_maps_each_entry() {
        let ops = vec![
            DirectoryOp::CreateConnection(conn("a")),
            DirectoryOp::CreateConnection(conn("web-01")),
            DirectoryOp::UpdateConnection {
                identifier: "7".into(),
                spec: conn("b"),
            },
            DirectoryOp::DeleteConnection {
                identifier: "9".into(),
            },
            DirectoryOp::UpdateConnection {
                identifier: "99".into(),
                spec: conn("d"),
            },
        ];
        // The 1.6 failure body of §6.3 (plus a not-found replace).
        let body: Value = serde_json::from_str(
            r#"{
            "message": "The provided patches failed to apply.",
            "translatableMessage": {"key": "APP.TEXT_UNTRANSLATED", "variables": {"MESSAGE": "The provided patches failed to apply."}},
            "statusCode": null, "expected": null,
            "patches": [
              {"op": "add", "identifier": null, "path": "/"},
              {"op": "add", "identifier": null, "path": "/",
               "error": {"key": "APP.TEXT_UNTRANSLATED", "variables": {"MESSAGE": "The connection \"web-01\" already exists."}}},
              {"op": "replace", "identifier": "7", "path": "/7"},
              {"op": "remove", "identifier": null, "path": "/9"},
              {"op": "replace", "identifier": "99", "path": "/99",
               "error": {"key": "APP.TEXT_UNTRANSLATED", "variables": {"MESSAGE": "Not found: \"99\""}}}
            ],
            "type": "BAD_REQUEST"}"#,
        )
        .unwrap();
        let patches = body["patches"].as_array().unwrap();
        let results = parse_patch_failure(&ops, patches);
        let labels: Vec<&str> = results.iter().map(OpResult::label).collect();
        assert_eq!(
            labels,
            [
                "rolled_back",
                "failed",
                "rolled_back",
                "rolled_back",
                "failed"
            ]
        );
        match &results[1] {
            OpResult::Failed {
                error: GuacamoleError::DuplicateName { kind, name },
            } => {
                assert_eq!(*kind, ObjectKind::Connection);
                assert_eq!(name, "web-01");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            &results[4],
            OpResult::Failed { error: GuacamoleError::NotFound { message } } if message == "Not found: \"99\""
        ));
        let outcome = BatchOutcome {
            mode: BatchMode::AtomicPatch,
            results,
            stopped_by: None,
        };
        assert_eq!(outcome.applied_count(), 0);
        assert_eq!(
            outcome
                .failures()
                .iter()
                .map(|(i, _)| *i)
                .collect::<Vec<_>>(),
            [1, 4]
        );
    }

    #[test]
    fn short_failure_list_pads_with_rolled_back() {
        let ops = vec![
            DirectoryOp::DeleteConnection {
                identifier: "1".into(),
            },
            DirectoryOp::DeleteConnection {
                identifier: "2".into(),
            },
        ];
        let results = parse_patch_failure(&ops, &[]);
        assert!(results.iter().all(|r| matches!(r, OpResult::RolledBack)));
        assert_eq!(results.len(), 2);
    }

    #[test]
    fn version_probe() {
        assert_eq!(version_from_probe(204, b""), Some(ServerVersion::UpTo1_5));
        assert_eq!(
            version_from_probe(200, br#"{"patches":[]}"#),
            Some(ServerVersion::From1_6)
        );
        assert_eq!(version_from_probe(200, b"<html>"), None);
        assert_eq!(
            version_from_probe(200, br#"{"patches":[{"op":"add"}]}"#),
            None
        );
        assert_eq!(version_from_probe(501, b""), None);
    }

    fn update(id: &str, name: &str) -> DirectoryOp {
        DirectoryOp::UpdateConnection {
            identifier: id.into(),
            spec: conn(name),
        }
    }

    #[test]
    fn per_object_waves_wait_only_for_temporary_renames() {
        assert!(waves(&[]).is_empty());
        // Independent operations: one wave.
        let ops = vec![
            DirectoryOp::CreateConnection(conn("a")),
            update("7", "b"),
            update("8", "c"),
        ];
        assert_eq!(waves(&ops), vec![0..3]);
        // A swap: both parked first (with the creates), then both renamed.
        let ops = vec![
            DirectoryOp::CreateConnection(conn("new")),
            update("7", "alpha~7"),
            update("8", "beta~8"),
            update("7", "beta"),
            update("8", "alpha"),
        ];
        assert_eq!(waves(&ops), vec![0..3, 3..5]);
        // A chain: 7 takes 8's name while 8 moves on; 7 must wait for the
        // park of 8 although it is another object.
        let ops = vec![
            update("8", "db01~8"),
            update("7", "db01"),
            update("8", "db02"),
        ];
        assert_eq!(waves(&ops), vec![0..1, 1..3]);
        // The same identifier in another directory is another object.
        let ops = vec![
            DirectoryOp::DeleteGroup {
                identifier: "7".into(),
            },
            DirectoryOp::DeleteConnection {
                identifier: "7".into(),
            },
        ];
        assert_eq!(waves(&ops), vec![0..2]);
    }

    #[test]
    fn requests_split_by_directory_and_size() {
        let mut ops = vec![
            DirectoryOp::CreateGroup(GroupSpec::organizational("g", ROOT_GROUP)),
            DirectoryOp::CreateConnection(conn("a")),
            DirectoryOp::CreateConnection(conn("b")),
            DirectoryOp::DeleteGroup {
                identifier: "4".into(),
            },
        ];
        assert_eq!(plan_requests(&ops), vec![0..1, 1..3, 3..4]);
        assert!(plan_requests(&[]).is_empty());

        ops.clear();
        for i in 0..(MAX_PATCH_ENTRIES + 3) {
            ops.push(DirectoryOp::DeleteConnection {
                identifier: i.to_string(),
            });
        }
        assert_eq!(
            plan_requests(&ops),
            vec![
                0..MAX_PATCH_ENTRIES,
                MAX_PATCH_ENTRIES..MAX_PATCH_ENTRIES + 3
            ]
        );

        // Large parameter maps: cut by bytes, every chunk under the cap.
        let big: Parameters = (0..200)
            .map(|i| (format!("p{i}"), "x".repeat(4000)))
            .collect();
        let ops: Vec<DirectoryOp> = (0..5)
            .map(|i| {
                DirectoryOp::CreateConnection(ConnectionSpec::new(
                    format!("c{i}"),
                    "3",
                    "ssh",
                    big.clone(),
                ))
            })
            .collect();
        let ranges = plan_requests(&ops);
        assert_eq!(ranges.len(), 5);
        for r in ranges {
            assert!(patch_body(&ops[r]).to_string().len() <= MAX_PATCH_BYTES);
        }
    }
}
