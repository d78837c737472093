//! The long-running service (`pve-guac-sync run`): one engine (clients and
//! the Guacamole session kept across cycles), the state in memory (written
//! as work completes), cycles on `sync.interval` ± jitter that never
//! overlap, control messages for reload, sync-now and shutdown, the error
//! policy, and the systemd protocol.
//!
//! Observers (the health listener) call [`Daemon::subscribe`] before
//! [`Daemon::run`] and receive a [`DaemonStatus`] after every cycle, reload
//! and at shutdown.

pub mod control;
pub mod policy;
pub mod status;
mod watchdog;

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use control::Control;
pub use status::{CycleRecord, DaemonStatus};

use crate::config::{ConfigError, Settings};
use crate::health::Health;
use crate::reconcile::cycle::{CycleError, CycleOptions, CycleReport, Engine, Mode, PowerUpRun};
use crate::state::{State, StateError, StateFile};
use crate::systemd::Notifier;
use crate::telemetry::CYCLE_MESSAGE_ID;
use policy::{ClusterBackoff, error_delay, jittered};
use status::{changes, outcome_of, status_line};
use watchdog::{Watchdog, stall_limit};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("cannot set up the API clients: {0}")]
    Clients(CycleError),
    #[error("{0}")]
    State(#[from] StateError),
}

impl StartError {
    pub fn label(&self) -> &'static str {
        match self {
            StartError::Config(e) => e.label(),
            StartError::Clients(e) => e.label(),
            StartError::State(e) => e.label(),
        }
    }

    /// 2 for an unusable configuration (the only start failure that is the
    /// operator's file), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::Config(_) | StartError::Clients(_) => 2,
            StartError::State(_) => 1,
        }
    }
}

pub struct Daemon {
    engine: Engine,
    state: State,
    file: StateFile,
    config_path: PathBuf,
    notifier: Notifier,
    status: watch::Sender<DaemonStatus>,
    backoff: ClusterBackoff,
    /// Consecutive cycles that failed as a whole (Guacamole, state).
    failures: u32,
    watchdog_every: Option<Duration>,
    dry_run_override: bool,
    /// The metrics and health listener's view, when `health.listen` is set.
    health: Option<Health>,
}

/// What woke the loop.
enum Wake {
    Timer,
    Control(Control),
}

impl Daemon {
    /// Loads the configuration and starts (see [`Daemon::with_settings`]).
    pub fn start(config_path: &Path, notifier: Notifier) -> Result<Daemon, StartError> {
        let settings = Settings::load(config_path)?;
        Daemon::with_settings(settings, config_path, notifier)
    }

    /// Builds the engine and takes the state directory (locked for the
    /// daemon's life). `config_path` is what a reload reads.
    pub fn with_settings(
        settings: Settings,
        config_path: &Path,
        notifier: Notifier,
    ) -> Result<Daemon, StartError> {
        let engine =
            Engine::with_cancel(settings, CancellationToken::new()).map_err(StartError::Clients)?;
        let (file, state) = StateFile::open(engine.state_store(), "run")?;
        let sync = &engine.settings.sync;
        let mut initial = DaemonStatus::new(sync.interval, sync.dry_run);
        initial.max_changes_per_cycle = sync.max_changes_per_cycle.get();
        let (status, _) = watch::channel(initial);
        Ok(Daemon {
            engine,
            state,
            file,
            config_path: config_path.to_path_buf(),
            notifier,
            status,
            backoff: ClusterBackoff::default(),
            failures: 0,
            watchdog_every: crate::systemd::watchdog_interval(),
            dry_run_override: false,
            health: None,
        })
    }

    /// Status after every cycle, reload and at shutdown.
    pub fn subscribe(&self) -> watch::Receiver<DaemonStatus> {
        self.status.subscribe()
    }

    pub fn settings(&self) -> &Settings {
        &self.engine.settings
    }

    /// Log every write instead of making it, whatever the file says.
    pub fn force_dry_run(&mut self) {
        self.dry_run_override = true;
        self.status.send_modify(|s| s.dry_run = true);
    }

    /// Reports every cycle, reload and the shutdown to `health`, and lets it
    /// read the API clients' request counters.
    pub fn attach_health(&mut self, health: Health) {
        health.track_clients(&self.engine.clients);
        health.watch_status(self.subscribe());
        health.track_power_ups(self.engine.power_ups().clone());
        self.health = Some(health);
    }

    /// How often to ping the watchdog (default: half of `$WATCHDOG_USEC`).
    pub fn set_watchdog_interval(&mut self, every: Option<Duration>) {
        self.watchdog_every = every;
    }

    /// Runs until [`Control::Shutdown`] (or the sender is gone), then stops
    /// gracefully. Failures never end the loop. Returns the exit code.
    pub async fn run(mut self, mut control: mpsc::UnboundedReceiver<Control>) -> i32 {
        let mut watchdog = Watchdog::new(self.watchdog_every, stall_limit(&self.engine.settings));
        let mut queued: VecDeque<Control> = VecDeque::new();
        let mut open = true;
        let mut next_at = Instant::now();
        let mut started = false;
        info!(
            config = %self.config_path.display(),
            interval_s = self.engine.settings.sync.interval.as_secs(),
            "pve-guac-sync service starting"
        );
        // Guests a crashed run left powered up go back before anything else.
        self.engine.restore_power_journal().await;
        loop {
            let wake = match queued.pop_front() {
                Some(c) => Wake::Control(c),
                None if !started => Wake::Timer,
                None => tokio::select! {
                    biased;
                    c = control.recv(), if open => Wake::Control(c.unwrap_or_else(|| {
                        open = false;
                        Control::Shutdown
                    })),
                    () = tokio::time::sleep_until(next_at.into()) => Wake::Timer,
                    () = watchdog.tick() => {
                        watchdog.ping_idle(&self.notifier);
                        continue;
                    }
                },
            };
            match wake {
                Wake::Control(Control::Shutdown) => break,
                Wake::Control(Control::Reload) => {
                    if !self.reload().await {
                        continue;
                    }
                    watchdog.set_stall_limit(stall_limit(&self.engine.settings));
                }
                Wake::Control(Control::SyncNow) => {
                    info!("sync requested: running a cycle now");
                    self.backoff.clear();
                }
                Wake::Timer => {}
            }
            if !started {
                started = true;
                self.notifier.ready("first cycle running");
            }
            let cycle_started = Instant::now();
            let delay = self
                .cycle(&mut control, &mut open, &mut queued, &mut watchdog)
                .await;
            // Missed ticks are delayed, not bunched: a cycle that overran its
            // interval is followed by a full pause.
            let due = cycle_started + delay;
            next_at = if due > Instant::now() {
                due
            } else {
                Instant::now() + delay
            };
            if queued.contains(&Control::Shutdown) {
                break;
            }
        }
        self.shutdown().await;
        0
    }

    fn mode(&self) -> Mode {
        if self.dry_run_override || self.engine.settings.sync.dry_run {
            Mode::DryRun
        } else {
            Mode::Apply
        }
    }

    /// Runs one cycle while still listening for control messages (queued
    /// for later; a shutdown also stops the cycle's remaining stages) and
    /// pinging the watchdog while it progresses. Returns the pause before
    /// the next cycle.
    async fn cycle(
        &mut self,
        control: &mut mpsc::UnboundedReceiver<Control>,
        open: &mut bool,
        queued: &mut VecDeque<Control>,
        watchdog: &mut Watchdog,
    ) -> Duration {
        let now = Instant::now();
        let resting = self.backoff.resting(now);
        let options = CycleOptions {
            mode: self.mode(),
            verify_all: false,
            resting: resting.clone(),
            // Power-ups run beside the loop; their results feed the next cycle.
            power_ups: PowerUpRun::Background,
        };
        let mode = options.mode;
        let started = Instant::now();
        let Daemon {
            engine,
            state,
            file,
            notifier,
            ..
        } = self;
        let engine: &Engine = engine;
        let total = |e: &Engine| e.clients.request_counts().values().sum::<u64>();
        watchdog.cycle_started(total(engine));
        let result = {
            let run = engine.run_cycle(state, Some(file), &options);
            tokio::pin!(run);
            loop {
                tokio::select! {
                    result = &mut run => break result,
                    c = control.recv(), if *open => {
                        let c = c.unwrap_or_else(|| {
                            *open = false;
                            Control::Shutdown
                        });
                        if c == Control::Shutdown {
                            info!("stopping: no new work; finishing the writes in flight");
                            notifier.stopping("stopping: finishing the cycle in progress");
                            engine.cancel_token().cancel();
                        }
                        queued.push_back(c);
                    }
                    () = watchdog.tick() => {
                        watchdog.ping_if_progress(total(engine), notifier);
                    }
                }
            }
        };
        // Whatever happened, what is known is written. A cycle that
        // applied and succeeded saved it as its last step: encoding the
        // state again (megabytes at thousands of guests) would find it
        // unchanged.
        let saved_by_cycle = mode == Mode::Apply && result.is_ok();
        if !saved_by_cycle && let Err(e) = self.file.save(&self.state) {
            error!(error = %e, label = e.label(), "cannot write the state file");
        }
        let duration = started.elapsed();
        let delay = match &result {
            Ok(report) => self.after_success(report, &resting),
            Err(e) => self.after_failure(e),
        };
        self.publish(result, duration, delay);
        crate::memory::release_free_memory();
        delay
    }

    fn after_success(&mut self, report: &CycleReport, resting: &BTreeSet<String>) -> Duration {
        self.failures = 0;
        let sync = &self.engine.settings.sync;
        let contacted: Vec<String> = self
            .engine
            .clients
            .proxmox
            .keys()
            .filter(|c| !resting.contains(*c))
            .cloned()
            .collect();
        let failed: BTreeSet<String> = report
            .degraded_clusters
            .iter()
            .filter(|c| !resting.contains(*c))
            .cloned()
            .collect();
        let clients = &self.engine.clients.proxmox;
        self.backoff.record(
            &contacted,
            &failed,
            sync.interval.saturating_mul(3),
            |c| clients.get(c).and_then(|c| c.http().paused_for()),
            Instant::now(),
        );
        for c in &failed {
            warn!(cluster = %c, failures = self.backoff.failures(c),
                "cluster not fully observed; backing off (its connections are kept)");
        }
        // No point in a cycle while Guacamole still asks us to wait.
        let pause = self.engine.clients.guacamole.http().paused_for();
        jittered(sync.interval, sync.jitter).max(pause.unwrap_or_default())
    }

    fn after_failure(&mut self, e: &CycleError) -> Duration {
        self.failures += 1;
        let sync = &self.engine.settings.sync;
        let pause = self.engine.clients.guacamole.http().paused_for();
        let delay = jittered(
            error_delay(e.label(), self.failures, sync.interval, None),
            sync.jitter,
        )
        .max(pause.unwrap_or_default());
        warn!(error = %e, label = e.label(), failures = self.failures,
            retry_in_s = delay.as_secs(), "cycle failed; retrying later");
        delay
    }

    /// Logs the cycle's summary, updates `STATUS=` and the observers.
    fn publish(
        &mut self,
        result: Result<CycleReport, CycleError>,
        duration: Duration,
        next: Duration,
    ) {
        let finished_at = SystemTime::now();
        let http = self.engine.clients.http_stats();
        if let Some(health) = &self.health {
            match &result {
                Ok(report) => health.record_cycle(report),
                Err(e) => health.record_failure(e.label(), duration),
            }
        }
        let record = match result {
            Ok(report) => {
                let outcome = outcome_of(&report);
                let s = &report.summary;
                info!(
                    message_id = CYCLE_MESSAGE_ID,
                    cycle = report.cycle,
                    result = outcome,
                    guests = report.desired.present.len(),
                    connections = report.desired.connections.len(),
                    changes = changes(&report),
                    created = s.created,
                    updated = s.updated,
                    deleted = s.deleted,
                    notes_rewritten = s.notes_rewritten,
                    pending = s.pending,
                    errors = s.errors,
                    dry_run = s.dry_run,
                    duration_ms = duration.as_millis() as u64,
                    next_in_s = next.as_secs(),
                    "cycle {} {outcome}: {} changes, {} pending, {} errors",
                    report.cycle,
                    changes(&report),
                    s.pending,
                    s.errors
                );
                for p in &report.problems {
                    warn!(cycle = report.cycle, "{p}");
                }
                CycleRecord {
                    number: report.cycle,
                    finished_at,
                    duration,
                    outcome,
                    report: Some(Arc::new(report.retained())),
                    error: None,
                    http,
                }
            }
            Err(e) => CycleRecord {
                number: self.status.borrow().cycles + 1,
                finished_at,
                duration,
                outcome: "failed",
                report: None,
                error: Some((e.label(), e.to_string())),
                http,
            },
        };
        let succeeded = record.report.is_some();
        let endpoints = self
            .engine
            .clients
            .proxmox
            .iter()
            .map(|(name, client)| (name.clone(), client.endpoint_reachability()))
            .collect();
        self.status.send_modify(|s| {
            s.absorb(&record, endpoints);
            s.cycles += 1;
            if succeeded {
                s.last_success = Some(finished_at);
            }
            s.last = Some(Arc::new(record));
        });
        self.notifier.status(&status_line(&self.status.borrow()));
    }

    /// Re-reads the file and the secrets. Valid: swapped in, only changed
    /// clients rebuilt. Invalid: every problem logged, shown in `STATUS=`,
    /// the old configuration stays. Returns whether the new one is in force.
    async fn reload(&mut self) -> bool {
        self.notifier.reloading();
        info!(config = %self.config_path.display(), "reloading the configuration");
        let result = match Settings::load(&self.config_path) {
            Ok(new) => self.swap_in(new).await,
            Err(e) => Err(e.to_string().lines().map(str::to_owned).collect()),
        };
        let ok = match result {
            Ok(()) => {
                let sync = &self.engine.settings.sync;
                let (interval, dry_run) = (sync.interval, sync.dry_run || self.dry_run_override);
                let budget = sync.max_changes_per_cycle.get();
                self.status.send_modify(|s| {
                    s.reload_problems.clear();
                    s.max_changes_per_cycle = budget;
                    s.interval = interval;
                    s.dry_run = dry_run;
                });
                // New settings may have healed a failing cluster.
                self.backoff.clear();
                if let Some(health) = &self.health {
                    health.set_interval(interval);
                    health.track_clients(&self.engine.clients);
                    health.track_power_ups(self.engine.power_ups().clone());
                }
                true
            }
            Err(problems) => {
                for p in &problems {
                    error!(problem = %p, "reload refused; the previous configuration stays in force");
                }
                self.status.send_modify(|s| s.reload_problems = problems);
                false
            }
        };
        self.notifier.ready(&status_line(&self.status.borrow()));
        ok
    }

    async fn swap_in(&mut self, new: Settings) -> Result<(), Vec<String>> {
        if new.logging != self.engine.settings.logging {
            warn!("logging settings change at the next restart");
        }
        if new.health != self.engine.settings.health {
            warn!("health.listen changes at the next restart");
        }
        let warnings: Vec<String> = new.warnings.iter().map(ToString::to_string).collect();
        let changes = self
            .engine
            .reload(new)
            .await
            .map_err(|e| vec![e.to_string()])?;
        for w in warnings {
            warn!("{w}");
        }
        info!(
            rebuilt_proxmox = ?changes.proxmox,
            removed_proxmox = ?changes.removed,
            rebuilt_guacamole = changes.guacamole,
            "configuration reloaded"
        );
        Ok(())
    }

    /// No new work; state flushed; logged out of Guacamole.
    async fn shutdown(mut self) {
        self.engine.cancel_token().cancel();
        self.notifier
            .stopping("stopping: saving state and logging out of Guacamole");
        self.status.send_modify(|s| s.stopping = true);
        if let Some(health) = &self.health {
            health.stopping();
        }
        self.restore_powered_up_guests().await;
        if let Err(e) = self.file.save(&self.state) {
            error!(error = %e, label = e.label(), "cannot write the state file at shutdown");
        }
        self.engine.close().await;
        info!("pve-guac-sync service stopped");
    }

    /// Power-ups under way restore their guests once cancelled; wait for
    /// them (bounded by the shutdown timeout), then restore whatever is
    /// still in the journal.
    async fn restore_powered_up_guests(&self) {
        let bound =
            self.engine.settings.discovery.power_up.shutdown_timeout * 2 + Duration::from_secs(30);
        let until = Instant::now() + bound;
        if self.engine.power_ups_running() {
            self.notifier
                .stopping("stopping: restoring guests powered up for discovery");
        }
        while self.engine.power_ups_running() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let failed = self.engine.restore_power_journal().await;
        if failed > 0 {
            error!(
                failed,
                "guests powered up for discovery could not all be restored; they stay in the power journal for the next start"
            );
        }
    }
}
