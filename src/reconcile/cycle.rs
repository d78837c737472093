//! One whole cycle, observe → desire → plan → apply → record, over the real
//! clients. The daemon loop (`run`) owns the state in memory and passes it
//! to [`Engine::run_cycle`]; `once`, `plan`, `list` and the demo use
//! [`Engine::cycle`], which wraps it with load, lock and save. They differ
//! only in [`Mode`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::join_all;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::apply::{ApplyContext, Budget, apply};
use super::clients::{ClientChanges, Clients, ClientsError};
use super::cycle_config::CycleConfig;
pub use super::cycle_config::notes_policy;
use super::desire::{ClusterObservation, DesireSettings, desire};
use super::model::{Desired, FingerprintKey, ManagedTree};
use super::notes_write::{NotesWriteError, NotesWriter, WriteFuture};
use super::observe::{ClusterSource, Memory, fill_parameters, observe_cluster, observe_tree};
use super::plan::{
    Action, Plan, PlanSettings, binding, check_binding, claim, claim_reads, parameters_needed,
    parameters_needed_to_apply, plan,
};
use super::record::{ActionResult, CycleSummary, Outcome, record};
use crate::config::Settings;
use crate::crypto::{CryptoError, Keyring};
use crate::discovery::AddressSource;
use crate::discovery::power::journal::Journal;
use crate::discovery::power::{PowerResult, PowerUps};
use crate::discovery::sources;
use crate::guacamole::{GroupSpec, GuacamoleError, ROOT_GROUP};
use crate::proxmox::{ProxmoxClient, ProxmoxError};
use crate::state::{CachedAddress, State, StateError, StateFile, StateStore};
use crate::telemetry::{AuditEvent, audit};

/// What a cycle may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Observe and plan only (`plan`, `list`).
    PlanOnly,
    /// Plan and log every write instead of making it.
    DryRun,
    #[default]
    Apply,
}

#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error("{0}")]
    Clients(#[from] ClientsError),
    #[error("encryption keys: {0}")]
    Keys(#[from] CryptoError),
    #[error("Guacamole: {0}")]
    Guacamole(#[from] GuacamoleError),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("reload refused: {0}")]
    Reload(String),
}

impl CycleError {
    pub fn label(&self) -> &'static str {
        match self {
            CycleError::Clients(e) => e.label(),
            CycleError::Keys(e) => e.label(),
            CycleError::Guacamole(e) => e.label(),
            CycleError::State(e) => e.label(),
            CycleError::Reload(_) => "reload_refused",
        }
    }
}

/// Everything a cycle learnt and did.
#[derive(Debug, Serialize)]
pub struct CycleReport {
    #[serde(flatten)]
    pub summary: CycleSummary,
    /// Requests per API during this cycle.
    pub requests: BTreeMap<String, u64>,
    pub duration_ms: u128,
    /// Clusters not fully observed this cycle (no deletes there).
    pub degraded_clusters: Vec<String>,
    /// The cycle's number within this process (1 = the first).
    #[serde(skip)]
    pub cycle: u64,
    /// Problems worth an operator's attention (block errors, unreadable
    /// configs, unknown addresses); never secrets.
    pub problems: Vec<String>,
    #[serde(skip)]
    pub plan: Plan,
    #[serde(skip)]
    pub desired: Desired,
    #[serde(skip)]
    pub tree: ManagedTree,
    #[serde(skip)]
    pub outcome: Outcome,
    /// Grants per desired connection, and what the grant plan learnt.
    #[serde(skip)]
    pub access: super::grants::GrantPlan,
}

impl CycleReport {
    /// What a daemon keeps of a finished cycle between cycles (the status
    /// page's pending work, held guests and block errors): without the
    /// Guacamole tree, connection parameters and note rewrites. Those are
    /// the bulk of a report at thousands of guests, and the parameters hold
    /// decrypted passwords, which should not outlive their cycle.
    pub fn retained(mut self) -> CycleReport {
        self.tree = ManagedTree::default();
        let forget = |c: &mut super::model::DesiredConnection| c.params = Default::default();
        self.desired.connections.values_mut().for_each(forget);
        self.desired.rewrites = Vec::new();
        for planned in &mut self.plan.actions {
            match &mut planned.action {
                Action::Create { connection, .. } => forget(connection),
                Action::Update {
                    connection,
                    attributes,
                    ..
                } => {
                    forget(connection);
                    *attributes = BTreeMap::new();
                }
                Action::RewriteNotes { rewrite } => rewrite.forget_contents(),
                _ => {}
            }
        }
        self
    }
}

/// What one cycle is asked to do.
#[derive(Debug, Clone, Default)]
pub struct CycleOptions {
    pub mode: Mode,
    /// Read every owned connection's parameters (for `list` and drift
    /// reports) instead of trusting the state file.
    pub verify_all: bool,
    /// Clusters not to contact this cycle (backing off after failures):
    /// they count as not fully observed, so nothing of theirs is deleted.
    pub resting: BTreeSet<String>,
    /// How power-ups run (only in [`Mode::Apply`]).
    pub power_ups: PowerUpRun,
}

/// Where the power-ups of a cycle run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PowerUpRun {
    /// Inside the cycle, which waits for them (`once`).
    #[default]
    Inline,
    /// As tasks beside the loop; what they learn feeds the next cycle (`run`).
    Background,
}

/// The long-lived engine: the clients (with the Guacamole session), the
/// per-cycle configuration and the settings they came from. It holds no
/// state: the caller owns it.
pub struct Engine {
    pub settings: Settings,
    pub clients: Clients,
    config: CycleConfig,
    /// Whether the Guacamole account is an administrator; only a successful
    /// answer is kept (a transient error must not disable pruning for good).
    admin: tokio::sync::OnceCell<bool>,
    cancel: CancellationToken,
    cycles: AtomicU64,
    /// Power-ups: journal, budgets, in-flight guests (outlive reloads).
    power: Arc<PowerUps>,
    /// What background power-ups learnt, for the next cycle.
    power_results: Arc<std::sync::Mutex<Vec<PowerResult>>>,
    /// Added to the system clock (tests and simulations step time with it).
    clock_offset: AtomicU64,
}

impl Engine {
    pub fn new(settings: Settings) -> Result<Engine, CycleError> {
        Engine::with_cancel(settings, CancellationToken::new())
    }

    /// An engine whose retry sleeps, pauses and apply stages stop when
    /// `cancel` fires (shutdown).
    pub fn with_cancel(
        settings: Settings,
        cancel: CancellationToken,
    ) -> Result<Engine, CycleError> {
        let clients = Clients::new(&settings, &cancel)?;
        let config = CycleConfig::new(&settings, &clients)?;
        let journal = Arc::new(Journal::new(&settings.state_dir));
        Ok(Engine {
            power: Arc::new(PowerUps::new(settings.discovery.power_up.clone(), journal)),
            power_results: Arc::default(),
            clock_offset: AtomicU64::new(0),
            admin: tokio::sync::OnceCell::new(),
            cycles: AtomicU64::new(0),
            config,
            clients,
            settings,
            cancel,
        })
    }

    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Swaps in new settings: clients whose endpoint, TLS, limits or secret
    /// changed are rebuilt (a replaced Guacamole client is logged out), the
    /// rest keep their connections and session. Nothing changes unless
    /// everything new could be built. The state directory cannot change
    /// while the state is held.
    pub async fn reload(&mut self, new: Settings) -> Result<ClientChanges, CycleError> {
        if new.state_dir != self.settings.state_dir {
            return Err(CycleError::Reload(format!(
                "state_dir cannot change while running ({} → {}); restart the service",
                self.settings.state_dir.display(),
                new.state_dir.display()
            )));
        }
        let (clients, changes) = self.clients.rebuilt(&self.settings, &new, &self.cancel)?;
        let config = CycleConfig::new(&new, &clients)?;
        // New power-up budgets apply once no power-up is under way.
        if new.discovery.power_up != self.settings.discovery.power_up
            && self.power.in_flight().is_empty()
        {
            self.power = Arc::new(PowerUps::new(
                new.discovery.power_up.clone(),
                self.power.journal.clone(),
            ));
        }
        let old = std::mem::replace(&mut self.clients, clients);
        self.config = config;
        self.settings = new;
        if changes.guacamole {
            self.admin = tokio::sync::OnceCell::new();
            if let Err(e) = old.guacamole.logout().await {
                warn!(error = %e, "logout of the replaced Guacamole session failed");
            }
        }
        Ok(changes)
    }

    pub fn plan_settings(&self, prune_groups: bool) -> PlanSettings {
        PlanSettings {
            prune_groups,
            prune: self.settings.sync.prune.enabled,
            prune_grace: self.settings.sync.prune.grace,
            verify_interval: self.settings.sync.verify_interval,
        }
    }

    /// One cycle for a one-shot command: loads the state, and in
    /// [`Mode::Apply`] locks the state directory for the cycle and saves as
    /// work completes. `verify_all` reads every owned connection's
    /// parameters instead of trusting the state file.
    pub async fn cycle(&self, mode: Mode, verify_all: bool) -> Result<CycleReport, CycleError> {
        let options = CycleOptions {
            mode,
            verify_all,
            ..CycleOptions::default()
        };
        if mode == Mode::Apply {
            let (mut file, mut st) = StateFile::open(self.state_store(), "once")?;
            self.run_cycle(&mut st, Some(&mut file), &options).await
        } else {
            let mut st = self.state_store().load()?;
            self.run_cycle(&mut st, None, &options).await
        }
    }

    /// The state directory's store, keyed with this configuration's
    /// fingerprint key (see [`fingerprint_key`]).
    pub fn state_store(&self) -> StateStore {
        StateStore::new(&self.settings.state_dir)
            .with_fingerprint_key(self.config.fingerprint_key.clone())
    }

    /// One cycle over state the caller owns. With `file`, ownership is
    /// written after each apply stage and the whole state at the end, so a
    /// stop or crash mid-apply never loses the record of writes made.
    pub async fn run_cycle(
        &self,
        st: &mut State,
        mut file: Option<&mut StateFile>,
        options: &CycleOptions,
    ) -> Result<CycleReport, CycleError> {
        let number = self.cycles.fetch_add(1, Ordering::Relaxed) + 1;
        let started = Instant::now();
        let before = self.clients.request_counts();
        let now = self.now();
        // A reload may have changed the key's secret: fingerprints made with
        // the old key then no longer match, which costs one read each.
        st.fingerprint_key = self.config.fingerprint_key.clone();

        self.absorb_background_power_ups(st, now);
        let mut observed = self.observe_clusters(st, now, &options.resting).await;
        if options.mode == Mode::Apply {
            match options.power_ups {
                PowerUpRun::Inline => {
                    self.power_up_inline(&mut observed, st, now).await;
                }
                PowerUpRun::Background => self.spawn_power_ups(&observed, st, now).await,
            }
        }
        let want = self.desire(&observed);
        let (tree, read_failures, site) = self
            .observe_guacamole(st, &want, options.mode, options.verify_all, now)
            .await?;
        for w in &want.warnings {
            warn!("{}", w.message);
        }
        let mut problems: Vec<String> = want
            .problems
            .iter()
            .chain(&want.warnings)
            .map(|p| p.message.clone())
            .collect();
        // A cluster that could not be fully observed, or a parameter set that
        // could not be read, means the cycle did not converge.
        let observe_errors = observed.iter().filter(|c| !c.complete).count() + read_failures.len();
        problems.extend(read_failures);
        let prune_groups = self.account_sees_everything().await;
        let mut the_plan = plan(&want, &tree, st, now, &self.plan_settings(prune_groups));
        let access = super::grants::plan_stage(
            &self.clients.guacamole,
            &observed,
            &want,
            &tree,
            st,
            &self.settings.access,
            &mut the_plan,
        )
        .await;
        problems.extend(access.problems.iter().cloned());

        let applied = self
            .apply_plan(
                options.mode,
                &the_plan,
                &tree,
                &want,
                st,
                &site,
                file.as_deref_mut(),
                now,
                number,
            )
            .await?;
        let mut summary = record(&the_plan, &applied.outcome, &want, st, now);
        summary.errors += observe_errors + access.errors;
        summary.groups_created += usize::from(applied.root_created);
        if options.mode == Mode::PlanOnly {
            summary.pending = the_plan.actions.len();
        }
        if options.mode == Mode::Apply {
            if let Some(root) = applied.root_id.as_ref().or(tree.root_id.as_ref()) {
                st.guacamole = Some(site.binding(root));
            }
            remember_addresses(&observed, &mut st.addresses, now);
            let d = &self.settings.discovery;
            super::discovery_step::remember_schedule(
                &observed,
                &mut st.discovery,
                now,
                (d.backoff_initial, d.backoff_max),
            );
            if let Some(file) = file {
                file.save(st)?;
            }
        }
        if let Some(e) = applied.save_error {
            return Err(e.into());
        }
        let after = self.clients.request_counts();
        let requests = after
            .iter()
            .map(|(api, n)| (api.clone(), n - before.get(api).copied().unwrap_or(0)))
            .collect();
        Ok(CycleReport {
            summary,
            requests,
            duration_ms: started.elapsed().as_millis(),
            degraded_clusters: observed
                .iter()
                .filter(|c| !c.complete)
                .map(|c| c.name.clone())
                .collect(),
            cycle: number,
            problems,
            plan: the_plan,
            desired: want,
            tree,
            outcome: applied.outcome,
            access,
        })
    }

    pub(crate) fn desire(&self, observed: &[ClusterObservation]) -> Desired {
        let cluster_names: Vec<String> = self
            .settings
            .proxmox
            .clusters
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let mut want = desire(
            observed,
            &DesireSettings {
                policy: &self.config.policy,
                keyring: self.config.keyring.as_ref(),
                grouping: self.settings.sync.grouping,
                selector: &self.settings.sync.selector,
                hostname: &self.config.hostname,
                auto_encrypt: self.settings.sync.auto_encrypt,
                clusters: &cluster_names,
                wol: &self.settings.discovery.wol,
            },
        );
        super::external::add_external(
            &mut want,
            &self.settings.external,
            &self.settings.sync.name_template,
            &self.config.hostname,
        );
        want
    }

    /// Keys, notes policy, address sources and host name (`explain`).
    pub(crate) fn cycle_config(&self) -> &CycleConfig {
        &self.config
    }

    /// The managed tree, with the parameters the plan must compare (in
    /// [`Mode::Apply`] not those of connections the daemon owns whose wish
    /// changed: see [`parameters_needed_to_apply`]); forgets
    /// ownership of objects deleted by hand. Returns the tree and the
    /// parameter sets that could not be read, and the Guacamole they came
    /// from. Ownership recorded for another Guacamole is dropped first.
    async fn observe_guacamole(
        &self,
        st: &mut State,
        want: &Desired,
        mode: Mode,
        verify_all: bool,
        now: u64,
    ) -> Result<(ManagedTree, Vec<String>, GuacamoleSite), CycleError> {
        let guac = &self.clients.guacamole;
        let mut tree = observe_tree(guac, &self.settings.guacamole.root_group).await?;
        // The tree read made the session: this describes it, no request.
        let session = guac.login().await?;
        let site = GuacamoleSite {
            api: session.base_url.to_string(),
            data_source: session.data_source,
        };
        if let Some(message) = check_binding(st, &site.api, &site.data_source, &tree) {
            warn!("{message}");
        }
        // Objects deleted by hand (or by a cycle whose record was lost) leave
        // nothing to own; their identities get created afresh if desired.
        st.connections.retain(|_, o| tree.find(&o.id).is_some());
        st.orphan_since
            .retain(|id, _| tree.connections.contains_key(id));
        let to_claim = claim_reads(want, &tree, st);
        let mut read_failures = fill_parameters(guac, &mut tree, &to_claim).await;
        let claims = claim(want, &tree, st);
        let settings = self.plan_settings(false);
        let mut ids: BTreeSet<String> = if verify_all {
            claims.owned.values().cloned().collect()
        } else if mode == Mode::Apply {
            parameters_needed_to_apply(want, &claims, st, now, &settings)
        } else {
            parameters_needed(want, &claims, st, now, &settings)
        };
        ids.retain(|id| tree.find(id).is_some_and(|c| c.params.is_none()));
        read_failures.extend(fill_parameters(guac, &mut tree, &ids).await);
        Ok((tree, read_failures, site))
    }

    /// Executes the plan (or logs it, in dry-run). Nothing is started once
    /// shutdown has begun; a stage under way is finished, later ones wait.
    #[allow(clippy::too_many_arguments)]
    async fn apply_plan(
        &self,
        mode: Mode,
        the_plan: &Plan,
        tree: &ManagedTree,
        want: &Desired,
        st: &State,
        site: &GuacamoleSite,
        mut file: Option<&mut StateFile>,
        now: u64,
        number: u64,
    ) -> Result<Applied, CycleError> {
        let mut applied = Applied::default();
        let dry_run = match mode {
            Mode::PlanOnly => return Ok(applied),
            Mode::DryRun => true,
            Mode::Apply => false,
        };
        if self.cancel.is_cancelled() {
            applied.outcome.results = vec![ActionResult::Deferred; the_plan.actions.len()];
            return Ok(applied);
        }
        // Nothing to write: no stage runs, so no stage records either.
        if the_plan.actions.is_empty() {
            return Ok(applied);
        }
        let mut max_changes = self.settings.sync.max_changes_per_cycle.get();
        let root_id = match (&tree.root_id, the_plan.actions.is_empty(), dry_run) {
            (Some(id), _, _) => id.clone(),
            (None, true, _) | (None, _, true) => String::new(),
            (None, false, false) => {
                // The root group is a write too.
                max_changes -= 1;
                applied.root_created = true;
                let id = self.create_root(number).await?;
                applied.root_id = Some(id.clone());
                id
            }
        };
        let writer = ProxmoxNotesWriter {
            clients: &self.clients.proxmox,
            keyring: self.config.keyring.as_ref(),
        };
        let cx = ApplyContext {
            guacamole: &self.clients.guacamole,
            notes: &writer,
            root_id,
            groups: tree
                .groups
                .iter()
                .map(|(p, g)| (p.clone(), g.id.clone()))
                .collect(),
            dry_run,
            cycle: number,
        };
        // One copy of the state that every stage records into: recording
        // is idempotent, so the results so far are recorded again with each
        // stage (a copy per stage cost megabytes at thousands of guests).
        let mut partial = file.is_some().then(|| {
            let mut partial = st.clone();
            if !dry_run && !cx.root_id.is_empty() {
                // Stage saves bind their records to this Guacamole too.
                partial.guacamole = Some(site.binding(&cx.root_id));
            }
            partial
        });
        let cancel = self.cancel.clone();
        let mut save_error = None;
        // Record what each stage did at once: ownership of a created
        // connection must survive a crash right after the stage.
        let mut after_stage = |results: &[Option<ActionResult>]| -> bool {
            if let (Some(file), Some(partial)) = (file.as_deref_mut(), partial.as_mut()) {
                let so_far = Outcome {
                    results: results
                        .iter()
                        .map(|r| r.clone().unwrap_or(ActionResult::Deferred))
                        .collect(),
                };
                record(the_plan, &so_far, want, partial, now);
                if let Err(e) = file.save(partial) {
                    warn!(error = %e, "cannot record the stage's writes; the rest of the plan waits");
                    save_error = Some(e);
                    return false;
                }
            }
            !cancel.is_cancelled()
        };
        let budget = Budget { max_changes };
        applied.outcome = apply(the_plan, budget, cx, &mut after_stage).await;
        applied.save_error = save_error;
        Ok(applied)
    }

    async fn observe_clusters(
        &self,
        st: &State,
        now: u64,
        resting: &BTreeSet<String>,
    ) -> Vec<ClusterObservation> {
        let no_sources: Vec<Box<dyn AddressSource>> = Vec::new();
        let sources: Vec<ClusterSource<'_>> = self
            .clients
            .proxmox
            .iter()
            .map(|(name, client)| ClusterSource {
                name,
                client: client.clone(),
                sources: self
                    .config
                    .sources
                    .get(name)
                    .map_or(&no_sources, |s| s.as_slice()),
                shared: &self.config.shared,
                refresh: self.settings.discovery.refresh,
                now,
            })
            .collect();
        let selector = &self.settings.sync.selector;
        let memory = Memory {
            addresses: &st.addresses,
            schedule: &st.discovery,
        };
        join_all(sources.iter().map(|c| async move {
            if resting.contains(c.name) {
                return resting_cluster(c.name);
            }
            observe_cluster(c, selector, memory).await
        }))
        .await
    }

    /// Unix seconds as this engine sees them.
    pub fn now(&self) -> u64 {
        unix_now() + self.clock_offset.load(Ordering::Relaxed)
    }

    /// Moves this engine's clock forward (tests and simulations of long runs).
    pub fn advance_clock(&self, by: Duration) {
        self.clock_offset.fetch_add(by.as_secs(), Ordering::Relaxed);
    }

    /// The power-up machinery (journal, budgets, in-flight guests).
    pub fn power_ups(&self) -> &Arc<PowerUps> {
        &self.power
    }

    /// Restores every guest left in the power journal (at start after a
    /// crash, at the end of `once`, on shutdown). Returns how many failed
    /// (they stay in the journal for the next try).
    pub async fn restore_power_journal(&self) -> usize {
        let clients = &self.clients.proxmox;
        let results = self.power.restore_all(|c| clients.get(c).cloned()).await;
        results.iter().filter(|(_, r)| r.is_err()).count()
    }

    /// Power-ups of this cycle, run inline (bounded by the budgets); what
    /// they learn goes into this cycle's observation and the state.
    async fn power_up_inline(&self, observed: &mut [ClusterObservation], st: &mut State, now: u64) {
        let requests = self.power_requests(observed, st, now).await;
        let power = &self.power;
        let cancel = &self.cancel;
        let results = join_all(requests.into_iter().map(|r| power.power_up(r, cancel))).await;
        let cooldown = self.settings.discovery.power_up.cooldown;
        super::discovery_step::absorb(&results, observed, st, now, cooldown);
    }

    /// Power-ups as tasks beside the loop: each one's result waits in a
    /// queue that the next cycle takes in (address cache, cooldown).
    async fn spawn_power_ups(&self, observed: &[ClusterObservation], st: &State, now: u64) {
        self.spawn_restore_retries();
        for request in self.power_requests(observed, st, now).await {
            let power = self.power.clone();
            let queue = self.power_results.clone();
            let cancel = self.cancel.clone();
            tokio::spawn(async move {
                let result = power.power_up(request, &cancel).await;
                queue.lock().expect("power results").push(result);
            });
        }
    }

    /// Guests whose restore failed beside the loop are put back by a new
    /// attempt each cycle, not left running until the next start.
    fn spawn_restore_retries(&self) {
        for entry in self.power.leftovers() {
            let Some(client) = self.clients.proxmox.get(&entry.cluster).cloned() else {
                continue;
            };
            let power = self.power.clone();
            tokio::spawn(async move { power.retry_restore(&client, &entry.key()).await });
        }
    }

    /// Whether background power-ups are still under way.
    pub fn power_ups_running(&self) -> bool {
        !self.power.in_flight().is_empty()
    }

    fn absorb_background_power_ups(&self, st: &mut State, now: u64) {
        let results = std::mem::take(&mut *self.power_results.lock().expect("power results"));
        let cooldown = self.settings.discovery.power_up.cooldown;
        super::discovery_step::absorb_into_state(&results, st, now, cooldown);
    }

    async fn power_requests(
        &self,
        observed: &[ClusterObservation],
        st: &State,
        now: u64,
    ) -> Vec<crate::discovery::power::PowerRequest> {
        super::discovery_step::requests(
            observed,
            st,
            now,
            &self.settings.discovery.power_up,
            &self.clients.proxmox,
            &self.config.sources,
            &self.power.in_flight(),
        )
        .await
    }

    /// Whether the Guacamole account is an administrator. Asked until an
    /// answer comes, then kept for the client's life. Until then (or on an
    /// error) "not sure": empty groups are left in place rather than
    /// deleted recursively.
    async fn account_sees_everything(&self) -> bool {
        let answer = self
            .admin
            .get_or_try_init(|| async {
                self.clients
                    .guacamole
                    .effective_permissions()
                    .await
                    .map(|p| p.is_admin())
            })
            .await;
        match answer {
            Ok(admin) => *admin,
            Err(e) => {
                warn!(error = %e, "cannot read the Guacamole account's permissions; empty groups are kept this cycle");
                false
            }
        }
    }

    async fn create_root(&self, cycle: u64) -> Result<String, CycleError> {
        let name = &self.settings.guacamole.root_group;
        let spec = GroupSpec::organizational(name.clone(), ROOT_GROUP);
        let id = self.clients.guacamole.create_group(&spec).await?;
        audit(&AuditEvent {
            action: "create_group",
            result: "done",
            cycle,
            guacamole_id: Some(&id),
            group: Some(name.clone()),
            reason: "managed root group missing",
            message: format!("create managed root group \"{name}\""),
            ..AuditEvent::default()
        });
        Ok(id)
    }

    /// Logs out of Guacamole (on shutdown and at the end of one-shot commands).
    pub async fn close(&self) {
        if let Err(e) = self.clients.guacamole.logout().await {
            warn!(error = %e, "Guacamole logout failed");
        }
    }
}

/// What applying a plan did.
#[derive(Default)]
struct Applied {
    outcome: Outcome,
    root_created: bool,
    /// The managed root group created this cycle.
    root_id: Option<String>,
    /// A stage's writes could not be recorded (the cycle then fails).
    save_error: Option<StateError>,
}

/// The Guacamole a cycle observed: API base and data source of the session.
struct GuacamoleSite {
    api: String,
    data_source: String,
}

impl GuacamoleSite {
    fn binding(&self, root_group_id: &str) -> crate::state::GuacamoleBinding {
        binding(&self.api, &self.data_source, root_group_id)
    }
}

/// A cluster skipped this cycle: observed as incomplete, so its guests keep
/// their connections and nothing of it is deleted.
fn resting_cluster(name: &str) -> ClusterObservation {
    ClusterObservation {
        name: name.to_owned(),
        complete: false,
        guests: Vec::new(),
        errors: vec![format!(
            "cluster {name} not contacted this cycle (backing off after failures)"
        )],
    }
}

fn remember_addresses(
    observed: &[ClusterObservation],
    cache: &mut BTreeMap<String, CachedAddress>,
    now: u64,
) {
    for guest in observed.iter().flat_map(|c| &c.guests) {
        if let crate::discovery::AddressEvidence::Found { address, source } = &guest.address
            && *source != sources::CACHE
        {
            cache.insert(
                guest.key.to_string(),
                CachedAddress {
                    address: address.to_string(),
                    source: (*source).to_owned(),
                    seen_at: now,
                    mac: match &guest.config {
                        super::desire::ConfigObservation::Read(f) => f.primary_mac.clone(),
                        _ => None,
                    },
                },
            );
        }
    }
}

/// The state fingerprints' key comes from a secret the state file does not
/// hold: the first encryption key, else the Guacamole password. Changing it
/// costs one parameter read per owned connection, no writes.
pub(crate) fn fingerprint_key(settings: &Settings) -> FingerprintKey {
    let secret = settings
        .encryption
        .keys
        .first()
        .unwrap_or(&settings.guacamole.password);
    FingerprintKey::derive(secret.expose())
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// Writes migrated notes through the Proxmox client of the guest's cluster.
struct ProxmoxNotesWriter<'a> {
    clients: &'a BTreeMap<String, Arc<ProxmoxClient>>,
    keyring: Option<&'a Keyring>,
}

impl NotesWriter for ProxmoxNotesWriter<'_> {
    fn write<'a>(&'a self, rewrite: &'a super::model::NotesRewrite) -> WriteFuture<'a> {
        Box::pin(async move {
            let client = self
                .clients
                .get(&rewrite.guest.cluster)
                .ok_or_else(|| NotesWriteError::UnknownCluster(rewrite.guest.cluster.clone()))?;
            let kind = rewrite.kind;
            let vmid = rewrite.guest.vmid;
            client
                .set_notes(
                    &rewrite.node,
                    kind,
                    vmid,
                    rewrite.new_notes.expose(),
                    Some(&rewrite.digest),
                )
                .await
                .map_err(|e| match e {
                    ProxmoxError::DigestMismatch { .. } => NotesWriteError::DigestMismatch,
                    ProxmoxError::Locked { .. } => NotesWriteError::Locked,
                    other => NotesWriteError::Proxmox(format!("{other} ({})", other.label())),
                })?;
            let Some(keyring) = self.keyring else {
                return Ok(());
            };
            let back = client
                .config(&rewrite.node, kind, vmid)
                .await
                .map_err(|e| NotesWriteError::Verify(format!("read-back failed: {e}")))?;
            crate::notes::verify_migration(
                &back.notes.unwrap_or_default(),
                keyring,
                &rewrite.migrated,
            )
            .map_err(|e| NotesWriteError::Verify(e.to_string()))
        })
    }
}
