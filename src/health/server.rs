//! The listener: plain HTTP/1.1 over TCP, one request per connection, with
//! bounds on everything a client controls (head size, time, connections).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Health, HealthError, routes};

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 16;
/// Request line and headers (hyper's smallest allowed buffer); larger → 431.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// To send the request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// For the whole exchange, however slowly the client reads.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(200);

pub struct HealthListener {
    listener: TcpListener,
    addr: SocketAddr,
    health: Health,
}

impl HealthListener {
    pub(super) async fn bind(addr: SocketAddr, health: Health) -> Result<Self, HealthError> {
        let bind_error = |source| HealthError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        Ok(HealthListener {
            listener,
            addr,
            health,
        })
    }

    /// The bound address (its port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `cancel` fires; connections still open then are dropped.
    pub async fn serve(self, cancel: CancellationToken) {
        info!(listen = %self.addr, "serving the status page, /healthz, /readyz and /metrics on http://{}", self.addr);
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut connections = JoinSet::new();
        loop {
            let permit = tokio::select! {
                _ = cancel.cancelled() => break,
                p = Arc::clone(&permits).acquire_owned() => p.expect("the semaphore is never closed"),
            };
            let accepted = tokio::select! {
                _ = cancel.cancelled() => break,
                a = self.listener.accept() => a,
            };
            match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(connection(stream, self.health.clone(), permit));
                }
                Err(e) => {
                    warn!(error = %e, "health listener: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
            while connections.try_join_next().is_some() {}
        }
        connections.shutdown().await;
        debug!("health listener stopped");
    }
}

async fn connection(stream: TcpStream, health: Health, _permit: OwnedSemaphorePermit) {
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let response = routes::respond(&health, req.method(), req.uri().path());
        async move { Ok::<_, Infallible>(response) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_REQUEST_HEAD)
        .keep_alive(false);
    let serving = builder.serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(CONNECTION_TIMEOUT, serving).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(error = %e, "health listener: connection ended with an error"),
        Err(_) => debug!("health listener: connection timed out"),
    }
}
