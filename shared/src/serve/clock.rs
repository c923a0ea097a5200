//! The clocks of one connection: how long its next request head has been arriving, and how
//! long it has been idle between requests, and the watchdog that ends it when either is too long.
//!
//! hyper's own `header_read_timeout` starts when the connection starts waiting for a request,
//! so on a keep-alive connection it is also the longest the connection may sit idle: it cannot
//! give a short deadline for a head and a long one for keep-alive. These clocks keep them apart
//! (as Go's `ReadHeaderTimeout` and `IdleTimeout` do): a head must be complete within
//! `header_read_timeout` of its first byte (on a new connection, of its accept, so a client
//! that connects and sends nothing is closed too); between requests, a connection may stay
//! silent for `idle_timeout`. While a request is being handled, neither runs (the request
//! timeout bounds it).

use std::{
    io,
    pin::Pin,
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::Notify,
    time::Instant,
};

use crate::config::ConnectionLimits;

/// "No head is being read" in [`Clock::head_since`].
const NONE: u64 = u64::MAX;

/// Why the server closed a connection (the `reason` label of `http_connections_closed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// A request head took longer than `header_read_timeout`.
    HeaderTimeout,
    /// No request for `idle_timeout`.
    IdleTimeout,
    /// Idle while new connections waited for a slot.
    Evicted,
}

impl Expiry {
    /// Every reason, for zero-valued series at start-up.
    pub(crate) const ALL: [Expiry; 3] = [Self::HeaderTimeout, Self::IdleTimeout, Self::Evicted];

    /// The metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::HeaderTimeout => "header_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::Evicted => "evicted",
        }
    }
}

/// What one connection has been doing, in milliseconds since it was accepted. Written by its
/// I/O ([`Watched`]) and its requests ([`Busy`]), read by its watchdog ([`Clock::expired`]).
#[derive(Debug)]
pub(crate) struct Clock {
    accepted: Instant,
    /// The last byte read or written, or the last request's end.
    last_activity: AtomicU64,
    /// When the head being awaited began to arrive; [`NONE`] between requests.
    head_since: AtomicU64,
    /// Requests being handled.
    in_flight: AtomicUsize,
}

impl Clock {
    /// A connection accepted now, waiting for its first request's head.
    pub(crate) fn new() -> Self {
        Self {
            accepted: Instant::now(),
            last_activity: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, millis: u64) -> Instant {
        self.accepted + Duration::from_millis(millis)
    }

    /// Bytes came in: between requests, they are the next head's first.
    fn read(&self) {
        let now = self.now();
        self.last_activity.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self.head_since.compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.last_activity.store(self.now(), Ordering::Relaxed);
    }

    /// A request's head is complete and its handling begins; it ends when the guard drops
    /// (answered, or abandoned by its caller).
    pub(crate) fn begin(&self) -> Busy<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NONE, Ordering::Release);
        Busy(self)
    }

    /// Idle between requests: nothing handled and no head arriving (what eviction may close).
    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && self.head_since.load(Ordering::Acquire) == NONE
    }

    /// When this connection must be closed and why, as things stand; `None` while it serves a
    /// request.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, Expiry)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        match self.head_since.load(Ordering::Acquire) {
            NONE => {
                Some((self.at(self.last_activity.load(Ordering::Relaxed)) + limits.idle_timeout, Expiry::IdleTimeout))
            }
            since => Some((self.at(since) + limits.header_read_timeout, Expiry::HeaderTimeout)),
        }
    }

    /// Resolves when the connection must be closed: a deadline passed, or, while idle, the
    /// server asked through `pressure` for room at its connection cap.
    pub(crate) async fn expired(&self, limits: &ConnectionLimits, pressure: &Notify) -> Expiry {
        // Any deadline is at least this far after a request ends, so while one is handled,
        // looking again this often never misses one.
        let busy_recheck = limits.header_read_timeout.min(limits.idle_timeout);
        loop {
            let notified = pressure.notified();
            tokio::pin!(notified);
            // Registered before the state is read, so a request for room in between is not lost.
            notified.as_mut().enable();
            let wake_at = match self.deadline(limits) {
                Some((at, expiry)) if at <= Instant::now() => return expiry,
                Some((at, _)) => at,
                None => Instant::now() + busy_recheck,
            };
            tokio::select! {
                () = tokio::time::sleep_until(wake_at) => {}
                () = &mut notified => {
                    if self.is_idle() {
                        return Expiry::Evicted;
                    }
                }
            }
        }
    }
}

/// A request being handled on a connection (see [`Clock::begin`]).
#[derive(Debug)]
pub(crate) struct Busy<'a>(&'a Clock);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        // The idle clock starts from the answer, not from the request's last byte.
        self.0.last_activity.store(self.0.now(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's socket, reporting each read and write to its clock.
#[derive(Debug)]
pub(crate) struct Watched<T> {
    inner: T,
    clock: std::sync::Arc<Clock>,
}

impl<T> Watched<T> {
    /// `inner`, reporting to `clock`.
    pub(crate) fn new(inner: T, clock: std::sync::Arc<Clock>) -> Self {
        Self { inner, clock }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(header_ms: u64, idle_ms: u64) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_millis(header_ms),
            idle_timeout: Duration::from_millis(idle_ms),
            max_connections: 8,
        }
    }

    /// The deadline's kind and how far away it is, in whole seconds (the tests run on real
    /// time, in milliseconds; whole seconds leave room for a slow machine).
    fn due(clock: &Clock, limits: &ConnectionLimits) -> Option<(u64, Expiry)> {
        clock.deadline(limits).map(|(at, expiry)| ((at - Instant::now()).as_millis().div_ceil(1000) as u64, expiry))
    }

    #[tokio::test]
    async fn a_new_connection_that_sends_nothing_gets_the_header_deadline() {
        let (clock, pressure) = (Clock::new(), Notify::new());
        assert_eq!(due(&clock, &limits(2_000, 10_000)), Some((2, Expiry::HeaderTimeout)));
        let start = Instant::now();
        assert_eq!(clock.expired(&limits(50, 10_000), &pressure).await, Expiry::HeaderTimeout);
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn after_a_request_the_connection_may_idle_then_a_head_has_its_own_deadline() {
        let clock = Clock::new();
        drop(clock.begin());
        assert_eq!(due(&clock, &limits(2_000, 10_000)), Some((10, Expiry::IdleTimeout)));
        clock.read(); // the next head's first bytes
        assert_eq!(due(&clock, &limits(2_000, 10_000)), Some((2, Expiry::HeaderTimeout)));
        drop(clock.begin());
        assert_eq!(due(&clock, &limits(2_000, 10_000)), Some((10, Expiry::IdleTimeout)));
    }

    #[tokio::test]
    async fn no_clock_runs_while_a_request_is_handled() {
        let clock = Clock::new();
        let busy = clock.begin();
        assert_eq!(due(&clock, &limits(2_000, 10_000)), None);
        clock.read(); // the request's body: not a head
        drop(busy);
        assert_eq!(due(&clock, &limits(2_000, 10_000)), Some((10, Expiry::IdleTimeout)));
    }

    #[tokio::test]
    async fn only_an_idle_connection_is_evicted_for_room() {
        let (clock, pressure) = (std::sync::Arc::new(Clock::new()), std::sync::Arc::new(Notify::new()));
        let waiting = {
            let (clock, pressure) = (clock.clone(), pressure.clone());
            tokio::spawn(async move { clock.expired(&limits(60_000, 60_000), &pressure).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        pressure.notify_waiters(); // still waiting for its first head: not idle
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(clock.begin());
        pressure.notify_waiters();
        let evicted = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(matches!(evicted, Ok(Ok(Expiry::Evicted))), "{evicted:?}");
    }
}
