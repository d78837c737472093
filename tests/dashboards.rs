//! `packaging/grafana/pve-guac-sync.json` and
//! `packaging/prometheus/alerts.yaml` against what the exporter really
//! serves: every metric and label they query exists in `/metrics`' output,
//! the expected panels and alerts are there, and the rule file has the
//! shape Prometheus loads. `promtool check rules` runs too when promtool
//! is installed (Debian ships it only inside the ~100 MB `prometheus`
//! server package, which CI does not install).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use pve_guac_sync::health::{Completed, CycleFacts, CycleOutcome, Health};
use serde::Deserialize;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Series names and their label names, from a real exposition after one
/// cycle with every kind of sample; families without samples yet (the
/// request counters) come from their `# TYPE` line, with the labels the
/// README documents.
fn exported() -> BTreeMap<String, BTreeSet<String>> {
    let health = Health::new(Duration::from_secs(300));
    health.record(&CycleFacts {
        outcome: CycleOutcome::Errors,
        duration: Duration::from_millis(120),
        errors: BTreeMap::from([("observe_incomplete".to_owned(), 1)]),
        completed: Some(Completed {
            changes: [
                ("create", 1),
                ("update", 1),
                ("delete", 1),
                ("rewrite_notes", 1),
                ("create_group", 1),
                ("delete_group", 1),
            ],
            pending: 2,
            guests: 3,
            connections: 4,
        }),
    });
    let text = health.metrics_text();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let label_names = regex_lite::Regex::new(r#"([a-z_]+)=""#).unwrap();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let names = match kind {
                "histogram" => vec![
                    format!("{name}_bucket"),
                    format!("{name}_sum"),
                    format!("{name}_count"),
                ],
                _ => vec![name.to_owned()],
            };
            for n in names {
                out.entry(n).or_default();
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let series = line.rsplit_once(' ').unwrap().0;
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let set = out.entry(name.to_owned()).or_default();
            set.extend(label_names.captures_iter(labels).map(|c| c[1].to_owned()));
        }
    }
    let requests = out
        .get_mut("pve_guac_sync_requests_total")
        .expect("the request counter family is exported");
    requests.extend(["api", "endpoint", "status"].map(String::from));
    out
}

/// Metric names a PromQL expression uses.
fn metrics_in(expr: &str) -> Vec<String> {
    let re = regex_lite::Regex::new(r"pve_guac_sync_[a-z_]+").unwrap();
    re.find_iter(expr).map(|m| m.as_str().to_owned()).collect()
}

/// Label names in `by (…)` clauses.
fn grouping_labels(expr: &str) -> Vec<String> {
    let re = regex_lite::Regex::new(r"by \(([a-z_, ]+)\)").unwrap();
    re.captures_iter(expr)
        .flat_map(|c| {
            c[1].split(',')
                .map(|l| l.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Labels every scraped series carries, added by Prometheus.
const TARGET_LABELS: [&str; 3] = ["instance", "job", "le"];

fn check_expr(where_: &str, expr: &str, exported: &BTreeMap<String, BTreeSet<String>>) {
    let used = metrics_in(expr);
    assert!(
        !used.is_empty(),
        "{where_}: no pve_guac_sync_ metric in {expr}"
    );
    let mut labels: BTreeSet<String> = TARGET_LABELS.map(String::from).into();
    for m in &used {
        let known = exported.get(m).unwrap_or_else(|| {
            panic!(
                "{where_}: {m} is not exported; the exporter has {:?}",
                exported.keys()
            )
        });
        labels.extend(known.iter().cloned());
    }
    for l in grouping_labels(expr) {
        assert!(
            labels.contains(&l),
            "{where_}: label {l} is not on {used:?}"
        );
    }
    let depth = expr.chars().try_fold(0i32, |d, c| {
        let d = d + i32::from(c == '(') - i32::from(c == ')');
        (d >= 0).then_some(d)
    });
    assert_eq!(depth, Some(0), "{where_}: unbalanced parentheses in {expr}");
}

#[test]
fn the_grafana_dashboard_queries_only_exported_metrics_and_has_every_panel() {
    let path = Path::new(ROOT).join("packaging/grafana/pve-guac-sync.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()));
    assert_eq!(dash["uid"], "pve-guac-sync");
    assert!(dash["schemaVersion"].as_u64().unwrap() >= 36);
    let exported = exported();
    let panels = dash["panels"].as_array().expect("panels");
    let mut by_title: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().expect("every panel has a title");
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate panel id");
        let grid = &p["gridPos"];
        assert!(grid["w"].as_u64().unwrap() > 0 && grid["h"].as_u64().unwrap() > 0);
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            check_expr(&format!("panel {title:?}"), expr, &exported);
            assert!(expr.contains("instance=~\"$instance\""), "{title}: {expr}");
            by_title.entry(title).or_default().push(expr);
        }
    }
    // The panels the issue asks for, each over its metric.
    for (title, metric) in [
        ("Cycles by outcome", "pve_guac_sync_cycles_total"),
        (
            "Cycle duration",
            "pve_guac_sync_cycle_duration_seconds_bucket",
        ),
        ("Changes by action", "pve_guac_sync_changes_total"),
        ("Errors by label", "pve_guac_sync_errors_total"),
        (
            "API requests by API and status",
            "pve_guac_sync_requests_total",
        ),
        ("Pending changes", "pve_guac_sync_pending_changes"),
        (
            "Last clean cycle",
            "pve_guac_sync_last_success_timestamp_seconds",
        ),
    ] {
        let exprs = by_title
            .get(title)
            .unwrap_or_else(|| panic!("no panel {title:?}; have {:?}", by_title.keys()));
        assert!(
            exprs
                .iter()
                .any(|e| metrics_in(e).iter().any(|m| m == metric)),
            "panel {title:?} does not query {metric}: {exprs:?}"
        );
    }
    let requests = &by_title["API requests by API and status"][0];
    assert_eq!(grouping_labels(requests), ["api", "status"]);
    let variable = &dash["templating"]["list"][0];
    assert_eq!(variable["name"], "instance");
    check_expr(
        "variable instance",
        variable["definition"].as_str().unwrap(),
        &exported,
    );
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleGroup {
    name: String,
    #[serde(default)]
    interval: Option<String>,
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    alert: String,
    expr: String,
    #[serde(rename = "for", default)]
    for_: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// A Prometheus duration such as `5m` or `1h30m`.
fn is_duration(text: &str) -> bool {
    regex_lite::Regex::new(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
        .unwrap()
        .is_match(text)
}

#[test]
fn the_alert_rules_have_prometheus_shape_and_query_exported_metrics() {
    let path = Path::new(ROOT).join("packaging/prometheus/alerts.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let file: RuleFile = serde_saphyr::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: not a Prometheus rule file: {e}", path.display()));
    let exported = exported();
    let mut alerts = BTreeMap::new();
    for group in &file.groups {
        assert!(!group.name.is_empty());
        if let Some(i) = &group.interval {
            assert!(is_duration(i), "group {}: interval {i}", group.name);
        }
        for rule in &group.rules {
            let name = &rule.alert;
            assert!(
                regex_lite::Regex::new("^[A-Za-z_][A-Za-z0-9_]*$")
                    .unwrap()
                    .is_match(name),
                "alert name {name:?}"
            );
            check_expr(&format!("alert {name}"), &rule.expr, &exported);
            let for_ = rule
                .for_
                .as_deref()
                .unwrap_or_else(|| panic!("{name}: no `for`"));
            assert!(is_duration(for_), "{name}: for {for_}");
            assert!(
                matches!(
                    rule.labels.get("severity").map(String::as_str),
                    Some("critical" | "warning")
                ),
                "{name}: severity"
            );
            assert!(rule.annotations.contains_key("summary"), "{name}: summary");
            assert!(alerts.insert(name.clone(), rule).is_none(), "{name} twice");
        }
    }
    let stale = &alerts["PveGuacSyncNoSuccessfulCycle"];
    assert!(
        stale
            .expr
            .contains("3 * pve_guac_sync_sync_interval_seconds"),
        "{}",
        stale.expr
    );
    assert!(
        alerts["PveGuacSyncErrorsRising"]
            .expr
            .contains("increase(pve_guac_sync_errors_total")
    );
    assert!(
        alerts["PveGuacSyncChangesPendingLong"]
            .expr
            .contains("pve_guac_sync_pending_changes > 0")
    );
    assert_eq!(alerts.len(), 3);
}

#[test]
fn promtool_accepts_the_alert_rules_when_installed() {
    let Ok(out) = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(Path::new(ROOT).join("packaging/prometheus/alerts.yaml"))
        .output()
    else {
        println!(
            "SKIP: promtool is not installed (Debian: package prometheus); the schema test above still ran"
        );
        return;
    };
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
