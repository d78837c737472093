//! The cheap, per-cycle part of the engine: everything derived from the
//! settings that is not a client (keys, the notes policy, address sources,
//! the host name). Rebuilt on every reload; the clients are not.

use std::collections::BTreeMap;

use super::clients::Clients;
use crate::config::Settings;
use crate::crypto::{CryptoError, Keyring};
use crate::discovery::AddressSource;
use crate::discovery::sources::GuestInterfaces;
use crate::notes::{NotesPolicy, settings::ExtraAllowed};

pub struct CycleConfig {
    pub(crate) keyring: Option<Keyring>,
    pub(crate) policy: NotesPolicy,
    /// Address sources per cluster, in order of preference.
    pub(crate) sources: BTreeMap<String, Vec<Box<dyn AddressSource>>>,
    pub(crate) hostname: String,
}

impl CycleConfig {
    pub fn new(settings: &Settings, clients: &Clients) -> Result<CycleConfig, CryptoError> {
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
        Ok(CycleConfig {
            keyring,
            policy: notes_policy(settings),
            sources,
            hostname: crate::host::short_hostname(),
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
        ..NotesPolicy::default()
    }
}
