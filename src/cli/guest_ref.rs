//! `GUEST` on the command line: `VMID`, `CLUSTER/VMID` or a guest name that
//! is unique across the configured clusters. Finding it costs one
//! `/cluster/resources` call per cluster asked.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, bail};
use futures_util::future::join_all;

use crate::proxmox::{ClusterResource, ProxmoxClient};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GuestRef {
    Vmid(u32),
    ClusterVmid(String, u32),
    Name(String),
}

impl GuestRef {
    pub(crate) fn parse(text: &str) -> anyhow::Result<GuestRef> {
        let text = text.trim();
        if text.is_empty() {
            bail!("GUEST is empty: give a VMID, CLUSTER/VMID or a guest name");
        }
        if let Some((cluster, vmid)) = text.split_once('/') {
            let vmid = vmid
                .parse()
                .with_context(|| format!("GUEST {text:?}: expected CLUSTER/VMID"))?;
            return Ok(GuestRef::ClusterVmid(cluster.to_owned(), vmid));
        }
        Ok(match text.parse() {
            Ok(vmid) => GuestRef::Vmid(vmid),
            Err(_) => GuestRef::Name(text.to_owned()),
        })
    }

    fn matches(&self, r: &ClusterResource) -> bool {
        match self {
            GuestRef::Vmid(v) | GuestRef::ClusterVmid(_, v) => r.vmid == *v,
            GuestRef::Name(n) => r.name.as_deref() == Some(n.as_str()),
        }
    }
}

/// The one guest a [`GuestRef`] names.
pub(crate) struct FoundGuest {
    pub cluster: String,
    pub client: Arc<ProxmoxClient>,
    /// Its entry in `/cluster/resources`.
    pub resource: ClusterResource,
}

/// Lists the clusters the reference may point into and returns the single
/// match. A cluster that cannot be listed makes a VMID or name ambiguous,
/// so that is an error too.
pub(crate) async fn find(
    clients: &BTreeMap<String, Arc<ProxmoxClient>>,
    wanted: &GuestRef,
) -> anyhow::Result<FoundGuest> {
    let asked: Vec<(&String, &Arc<ProxmoxClient>)> = match wanted {
        GuestRef::ClusterVmid(cluster, _) => {
            let Some(entry) = clients.get_key_value(cluster) else {
                let known: Vec<&str> = clients.keys().map(String::as_str).collect();
                bail!(
                    "cluster {cluster:?} is not configured (configured: {})",
                    known.join(", ")
                );
            };
            vec![entry]
        }
        _ => clients.iter().collect(),
    };
    let listings = join_all(asked.iter().map(|(name, client)| async move {
        (name.as_str(), client, client.cluster_resources().await)
    }))
    .await;
    let mut found = Vec::new();
    let mut failed = Vec::new();
    for (cluster, client, listing) in listings {
        match listing {
            Ok(list) => {
                for r in list.iter().filter(|r| wanted.matches(r)) {
                    found.push(FoundGuest {
                        cluster: cluster.to_owned(),
                        client: (*client).clone(),
                        resource: r.clone(),
                    });
                }
            }
            Err(e) => failed.push(format!("{cluster}: {e} ({})", e.label())),
        }
    }
    if !failed.is_empty() {
        bail!(
            "cannot list the guests of cluster(s) {}; name the guest as CLUSTER/VMID of a cluster that answers",
            failed.join("; ")
        );
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!("no guest matches {}", describe(wanted)),
        _ => {
            let all: Vec<String> = found
                .iter()
                .map(|f| {
                    format!(
                        "{}/{} ({})",
                        f.cluster,
                        f.resource.vmid,
                        f.resource.name.as_deref().unwrap_or("-")
                    )
                })
                .collect();
            bail!(
                "{} matches several guests: {}; name one as CLUSTER/VMID",
                describe(wanted),
                all.join(", ")
            )
        }
    }
}

fn describe(r: &GuestRef) -> String {
    match r {
        GuestRef::Vmid(v) => format!("VMID {v}"),
        GuestRef::ClusterVmid(c, v) => format!("{c}/{v}"),
        GuestRef::Name(n) => format!("name {n:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(GuestRef::parse("101").unwrap(), GuestRef::Vmid(101));
        assert_eq!(
            GuestRef::parse("lab/101").unwrap(),
            GuestRef::ClusterVmid("lab".into(), 101)
        );
        assert_eq!(
            GuestRef::parse("web01").unwrap(),
            GuestRef::Name("web01".into())
        );
        assert!(GuestRef::parse("lab/web01").is_err());
        assert!(GuestRef::parse(" ").is_err());
    }
}
