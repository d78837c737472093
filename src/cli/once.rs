//! `once`: one full cycle, then exit. Exit 0 when converged, 1 when any
//! action failed, 3 when the change budget left actions pending.

use std::path::Path;

use crate::reconcile::cycle::{CycleReport, Mode};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the cycle summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Log every write instead of making it (also `sync.dry_run`).
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(args: Args, config: &Path) -> anyhow::Result<i32> {
    let engine = super::engine::start(config)?;
    let mode = if args.dry_run || engine.settings.sync.dry_run {
        Mode::DryRun
    } else {
        Mode::Apply
    };
    // Guests a crashed run left powered up go back first.
    engine.restore_power_journal().await;
    // SIGTERM ends the cycle (its power-ups mid-way too); the journal below
    // still puts every guest back before exit.
    let result = tokio::select! {
        r = engine.cycle(mode, false) => Some(r),
        _ = terminated() => None,
    };
    let failed_restores = engine.restore_power_journal().await;
    engine.close().await;
    let Some(result) = result else {
        eprintln!("terminated: guests powered up were restored ({failed_restores} failed)");
        return Ok(1);
    };
    let report = match result {
        Ok(report) => report,
        // The configuration was fine; the servers were not: an error of
        // the cycle (exit 1), not of its use (2).
        Err(e) => {
            eprintln!("error: cycle failed ({}): {e}", e.label());
            return Ok(1);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text_summary(&report));
    }
    Ok(exit_code(&report))
}

async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}

pub fn exit_code(report: &CycleReport) -> i32 {
    let s = &report.summary;
    if s.errors > 0 {
        1
    } else if s.pending > 0 && !s.dry_run {
        3
    } else {
        0
    }
}

pub fn text_summary(r: &CycleReport) -> String {
    let s = &r.summary;
    let mut out = format!(
        "created {}, updated {}, deleted {}, unchanged {}, kept {}, notes rewritten {}, permissions changed {}, pending {}, errors {}{} ({} ms)\n",
        s.created,
        s.updated,
        s.deleted,
        s.unchanged,
        s.kept,
        s.notes_rewritten,
        s.grants_changed,
        s.pending,
        s.errors,
        if s.dry_run { ", dry run" } else { "" },
        r.duration_ms
    );
    let requests: Vec<String> = r
        .requests
        .iter()
        .map(|(api, n)| format!("{api} {n}"))
        .collect();
    out.push_str(&format!("requests: {}\n", requests.join(", ")));
    for p in &r.problems {
        out.push_str(&format!("problem: {p}\n"));
    }
    out
}
