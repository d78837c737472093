//! Resolving secret sources (`{file:}`, `{env:}`, `{credential:}`, inline)
//! into [`Secret`]s. Messages name the source (path, variable, credential),
//! never the value.

use std::path::{Path, PathBuf};

use super::perms;
use super::raw::RawSecret;
use crate::secret::Secret;

/// Where environment lookups go; tests pass their own instead of touching
/// the process environment.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var_os(name).and_then(|v| v.into_string().ok())
    }
}

/// A resolved secret plus anything worth a warning about its source.
pub(crate) struct Resolved {
    pub secret: Secret,
    pub warning: Option<String>,
}

pub(crate) fn resolve(source: &RawSecret, env: &dyn Environment) -> Result<Resolved, String> {
    let resolved = match source {
        RawSecret::Inline(value) => Resolved {
            secret: value.clone(),
            warning: None,
        },
        RawSecret::File(path) => {
            if !Path::new(path).is_absolute() {
                return Err(format!(
                    "secret file `{path}`: expected an absolute path (e.g. /etc/pve-guac-sync/…)"
                ));
            }
            read_secret_file(Path::new(path), "secret file")?
        }
        RawSecret::Env(name) => {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(format!("`{name}` is not a valid environment variable name"));
            }
            let value = env
                .var(name)
                .ok_or_else(|| format!("environment variable `{name}` is not set"))?;
            Resolved {
                secret: Secret::new(value),
                warning: None,
            }
        }
        RawSecret::Credential(name) => {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(format!("`{name}` is not a valid systemd credential name"));
            }
            let Some(dir) = env.var("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) else {
                return Err(format!(
                    "credential `{name}` needs $CREDENTIALS_DIRECTORY, which is not set; systemd \
                     sets it for a service with LoadCredential={name}:PATH (or \
                     LoadCredentialEncrypted=); outside the service, run through `systemd-run \
                     -p LoadCredential=…` or use {{file: PATH}}"
                ));
            };
            let path = PathBuf::from(dir).join(name);
            let mut resolved = read_secret_file(&path, "credential file")?;
            // systemd owns the credentials directory's permissions.
            resolved.warning = None;
            resolved
        }
    };
    if resolved.secret.is_empty() {
        return Err(format!("{} is empty", describe(source)));
    }
    Ok(resolved)
}

/// How a source is named in messages, never showing an inline value.
pub(crate) fn describe(source: &RawSecret) -> String {
    match source {
        RawSecret::Inline(_) => "inline secret".to_owned(),
        RawSecret::File(p) => format!("secret file {p}"),
        RawSecret::Env(n) => format!("environment variable `{n}`"),
        RawSecret::Credential(n) => format!("credential `{n}`"),
    }
}

/// A secret file holds one password, token or key list; anything bigger is
/// a mistake (or `/dev/zero`), not a secret.
pub(crate) const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Reads a file that must be a regular file of at most
/// [`MAX_SECRET_FILE_BYTES`]: a FIFO would hang the reader, a device or a
/// huge file would eat memory. `what` names it in messages.
pub(crate) fn read_small_regular_file(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let shown = path.display();
    let fail = |e: std::io::Error| format!("{what} {shown}: {}", io_reason(&e));
    let not_regular = || format!("{what} {shown}: is not a regular file");
    // Checked before opening (opening a FIFO blocks) and again on the open
    // file (the path may have changed in between).
    if !std::fs::metadata(path).map_err(fail)?.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path).map_err(fail)?;
    let meta = file.metadata().map_err(fail)?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    let too_big = || {
        format!(
            "{what} {shown}: is larger than {MAX_SECRET_FILE_BYTES} bytes; a secret file holds one secret"
        )
    };
    if meta.len() > MAX_SECRET_FILE_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(fail)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(too_big());
    }
    Ok(bytes)
}

fn read_secret_file(path: &Path, what: &str) -> Result<Resolved, String> {
    let shown = path.display();
    let bytes = read_small_regular_file(path, what)?;
    let mut text =
        String::from_utf8(bytes).map_err(|_| format!("{what} {shown}: is not UTF-8 text"))?;
    // Files written by `echo` or editors end in one newline that is not part
    // of the secret; anything more is kept as written.
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    let warning = perms::file_mode(path)
        .ok()
        .filter(|mode| perms::readable_by_group_or_others(*mode))
        .map(|mode| {
            format!(
                "{what} {shown} is readable by group or others (mode {mode:04o}); run `chmod 600 {shown}`"
            )
        });
    Ok(Resolved {
        secret: Secret::new(text),
        warning,
    })
}

pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => format!("cannot be read ({e})"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct FakeEnv(HashMap<&'static str, String>);

    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    fn env(pairs: &[(&'static str, &str)]) -> FakeEnv {
        FakeEnv(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
    }

    #[test]
    fn files_lose_exactly_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "canary-value\n\n").unwrap();
        let r = resolve(&RawSecret::File(path.display().to_string()), &env(&[])).unwrap();
        assert_eq!(r.secret.expose(), "canary-value\n");
        std::fs::write(&path, "canary-value\r\n").unwrap();
        let r = resolve(&RawSecret::File(path.display().to_string()), &env(&[])).unwrap();
        assert_eq!(r.secret.expose(), "canary-value");
    }

    #[test]
    fn missing_sources_are_named_without_values() {
        let e = resolve(
            &RawSecret::File("/nonexistent/pgs-secret".into()),
            &env(&[]),
        )
        .err()
        .unwrap();
        assert_eq!(e, "secret file /nonexistent/pgs-secret: does not exist");
        let e = resolve(&RawSecret::File("relative/secret".into()), &env(&[]))
            .err()
            .unwrap();
        assert!(e.contains("expected an absolute path"), "{e}");
        let e = resolve(&RawSecret::Env("PGS_TOKEN".into()), &env(&[]))
            .err()
            .unwrap();
        assert_eq!(e, "environment variable `PGS_TOKEN` is not set");
        let e = resolve(&RawSecret::Credential("pve-token".into()), &env(&[]))
            .err()
            .unwrap();
        assert!(
            e.starts_with("credential `pve-token` needs $CREDENTIALS_DIRECTORY"),
            "{e}"
        );
        let e = resolve(&RawSecret::Env("EMPTY".into()), &env(&[("EMPTY", "")]))
            .err()
            .unwrap();
        assert_eq!(e, "environment variable `EMPTY` is empty");
    }

    #[test]
    fn credentials_come_from_the_credentials_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pve-token"), "canary-credential\n").unwrap();
        let d = dir.path().display().to_string();
        let e = env(&[("CREDENTIALS_DIRECTORY", &d)]);
        let r = resolve(&RawSecret::Credential("pve-token".into()), &e).unwrap();
        assert_eq!(r.secret.expose(), "canary-credential");
        let err = resolve(&RawSecret::Credential("other".into()), &e)
            .err()
            .unwrap();
        assert_eq!(err, format!("credential file {d}/other: does not exist"));
        let err = resolve(&RawSecret::Credential("../x".into()), &e)
            .err()
            .unwrap();
        assert!(err.contains("not a valid systemd credential name"), "{err}");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        let shown = path.display().to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = shown.clone();
        std::thread::spawn(move || {
            let r = resolve(&RawSecret::File(p), &env(&[])).map(|_| ());
            let _ = tx.send(r);
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(5));
        if got.is_err() {
            // Unblock the reader before failing, so the test ends.
            let _ = std::fs::write(&path, b"x");
        }
        let err = got.expect("reading a FIFO must not block").unwrap_err();
        assert_eq!(err, format!("secret file {shown}: is not a regular file"));
    }

    #[test]
    fn an_oversized_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(50 * 1024 * 1024).unwrap(); // sparse: costs no disk
        let shown = path.display().to_string();
        let err = resolve(&RawSecret::File(shown.clone()), &env(&[]))
            .err()
            .unwrap();
        assert_eq!(
            err,
            format!(
                "secret file {shown}: is larger than 65536 bytes; a secret file holds one secret"
            )
        );
        let err = resolve(&RawSecret::File("/dev/zero".into()), &env(&[]))
            .err()
            .unwrap();
        assert_eq!(err, "secret file /dev/zero: is not a regular file");
    }
}
