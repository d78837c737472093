//! Worker tasks (§7.3, §7.4): UPIDs, task status and task logs.

use std::time::Duration;

use serde_json::{Value, json};

use super::acl::Identity;
use super::errors::ApiError;
use super::state::{Event, State};

/// One worker task. Its outcome is decided when it is created; it becomes
/// visible (status `stopped`, `exitstatus`) when its finish event is due.
#[derive(Debug, Clone)]
pub struct Task {
    pub upid: String,
    pub node: String,
    pub pid: u32,
    pub pstart: u32,
    pub starttime: u64,
    /// `qmstart`, `vzstop`, …
    pub kind: String,
    pub id: String,
    /// Owning user `user@realm`.
    pub user: String,
    /// Token name for token tasks.
    pub token: Option<String>,
    pub outcome: Result<(), String>,
    pub done: bool,
    pub log: Vec<String>,
}

impl Task {
    pub fn authid(&self) -> String {
        match &self.token {
            Some(t) => format!("{}!{t}", self.user),
            None => self.user.clone(),
        }
    }

    /// `OK` or the error text without trailing newline.
    pub fn exitstatus(&self) -> String {
        match &self.outcome {
            Ok(()) => "OK".into(),
            Err(e) => e.trim_end_matches('\n').to_string(),
        }
    }

    pub fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let last = match &self.outcome {
            Ok(()) => "TASK OK".to_string(),
            Err(e) => format!("TASK ERROR: {}", e.trim_end_matches('\n')),
        };
        self.log.push(last);
    }
}

/// What a new task is: its type, id, duration and outcome.
pub struct TaskSpec {
    pub kind: &'static str,
    pub id: String,
    /// `None`: the end is scheduled later (a task waiting for a lock).
    pub duration: Option<Duration>,
    pub outcome: Result<(), String>,
    pub log: Vec<String>,
}

impl State {
    /// Create a task on `node` owned by `who`, finishing after its duration.
    pub fn create_task(
        &mut self,
        node: &str,
        who: &Identity,
        spec: TaskSpec,
        now: Duration,
        epoch: u64,
    ) -> String {
        self.next_pid += 1 + (self.next_pid % 7);
        let pid = self.next_pid;
        let pstart = 0x01A2_B3C4u32.wrapping_add((now.as_millis() / 10) as u32);
        let user = who.owner().to_string();
        let upid = format!(
            "UPID:{node}:{pid:08X}:{pstart:08X}:{epoch:08X}:{}:{}:{}:",
            spec.kind,
            spec.id,
            who.authid()
        );
        let task = Task {
            upid: upid.clone(),
            node: node.to_string(),
            pid,
            pstart,
            starttime: epoch,
            kind: spec.kind.to_string(),
            id: spec.id,
            user,
            token: who.token_name().map(str::to_string),
            outcome: spec.outcome,
            done: false,
            log: spec.log,
        };
        self.tasks.insert(upid.clone(), task);
        self.task_order.push(upid.clone());
        if let Some(d) = spec.duration {
            self.schedule(now + d, Event::FinishTask { upid: upid.clone() });
        }
        upid
    }
}

/// The parts of a well-formed UPID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpidParts {
    pub node: String,
    pub kind: String,
    pub id: String,
    pub user: String,
}

/// Parse `UPID:node:pid:pstart:starttime:type:id:user:`.
pub fn parse_upid(s: &str) -> Option<UpidParts> {
    let f: Vec<&str> = s.split(':').collect();
    if f.len() != 9 || f[0] != "UPID" || !f[8].is_empty() {
        return None;
    }
    let hex = |x: &str, lens: &[usize]| {
        lens.contains(&x.len()) && x.bytes().all(|b| b.is_ascii_hexdigit())
    };
    let node_ok = !f[1].is_empty() && f[1].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let ok = node_ok
        && hex(f[2], &[8])
        && hex(f[3], &[8, 9])
        && hex(f[4], &[8])
        && !f[5].is_empty()
        && !f[7].is_empty()
        && !f[5..8].iter().any(|x| x.contains(char::is_whitespace));
    ok.then(|| UpidParts {
        node: f[1].into(),
        kind: f[5].into(),
        id: f[6].into(),
        user: f[7].into(),
    })
}

/// May `who` read this task? Owners may; others need Sys.Audit on the node.
fn check_task_access(
    state: &State,
    who: &Identity,
    task: &Task,
    node: &str,
) -> Result<(), ApiError> {
    let own = task.authid() == who.authid() || matches!(who, Identity::User(u) if *u == task.user);
    let path = format!("/nodes/{node}");
    if own || state.access.privs_on(who, &path, None).has("Sys.Audit") {
        Ok(())
    } else {
        Err(ApiError::forbidden(&path, &["Sys.Audit"]))
    }
}

/// `GET /nodes/{node}/tasks/{upid}/status`.
pub fn task_status(
    state: &State,
    who: &Identity,
    node: &str,
    upid: &str,
) -> Result<Value, ApiError> {
    if parse_upid(upid).is_none() {
        return Err(ApiError::param("upid", "unable to parse worker upid"));
    }
    let Some(task) = state.tasks.get(upid).filter(|t| t.node == node) else {
        return Err(ApiError::param("upid", "no such task"));
    };
    check_task_access(state, who, task, node)?;
    let mut v = json!({
        "upid": task.upid, "node": task.node, "pid": task.pid, "pstart": task.pstart,
        "starttime": task.starttime, "type": task.kind, "id": task.id, "user": task.user,
        "status": if task.done { "stopped" } else { "running" },
    });
    if let Some(t) = &task.token {
        v["tokenid"] = json!(t);
    }
    if task.done {
        v["exitstatus"] = json!(task.exitstatus());
    }
    Ok(v)
}

/// `GET /nodes/{node}/tasks/{upid}/log`: lines and the `total` count.
pub fn task_log(
    state: &State,
    who: &Identity,
    node: &str,
    upid: &str,
    start: usize,
    limit: usize,
) -> Result<(Value, usize), ApiError> {
    if parse_upid(upid).is_none() {
        return Err(ApiError::param("upid", "unable to parse worker upid"));
    }
    let Some(task) = state.tasks.get(upid).filter(|t| t.node == node) else {
        let lines = json!([{"n": 1, "t": "unable to open file - No such file or directory"}]);
        return Ok((lines, 1));
    };
    check_task_access(state, who, task, node)?;
    let lines: Vec<Value> = task
        .log
        .iter()
        .enumerate()
        .skip(start)
        .take(limit)
        .map(|(i, t)| json!({"n": i + 1, "t": t}))
        .collect();
    Ok((Value::Array(lines), task.log.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upid_parsing() {
        let u = "UPID:pve1:0001E240:01A2B3C4:67A1B2C3:qmstart:100:svc@pve!daemon:";
        let p = parse_upid(u).unwrap();
        assert_eq!(p.kind, "qmstart");
        assert_eq!(p.user, "svc@pve!daemon");
        assert!(parse_upid("UPID:pve1:xyz").is_none());
        assert!(parse_upid("UPID:pve1:0001E240:01A2B3C4:67A1B2C3:qmstart:100:svc@pve").is_none());
    }
}
