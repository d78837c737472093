//! Signals become typed control messages on a channel, so the loop
//! `select!`s on them like on its timer: `SIGHUP` → [`Control::Reload`],
//! `SIGUSR1` → [`Control::SyncNow`], `SIGTERM`/`SIGINT` →
//! [`Control::Shutdown`]. A second `SIGTERM`/`SIGINT` exits at once.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Re-read the configuration file and the secrets.
    Reload,
    /// Run a cycle now (and forget back-off pauses).
    SyncNow,
    /// Stop taking new work, finish what is in flight, save, log out, exit.
    Shutdown,
}

/// Exit status when a second stop signal cuts the graceful shutdown short.
pub const FORCED_EXIT: i32 = 130;

/// Installs the signal handlers and forwards signals as [`Control`]
/// messages until the receiver is gone. Fails only when a handler cannot be
/// installed.
pub fn forward_signals(
    tx: mpsc::UnboundedSender<Control>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::spawn(async move {
        let mut stopping = false;
        loop {
            let message = tokio::select! {
                Some(()) = hup.recv() => Control::Reload,
                Some(()) = usr1.recv() => Control::SyncNow,
                Some(()) = term.recv() => Control::Shutdown,
                Some(()) = int.recv() => Control::Shutdown,
                else => return,
            };
            if message == Control::Shutdown {
                if stopping {
                    tracing::warn!("second stop signal: exiting at once");
                    std::process::exit(FORCED_EXIT);
                }
                stopping = true;
            }
            // Unbounded: the listener never waits for a busy loop, so a
            // second stop signal is always seen.
            if tx.send(message).is_err() {
                return;
            }
        }
    }))
}
