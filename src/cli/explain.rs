//! `explain GUEST [--json]`: everything the daemon knows and would do about
//! one guest — its listing entry, whether and why it is selected, each notes
//! block (keys, errors, warnings; never a secret), its address and where it
//! came from, the connections it should have, the ones it has (with status)
//! and the pending actions with their reasons. Read only. It asks Proxmox
//! for the cluster listing, this guest's config and address, and Guacamole
//! for the tree and this guest's connections' parameters: nothing about
//! other guests beyond the listing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Value, json};

use super::guest_ref::{GuestRef, find};
use crate::config::{Filter, Selector};
use crate::discovery::AddressEvidence;
use crate::notes::{self, BlockKind, GuestContext, Key, Passwords};
use crate::reconcile::cycle::{CycleReport, Engine, unix_now};
use crate::reconcile::desire::{ClusterObservation, ConfigObservation, GuestObservation};
use crate::reconcile::grants;
use crate::reconcile::model::{GuestKey, display_path};
use crate::reconcile::observe::{
    ClusterSource, Memory, fill_parameters, observe_guest, observe_tree,
};
use crate::reconcile::plan::{Action, claim, plan};
use crate::state::CachedAddress;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The guest: VMID, CLUSTER/VMID or a unique guest name.
    pub guest: String,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: Args, config: &Path) -> anyhow::Result<i32> {
    let wanted = GuestRef::parse(&args.guest)?;
    let engine = super::engine::start(config)?;
    let result = explain(&engine, &wanted).await;
    engine.close().await;
    let doc = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", to_text(&doc));
    }
    Ok(0)
}

async fn explain(engine: &Engine, wanted: &GuestRef) -> anyhow::Result<Value> {
    let s = &engine.settings;
    let found = find(&engine.clients.proxmox, wanted).await?;
    // Read only: no lock, nothing saved.
    let st = engine
        .state_store()
        .load()
        .map_err(|e| anyhow::anyhow!("{e} ({})", e.label()))?;
    let cc = engine.cycle_config();
    let now = unix_now();
    let source = ClusterSource {
        name: &found.cluster,
        client: found.client.clone(),
        sources: cc.sources.get(&found.cluster).map_or(&[], |l| l.as_slice()),
        shared: &cc.shared,
        refresh: s.discovery.refresh,
        now,
    };
    // The daemon's back-off is ignored: a guest waiting after failures is
    // asked now, so the answer gives the current reason, not "asked later".
    let no_backoff = BTreeMap::new();
    let memory = Memory {
        addresses: &st.addresses,
        schedule: &no_backoff,
    };
    let guest = observe_guest(&source, &found.resource, &s.sync.selector, memory).await;
    let failed = matches!(guest.config, ConfigObservation::Failed { .. });
    let observed = [ClusterObservation {
        name: found.cluster.clone(),
        complete: !failed,
        guests: vec![guest.clone()],
        errors: Vec::new(),
    }];
    let want = engine.desire(&observed);
    let guac = &engine.clients.guacamole;
    let mut tree = observe_tree(guac, &s.guacamole.root_group)
        .await
        .map_err(|e| anyhow::anyhow!("Guacamole: {e} ({})", e.label()))?;
    let claims = claim(&want, &tree, &st);
    // Only this guest's connections: the ones it owns and the ones the state
    // file says it owned.
    let mut ids: BTreeSet<String> = claims.owned.values().cloned().collect();
    ids.extend(
        claims
            .stale
            .iter()
            .filter(|(_, i)| i.guest == guest.key)
            .map(|(id, _)| id.clone()),
    );
    let read_failures = fill_parameters(guac, &mut tree, &ids).await;
    let mut the_plan = plan(&want, &tree, &st, now, &engine.plan_settings(false));
    // One permission read per user or group involved; grant actions join the
    // plan, so pending grants show with the other pending actions.
    let access =
        grants::plan_stage(guac, &observed, &want, &tree, &st, &s.access, &mut the_plan).await;
    let mut read_failures = read_failures;
    read_failures.extend(access.problems.iter().cloned());
    let report = CycleReport {
        summary: Default::default(),
        requests: BTreeMap::new(),
        duration_ms: 0,
        degraded_clusters: Vec::new(),
        cycle: 0,
        problems: read_failures,
        plan: the_plan,
        desired: want,
        tree,
        access,
        outcome: Default::default(),
    };
    let cached = st.addresses.get(&guest.key.to_string());
    Ok(document(engine, &guest, cached, &report))
}

fn document(
    engine: &Engine,
    guest: &GuestObservation,
    cached: Option<&CachedAddress>,
    report: &CycleReport,
) -> Value {
    let key = &guest.key;
    let mine = |g: Option<&GuestKey>| g == Some(key);
    let existing: Vec<super::list::Row> = super::list::rows(report)
        .into_iter()
        .filter(|r| r.cluster.as_deref() == Some(&key.cluster) && r.vmid == Some(key.vmid))
        .collect();
    let pending: Vec<Value> = report
        .plan
        .actions
        .iter()
        .filter(|a| match &a.action {
            Action::RewriteNotes { rewrite } => rewrite.guest == *key,
            other => mine(other.identity().map(|i| &i.guest)),
        })
        .map(
            |a| json!({"action": a.action.kind(), "what": a.action.describe(), "reason": a.reason}),
        )
        .collect();
    let desired: Vec<Value> = report
        .desired
        .connections
        .values()
        .filter(|c| c.identity.guest == *key)
        .map(|c| {
            json!({
                "identity": c.identity.to_string(),
                "name": c.name,
                "group": display_path(&c.group),
                "protocol": c.protocol,
                "parameters": c.params,
            })
        })
        .collect();
    let problems: Vec<&str> = report
        .desired
        .problems
        .iter()
        .filter(|p| mine(p.guest.as_ref()))
        .map(|p| p.message.as_str())
        .chain(report.problems.iter().map(String::as_str))
        .collect();
    let (selected, rule) = selection(&engine.settings.sync.selector, guest);
    json!({
        "guest": key.to_string(),
        "listing": {
            "cluster": key.cluster,
            "vmid": key.vmid,
            "name": guest.name,
            "type": guest.kind.as_str(),
            "node": guest.node,
            "status": guest.status,
            "template": guest.template,
            "tags": guest.tags,
            "pool": guest.pool,
        },
        "selection": {"selected": selected, "rule": rule},
        "config": config_state(guest),
        "blocks": blocks(engine, guest),
        "address": address(guest, cached),
        "held": report.desired.held.get(key).map(|h| h.as_str()),
        "desired": desired,
        "existing": existing,
        "pending": pending,
        "problems": problems,
        "grants": grants_of(key, report),
        "limits": "name conflicts with other guests are judged only by a full cycle (plan)",
    })
}

/// Per desired connection of the guest: who has READ from the daemon's
/// sources (`user:NAME`, `group:NAME`, marked `(pending)` or `(unknown)`).
fn grants_of(key: &GuestKey, report: &CycleReport) -> Value {
    let map: serde_json::Map<String, Value> = report
        .access
        .access
        .iter()
        .filter(|(identity, _)| identity.guest == *key)
        .map(|(identity, who)| (identity.to_string(), json!(who)))
        .collect();
    Value::Object(map)
}

fn config_state(guest: &GuestObservation) -> Value {
    match &guest.config {
        ConfigObservation::Skipped => {
            json!({"read": false, "why": "not selected, a template, or its node is unavailable"})
        }
        ConfigObservation::Failed { error } => json!({"read": false, "why": error}),
        ConfigObservation::Read(f) => {
            json!({"read": true, "digest": f.digest, "locked": f.locked, "agent": f.agent_enabled, "net0_mac": f.primary_mac})
        }
    }
}

/// Included or excluded, and by which rule (templates never).
fn selection(selector: &Selector, guest: &GuestObservation) -> (bool, String) {
    if guest.template {
        return (false, "templates are always skipped".to_owned());
    }
    let facts = Facts(guest);
    if let Some(list) = first_list(&selector.include, &facts, false) {
        return (false, format!("not matched by sync.include.{list}"));
    }
    if let Some(list) = first_list(&selector.exclude, &facts, true) {
        return (false, format!("matched by sync.exclude.{list}"));
    }
    if selector.is_everything() {
        (true, "no include or exclude rules: every guest".to_owned())
    } else if selector.include.is_empty() {
        (true, "no sync.exclude rule matches".to_owned())
    } else {
        (
            true,
            "every non-empty sync.include list matches and no sync.exclude rule does".to_owned(),
        )
    }
}

struct Facts<'a>(&'a GuestObservation);

/// The first non-empty list of `filter` whose outcome is `want_match`
/// (include: the first list that does not match; exclude: the first that does).
fn first_list(filter: &Filter, f: &Facts<'_>, want_match: bool) -> Option<&'static str> {
    let g = f.0;
    let lists: [(&'static str, bool, bool); 4] = [
        (
            "tags",
            filter.tags.is_empty(),
            g.tags
                .iter()
                .any(|t| filter.tags.iter().any(|w| w.eq_ignore_ascii_case(t))),
        ),
        (
            "vmids",
            filter.vmids.is_empty(),
            filter.vmids.iter().any(|r| r.contains(g.key.vmid)),
        ),
        (
            "nodes",
            filter.nodes.is_empty(),
            filter.nodes.contains(&g.node),
        ),
        (
            "pools",
            filter.pools.is_empty(),
            g.pool.as_ref().is_some_and(|p| filter.pools.contains(p)),
        ),
    ];
    lists
        .into_iter()
        .find(|(_, empty, matched)| !*empty && *matched == want_match)
        .map(|(name, _, _)| name)
}

/// Each block: its keys (values only of keys that never hold secrets;
/// settings show their names), kind, errors and warnings.
fn blocks(engine: &Engine, guest: &GuestObservation) -> Vec<Value> {
    let ConfigObservation::Read(facts) = &guest.config else {
        return Vec::new();
    };
    let parsed = notes::parse(facts.notes.expose());
    let ctx = GuestContext {
        cluster: guest.key.cluster.clone(),
        node: guest.node.clone(),
        vmid: guest.key.vmid,
        vmname: guest.name.clone(),
        address: guest.address.address().map(|a| a.to_string()),
        hostname: engine.cycle_config().hostname.clone(),
    };
    let cc = engine.cycle_config();
    let passwords = cc
        .keyring
        .as_ref()
        .map_or(Passwords::NoKeys, Passwords::Decrypt);
    parsed
        .blocks
        .iter()
        .map(|b| {
            let keys: Vec<Value> = b
                .pairs
                .iter()
                .filter_map(|p| Key::lookup(&p.key).map(|k| (k, p)))
                .map(|(k, p)| json!({"key": k.canonical(), "value": shown_value(k, &p.value)}))
                .collect();
            let mut errors: Vec<String> = b.errors.iter().map(ToString::to_string).collect();
            let mut connections = Vec::new();
            let mut warnings: Vec<String> = parsed
                .warnings
                .iter()
                .filter(|w| w.block == b.ordinal)
                .map(ToString::to_string)
                .collect();
            if errors.is_empty() {
                match parsed.resolve_block(b, &ctx, &cc.policy, passwords) {
                    Ok(r) => {
                        connections = r.connections.iter().map(|c| c.name.clone()).collect();
                        warnings.extend(r.warnings.iter().map(ToString::to_string));
                    }
                    Err(e) => errors.push(e.to_string()),
                }
            }
            let kind = match b.kind {
                BlockKind::Directive => "directive",
                BlockKind::Credential(_) => "credential",
                BlockKind::Invalid => "invalid",
            };
            json!({
                "block": b.ordinal,
                "line": b.line,
                "kind": kind,
                "keys": keys,
                "errors": errors,
                "warnings": warnings,
                "connections": connections,
            })
        })
        .collect()
}

fn shown_value(key: Key, value: &str) -> String {
    match key {
        Key::Password | Key::EncryptedPassword => "***".to_owned(),
        Key::Settings(_) | Key::WolSettings => notes::settings::split_items(value)
            .into_iter()
            .map(|(name, _)| format!("{name}=***"))
            .collect::<Vec<_>>()
            .join(","),
        _ => value.to_owned(),
    }
}

/// The address and its source; a fresh cached address also says which
/// source learnt it and when, since discovery does not ask again until then.
fn address(guest: &GuestObservation, cached: Option<&CachedAddress>) -> Value {
    match &guest.address {
        AddressEvidence::Found { address, source } => {
            let mut doc = json!({"address": address.to_string(), "source": source});
            if let Some(c) = cached.filter(|_| *source == crate::discovery::sources::CACHE) {
                doc["learnt_from"] = json!(c.source);
                doc["seen_at"] = json!(c.seen_at);
            }
            doc
        }
        AddressEvidence::Unknown { reason } | AddressEvidence::Unanswered { reason } => {
            json!({"address": null, "why": reason})
        }
    }
}

fn to_text(doc: &Value) -> String {
    let mut out = String::new();
    let s = |v: &Value| match v {
        Value::String(t) => t.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let l = &doc["listing"];
    out.push_str(&format!(
        "guest {} ({}, {} on node {}, {}{}{})\n",
        s(&doc["guest"]),
        s(&l["name"]),
        s(&l["type"]),
        s(&l["node"]),
        s(&l["status"]),
        if l["template"] == true {
            ", template"
        } else {
            ""
        },
        match l["tags"].as_array() {
            Some(t) if !t.is_empty() =>
                format!(", tags {}", t.iter().map(&s).collect::<Vec<_>>().join(";")),
            _ => String::new(),
        }
    ));
    let sel = &doc["selection"];
    out.push_str(&format!(
        "selection: {} ({})\n",
        if sel["selected"] == true {
            "included"
        } else {
            "excluded"
        },
        s(&sel["rule"])
    ));
    let c = &doc["config"];
    if c["read"] == true {
        out.push_str(&format!("config: read (locked: {})\n", s(&c["locked"])));
    } else {
        out.push_str(&format!("config: not read ({})\n", s(&c["why"])));
    }
    let blocks = doc["blocks"].as_array().cloned().unwrap_or_default();
    if blocks.is_empty() {
        out.push_str("notes: no credential block\n");
    }
    for b in &blocks {
        let keys: Vec<String> = b["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|k| format!("{}:{}", s(&k["key"]), s(&k["value"])))
            .collect();
        out.push_str(&format!(
            "block {} (line {}, {}): {}\n",
            s(&b["block"]),
            s(&b["line"]),
            s(&b["kind"]),
            keys.join(" ")
        ));
        for e in b["errors"].as_array().into_iter().flatten() {
            out.push_str(&format!("  error: {}\n", s(e)));
        }
        for w in b["warnings"].as_array().into_iter().flatten() {
            out.push_str(&format!("  warning: {}\n", s(w)));
        }
        for n in b["connections"].as_array().into_iter().flatten() {
            out.push_str(&format!("  yields \"{}\"\n", s(n)));
        }
    }
    let a = &doc["address"];
    if a["address"].is_null() {
        out.push_str(&format!("address: none ({})\n", s(&a["why"])));
    } else {
        let learnt = match &a["learnt_from"] {
            Value::Null => String::new(),
            from => format!(", learnt from {} at unix time {}", s(from), a["seen_at"]),
        };
        out.push_str(&format!(
            "address: {} (from {}{learnt})\n",
            s(&a["address"]),
            s(&a["source"])
        ));
    }
    if !doc["held"].is_null() {
        out.push_str(&format!(
            "held: existing connections kept unchanged ({})\n",
            s(&doc["held"])
        ));
    }
    for d in doc["desired"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "desired {}: \"{}\" in {} ({})\n",
            s(&d["identity"]),
            s(&d["name"]),
            s(&d["group"]),
            s(&d["protocol"])
        ));
    }
    for e in doc["existing"].as_array().into_iter().flatten() {
        let detail = s(&e["detail"]);
        out.push_str(&format!(
            "existing {:<8} {} \"{}\" in {}{}\n",
            s(&e["status"]),
            s(&e["id"]),
            s(&e["name"]),
            s(&e["group"]),
            if detail.is_empty() {
                String::new()
            } else {
                format!(" ({detail})")
            }
        ));
    }
    let pending = doc["pending"].as_array().cloned().unwrap_or_default();
    if pending.is_empty() {
        out.push_str("pending: nothing\n");
    }
    for p in &pending {
        out.push_str(&format!(
            "pending: {}\n  because: {}\n",
            s(&p["what"]),
            s(&p["reason"])
        ));
    }
    for p in doc["problems"].as_array().into_iter().flatten() {
        out.push_str(&format!("problem: {}\n", s(p)));
    }
    let grants = doc["grants"].as_object().into_iter().flatten();
    for (identity, who) in grants {
        let names: Vec<String> = who.as_array().into_iter().flatten().map(s).collect();
        out.push_str(&format!("grants on {identity}: {}\n", names.join(", ")));
    }
    out
}
