//! Shared start-up of the commands that talk to the servers: load and
//! validate the configuration, set up logging, warn about insecure settings,
//! build the engine.

use std::path::Path;

use anyhow::Context;
use tracing::warn;

use crate::config::Settings;
use crate::reconcile::cycle::Engine;

pub fn start(config: &Path) -> anyhow::Result<Engine> {
    let settings = Settings::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::telemetry::init(settings.logging.format, &settings.logging.level);
    for w in &settings.warnings {
        warn!("{w}");
    }
    Engine::new(settings).context("cannot set up the API clients")
}
