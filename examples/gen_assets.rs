//! Writes the packages' generated files from the clap definitions of
//! `pve-guac-sync`: the man page pve-guac-sync(8) and the bash, zsh and fish
//! completions.
//!
//!     cargo run --locked --example gen_assets -- target/assets
//!
//! An example, not a subcommand or a second binary: clap_mangen and
//! clap_complete stay dev-dependencies, so the daemon's binary and its
//! dependency tree do not grow. Build it with the same features as the
//! packaged binary (the `demo` subcommand is feature-gated).

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use pve_guac_sync::cli::Cli;

const NAME: &str = "pve-guac-sync";

fn main() -> std::io::Result<()> {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| "target/assets".into());
    std::fs::create_dir_all(&out)?;
    write_man_page(&out)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut Cli::command(), NAME, &out)?;
        println!("{}", path.display());
    }
    Ok(())
}

/// pve-guac-sync(8): a daemon is administered by root, so section 8.
fn write_man_page(out: &Path) -> std::io::Result<()> {
    let command = Cli::command();
    let version = command.get_version().unwrap_or_default().to_owned();
    let man = clap_mangen::Man::new(command)
        .section("8")
        .manual("System Administration")
        .source(format!("{NAME} {version}"));
    let mut page = Vec::new();
    man.render(&mut page)?;
    let path = out.join(format!("{NAME}.8"));
    std::fs::write(&path, page)?;
    println!("{}", path.display());
    Ok(())
}
