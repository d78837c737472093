//! Writes the packages' generated files from the clap definitions of
//! `pve-guac-sync`: the man page pve-guac-sync(8), one page per command
//! (pve-guac-sync-plan(8), …, which pve-guac-sync(8) lists) and the bash,
//! zsh and fish completions.
//!
//!     cargo run --locked --example gen_assets -- target/assets
//!
//! An example, not a subcommand or a second binary: clap_mangen and
//! clap_complete stay dev-dependencies, so the daemon's binary and its
//! dependency tree do not grow. Build it with the same features as the
//! packaged binary (the `demo` subcommand is feature-gated).

use std::path::{Path, PathBuf};

use clap::{Command, CommandFactory};
use clap_complete::Shell;
use pve_guac_sync::cli::Cli;

const NAME: &str = "pve-guac-sync";

fn main() -> std::io::Result<()> {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| "target/assets".into());
    std::fs::create_dir_all(&out)?;
    let mut command = Cli::command().disable_help_subcommand(true);
    // Built: subcommands get their full names (pve-guac-sync-plan).
    command.build();
    let version = command.get_version().unwrap_or_default().to_owned();
    write_man_pages(command, &out, &version)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut Cli::command(), NAME, &out)?;
        println!("{}", path.display());
    }
    Ok(())
}

/// The command's page and, recursively, its subcommands' pages; section 8
/// (system administration: a daemon run by root).
fn write_man_pages(command: Command, out: &Path, version: &str) -> std::io::Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_man_pages(sub.clone(), out, version)?;
    }
    let path = clap_mangen::Man::new(command)
        .section("8")
        .manual("System Administration")
        .source(format!("{NAME} {version}"))
        .generate_to(out)?;
    println!("{}", path.display());
    Ok(())
}
