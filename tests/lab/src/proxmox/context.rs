//! Per-request context handed to endpoint code.

use std::time::Duration;

use super::acl::Identity;

#[derive(Debug, Clone)]
pub struct Ctx {
    pub who: Identity,
    /// The node that executes the call (`{node}` resolved; the contacted
    /// node for cluster-wide calls).
    pub node: String,
    /// Virtual time since the lab started.
    pub now: Duration,
    /// Virtual epoch seconds.
    pub epoch: u64,
    /// The config-lock wait of this request has run out.
    pub lock_timed_out: bool,
}

impl Ctx {
    pub fn is_root(&self) -> bool {
        self.who.authid() == "root@pam"
    }
}
