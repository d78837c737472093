//! `run`: the long-running service (see `daemon`). Exit 0 after a graceful
//! stop, 2 when the configuration is invalid at start, 1 when the state
//! directory is held by another process or cannot be used, or when
//! `health.listen` cannot be bound; 130 when a
//! second stop signal cuts the shutdown short.

use std::path::Path;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use crate::config::Settings;
use crate::daemon::{Daemon, control};
use crate::health::{Health, HealthError};
use crate::systemd::Notifier;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Log every write instead of making it (also `sync.dry_run`).
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(args: Args, config: &Path) -> anyhow::Result<i32> {
    let settings = match Settings::load(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("error: invalid configuration; not starting");
            return Ok(2);
        }
    };
    crate::telemetry::init(settings.logging.format, &settings.logging.level);
    for w in &settings.warnings {
        warn!("{w}");
    }
    let mut daemon = match Daemon::with_settings(settings, config, Notifier::from_env()) {
        Ok(d) => d,
        Err(e) => {
            error!(label = e.label(), "{e}");
            return Ok(e.exit_code());
        }
    };
    if args.dry_run {
        daemon.force_dry_run();
    }
    let listener = match start_health(&mut daemon).await {
        Ok(listener) => listener,
        Err(e) => {
            error!(label = e.label(), "{e}");
            return Ok(1);
        }
    };
    let (tx, rx) = mpsc::unbounded_channel();
    control::forward_signals(tx)?;
    let code = daemon.run(rx).await;
    if let Some((cancel, serving)) = listener {
        cancel.cancel();
        let _ = serving.await;
    }
    Ok(code)
}

type Serving = (CancellationToken, tokio::task::JoinHandle<()>);

/// Binds `health.listen` (when set) before the first cycle, so a taken port
/// stops the start rather than leaving the service without its probes.
async fn start_health(daemon: &mut Daemon) -> Result<Option<Serving>, HealthError> {
    let Some(addr) = daemon.settings().health.listen else {
        return Ok(None);
    };
    let health = Health::new(daemon.settings().sync.interval);
    let listener = health.bind(addr).await?;
    daemon.attach_health(health);
    let cancel = CancellationToken::new();
    let serving = tokio::spawn(listener.serve(cancel.clone()));
    Ok(Some((cancel, serving)))
}
