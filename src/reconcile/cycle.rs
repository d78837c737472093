//! One whole cycle, observe → desire → plan → apply → record, over the real
//! clients. `once`, `plan`, `list`, the demo and (later) the daemon loop all
//! run this; they differ only in [`Mode`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::join_all;
use serde::Serialize;
use tracing::{info, warn};

use super::apply::{ApplyContext, Budget, apply};
use super::clients::{Clients, ClientsError};
use super::desire::{ClusterObservation, DesireSettings, desire};
use super::model::{Desired, FingerprintKey, ManagedTree};
use super::notes_write::{NotesWriteError, NotesWriter, WriteFuture};
use super::observe::{ClusterSource, fill_parameters, observe_cluster, observe_tree};
use super::plan::{
    Plan, PlanSettings, binding, check_binding, claim, claim_reads, parameters_needed, plan,
};
use super::record::{CycleSummary, Outcome, record};
use crate::config::Settings;
use crate::crypto::{CryptoError, Keyring};
use crate::discovery::AddressSource;
use crate::discovery::sources::GuestInterfaces;
use crate::guacamole::{GroupSpec, GuacamoleError, ROOT_GROUP};
use crate::notes::{NotesPolicy, settings::ExtraAllowed};
use crate::proxmox::{ProxmoxClient, ProxmoxError};
use crate::state::{CachedAddress, StateError, StateStore};

/// What a cycle may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Observe and plan only (`plan`, `list`).
    PlanOnly,
    /// Plan and log every write instead of making it.
    DryRun,
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
}

impl CycleError {
    pub fn label(&self) -> &'static str {
        match self {
            CycleError::Clients(e) => e.label(),
            CycleError::Keys(e) => e.label(),
            CycleError::Guacamole(e) => e.label(),
            CycleError::State(e) => e.label(),
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
}

pub struct Engine {
    pub settings: Settings,
    pub clients: Clients,
    keyring: Option<Keyring>,
    policy: NotesPolicy,
    sources: BTreeMap<String, Vec<Box<dyn AddressSource>>>,
    store: StateStore,
    hostname: String,
    admin: tokio::sync::OnceCell<bool>,
}

impl Engine {
    pub fn new(settings: Settings) -> Result<Engine, CycleError> {
        let clients = Clients::new(&settings)?;
        let keyring = if settings.encryption.keys.is_empty() {
            None
        } else {
            Some(Keyring::new(&settings.encryption.keys)?)
        };
        let sources = clients
            .proxmox
            .iter()
            .map(|(name, client)| {
                let list: Vec<Box<dyn AddressSource>> = vec![Box::new(GuestInterfaces::new(
                    client.clone(),
                    settings.sync.allowed_networks.clone(),
                ))];
                (name.clone(), list)
            })
            .collect();
        Ok(Engine {
            policy: notes_policy(&settings),
            store: StateStore::new(&settings.state_dir)
                .with_fingerprint_key(fingerprint_key(&settings)),
            hostname: crate::host::short_hostname(),
            admin: tokio::sync::OnceCell::new(),
            keyring,
            sources,
            clients,
            settings,
        })
    }

    pub fn plan_settings(&self, prune_groups: bool) -> PlanSettings {
        PlanSettings {
            prune_groups,
            prune: self.settings.sync.prune.enabled,
            prune_grace: self.settings.sync.prune.grace,
            verify_interval: self.settings.sync.verify_interval,
        }
    }

    /// One cycle. `verify_all` reads every owned connection's parameters
    /// (for `list` and drift reports) instead of trusting the state file.
    pub async fn cycle(&self, mode: Mode, verify_all: bool) -> Result<CycleReport, CycleError> {
        let started = Instant::now();
        let before = self.clients.request_counts();
        let now = unix_now();
        let mut st = self.store.load()?;

        let observed = self.observe_clusters(&st.addresses).await;
        let cluster_names: Vec<String> = self
            .settings
            .proxmox
            .clusters
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let want = desire(
            &observed,
            &DesireSettings {
                policy: &self.policy,
                keyring: self.keyring.as_ref(),
                grouping: self.settings.sync.grouping,
                selector: &self.settings.sync.selector,
                hostname: &self.hostname,
                auto_encrypt: self.settings.sync.auto_encrypt,
                clusters: &cluster_names,
            },
        );

        let guac = &self.clients.guacamole;
        let mut tree = observe_tree(guac, &self.settings.guacamole.root_group).await?;
        let session = guac.login().await?;
        let (api, data_source) = (session.base_url.as_str(), session.data_source.as_str());
        if let Some(message) = check_binding(&mut st, api, data_source, &tree) {
            warn!("{message}");
        }
        // Objects deleted by hand (or by a cycle whose record was lost) leave
        // nothing to own; their identities get created afresh if desired.
        st.connections.retain(|_, o| tree.find(&o.id).is_some());
        st.orphan_since
            .retain(|id, _| tree.connections.contains_key(id));
        let to_claim = claim_reads(&want, &tree, &st);
        let mut read_failures = fill_parameters(guac, &mut tree, &to_claim).await;
        let claims = claim(&want, &tree, &st);
        let mut ids: std::collections::BTreeSet<String> = if verify_all {
            claims.owned.values().cloned().collect()
        } else {
            parameters_needed(&want, &claims, &st, now, &self.plan_settings(false))
        };
        ids.retain(|id| tree.find(id).is_some_and(|c| c.params.is_none()));
        for w in &want.warnings {
            warn!("{}", w.message);
        }
        let mut problems: Vec<String> = want
            .problems
            .iter()
            .chain(&want.warnings)
            .map(|p| p.message.clone())
            .collect();
        read_failures.extend(fill_parameters(guac, &mut tree, &ids).await);
        // A cluster that could not be fully observed, or a parameter set that
        // could not be read, means the cycle did not converge.
        let observe_errors = observed.iter().filter(|c| !c.complete).count() + read_failures.len();
        problems.extend(read_failures);
        let prune_groups = self.account_sees_everything().await;
        let the_plan = plan(&want, &tree, &st, now, &self.plan_settings(prune_groups));

        let mut root_created = false;
        let mut root_now = tree.root_id.clone();
        let outcome = match mode {
            Mode::PlanOnly => Outcome::default(),
            Mode::DryRun | Mode::Apply => {
                let dry_run = mode == Mode::DryRun;
                let mut max_changes = self.settings.sync.max_changes_per_cycle.get();
                let root_id = match (&tree.root_id, the_plan.actions.is_empty(), dry_run) {
                    (Some(id), _, _) => id.clone(),
                    (None, true, _) | (None, _, true) => String::new(),
                    (None, false, false) => {
                        // The root group is a write too.
                        max_changes -= 1;
                        root_created = true;
                        let id = self.create_root().await?;
                        root_now = Some(id.clone());
                        id
                    }
                };
                let writer = ProxmoxNotesWriter {
                    clients: &self.clients.proxmox,
                    keyring: self.keyring.as_ref(),
                };
                let cx = ApplyContext {
                    guacamole: guac,
                    notes: &writer,
                    root_id,
                    groups: tree
                        .groups
                        .iter()
                        .map(|(p, g)| (p.clone(), g.id.clone()))
                        .collect(),
                    dry_run,
                };
                let budget = Budget { max_changes };
                apply(&the_plan, budget, cx).await
            }
        };

        let mut summary = record(&the_plan, &outcome, &want, &mut st, now);
        summary.errors += observe_errors;
        summary.groups_created += usize::from(root_created);
        if mode == Mode::PlanOnly {
            summary.pending = the_plan.actions.len();
        }
        if mode == Mode::Apply {
            if let Some(root) = &root_now {
                st.guacamole = Some(binding(api, data_source, root));
            }
            remember_addresses(&observed, &mut st.addresses, now);
            self.store.save(&st)?;
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
            problems,
            plan: the_plan,
            desired: want,
            tree,
            outcome,
        })
    }

    async fn observe_clusters(
        &self,
        cache: &BTreeMap<String, CachedAddress>,
    ) -> Vec<ClusterObservation> {
        let no_sources: Vec<Box<dyn AddressSource>> = Vec::new();
        let sources: Vec<ClusterSource<'_>> = self
            .clients
            .proxmox
            .iter()
            .map(|(name, client)| ClusterSource {
                name,
                client: client.clone(),
                sources: self.sources.get(name).unwrap_or(&no_sources),
                allowed: &self.settings.sync.allowed_networks,
                now: unix_now(),
            })
            .collect();
        let selector = &self.settings.sync.selector;
        join_all(sources.iter().map(|c| observe_cluster(c, selector, cache))).await
    }

    /// Whether the Guacamole account is an administrator, asked once per
    /// process. Anything else (or an error) means "not sure": empty groups
    /// are then left in place rather than deleted recursively.
    async fn account_sees_everything(&self) -> bool {
        *self
            .admin
            .get_or_init(|| async {
                match self.clients.guacamole.effective_permissions().await {
                    Ok(p) => p.is_admin(),
                    Err(e) => {
                        warn!(error = %e, "cannot read the Guacamole account's permissions; empty groups are kept");
                        false
                    }
                }
            })
            .await
    }

    async fn create_root(&self) -> Result<String, CycleError> {
        let name = &self.settings.guacamole.root_group;
        let spec = GroupSpec::organizational(name.clone(), ROOT_GROUP);
        let id = self.clients.guacamole.create_group(&spec).await?;
        info!(target: "pve_guac_sync::audit", action = "create_group", group = %name,
            guacamole_id = %id, reason = "managed root group missing", result = "done",
            "create managed root group \"{name}\"");
        Ok(id)
    }

    /// Logs out of Guacamole (on shutdown and at the end of one-shot commands).
    pub async fn close(&self) {
        if let Err(e) = self.clients.guacamole.logout().await {
            warn!(error = %e, "Guacamole logout failed");
        }
    }
}

fn remember_addresses(
    observed: &[ClusterObservation],
    cache: &mut BTreeMap<String, CachedAddress>,
    now: u64,
) {
    for guest in observed.iter().flat_map(|c| &c.guests) {
        if let crate::discovery::AddressEvidence::Found { address, source } = &guest.address
            && *source != "cache"
        {
            cache.insert(
                guest.key.to_string(),
                CachedAddress {
                    address: address.to_string(),
                    source: (*source).to_owned(),
                    seen_at: now,
                },
            );
        }
    }
}

/// The state fingerprints' key comes from a secret the state file does not
/// hold: the first encryption key, else the Guacamole password. Changing it
/// costs one parameter read per owned connection, no writes.
fn fingerprint_key(settings: &Settings) -> FingerprintKey {
    let secret = settings
        .encryption
        .keys
        .first()
        .unwrap_or(&settings.guacamole.password);
    FingerprintKey::derive(secret.expose())
}

pub fn notes_policy(settings: &Settings) -> NotesPolicy {
    let mut extra = ExtraAllowed::new();
    for (protocol, names) in &settings.sync.extra_allowed_parameters {
        if let Some(p) = crate::notes::Protocol::parse(protocol) {
            extra.entry(p).or_default().extend(names.iter().cloned());
        }
    }
    NotesPolicy {
        default_template: Some(settings.sync.name_template.clone()),
        allowed_networks: settings.sync.allowed_networks.clone(),
        allow_dns_names: settings.sync.allow_dns_names,
        extra_allowed_settings: extra,
        ..NotesPolicy::default()
    }
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
