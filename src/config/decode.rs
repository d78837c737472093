//! YAML text → [`RawConfig`], turning deserializer errors into located
//! [`Problem`]s. Serde stops at the first error; for unknown keys (the most
//! common mistake) the key is blanked out and decoding repeated, so one run
//! reports every unknown key. Error texts are built from the error's fields,
//! never from the source snippet: a snippet could show an inline secret.

use std::path::Path;

use serde_saphyr::{Error, Location, Spanned};

use super::problem::{Problem, did_you_mean};
use super::raw::RawConfig;
use super::tree::{self, Node, Step, render_path};

/// More unknown keys than this in one file are reported over several runs.
const MAX_UNKNOWN_KEYS: usize = 25;

pub(crate) struct Decoded {
    /// The decoded file with any unknown keys removed; `None` when another
    /// structural error stopped decoding.
    pub raw: Option<RawConfig>,
    pub problems: Vec<Problem>,
}

pub(crate) fn decode(text: &str, file: &Path) -> Decoded {
    let problem = |line: Option<u64>, key: String, message: String| Problem {
        file: file.to_path_buf(),
        line,
        key,
        message,
    };
    // Duplicates are reported by the typed pass below, with their key path.
    let tree_options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::FirstWins,
    };
    let root: Spanned<Node> = match serde_saphyr::from_str_with_options(text, tree_options) {
        Ok(root) => root,
        Err(e) => {
            let e = e.without_snippet();
            return Decoded {
                raw: None,
                problems: vec![problem(
                    e.location().map(|l| l.line()),
                    String::new(),
                    format!("not valid YAML: {}", strip_location(&e.to_string())),
                )],
            };
        }
    };
    if !matches!(root.value, Node::Map(_)) {
        return Decoded {
            raw: None,
            problems: vec![problem(
                Some(root.referenced.line().max(1)),
                String::new(),
                "expected a mapping of settings with at least `proxmox:` and `guacamole:`"
                    .to_owned(),
            )],
        };
    }

    let mut work = text.to_owned();
    let mut problems = Vec::new();
    for _ in 0..MAX_UNKNOWN_KEYS {
        let err = match serde_saphyr::from_str::<RawConfig>(&work) {
            Ok(raw) => {
                return Decoded {
                    raw: Some(raw),
                    problems,
                };
            }
            Err(err) => err,
        };
        let err = err.without_snippet();
        let location = err.location().unwrap_or(Location::UNKNOWN);
        let found = tree::locate(&root, &location);
        let line = (location.line() > 0).then_some(location.line());
        match err {
            Error::SerdeUnknownField {
                field, expected, ..
            } => {
                let key = if found.is_key {
                    render_path(&found.path)
                } else {
                    let mut path = found.mapping_path.clone();
                    path.push(Step::Key(field.clone()));
                    render_path(&path)
                };
                problems.push(problem(line, key, unknown_key_message(field, expected)));
                let blanked = location
                    .span()
                    .byte_offset()
                    .and_then(|o| usize::try_from(o).ok())
                    .is_some_and(|offset| found.is_key && tree::blank_entry(&mut work, offset));
                if !blanked {
                    break;
                }
            }
            other => {
                // After a blanked key, a new error may be an artefact of the
                // removal (a mapping left empty): report only genuine ones.
                if problems.is_empty() {
                    problems.push(structural_problem(other, &found, line, file));
                }
                break;
            }
        }
    }
    Decoded {
        raw: None,
        problems,
    }
}

fn unknown_key_message(field: &str, expected: &[&'static str]) -> String {
    let mut message = format!("unknown key `{field}`");
    if let Some(near) = did_you_mean(field, expected) {
        message.push_str(&format!(" (did you mean `{near}`?)"));
    }
    if !expected.is_empty() {
        message.push_str(&format!("; expected one of: {}", expected.join(", ")));
    }
    message
}

fn structural_problem(err: &Error, found: &tree::Found, line: Option<u64>, file: &Path) -> Problem {
    let here = render_path(&found.path);
    let (line, key, message) = match err {
        Error::SerdeMissingField { field, .. } => (
            Some(found.mapping_line),
            render_path(&found.mapping_path),
            format!("missing required key `{field}`"),
        ),
        Error::SerdeInvalidType {
            unexpected,
            expected,
            ..
        }
        | Error::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => (
            line,
            here,
            format!("expected {expected}, found {}", kind_only(unexpected)),
        ),
        Error::InvalidScalar { ty, .. } => (line, here, format!("expected {}", scalar_kind(ty))),
        Error::DuplicateMappingKey { key, .. } => {
            let mut path = found.mapping_path.clone();
            if let Some(k) = key {
                path.push(Step::Key(k.clone()));
            }
            (
                line,
                render_path(&path),
                "this key is given twice".to_owned(),
            )
        }
        Error::Unexpected { expected, .. } => (line, here, expected_shape(expected)),
        other => (line, here, strip_location(&other.to_string())),
    };
    Problem {
        file: file.to_path_buf(),
        line,
        key,
        message,
    }
}

fn expected_shape(expected: &str) -> String {
    match expected {
        "sequence start" => "expected a list (`[a, b]`, or one `- item` per line)".to_owned(),
        "mapping start" => "expected a mapping (`key: value` lines)".to_owned(),
        other => format!("expected {other}"),
    }
}

/// serde describes the offending value as `string "…"` or `integer `…``;
/// keep only the kind, since the value may be a misplaced secret.
fn kind_only(unexpected: &str) -> String {
    let kind = unexpected
        .split([' ', '"', '`'])
        .next()
        .unwrap_or(unexpected);
    match kind {
        "map" => "a mapping".to_owned(),
        "sequence" => "a list".to_owned(),
        "string" => "a text value".to_owned(),
        "integer" | "floating" => "a number".to_owned(),
        "boolean" => "true/false".to_owned(),
        "unit" | "null" => "nothing (null)".to_owned(),
        other => other.to_owned(),
    }
}

fn scalar_kind(ty: &str) -> String {
    match ty {
        "u8" | "u16" | "u32" | "u64" | "usize" | "u128" => "a whole number, 0 or more".to_owned(),
        "bool" | "boolean" => "true or false".to_owned(),
        "f32" | "f64" | "floating point" => "a number".to_owned(),
        other => format!("a value of type {other}"),
    }
}

/// serde-saphyr appends ` at line L, column C`; the problem carries the line.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<String> {
        decode(text, Path::new("c.yaml"))
            .problems
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn removing_an_unknown_key_does_not_invent_follow_up_errors() {
        // Blanking `clusterz` leaves `proxmox:` empty, which would be a type
        // error of its own: only the real mistake is reported.
        assert_eq!(
            messages("proxmox:\n  clusterz: []\nguacamole: {}\n"),
            [
                "c.yaml:2: proxmox.clusterz: unknown key `clusterz` (did you mean `clusters`?); \
              expected one of: clusters"
            ]
        );
    }

    /// (A misspelt *required* key ends the search: the missing-key error
    /// that follows its removal may be an artefact, so it is not reported.)
    #[test]
    fn unknown_keys_in_list_items_and_nested_blocks_are_all_found() {
        let text = "\
proxmox:
  clusters:
    - name: a
      concurency: 2
      endpoints: [https://a:8006]
      token_id: a@pve!t
      token_secret: x
    - name: b
      endpoints: [https://b:8006]
      token_id: a@pve!t
      token_secret: x
      tls:
        pin: x
        insecure: true
guacamole: {url: https://g, username: u, password: x}
";
        let found = messages(text);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].starts_with(
            "c.yaml:4: proxmox.clusters[0].concurency: unknown key `concurency` (did you mean `concurrency`?)"
        ));
        assert!(found[1].starts_with("c.yaml:13: proxmox.clusters[1].tls.pin: unknown key `pin`;"));
    }

    #[test]
    fn type_errors_name_the_kind_of_value_never_the_value() {
        let found = messages("proxmox: {clusters: {name: \"s3cr3t\"}}\nguacamole: {}\n");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(!found[0].contains("s3cr3t"), "{}", found[0]);
        assert!(
            found[0].starts_with("c.yaml:1: proxmox.clusters: expected a list"),
            "{}",
            found[0]
        );
    }
}
