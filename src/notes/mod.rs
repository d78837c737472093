//! The notes grammar (`spec/notes-format.md`), as a pure module: no I/O, no
//! async, no logging. Two phases, so the reconcile engine can decide what to
//! discover before it resolves anything:
//!
//! 1. [`parse`]: text → [`ParsedNotes`] (blocks, pairs with byte spans, the
//!    `default_conf_name` directive, per-block errors, warnings, identities).
//! 2. [`ParsedNotes::resolve`]: + [`GuestContext`] + [`NotesPolicy`] + keys →
//!    [`ConnectionSpec`]s per block, or that block's [`BlockError`].
//!
//! [`migrate`] rewrites plaintext passwords in place; [`render`] writes a
//! credential back as text (used by property tests).

mod block;
mod error;
mod keys;
mod lexer;
pub mod migrate;
pub mod render;
mod resolve;
pub mod settings;
pub mod template;

use std::collections::HashMap;

pub use block::{
    AccessGrant, Block, BlockKind, ConnectionIdentity, Credential, HostOverride, PasswordSource,
};
pub use error::{BlockError, BlockErrorKind, Warning, WarningKind};
pub use keys::{Key, Protocol, truthy};
pub use lexer::{Quote, RawPair};
pub use migrate::{MigratedBlock, Migration, VerifyError, migrate, verify_migration};
pub use resolve::{ConnectionSpec, GuestContext, NotesPolicy, Passwords, ResolvedBlock};

use block::Interpreted;

/// The notes of one guest after phase 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedNotes {
    /// Every block with at least one recognised key, in order. Prose blocks
    /// are not listed.
    pub blocks: Vec<Block>,
    /// The notes-wide name template (the first `default_conf_name`).
    pub default_conf_name: Option<String>,
    pub warnings: Vec<Warning>,
}

/// The outcome of phase 2 for a whole guest.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    pub connections: Vec<ConnectionSpec>,
    pub errors: Vec<BlockError>,
    /// Warnings of the good blocks found while resolving (unknown settings
    /// left out); phase-1 warnings are in [`ParsedNotes::warnings`].
    pub warnings: Vec<Warning>,
}

/// Phase 1. Never fails and never panics: malformed blocks carry errors.
pub fn parse(text: &str) -> ParsedNotes {
    let mut blocks = Vec::new();
    let mut warnings = Vec::new();
    let mut default_conf_name: Option<String> = None;
    let mut seen: HashMap<(String, Protocol), u32> = HashMap::new();
    for raw in lexer::lex(text) {
        let ordinal = blocks.len() + 1;
        let Interpreted::Block {
            mut block,
            warnings: w,
            written,
        } = block::interpret(raw, ordinal)
        else {
            continue;
        };
        warnings.extend(w);
        if let Some(template) = &block.default_conf_name {
            match &default_conf_name {
                None => default_conf_name = Some(template.clone()),
                Some(first) if first != template => warnings.push(Warning {
                    block: ordinal,
                    line: block.line,
                    key: Some(Key::DefaultConfName.canonical()),
                    kind: WarningKind::DefaultTemplateRepeated,
                }),
                Some(_) => {}
            }
        }
        // Identities count every block that names a user, valid or not, so
        // one block breaking does not renumber the blocks after it.
        if let Some((user, protocols)) = written {
            for protocol in protocols {
                let count = seen.entry((user.clone(), protocol)).or_insert(0);
                block.identities.push(ConnectionIdentity {
                    user: user.clone(),
                    protocol,
                    ordinal: *count,
                });
                *count += 1;
            }
        }
        blocks.push(*block);
    }
    ParsedNotes {
        blocks,
        default_conf_name,
        warnings,
    }
}

impl ParsedNotes {
    /// Phase-1 errors of every block.
    pub fn errors(&self) -> impl Iterator<Item = &BlockError> {
        self.blocks.iter().flat_map(|b| b.errors.iter())
    }

    /// Whether any credential block lacks a `host`, so the guest's address
    /// must be discovered.
    pub fn needs_discovery(&self) -> bool {
        self.blocks.iter().any(Block::needs_discovery)
    }

    /// Phase 2 for one block.
    pub fn resolve_block(
        &self,
        block: &Block,
        ctx: &GuestContext,
        policy: &NotesPolicy,
        passwords: Passwords<'_>,
    ) -> Result<ResolvedBlock, BlockError> {
        resolve::resolve_block(
            block,
            self.default_conf_name.as_deref(),
            ctx,
            policy,
            passwords,
        )
    }

    /// Phase 2 for every block: the connections of the good blocks and one
    /// error per bad block (all phase-1 errors of a block are listed).
    pub fn resolve(
        &self,
        ctx: &GuestContext,
        policy: &NotesPolicy,
        passwords: Passwords<'_>,
    ) -> Resolution {
        let mut out = Resolution::default();
        for block in &self.blocks {
            if !block.errors.is_empty() {
                out.errors.extend(block.errors.iter().cloned());
                continue;
            }
            match self.resolve_block(block, ctx, policy, passwords) {
                Ok(r) => {
                    out.connections.extend(r.connections);
                    out.warnings.extend(r.warnings);
                }
                Err(e) => out.errors.push(e),
            }
        }
        out
    }
}
