//! A real systemd 252 as PID 1 of a private PID + mount namespace
//! (`tests/systemd/sandbox.sh`), driven with `nsenter … systemctl` and
//! `journalctl`. Every wait is bounded; dropping the [`Sandbox`] kills the
//! namespace's PID 1 with SIGKILL, which ends every process inside.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SYSTEMD: &str = "/lib/systemd/systemd";
/// Upper bound of any single command run inside the namespace.
const COMMAND_TIMEOUT: &str = "60";

/// Why this machine cannot run the test, if it cannot.
pub fn skip_reason() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(str::to_owned));
    if uid.as_deref() != Some("0") {
        return Some("not root: systemd as PID 1 of a namespace needs root".into());
    }
    if !Path::new(SYSTEMD).exists() {
        return Some(format!("no systemd binary at {SYSTEMD}"));
    }
    None
}

/// Set (to anything) by `.ci/package` after `dpkg -i`: the test then runs
/// the unit, sysusers.d and tmpfiles.d files and binary the package
/// installed under /usr instead of the repository's and the build's.
pub const INSTALLED_ENV: &str = "PVE_GUAC_SYNC_E2E_INSTALLED";

/// Whether this run tests the installed package (see [`INSTALLED_ENV`]).
pub fn installed_package() -> bool {
    std::env::var_os(INSTALLED_ENV).is_some()
}

/// What the sandbox installs.
pub struct Install<'a> {
    /// The binary bind-mounted as /usr/bin/pve-guac-sync, with the
    /// repository's `systemd/` files; `None`: the installed package's.
    pub binary: Option<&'a Path>,
    /// The test's drop-in for pve-guac-sync.service.
    pub dropin: &'a str,
    /// `(name, content)` files for /etc/credstore.
    pub credentials: &'a [(&'a str, &'a str)],
}

pub struct Sandbox {
    work: tempfile::TempDir,
    boot: Child,
    pid1: Option<u32>,
}

impl Sandbox {
    /// Boots the namespace and waits until the manager and journald run.
    pub fn boot(install: &Install) -> Sandbox {
        let work = tempfile::Builder::new()
            .prefix("pve-guac-sync-systemd.")
            .tempdir()
            .expect("work directory");
        stage(work.path(), install);
        let log = std::fs::File::create(work.path().join("boot.log")).unwrap();
        let boot = Command::new(repo().join("tests/systemd/sandbox.sh"))
            .arg("boot")
            .arg(work.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("sandbox.sh starts");
        let mut sandbox = Sandbox {
            work,
            boot,
            pid1: None,
        };
        sandbox.pid1 = Some(sandbox.wait_for_pid1());
        sandbox.wait("systemd to accept systemctl", 30, |s| {
            let state = s.systemctl(&["is-system-running"]);
            let text = stdout(&state);
            matches!(text.trim(), "running" | "degraded").then_some(())
        });
        sandbox.wait("journald", 30, |s| {
            (s.show("systemd-journald.service", "ActiveState") == "active").then_some(())
        });
        sandbox
    }

    pub fn work(&self) -> &Path {
        self.work.path()
    }

    /// Runs a command inside the namespace (bounded by `timeout`).
    pub fn exec(&self, args: &[&str]) -> Output {
        let pid1 = self.pid1.expect("booted").to_string();
        Command::new("nsenter")
            .args(["-t", &pid1, "-m", "-p", "--"])
            .args(["timeout", "--kill-after=5", COMMAND_TIMEOUT])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("nsenter runs")
    }

    pub fn systemctl(&self, args: &[&str]) -> Output {
        let mut all = vec!["systemctl", "--no-pager"];
        all.extend_from_slice(args);
        self.exec(&all)
    }

    /// `systemctl ARGS`, which must succeed.
    pub fn systemctl_ok(&self, args: &[&str]) {
        let out = self.systemctl(args);
        assert!(
            out.status.success(),
            "systemctl {args:?}: {}{}\n{}",
            stdout(&out),
            String::from_utf8_lossy(&out.stderr),
            self.diagnostics()
        );
    }

    /// One property of a unit (`systemctl show -p NAME --value`).
    pub fn show(&self, unit: &str, property: &str) -> String {
        let out = self.systemctl(&["show", "-p", property, "--value", unit]);
        stdout(&out).trim_end_matches('\n').to_owned()
    }

    /// Writes `text` as /etc/pve-guac-sync/config.yaml inside the namespace,
    /// root:pve-guac-sync 0640 as README.md tells operators to.
    pub fn install_config(&self, text: &str) {
        let staged = self.work().join("config.yaml");
        std::fs::write(&staged, text).unwrap();
        let out = self.exec(&[
            "install",
            "-m",
            "0640",
            "-o",
            "root",
            "-g",
            "pve-guac-sync",
            staged.to_str().unwrap(),
            "/etc/pve-guac-sync/config.yaml",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The whole journal as `journalctl -o json` prints it, one entry a line.
    pub fn journal_json(&self) -> String {
        let out = self.exec(&["journalctl", "--no-pager", "--all", "-o", "json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout(&out)
    }

    /// The unit's journal as text, for messages and failures.
    pub fn journal_text(&self, unit: &str) -> String {
        stdout(&self.exec(&["journalctl", "--no-pager", "--all", "-u", unit]))
    }

    /// Polls `probe` every 100 ms until it answers or `secs` pass; on timeout
    /// fails with the unit's status and journal.
    pub fn wait<T>(&self, what: &str, secs: u64, mut probe: impl FnMut(&Self) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(value) = probe(self) {
                return value;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {secs} s waiting for {what}\n{}",
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Status and journal of the unit under test plus the boot log.
    pub fn diagnostics(&self) -> String {
        let boot = std::fs::read_to_string(self.work().join("boot.log")).unwrap_or_default();
        if self.pid1.is_none() {
            return format!("--- sandbox boot log ---\n{boot}");
        }
        let status = self.systemctl(&["status", "pve-guac-sync.service"]);
        format!(
            "--- sandbox boot log ---\n{boot}\n--- systemctl status ---\n{}\n--- journal ---\n{}",
            stdout(&status),
            self.journal_text("pve-guac-sync.service")
        )
    }

    /// The host PID of the namespace's PID 1.
    fn wait_for_pid1(&mut self) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.boot.try_wait() {
                panic!("sandbox exited early ({status})\n{}", self.diagnostics());
            }
            if let Some(pid) = self.find_pid1() {
                return pid;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after 30 s waiting for systemd to start\n{}",
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The child unshare forked, once sandbox.sh has set up the mounts and
    /// exec'd systemd.
    fn find_pid1(&self) -> Option<u32> {
        if !self.work().join("ready").exists() {
            return None;
        }
        let unshare = self.boot.id();
        let children =
            std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).ok()?;
        let pid: u32 = children.split_whitespace().next()?.parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == "systemd").then_some(pid)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // PID 1 of a namespace ignores SIGTERM; SIGKILL ends it and, with it,
        // every process of the namespace (the mounts go with the namespace).
        if let Some(pid) = self.pid1 {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = self.boot.kill();
        let _ = self.boot.wait();
    }
}

fn stage(work: &Path, install: &Install) {
    match install.binary {
        Some(binary) => stage_repository_files(work, binary),
        None => {
            for installed in [
                "/usr/bin/pve-guac-sync",
                "/usr/lib/systemd/system/pve-guac-sync.service",
                "/usr/lib/sysusers.d/pve-guac-sync.conf",
                "/usr/lib/tmpfiles.d/pve-guac-sync.conf",
            ] {
                assert!(
                    Path::new(installed).is_file(),
                    "{INSTALLED_ENV} is set but {installed} is not installed"
                );
            }
            std::fs::write(work.join("installed"), "").unwrap();
        }
    }
    std::fs::write(work.join("dropin.conf"), install.dropin).unwrap();
    let store = work.join("credstore");
    std::fs::create_dir(&store).unwrap();
    for (name, content) in install.credentials {
        std::fs::write(store.join(name), content).unwrap();
    }
}

fn stage_repository_files(work: &Path, binary: &Path) {
    let systemd = work.join("repo-systemd");
    for file in [
        "pve-guac-sync.service",
        "sysusers.d/pve-guac-sync.conf",
        "tmpfiles.d/pve-guac-sync.conf",
    ] {
        let to = systemd.join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo().join("systemd").join(file), &to).unwrap();
    }
    // Bind-mounted before systemd starts: ProtectHome= cannot hide the
    // source even when the build lives under /root.
    std::os::unix::fs::symlink(binary, work.join("pve-guac-sync")).unwrap();
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
