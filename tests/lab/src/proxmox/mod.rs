//! A stateful emulator of one Proxmox VE cluster, following
//! `spec/proxmox-api.md`. Every node of the cluster is a separate endpoint
//! ([`ProxmoxCluster::handler`]); they share one state, so any node answers
//! for the whole cluster and forwards node-scoped calls (595 when the target
//! node is offline).
//!
//! Time (tasks, agent boot delays, the 401 delay, `/cluster/resources` lag)
//! runs on the lab [`Clock`]; state advances lazily whenever a request or a
//! test looks at it.

mod acl;
mod agent;
mod auth;
mod cluster;
mod config;
mod context;
mod control;
mod errors;
mod example;
mod guest;
mod guests;
mod outcome;
mod params;
mod permissions;
mod power;
mod privs;
mod resources;
mod routes;
mod schema;
mod seed;
mod seed_check;
mod serve;
mod state;
mod tasks;
mod values;
mod version;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

pub use control::{GuestSnapshot, TaskSnapshot};
pub use example::{
    EXAMPLE_FERNET_KEY, EXAMPLE_PASSPHRASE, EXAMPLE_TOKEN_DBA, EXAMPLE_TOKEN_ID,
    EXAMPLE_TOKEN_SECRET, EXAMPLE_TOKEN_VIEWER,
};
pub use seed::{
    AclSeed, AgentSeed, AgentState, ClusterOptions, ClusterSeed, GuestKind, GuestSeed, IfaceSeed,
    LxcInterfacesShape, NetSeed, NodeIfaceSeed, NodeSeed, PoolSeed, RoleSeed, SeedStatus,
    ShutdownBehaviour, TaskDurations, TokenSeed, UserSeed,
};
pub use seed_check::ClusterSeedError;
pub use state::{PowerCounters, PowerEvent};

use crate::clock::Clock;
use crate::http::{Handler, Request, Response};

/// Shared state of one emulated cluster.
pub struct ProxmoxCluster {
    state: Mutex<state::State>,
    clock: Clock,
    name: String,
    node_names: Vec<String>,
    primary_token: (String, String),
}

impl std::fmt::Debug for ProxmoxCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxmoxCluster")
            .field("name", &self.name)
            .field("nodes", &self.node_names)
            .finish_non_exhaustive()
    }
}

impl ProxmoxCluster {
    pub fn new(seed: ClusterSeed, clock: Clock) -> Arc<Self> {
        let primary_token = seed
            .tokens
            .first()
            .map(|t| (t.full_id(), t.secret.clone()))
            .unwrap_or_default();
        Arc::new(ProxmoxCluster {
            state: Mutex::new(state::State::from_seed(&seed)),
            clock,
            name: seed.name.clone(),
            node_names: seed.nodes.iter().map(|n| n.name.clone()).collect(),
            primary_token,
        })
    }

    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// Node names in seed order (one HTTPS listener each).
    pub fn node_names(&self) -> Vec<String> {
        self.node_names.clone()
    }

    /// An offline node's listener should drop connections.
    pub fn node_online(&self, node: &str) -> bool {
        self.state
            .lock()
            .expect("state lock")
            .node(node)
            .is_some_and(|n| n.online)
    }

    /// The handler of the endpoint `contacted_node`.
    pub fn handler(self: &Arc<Self>, contacted_node: &str) -> Arc<dyn Handler> {
        Arc::new(NodeHandler {
            cluster: Arc::clone(self),
            node: contacted_node.to_string(),
        })
    }

    /// (`user@realm!name`, secret) of the first seeded token.
    pub fn primary_token(&self) -> (String, String) {
        self.primary_token.clone()
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }
}

struct NodeHandler {
    cluster: Arc<ProxmoxCluster>,
    node: String,
}

impl Handler for NodeHandler {
    fn handle(&self, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>> {
        Box::pin(serve::serve(&self.cluster, &self.node, req))
    }
}
