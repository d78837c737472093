//! Guest configuration (§6): key schema and privileges, GET, and the
//! PUT/POST write paths with their check orders.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::context::Ctx;
use super::errors::ApiError;
use super::outcome::Outcome;
use super::params::{INT, Kind, Params, Raw, STR};
use super::seed::GuestKind;
use super::state::{Guest, State, value_text};
use super::tasks::TaskSpec;
use super::values::{DescriptionChange, normalise_net, store_description};

/// Parameters of the write endpoints that are not config keys.
const WRITE_META: &[&str] = &[
    "node",
    "vmid",
    "digest",
    "delete",
    "revert",
    "skiplock",
    "background_delay",
];

/// The schema type and the privilege of one config key.
pub fn key_spec(kind: GuestKind, key: &str) -> Option<(Kind, &'static str)> {
    const OPT: &str = "VM.Config.Options";
    const MEM: &str = "VM.Config.Memory";
    const CPU: &str = "VM.Config.CPU";
    const NET: &str = "VM.Config.Network";
    const DISK: &str = "VM.Config.Disk";
    const HW: &str = "VM.Config.HWType";
    let numbered = |prefix: &str, max: u32| -> bool {
        key.strip_prefix(prefix).is_some_and(|n| {
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && (n == "0" || !n.starts_with('0'))
                && n.parse::<u32>().is_ok_and(|x| x <= max)
        })
    };
    let bool_ = Kind::Bool;
    let descr = Kind::Str {
        max_len: Some(8192),
    };
    let spec = match (kind, key) {
        (_, "description") => (descr, OPT),
        (_, "tags" | "ostype" | "startup" | "hookscript") => (STR, OPT),
        (_, "onboot" | "protection" | "template") => (bool_, OPT),
        (_, "cores" | "cpuunits") => (
            Kind::Int {
                min: Some(1),
                max: None,
            },
            CPU,
        ),
        (_, "cpulimit") => (STR, CPU),
        (_, _) if numbered("net", 31) => (STR, NET),
        (GuestKind::Qemu, "name" | "agent" | "vmgenid") => (STR, OPT),
        (GuestKind::Qemu, "acpi" | "tablet" | "localtime") => (bool_, OPT),
        (GuestKind::Qemu, "memory") => (STR, MEM),
        (GuestKind::Qemu, "balloon" | "shares") => (INT, MEM),
        (GuestKind::Qemu, "sockets" | "vcpus") => (
            Kind::Int {
                min: Some(1),
                max: None,
            },
            CPU,
        ),
        (GuestKind::Qemu, "cpu") => (STR, CPU),
        (GuestKind::Qemu, "numa") => (bool_, CPU),
        (GuestKind::Qemu, "scsihw" | "vga" | "machine" | "bios" | "smbios1") => (STR, HW),
        (GuestKind::Qemu, "boot" | "efidisk0" | "tpmstate0") => (STR, DISK),
        (GuestKind::Qemu, _)
            if numbered("scsi", 30)
                || numbered("sata", 5)
                || numbered("ide", 3)
                || numbered("virtio", 15) =>
        {
            (STR, DISK)
        }
        (GuestKind::Lxc, "hostname" | "arch" | "features" | "timezone" | "cmode") => (STR, OPT),
        (GuestKind::Lxc, "console") => (bool_, OPT),
        (GuestKind::Lxc, "tty") => (INT, OPT),
        (GuestKind::Lxc, "memory" | "swap") => (INT, MEM),
        (GuestKind::Lxc, "nameserver" | "searchdomain") => (STR, NET),
        (GuestKind::Lxc, "rootfs") => (STR, DISK),
        (GuestKind::Lxc, _) if numbered("mp", 255) => (STR, DISK),
        _ => return None,
    };
    Some(spec)
}

/// Schema of the write endpoints (besides the config keys).
pub fn write_schema(kind: GuestKind, post: bool) -> Vec<(&'static str, Kind, bool)> {
    let mut s = vec![
        ("node", Kind::Node, true),
        ("vmid", Kind::Vmid, true),
        ("digest", Kind::Str { max_len: Some(40) }, false),
        ("delete", STR, false),
        ("revert", STR, false),
    ];
    if kind == GuestKind::Qemu {
        s.push(("skiplock", Kind::Bool, false));
        s.push(("force", Kind::Bool, false));
    }
    if post {
        s.push((
            "background_delay",
            Kind::Int {
                min: Some(1),
                max: Some(30),
            },
            false,
        ));
    }
    s
}

/// Keys whose change on a running VM becomes pending (not hot-pluggable).
fn is_pending_key(key: &str) -> bool {
    matches!(
        key,
        "agent"
            | "cpu"
            | "machine"
            | "bios"
            | "vga"
            | "ostype"
            | "scsihw"
            | "memory"
            | "sockets"
            | "cores"
            | "numa"
            | "vcpus"
            | "balloon"
    )
}

/// A validated config write.
#[derive(Debug, Clone, Default)]
pub struct ConfigWrite {
    pub set: Vec<(String, Value)>,
    pub delete: Vec<String>,
    pub revert: Vec<String>,
}

impl ConfigWrite {
    fn is_empty(&self) -> bool {
        self.set.is_empty() && self.delete.is_empty() && self.revert.is_empty()
    }

    fn keys(&self) -> impl Iterator<Item = &String> {
        self.set.iter().map(|(k, _)| k).chain(self.delete.iter())
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split([',', ';', ' '])
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// Build the write from validated params. Values that fail normalisation
/// (NIC strings) are kept as given and reported as the second element, so
/// each endpoint can raise them at its own point of the check order.
fn build_write(kind: GuestKind, params: &Params) -> (ConfigWrite, Option<ApiError>) {
    let mut w = ConfigWrite::default();
    let mut errors = BTreeMap::new();
    for key in params.keys() {
        if WRITE_META.contains(&key.as_str()) || key == "force" {
            continue;
        }
        let Some((k, _)) = key_spec(kind, key) else {
            continue;
        };
        let value = match (k, params.raw(key)) {
            (Kind::Bool, _) => json!(u8::from(params.bool(key).unwrap_or(false))),
            (Kind::Int { .. }, _) => json!(params.int(key).unwrap_or(0)),
            (_, Some(Raw::Str(s))) if key.starts_with("net") => match normalise_net(kind, s) {
                Ok(n) => json!(n),
                Err(e) => {
                    errors.insert(key.clone(), e);
                    json!(s)
                }
            },
            _ => json!(params.str(key).unwrap_or_default()),
        };
        w.set.push((key.clone(), value));
    }
    w.delete = params
        .str("delete")
        .map(|s| split_list(&s))
        .unwrap_or_default();
    w.revert = params
        .str("revert")
        .map(|s| split_list(&s))
        .unwrap_or_default();
    let error = (!errors.is_empty()).then_some(ApiError::Param(errors));
    (w, error)
}

/// 400s of `delete`/`revert`: unknown keys, set-and-delete.
fn check_delete(kind: GuestKind, w: &ConfigWrite) -> Result<(), ApiError> {
    for k in &w.delete {
        if key_spec(kind, k).is_none() {
            return Err(ApiError::param("delete", format!("unknown option '{k}'")));
        }
        if w.set.iter().any(|(s, _)| s == k) {
            return Err(ApiError::param(
                "delete",
                format!("you can't use '-{k}' and -delete {k}' at the same time"),
            ));
        }
    }
    for k in &w.revert {
        if key_spec(kind, k).is_none() {
            return Err(ApiError::param("revert", format!("unknown option '{k}'")));
        }
    }
    Ok(())
}

fn check_key_privs(
    state: &State,
    ctx: &Ctx,
    kind: GuestKind,
    vmid: &str,
    w: &ConfigWrite,
) -> Result<(), ApiError> {
    let path = format!("/vms/{vmid}");
    let pool = vmid
        .parse::<u32>()
        .ok()
        .and_then(|v| state.guests.get(&v))
        .and_then(|g| g.pool.as_deref());
    let privs = state.access.privs_on(&ctx.who, &path, pool);
    for key in w.keys() {
        if let Some((_, p)) = key_spec(kind, key)
            && !privs.has(p)
        {
            return Err(ApiError::forbidden(&path, &[p]));
        }
    }
    Ok(())
}

/// Apply a write to a guest: description rules, pending for running VMs.
pub fn apply_write(g: &mut Guest, w: &ConfigWrite) {
    let pending_mode = g.is_vm() && g.is_running();
    for k in &w.revert {
        g.pending.remove(k);
    }
    for (k, v) in &w.set {
        let v = if k == "description" {
            match store_description(g.kind, v.as_str().unwrap_or_default()) {
                DescriptionChange::Unchanged => continue,
                DescriptionChange::Remove => {
                    g.config.remove(k);
                    continue;
                }
                DescriptionChange::Set(s) => json!(s),
            }
        } else {
            v.clone()
        };
        if pending_mode && is_pending_key(k) {
            g.pending.insert(k.clone(), Some(v));
        } else {
            g.pending.remove(k);
            g.config.insert(k.clone(), v);
        }
    }
    for k in &w.delete {
        if pending_mode && is_pending_key(k) {
            if g.config.contains_key(k) {
                g.pending.insert(k.clone(), None);
            } else {
                g.pending.remove(k);
            }
        } else {
            g.config.remove(k);
            g.pending.remove(k);
        }
    }
    g.update_digest();
}

/// A human edit of the notes (test API and digest races).
pub fn human_set_notes(g: &mut Guest, notes: &str) {
    apply_write(
        g,
        &ConfigWrite {
            set: vec![("description".into(), json!(notes))],
            ..ConfigWrite::default()
        },
    );
}

/// `GET /nodes/N/{qemu,lxc}/V/config`.
pub fn get_config(
    state: &State,
    ctx: &Ctx,
    kind: GuestKind,
    vmid: u32,
    params: &Params,
) -> Result<Value, ApiError> {
    let Some(g) = state.guest_on(&ctx.node, vmid, kind) else {
        return Err(ApiError::failed(Guest::missing_config(
            kind, &ctx.node, vmid,
        )));
    };
    if let Some(snap) = params.str("snapshot") {
        return Err(ApiError::failed(format!(
            "snapshot '{snap}' does not exist"
        )));
    }
    let current = params.bool("current").unwrap_or(false);
    let config = if current {
        g.config.clone()
    } else {
        g.config_with_pending()
    };
    let mut out = serde_json::Map::new();
    for (k, v) in config {
        let v = if k == "description" && state.settings.version.decodes_percent_in_notes() {
            let text = value_text(&v);
            json!(percent_encoding::percent_decode_str(&text).decode_utf8_lossy())
        } else {
            v
        };
        out.insert(k, v);
    }
    out.insert("digest".into(), json!(g.digest));
    Ok(Value::Object(out))
}

fn locked_error(kind: GuestKind, lock: &str) -> ApiError {
    match kind {
        GuestKind::Qemu => ApiError::failed(format!("VM is locked ({lock})")),
        GuestKind::Lxc => ApiError::failed(format!("CT is locked ({lock})")),
    }
}

pub fn lock_timeout_error(kind: GuestKind, vmid: u32) -> String {
    match kind {
        GuestKind::Qemu => {
            format!("can't lock file '/var/lock/qemu-server/lock-{vmid}.conf' - got timeout")
        }
        GuestKind::Lxc => {
            format!("can't lock file '/run/lock/lxc/pve-config-{vmid}.lock' - got timeout")
        }
    }
}

/// A pending human edit lands just before this write looks at the config.
fn run_digest_race(state: &mut State, vmid: u32) {
    if let Some(notes) = state.digest_races.remove(&vmid)
        && let Some(g) = state.guests.get_mut(&vmid)
    {
        human_set_notes(g, &notes);
    }
}

/// `PUT` (sync) and `POST` (async) `/nodes/N/qemu/V/config`, §6.4 order.
pub fn write_vm_config(
    state: &mut State,
    ctx: &Ctx,
    vmid: u32,
    params: &Params,
    post: bool,
) -> Outcome {
    let kind = GuestKind::Qemu;
    let skiplock = params.bool("skiplock").unwrap_or(false);
    if params.has("skiplock") && !ctx.is_root() {
        return ApiError::param("skiplock", "Only root may use this option.").into();
    }
    // VM value formats are part of the schema check (first).
    let (w, value_error) = build_write(kind, params);
    if let Some(e) = value_error {
        return e.into();
    }
    if w.is_empty() {
        return ApiError::failed("no options specified").into();
    }
    if let Err(e) = check_delete(kind, &w) {
        return e.into();
    }
    if let Err(e) = check_key_privs(state, ctx, kind, &vmid.to_string(), &w) {
        return e.into();
    }
    run_digest_race(state, vmid);
    let Some(g) = state.guest_on(&ctx.node, vmid, kind) else {
        return ApiError::failed(Guest::missing_config(kind, &ctx.node, vmid)).into();
    };
    // Like the real server, an empty (or `0`) digest checks nothing.
    if let Some(d) = params.str("digest")
        && !d.is_empty()
        && d != "0"
        && d != g.digest
    {
        return ApiError::failed("checksum mismatch (file change by other user?)").into();
    }
    if let Some(lock) = g.lock()
        && !skiplock
    {
        return locked_error(kind, &lock).into();
    }
    if !state.quorate(&ctx.node) {
        return ApiError::failed("cluster not ready - no quorum?").into();
    }
    let busy_until = g.busy_until.filter(|b| *b > ctx.now);
    if !post {
        if busy_until.is_some() {
            return if ctx.lock_timed_out {
                ApiError::failed(lock_timeout_error(kind, vmid)).into()
            } else {
                Outcome::Busy
            };
        }
        let g = state.guests.get_mut(&vmid).expect("checked above");
        apply_write(g, &w);
        *state.config_writes.entry(vmid).or_default() += 1;
        return Outcome::data(Value::Null);
    }
    // POST: the task does the write (after waiting for the config lock).
    let opts = &state.settings.options;
    let task_secs = Duration::from_secs_f64(opts.tasks.config_secs);
    let lock_timeout = Duration::from_secs_f64(opts.config_lock_timeout_secs);
    let (outcome, duration, apply_at) = match busy_until {
        Some(b) if b > ctx.now + lock_timeout => {
            (Err(lock_timeout_error(kind, vmid)), lock_timeout, None)
        }
        Some(b) => (Ok(()), b - ctx.now + task_secs, Some(b)),
        None => (Ok(()), task_secs, Some(ctx.now)),
    };
    let upid = state.create_task(
        &ctx.node,
        &ctx.who,
        TaskSpec {
            kind: "qmconfig",
            id: vmid.to_string(),
            duration: Some(duration),
            outcome,
            log: vec![format!("update VM {vmid}: {}", describe_write(&w))],
        },
        ctx.now,
        ctx.epoch,
    );
    if let Some(at) = apply_at {
        if at <= ctx.now {
            let g = state.guests.get_mut(&vmid).expect("checked above");
            apply_write(g, &w);
            *state.config_writes.entry(vmid).or_default() += 1;
        } else {
            state.schedule(at, super::state::Event::ApplyConfig { vmid, write: w });
        }
    }
    match params.int("background_delay") {
        Some(secs) => Outcome::AwaitTask {
            upid,
            vmid,
            max: Duration::from_secs(secs.max(0) as u64),
        },
        None => Outcome::data(json!(upid)),
    }
}

/// Task log line: the keys written, never their values (notes may hold
/// credentials).
fn describe_write(w: &ConfigWrite) -> String {
    let mut parts: Vec<String> = w
        .set
        .iter()
        .map(|(k, _)| format!("-{k} <redacted>"))
        .collect();
    if !w.delete.is_empty() {
        parts.push(format!("-delete {}", w.delete.join(",")));
    }
    parts.join(" ")
}

/// `PUT /nodes/N/lxc/V/config`: the CT order (lock before digest, 403
/// after digest).
pub fn write_ct_config(state: &mut State, ctx: &Ctx, vmid: u32, params: &Params) -> Outcome {
    let kind = GuestKind::Lxc;
    // CT value checks come last, after the checks made under the lock.
    let (w, value_error) = build_write(kind, params);
    if w.is_empty() {
        return ApiError::failed("no options specified").into();
    }
    if state
        .guests
        .get(&vmid)
        .and_then(|g| g.busy_until)
        .is_some_and(|b| b > ctx.now)
    {
        return if ctx.lock_timed_out {
            ApiError::failed(lock_timeout_error(kind, vmid)).into()
        } else {
            Outcome::Busy
        };
    }
    run_digest_race(state, vmid);
    let Some(g) = state.guest_on(&ctx.node, vmid, kind) else {
        return ApiError::failed(Guest::missing_config(kind, &ctx.node, vmid)).into();
    };
    if let Some(lock) = g.lock() {
        return locked_error(kind, &lock).into();
    }
    // Like the real server, an empty (or `0`) digest checks nothing.
    if let Some(d) = params.str("digest")
        && !d.is_empty()
        && d != "0"
        && d != g.digest
    {
        return ApiError::failed(
            "detected modified configuration - file changed by other user? Try again.",
        )
        .into();
    }
    if let Err(e) = check_key_privs(state, ctx, kind, &vmid.to_string(), &w) {
        return e.into();
    }
    if let Err(e) = check_delete(kind, &w) {
        return e.into();
    }
    if let Some(e) = value_error {
        return e.into();
    }
    if !state.quorate(&ctx.node) {
        return ApiError::failed("cluster not ready - no quorum?").into();
    }
    let g = state.guests.get_mut(&vmid).expect("checked above");
    apply_write(g, &w);
    *state.config_writes.entry(vmid).or_default() += 1;
    Outcome::data(Value::Null)
}
