//! Power actions (§7.2): VM start/shutdown/stop as tasks that fail inside,
//! CT actions with their synchronous errors, HA mode, quorum.

use std::time::Duration;

use serde_json::json;

use super::agent;
use super::config;
use super::context::Ctx;
use super::errors::ApiError;
use super::outcome::Outcome;
use super::params::Params;
use super::seed::{GuestKind, ShutdownBehaviour};
use super::state::{AgentChannel, Event, Guest, State, value_text};
use super::tasks::TaskSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Start,
    Shutdown,
    Stop,
}

impl PowerAction {
    pub fn parse(s: &str) -> Option<PowerAction> {
        match s {
            "start" => Some(PowerAction::Start),
            "shutdown" => Some(PowerAction::Shutdown),
            "stop" => Some(PowerAction::Stop),
            _ => None,
        }
    }

    fn task_type(self, kind: GuestKind, ha: bool) -> &'static str {
        match (ha, kind, self) {
            (true, _, PowerAction::Start) => "hastart",
            (true, _, _) => "hastop",
            (false, GuestKind::Qemu, PowerAction::Start) => "qmstart",
            (false, GuestKind::Qemu, PowerAction::Shutdown) => "qmshutdown",
            (false, GuestKind::Qemu, PowerAction::Stop) => "qmstop",
            (false, GuestKind::Lxc, PowerAction::Start) => "vzstart",
            (false, GuestKind::Lxc, PowerAction::Shutdown) => "vzshutdown",
            (false, GuestKind::Lxc, PowerAction::Stop) => "vzstop",
        }
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// The plan of one power task.
struct Plan {
    kind: &'static str,
    duration: Duration,
    outcome: Result<(), String>,
    /// State change and when it happens.
    effect: Option<(Duration, bool /* start? */)>,
    /// Hold the config lock for the task's duration.
    holds_lock: bool,
    log: Vec<String>,
}

impl Plan {
    fn fail(kind: &'static str, d: Duration, msg: String) -> Plan {
        Plan {
            kind,
            duration: d,
            outcome: Err(msg),
            effect: None,
            holds_lock: false,
            log: Vec::new(),
        }
    }

    fn ok(kind: &'static str, d: Duration, effect: Option<(Duration, bool)>) -> Plan {
        Plan {
            kind,
            duration: d,
            outcome: Ok(()),
            effect,
            holds_lock: effect.is_some(),
            log: Vec::new(),
        }
    }
}

/// `POST /nodes/N/{qemu,lxc}/V/status/{start,shutdown,stop}`.
///
/// Power tasks take the guest's config lock: while another task holds it
/// (a running shutdown, say) the new task waits up to the lock timeout and
/// then fails with `can't lock file …`; `overrule-shutdown=1` on a stop
/// aborts running shutdown tasks instead.
pub fn power(
    state: &mut State,
    ctx: &Ctx,
    kind: GuestKind,
    vmid: u32,
    action: PowerAction,
    params: &Params,
) -> Outcome {
    match action {
        PowerAction::Start => state.counters.start += 1,
        PowerAction::Shutdown => state.counters.shutdown += 1,
        PowerAction::Stop => state.counters.stop += 1,
    }
    if action == PowerAction::Stop && params.bool("overrule-shutdown").unwrap_or(false) {
        abort_shutdowns(state, vmid, ctx.now);
    }
    // Synchronous errors come first, whatever holds the lock.
    let plan = match plan(state, ctx, kind, vmid, action, params) {
        Ok(p) => p,
        Err(e) => return e.into(),
    };
    let held_until = state
        .guest_on(&ctx.node, vmid, kind)
        .filter(|g| !g.ha)
        .and_then(|g| g.busy_until)
        .filter(|until| *until > ctx.now);
    let Some(until) = held_until else {
        return Outcome::data(json!(launch(state, ctx, vmid, plan, None)));
    };
    let timeout = secs(state.settings.options.config_lock_timeout_secs);
    let task_kind = action.task_type(kind, false);
    if until > ctx.now + timeout {
        let failed = Plan {
            holds_lock: false,
            ..Plan::fail(task_kind, timeout, config::lock_timeout_error(kind, vmid))
        };
        return Outcome::data(json!(launch(state, ctx, vmid, failed, None)));
    }
    let upid = state.create_task(
        &ctx.node,
        &ctx.who,
        TaskSpec {
            kind: task_kind,
            id: vmid.to_string(),
            duration: None,
            outcome: Ok(()),
            log: vec!["waiting for the config lock".into()],
        },
        ctx.now,
        ctx.epoch,
    );
    state.schedule(
        until,
        Event::DeferredPower(Box::new(DeferredPower {
            upid: upid.clone(),
            ctx: ctx.clone(),
            kind,
            vmid,
            action,
            params: params.clone(),
        })),
    );
    Outcome::data(json!(upid))
}

/// A power task waiting for the config lock.
#[derive(Debug, Clone)]
pub struct DeferredPower {
    upid: String,
    ctx: Ctx,
    kind: GuestKind,
    vmid: u32,
    action: PowerAction,
    params: Params,
}

/// The lock is free: plan the waiting task against the state of now.
pub fn run_deferred(state: &mut State, at: Duration, d: DeferredPower) {
    let ctx = Ctx { now: at, ..d.ctx };
    let task_kind = d.action.task_type(d.kind, false);
    let plan = plan(state, &ctx, d.kind, d.vmid, d.action, &d.params).unwrap_or_else(|e| {
        let msg = e.message().trim_end().to_string();
        Plan::fail(task_kind, Duration::ZERO, msg)
    });
    launch(state, &ctx, d.vmid, plan, Some(d.upid));
}

fn plan(
    state: &State,
    ctx: &Ctx,
    kind: GuestKind,
    vmid: u32,
    action: PowerAction,
    params: &Params,
) -> Result<Plan, ApiError> {
    match kind {
        GuestKind::Qemu => vm_plan(state, ctx, vmid, action, params),
        GuestKind::Lxc => ct_plan(state, ctx, vmid, action, params),
    }
}

/// Schedule a plan's effect and end; create its task unless it exists.
fn launch(state: &mut State, ctx: &Ctx, vmid: u32, plan: Plan, upid: Option<String>) -> String {
    let cause = plan.kind.to_string();
    if let Some((at, start)) = plan.effect {
        let event = if start {
            Event::Start { vmid, cause }
        } else {
            Event::Stop { vmid, cause }
        };
        state.schedule(ctx.now + at, event);
    }
    if plan.holds_lock
        && let Some(g) = state.guests.get_mut(&vmid)
    {
        g.busy_until = Some(ctx.now + plan.duration);
    }
    match upid {
        Some(upid) => {
            if let Some(t) = state.tasks.get_mut(&upid) {
                t.outcome = plan.outcome;
                t.log.extend(plan.log);
            }
            state.schedule(
                ctx.now + plan.duration,
                Event::FinishTask { upid: upid.clone() },
            );
            upid
        }
        None => state.create_task(
            &ctx.node,
            &ctx.who,
            TaskSpec {
                kind: plan.kind,
                id: vmid.to_string(),
                duration: Some(plan.duration),
                outcome: plan.outcome,
                log: plan.log,
            },
            ctx.now,
            ctx.epoch,
        ),
    }
}

/// `overrule-shutdown`: end running shutdown tasks of the guest now.
fn abort_shutdowns(state: &mut State, vmid: u32, now: Duration) {
    let id = vmid.to_string();
    for t in state
        .tasks
        .values_mut()
        .filter(|t| !t.done && t.id == id && matches!(t.kind.as_str(), "qmshutdown" | "vzshutdown"))
    {
        t.outcome = Err("interrupted by signal".into());
        t.finish();
    }
    if let Some(g) = state.guests.get_mut(&vmid)
        && g.busy_until.is_some_and(|b| b > now)
    {
        g.busy_until = None;
    }
}

fn vm_plan(
    state: &State,
    ctx: &Ctx,
    vmid: u32,
    action: PowerAction,
    params: &Params,
) -> Result<Plan, ApiError> {
    let t = &state.settings.options.tasks;
    let fail = secs(t.fail_secs);
    let node = &ctx.node;
    let guest = state.guest_on(node, vmid, GuestKind::Qemu);
    let skiplock = params.bool("skiplock").unwrap_or(false) && ctx.is_root();
    let force = params.bool("forceStop").unwrap_or(false);
    if action == PowerAction::Start && !state.quorate(node) {
        return Err(ApiError::failed("cluster not ready - no quorum?"));
    }
    if action == PowerAction::Shutdown
        && let Some(g) = guest
        && matches!(g.qmpstatus(), "paused" | "prelaunch" | "suspended")
    {
        if !force {
            return Err(ApiError::failed("VM is paused - cannot shutdown"));
        }
        return Ok(Plan::ok(
            "qmshutdown",
            secs(t.stop_secs),
            Some((secs(t.stop_secs), false)),
        ));
    }
    let Some(g) = guest else {
        let msg = match action {
            PowerAction::Start => Guest::missing_config(GuestKind::Qemu, node, vmid),
            _ => format!("unable to find configuration file for VM {vmid} on node '{node}'"),
        };
        return Ok(Plan::fail(
            action.task_type(GuestKind::Qemu, false),
            fail,
            msg,
        ));
    };
    if g.ha {
        return Ok(ha_plan(g, action, t.ha_task_secs, t.ha_apply_secs));
    }
    let kind = action.task_type(GuestKind::Qemu, false);
    let lock = g.lock().filter(|_| !skiplock);
    match action {
        PowerAction::Start => {
            if g.is_template() {
                return Ok(Plan::fail(
                    kind,
                    fail,
                    "you can't start a vm if it's a template".into(),
                ));
            }
            match lock.as_deref() {
                Some("backup") if g.is_running() => return Ok(Plan::ok(kind, fail, None)),
                Some("suspended") | None => {}
                Some(l) => return Ok(Plan::fail(kind, fail, format!("VM is locked ({l})"))),
            }
            if g.is_running() {
                return Ok(Plan::fail(kind, fail, format!("VM {vmid} already running")));
            }
            let d = secs(t.start_secs);
            Ok(Plan::ok(kind, d, Some((d, true))))
        }
        _ if !g.is_running() => Ok(Plan::ok(kind, fail, None)),
        _ if lock.is_some() => Ok(Plan::fail(
            kind,
            fail,
            format!("VM is locked ({})", lock.unwrap_or_default()),
        )),
        PowerAction::Stop => {
            let d = secs(t.stop_secs);
            Ok(Plan::ok(kind, d, Some((d, false))))
        }
        PowerAction::Shutdown => {
            // A silent agent costs the 3 s ping before ACPI is used.
            let mut d = secs(t.shutdown_secs);
            if g.agent_channel == AgentChannel::Enabled && !agent::answers_ping(g, ctx.now) {
                d += secs(state.settings.options.agent_ping_timeout_secs);
            }
            let timeout = shutdown_timeout(g, params, t.shutdown_timeout_secs);
            Ok(shutdown_plan(
                kind,
                g.shutdown,
                d,
                timeout,
                force,
                secs(t.stop_secs),
                "VM quit/powerdown failed - got timeout",
            ))
        }
    }
}

/// `timeout` param, else the `down=` of `startup`, else the default (60 s).
fn shutdown_timeout(g: &Guest, params: &Params, default: f64) -> Duration {
    if let Some(t) = params.int("timeout") {
        return Duration::from_secs(t.max(0) as u64);
    }
    let down = g.config.get("startup").map(value_text).and_then(|s| {
        s.split(',')
            .find_map(|p| p.strip_prefix("down=").and_then(|d| d.parse::<u64>().ok()))
    });
    down.map(Duration::from_secs)
        .unwrap_or_else(|| secs(default))
}

fn shutdown_plan(
    kind: &'static str,
    behaviour: ShutdownBehaviour,
    needed: Duration,
    timeout: Duration,
    force: bool,
    kill: Duration,
    timeout_error: &str,
) -> Plan {
    if behaviour == ShutdownBehaviour::Clean && needed <= timeout {
        return Plan::ok(kind, needed, Some((needed, false)));
    }
    if force {
        let d = timeout + kill;
        let mut p = Plan::ok(kind, d, Some((d, false)));
        p.log
            .push("VM still running - terminating now with SIGTERM".into());
        return p;
    }
    let mut p = Plan::fail(kind, timeout, timeout_error.into());
    p.holds_lock = true;
    p
}

fn ha_plan(g: &Guest, action: PowerAction, task_secs: f64, apply_secs: f64) -> Plan {
    let kind = action.task_type(g.kind, true);
    let wants_running = action == PowerAction::Start;
    let effect = (wants_running != g.is_running()).then_some((secs(apply_secs), wants_running));
    let mut p = Plan::ok(kind, secs(task_secs), effect);
    p.holds_lock = false;
    p.log.push(format!(
        "Requesting HA {} for VM {}",
        if wants_running { "start" } else { "stop" },
        g.vmid
    ));
    p
}

fn ct_plan(
    state: &State,
    ctx: &Ctx,
    vmid: u32,
    action: PowerAction,
    params: &Params,
) -> Result<Plan, ApiError> {
    let t = &state.settings.options.tasks;
    let fail = secs(t.fail_secs);
    let node = &ctx.node;
    let guest = state.guest_on(node, vmid, GuestKind::Lxc);
    let running = guest.is_some_and(Guest::is_running);
    let kind = action.task_type(GuestKind::Lxc, false);
    if action == PowerAction::Start {
        if running {
            return Err(ApiError::failed(format!("CT {vmid} already running")));
        }
        if !state.quorate(node) {
            return Err(ApiError::failed("cluster not ready - no quorum?"));
        }
    } else if !running {
        return Err(ApiError::failed(format!("CT {vmid} not running")));
    }
    let Some(g) = guest else {
        return Ok(Plan::fail(
            kind,
            fail,
            Guest::missing_config(GuestKind::Lxc, node, vmid),
        ));
    };
    if g.ha {
        return Ok(ha_plan(g, action, t.ha_task_secs, t.ha_apply_secs));
    }
    let skiplock = params.bool("skiplock").unwrap_or(false) && ctx.is_root();
    if let Some(l) = g.lock().filter(|_| !skiplock) {
        return Ok(Plan::fail(kind, fail, format!("CT is locked ({l})")));
    }
    match action {
        PowerAction::Start => {
            if g.is_template() {
                return Ok(Plan::fail(
                    kind,
                    fail,
                    "you can't start a CT if it's a template".into(),
                ));
            }
            let d = secs(t.start_secs);
            Ok(Plan::ok(kind, d, Some((d, true))))
        }
        PowerAction::Stop => {
            let d = secs(t.stop_secs);
            Ok(Plan::ok(kind, d, Some((d, false))))
        }
        PowerAction::Shutdown => {
            let timeout = match params.int("timeout") {
                Some(t) => Duration::from_secs(t.max(0) as u64),
                None => secs(t.shutdown_timeout_secs),
            };
            let force = params.bool("forceStop").unwrap_or(false);
            Ok(shutdown_plan(
                kind,
                g.shutdown,
                secs(t.shutdown_secs),
                timeout,
                force,
                secs(t.stop_secs),
                "container did not stop",
            ))
        }
    }
}
