//! Serving HTTP/1.1 connections with bounds on what each may cost: the accept loop, the
//! connection cap, each connection's clocks, and the graceful drain.
//!
//! `axum::serve` has no header-read or idle timeout and no connection cap: a client that sends
//! part of a request head and never the rest held its connection (a socket, a task, buffers)
//! for as long as it liked, and 800 of them held every service. Here:
//! - at most `MAX_CONNECTIONS` are served at once. Past it the server stops accepting, so new
//!   connections wait in the kernel's accept queue (they are neither refused nor reset, and are
//!   served in turn), and the idle keep-alive connections are closed to make room. A connection
//!   that is slow to send its head keeps its slot only until its header deadline;
//! - each connection is closed when its request head is not complete within
//!   `HEADER_READ_TIMEOUT_MS`, or when it stays idle between requests for `IDLE_TIMEOUT_MS`
//!   ([`clock`]);
//! - on shutdown, accepting stops at once, each connection finishes the request it is serving
//!   and closes (idle ones at once), and whatever is left when the grace period ends is dropped.

mod clock;

use std::{future::Future, sync::Arc, time::Duration};

use axum::{Router, body::Body, http::Request};
use hyper::body::Incoming;
use hyper_util::{
    rt::TokioIo,
    server::graceful::{GracefulShutdown, Watcher},
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Notify, OwnedSemaphorePermit, Semaphore},
};
use tower::ServiceExt as _;

use self::clock::{Clock, Expiry, Watched};
use crate::{
    config::ConnectionLimits,
    metrics::{HTTP_CONNECTIONS_CLOSED_TOTAL, HTTP_CONNECTIONS_OPEN},
};

/// While at the cap, how often the idle connections are asked again to make room (one may have
/// become idle since).
const PRESSURE_RECHECK: Duration = Duration::from_millis(250);

/// What every connection of one server shares.
#[derive(Debug, Clone)]
struct Shared {
    router: Router,
    limits: ConnectionLimits,
    service: &'static str,
    /// Notified when the server is at its cap and waits for a slot: idle connections close.
    pressure: Arc<Notify>,
}

/// Serves `router` on `listener` until `stop` resolves, then drains for at most `grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    service: &'static str,
    stop: impl Future<Output = ()>,
    grace: Duration,
) {
    metrics::gauge!(HTTP_CONNECTIONS_OPEN, "service" => service).set(0.0);
    for expiry in Expiry::ALL {
        metrics::counter!(HTTP_CONNECTIONS_CLOSED_TOTAL, "service" => service, "reason" => expiry.as_str())
            .increment(0);
    }
    let shared = Shared { router, limits, service, pressure: Arc::new(Notify::new()) };
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        // The slot first: at the cap, the next connection stays in the accept queue.
        let slot = tokio::select! {
            () = &mut stop => break,
            slot = free_slot(&slots, &shared.pressure) => slot,
        };
        let stream = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    accept_failed(&err).await;
                    continue;
                }
            },
        };
        tokio::spawn(serve_connection(stream, shared.clone(), graceful.watcher(), slot));
    }
    // Closing the listener refuses new connections at once, rather than leaving them to queue.
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(?grace, "drain deadline reached; dropping open requests");
    }
}

/// A connection slot, once one is free. At the cap, asks the idle connections to close.
async fn free_slot(slots: &Arc<Semaphore>, pressure: &Notify) -> OwnedSemaphorePermit {
    loop {
        if let Ok(slot) = slots.clone().try_acquire_owned() {
            return slot;
        }
        pressure.notify_waiters();
        // The semaphore is never closed, so only the recheck interval can end this wait early.
        if let Ok(Ok(slot)) = tokio::time::timeout(PRESSURE_RECHECK, slots.clone().acquire_owned()).await {
            return slot;
        }
    }
}

/// An accept that failed. A client that gave up before it was accepted is nothing to worry
/// about; anything else (out of file descriptors, say) is logged and accepting pauses a moment,
/// so the loop does not spin while it lasts.
async fn accept_failed(err: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(err.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %err, "accepting a connection failed; pausing for 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serves one connection until it ends, its watchdog closes it, or the drain ends it. `slot` is
/// given back when it ends.
async fn serve_connection(stream: TcpStream, shared: Shared, watcher: Watcher, slot: OwnedSemaphorePermit) {
    let _open = Open::new(shared.service, slot);
    let clock = Arc::new(Clock::new());
    let io = TokioIo::new(Watched::new(stream, clock.clone()));
    let service = {
        let (router, clock) = (shared.router.clone(), clock.clone());
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let (router, clock) = (router.clone(), clock.clone());
            async move {
                let _busy = clock.begin();
                router.oneshot(request.map(Body::new)).await
            }
        })
    };
    let mut http1 = hyper::server::conn::http1::Builder::new();
    // hyper's own header timeout would also cut idle keep-alive connections (see `clock`).
    http1.keep_alive(true).header_read_timeout(None);
    let connection = watcher.watch(http1.serve_connection(io, service));
    tokio::select! {
        served = connection => {
            if let Err(err) = served {
                // A client that hung up or sent garbage: its business, not an error of ours.
                tracing::debug!(error = %err, "connection ended with an error");
            }
        }
        expiry = clock.expired(&shared.limits, &shared.pressure) => {
            // Dropping the connection closes its socket.
            metrics::counter!(HTTP_CONNECTIONS_CLOSED_TOTAL, "service" => shared.service, "reason" => expiry.as_str())
                .increment(1);
            tracing::debug!(reason = expiry.as_str(), "closing a connection");
        }
    }
}

/// An open connection: counted in `http_connections_open` and holding its slot until dropped.
struct Open {
    service: &'static str,
    _slot: OwnedSemaphorePermit,
}

impl Open {
    fn new(service: &'static str, slot: OwnedSemaphorePermit) -> Self {
        metrics::gauge!(HTTP_CONNECTIONS_OPEN, "service" => service).increment(1.0);
        Self { service, _slot: slot }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!(HTTP_CONNECTIONS_OPEN, "service" => self.service).decrement(1.0);
    }
}
