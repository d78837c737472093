//! `list`: every managed connection with its guest and a status: `ok`,
//! `drift` (differs from the notes), `missing` (desired, not in Guacamole),
//! `orphan` (in the managed group, no longer desired), `error` (its guest has
//! a block error or an undecryptable password). Reads every parameter set.

use std::path::Path;

use serde::Serialize;

use crate::reconcile::cycle::{CycleReport, Mode};
use crate::reconcile::model::{HoldReason, display_path};
use crate::reconcile::plan::Action;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Row {
    pub status: &'static str,
    pub id: Option<String>,
    pub name: String,
    pub group: String,
    pub identity: Option<String>,
    pub guest: Option<String>,
    pub detail: String,
}

pub async fn run(args: Args, config: &Path) -> anyhow::Result<i32> {
    let engine = super::engine::start(config)?;
    let result = engine.cycle(Mode::PlanOnly, true).await;
    engine.close().await;
    let report = result.map_err(|e| anyhow::anyhow!("observation failed ({}): {e}", e.label()))?;
    let rows = rows(&report);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for r in &rows {
            println!(
                "{:<8} {:>6}  {:<40} {:<20} {}{}",
                r.status,
                r.id.as_deref().unwrap_or("-"),
                r.name,
                r.group,
                r.guest.as_deref().unwrap_or("-"),
                if r.detail.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", r.detail)
                }
            );
        }
    }
    Ok(if rows.iter().all(|r| r.status == "ok") {
        0
    } else {
        1
    })
}

pub fn rows(report: &CycleReport) -> Vec<Row> {
    let mut rows = Vec::new();
    for a in &report.plan.actions {
        let status = match a.action.kind() {
            "create" => "missing",
            "update" => "drift",
            "delete" => "orphan",
            _ => continue,
        };
        let detail = match &a.action {
            Action::Update { changes, .. } => {
                let what: Vec<String> = changes.iter().map(|c| c.describe()).collect();
                what.join(", ")
            }
            _ => a.reason.clone(),
        };
        let guest_name = match &a.action {
            Action::Create { connection, .. } | Action::Update { connection, .. } => {
                Some(connection.guest_name.as_str())
            }
            _ => None,
        };
        rows.push(Row {
            status,
            id: a.action.guacamole_id().map(str::to_owned),
            name: a.action.connection_name().unwrap_or_default().to_owned(),
            group: a
                .action
                .group()
                .map(|g| display_path(g))
                .unwrap_or_default(),
            identity: a.action.identity().map(|i| i.to_string()),
            guest: a.action.guest().map(|g| match guest_name {
                Some(name) => format!("{g} ({name})"),
                None => g.to_string(),
            }),
            detail,
        });
    }
    for (identity, id) in &report.plan.unchanged {
        let c = &report.desired.connections[identity];
        rows.push(Row {
            status: "ok",
            id: Some(id.clone()),
            name: c.name.clone(),
            group: display_path(&c.group),
            identity: Some(identity.to_string()),
            guest: Some(format!("{} ({})", identity.guest, c.guest_name)),
            detail: String::new(),
        });
    }
    for k in &report.plan.kept {
        let Some(c) = report.tree.connections.get(&k.id) else {
            continue;
        };
        let hold = k
            .identity
            .as_ref()
            .and_then(|i| report.desired.held.get(&i.guest));
        // Kept unchanged because its guest could not be judged: still ok.
        // A block error or name conflict is an error; anything else kept
        // (vanished guest in its grace period, pruning off) is an orphan.
        let status = match hold {
            Some(HoldReason::BlockError | HoldReason::NameConflict) => "error",
            Some(_) => "ok",
            None => "orphan",
        };
        rows.push(Row {
            status,
            id: Some(k.id.clone()),
            name: c.name.clone(),
            group: display_path(&c.group),
            identity: k.identity.as_ref().map(|i| i.to_string()),
            guest: k.identity.as_ref().map(|i| i.guest.to_string()),
            detail: k.reason.clone(),
        });
    }
    rows.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
    rows
}
