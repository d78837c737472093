//! In-place encryption of plaintext passwords (spec §5), pure: text in, text
//! out. Only the bytes of each `pass:…` pair change.

use std::collections::BTreeSet;

use super::block::PasswordSource;
use super::parse;
use crate::crypto::Keyring;
use crate::secret::Secret;

/// One block whose plaintext password became a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigratedBlock {
    pub block_ordinal: usize,
    /// Kept to verify the write (never displayed).
    pub original: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub text: String,
    pub migrated: Vec<MigratedBlock>,
}

impl Migration {
    pub fn changed(&self) -> bool {
        !self.migrated.is_empty()
    }
}

/// Replaces the plaintext password pair of every valid credential block with
/// `encrypted_password:"<token>"`. Blocks with phase-1 errors, the blocks
/// in `skip` (ordinals whose phase-2 resolution failed) and unquoted
/// passwords followed by more text stay untouched.
pub fn migrate(text: &str, keyring: &Keyring, skip: &BTreeSet<usize>) -> Migration {
    let parsed = parse(text);
    let mut out = String::with_capacity(text.len() + 128);
    let mut copied_to = 0;
    let mut migrated = Vec::new();
    for block in &parsed.blocks {
        if skip.contains(&block.ordinal) {
            continue;
        }
        let Some(cred) = block.credential() else {
            continue;
        };
        let PasswordSource::Plain(password) = &cred.password else {
            continue;
        };
        let Some(pair) = block.plaintext_password_pair() else {
            continue;
        };
        // `pass:Correct Horse42` reads "Correct": encrypting that would leave
        // the rest of the password in clear beside the token.
        if pair.text_after && pair.quote == super::lexer::Quote::Bare {
            continue;
        }
        let span = pair.span();
        let token = keyring.encrypt(password);
        out.push_str(&text[copied_to..span.start]);
        out.push_str("encrypted_password:\"");
        out.push_str(token.expose());
        out.push('"');
        copied_to = span.end;
        migrated.push(MigratedBlock {
            block_ordinal: block.ordinal,
            original: password.clone(),
        });
    }
    out.push_str(&text[copied_to..]);
    Migration {
        text: out,
        migrated,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("block {block} is missing or no longer valid after the rewrite")]
    BlockMissing { block: usize },
    #[error("block {block} still holds a plaintext password")]
    StillPlaintext { block: usize },
    #[error("the token of block {block} does not decrypt to the original password")]
    Mismatch { block: usize },
}

impl VerifyError {
    pub fn label(&self) -> &'static str {
        match self {
            VerifyError::BlockMissing { .. } => "block_missing",
            VerifyError::StillPlaintext { .. } => "still_plaintext",
            VerifyError::Mismatch { .. } => "mismatch",
        }
    }
}

/// Re-parses rewritten notes (e.g. as read back from Proxmox) and checks that
/// each migrated block now holds a token that decrypts to its original password.
pub fn verify_migration(
    text: &str,
    keyring: &Keyring,
    migrated: &[MigratedBlock],
) -> Result<(), VerifyError> {
    let parsed = parse(text);
    for item in migrated {
        let block = item.block_ordinal;
        let cred = parsed
            .blocks
            .iter()
            .find(|b| b.ordinal == block)
            .and_then(|b| b.credential())
            .ok_or(VerifyError::BlockMissing { block })?;
        match &cred.password {
            PasswordSource::Plain(_) => return Err(VerifyError::StillPlaintext { block }),
            PasswordSource::Encrypted(token) => match keyring.decrypt(token) {
                Ok(plain) if plain == item.original => {}
                _ => return Err(VerifyError::Mismatch { block }),
            },
        }
    }
    Ok(())
}
