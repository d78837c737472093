//! `test-auth`: log in to every Proxmox endpoint and to Guacamole, check TLS,
//! and check every permission the enabled features need — before any change
//! is ever attempted. One line per check; exit 0 only if all pass.

use std::path::Path;

use crate::proxmox::Feature;
use crate::reconcile::clients::Clients;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args, config: &Path) -> anyhow::Result<i32> {
    let engine = super::engine::start(config)?;
    let settings = &engine.settings;
    let clients: &Clients = &engine.clients;
    let mut features = vec![Feature::Inventory, Feature::GuestAgent];
    if settings.sync.auto_encrypt && !settings.encryption.keys.is_empty() {
        features.push(Feature::NoteWriteBack);
    }
    if settings.discovery.power_up.enabled {
        features.push(Feature::PowerUp);
    }
    let mut ok = true;
    for (name, client) in &clients.proxmox {
        println!("Proxmox cluster {name}:");
        let report = client.test_auth(&features).await;
        for line in report.lines() {
            println!("  {line}");
        }
        ok &= report.passed();
    }
    println!("Guacamole {}:", settings.guacamole.url);
    match clients.guacamole.login().await {
        Ok(session) => {
            println!(
                "  ok   login as {} (data source {}, API {})",
                session.username, session.data_source, session.base_url
            );
            match clients
                .guacamole
                .check_permissions(&settings.guacamole.root_group)
                .await
            {
                Ok(checks) => {
                    for c in &checks {
                        println!("  {c}");
                        ok &= c.granted;
                    }
                }
                Err(e) => {
                    println!("  FAIL permissions could not be read: {e} ({})", e.label());
                    ok = false;
                }
            }
            ok &= access_checks(clients, settings).await;
        }
        Err(e) => {
            println!("  FAIL login: {e} ({})", e.label());
            ok = false;
        }
    }
    engine.close().await;
    println!(
        "{}",
        if ok {
            "all checks passed"
        } else {
            "some checks failed"
        }
    );
    Ok(if ok { 0 } else { 1 })
}

/// The users and groups `access:` names exist and the account may change
/// their permissions.
async fn access_checks(clients: &Clients, settings: &crate::config::Settings) -> bool {
    let root = &settings.guacamole.root_group;
    match crate::reconcile::grants::check_access(&clients.guacamole, &settings.access, root).await {
        Ok(checks) => {
            for c in &checks {
                println!("  {c}");
            }
            checks.iter().all(|c| c.granted)
        }
        Err(e) => {
            println!(
                "  FAIL access permissions could not be read: {e} ({})",
                e.label()
            );
            false
        }
    }
}
