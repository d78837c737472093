//! The cheap, per-cycle part of the engine: everything derived from the
//! settings that is not a client (keys, the notes policy, address sources,
//! the host name). Rebuilt on every reload; the clients are not.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::clients::Clients;
use super::model::FingerprintKey;
use crate::config::Settings;
use crate::crypto::{CryptoError, Keyring};
use crate::discovery::AddressSource;
use crate::discovery::sources::{self, Shared};
use crate::notes::{NotesPolicy, settings::ExtraAllowed};

pub struct CycleConfig {
    pub(crate) keyring: Option<Keyring>,
    pub(crate) policy: NotesPolicy,
    /// Address sources per cluster, in the configured order.
    pub(crate) sources: BTreeMap<String, Arc<Vec<Box<dyn AddressSource>>>>,
    /// What the sources share (neighbour table, probe, filters).
    pub(crate) shared: Arc<Shared>,
    pub(crate) hostname: String,
    /// Key of the state's parameter fingerprints; rebuilt on reload, so a
    /// changed key secret takes effect (one read per owned connection).
    pub(crate) fingerprint_key: FingerprintKey,
}

impl CycleConfig {
    pub fn new(settings: &Settings, clients: &Clients) -> Result<CycleConfig, CryptoError> {
        let keyring = if settings.encryption.keys.is_empty() {
            None
        } else {
            Some(Keyring::new(&settings.encryption.keys)?)
        };
        let discovery = &settings.discovery;
        let shared = Shared::new(discovery, &settings.sync.allowed_networks);
        let sources = clients
            .proxmox
            .iter()
            .map(|(name, client)| {
                let list = sources::build(&discovery.sources, client, &shared);
                (name.clone(), Arc::new(list))
            })
            .collect();
        Ok(CycleConfig {
            shared,
            keyring,
            policy: notes_policy(settings),
            sources,
            hostname: crate::host::short_hostname(),
            fingerprint_key: super::cycle::fingerprint_key(settings),
        })
    }
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
        grantable_users: settings.access.notes_users.clone(),
        grantable_groups: settings.access.notes_groups.clone(),
        ..NotesPolicy::default()
    }
}
