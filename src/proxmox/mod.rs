//! Typed Proxmox VE API client (see `spec/proxmox-api.md`): token auth,
//! endpoint failover, every call the daemon needs, and typed errors for every
//! failure the spec lists.

pub mod agent;
pub mod client;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod permissions;
pub mod tasks;
pub mod types;

pub use client::{EndpointProbe, ProxmoxClient, ProxmoxClientConfig};
pub use error::ProxmoxError;
pub use permissions::{AuthReport, Feature, Permissions, PrivilegeCheck};
pub use tasks::Upid;
pub use types::{
    AgentSetting, ClusterResource, ClusterStatus, ClusterStatusEntry, GuestAddress, GuestConfig,
    GuestInterface, GuestKind, GuestStatus, MacAddr, NetDevice, NodeInfo, TaskStatus, Version,
};
