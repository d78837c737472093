//! `list` filters (`--guest --cluster --protocol --status --group --name`)
//! and the CSV output. A filter narrows what is shown, never what is read:
//! statuses are always judged against the whole picture.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use regex_lite::Regex;

use super::guest_ref::GuestRef;
use super::list::Row;

const STATUSES: [&str; 5] = ["ok", "drift", "missing", "orphan", "error"];

#[derive(Debug, Default, clap::Args)]
pub struct FilterArgs {
    /// Only this guest: VMID, CLUSTER/VMID, a guest name, or `external/NAME`.
    #[arg(long)]
    pub guest: Option<String>,
    /// Only this cluster (`external` for external hosts).
    #[arg(long)]
    pub cluster: Option<String>,
    /// Only this protocol (rdp, vnc, ssh, telnet).
    #[arg(long)]
    pub protocol: Option<String>,
    /// Only this status.
    #[arg(long, value_parser = STATUSES)]
    pub status: Option<String>,
    /// Only this group path (e.g. `Lab/Web`, `/` for the root) and its subgroups.
    #[arg(long)]
    pub group: Option<String>,
    /// Only connection names matching this regular expression (unanchored).
    #[arg(long, value_name = "REGEX")]
    pub name: Option<String>,
}

/// The filters, checked and compiled.
pub(crate) struct Filter {
    guest: Option<GuestMatch>,
    cluster: Option<String>,
    protocol: Option<String>,
    status: Option<String>,
    group: Option<String>,
    name: Option<Regex>,
}

enum GuestMatch {
    Ref(GuestRef),
    External(String),
}

impl FilterArgs {
    pub(crate) fn compile(&self) -> anyhow::Result<Filter> {
        let name = match &self.name {
            Some(pattern) => Some(Regex::new(pattern).with_context(|| {
                format!("--name {pattern:?} is not a valid regular expression")
            })?),
            None => None,
        };
        let guest = match self.guest.as_deref() {
            Some(g) => match g.strip_prefix("external/") {
                Some(host) => Some(GuestMatch::External(host.to_owned())),
                None => Some(GuestMatch::Ref(GuestRef::parse(g)?)),
            },
            None => None,
        };
        if let Some(p) = &self.protocol
            && crate::notes::Protocol::parse(p).is_none()
        {
            bail!("--protocol {p:?}: expected rdp, vnc, ssh or telnet");
        }
        let group = self.group.as_deref().map(|g| {
            let trimmed = g.trim_matches('/');
            if trimmed.is_empty() {
                "/".to_owned()
            } else {
                trimmed.to_owned()
            }
        });
        Ok(Filter {
            guest,
            cluster: self.cluster.clone(),
            protocol: self.protocol.as_ref().map(|p| p.to_ascii_lowercase()),
            status: self.status.clone(),
            group,
            name,
        })
    }
}

impl Filter {
    pub(crate) fn keeps(&self, r: &Row) -> bool {
        let cluster_ok = self
            .cluster
            .as_ref()
            .is_none_or(|c| r.cluster.as_ref() == Some(c));
        let protocol_ok = self.protocol.as_ref().is_none_or(|p| r.protocol == *p);
        let status_ok = self.status.as_ref().is_none_or(|s| r.status == s);
        let group_ok = self
            .group
            .as_ref()
            .is_none_or(|g| g == "/" || r.group == *g || r.group.starts_with(&format!("{g}/")));
        let name_ok = self.name.as_ref().is_none_or(|re| re.is_match(&r.name));
        let guest_ok = self.guest.as_ref().is_none_or(|g| guest_matches(g, r));
        cluster_ok && protocol_ok && status_ok && group_ok && name_ok && guest_ok
    }
}

fn guest_matches(g: &GuestMatch, r: &Row) -> bool {
    let external = r.cluster.as_deref() == Some(crate::reconcile::model::EXTERNAL_CLUSTER);
    match g {
        GuestMatch::External(name) => external && r.guest_name.as_ref() == Some(name),
        GuestMatch::Ref(GuestRef::Vmid(v)) => !external && r.vmid == Some(*v),
        GuestMatch::Ref(GuestRef::ClusterVmid(c, v)) => {
            r.cluster.as_ref() == Some(c) && r.vmid == Some(*v)
        }
        GuestMatch::Ref(GuestRef::Name(n)) => r.guest_name.as_ref() == Some(n),
    }
}

const CSV_HEADER: [&str; 11] = [
    "status",
    "id",
    "name",
    "group",
    "protocol",
    "cluster",
    "vmid",
    "guest_name",
    "identity",
    "guest",
    "detail",
];

/// RFC 4180: fields with a comma, quote or line break are quoted, quotes doubled.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

pub(crate) fn to_csv(rows: &[Row]) -> String {
    let mut out = CSV_HEADER.join(",");
    out.push_str("\r\n");
    for r in rows {
        let vmid = r.vmid.map(|v| v.to_string()).unwrap_or_default();
        let fields = [
            r.status,
            r.id.as_deref().unwrap_or(""),
            &r.name,
            &r.group,
            &r.protocol,
            r.cluster.as_deref().unwrap_or(""),
            &vmid,
            r.guest_name.as_deref().unwrap_or(""),
            r.identity.as_deref().unwrap_or(""),
            r.guest.as_deref().unwrap_or(""),
            &r.detail,
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

pub(crate) fn write_csv(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    let text = to_csv(rows);
    if path == Path::new("-") {
        std::io::stdout().write_all(text.as_bytes())?;
        return Ok(());
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, status: &'static str, group: &str, vmid: Option<u32>) -> Row {
        Row {
            status,
            id: Some("7".into()),
            name: name.into(),
            group: group.into(),
            protocol: "ssh".into(),
            identity: None,
            guest: None,
            cluster: Some(if vmid.is_some() { "lab" } else { "external" }.into()),
            vmid,
            guest_name: Some("web01".into()),
            detail: "a, \"b\"".into(),
            access: Vec::new(),
        }
    }

    #[test]
    fn each_filter_narrows() {
        let rows = [
            row("admin@web01-ssh", "ok", "pve1", Some(100)),
            row("x", "drift", "pve1/Lab", Some(101)),
            row("y", "ok", "/", None),
        ];
        let shown = |args: FilterArgs| -> Vec<String> {
            let f = args.compile().unwrap();
            rows.iter()
                .filter(|r| f.keeps(r))
                .map(|r| r.name.clone())
                .collect()
        };
        let args = || FilterArgs::default();
        assert_eq!(shown(args()).len(), 3);
        assert_eq!(
            shown(FilterArgs {
                status: Some("drift".into()),
                ..args()
            }),
            ["x"]
        );
        assert_eq!(
            shown(FilterArgs {
                group: Some("pve1".into()),
                ..args()
            }),
            ["admin@web01-ssh", "x"]
        );
        assert_eq!(
            shown(FilterArgs {
                name: Some("^admin@".into()),
                ..args()
            }),
            ["admin@web01-ssh"]
        );
        assert_eq!(
            shown(FilterArgs {
                guest: Some("lab/101".into()),
                ..args()
            }),
            ["x"]
        );
        assert_eq!(
            shown(FilterArgs {
                guest: Some("external/web01".into()),
                ..args()
            }),
            ["y"]
        );
        assert_eq!(
            shown(FilterArgs {
                cluster: Some("external".into()),
                ..args()
            }),
            ["y"]
        );
    }

    #[test]
    fn a_bad_regex_is_an_error_not_a_substring_match() {
        let e = FilterArgs {
            name: Some("web(".into()),
            ..FilterArgs::default()
        }
        .compile()
        .err()
        .unwrap();
        assert!(
            e.to_string().contains("not a valid regular expression"),
            "{e}"
        );
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let csv = to_csv(&[row("a,b", "ok", "/", Some(1))]);
        let mut lines = csv.split("\r\n");
        assert_eq!(lines.next().unwrap(), CSV_HEADER.join(","));
        assert_eq!(
            lines.next().unwrap(),
            "ok,7,\"a,b\",/,ssh,lab,1,web01,,,\"a, \"\"b\"\"\""
        );
    }
}
