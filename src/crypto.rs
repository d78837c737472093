//! Password encryption for notes: Fernet with pure-Rust primitives.
//!
//! A [`Keyring`] holds every configured key in order; the first one encrypts,
//! all of them are tried on decryption so keys can be rotated. Two key forms
//! exist in the wild: a standard Fernet key (32 bytes, URL-safe base64) and a
//! legacy passphrase, whose Fernet key is the URL-safe base64 of
//! SHA-256(passphrase). Two token forms exist as well: the standard token
//! (`gAAAAA…`) and a legacy one that is the URL-safe base64 of a token.
//!
//! Nothing in this module formats a key, token or plaintext into an error.

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use fernet::{Fernet, MultiFernet};
use sha2::{Digest, Sha256};

use crate::secret::Secret;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    #[error("no encryption key is configured")]
    NoKeys,
    #[error("key {index} is empty")]
    EmptyKey { index: usize },
    #[error("no configured key opens this encrypted password (wrong key or damaged token)")]
    WrongKey,
    #[error("the decrypted password is not valid UTF-8")]
    NotUtf8,
}

impl CryptoError {
    pub fn label(&self) -> &'static str {
        match self {
            CryptoError::NoKeys => "no_keys",
            CryptoError::EmptyKey { .. } => "empty_key",
            CryptoError::WrongKey => "wrong_key",
            CryptoError::NotUtf8 => "not_utf8",
        }
    }
}

/// How a configured key string was understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// 32 bytes of URL-safe base64: used as is.
    Fernet,
    /// Anything else: a passphrase, hashed with SHA-256 (legacy form).
    Passphrase,
}

/// Tells how a configured key string will be used, without keeping it.
pub fn key_kind(key: &str) -> KeyKind {
    if Fernet::new(key.trim()).is_some() {
        KeyKind::Fernet
    } else {
        KeyKind::Passphrase
    }
}

/// A key string that looks like a mistyped Fernet key (URL-safe base64 of
/// about the right length) yet is none, so it would silently become a
/// legacy passphrase: its length in characters, for a warning. `None` for
/// valid Fernet keys and for anything passphrase-like.
pub fn broken_fernet_key(key: &str) -> Option<usize> {
    let key = key.trim();
    let chars = key.chars().count();
    let base64ish = key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'+' | b'/'));
    let fernet_like = (40..=48).contains(&chars) && base64ish;
    (fernet_like && key_kind(key) == KeyKind::Passphrase).then_some(chars)
}

/// The Fernet key derived from a legacy passphrase.
pub fn passphrase_key(passphrase: &str) -> Secret {
    let digest = Sha256::digest(passphrase.as_bytes());
    Secret::new(URL_SAFE.encode(digest))
}

/// A fresh random standard Fernet key.
pub fn generate_key() -> Secret {
    Secret::new(Fernet::generate_key())
}

/// The configured keys, in order: the first encrypts, all decrypt.
pub struct Keyring {
    encrypter: Fernet,
    all: MultiFernet,
    kinds: Vec<KeyKind>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Builds a keyring from configured key strings (surrounding whitespace
    /// is ignored). A string that is a valid standard Fernet key is used as
    /// one; any other non-empty string is a legacy passphrase.
    pub fn new(keys: &[Secret]) -> Result<Keyring, CryptoError> {
        if keys.is_empty() {
            return Err(CryptoError::NoKeys);
        }
        let mut fernets = Vec::with_capacity(keys.len());
        let mut kinds = Vec::with_capacity(keys.len());
        for (index, key) in keys.iter().enumerate() {
            let raw = key.expose().trim();
            if raw.is_empty() {
                return Err(CryptoError::EmptyKey { index: index + 1 });
            }
            let (fernet, kind) = match Fernet::new(raw) {
                Some(f) => (f, KeyKind::Fernet),
                None => {
                    let derived = passphrase_key(raw);
                    let f = Fernet::new(derived.expose())
                        .expect("SHA-256 output is always a valid 32-byte key");
                    (f, KeyKind::Passphrase)
                }
            };
            fernets.push(fernet);
            kinds.push(kind);
        }
        let encrypter = fernets[0].clone();
        Ok(Keyring {
            encrypter,
            all: MultiFernet::new(fernets),
            kinds,
        })
    }

    /// How each configured key was understood, in order.
    pub fn kinds(&self) -> &[KeyKind] {
        &self.kinds
    }

    /// Encrypts with the first key; always a standard token.
    pub fn encrypt(&self, plaintext: &Secret) -> Secret {
        Secret::new(self.encrypter.encrypt(plaintext.expose().as_bytes()))
    }

    /// Decrypts a standard or legacy token with any configured key.
    pub fn decrypt(&self, token: &Secret) -> Result<Secret, CryptoError> {
        let token = token.expose().trim();
        let bytes = match self.all.decrypt(token) {
            Ok(bytes) => bytes,
            Err(_) => {
                let inner = unwrap_legacy_token(token).ok_or(CryptoError::WrongKey)?;
                self.all
                    .decrypt(&inner)
                    .map_err(|_| CryptoError::WrongKey)?
            }
        };
        String::from_utf8(bytes)
            .map(Secret::new)
            .map_err(|_| CryptoError::NotUtf8)
    }
}

/// A legacy token is the URL-safe base64 (padded or not) of a standard token.
fn unwrap_legacy_token(token: &str) -> Option<String> {
    let decoded = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).ok()?;
    let inner = String::from_utf8(decoded).ok()?;
    inner.starts_with("gAAAAA").then_some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_key_encrypts_and_all_decrypt() {
        let old = generate_key();
        let new = generate_key();
        let old_ring = Keyring::new(std::slice::from_ref(&old)).unwrap();
        let token = old_ring.encrypt(&Secret::new("pw"));
        let rotated = Keyring::new(&[new.clone(), old]).unwrap();
        assert_eq!(rotated.decrypt(&token).unwrap().expose(), "pw");
        let fresh = rotated.encrypt(&Secret::new("pw"));
        let only_new = Keyring::new(&[new]).unwrap();
        assert_eq!(only_new.decrypt(&fresh).unwrap().expose(), "pw");
        assert_eq!(only_new.decrypt(&token), Err(CryptoError::WrongKey));
    }

    #[test]
    fn passphrase_and_legacy_token() {
        let ring = Keyring::new(&[Secret::new("correct horse")]).unwrap();
        assert_eq!(ring.kinds(), &[KeyKind::Passphrase]);
        let token = ring.encrypt(&Secret::new("s3cret"));
        assert!(token.expose().starts_with("gAAAAA"));
        let legacy = URL_SAFE.encode(token.expose());
        assert!(legacy.starts_with("Z0FBQUFB"));
        assert_eq!(
            ring.decrypt(&Secret::new(legacy)).unwrap().expose(),
            "s3cret"
        );
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(Keyring::new(&[]).unwrap_err(), CryptoError::NoKeys);
        assert_eq!(
            Keyring::new(&[Secret::new("  ")]).unwrap_err(),
            CryptoError::EmptyKey { index: 1 }
        );
        let ring = Keyring::new(&[generate_key()]).unwrap();
        assert_eq!(
            ring.decrypt(&Secret::new("not a token")),
            Err(CryptoError::WrongKey)
        );
        assert!(!format!("{ring:?}").contains('='));
    }
}
