//! What the HTTP client alone costs: the same listing and configs a steady
//! cycle reads, sent by the daemon's own `ProxmoxClient` (same TLS, limits
//! and decoding) from this process on one thread, without anything the
//! cycle does with the answers. The difference to a steady cycle's CPU time
//! is the daemon's own work; this part bounds how low a cycle can go.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use pve_guac_sync::config::Settings;
use pve_guac_sync::reconcile::clients::Clients;
use tokio_util::sync::CancellationToken;

pub(crate) struct ClientFloor {
    pub requests: u64,
    pub cpu: Duration,
}

/// One warm-up pass (connections, TLS sessions), then the measured one.
pub(crate) fn measure(config: &Path) -> anyhow::Result<ClientFloor> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let settings = Settings::load(config).context("bench config")?;
        let clients = Clients::new(&settings, &CancellationToken::new())?;
        let client = clients
            .proxmox
            .values()
            .next()
            .context("one cluster")?
            .clone();
        read_all(&client).await?;
        let before = process_cpu();
        let requests = read_all(&client).await?;
        Ok(ClientFloor {
            requests,
            cpu: process_cpu().saturating_sub(before),
        })
    })
}

/// The listing and every guest's config, as many at once as the client allows.
async fn read_all(client: &pve_guac_sync::proxmox::ProxmoxClient) -> anyhow::Result<u64> {
    let resources = client.cluster_resources().await?;
    let in_flight = client.http().concurrency() * 4;
    let configs: Vec<_> = futures_util::stream::iter(&resources)
        .map(|r| client.config(&r.node, r.kind, r.vmid))
        .buffer_unordered(in_flight)
        .collect()
        .await;
    for c in configs {
        c?;
    }
    Ok(1 + resources.len() as u64)
}

/// User and system CPU time of this process.
fn process_cpu() -> Duration {
    // SAFETY: getrusage writes into the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
