//! The plain data the reconcile stages pass along: identities, desired
//! connections, the observed managed tree. No I/O here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

/// A guest of one configured cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct GuestKey {
    pub cluster: String,
    pub vmid: u32,
}

/// The pseudo-cluster of the hosts in the configuration's `external:`
/// section; no Proxmox cluster may take this name.
pub const EXTERNAL_CLUSTER: &str = "external";

impl GuestKey {
    /// The key of an external host: its VMID is derived from the name and
    /// lies above every VMID Proxmox hands out (at most 999 999 999).
    pub fn external(name: &str) -> GuestKey {
        let digest = <Sha256 as sha2::Digest>::digest(name.as_bytes());
        let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        GuestKey {
            cluster: EXTERNAL_CLUSTER.to_owned(),
            vmid: n | 0x8000_0000,
        }
    }

    pub fn is_external(&self) -> bool {
        self.cluster == EXTERNAL_CLUSTER
    }
}

impl fmt::Display for GuestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.cluster, self.vmid)
    }
}

/// The stable identity of a managed connection: a guest rename, a new name
/// template, port, password or address keep it, so they become updates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Identity {
    pub guest: GuestKey,
    pub user: String,
    pub protocol: String,
    /// Counts repeats of the same (user, protocol) within one guest; 0 for the
    /// first, so most identities never show it.
    pub ordinal: u32,
}

impl Identity {
    /// The form used as a key in the state file: like `Display`, with `%`,
    /// `/` and `#` in the names escaped so it always parses back.
    pub fn key(&self) -> String {
        if self.guest.is_external() {
            // `user` holds the external host's name.
            return format!(
                "{EXTERNAL_CLUSTER}/{}/{}",
                escape(&self.user),
                escape(&self.protocol)
            );
        }
        let mut key = format!(
            "{}/{}/{}/{}",
            escape(&self.guest.cluster),
            self.guest.vmid,
            escape(&self.user),
            escape(&self.protocol)
        );
        if self.ordinal > 0 {
            key.push_str(&format!("#{}", self.ordinal));
        }
        key
    }

    pub fn parse_key(key: &str) -> Option<Identity> {
        let (rest, ordinal) = match key.rsplit_once('#') {
            Some((rest, n)) => (rest, n.parse().ok()?),
            None => (key, 0),
        };
        let parts: Vec<&str> = rest.split('/').collect();
        if let [EXTERNAL_CLUSTER, name, protocol] = parts.as_slice() {
            return Some(Identity::external(&unescape(name), &unescape(protocol)));
        }
        let mut parts = parts.into_iter();
        let cluster = unescape(parts.next()?);
        let vmid = parts.next()?.parse().ok()?;
        let user = unescape(parts.next()?);
        let protocol = unescape(parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        Some(Identity {
            guest: GuestKey { cluster, vmid },
            user,
            protocol,
            ordinal,
        })
    }
}

impl Identity {
    /// `external/<name>/<protocol>`: a host from the `external:` section.
    pub fn external(name: &str, protocol: &str) -> Identity {
        Identity {
            guest: GuestKey::external(name),
            user: name.to_owned(),
            protocol: protocol.to_owned(),
            ordinal: 0,
        }
    }

    /// The guest for people: `cluster/vmid`, or `external/<name>`.
    pub fn guest_label(&self) -> String {
        if self.guest.is_external() {
            format!("{EXTERNAL_CLUSTER}/{}", self.user)
        } else {
            self.guest.to_string()
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('%', "%25")
        .replace('/', "%2F")
        .replace('#', "%23")
}

fn unescape(s: &str) -> String {
    s.replace("%2F", "/")
        .replace("%23", "#")
        .replace("%25", "%")
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.guest.is_external() {
            return write!(f, "{EXTERNAL_CLUSTER}/{}/{}", self.user, self.protocol);
        }
        write!(f, "{}/{}/{}", self.guest, self.user, self.protocol)?;
        if self.ordinal > 0 {
            write!(f, "#{}", self.ordinal)?;
        }
        Ok(())
    }
}

/// A group path below the managed root group (empty = the root itself).
pub type GroupPath = Vec<String>;

pub fn display_path(path: &[String]) -> String {
    if path.is_empty() {
        "/".to_owned()
    } else {
        path.join("/")
    }
}

/// One Guacamole connection parameter value; secret ones never print.
#[derive(Clone, PartialEq, Eq)]
pub struct ParamValue {
    value: String,
    secret: bool,
}

impl ParamValue {
    pub fn plain(value: impl Into<String>) -> Self {
        ParamValue {
            value: value.into(),
            secret: false,
        }
    }

    pub fn secret(value: impl Into<String>) -> Self {
        ParamValue {
            value: value.into(),
            secret: true,
        }
    }

    /// Guacamole parameters that hold credentials or keys.
    pub fn is_secret_name(name: &str) -> bool {
        crate::notes::settings::is_secret_name(name)
    }

    /// Wraps a value read back from Guacamole, classifying it by name.
    pub fn from_server(name: &str, value: String) -> Self {
        ParamValue {
            value,
            secret: Self::is_secret_name(name),
        }
    }

    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn is_secret(&self) -> bool {
        self.secret
    }
}

impl fmt::Debug for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("***")
        } else {
            write!(f, "{:?}", self.value)
        }
    }
}

impl Serialize for ParamValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.secret { "***" } else { &self.value })
    }
}

/// Connection parameters as Guacamole stores them: empty values are never
/// stored, so they are dropped here too before any comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Params(BTreeMap<String, ParamValue>);

impl Params {
    pub fn new() -> Self {
        Params::default()
    }

    pub fn insert(&mut self, name: impl Into<String>, value: ParamValue) {
        if !value.value.is_empty() {
            self.0.insert(name.into(), value);
        }
    }

    pub fn from_server(map: BTreeMap<String, String>) -> Self {
        let mut p = Params::new();
        for (k, v) in map {
            let value = ParamValue::from_server(&k, v);
            p.insert(k, value);
        }
        p
    }

    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.0.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &ParamValue)> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The map to send to Guacamole.
    pub fn to_wire(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect()
    }

    /// Keyed digest (HMAC-SHA-256) of the parameters, so the state file can
    /// tell whether what the daemon last wrote still matches the wish without
    /// storing passwords, and without letting a reader of the state file
    /// test password guesses offline: the key is not in the file.
    pub fn fingerprint(&self, key: &FingerprintKey) -> String {
        let mut h = key.mac();
        for (k, v) in &self.0 {
            h.update(&(k.len() as u64).to_le_bytes());
            h.update(k.as_bytes());
            h.update(&(v.value.len() as u64).to_le_bytes());
            h.update(v.value.as_bytes());
        }
        format!("{FINGERPRINT_PREFIX}{}", hex(&h.finalize().into_bytes()))
    }

    /// Names whose values differ (added, removed or changed), for reasons
    /// and audit events; never the values.
    pub fn differing_names(&self, other: &Params) -> Vec<String> {
        let names: BTreeSet<&String> = self.0.keys().chain(other.0.keys()).collect();
        names
            .into_iter()
            .filter(|n| self.0.get(*n) != other.0.get(*n))
            .cloned()
            .collect()
    }
}

/// Marks keyed fingerprints; older files hold bare salted SHA-256 hex,
/// which never equals a keyed one, so such entries are simply re-verified.
pub const FINGERPRINT_PREFIX: &str = "hmac-sha256:";

/// The key of the state's parameter fingerprints. Derived from a secret the
/// daemon holds but the state file does not (the first encryption key, else
/// the Guacamole password); never serialised, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct FingerprintKey([u8; 32]);

impl FingerprintKey {
    pub fn derive(secret: &str) -> Self {
        let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes keys of any length");
        m.update(b"pve-guac-sync state fingerprint v2");
        FingerprintKey(m.finalize().into_bytes().into())
    }

    /// A key nobody knows (fingerprints made with it match only within the
    /// process): the default where no secret was supplied.
    pub fn random() -> Self {
        FingerprintKey(rand::random())
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length")
    }
}

impl Default for FingerprintKey {
    fn default() -> Self {
        FingerprintKey::random()
    }
}

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintKey(***)")
    }
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// A connection that should exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredConnection {
    pub identity: Identity,
    pub name: String,
    pub group: GroupPath,
    pub protocol: String,
    pub params: Params,
    /// Guest name and node, for messages and `list`.
    pub guest_name: String,
    pub node: String,
}

/// Why a guest's existing connections must be left exactly as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum HoldReason {
    /// A block of its notes has a parse or decryption error.
    BlockError,
    /// Its address is not known (stopped, agent down, no evidence).
    AddressUnknown,
    /// Its config could not be read this cycle.
    ConfigUnavailable,
    /// Its node is offline or its status is unknown.
    NodeUnavailable,
    /// A name collision with a guest of lower VMID.
    NameConflict,
}

impl HoldReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            HoldReason::BlockError => "block error in notes",
            HoldReason::AddressUnknown => "address unknown",
            HoldReason::ConfigUnavailable => "config unavailable",
            HoldReason::NodeUnavailable => "node unavailable",
            HoldReason::NameConflict => "name conflict",
        }
    }
}

/// What the notes, addresses and configuration ask for.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Desired {
    pub connections: BTreeMap<Identity, DesiredConnection>,
    /// Guests whose connections that are not desired must be kept anyway.
    pub held: BTreeMap<GuestKey, HoldReason>,
    /// Guests listed by `/cluster/resources` this cycle (present, any state).
    pub present: BTreeSet<GuestKey>,
    /// Present guests the configuration does not select (templates,
    /// include/exclude): their connections go.
    pub excluded: BTreeSet<GuestKey>,
    /// Clusters whose observation was complete this cycle.
    pub complete_clusters: BTreeSet<String>,
    /// Every configured cluster (complete or not).
    pub clusters: BTreeSet<String>,
    /// Per-guest problems to report (never containing secrets).
    pub problems: Vec<Problem>,
    /// Per-block warnings (unknown settings left out): logged and reported,
    /// the block's connections are still made.
    pub warnings: Vec<Problem>,
    /// The notes blocks that could not be used, one per error (the status
    /// page lists them by guest, block and key).
    pub block_errors: Vec<BlockErrorFact>,
    /// Notes that should be rewritten with encrypted passwords.
    pub rewrites: Vec<NotesRewrite>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub guest: Option<GuestKey>,
    pub message: String,
}

/// One bad notes block: where it is and what is wrong, never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockErrorFact {
    pub guest: GuestKey,
    /// The guest's name as Proxmox lists it (untrusted text).
    pub guest_name: String,
    /// 1-based ordinal of the block among the notes' credential blocks.
    pub block: usize,
    pub line: usize,
    /// Canonical key to blame, when one is.
    pub key: Option<&'static str>,
    /// Stable label (`missing_password`, `wrong_key`, …).
    pub label: &'static str,
    pub message: String,
}

/// A plaintext-password migration for one guest's notes.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct NotesRewrite {
    pub guest: GuestKey,
    pub node: String,
    pub kind: GuestKind,
    /// The config digest the new notes were derived from.
    pub digest: String,
    #[serde(skip)]
    pub new_notes: crate::secret::Secret,
    pub migrated_blocks: usize,
    /// The passwords each migrated block held, to verify the read-back.
    #[serde(skip)]
    pub migrated: Vec<crate::notes::MigratedBlock>,
}

impl NotesRewrite {
    /// Drops the new notes and the passwords they carry, keeping what
    /// describes the rewrite.
    pub fn forget_contents(&mut self) {
        self.new_notes = crate::secret::Secret::default();
        self.migrated = Vec::new();
    }
}

impl fmt::Debug for NotesRewrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotesRewrite")
            .field("guest", &self.guest)
            .field("node", &self.node)
            .field("kind", &self.kind)
            .field("digest", &self.digest)
            .field("migrated_blocks", &self.migrated_blocks)
            .finish_non_exhaustive()
    }
}

pub use crate::proxmox::GuestKind;

/// A group under (or equal to) the managed root, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedGroup {
    pub id: String,
    pub path: GroupPath,
}

/// A connection under the managed root, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedConnection {
    pub id: String,
    pub name: String,
    pub group: GroupPath,
    pub protocol: String,
    /// Filled only for the connections whose parameters had to be read.
    pub params: Option<Params>,
    /// Lies outside the managed root (moved there by hand).
    pub outside: bool,
    /// Guacamole's connection attributes (guacd host, limits, weight …).
    /// The daemon does not own them, so updates send them back unchanged.
    pub attributes: BTreeMap<String, Option<String>>,
}

/// Everything under the managed root group.
#[derive(Debug, Clone, Default)]
pub struct ManagedTree {
    /// `None` when the root group does not exist yet.
    pub root_id: Option<String>,
    /// Sub-groups by path (the root itself is not listed).
    pub groups: BTreeMap<GroupPath, ManagedGroup>,
    pub connections: BTreeMap<String, ManagedConnection>,
    /// Connections outside the managed root. Only ones the state file says
    /// the daemon created are ever touched (moved back, never deleted).
    pub outside: BTreeMap<String, ManagedConnection>,
}

impl ManagedTree {
    /// A connection inside or outside the managed root.
    pub fn find(&self, id: &str) -> Option<&ManagedConnection> {
        self.connections.get(id).or_else(|| self.outside.get(id))
    }

    pub fn find_mut(&mut self, id: &str) -> Option<&mut ManagedConnection> {
        match self.connections.get_mut(id) {
            Some(c) => Some(c),
            None => self.outside.get_mut(id),
        }
    }
}

/// The group path shown for a connection outside the managed root.
pub const OUTSIDE: &str = "(outside the managed group)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_keys_parse_back_whatever_the_names_hold() {
        for user in ["admin", "dom/user", "a#b", "50%", "x%2Fy"] {
            for ordinal in [0, 2] {
                let i = Identity {
                    guest: GuestKey {
                        cluster: "lab/east".into(),
                        vmid: 100,
                    },
                    user: user.into(),
                    protocol: "rdp".into(),
                    ordinal,
                };
                assert_eq!(Identity::parse_key(&i.key()), Some(i));
            }
        }
    }

    #[test]
    fn hex_is_two_lowercase_digits_per_byte() {
        // State files hold fingerprints in this form: it must never change.
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff, 0x10]), "000fa5ff10");
    }

    #[test]
    fn fingerprints_are_keyed() {
        let mut p = Params::new();
        p.insert("password", ParamValue::secret("hunter2"));
        let a = FingerprintKey::derive("key a");
        let fp = p.fingerprint(&a);
        assert!(fp.starts_with(FINGERPRINT_PREFIX));
        assert_eq!(fp, p.fingerprint(&FingerprintKey::derive("key a")));
        assert_ne!(fp, p.fingerprint(&FingerprintKey::derive("key b")));
        assert!(!format!("{a:?}").contains(&hex(&a.0)));
    }

    #[test]
    fn external_identities_read_external_name_protocol() {
        let i = Identity::external("core/switch", "ssh");
        assert_eq!(i.to_string(), "external/core/switch/ssh");
        assert_eq!(i.key(), "external/core%2Fswitch/ssh");
        assert_eq!(Identity::parse_key(&i.key()), Some(i.clone()));
        assert_eq!(i.guest_label(), "external/core/switch");
        assert!(i.guest.vmid > 999_999_999);
        assert_ne!(GuestKey::external("a"), GuestKey::external("b"));
    }
}
