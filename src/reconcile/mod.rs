//! One reconcile cycle: observe → desire → plan → apply → record
//! (`design.md` §1). `desire` and `plan` are pure; the others do I/O.
pub mod apply;
pub mod clients;
pub mod cycle;
pub mod cycle_config;
pub mod desire;
pub mod discovery_step;
pub mod external;
pub mod grants;
pub mod model;
pub mod notes_write;
pub mod observe;
pub mod plan;
pub mod record;
