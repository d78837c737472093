//! pve-guac-sync: keeps Apache Guacamole connections in step with the guests of
//! Proxmox VE clusters. The binary (`main.rs`) is a thin CLI over these modules.
pub mod cli;
pub mod secret;
