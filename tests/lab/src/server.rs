//! The connection loop: HTTP/1.1 over TLS on 127.0.0.1, parsed by hand so the
//! framing is exactly what the emulators ask for (see `http.rs`). One task per
//! connection; generic faults are applied before the handler and every request
//! lands in the request log.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::faults::{FaultAction, Faults, ServerKind, fault_response};
use crate::http::{Body, Handler, Request, Response, ServerLimits};
use crate::log::{RecordedRequest, RequestLog, redacted_record};

/// Whether a listener's server is reachable; checked per accepted connection
/// and before each request (an offline Proxmox node drops connections).
pub type OnlineCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// Safety caps for servers without header limits (the real ones answer 400).
const MAX_LINE_BYTES: usize = 64 * 1024;
const MAX_HEAD_BYTES: usize = 256 * 1024;
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for in-flight requests before aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Everything one listener needs.
pub struct ListenerSpec {
    /// `proxmox:<cluster>/<node>` or `guacamole`: the log's `server` field.
    pub label: String,
    /// The Proxmox node this listener is (for node-scoped fault rules).
    pub node: Option<String>,
    pub kind: ServerKind,
    /// 0 = any free port.
    pub port: u16,
    pub limits: ServerLimits,
    pub handler: Arc<dyn Handler>,
    pub faults: Arc<Faults>,
    pub online: Option<OnlineCheck>,
}

/// Tells every listener and connection of a lab to stop.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            tx: watch::channel(false).0,
        }
    }
}

impl Shutdown {
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }
}

/// A bound, serving listener.
#[derive(Debug)]
pub struct RunningListener {
    pub addr: SocketAddr,
    pub task: JoinHandle<()>,
}

struct ListenerCtx {
    label: String,
    node: Option<String>,
    kind: ServerKind,
    limits: ServerLimits,
    handler: Arc<dyn Handler>,
    faults: Arc<Faults>,
    online: Option<OnlineCheck>,
    log: Arc<RequestLog>,
    acceptor: TlsAcceptor,
}

impl ListenerCtx {
    fn is_online(&self) -> bool {
        self.online.as_ref().is_none_or(|f| f())
    }
}

/// Bind `127.0.0.1:<port>` and serve until `shutdown` is triggered.
pub async fn start_listener(
    spec: ListenerSpec,
    tls: Arc<ServerConfig>,
    log: Arc<RequestLog>,
    shutdown: &Shutdown,
) -> io::Result<RunningListener> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, spec.port)).await?;
    let addr = listener.local_addr()?;
    let ctx = Arc::new(ListenerCtx {
        label: spec.label,
        node: spec.node,
        kind: spec.kind,
        limits: spec.limits,
        handler: spec.handler,
        faults: spec.faults,
        online: spec.online,
        log,
        acceptor: TlsAcceptor::from(tls),
    });
    let task = tokio::spawn(accept_loop(listener, ctx, shutdown.subscribe()));
    Ok(RunningListener { addr, task })
}

async fn accept_loop(
    listener: TcpListener,
    ctx: Arc<ListenerCtx>,
    shutdown: watch::Receiver<bool>,
) {
    let mut stop = shutdown.clone();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    if !ctx.is_online() {
                        ctx.log.record_refused(&ctx.label);
                        reset(tcp);
                        continue;
                    }
                    let _ = tcp.set_nodelay(true);
                    conns.spawn(serve_connection(tcp, peer, ctx.clone(), shutdown.clone()));
                }
                // Out of file descriptors and the like: back off briefly.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stopped(&mut stop) => break,
        }
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        conns.abort_all();
    }
}

/// Resolves once shutdown was triggered (or the lab is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Close a TCP connection with RST instead of FIN.
fn reset(tcp: TcpStream) {
    let _ = tcp.set_zero_linger();
    drop(tcp);
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    ctx: Arc<ListenerCtx>,
    mut shutdown: watch::Receiver<bool>,
) {
    // A TLS connection starts with a handshake record (0x16); anything else
    // is plain HTTP, which the real servers answer without TLS.
    let mut first = [0u8; 1];
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tcp.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] != 0x16 => return serve_plain_http(tcp, peer, &ctx).await,
        Ok(Ok(1)) => {}
        _ => return,
    }
    let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, ctx.acceptor.accept(tcp));
    let stream = tokio::select! {
        r = handshake => match r {
            Ok(Ok(stream)) => stream,
            _ => return,
        },
        _ = stopped(&mut shutdown) => return,
    };
    let mut conn = Conn {
        stream,
        buf: Vec::with_capacity(8192),
        pos: 0,
        idle: ctx.limits.idle_timeout,
    };
    let mut served = 0usize;
    loop {
        let incoming = tokio::select! {
            r = read_request(&mut conn, &ctx.limits, peer) => r,
            _ = stopped(&mut shutdown) => Incoming::Closed,
        };
        let (req, keep_alive) = match incoming {
            Incoming::Request(req, keep_alive) => (req, keep_alive),
            Incoming::Closed => break,
            Incoming::Dropped(line) => {
                record_unanswered(&ctx, &line, "header-limit");
                linger_until_idle(&mut conn, &mut shutdown).await;
                break;
            }
            Incoming::Bad(line) => {
                record_unanswered(&ctx, &line, "bad-request");
                let resp = Response::new(400).close();
                let _ = write_response(&mut conn, &resp, Framing::Close, "GET").await;
                break;
            }
        };
        if !ctx.is_online() {
            let mut rec = redacted_record(&ctx.label, &req);
            finish_unanswered(&mut rec, "node-offline");
            ctx.log.record(rec);
            reset(conn.stream.into_inner().0);
            return;
        }
        served += 1;
        let started = Instant::now();
        let http10 = req.minor_version == 0;
        let mut record = redacted_record(&ctx.label, &req);
        let decision = ctx
            .faults
            .decide(&req.method, &req.path, ctx.node.as_deref());
        if !decision.delay.is_zero() {
            tokio::time::sleep(decision.delay).await;
        }
        let (resp, note) = match &decision.action {
            Some(FaultAction::Reset) => {
                finish_unanswered(&mut record, "fault:reset");
                ctx.log.record(record);
                reset(conn.stream.into_inner().0);
                return;
            }
            Some(FaultAction::Hang) => {
                finish_unanswered(&mut record, "fault:hang");
                ctx.log.record(record);
                hang(&mut conn, &mut shutdown).await;
                break;
            }
            Some(action) => {
                let note = match action {
                    FaultAction::RetryAfter { .. } => "fault:retry-after",
                    _ => "fault:error",
                };
                let resp = fault_response(ctx.kind, action).unwrap_or_else(|| Response::new(500));
                (resp, Some(note))
            }
            None => (ctx.handler.handle(req).await, None),
        };
        let closing = resp.close
            || matches!(resp.body, Body::CloseDelimitedEmpty)
            || header_has_token(&resp.headers, "close")
            || !keep_alive
            || served >= ctx.limits.max_requests_per_connection
            || *shutdown.borrow();
        let framing = if closing {
            Framing::Close
        } else if http10 {
            Framing::KeepAlive10
        } else {
            Framing::KeepAlive
        };
        let written = write_response(&mut conn, &resp, framing, &record.method).await;
        record.status = resp.status;
        record.latency = started.elapsed();
        record.route = resp
            .route
            .clone()
            .unwrap_or_else(|| format!("{} {}", record.method, record.path));
        record.note = note.map(str::to_string);
        ctx.log.record(record);
        if written.is_err() || closing {
            break;
        }
    }
    match ctx.kind {
        // pve-http-server ends a connection with a plain TCP shutdown, never
        // sending a TLS close_notify: clients must take that EOF as the end
        // of a close-delimited body.
        ServerKind::Proxmox => {
            let _ = conn.stream.flush().await;
            let _ = conn.stream.get_mut().0.shutdown().await;
        }
        ServerKind::Guacamole => {
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.stream.shutdown()).await;
        }
    }
}

/// Plain HTTP on the TLS port: Proxmox redirects to https (301 for GET/HEAD,
/// 308 otherwise), Tomcat answers 400 "This combination of host and port
/// requires TLS.".
async fn serve_plain_http(tcp: TcpStream, peer: SocketAddr, ctx: &ListenerCtx) {
    let local = tcp.local_addr().ok();
    let mut conn = Conn {
        stream: tcp,
        buf: Vec::with_capacity(1024),
        pos: 0,
        idle: ctx.limits.idle_timeout,
    };
    let Incoming::Request(req, _) = read_request(&mut conn, &ctx.limits, peer).await else {
        return;
    };
    let resp = match ctx.kind {
        ServerKind::Proxmox => {
            let host = req
                .header("host")
                .map(str::to_string)
                .or_else(|| local.map(|a| a.to_string()))
                .unwrap_or_default();
            let query = if req.query.is_empty() {
                String::new()
            } else {
                format!("?{}", req.query)
            };
            let status = if matches!(req.method.as_str(), "GET" | "HEAD") {
                301
            } else {
                308
            };
            Response::new(status)
                .header("Location", format!("https://{host}{}{query}", req.raw_path))
        }
        ServerKind::Guacamole => {
            let mut r = Response::new(400)
                .reason("")
                .header("Content-Type", "text/plain;charset=UTF-8");
            r.body = Body::Bytes(
                b"Bad Request\nThis combination of host and port requires TLS.\n".to_vec(),
            );
            r
        }
    };
    let mut record = redacted_record(&ctx.label, &req);
    let _ = write_response(&mut conn, &resp, Framing::Close, &req.method).await;
    record.status = resp.status;
    record.route = format!("{} {}", record.method, record.path);
    record.note = Some("plain-http".into());
    ctx.log.record(record);
    let _ = conn.stream.shutdown().await;
}

fn finish_unanswered(record: &mut RecordedRequest, note: &str) {
    record.status = 0;
    record.route = format!("{} {}", record.method, record.path);
    record.note = Some(note.to_string());
}

fn record_unanswered(ctx: &ListenerCtx, line: &RequestLine, note: &str) {
    let path = percent_encoding::percent_decode_str(&line.raw_path)
        .decode_utf8_lossy()
        .into_owned();
    ctx.log.record(RecordedRequest {
        seq: 0,
        server: ctx.label.clone(),
        method: line.method.clone(),
        route: format!("{} {}", line.method, path),
        path,
        query: crate::log::redact_query(&line.query),
        params: Vec::new(),
        json: None,
        status: 0,
        latency: Duration::ZERO,
        note: Some(note.to_string()),
    });
}

/// A request whose headers broke a limit is never answered; the connection
/// stays open until the client goes quiet for the idle timeout.
async fn linger_until_idle<S: Stream>(conn: &mut Conn<S>, shutdown: &mut watch::Receiver<bool>) {
    loop {
        tokio::select! {
            r = conn.fill() => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => conn.discard_buffered(),
            },
            _ = stopped(shutdown) => return,
        }
    }
}

/// Never answer; wait until the client closes (no idle timeout).
async fn hang<S: Stream>(conn: &mut Conn<S>, shutdown: &mut watch::Receiver<bool>) {
    loop {
        tokio::select! {
            r = conn.stream.read_buf(&mut conn.buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => conn.discard_buffered(),
            },
            _ = stopped(shutdown) => return,
        }
    }
}

/// What a connection reads from and writes to (TLS, or plain TCP for the
/// "this port wants TLS" answer).
trait Stream: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Stream for T {}

struct Conn<S> {
    stream: S,
    buf: Vec<u8>,
    pos: usize,
    idle: Duration,
}

enum ReadError {
    /// Closed, timed out or broken.
    Gone,
    TooLong,
}

impl<S: Stream> Conn<S> {
    /// Read more bytes (idle timeout per read). `Ok(0)` = end of stream.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve(8192);
        match tokio::time::timeout(self.idle, self.stream.read_buf(&mut self.buf)).await {
            Ok(r) => r,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    fn discard_buffered(&mut self) {
        self.buf.clear();
        self.pos = 0;
    }

    /// One line without its `\n` (and `\r`).
    async fn read_line(&mut self, max: usize) -> Result<Vec<u8>, ReadError> {
        let mut searched = 0;
        loop {
            let pending = &self.buf[self.pos..];
            if let Some(i) = pending[searched..].iter().position(|b| *b == b'\n') {
                let end = searched + i;
                let mut line = pending[..end].to_vec();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.pos += end + 1;
                return Ok(line);
            }
            searched = pending.len();
            if searched > max {
                return Err(ReadError::TooLong);
            }
            match self.fill().await {
                Ok(0) | Err(_) => return Err(ReadError::Gone),
                Ok(_) => {}
            }
        }
    }

    /// Consume exactly `n` bytes, appending them to `sink` when given.
    async fn read_exact(
        &mut self,
        mut n: usize,
        mut sink: Option<&mut Vec<u8>>,
    ) -> Result<(), ReadError> {
        loop {
            let available = (self.buf.len() - self.pos).min(n);
            if let Some(s) = sink.as_deref_mut() {
                s.extend_from_slice(&self.buf[self.pos..self.pos + available]);
            }
            self.pos += available;
            n -= available;
            if n == 0 {
                return Ok(());
            }
            match self.fill().await {
                Ok(0) | Err(_) => return Err(ReadError::Gone),
                Ok(_) => {}
            }
        }
    }
}

/// The parts of the request line, kept for requests that are never answered.
struct RequestLine {
    method: String,
    raw_path: String,
    query: String,
}

enum Incoming {
    /// A complete request, and whether the client allows keep-alive.
    Request(Request, bool),
    /// Header limits exceeded: never answer.
    Dropped(RequestLine),
    /// Unparseable: answer 400 and close.
    Bad(RequestLine),
    Closed,
}

async fn read_request<S: Stream>(
    conn: &mut Conn<S>,
    limits: &ServerLimits,
    peer: SocketAddr,
) -> Incoming {
    // Tolerate blank lines before the request line (RFC 9112 §2.2).
    let line = loop {
        match conn.read_line(MAX_LINE_BYTES).await {
            Ok(line) if line.is_empty() => continue,
            Ok(line) => break line,
            Err(_) => return Incoming::Closed,
        }
    };
    let line = String::from_utf8_lossy(&line).into_owned();
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let target = target.unwrap_or("/");
    let (raw_path, query) = split_target(target);
    let req_line = RequestLine {
        method: method.unwrap_or("?").to_string(),
        raw_path: raw_path.to_string(),
        query: query.to_string(),
    };
    let minor_version = match version {
        Some("HTTP/1.1") => 1,
        Some("HTTP/1.0") => 0,
        _ => return Incoming::Bad(req_line),
    };
    if parts.next().is_some() || !req_line.method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Incoming::Bad(req_line);
    }

    let mut headers = Vec::new();
    let mut lines = 0usize;
    let mut header_bytes = 0usize;
    loop {
        let raw = match conn.read_line(MAX_LINE_BYTES).await {
            Ok(raw) => raw,
            Err(ReadError::TooLong) => return Incoming::Bad(req_line),
            Err(ReadError::Gone) => return Incoming::Closed,
        };
        lines += 1;
        header_bytes += raw.len();
        if limits.max_header_lines.is_some_and(|max| lines >= max)
            || limits
                .max_header_bytes
                .is_some_and(|max| header_bytes >= max)
        {
            return Incoming::Dropped(req_line);
        }
        if header_bytes > MAX_HEAD_BYTES {
            return Incoming::Bad(req_line);
        }
        if raw.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(&raw);
        let Some((name, value)) = text.split_once(':') else {
            return Incoming::Bad(req_line);
        };
        if name.is_empty() || name.ends_with([' ', '\t']) {
            return Incoming::Bad(req_line);
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }

    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let connection = header("connection")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let has_token = |t: &str| connection.split(',').any(|p| p.trim() == t);
    let keep_alive = if minor_version == 1 {
        !has_token("close")
    } else {
        has_token("keep-alive")
    };
    let chunked = match header("transfer-encoding") {
        Some(te) if te.to_ascii_lowercase().trim_end().ends_with("chunked") => true,
        Some(_) => return Incoming::Bad(req_line),
        None => false,
    };
    let content_length = match (chunked, header("content-length")) {
        (false, Some(v)) => match v.trim().parse::<u64>() {
            Ok(n) => n,
            Err(_) => return Incoming::Bad(req_line),
        },
        _ => 0,
    };
    if header("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
        && (chunked || content_length > 0)
        && (content_length as usize) <= limits.max_body_bytes
    {
        let _ = conn
            .stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await;
        let _ = conn.stream.flush().await;
    }

    let mut body = Vec::new();
    let mut oversized = false;
    if chunked {
        match read_chunked(conn, limits.max_body_bytes).await {
            Ok(Some(b)) => body = b,
            Ok(None) => oversized = true,
            Err(ReadError::Gone) => return Incoming::Closed,
            Err(ReadError::TooLong) => return Incoming::Bad(req_line),
        }
    } else if content_length > 0 {
        let n = content_length as usize;
        oversized = n > limits.max_body_bytes;
        let sink = if oversized { None } else { Some(&mut body) };
        if conn.read_exact(n, sink).await.is_err() {
            return Incoming::Closed;
        }
    }

    let path = percent_encoding::percent_decode_str(&req_line.raw_path)
        .decode_utf8_lossy()
        .into_owned();
    Incoming::Request(
        Request {
            method: req_line.method,
            path,
            raw_path: req_line.raw_path,
            query: req_line.query,
            headers,
            body,
            chunked,
            peer,
            minor_version,
            oversized,
        },
        keep_alive,
    )
}

/// `Ok(None)` when the decoded body exceeded `max` (it was read and dropped).
async fn read_chunked<S: Stream>(
    conn: &mut Conn<S>,
    max: usize,
) -> Result<Option<Vec<u8>>, ReadError> {
    let mut body = Vec::new();
    let mut total = 0usize;
    loop {
        let line = conn.read_line(1024).await?;
        let text = String::from_utf8_lossy(&line);
        let size_hex = text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| ReadError::TooLong)?;
        if size == 0 {
            // Trailer fields, up to the blank line.
            while !conn.read_line(MAX_LINE_BYTES).await?.is_empty() {}
            break;
        }
        total = total.saturating_add(size);
        let keep = total <= max;
        conn.read_exact(size, if keep { Some(&mut body) } else { None })
            .await?;
        if !conn.read_line(2).await?.is_empty() {
            return Err(ReadError::TooLong);
        }
    }
    Ok((total <= max).then_some(body))
}

fn split_target(target: &str) -> (&str, &str) {
    // Absolute form: drop scheme and authority.
    let target = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    target.split_once('?').unwrap_or((target, ""))
}

fn header_has_token(headers: &[(String, String)], token: &str) -> bool {
    headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("connection")
            && v.split(',').any(|p| p.trim().eq_ignore_ascii_case(token))
    })
}

/// Serialise and send one response.
async fn write_response<S: Stream>(
    conn: &mut Conn<S>,
    resp: &Response,
    framing: Framing,
    method: &str,
) -> io::Result<()> {
    let bytes = encode_response(resp, framing, method);
    let send = async {
        conn.stream.write_all(&bytes).await?;
        conn.stream.flush().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, send).await {
        Ok(r) => r,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// What the connection does after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    KeepAlive,
    /// Keep-alive an HTTP/1.0 client asked for: said explicitly.
    KeepAlive10,
    Close,
}

/// The bytes of a response: status line with the handler's reason phrase,
/// its headers, `Content-Length` for byte bodies (not for 1xx/204/304 or
/// close-delimited bodies), `Connection: close` when closing.
pub fn encode_response(resp: &Response, framing: Framing, method: &str) -> Vec<u8> {
    let closing = framing == Framing::Close;
    let reason = resp
        .reason
        .clone()
        .unwrap_or_else(|| canonical_reason(resp.status).to_string());
    // A reason phrase is one line.
    let reason = reason.lines().next().unwrap_or_default();
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", resp.status, reason).as_bytes());
    let has = |name: &str| {
        resp.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    if !has("date") {
        out.extend_from_slice(format!("Date: {}\r\n", http_date(SystemTime::now())).as_bytes());
    }
    for (name, value) in &resp.headers {
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
            || (closing && name.eq_ignore_ascii_case("connection"))
        {
            continue;
        }
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    let no_body_status = resp.status < 200 || resp.status == 204 || resp.status == 304;
    let body: &[u8] = match &resp.body {
        Body::Bytes(b) if !no_body_status => {
            out.extend_from_slice(format!("Content-Length: {}\r\n", b.len()).as_bytes());
            b
        }
        _ => &[],
    };
    match framing {
        Framing::Close => out.extend_from_slice(b"Connection: close\r\n"),
        Framing::KeepAlive10 if !has("connection") => {
            out.extend_from_slice(b"Connection: keep-alive\r\n")
        }
        _ => {}
    }
    out.extend_from_slice(b"\r\n");
    if method != "HEAD" {
        out.extend_from_slice(body);
    }
    out
}

/// Standard reason phrases (the handler may override them).
pub fn canonical_reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(784_111_777)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
    }

    #[test]
    fn encoding() {
        let r = Response::new(204).header("X-A", "1");
        let s = String::from_utf8(encode_response(&r, Framing::KeepAlive, "DELETE")).unwrap();
        assert!(s.starts_with("HTTP/1.1 204 No Content\r\n"));
        assert!(!s.contains("Content-Length"));
        let mut r = Response::new(401).reason("No ticket");
        r.body = Body::CloseDelimitedEmpty;
        let s = String::from_utf8(encode_response(&r, Framing::Close, "GET")).unwrap();
        assert!(s.starts_with("HTTP/1.1 401 No ticket\r\n"));
        assert!(!s.contains("Content-Length") && !s.contains("Content-Type"));
        assert!(s.ends_with("Connection: close\r\n\r\n"));
        let r = Response::json(200, &serde_json::json!({"a": 1}));
        let s = String::from_utf8(encode_response(&r, Framing::KeepAlive, "HEAD")).unwrap();
        assert!(s.contains("Content-Length: 7\r\n") && s.ends_with("\r\n\r\n"));
        assert_eq!(split_target("http://h:1/a/b?x=1"), ("/a/b", "x=1"));
        assert_eq!(split_target("/a"), ("/a", ""));
    }
}
