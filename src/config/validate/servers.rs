//! Validation of the server sections: Proxmox clusters, Guacamole, and the
//! TLS / timeout / pacing settings both share.

use std::collections::BTreeMap;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::Path;
use std::time::Duration;

use url::{Host, Url};

use super::super::raw::{
    At, RawCluster, RawGuacamole, RawProxmox, RawRateLimit, RawRetry, RawTimeouts, RawTls, Text,
};
use super::super::secrets;
use super::super::settings::{
    ApiSettings, ClusterSettings, GuacamoleSettings, ProxmoxSettings, RateLimit, RetrySettings,
    Timeouts, TlsSettings,
};
use super::{DEFAULT_ROOT_GROUP, Validator};

/// Defaults for one API, differing between Proxmox and Guacamole.
struct ApiDefaults {
    rate_per_second: u32,
    burst: u32,
    concurrency: usize,
    request_timeout: Duration,
}

const PROXMOX_DEFAULTS: ApiDefaults = ApiDefaults {
    rate_per_second: 20,
    burst: 10,
    concurrency: 8,
    // Above the 30 s a node waits for another node before answering 595/596,
    // so a slow proxied call is reported as such, not as a dead endpoint.
    request_timeout: Duration::from_secs(45),
};
const GUACAMOLE_DEFAULTS: ApiDefaults = ApiDefaults {
    rate_per_second: 20,
    burst: 10,
    concurrency: 4,
    request_timeout: Duration::from_secs(30),
};

/// The API keys a cluster and Guacamole share, as written.
#[derive(Clone, Copy)]
struct ApiInput<'r> {
    tls: Option<&'r At<RawTls>>,
    timeouts: Option<&'r At<RawTimeouts>>,
    rate_limit: Option<&'r At<RawRateLimit>>,
    concurrency: Option<&'r At<u64>>,
    retry: Option<&'r At<RawRetry>>,
}

impl Validator<'_> {
    // ── Proxmox ────────────────────────────────────────────────────────────

    pub(super) fn proxmox(&mut self, raw: &At<RawProxmox>) -> ProxmoxSettings {
        let list = &raw.value.clusters;
        if list.value.is_empty() {
            self.error(list, "proxmox.clusters", "expected at least one cluster");
        }
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut clusters = Vec::new();
        for (i, c) in list.value.iter().enumerate() {
            let base = format!("proxmox.clusters[{i}]");
            let cluster = self.cluster(c, &base);
            if let Some(first) = seen.insert(cluster.name.clone(), i) {
                self.error(
                    &c.value.name,
                    &format!("{base}.name"),
                    format!(
                        "cluster name `{}` is already used by proxmox.clusters[{first}]; names must be unique",
                        cluster.name
                    ),
                );
            }
            clusters.push(cluster);
        }
        ProxmoxSettings { clusters }
    }

    fn cluster(&mut self, raw: &At<RawCluster>, base: &str) -> ClusterSettings {
        let c = &raw.value;
        let name = c.name.value.0.trim().to_owned();
        if !valid_name(&name) {
            self.error(
                &c.name,
                &format!("{base}.name"),
                "expected a short name of letters, digits, `-`, `_` or `.` (at most 64), starting with a letter or digit",
            );
        }
        let mut endpoints: Vec<Url> = Vec::new();
        if c.endpoints.value.is_empty() {
            self.error(
                &c.endpoints,
                &format!("{base}.endpoints"),
                "expected at least one endpoint URL",
            );
        }
        for (j, e) in c.endpoints.value.iter().enumerate() {
            let key = format!("{base}.endpoints[{j}]");
            if let Some(url) = self.proxmox_endpoint(e, &key) {
                if endpoints.contains(&url) {
                    self.error(e, &key, "this endpoint is listed twice");
                } else {
                    endpoints.push(url);
                }
            }
        }
        let token_id = c.token_id.value.0.trim().to_owned();
        if let Err(why) = check_token_id(&token_id) {
            self.error(&c.token_id, &format!("{base}.token_id"), why);
        }
        let token_secret = self.secret(&c.token_secret, &format!("{base}.token_secret"));
        let input = ApiInput {
            tls: c.tls.as_ref(),
            timeouts: c.timeouts.as_ref(),
            rate_limit: c.rate_limit.as_ref(),
            concurrency: c.concurrency.as_ref(),
            retry: c.retry.as_ref(),
        };
        let api = self.api(base, &input, &PROXMOX_DEFAULTS);
        ClusterSettings {
            name,
            endpoints,
            token_id,
            token_secret,
            api,
        }
    }

    fn proxmox_endpoint(&mut self, at: &At<Text>, key: &str) -> Option<Url> {
        const EXPECTED: &str = "expected an https URL like https://pve1.example.net:8006";
        let Ok(mut url) = Url::parse(at.value.0.trim()) else {
            self.error(at, key, EXPECTED);
            return None;
        };
        if url.scheme() != "https" || url.host().is_none() {
            self.error(
                at,
                key,
                format!("{EXPECTED} (the Proxmox API is served over https only)"),
            );
            return None;
        }
        if !url.username().is_empty() || url.password().is_some() {
            self.error(
                at,
                key,
                "the URL must not carry credentials; use token_id and token_secret",
            );
            return None;
        }
        if url.query().is_some() || url.fragment().is_some() {
            self.error(at, key, format!("{EXPECTED}, without ?query or #fragment"));
            return None;
        }
        let path = url.path().trim_end_matches('/');
        if !path.is_empty() {
            let hint = if path == "/api2/json" {
                "leave out /api2/json: the client adds it".to_owned()
            } else {
                format!("{EXPECTED}, without a path")
            };
            self.error(at, key, hint);
            return None;
        }
        if !has_explicit_port(at.value.0.trim()) {
            self.warn(
                at,
                key,
                "no port given, so 443 is used; Proxmox VE itself listens on 8006 (write :8006 unless a proxy serves 443)",
            );
        }
        url.set_path("/");
        Some(url)
    }

    // ── Guacamole ──────────────────────────────────────────────────────────

    pub(super) fn guacamole(&mut self, raw: &At<RawGuacamole>) -> GuacamoleSettings {
        let g = &raw.value;
        let (url, url_path) = self.guacamole_url(&g.url);
        let mut base_path = url_path;
        if let Some(at) = &g.base_path {
            let bp = self.base_path(at);
            if base_path.is_some() {
                self.error(
                    at,
                    "guacamole.base_path",
                    "given both here and as the path of guacamole.url; keep one",
                );
            }
            base_path = bp;
        }
        let username = g.username.value.0.trim().to_owned();
        if username.is_empty() {
            self.error(
                &g.username,
                "guacamole.username",
                "expected a Guacamole user name",
            );
        }
        let password = self.secret(&g.password, "guacamole.password");
        let data_source = g.data_source.as_ref().and_then(|at| {
            let ds = at.value.0.trim().to_owned();
            let ok = !ds.is_empty()
                && ds
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                self.error(
                    at,
                    "guacamole.data_source",
                    "expected a data source identifier such as postgresql, mysql or sqlserver",
                );
            }
            ok.then_some(ds)
        });
        let root_group = match &g.root_group {
            Some(at) => {
                let name = at.value.0.trim().to_owned();
                if name.is_empty() || name.len() > 128 || name.contains('/') {
                    self.error(
                        at,
                        "guacamole.root_group",
                        "expected a connection group name (1-128 characters, no `/`)",
                    );
                }
                name
            }
            None => DEFAULT_ROOT_GROUP.to_owned(),
        };
        let input = ApiInput {
            tls: g.tls.as_ref(),
            timeouts: g.timeouts.as_ref(),
            rate_limit: g.rate_limit.as_ref(),
            concurrency: g.concurrency.as_ref(),
            retry: g.retry.as_ref(),
        };
        let api = self.api("guacamole", &input, &GUACAMOLE_DEFAULTS);
        GuacamoleSettings {
            url,
            base_path,
            username,
            password,
            data_source,
            root_group,
            api,
        }
    }

    /// The origin, plus the URL's path as base path when it has one.
    fn guacamole_url(&mut self, at: &At<Text>) -> (Url, Option<String>) {
        const EXPECTED: &str = "expected an https URL like https://guacamole.example.net \
             (http is accepted only for a loopback address)";
        let fallback = Url::parse("https://invalid.invalid/").expect("static URL");
        let Ok(mut url) = Url::parse(at.value.0.trim()) else {
            self.error(at, "guacamole.url", EXPECTED);
            return (fallback, None);
        };
        let loopback = match url.host() {
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
        if !scheme_ok || url.host().is_none() {
            self.error(at, "guacamole.url", EXPECTED);
            return (fallback, None);
        }
        if !url.username().is_empty() || url.password().is_some() {
            self.error(
                at,
                "guacamole.url",
                "the URL must not carry credentials; use guacamole.username and guacamole.password",
            );
            return (fallback, None);
        }
        if url.query().is_some() || url.fragment().is_some() {
            self.error(
                at,
                "guacamole.url",
                format!("{EXPECTED}, without ?query or #fragment"),
            );
            return (fallback, None);
        }
        let path = url.path().trim_end_matches('/').to_owned();
        url.set_path("/");
        (url, (!path.is_empty()).then_some(path))
    }

    fn base_path(&mut self, at: &At<Text>) -> Option<String> {
        let text = at.value.0.trim();
        let trimmed = text.trim_end_matches('/');
        let ok = text.starts_with('/')
            && !trimmed.is_empty()
            && !trimmed.contains("//")
            && !trimmed.contains(['?', '#', ' ']);
        if !ok {
            self.error(
                at,
                "guacamole.base_path",
                "expected the REST API path, such as /guacamole/api or /api",
            );
            return None;
        }
        Some(trimmed.to_owned())
    }

    // ── Shared API settings ────────────────────────────────────────────────

    fn api(&mut self, base: &str, input: &ApiInput<'_>, defaults: &ApiDefaults) -> ApiSettings {
        let ApiInput {
            tls,
            timeouts,
            rate_limit,
            concurrency,
            retry,
        } = *input;
        let tls = match tls {
            Some(at) => self.tls(at, &format!("{base}.tls")),
            None => TlsSettings::SystemRoots,
        };
        let timeouts = self.timeouts(
            timeouts,
            &format!("{base}.timeouts"),
            defaults.request_timeout,
        );
        let rate_limit = match rate_limit {
            Some(at) => {
                let key = format!("{base}.rate_limit");
                RateLimit {
                    per_second: self.nonzero_u32(
                        at.value.per_second.as_ref(),
                        &format!("{key}.per_second"),
                        defaults.rate_per_second,
                    ),
                    burst: self.nonzero_u32(
                        at.value.burst.as_ref(),
                        &format!("{key}.burst"),
                        defaults.burst,
                    ),
                }
            }
            None => RateLimit {
                per_second: NonZeroU32::new(defaults.rate_per_second).expect("non-zero default"),
                burst: NonZeroU32::new(defaults.burst).expect("non-zero default"),
            },
        };
        let concurrency = {
            let n = self.nonzero_u32(
                concurrency,
                &format!("{base}.concurrency"),
                defaults.concurrency as u32,
            );
            NonZeroUsize::new(n.get() as usize).expect("non-zero")
        };
        let retry = self.retry(retry, &format!("{base}.retry"));
        ApiSettings {
            tls,
            timeouts,
            rate_limit,
            concurrency,
            retry,
        }
    }

    fn tls(&mut self, at: &At<RawTls>, key: &str) -> TlsSettings {
        let t = &at.value;
        let mut modes: Vec<(u64, &str, TlsSettings)> = Vec::new();
        if let Some(ca) = &t.ca_file {
            let path = self.absolute_path(ca, &format!("{key}.ca_file"));
            self.check_ca_file(ca, &format!("{key}.ca_file"), &path);
            modes.push((ca.referenced.line(), "ca_file", TlsSettings::CaFile(path)));
        }
        if let Some(fp) = &t.fingerprint_sha256 {
            match TlsSettings::parse_fingerprint(&fp.value.0) {
                Ok(bytes) => modes.push((
                    fp.referenced.line(),
                    "fingerprint_sha256",
                    TlsSettings::PinnedSha256(bytes),
                )),
                Err(e) => self.error(
                    fp,
                    &format!("{key}.fingerprint_sha256"),
                    format!(
                        "expected a SHA-256 certificate fingerprint such as AB:CD:…:EF or plain hex: {e}"
                    ),
                ),
            }
        }
        if let Some(insecure) = &t.insecure
            && insecure.value
        {
            self.warn(
                insecure,
                &format!("{key}.insecure"),
                "TLS certificate verification is OFF: anyone on the network path can impersonate this server and read its credentials; pin fingerprint_sha256 or set ca_file instead",
            );
            modes.push((
                insecure.referenced.line(),
                "insecure: true",
                TlsSettings::Insecure,
            ));
        }
        if modes.len() > 1 {
            let names: Vec<&str> = modes.iter().map(|m| m.1).collect();
            let line = modes[1].0;
            let p = self.problem(
                line,
                key,
                format!(
                    "choose one of ca_file, fingerprint_sha256 or insecure: true; found {}",
                    names.join(" and ")
                ),
            );
            self.problems.push(p);
        }
        modes
            .into_iter()
            .next()
            .map_or(TlsSettings::SystemRoots, |m| m.2)
    }

    fn check_ca_file(&mut self, at: &At<Text>, key: &str, path: &Path) {
        if !path.is_absolute() {
            return; // already reported
        }
        match std::fs::read(path) {
            Ok(bytes) => {
                if !bytes
                    .windows(b"-----BEGIN CERTIFICATE-----".len())
                    .any(|w| w == b"-----BEGIN CERTIFICATE-----")
                {
                    self.error(
                        at,
                        key,
                        format!(
                            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                            path.display()
                        ),
                    );
                }
            }
            Err(e) => self.error(
                at,
                key,
                format!("CA file {}: {}", path.display(), secrets::io_reason(&e)),
            ),
        }
    }

    fn timeouts(
        &mut self,
        at: Option<&At<RawTimeouts>>,
        key: &str,
        request_default: Duration,
    ) -> Timeouts {
        let connect_default = Duration::from_secs(5);
        let Some(at) = at else {
            return Timeouts {
                connect: connect_default,
                request: request_default,
            };
        };
        let connect = self.duration(
            at.value.connect.as_ref(),
            &format!("{key}.connect"),
            connect_default,
            false,
        );
        let request = self.duration(
            at.value.request.as_ref(),
            &format!("{key}.request"),
            request_default,
            false,
        );
        if connect > request {
            self.error(
                at,
                key,
                "connect must not be longer than request (the request timeout covers the connection too)",
            );
        }
        Timeouts { connect, request }
    }

    fn retry(&mut self, at: Option<&At<RawRetry>>, key: &str) -> RetrySettings {
        let mut retry = RetrySettings {
            max_attempts: NonZeroU32::new(3).expect("non-zero"),
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
        };
        let Some(at) = at else { return retry };
        let r = &at.value;
        retry.max_attempts =
            self.nonzero_u32(r.max_attempts.as_ref(), &format!("{key}.max_attempts"), 3);
        retry.base_delay = self.duration(
            r.base_delay.as_ref(),
            &format!("{key}.base_delay"),
            retry.base_delay,
            false,
        );
        retry.max_delay = self.duration(
            r.max_delay.as_ref(),
            &format!("{key}.max_delay"),
            retry.max_delay,
            false,
        );
        if retry.base_delay > retry.max_delay {
            self.error(at, key, "base_delay must not be longer than max_delay");
        }
        retry
    }
}

/// Whether the URL text names a port (`url` forgets an explicit `:443`).
fn has_explicit_port(text: &str) -> bool {
    let rest = text.split_once("://").map_or(text, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    // Skip an IPv6 literal's colons.
    let host_port = authority.rsplit_once(']').map_or(authority, |(_, p)| p);
    host_port.contains(':')
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `user@realm!tokenname`, as Proxmox prints it when the token is created.
fn check_token_id(id: &str) -> Result<(), String> {
    const EXPECTED: &str =
        "expected an API token id like pve-guac-sync@pve!sync (user@realm!tokenname)";
    let Some((user_realm, token)) = id.split_once('!') else {
        return Err(EXPECTED.to_owned());
    };
    let Some((user, realm)) = user_realm.rsplit_once('@') else {
        return Err(EXPECTED.to_owned());
    };
    let token_ok = token.starts_with(|c: char| c.is_ascii_alphabetic())
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if user.is_empty() || realm.is_empty() || !token_ok || id.contains(char::is_whitespace) {
        return Err(EXPECTED.to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_need_user_realm_and_token_name() {
        assert!(check_token_id("pve-guac-sync@pve!sync").is_ok());
        assert!(check_token_id("root@pam!a.b-c_d").is_ok());
        assert!(check_token_id("root@pam").is_err());
        assert!(check_token_id("root!sync").is_err());
        assert!(check_token_id("@pam!sync").is_err());
        assert!(check_token_id("root@pam!").is_err());
        assert!(check_token_id("root@pam!1abc").is_err());
    }

    #[test]
    fn explicit_ports_are_seen_even_when_default() {
        assert!(has_explicit_port("https://pve:443"));
        assert!(has_explicit_port("https://[::1]:8006/"));
        assert!(!has_explicit_port("https://[::1]/"));
        assert!(!has_explicit_port("https://pve.example.net"));
    }

    #[test]
    fn cluster_names_are_short_and_plain() {
        assert!(valid_name("lab"));
        assert!(valid_name("dc1.prod-a"));
        assert!(!valid_name(""));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(&"a".repeat(65)));
    }
}
