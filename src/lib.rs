//! pve-guac-sync: keeps Apache Guacamole connections in step with the guests of
//! Proxmox VE clusters. The binary (`main.rs`) is a thin CLI over these modules.
pub mod cli;
pub mod config;
pub mod crypto;
pub mod daemon;
pub mod discovery;
pub mod guacamole;
pub mod health;
pub mod host;
pub mod http;
pub mod memory;
pub mod notes;
pub mod proxmox;
pub mod reconcile;
pub mod secret;
pub mod state;
pub mod systemd;
pub mod telemetry;
