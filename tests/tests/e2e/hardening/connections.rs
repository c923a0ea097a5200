//! Every service's connection limits (`shared/src/serve`): a request head that never ends is
//! cut off at `HEADER_READ_TIMEOUT_MS` while normal requests go on; a keep-alive connection may
//! idle for `IDLE_TIMEOUT_MS`; past `MAX_CONNECTIONS` a connection waits for a slot, and idle
//! ones make room.

use std::time::{Duration, Instant};

use saga_tests::{Service, Suite, happy_order};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::{env_for, metric};

/// Opens a connection to `port` and sends the start of a request head that never ends.
async fn half_sent(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-never-ends: ").await.unwrap();
    stream
}

/// How long after `since` the server closed `stream` (end of stream or reset), if it did
/// within `limit`. Whatever it sends before is read and skipped.
async fn closed_after(stream: &mut TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    let mut buffer = [0_u8; 4096];
    let deadline = tokio::time::Instant::from_std(since + limit);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(since.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends a whole `GET /healthz` on `stream` and reads its answer (the connection stays open).
async fn get_healthz(stream: &mut TcpStream) -> String {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").await.unwrap();
    read_answer(stream).await
}

/// Reads one answer whose body is a JSON object (the body is small and ends with `}`).
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 4096];
    while !answer.ends_with(b"}") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await.unwrap().unwrap();
        assert!(n > 0, "closed mid-answer: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8(answer).unwrap()
}

/// A client of its own: fresh connections, not the suite's pooled ones.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

#[tokio::test]
async fn half_sent_heads_are_closed_at_the_header_timeout_while_orders_still_complete() {
    const HEAD_MS: u64 = 1500;
    let head_ms = HEAD_MS.to_string();
    let suite =
        Suite::start_with_env(&Service::SUITE, &env_for(&Service::SUITE, &[("HEADER_READ_TIMEOUT_MS", &head_ms)]))
            .await;
    // Arrange: 200 slow clients on the orchestrator and 100 on inventory, each holding a
    // connection with half a request head.
    let mut slow = Vec::new();
    for (service, count) in [(Service::Orchestrator, 200), (Service::Inventory, 100)] {
        for _ in 0..count {
            slow.push((service, Instant::now(), half_sent(suite.port(service)).await));
        }
    }

    // Act: an order while they hang on.
    let started = Instant::now();
    let order = suite.accepted_order(&happy_order()).await;
    let placed_in = started.elapsed();
    let saga = suite.wait_terminal(order, Duration::from_secs(20)).await;

    // Assert: the order went through at once, not after the slow clients were cut off...
    assert!(placed_in < Duration::from_millis(HEAD_MS), "POST /orders took {placed_in:?} behind the slow clients");
    assert_eq!(saga["status"], "completed", "{saga}");
    // ...and each slow client was cut off at its header deadline, not before, and not much after.
    for (service, opened, mut stream) in slow {
        let closed = closed_after(&mut stream, opened, Duration::from_millis(HEAD_MS + 10_000)).await;
        let closed = closed.unwrap_or_else(|| panic!("a half-sent head to {service:?} was never closed"));
        assert!(closed >= Duration::from_millis(HEAD_MS - 100), "{service:?} closed a half-sent head after {closed:?}");
    }
    let cut = metric(
        &suite,
        Service::Orchestrator,
        r#"http_connections_closed_total{service="orchestrator",reason="header_timeout"}"#,
    )
    .await;
    assert!(cut >= 200.0, "the orchestrator counted {cut} header timeouts");
}

#[tokio::test]
async fn a_keep_alive_connection_may_idle_past_the_header_timeout_until_the_idle_timeout() {
    let env = [("HEADER_READ_TIMEOUT_MS", "1000"), ("IDLE_TIMEOUT_MS", "3000")];
    let suite = Suite::start_with_env(&[Service::Inventory], &env_for(&[Service::Inventory], &env)).await;
    let port = suite.port(Service::Inventory);

    // A head sent slowly, in three pieces over 600 ms, but whole within the timeout, is answered.
    let mut kept = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    for piece in ["host: 127.0.0.1\r\n", "\r\n"] {
        tokio::time::sleep(Duration::from_millis(300)).await;
        kept.write_all(piece.as_bytes()).await.unwrap();
    }
    let answer = read_answer(&mut kept).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answered = Instant::now();
    // A connection that never sends anything gets the header deadline from its accept.
    let silent_opened = Instant::now();
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();

    let silent_closed = closed_after(&mut silent, silent_opened, Duration::from_secs(10)).await.expect("silent closed");
    let idle_closed = closed_after(&mut kept, answered, Duration::from_secs(15)).await.expect("idle closed");

    assert!((900..3000).contains(&silent_closed.as_millis()), "a silent connection was closed after {silent_closed:?}");
    assert!(
        idle_closed >= Duration::from_millis(2900),
        "an idle keep-alive connection was closed after {idle_closed:?}"
    );
    let idle = metric(
        &suite,
        Service::Inventory,
        r#"http_connections_closed_total{service="inventory",reason="idle_timeout"}"#,
    )
    .await;
    assert!(idle >= 1.0, "no idle timeout counted");
}

#[tokio::test]
async fn past_the_connection_cap_a_new_connection_waits_for_a_slot_and_idle_ones_make_room() {
    const CAP: usize = 8;
    let env = [("MAX_CONNECTIONS", "8"), ("HEADER_READ_TIMEOUT_MS", "2000")];
    let suite = Suite::start_with_env(&[Service::Inventory], &env_for(&[Service::Inventory], &env)).await;
    let port = suite.port(Service::Inventory);
    let url = suite.url(Service::Inventory, "/healthz");

    // Every slot held by a half-sent head: the next connection waits until their deadline.
    let opened = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..CAP {
        slow.push(half_sent(port).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = fresh_client().get(&url).send().await.unwrap();
    let waited = opened.elapsed();
    assert_eq!(answer.status(), 200);
    assert!(waited >= Duration::from_millis(1800), "answered after {waited:?}: past the cap of {CAP}");
    for mut stream in slow {
        assert!(
            closed_after(&mut stream, opened, Duration::from_secs(10)).await.is_some(),
            "a slow head outlived its deadline"
        );
    }

    // Every slot held by an idle keep-alive connection: the next one is served at once, and an
    // idle one is closed for it.
    let mut idle = Vec::new();
    for _ in 0..CAP {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        assert!(get_healthz(&mut stream).await.starts_with("HTTP/1.1 200"));
        idle.push(stream);
    }
    let started = Instant::now();
    let answer = fresh_client().get(&url).send().await.unwrap();
    let served_in = started.elapsed();
    assert_eq!(answer.status(), 200);
    assert!(served_in < Duration::from_millis(1500), "an idle-held cap kept a new connection waiting {served_in:?}");
    let mut evicted = 0;
    for mut stream in idle {
        evicted += usize::from(closed_after(&mut stream, Instant::now(), Duration::from_millis(200)).await.is_some());
    }
    assert!(evicted >= 1, "no idle connection was closed to make room");
    let counted =
        metric(&suite, Service::Inventory, r#"http_connections_closed_total{service="inventory",reason="evicted"}"#)
            .await;
    assert!(counted >= 1.0, "no eviction counted");
}
