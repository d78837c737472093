//! `plan`: observe and plan, change nothing; print every action with its
//! reason (secrets as `***`). Exit 0 when nothing is to do, 3 otherwise.

use std::path::Path;

use serde_json::json;

use crate::reconcile::cycle::Mode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: Args, config: &Path) -> anyhow::Result<i32> {
    let engine = super::engine::start(config)?;
    let result = engine.cycle(Mode::PlanOnly, false).await;
    engine.close().await;
    let report = result.map_err(|e| anyhow::anyhow!("observation failed ({}): {e}", e.label()))?;
    let plan = &report.plan;
    if args.json {
        let out = json!({
            "actions": plan.actions,
            "kept": plan.kept,
            "unchanged": plan.unchanged.len(),
            "problems": report.problems,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        if plan.actions.is_empty() {
            println!(
                "nothing to do ({} connections in step)",
                plan.unchanged.len()
            );
        }
        for (i, a) in plan.actions.iter().enumerate() {
            println!(
                "{:>3}. {}\n     because: {}",
                i + 1,
                a.action.describe(),
                a.reason
            );
        }
        for k in &plan.kept {
            let who = k
                .identity
                .as_ref()
                .map(|i| i.to_string())
                .unwrap_or_default();
            println!("keep connection {} {who}: {}", k.id, k.reason);
        }
        for p in &report.problems {
            println!("problem: {p}");
        }
    }
    Ok(if plan.actions.is_empty() { 0 } else { 3 })
}
