//! The systemd notify protocol (`sd_notify(3)`): `READY=1`, `STATUS=`,
//! `WATCHDOG=1`, `RELOADING=1` with `MONOTONIC_USEC=`, `STOPPING=1`. The
//! messages are formatted by the `sd-notify` crate; they are sent here to an
//! explicit socket so tests can point a [`Notifier`] at their own datagram
//! socket without touching the process environment. Without
//! `$NOTIFY_SOCKET` every call is a no-op.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::Duration;

use sd_notify::NotifyState;

/// Where notifications go.
#[derive(Debug, Clone)]
enum Target {
    Path(PathBuf),
    /// Linux abstract socket (`@name` in `$NOTIFY_SOCKET`).
    Abstract(Vec<u8>),
}

/// Sends notifications to the service manager; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    target: Option<Target>,
}

impl Notifier {
    /// The socket systemd named in `$NOTIFY_SOCKET`, if any.
    pub fn from_env() -> Notifier {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(v) if !v.is_empty() => Notifier::to_socket(v),
            _ => Notifier::disabled(),
        }
    }

    /// Notifications to `socket` (a path, or `@name` for an abstract socket).
    pub fn to_socket(socket: impl Into<std::ffi::OsString>) -> Notifier {
        let socket = socket.into();
        let bytes = socket.as_encoded_bytes();
        let target = match bytes.strip_prefix(b"@") {
            Some(name) => Target::Abstract(name.to_vec()),
            None => Target::Path(PathBuf::from(socket)),
        };
        Notifier {
            target: Some(target),
        }
    }

    /// Sends nothing (not under systemd).
    pub fn disabled() -> Notifier {
        Notifier { target: None }
    }

    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// The service is up: configuration loaded, first cycle started.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(&one_line(status))]);
    }

    /// One line for `systemctl status`.
    pub fn status(&self, line: &str) {
        self.send(&[NotifyState::Status(&one_line(line))]);
    }

    /// The loop is making progress.
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// A reload begins; follow with [`Notifier::ready`] when it is over.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    /// Shutdown has begun.
    pub fn stopping(&self, status: &str) {
        self.send(&[
            NotifyState::Stopping,
            NotifyState::Status(&one_line(status)),
        ]);
    }

    /// Best effort: a lost notification must never stop the daemon.
    fn send(&self, states: &[NotifyState<'_>]) {
        let Some(target) = &self.target else {
            return;
        };
        if let Err(e) = send_to(target, states) {
            tracing::debug!(error = %e, "sd_notify failed");
        }
    }
}

fn send_to(target: &Target, states: &[NotifyState<'_>]) -> io::Result<()> {
    let mut message = String::new();
    for state in states {
        message.push_str(&state.to_string());
        message.push('\n');
    }
    let socket = UnixDatagram::unbound()?;
    let addr = match target {
        Target::Path(path) => SocketAddr::from_pathname(path)?,
        Target::Abstract(name) => SocketAddr::from_abstract_name(name)?,
    };
    let sent = socket.send_to_addr(message.as_bytes(), &addr)?;
    if sent != message.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "incomplete write"));
    }
    Ok(())
}

/// `STATUS=` takes one line.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when the
/// watchdog is on for this process.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|timeout| timeout / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket() -> (tempfile::TempDir, UnixDatagram, Notifier) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        (dir, server, Notifier::to_socket(path))
    }

    fn receive(server: &UnixDatagram) -> String {
        let mut buf = vec![0u8; 4096];
        let n = server.recv(&mut buf).expect("a notification arrives");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn each_call_sends_one_datagram_in_the_protocol_format() {
        let (_dir, server, notifier) = socket();
        assert!(notifier.is_enabled());
        notifier.ready("first cycle running");
        assert_eq!(receive(&server), "READY=1\nSTATUS=first cycle running\n");
        notifier.status("cycle 2 ok\nwith a second line");
        assert_eq!(receive(&server), "STATUS=cycle 2 ok with a second line\n");
        notifier.watchdog();
        assert_eq!(receive(&server), "WATCHDOG=1\n");
        notifier.stopping("stopping");
        assert_eq!(receive(&server), "STOPPING=1\nSTATUS=stopping\n");
    }

    #[test]
    fn reloading_carries_the_monotonic_clock() {
        let (_dir, server, notifier) = socket();
        notifier.reloading();
        let msg = receive(&server);
        let mut lines = msg.lines();
        assert_eq!(lines.next(), Some("RELOADING=1"));
        let usec = lines
            .next()
            .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
            .expect("MONOTONIC_USEC follows");
        assert!(usec.parse::<u64>().unwrap() > 0, "{msg}");
    }

    #[test]
    fn abstract_socket_names_are_understood() {
        let name = format!("pve-guac-sync-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        Notifier::to_socket(format!("@{name}")).watchdog();
        assert_eq!(receive(&server), "WATCHDOG=1\n");
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_nothing_fails() {
        let notifier = Notifier::disabled();
        assert!(!notifier.is_enabled());
        notifier.ready("x");
        notifier.status("x");
        notifier.watchdog();
        notifier.reloading();
        notifier.stopping("x");
        // A socket that does not exist is not an error either.
        Notifier::to_socket("/nonexistent/notify.sock").ready("x");
    }
}
