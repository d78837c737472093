//! Secret hygiene: the secrets the lab and the test configurations seed,
//! and one check that captured output (logs, stdout/stderr, plans, audit
//! events, panic messages) holds none of them — plain, base64 (standard and
//! URL-safe, at every byte alignment) or URL-encoded. Captured text also
//! goes to `target/test-logs/`, which CI scans once more after the suite
//! (`tests/secret_hygiene.rs`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use pve_guac_lab::proxmox::{
    EXAMPLE_FERNET_KEY, EXAMPLE_PASSPHRASE, EXAMPLE_TOKEN_DBA, EXAMPLE_TOKEN_SECRET,
    EXAMPLE_TOKEN_VIEWER,
};

/// Encoded needles shorter than this are too likely to occur by chance.
const MIN_NEEDLE: usize = 6;

/// Secrets no captured output may hold.
#[derive(Debug, Clone)]
pub struct SecretCanary {
    secrets: Vec<String>,
}

impl Default for SecretCanary {
    /// Every secret the lab's example cluster and `common::config` seed.
    fn default() -> Self {
        let mut secrets: Vec<String> = [
            super::TOKEN_SECRET,
            super::NOTES_PASSPHRASE,
            EXAMPLE_PASSPHRASE,
            EXAMPLE_FERNET_KEY,
            EXAMPLE_TOKEN_SECRET,
            EXAMPLE_TOKEN_DBA,
            EXAMPLE_TOKEN_VIEWER,
            // Plaintext passwords in the example cluster's notes, and the
            // two its encrypted tokens hold.
            "S3cret",
            "W1n-Pass",
            "Bu1ld-It",
            "F1les!",
            "Ct-R00t",
            "Pr0xy",
            "Enc-Passw0rd!",
            "Vnc-0nly#7",
        ]
        .map(str::to_owned)
        .to_vec();
        secrets.sort();
        secrets.dedup();
        SecretCanary { secrets }
    }
}

impl SecretCanary {
    /// Adds a secret a test seeds itself.
    pub fn with(mut self, secret: impl Into<String>) -> Self {
        self.secrets.push(secret.into());
        self
    }

    /// (form, needle) pairs: plain, URL-encoded, and base64 in both
    /// alphabets at each of the three byte alignments.
    fn needles(&self) -> Vec<(usize, &'static str, String)> {
        let mut out = Vec::new();
        for (i, secret) in self.secrets.iter().enumerate() {
            out.push((i, "plain", secret.clone()));
            let url: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            if url != *secret {
                out.push((i, "url-encoded", url.clone()));
                out.push((i, "url-encoded", url.replace('+', "%20")));
            }
            for shift in 0..3 {
                let mut bytes = vec![0u8; shift];
                bytes.extend_from_slice(secret.as_bytes());
                // Characters that depend on the secret's bytes only: skip the
                // group shared with the prefix and the unfinished last one.
                let start = if shift == 0 { 0 } else { 4 };
                let end = bytes.len() / 3 * 4;
                for (form, engine) in [
                    ("base64", &STANDARD_NO_PAD),
                    ("base64url", &URL_SAFE_NO_PAD),
                ] {
                    let encoded = engine.encode(&bytes);
                    if end > start && end - start >= MIN_NEEDLE {
                        out.push((i, form, encoded[start..end].to_owned()));
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Which secrets (by index, never by value) `text` holds, and in which form.
    pub fn hits(&self, text: &str) -> Vec<String> {
        let mut hits: Vec<String> = self
            .needles()
            .into_iter()
            .filter(|(_, _, needle)| text.contains(needle.as_str()))
            .map(|(i, form, _)| format!("secret #{i} ({} chars) as {form}", self.secrets[i].len()))
            .collect();
        hits.dedup();
        hits
    }

    /// Panics (naming `what` and the forms found, never the secret) when
    /// `text` holds a seeded secret; saves `text` for the suite-wide scan.
    pub fn assert_clean(&self, what: &str, text: &str) {
        save(what, text);
        self.check(what, text);
    }

    /// The check alone, without saving `text` (for planted secrets).
    pub fn check(&self, what: &str, text: &str) {
        let hits = self.hits(text);
        assert!(hits.is_empty(), "{what}: seeded secret found: {hits:?}");
    }
}

/// [`SecretCanary::assert_clean`] with the default secrets.
pub fn assert_no_secrets(what: &str, text: &str) {
    SecretCanary::default().assert_clean(what, text);
}

/// stdout and stderr of a finished process, checked and saved.
pub fn assert_output_clean(what: &str, out: &std::process::Output) {
    let text = format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_secrets(what, &text);
}

/// Where captured output is kept for the final scan.
pub fn test_logs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-logs")
}

fn save(what: &str, text: &str) {
    static N: AtomicU64 = AtomicU64::new(0);
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "test".into());
    let dir = test_logs_dir().join(binary.split('-').next().unwrap_or("test"));
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let name: String = what
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(60)
        .collect();
    let n = N.fetch_add(1, Ordering::Relaxed);
    let _ = std::fs::write(
        dir.join(format!("{}-{n}-{name}.log", std::process::id())),
        text,
    );
}
