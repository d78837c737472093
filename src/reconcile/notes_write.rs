//! Writing migrated notes back to Proxmox: guarded by the config `digest`
//! the migration was computed from, so a human edit made meanwhile is never
//! overwritten, then read back and checked (every new token must decrypt to
//! the password it replaced).

use std::future::Future;
use std::pin::Pin;

use super::model::NotesRewrite;

#[derive(Debug, thiserror::Error)]
pub enum NotesWriteError {
    #[error("notes changed since they were read (digest mismatch); retried next cycle")]
    DigestMismatch,
    #[error("guest is locked; retried next cycle")]
    Locked,
    #[error("cluster {0} is not configured")]
    UnknownCluster(String),
    #[error("read-back check failed: {0}")]
    Verify(String),
    #[error("{0}")]
    Proxmox(String),
}

impl NotesWriteError {
    pub fn label(&self) -> &'static str {
        match self {
            NotesWriteError::DigestMismatch => "digest_mismatch",
            NotesWriteError::Locked => "locked",
            NotesWriteError::UnknownCluster(_) => "unknown_cluster",
            NotesWriteError::Verify(_) => "verify_failed",
            NotesWriteError::Proxmox(_) => "proxmox",
        }
    }
}

pub type WriteFuture<'a> = Pin<Box<dyn Future<Output = Result<(), NotesWriteError>> + Send + 'a>>;

/// Where rewritten notes go; the daemon's implementation talks to Proxmox.
pub trait NotesWriter: Send + Sync {
    fn write<'a>(&'a self, rewrite: &'a NotesRewrite) -> WriteFuture<'a>;
}
