//! Logging: journald natively when stderr is connected to the journal
//! (`$JOURNAL_STREAM` names stderr's device and inode) or when
//! `logging.format: journald`; text on a terminal; JSON lines on request.
//!
//! Journal fields are the tracing field names upper-cased, with no prefix:
//! `guest` → `GUEST`, `message_id` → `MESSAGE_ID`. Every change to
//! Guacamole or to guest notes is an audit event (target
//! `pve_guac_sync::audit`) carrying [`AUDIT_MESSAGE_ID`], so
//! `journalctl MESSAGE_ID=…` lists every change; each cycle's summary carries
//! [`CYCLE_MESSAGE_ID`]. No field ever holds a secret: the values are names,
//! identifiers, labels and secret-free error texts.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

use crate::config::LogFormat;

/// `MESSAGE_ID` of every audit event (a write to Guacamole or to notes,
/// done, failed, deferred or dry-run).
pub const AUDIT_MESSAGE_ID: &str = "43a9d67b6eb949b7872d6ecda5574d71";
/// `MESSAGE_ID` of the one summary line each cycle logs.
pub const CYCLE_MESSAGE_ID: &str = "d51216c4373f4c64b211ff92ba8f4ecf";

/// Installs the global subscriber once; later calls are ignored (tests and
/// the demo may call it more than once).
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_env("PVE_GUAC_SYNC_LOG")
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match resolve(format) {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(layer) => registry
                .with(
                    layer
                        .with_syslog_identifier("pve-guac-sync".into())
                        .with_field_prefix(None),
                )
                .try_init(),
            Err(_) => registry.with(text_layer()).try_init(),
        },
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text | LogFormat::Auto => registry.with(text_layer()).try_init(),
    };
}

/// `auto` becomes journald only when stderr really is the journal stream
/// systemd set up (a child that inherited `$JOURNAL_STREAM` but writes
/// elsewhere stays on text).
fn resolve(format: LogFormat) -> LogFormat {
    match format {
        LogFormat::Auto if stderr_is_journal() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        other => other,
    }
}

fn stderr_is_journal() -> bool {
    let Some(var) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    match std::fs::File::from(fd).metadata() {
        Ok(meta) => journal_stream_matches(&var.to_string_lossy(), meta.dev(), meta.ino()),
        Err(_) => false,
    }
}

/// Whether `$JOURNAL_STREAM` (`DEVICE:INODE`, decimal) names this file.
pub fn journal_stream_matches(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.trim().split_once(':') else {
        return false;
    };
    d.parse::<u64>() == Ok(dev) && i.parse::<u64>() == Ok(ino)
}

fn text_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .compact()
}

/// One change (or attempted change) to Guacamole or to a guest's notes.
#[derive(Debug, Default)]
pub struct AuditEvent<'a> {
    /// `create`, `update`, `delete`, `create_group`, `delete_group`,
    /// `rewrite_notes`, …
    pub action: &'a str,
    /// `done`, `failed`, `deferred`, `dry_run`.
    pub result: &'a str,
    pub cycle: u64,
    pub cluster: Option<&'a str>,
    pub vmid: Option<u32>,
    /// `cluster/vmid`.
    pub guest: Option<String>,
    pub identity: Option<String>,
    pub guacamole_id: Option<&'a str>,
    pub group: Option<String>,
    pub reason: &'a str,
    /// Label and text of a failure (secret-free).
    pub error: Option<String>,
    /// The human line (`MESSAGE`).
    pub message: String,
}

/// Logs an audit event: a warning when it failed, else info.
pub fn audit(e: &AuditEvent<'_>) {
    macro_rules! emit {
        ($level:ident) => {
            tracing::$level!(
                target: "pve_guac_sync::audit",
                message_id = AUDIT_MESSAGE_ID,
                action = e.action,
                result = e.result,
                cycle = e.cycle,
                cluster = e.cluster.map(display),
                vmid = e.vmid,
                guest = e.guest.as_deref().map(display),
                identity = e.identity.as_deref().map(display),
                guacamole_id = e.guacamole_id.map(display),
                group = e.group.as_deref().map(display),
                reason = display(e.reason),
                error = e.error.as_deref().map(display),
                "{}",
                e.message
            )
        };
    }
    if e.result == "failed" {
        emit!(warn);
    } else {
        emit!(info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[test]
    fn journal_stream_must_name_this_device_and_inode() {
        assert!(journal_stream_matches("8:12345", 8, 12345));
        assert!(journal_stream_matches(" 8:12345\n", 8, 12345));
        assert!(!journal_stream_matches("8:12346", 8, 12345));
        assert!(!journal_stream_matches("9:12345", 8, 12345));
        assert!(!journal_stream_matches("812345", 8, 12345));
        assert!(!journal_stream_matches("a:b", 8, 12345));
        assert!(!journal_stream_matches("", 8, 12345));
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn audit_events_carry_the_message_id_and_the_structured_fields() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            audit(&AuditEvent {
                action: "create",
                result: "done",
                cycle: 7,
                cluster: Some("lab"),
                vmid: Some(100),
                guest: Some("lab/100".into()),
                identity: Some("lab/100/admin/rdp".into()),
                guacamole_id: Some("12"),
                group: Some("pve1".into()),
                reason: "new in notes",
                error: None,
                message: "create lab/100/admin/rdp".into(),
            });
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["target"], "pve_guac_sync::audit");
        let f = &line["fields"];
        assert_eq!(f["message_id"], AUDIT_MESSAGE_ID);
        assert_eq!(f["action"], "create");
        assert_eq!(f["result"], "done");
        assert_eq!(f["cycle"], 7);
        assert_eq!(f["cluster"], "lab");
        assert_eq!(f["vmid"], 100);
        assert_eq!(f["guest"], "lab/100");
        assert_eq!(f["identity"], "lab/100/admin/rdp");
        assert_eq!(f["guacamole_id"], "12");
        assert!(f.get("error").is_none(), "absent fields are left out: {f}");
        assert_eq!(AUDIT_MESSAGE_ID.len(), 32);
        assert!(AUDIT_MESSAGE_ID.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
