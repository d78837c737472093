//! The configuration file exactly as written: serde structs that reject
//! unknown keys and keep the source location of every value, so validation
//! (in `validate.rs`) can name the line of whatever it refuses. Nothing here
//! interprets a value; defaults are applied during validation.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A value with the line it was written on.
pub(crate) type At<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub proxmox: At<RawProxmox>,
    pub guacamole: At<RawGuacamole>,
    pub sync: Option<At<RawSync>>,
    pub encryption: Option<At<RawEncryption>>,
    pub state_dir: Option<At<Text>>,
    pub logging: Option<At<RawLogging>>,
    pub health: Option<At<super::health::RawHealth>>,
    pub access: Option<At<super::access::RawAccess>>,
    pub discovery: Option<At<super::discovery::RawDiscovery>>,
    pub external: Option<At<Vec<At<super::external::RawExternal>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProxmox {
    pub clusters: At<Vec<At<RawCluster>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    pub name: At<Text>,
    pub endpoints: At<Vec<At<Text>>>,
    pub token_id: At<Text>,
    pub token_secret: At<RawSecret>,
    pub tls: Option<At<RawTls>>,
    pub timeouts: Option<At<RawTimeouts>>,
    pub rate_limit: Option<At<RawRateLimit>>,
    pub concurrency: Option<At<u64>>,
    pub retry: Option<At<RawRetry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGuacamole {
    pub url: At<Text>,
    pub base_path: Option<At<Text>>,
    pub username: At<Text>,
    pub password: At<RawSecret>,
    pub data_source: Option<At<Text>>,
    pub root_group: Option<At<Text>>,
    pub tls: Option<At<RawTls>>,
    pub timeouts: Option<At<RawTimeouts>>,
    pub rate_limit: Option<At<RawRateLimit>>,
    pub concurrency: Option<At<u64>>,
    pub retry: Option<At<RawRetry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub ca_file: Option<At<Text>>,
    pub fingerprint_sha256: Option<At<Text>>,
    pub insecure: Option<At<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    pub connect: Option<At<Text>>,
    pub request: Option<At<Text>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    pub per_second: Option<At<u64>>,
    pub burst: Option<At<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub max_attempts: Option<At<u64>>,
    pub base_delay: Option<At<Text>>,
    pub max_delay: Option<At<Text>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSync {
    pub interval: Option<At<Text>>,
    pub jitter: Option<At<f64>>,
    pub dry_run: Option<At<bool>>,
    pub max_changes_per_cycle: Option<At<u64>>,
    pub prune: Option<At<RawPrune>>,
    pub name_template: Option<At<Text>>,
    pub grouping: Option<At<Text>>,
    pub include: Option<At<RawFilter>>,
    pub exclude: Option<At<RawFilter>>,
    pub auto_encrypt: Option<At<bool>>,
    pub allowed_networks: Option<At<Vec<At<Text>>>>,
    pub allow_dns_names: Option<At<bool>>,
    pub extra_allowed_parameters: Option<At<ParameterLists>>,
    pub verify_interval: Option<At<Text>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrune {
    pub enabled: Option<At<bool>>,
    pub grace: Option<At<Text>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFilter {
    pub tags: Option<At<Vec<At<Text>>>>,
    pub vmids: Option<At<Vec<At<Text>>>>,
    pub nodes: Option<At<Vec<At<Text>>>>,
    pub pools: Option<At<Vec<At<Text>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEncryption {
    pub keys: Option<At<Vec<At<RawSecret>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLogging {
    pub format: Option<At<Text>>,
    pub level: Option<At<Text>>,
}

/// Any scalar, kept as the text it was written as (`8006`, `true`, `5m`), so
/// validation decides what it means and words the error itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a single value (text or number)")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Text, E> {
        Ok(Text(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Text, E> {
        Ok(Text(v))
    }
}

/// Where a secret comes from, as written: an inline value, or a one-key
/// mapping `{file: PATH}`, `{env: NAME}` or `{credential: NAME}`.
/// Its `Debug` never shows an inline value.
pub(crate) enum RawSecret {
    Inline(crate::secret::Secret),
    File(String),
    Env(String),
    Credential(String),
}

impl fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawSecret::Inline(_) => f.write_str("Inline(***)"),
            RawSecret::File(p) => write!(f, "File({p:?})"),
            RawSecret::Env(n) => write!(f, "Env({n:?})"),
            RawSecret::Credential(n) => write!(f, "Credential({n:?})"),
        }
    }
}

const SECRET_KINDS: &[&str] = &["file", "env", "credential"];

impl<'de> Deserialize<'de> for RawSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

impl SecretVisitor {
    fn inline<E>(v: String) -> Result<RawSecret, E> {
        Ok(RawSecret::Inline(crate::secret::Secret::new(v)))
    }
}

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = RawSecret;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a secret: {file: PATH}, {env: NAME}, {credential: NAME} or an inline value")
    }
    // Errors below never echo the value: it may be the secret itself.
    fn visit_bool<E>(self, v: bool) -> Result<RawSecret, E> {
        Self::inline(v.to_string())
    }
    fn visit_i64<E>(self, v: i64) -> Result<RawSecret, E> {
        Self::inline(v.to_string())
    }
    fn visit_u64<E>(self, v: u64) -> Result<RawSecret, E> {
        Self::inline(v.to_string())
    }
    fn visit_f64<E>(self, v: f64) -> Result<RawSecret, E> {
        Self::inline(v.to_string())
    }
    fn visit_str<E>(self, v: &str) -> Result<RawSecret, E> {
        Self::inline(v.to_owned())
    }
    fn visit_string<E>(self, v: String) -> Result<RawSecret, E> {
        Self::inline(v)
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawSecret, E> {
        Err(E::custom(
            "a secret is required: {file: PATH}, {env: NAME}, {credential: NAME} or an inline value",
        ))
    }
    fn visit_none<E: de::Error>(self) -> Result<RawSecret, E> {
        self.visit_unit()
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<RawSecret, A::Error> {
        Err(de::Error::custom(
            "expected one secret source, not a list: {file: PATH}, {env: NAME}, {credential: NAME} or an inline value",
        ))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawSecret, A::Error> {
        let Some(kind) = map.next_key::<String>()? else {
            return Err(de::Error::custom(
                "empty secret source: expected {file: PATH}, {env: NAME} or {credential: NAME}",
            ));
        };
        if !SECRET_KINDS.contains(&kind.as_str()) {
            return Err(de::Error::unknown_field(&kind, SECRET_KINDS));
        }
        let target: Text = map.next_value()?;
        if map.next_key::<String>()?.is_some() {
            return Err(de::Error::custom(
                "a secret source has exactly one key: file, env or credential",
            ));
        }
        Ok(match kind.as_str() {
            "file" => RawSecret::File(target.0),
            "env" => RawSecret::Env(target.0),
            _ => RawSecret::Credential(target.0),
        })
    }
}

/// Protocol → parameter names, each with its location.
pub(crate) type ParameterLists = Entries<At<Text>, At<Vec<At<Text>>>>;

/// A mapping read as its entries in file order, keeping each key's location
/// (a `BTreeMap` would lose it).
#[derive(Debug)]
pub(crate) struct Entries<K, V>(pub Vec<(K, V)>);

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for Entries<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<K, V>(std::marker::PhantomData<(K, V)>);
        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<K, V> {
            type Value = Entries<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(EntriesVisitor(std::marker::PhantomData))
    }
}
