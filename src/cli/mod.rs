//! Command line: one file per command; this module only declares them and
//! dispatches. Exit codes: 0 success, 1 findings/errors, 2 usage or config
//! errors, 3 changes left pending (see each command).

pub mod check_config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod encrypt;
pub mod engine;
pub mod explain;
pub mod gen_key;
mod guest_ref;
pub mod list;
mod list_filter;
pub mod notes;
pub mod notes_add;
pub mod once;
pub mod plan;
pub mod run;
pub mod status;
pub mod sync_now;
pub mod test_auth;

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
pub enum Command {
    /// Run as a service: sync every `sync.interval`; SIGHUP reloads, SIGUSR1 syncs now, SIGTERM stops.
    Run(run::Args),
    /// Ask the running service for a cycle now (sends it SIGUSR1).
    SyncNow(sync_now::Args),
    /// Show the running service's status page in the terminal (needs `health.listen`).
    Status(status::Args),
    /// Validate the configuration file and its secret sources (contacts no server).
    CheckConfig(check_config::Args),
    /// Work with guest notes (`notes lint` checks notes on stdin, `notes add` writes a block).
    Notes(notes::Args),
    /// Print a new random Fernet key.
    GenKey(gen_key::Args),
    /// Encrypt a password read on stdin into an `encrypted_password:"…"` pair.
    Encrypt(encrypt::Args),
    /// Run one full sync cycle, then exit (0 converged, 1 errors, 3 changes pending).
    Once(once::Args),
    /// Log in everywhere, check TLS and every permission the enabled features need.
    TestAuth(test_auth::Args),
    /// Show what a cycle would change, and why; changes nothing.
    Plan(plan::Args),
    /// Everything about one guest: selection, notes blocks, address, connections, pending actions.
    Explain(explain::Args),
    /// List every managed connection with its status (ok, drift, missing, orphan, error).
    List(list::Args),
    /// Run the sync against an embedded lab (emulated Proxmox VE and Guacamole) and narrate.
    #[cfg(feature = "demo")]
    Demo(demo::Args),
}

/// Runs the chosen command and returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => run::run(args, &cli.config).await,
        Command::SyncNow(args) => sync_now::run(args, &cli.config),
        Command::Status(args) => status::run(args, &cli.config),
        Command::CheckConfig(args) => check_config::run(args, &cli.config),
        Command::Notes(args) => notes::run(args, &cli.config).await,
        Command::GenKey(args) => gen_key::run(args),
        Command::Encrypt(args) => encrypt::run(args),
        Command::Once(args) => once::run(args, &cli.config).await,
        Command::Plan(args) => plan::run(args, &cli.config).await,
        Command::TestAuth(args) => test_auth::run(args, &cli.config).await,
        Command::List(args) => list::run(args, &cli.config).await,
        Command::Explain(args) => explain::run(args, &cli.config).await,
        #[cfg(feature = "demo")]
        Command::Demo(args) => demo::run(args).await,
    }
}
