//! Typed client of the Apache Guacamole REST API (connection management),
//! following `spec/guacamole-api.md`: form login with one transparent
//! re-login on an expired token, connections and groups, the atomic 1.6
//! directory PATCH with a per-object fallback for ≤1.5, typed errors, and the
//! permission checks of `test-auth`.

mod client;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod patch;
mod permissions;
mod types;

pub use client::{GuacamoleClient, GuacamoleClientConfig, SessionInfo};
pub use error::GuacamoleError;
pub use patch::{
    BatchMode, BatchOutcome, DirectoryOp, MAX_PATCH_BYTES, MAX_PATCH_ENTRIES, OpResult,
};
pub use permissions::{
    ManagedGroup, PermissionChange, PermissionCheck, PermissionOp, PermissionTarget,
    evaluate as evaluate_permissions,
};
pub use types::{
    Attributes, AuthResult, Connection, ConnectionGroup, ConnectionSpec, GroupSpec, GroupType,
    ObjectKind, ObjectPermission, Parameters, PermissionSet, ROOT_GROUP, ServerVersion, TreeGroup,
};
