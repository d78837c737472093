//! `list`: every managed connection with its guest and a status: `ok`,
//! `drift` (differs from the notes), `missing` (desired, not in Guacamole),
//! `orphan` (in the managed group, no longer desired), `error` (its guest has
//! a block error or an undecryptable password). Reads every parameter set.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::reconcile::cycle::{CycleReport, Mode};
use crate::reconcile::model::{HoldReason, Identity, display_path};
use crate::reconcile::plan::Action;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the list as JSON.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Write the list as CSV to FILE (`-`: stdout).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub filter: super::list_filter::FilterArgs,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Row {
    pub status: &'static str,
    pub id: Option<String>,
    pub name: String,
    pub group: String,
    pub protocol: String,
    pub identity: Option<String>,
    /// `cluster/vmid (name)`, or `external/<name>` for an external host.
    pub guest: Option<String>,
    pub cluster: Option<String>,
    /// Absent for external hosts.
    pub vmid: Option<u32>,
    pub guest_name: Option<String>,
    pub detail: String,
    /// Users and groups with READ from the daemon's sources (`user:NAME`,
    /// `group:NAME`), marked `(pending)` or `(unknown)` where not in place.
    pub access: Vec<String>,
}

/// The guest columns of a row.
struct Who {
    guest: Option<String>,
    cluster: Option<String>,
    vmid: Option<u32>,
    guest_name: Option<String>,
}

fn who(identity: Option<&Identity>, guest_name: Option<&str>) -> Who {
    let Some(i) = identity else {
        return Who {
            guest: None,
            cluster: None,
            vmid: None,
            guest_name: None,
        };
    };
    let external = i.guest.is_external();
    let guest = match (external, guest_name) {
        (false, Some(n)) => format!("{} ({n})", i.guest),
        _ => i.guest_label(),
    };
    Who {
        guest: Some(guest),
        cluster: Some(i.guest.cluster.clone()),
        vmid: (!external).then_some(i.guest.vmid),
        guest_name: if external {
            Some(i.user.clone())
        } else {
            guest_name.map(str::to_owned)
        },
    }
}

pub async fn run(args: Args, config: &Path) -> anyhow::Result<i32> {
    let engine = super::engine::start(config)?;
    let result = engine.cycle(Mode::PlanOnly, true).await;
    engine.close().await;
    let report = result.map_err(|e| anyhow::anyhow!("observation failed ({}): {e}", e.label()))?;
    let filter = args.filter.compile()?;
    let rows: Vec<Row> = rows(&report)
        .into_iter()
        .filter(|r| filter.keeps(r))
        .collect();
    if let Some(path) = &args.csv {
        super::list_filter::write_csv(path, &rows)?;
    } else if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for r in &rows {
            println!(
                "{:<8} {:>6}  {:<40} {:<20} {}{}{}",
                r.status,
                r.id.as_deref().unwrap_or("-"),
                r.name,
                r.group,
                r.guest.as_deref().unwrap_or("-"),
                if r.access.is_empty() {
                    String::new()
                } else {
                    format!("  access: {}", r.access.join(" "))
                },
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
        let (guest_name, protocol) = match &a.action {
            Action::Create { connection, .. } | Action::Update { connection, .. } => (
                Some(connection.guest_name.as_str()),
                connection.protocol.clone(),
            ),
            _ => (
                None,
                a.action
                    .guacamole_id()
                    .map(|id| protocol_of(report, id))
                    .unwrap_or_default(),
            ),
        };
        let w = who(a.action.identity(), guest_name);
        rows.push(Row {
            status,
            id: a.action.guacamole_id().map(str::to_owned),
            name: a.action.connection_name().unwrap_or_default().to_owned(),
            group: a
                .action
                .group()
                .map(|g| display_path(g))
                .unwrap_or_default(),
            protocol,
            identity: a.action.identity().map(|i| i.to_string()),
            guest: w.guest,
            cluster: w.cluster,
            vmid: w.vmid,
            guest_name: w.guest_name,
            detail,
            access: Vec::new(),
        });
    }
    for (identity, id) in &report.plan.unchanged {
        let c = &report.desired.connections[identity];
        let w = who(Some(identity), Some(&c.guest_name));
        rows.push(Row {
            status: "ok",
            id: Some(id.clone()),
            name: c.name.clone(),
            group: display_path(&c.group),
            protocol: c.protocol.clone(),
            identity: Some(identity.to_string()),
            guest: w.guest,
            cluster: w.cluster,
            vmid: w.vmid,
            guest_name: w.guest_name,
            detail: String::new(),
            access: Vec::new(),
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
        let w = who(k.identity.as_ref(), None);
        rows.push(Row {
            status,
            id: Some(k.id.clone()),
            name: c.name.clone(),
            group: display_path(&c.group),
            protocol: c.protocol.clone(),
            identity: k.identity.as_ref().map(|i| i.to_string()),
            guest: w.guest,
            cluster: w.cluster,
            vmid: w.vmid,
            guest_name: w.guest_name,
            detail: k.reason.clone(),
            access: Vec::new(),
        });
    }
    add_access(report, &mut rows);
    rows.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
    rows
}

/// Who may use each connection, and grants or revokes still to make (an
/// `ok` connection with those is `drift`).
fn add_access(report: &CycleReport, rows: &mut [Row]) {
    let mut pending: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in &report.plan.actions {
        if let Action::Grant(change) = &a.action {
            let key = match (change.identity(), change.target.id()) {
                (Some(identity), _) => identity.to_string(),
                (None, Some(id)) if !change.target.is_group() => format!("id {id}"),
                _ => continue,
            };
            pending.entry(key).or_default().push(change.describe());
        }
    }
    for row in rows.iter_mut() {
        if let Some(identity) = &row.identity {
            row.access = report
                .access
                .access
                .iter()
                .find(|(i, _)| i.to_string() == *identity)
                .map(|(_, list)| list.clone())
                .unwrap_or_default();
        }
        let by_id = row.id.as_ref().map(|id| format!("id {id}"));
        let todo: Vec<String> = [row.identity.clone(), by_id]
            .into_iter()
            .flatten()
            .filter_map(|k| pending.get(&k))
            .flatten()
            .cloned()
            .collect();
        if todo.is_empty() {
            continue;
        }
        if row.status == "ok" {
            row.status = "drift";
        }
        if !row.detail.is_empty() {
            row.detail.push_str("; ");
        }
        row.detail.push_str(&todo.join(", "));
    }
}

fn protocol_of(report: &CycleReport, id: &str) -> String {
    report
        .tree
        .find(id)
        .map(|c| c.protocol.clone())
        .unwrap_or_default()
}
