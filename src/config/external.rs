//! The `external:` section: hosts that are not Proxmox guests (switches,
//! appliances, bare-metal servers), reconciled with the guests under the
//! identity `external/<name>/<protocol>`. What a note may not do, this
//! section may not do either: the target must lie in
//! `sync.allowed_networks`, and settings pass the notes' allow-list.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::raw::{At, Entries, RawSecret, Text};
use crate::notes::Protocol;
use crate::secret::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExternal {
    pub name: At<Text>,
    pub host: At<Text>,
    pub protocols: At<Vec<At<Text>>>,
    pub port: Option<At<u64>>,
    pub username: At<Text>,
    pub password: At<RawSecret>,
    pub group: Option<At<Text>>,
    pub settings: Option<At<RawExternalSettings>>,
}

/// Protocol → Guacamole parameter → value.
pub(crate) type RawExternalSettings = Entries<At<Text>, At<Entries<At<Text>, At<Text>>>>;

/// One validated external host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalHost {
    /// Unique among the external hosts; part of the identity.
    pub name: String,
    /// An IPv4 address (or a DNS name where the configuration allows names).
    pub host: String,
    /// In the order written, duplicates collapsed.
    pub protocols: Vec<Protocol>,
    /// For every protocol; `None`: each protocol's default port.
    pub port: Option<u16>,
    pub username: String,
    pub password: Secret,
    /// Group path below the managed root (empty: the root itself).
    pub group: Vec<String>,
    /// Validated parameters per protocol (booleans as `true`/`false`).
    pub settings: BTreeMap<Protocol, BTreeMap<String, String>>,
}
