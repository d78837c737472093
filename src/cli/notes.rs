//! `notes lint`: read notes on stdin and show the connections they yield and
//! every error, as the daemon would see them. Passwords show as `***`.
//! Needs no configuration. Exit 0 without errors, 1 with.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use crate::cli::encrypt::load_key_file;
use crate::notes::{
    self, BlockError, ConnectionSpec, GuestContext, NotesPolicy, Passwords, Warning,
};
use crate::reconcile::model::ParamValue;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: NotesCommand,
}

#[derive(Debug, Subcommand)]
pub enum NotesCommand {
    /// Check notes read on stdin and list the connections they yield.
    Lint(LintArgs),
    /// Add a credential block (password encrypted) to a guest's notes.
    Add(super::notes_add::AddArgs),
}

#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// Guest name for templates.
    #[arg(long, default_value = "vm")]
    pub vmname: String,
    /// Guest VMID for templates.
    #[arg(long, default_value_t = 100)]
    pub vmid: u32,
    /// Node name for templates.
    #[arg(long, default_value = "node")]
    pub node: String,
    /// Guest address for templates (`{ip}` stays verbatim without it).
    #[arg(long)]
    pub ip: Option<String>,
    /// Cluster name for templates.
    #[arg(long, default_value = "cluster")]
    pub cluster: String,
    /// Also decrypt encrypted passwords with these keys (one per line).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Print JSON: {"connections":[…],"errors":[…],"warnings":[…]}.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: Args, config: &std::path::Path) -> anyhow::Result<i32> {
    match args.command {
        NotesCommand::Lint(lint) => run_lint(lint),
        NotesCommand::Add(add) => super::notes_add::run(add, config).await,
    }
}

fn run_lint(args: LintArgs) -> anyhow::Result<i32> {
    let mut raw = Vec::new();
    std::io::stdin()
        .read_to_end(&mut raw)
        .context("cannot read notes from stdin")?;
    let text = String::from_utf8_lossy(&raw);
    let keyring = args.key_file.as_deref().map(load_key_file).transpose()?;
    let passwords = keyring
        .as_ref()
        .map_or(Passwords::Unchecked, Passwords::Decrypt);
    let ctx = GuestContext {
        cluster: args.cluster,
        node: args.node,
        vmid: args.vmid,
        vmname: args.vmname,
        // Without --ip, `{ip}` renders as itself so names stay readable.
        address: Some(args.ip.unwrap_or_else(|| "{ip}".to_owned())),
        hostname: crate::host::short_hostname(),
    };
    let parsed = notes::parse(&text);
    let resolution = parsed.resolve(&ctx, &NotesPolicy::default(), passwords);
    let mut warnings = parsed.warnings.clone();
    warnings.extend(resolution.warnings.iter().cloned());
    warnings.sort_by_key(|w| (w.block, w.line));
    if args.json {
        println!(
            "{}",
            to_json(&resolution.connections, &resolution.errors, &warnings)
        );
    } else {
        print!(
            "{}",
            to_text(&resolution.connections, &resolution.errors, &warnings)
        );
    }
    Ok(if resolution.errors.is_empty() { 0 } else { 1 })
}

/// Settings as shown: values of secret parameters (passphrases, keys,
/// gateway passwords) as `***`, like `plan` shows them.
fn shown_settings(settings: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    settings
        .iter()
        .map(|(k, v)| {
            let v = if ParamValue::is_secret_name(k) {
                "***"
            } else {
                v.as_str()
            };
            (k.as_str(), v)
        })
        .collect()
}

fn group_path(c: &ConnectionSpec) -> Option<String> {
    c.group.as_ref().map(|g| g.join("/"))
}

/// The `--json` document; passwords are never part of it.
pub fn to_json(
    connections: &[ConnectionSpec],
    errors: &[BlockError],
    warnings: &[Warning],
) -> serde_json::Value {
    let connections: Vec<_> = connections
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "protocol": c.protocol.as_str(),
                "port": c.port,
                "username": c.username,
                "group": group_path(c),
                "settings": shown_settings(&c.settings),
            })
        })
        .collect();
    let errors: Vec<_> = errors
        .iter()
        .map(|e| json!({"block": e.block, "line": e.line, "key": e.key, "message": e.message()}))
        .collect();
    let warnings: Vec<_> = warnings
        .iter()
        .map(|w| json!({"block": w.block, "line": w.line, "key": w.key, "message": w.message()}))
        .collect();
    json!({"connections": connections, "errors": errors, "warnings": warnings})
}

pub fn to_text(
    connections: &[ConnectionSpec],
    errors: &[BlockError],
    warnings: &[Warning],
) -> String {
    let mut out = String::new();
    for c in connections {
        out.push_str(&format!(
            "connection \"{}\": {} port {} user {} password ***",
            c.name, c.protocol, c.port, c.username
        ));
        if let Some(g) = group_path(c) {
            out.push_str(&format!(" group {g}"));
        }
        if let Some(h) = &c.host_override {
            out.push_str(&format!(" host {h}"));
        }
        out.push('\n');
        for (k, v) in shown_settings(&c.settings)
            .into_iter()
            .chain(shown_settings(&c.wol))
        {
            out.push_str(&format!("  {k}={v}\n"));
        }
    }
    for e in errors {
        out.push_str(&format!("error: {e}\n"));
    }
    for w in warnings {
        out.push_str(&format!("warning: block {} (line {})", w.block, w.line));
        if let Some(key) = w.key {
            out.push_str(&format!(", key {key}"));
        }
        out.push_str(&format!(": {}\n", w.message()));
    }
    out.push_str(&format!(
        "{} connection(s), {} error(s)",
        connections.len(),
        errors.len()
    ));
    if !warnings.is_empty() {
        out.push_str(&format!(", {} warning(s)", warnings.len()));
    }
    out.push('\n');
    out
}
