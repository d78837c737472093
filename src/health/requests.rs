//! `pve_guac_sync_requests_total`: read from the HTTP layer's own counters at
//! scrape time, so no request is counted twice. Clients rebuilt on a reload
//! start from zero; their predecessors' counters stay in the sum, so the
//! exported counter never goes backwards.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

use crate::http::stats::Stats;

/// `status` of attempts that got no HTTP answer (connect, TLS, timeout…).
pub(crate) const NO_RESPONSE: &str = "none";

#[derive(Debug, Default, Clone)]
pub(crate) struct RequestCollector {
    sources: Arc<Mutex<Vec<Arc<Stats>>>>,
}

/// (api, endpoint, status)
type Key = (String, &'static str, String);

impl RequestCollector {
    /// Adds counters to the sum (once each, however often they are offered).
    pub fn track(&self, stats: Arc<Stats>) {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        if !sources.iter().any(|s| Arc::ptr_eq(s, &stats)) {
            sources.push(stats);
        }
    }

    fn totals(&self) -> BTreeMap<Key, u64> {
        let sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = BTreeMap::new();
        for endpoint in sources.iter().flat_map(|s| s.snapshot()) {
            for (code, n) in &endpoint.statuses {
                let key = (endpoint.api.clone(), endpoint.endpoint, code.to_string());
                *out.entry(key).or_default() += n;
            }
            if endpoint.errors > 0 {
                let key = (
                    endpoint.api.clone(),
                    endpoint.endpoint,
                    NO_RESPONSE.to_owned(),
                );
                *out.entry(key).or_default() += endpoint.errors;
            }
        }
        out
    }
}

impl Collector for RequestCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let totals = self.totals();
        let mut family = encoder.encode_descriptor(
            "requests",
            "HTTP requests sent to the Proxmox and Guacamole APIs (each retry counts), by API, \
             endpoint and answer status (none: no answer).",
            None,
            MetricType::Counter,
        )?;
        for ((api, endpoint, status), n) in &totals {
            let labels = [
                ("api", api.as_str()),
                ("endpoint", *endpoint),
                ("status", status.as_str()),
            ];
            ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
