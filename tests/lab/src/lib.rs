//! pve-guac-lab: faithful Proxmox VE and Apache Guacamole emulators.
pub mod clock;
pub mod http;
