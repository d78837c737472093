//! Fuzz target: configuration text → validated `Settings`. Never panics;
//! every refusal is a list of problems that name the file, and a line only
//! where the text has one.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pve_guac_sync::config::{ConfigError, Environment, Settings};

/// No process environment leaks in: `{env:}` secrets resolve to nothing.
struct NoEnv;

impl Environment for NoEnv {
    fn var(&self, _name: &str) -> Option<String> {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `{file: …}` secrets and `ca_file` read the filesystem: not the
    // parser's business, and a fuzzer must not read /dev/zero.
    if text.contains("file") {
        return;
    }
    let path = Path::new("/fuzz/config.yaml");
    match Settings::from_yaml(text, path, None, &NoEnv) {
        Ok(_) => {}
        Err(ConfigError::Invalid { problems }) => {
            assert!(!problems.is_empty(), "a refusal without a reason");
            // YAML breaks lines at LF, CRLF and a lone CR.
            let lines = text
                .replace("\r\n", "\n")
                .replace('\r', "\n")
                .lines()
                .count() as u64
                + 1;
            for p in &problems {
                assert_eq!(p.file, path);
                if let Some(line) = p.line {
                    assert!(line >= 1 && line <= lines, "line {line} of {lines}: {p}");
                }
                assert!(p.to_string().starts_with("/fuzz/config.yaml"), "{p}");
            }
        }
        Err(e) => panic!("unexpected error kind: {}", e.label()),
    }
});
