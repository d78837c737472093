//! `notes add GUEST --user U --protos rdp,ssh …`: puts one credential block
//! into a guest's notes with the password already encrypted (first key),
//! without hand-writing the grammar. Every other byte of the notes stays;
//! the write carries the config `digest` it was computed from, so a human
//! edit made meanwhile is never overwritten (one retry on a fresh read, then
//! a clear failure). The password comes from stdin or a no-echo prompt,
//! never from the command line.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, bail};

use super::guest_ref::{FoundGuest, GuestRef, find};
use crate::config::Settings;
use crate::crypto::Keyring;
use crate::notes::{self, GuestContext, Key, PasswordSource, Passwords, Protocol, render};
use crate::proxmox::ProxmoxError;
use crate::reconcile::clients::Clients;
use crate::reconcile::model::{GuestKey, Identity};
use crate::secret::Secret;

/// Proxmox refuses a `description` longer than this (proxmox-api §6.3).
const MAX_NOTES_CHARS: usize = 8192;
/// Shown instead of the token by `--dry-run`.
const MASK: &str = "***";

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The guest: VMID, CLUSTER/VMID or a unique guest name.
    pub guest: String,
    /// Login name for the connections.
    #[arg(long)]
    pub user: String,
    /// Comma list of protocols: rdp, vnc, ssh, telnet.
    #[arg(long, value_delimiter = ',', required = true)]
    pub protos: Vec<String>,
    /// Port for every protocol of the block (default: the protocol's).
    #[arg(long)]
    pub port: Option<u16>,
    /// Guacamole group path below the managed root, e.g. `Lab/Web`.
    #[arg(long)]
    pub group: Option<String>,
    /// Connection name template, e.g. `{vmname}-{proto}`.
    #[arg(long)]
    pub name_template: Option<String>,
    /// Read the password from stdin (all of it, one final newline dropped)
    /// instead of prompting on the terminal.
    #[arg(long)]
    pub password_stdin: bool,
    /// Print the new notes (password masked) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Swap an existing block for the same user and protocol in place.
    #[arg(long)]
    pub replace: bool,
}

/// Why new notes could not be composed; never holds a secret.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ComposeError {
    #[error(
        "block {block} (line {line}) already holds {user}/{protocol}; pass --replace to swap it in place"
    )]
    Conflict {
        block: usize,
        line: usize,
        user: String,
        protocol: &'static str,
    },
    #[error(
        "blocks {blocks} all hold connections for this user and these protocols; edit the notes by hand"
    )]
    SeveralConflicts { blocks: String },
    #[error(
        "block {block} (line {line}) is not ended by `;`, so a block added after it would join it; end it with `;` first"
    )]
    Unterminated { block: usize, line: usize },
    #[error("the new notes would be {chars} characters long; Proxmox allows {MAX_NOTES_CHARS}")]
    TooLong { chars: usize },
    #[error("the new block does not read back as one valid credential block: {0}")]
    NotValid(String),
}

impl ComposeError {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            ComposeError::Conflict { .. } => "conflict",
            ComposeError::SeveralConflicts { .. } => "several_conflicts",
            ComposeError::Unterminated { .. } => "unterminated",
            ComposeError::TooLong { .. } => "too_long",
            ComposeError::NotValid(_) => "not_valid",
        }
    }
}

/// What the command asks for, validated.
pub(crate) struct Request {
    pub user: String,
    pub protocols: Vec<Protocol>,
    pub port: Option<u16>,
    pub group: Option<String>,
    pub template: Option<String>,
}

impl Request {
    fn from_args(args: &AddArgs) -> anyhow::Result<Request> {
        if args.user.trim().is_empty() {
            bail!("--user is empty");
        }
        let mut protocols = Vec::new();
        for name in &args.protos {
            let p = Protocol::parse(name).with_context(|| {
                format!("--protos: unknown protocol {name:?} (rdp, vnc, ssh, telnet)")
            })?;
            if !protocols.contains(&p) {
                protocols.push(p);
            }
        }
        if args.port == Some(0) {
            bail!("--port must be from 1 to 65535");
        }
        Ok(Request {
            user: args.user.trim().to_owned(),
            protocols,
            port: args.port,
            group: args.group.clone(),
            template: args.name_template.clone(),
        })
    }

    /// The block as text, `;`-terminated, with `token` as its password.
    pub(crate) fn block(&self, token: &str) -> String {
        let mut pairs = vec![
            format!("user:{}", render::quote(&self.user)),
            format!("encrypted_password:{}", render::quote(token)),
            format!(
                "protos:{}",
                render::quote(&render::protocols(&self.protocols))
            ),
        ];
        if let Some(port) = self.port {
            pairs.push(format!("port:\"{port}\""));
        }
        if let Some(g) = &self.group {
            pairs.push(format!("group:{}", render::quote(g)));
        }
        if let Some(t) = &self.template {
            pairs.push(format!("connection_name:{}", render::quote(t)));
        }
        format!("{};", pairs.join(" "))
    }
}

/// Where the block went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    Appended { block: usize },
    Replaced { block: usize },
}

impl Placement {
    fn ordinal(self) -> usize {
        match self {
            Placement::Appended { block } | Placement::Replaced { block } => block,
        }
    }
}

/// Pure: the notes with `block` appended (or swapped for the one existing
/// block of the same user and protocol when `replace`), every other byte
/// kept, then parsed back to check the block stands alone and is valid.
pub(crate) fn compose(
    notes_text: &str,
    block: &str,
    req: &Request,
    replace: bool,
) -> Result<(String, Placement), ComposeError> {
    let parsed = notes::parse(notes_text);
    let conflicting: Vec<&notes::Block> = parsed
        .blocks
        .iter()
        .filter(|b| {
            b.identities
                .iter()
                .any(|i| i.user == req.user && req.protocols.contains(&i.protocol))
        })
        .collect();
    let (text, placement) = match conflicting.as_slice() {
        [] => {
            if let Some(last) = parsed.blocks.last().filter(|b| !b.terminated) {
                return Err(ComposeError::Unterminated {
                    block: last.ordinal,
                    line: last.line,
                });
            }
            let mut text = notes_text.to_owned();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(block);
            let ordinal = parsed.blocks.len() + 1;
            (text, Placement::Appended { block: ordinal })
        }
        [old] if replace => {
            let region = pairs_region(old);
            let mut text = String::with_capacity(notes_text.len() + block.len());
            text.push_str(&notes_text[..region.start]);
            text.push_str(block);
            text.push_str(&notes_text[region.end..]);
            (text, Placement::Replaced { block: old.ordinal })
        }
        [old] => {
            let i = old
                .identities
                .iter()
                .find(|i| i.user == req.user && req.protocols.contains(&i.protocol))
                .expect("filtered on it");
            return Err(ComposeError::Conflict {
                block: old.ordinal,
                line: old.line,
                user: req.user.clone(),
                protocol: i.protocol.as_str(),
            });
        }
        many => {
            let list: Vec<String> = many.iter().map(|b| b.ordinal.to_string()).collect();
            return Err(ComposeError::SeveralConflicts {
                blocks: list.join(", "),
            });
        }
    };
    let chars = text.chars().count();
    if chars > MAX_NOTES_CHARS {
        return Err(ComposeError::TooLong { chars });
    }
    check_block(&text, placement, req, parsed.blocks.len())?;
    Ok((text, placement))
}

/// From the block's first recognised key to its `;` (or its last pair when
/// unterminated): free text before the block stays where it is.
fn pairs_region(block: &notes::Block) -> std::ops::Range<usize> {
    let start = block
        .pairs
        .iter()
        .find(|p| Key::lookup(&p.key).is_some())
        .map_or(block.span.start, |p| p.span().start);
    let end = if block.terminated {
        block.span.end
    } else {
        block.pairs.last().map_or(block.span.end, |p| p.span().end)
    };
    start..end
}

fn check_block(
    text: &str,
    placement: Placement,
    req: &Request,
    blocks_before: usize,
) -> Result<(), ComposeError> {
    let parsed = notes::parse(text);
    let expected = match placement {
        Placement::Appended { .. } => blocks_before + 1,
        Placement::Replaced { .. } => blocks_before,
    };
    if parsed.blocks.len() != expected {
        return Err(ComposeError::NotValid(format!(
            "the notes would hold {} blocks instead of {expected}",
            parsed.blocks.len()
        )));
    }
    let block = &parsed.blocks[placement.ordinal() - 1];
    if let Some(e) = block.errors.first() {
        return Err(ComposeError::NotValid(e.to_string()));
    }
    match block.credential() {
        Some(c) if c.user == req.user && c.protocols == req.protocols => Ok(()),
        _ => Err(ComposeError::NotValid(
            "it does not hold the requested user and protocols".to_owned(),
        )),
    }
}

pub async fn run(args: AddArgs, config: &Path) -> anyhow::Result<i32> {
    let req = Request::from_args(&args)?;
    let wanted = GuestRef::parse(&args.guest)?;
    let settings = Settings::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::telemetry::init(settings.logging.format, &settings.logging.level);
    if settings.encryption.keys.is_empty() {
        bail!(
            "no encryption key configured (encryption.keys): notes add stores only encrypted passwords"
        );
    }
    let keyring = Keyring::new(&settings.encryption.keys).context("encryption.keys")?;
    let password = read_password(args.password_stdin)?;
    let token = keyring.encrypt(&password);
    let clients = Clients::new(&settings, &tokio_util::sync::CancellationToken::new())
        .context("cannot set up the API clients")?;
    let guest = find(&clients.proxmox, &wanted).await?;
    let label = guest_label(&guest);
    if args.dry_run {
        let config = read_config(&guest).await?;
        let (text, placement) = compose(
            &config.notes.unwrap_or_default(),
            &req.block(MASK),
            &req,
            args.replace,
        )
        .map_err(|e| compose_failed(&label, e))?;
        println!("{text}");
        eprintln!(
            "dry run: {} to the notes of {label}; nothing was written",
            describe(placement)
        );
        return Ok(0);
    }
    let placement = write_with_digest(&guest, &req, token.expose(), args.replace, &label).await?;
    verify_read_back(&guest, &req, &keyring, &password, placement, &label).await?;
    report(&guest, &settings, &keyring, &req, placement, &label).await?;
    Ok(0)
}

fn compose_failed(label: &str, e: ComposeError) -> anyhow::Error {
    anyhow::anyhow!("notes of {label} ({}): {e}; nothing was written", e.label())
}

fn guest_label(g: &FoundGuest) -> String {
    format!(
        "{}/{} ({})",
        g.cluster,
        g.resource.vmid,
        g.resource.name.as_deref().unwrap_or("-")
    )
}

fn describe(p: Placement) -> String {
    match p {
        Placement::Appended { block } => format!("block {block} appended"),
        Placement::Replaced { block } => format!("block {block} replaced in place"),
    }
}

async fn read_config(g: &FoundGuest) -> anyhow::Result<crate::proxmox::GuestConfig> {
    g.client
        .config(&g.resource.node, g.resource.kind, g.resource.vmid)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the config: {e} ({})", e.label()))
}

/// Read, compose, write with the digest read; on a digest mismatch (someone
/// edited the notes meanwhile) once more from their text, then give up.
async fn write_with_digest(
    g: &FoundGuest,
    req: &Request,
    token: &str,
    replace: bool,
    label: &str,
) -> anyhow::Result<Placement> {
    let block = req.block(token);
    for attempt in 1..=2 {
        let config = read_config(g).await?;
        let (text, placement) = compose(&config.notes.unwrap_or_default(), &block, req, replace)
            .map_err(|e| compose_failed(label, e))?;
        let r = &g.resource;
        match g
            .client
            .set_notes(&r.node, r.kind, r.vmid, &text, Some(&config.digest))
            .await
        {
            Ok(()) => return Ok(placement),
            Err(ProxmoxError::DigestMismatch { .. }) if attempt == 1 => {
                eprintln!("the notes of {label} changed while writing; reading them again");
            }
            Err(ProxmoxError::DigestMismatch { .. }) => bail!(
                "the notes of {label} changed again while writing (digest mismatch twice); \
                 nothing was written and the other edit is kept; run the command again"
            ),
            Err(ProxmoxError::Locked { lock }) => {
                bail!("{label} is locked ({lock}); nothing was written; try again later")
            }
            Err(e) => bail!("writing the notes of {label} failed: {e} ({})", e.label()),
        }
    }
    unreachable!("the loop returns or bails")
}

/// The notes as stored must hold the block, and its token must open to the
/// password typed.
async fn verify_read_back(
    g: &FoundGuest,
    req: &Request,
    keyring: &Keyring,
    password: &Secret,
    placement: Placement,
    label: &str,
) -> anyhow::Result<()> {
    let config = read_config(g).await.context("read-back")?;
    let parsed = notes::parse(&config.notes.unwrap_or_default());
    let ok = parsed
        .blocks
        .get(placement.ordinal() - 1)
        .and_then(|b| b.credential())
        .filter(|c| c.user == req.user)
        .is_some_and(|c| match &c.password {
            PasswordSource::Encrypted(t) => keyring.decrypt(t).is_ok_and(|p| p == *password),
            PasswordSource::Plain(_) => false,
        });
    if !ok {
        bail!(
            "read-back of the notes of {label}: block {} does not hold the new encrypted password \
             (edited at the same moment?); check the notes",
            placement.ordinal()
        );
    }
    Ok(())
}

/// Prints the connections the block yields (as `notes lint` would) and the
/// identities the next cycle creates or keeps.
async fn report(
    g: &FoundGuest,
    settings: &Settings,
    keyring: &Keyring,
    req: &Request,
    placement: Placement,
    label: &str,
) -> anyhow::Result<()> {
    let config = read_config(g).await?;
    let parsed = notes::parse(&config.notes.unwrap_or_default());
    let block = &parsed.blocks[placement.ordinal() - 1];
    let ctx = GuestContext {
        cluster: g.cluster.clone(),
        node: g.resource.node.clone(),
        vmid: g.resource.vmid,
        vmname: config
            .name
            .clone()
            .or_else(|| g.resource.name.clone())
            .unwrap_or_default(),
        address: Some("{ip}".to_owned()),
        hostname: crate::host::short_hostname(),
    };
    let policy = crate::reconcile::cycle::notes_policy(settings);
    let (connections, errors, warnings) =
        match parsed.resolve_block(block, &ctx, &policy, Passwords::Decrypt(keyring)) {
            Ok(r) => (r.connections, Vec::new(), r.warnings),
            Err(e) => (Vec::new(), vec![e], Vec::new()),
        };
    println!("{} to the notes of {label}", describe(placement));
    print!(
        "{}",
        super::notes::to_text(&connections, &errors, &warnings)
    );
    for c in &connections {
        let identity = Identity {
            guest: GuestKey {
                cluster: g.cluster.clone(),
                vmid: g.resource.vmid,
            },
            user: req.user.clone(),
            protocol: c.protocol.as_str().to_owned(),
            ordinal: c.ordinal_in_guest,
        };
        println!("identity {identity}");
    }
    println!("the next cycle creates or updates these connections");
    Ok(())
}

/// `--password-stdin`: all of stdin. Otherwise a no-echo prompt, which needs
/// a terminal: a password is never taken from the command line.
fn read_password(from_stdin: bool) -> anyhow::Result<Secret> {
    if !from_stdin && !std::io::stdin().is_terminal() {
        bail!("stdin is not a terminal: pass --password-stdin to read the password from it");
    }
    let password = super::encrypt::read_password()?;
    if password.is_empty() {
        bail!("empty password: nothing to add");
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(user: &str, protos: &[Protocol]) -> Request {
        Request {
            user: user.into(),
            protocols: protos.to_vec(),
            port: None,
            group: None,
            template: None,
        }
    }

    const TOKEN: &str = "gAAAAABtoken";

    #[test]
    fn appends_keeping_every_byte() {
        let r = req("admin", &[Protocol::Ssh]);
        let before = "<p>Owner: alice</p>\nuser:\"ops\" pass:'x' protos:vnc;  ";
        let (text, p) = compose(before, &r.block(TOKEN), &r, false).unwrap();
        assert_eq!(p, Placement::Appended { block: 2 });
        assert!(text.starts_with(before), "{text}");
        assert_eq!(
            &text[before.len()..],
            "\nuser:\"admin\" encrypted_password:\"gAAAAABtoken\" protos:\"ssh\";"
        );
        let (empty, _) = compose("", &r.block(TOKEN), &r, false).unwrap();
        assert_eq!(empty, r.block(TOKEN));
    }

    #[test]
    fn a_block_for_the_same_user_and_protocol_is_named() {
        let r = req("admin", &[Protocol::Rdp, Protocol::Ssh]);
        let before = "intro\nuser:\"admin\" pass:\"x\" protos:\"ssh\";";
        let e = compose(before, &r.block(TOKEN), &r, false).unwrap_err();
        assert_eq!(
            e,
            ComposeError::Conflict {
                block: 1,
                line: 2,
                user: "admin".into(),
                protocol: "ssh"
            }
        );
        // Another user, or another protocol, is no conflict.
        let bob = req("bob", &[Protocol::Ssh]);
        assert!(compose(before, &bob.block(TOKEN), &bob, false).is_ok());
        let rdp = req("admin", &[Protocol::Rdp]);
        assert!(compose(before, &rdp.block(TOKEN), &rdp, false).is_ok());
    }

    #[test]
    fn replace_swaps_only_the_pairs_of_the_block() {
        let r = req("admin", &[Protocol::Ssh]);
        let before = "intro text\nOwner: alice user:\"admin\" pass:\"x\" protos:\"ssh\"; tail\nuser:\"b\" pass:\"y\" protos:rdp;";
        let (text, p) = compose(before, &r.block(TOKEN), &r, true).unwrap();
        assert_eq!(p, Placement::Replaced { block: 1 });
        assert_eq!(
            text,
            format!(
                "intro text\nOwner: alice {} tail\nuser:\"b\" pass:\"y\" protos:rdp;",
                r.block(TOKEN)
            )
        );
    }

    #[test]
    fn refuses_what_it_cannot_do_safely() {
        let r = req("admin", &[Protocol::Ssh, Protocol::Rdp]);
        let two = "user:admin pass:x protos:ssh;\nuser:admin pass:y protos:rdp;";
        assert_eq!(
            compose(two, &r.block(TOKEN), &r, true).unwrap_err().label(),
            "several_conflicts"
        );
        let open = "user:bob pass:x protos:ssh";
        assert_eq!(
            compose(open, &r.block(TOKEN), &r, false).unwrap_err(),
            ComposeError::Unterminated { block: 1, line: 1 }
        );
        let long = "x".repeat(MAX_NOTES_CHARS);
        assert_eq!(
            compose(&long, &r.block(TOKEN), &r, false)
                .unwrap_err()
                .label(),
            "too_long"
        );
        let mut bad = req("admin", &[Protocol::Ssh]);
        bad.template = Some("{password}".into());
        assert_eq!(
            compose("", &bad.block(TOKEN), &bad, false)
                .unwrap_err()
                .label(),
            "not_valid"
        );
    }

    #[test]
    fn options_become_pairs_that_parse_back() {
        let mut r = req("dom\\admin", &[Protocol::Rdp]);
        r.port = Some(3390);
        r.group = Some("Lab/Web".into());
        r.template = Some("{vmname}-{proto}".into());
        let (text, _) = compose("", &r.block(TOKEN), &r, false).unwrap();
        let parsed = notes::parse(&text);
        let c = parsed.blocks[0].credential().unwrap();
        assert_eq!(c.user, "dom\\admin");
        assert_eq!(c.port, Some(3390));
        assert_eq!(c.group, Some(vec!["Lab".to_owned(), "Web".to_owned()]));
        assert_eq!(c.template.as_deref(), Some("{vmname}-{proto}"));
    }
}
