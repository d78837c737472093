//! Command line: one file per command; this module only declares them and
//! dispatches. Exit codes: 0 success, 1 findings/errors, 2 usage or config
//! errors, 3 changes left pending (see each command).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "pve-guac-sync", version, about)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = "/etc/pve-guac-sync/config.yaml")]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {}

/// Runs the chosen command and returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {}
}
