//! `encrypt`: read a password on stdin (without echo on a terminal) and print
//! the `encrypted_password:"…"` pair to paste into notes. Needs no
//! configuration: the key comes from `--key-file` or `PVE_GUAC_SYNC_KEY`.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::crypto::Keyring;
use crate::secret::Secret;

/// Environment variable holding one key (standard Fernet key or passphrase).
pub const KEY_ENV: &str = "PVE_GUAC_SYNC_KEY";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// File with one key per line (first encrypts); blank lines and lines
    /// starting with `#` are ignored. Default: the PVE_GUAC_SYNC_KEY variable.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let keyring = match &args.key_file {
        Some(path) => load_key_file(path)?,
        None => match std::env::var(KEY_ENV) {
            Ok(key) if !key.trim().is_empty() => Keyring::new(&[Secret::new(key)])?,
            _ => bail!("no key: pass --key-file FILE or set {KEY_ENV}"),
        },
    };
    let password = read_password()?;
    if password.is_empty() {
        bail!("empty password: nothing to encrypt");
    }
    if password.expose().trim() != password.expose() {
        eprintln!("warning: the password has leading or trailing whitespace; it is kept");
    }
    println!(
        "encrypted_password:\"{}\"",
        keyring.encrypt(&password).expose()
    );
    Ok(0)
}

/// Reads a key file: one key per line, `#` comments and blank lines skipped.
/// Errors name the file, never a key.
pub fn load_key_file(path: &Path) -> anyhow::Result<Keyring> {
    let bytes = crate::config::read_small_regular_file(path, "key file")
        .map_err(|message| anyhow::anyhow!("cannot read {message}"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("key file {}: is not UTF-8 text", path.display()))?;
    let keys: Vec<Secret> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(Secret::from)
        .collect();
    Keyring::new(&keys).with_context(|| format!("key file {}", path.display()))
}

/// One line from a terminal with echo off, or all of a piped stdin; the final
/// line ending is dropped.
pub(crate) fn read_password() -> anyhow::Result<Secret> {
    let stdin = std::io::stdin();
    let mut text = String::new();
    if stdin.is_terminal() {
        eprint!("Password: ");
        std::io::stderr().flush().ok();
        let _echo = EchoOff::new();
        stdin
            .lock()
            .read_line(&mut text)
            .context("cannot read the password")?;
        eprintln!();
    } else {
        stdin
            .lock()
            .read_to_string(&mut text)
            .context("cannot read the password")?;
    }
    let line = text.strip_suffix('\n').unwrap_or(&text);
    let line = line.strip_suffix('\r').unwrap_or(line);
    Ok(Secret::new(line))
}

/// Turns terminal echo off with `stty` for as long as it lives.
struct EchoOff(bool);

impl EchoOff {
    fn new() -> EchoOff {
        EchoOff(stty("-echo"))
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if self.0 {
            stty("echo");
        }
    }
}

fn stty(arg: &str) -> bool {
    Command::new("stty")
        .arg(arg)
        .stdin(Stdio::inherit())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
