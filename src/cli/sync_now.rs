//! `sync-now`: asks the running service for a cycle now, by sending it
//! `SIGUSR1`. The service is found through the lock it holds on its state
//! directory (`state_dir/lock` names the holder's pid and role); a one-shot
//! command holding the lock is never signalled. Exit 0 when signalled,
//! 1 when no service runs.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::state::holder;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service's state directory (default: `state_dir` of the
    /// configuration file).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

pub fn run(args: Args, config: &Path) -> anyhow::Result<i32> {
    let dir = match args.state_dir {
        Some(dir) => dir,
        None => crate::config::state_dir_of(config).map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    match holder(&dir)? {
        Some(h) if h.role == "run" => {
            let status = std::process::Command::new("kill")
                .arg("-USR1")
                .arg(h.pid.to_string())
                .status()
                .context("cannot run `kill`; use `systemctl kill -s USR1 pve-guac-sync`")?;
            if !status.success() {
                anyhow::bail!("could not signal pid {} ({status})", h.pid);
            }
            println!("asked pve-guac-sync (pid {}) to sync now", h.pid);
            Ok(0)
        }
        Some(h) => {
            eprintln!(
                "{} is held by pid {} ({}), not by the service; nothing signalled",
                dir.display(),
                h.pid,
                h.role
            );
            Ok(1)
        }
        None => {
            eprintln!(
                "no running pve-guac-sync service found (nothing holds {})",
                dir.join("lock").display()
            );
            Ok(1)
        }
    }
}
