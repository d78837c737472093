//! The request pipeline of one node, in the server's order of evaluation
//! (§1.3): request line → authentication → body → path → duplicate path
//! parameters → permission → forwarding → parameters → method.

use std::time::Duration;

use serde_json::{Value, json};

use super::ProxmoxCluster;
use super::acl::Identity;
use super::agent;
use super::auth::authenticate;
use super::cluster;
use super::config;
use super::context::Ctx;
use super::errors::{ApiError, empty_response, error_response, json_response, plain_error};
use super::guests;
use super::outcome::Outcome;
use super::params::{BodyError, Params};
use super::permissions;
use super::power;
use super::resources;
use super::routes::{Endpoint, Matched, match_route};
use super::schema;
use super::seed::GuestKind;
use super::state::State;
use super::tasks;
use crate::http::{Request, Response};

/// Answer one request received by `contacted`.
pub async fn serve(cluster: &ProxmoxCluster, contacted: &str, req: Request) -> Response {
    let mut resp = pipeline(cluster, contacted, &req).await;
    if resp.status >= 400 {
        resp.close = true;
    }
    resp
}

enum Format {
    Json,
    ExtJs,
}

async fn pipeline(cluster: &ProxmoxCluster, contacted: &str, req: &Request) -> Response {
    let clock = &cluster.clock;
    let epoch = clock.unix_secs();
    let method = req.method.as_str();
    if !matches!(method, "GET" | "POST" | "PUT" | "DELETE") {
        return empty_response(501, &format!("method '{method}' not available"));
    }
    if req.chunked {
        return plain_error(501, "chunked transfer encoding not supported");
    }
    let Some((format, rel)) = split_format(&req.path) else {
        return plain_error(501, "no such uri");
    };
    let matched = match_route(method, &rel);
    let route = matched.as_ref().map(|m| m.template.clone());
    let with_route = |r: Response| match &route {
        Some(t) => r.route(t.clone()),
        None => r,
    };

    // Authentication.
    let (auth, legacy_auth, legacy_body, delay) = {
        let st = cluster.state.lock().expect("state lock");
        let o = &st.settings.options;
        (
            authenticate(req, &st.access, epoch),
            st.settings.legacy_auth_texts,
            st.settings.legacy_error_body,
            o.auth_failure_delay
                .then(|| Duration::from_secs_f64(o.auth_failure_delay_secs.max(0.0))),
        )
    };
    let who = match auth {
        Ok(who) => who,
        Err(fail) => {
            if let Some(d) = delay {
                clock.sleep(d).await;
            }
            return with_route(empty_response(401, &fail.text(legacy_auth)));
        }
    };
    let format = match format.as_str() {
        "json" => Format::Json,
        "extjs" => Format::ExtJs,
        other => {
            let text = format!("no formatter for uri {rel}, {other}");
            return with_route(plain_error(501, &text));
        }
    };

    // Body checks.
    if matches!(method, "GET" | "DELETE") && (!req.body.is_empty() || req.oversized) {
        let text = format!("Unexpected content for method '{method}'");
        return with_route(plain_error(501, &text));
    }
    if req.oversized {
        return with_route(plain_error(501, "for data too large"));
    }
    let params = match Params::from_request(req) {
        Ok(p) => p,
        Err(BodyError::UnsupportedType(ct)) => {
            let text = format!("unsupported content type '{ct}'");
            return with_route(plain_error(506, &text));
        }
        Err(BodyError::BadJson) => {
            let e = ApiError::param("body", "unable to parse JSON request body");
            return with_route(render(Outcome::Error(e), &format, legacy_body));
        }
    };

    let Some(m) = matched else {
        let e = ApiError::NotImplemented {
            method: method.to_string(),
            path: rel.clone(),
        };
        return render(Outcome::Error(e), &format, legacy_body);
    };
    let outcome = routed(cluster, contacted, &who, &m, params).await;
    with_route(render(outcome, &format, legacy_body))
}

/// `/api2/json/version` → (`json`, `/version`).
fn split_format(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/api2/")?;
    let (format, rel) = match rest.split_once('/') {
        Some((f, r)) => (f, format!("/{r}")),
        None => (rest, String::new()),
    };
    (!format.is_empty()).then(|| (format.to_string(), rel))
}

/// Everything after the path lookup; returns the method's outcome.
async fn routed(
    cluster: &ProxmoxCluster,
    contacted: &str,
    who: &Identity,
    m: &Matched,
    params: Params,
) -> Outcome {
    let clock = &cluster.clock;
    let mut path_params: Vec<(&str, String)> = Vec::new();
    if let Some(n) = &m.node {
        path_params.push(("node", n.clone()));
    }
    if let Some(v) = &m.vmid {
        path_params.push(("vmid", v.clone()));
    }
    if let Some(u) = &m.upid {
        path_params.push(("upid", u.clone()));
    }
    let params = match params.with_path(&path_params) {
        Ok(p) => p,
        Err(e) => return e.into(),
    };

    // Permission (on the contacted node), then forwarding.
    let forward = {
        let mut st = cluster.state.lock().expect("state lock");
        st.settle(clock.elapsed());
        if let Err(e) = permissions::pre_check(&st, who, m) {
            return e.into();
        }
        resolve_node(&st, contacted, m)
    };
    let target = match forward {
        Forward::Local(n) => n,
        Forward::Error(e) => return e.into(),
        Forward::Offline { delay, reason } => {
            clock.sleep(delay).await;
            return Outcome::ProxyFailure {
                status: 595,
                reason,
            };
        }
    };

    // Parameters, validated on the executing node.
    if let Err(e) = schema::validate(m.endpoint, &params) {
        return e.into();
    }

    let start = clock.elapsed();
    let lock_timeout = {
        let st = cluster.state.lock().expect("state lock");
        Duration::from_secs_f64(st.settings.options.config_lock_timeout_secs.max(0.0))
    };
    let mut outcome = loop {
        let now = clock.elapsed();
        let out = {
            let mut st = cluster.state.lock().expect("state lock");
            st.settle(now);
            let ctx = Ctx {
                who: who.clone(),
                node: target.clone(),
                now,
                epoch: clock.unix_secs(),
                lock_timed_out: now.saturating_sub(start) >= lock_timeout,
            };
            dispatch(&mut st, &ctx, m, &params)
        };
        match out {
            Outcome::Busy => clock.sleep(Duration::from_millis(100)).await,
            other => break other,
        }
    };
    // Delays (agent timeouts) and background_delay waits.
    loop {
        match outcome {
            Outcome::After(d, inner) => {
                clock.sleep(d).await;
                outcome = *inner;
            }
            Outcome::AwaitTask { upid, vmid, max } => {
                let deadline = clock.elapsed() + max;
                outcome = loop {
                    let now = clock.elapsed();
                    let done = {
                        let mut st = cluster.state.lock().expect("state lock");
                        st.settle(now);
                        st.tasks
                            .get(&upid)
                            .filter(|t| t.done)
                            .map(|t| t.outcome.clone())
                    };
                    match done {
                        Some(Ok(())) => break Outcome::data(Value::Null),
                        Some(Err(e)) => {
                            break ApiError::failed(format!("failed to update VM {vmid}: {e}"))
                                .into();
                        }
                        None if now >= deadline => break Outcome::data(json!(upid)),
                        None => clock.sleep(Duration::from_millis(100)).await,
                    }
                };
            }
            other => return other,
        }
    }
}

enum Forward {
    Local(String),
    Error(ApiError),
    Offline { delay: Duration, reason: String },
}

/// §11: `localhost` = contacted node; unknown names fail the DNS lookup;
/// offline members give 595.
fn resolve_node(st: &State, contacted: &str, m: &Matched) -> Forward {
    if !m.endpoint.node_scoped() {
        return Forward::Local(contacted.to_string());
    }
    let name = m.node.clone().unwrap_or_default();
    let name = if name == "localhost" {
        contacted.to_string()
    } else {
        name
    };
    match st.node(&name) {
        None => Forward::Error(ApiError::failed(format!(
            "hostname lookup '{name}' failed - failed to get address info for: {name}: Name or service not known"
        ))),
        Some(n) if !n.online && n.name != contacted => {
            let o = &st.settings.options;
            Forward::Offline {
                delay: Duration::from_secs_f64(o.offline_proxy_delay_secs.max(0.0)),
                reason: o.offline_reason.clone(),
            }
        }
        Some(n) => Forward::Local(n.name.clone()),
    }
}

fn vmid_of(p: &Params) -> u32 {
    p.int("vmid").unwrap_or_default() as u32
}

/// Run the endpoint's method.
fn dispatch(st: &mut State, ctx: &Ctx, m: &Matched, p: &Params) -> Outcome {
    let now = ctx.now;
    let vmid = vmid_of(p);
    match m.endpoint {
        Endpoint::Root => Outcome::data(json!([
            {"subdir": "version"}, {"subdir": "cluster"}, {"subdir": "nodes"},
            {"subdir": "storage"}, {"subdir": "access"}, {"subdir": "pools"}
        ])),
        Endpoint::Version => Outcome::data(cluster::version(st)),
        Endpoint::Nodes => Outcome::data(cluster::nodes(st, &ctx.who, now)),
        Endpoint::ClusterStatus => Outcome::data(cluster::cluster_status(st, &ctx.node)),
        Endpoint::ClusterResources => {
            let t = p.str("type");
            Outcome::RawData(resources::resources(st, &ctx.who, t.as_deref(), now))
        }
        Endpoint::AccessPermissions => permissions::permissions(
            st,
            &ctx.who,
            p.str("userid").as_deref(),
            p.str("path").as_deref(),
        )
        .into(),
        Endpoint::GuestList(kind) => {
            let full = p.bool("full").unwrap_or(false);
            Outcome::data(guests::list(st, &ctx.who, &ctx.node, kind, full, now))
        }
        Endpoint::ConfigGet(kind) => config::get_config(st, ctx, kind, vmid, p).into(),
        Endpoint::ConfigPut(GuestKind::Qemu) => config::write_vm_config(st, ctx, vmid, p, false),
        Endpoint::ConfigPost => config::write_vm_config(st, ctx, vmid, p, true),
        Endpoint::ConfigPut(GuestKind::Lxc) => config::write_ct_config(st, ctx, vmid, p),
        Endpoint::StatusCurrent(kind) => {
            guests::status_current(st, &ctx.node, kind, vmid, now).into()
        }
        Endpoint::Power(kind, action) => power::power(st, ctx, kind, vmid, action, p),
        Endpoint::TaskStatus => {
            let upid = p.str("upid").unwrap_or_default();
            tasks::task_status(st, &ctx.who, &ctx.node, &upid).into()
        }
        Endpoint::TaskLog => {
            let upid = p.str("upid").unwrap_or_default();
            let start = p.int("start").unwrap_or(0).max(0) as usize;
            let limit = p.int("limit").unwrap_or(50).max(0) as usize;
            match tasks::task_log(st, &ctx.who, &ctx.node, &upid, start, limit) {
                Ok((lines, total)) => {
                    let extra = if total > 0 {
                        vec![("total", json!(total))]
                    } else {
                        Vec::new()
                    };
                    Outcome::Data(lines, extra)
                }
                Err(e) => e.into(),
            }
        }
        Endpoint::AgentIndex => Outcome::data(agent::command_index()),
        Endpoint::AgentCommand(cmd) => agent::run_command(st, &ctx.node, vmid, cmd, now),
        Endpoint::AgentLegacy => {
            let cmd = p.str("command").unwrap_or_default();
            match cmd.as_str() {
                "network-get-interfaces" => {
                    agent::run_command(st, &ctx.node, vmid, "network-get-interfaces", now)
                }
                "ping" => agent::run_command(st, &ctx.node, vmid, "ping", now),
                other => ApiError::failed(format!(
                    "VM {vmid} qga command '{other}' not supported by the lab"
                ))
                .into(),
            }
        }
        Endpoint::LxcInterfaces => {
            if !st.settings.version.has_lxc_interfaces() {
                return ApiError::NotImplemented {
                    method: "GET".into(),
                    path: format!("/nodes/{}/lxc/{vmid}/interfaces", ctx.node),
                }
                .into();
            }
            agent::lxc_interfaces(st, &ctx.node, vmid).into()
        }
        Endpoint::NodeNetwork => {
            let (list, changes) =
                cluster::network(st, &ctx.who, &ctx.node, p.str("type").as_deref());
            let extra = changes
                .map(|c| vec![("changes", json!(c))])
                .unwrap_or_default();
            Outcome::Data(list, extra)
        }
    }
}

/// Frame an outcome (JSON or ExtJS envelope).
fn render(outcome: Outcome, format: &Format, legacy_body: bool) -> Response {
    match (outcome, format) {
        (Outcome::Data(v, extra), Format::Json) => {
            let mut body = json!({ "data": v });
            for (k, x) in extra {
                body[k] = x;
            }
            json_response(200, &body)
        }
        (Outcome::Data(v, extra), Format::ExtJs) => {
            let mut body = json!({ "data": v, "success": 1 });
            for (k, x) in extra {
                body[k] = x;
            }
            json_response(200, &body)
        }
        (Outcome::RawData(raw), f) => {
            let extjs = if matches!(f, Format::ExtJs) {
                ",\"success\":1"
            } else {
                ""
            };
            let mut r = json_response(200, &Value::Null);
            r.body = crate::http::Body::Bytes(format!("{{\"data\":{raw}{extjs}}}").into_bytes());
            r
        }
        (Outcome::ProxyFailure { status, reason }, _) => empty_response(status, &reason),
        (Outcome::Error(e), Format::Json) => error_response(&e, legacy_body),
        (Outcome::Error(e), Format::ExtJs) => {
            let mut body = e.body(false);
            body["success"] = json!(0);
            body["status"] = json!(e.status());
            json_response(200, &body)
        }
        (other, _) => {
            let e = ApiError::failed(format!("internal lab error: unexpected outcome {other:?}"));
            error_response(&e, legacy_body)
        }
    }
}
