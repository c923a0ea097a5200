//! One order through the orchestrator: `POST /orders`, then the long-poll
//! `GET /orders/{id}?wait_ms=` until its saga is terminal or the saga timeout runs out. A poll
//! that fails (the orchestrator killed, restarting, overloaded) is repeated, so chaos runs still
//! see every saga end.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use saga_shared::api::{OrderView, SagaStatus};
use serde_json::Value;

use super::{
    Worker,
    mix::PlannedOrder,
    outcome::{Fate, OrderResult, Outcome},
};

/// Longest long-poll asked for: under the orchestrator's cap (25 s) and its request timeout.
const LONG_POLL: Duration = Duration::from_secs(20);
/// Added to a long-poll's wait for the HTTP timeout of that `GET`.
const POLL_SLACK: Duration = Duration::from_secs(5);
/// Pauses before repeating a failed poll: the orchestrator may be restarting, or overloaded, in
/// which case every client polling again at once would keep it so.
const POLL_RETRY_FIRST: Duration = Duration::from_millis(200);
const POLL_RETRY_MAX: Duration = Duration::from_secs(2);
/// Backoff bounds of `POST` retries (`--post-retries`).
const POST_BACKOFF_FIRST: Duration = Duration::from_millis(100);
const POST_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// The longest `Retry-After` obeyed: a client on a schedule would rather give up than wait longer.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(10);

/// Polls that failed and were repeated.
#[derive(Debug, Default)]
struct PollErrors {
    count: u32,
    last: Option<String>,
}

/// What a `POST /orders` came to.
enum Placed {
    Accepted { order_id: String, status: SagaStatus },
    Rejected { status: u16, detail: String },
}

/// Places `order` and waits for its saga.
pub(super) async fn place_and_wait(worker: &Worker, order: &PlannedOrder) -> OrderResult {
    let placed_at = Instant::now();
    let deadline = placed_at + worker.saga_timeout;
    let mut polls = PollErrors::default();
    let fate = match place(worker, order, deadline).await {
        Err(error) => Fate::PostFailed { error },
        Ok(Placed::Rejected { status, detail }) => Fate::Rejected { status, detail },
        Ok(Placed::Accepted { order_id, status }) => {
            wait_terminal(worker, order_id, status, deadline, &mut polls).await
        }
    };
    OrderResult { intent: order.intent, placed_at, fate, poll_errors: polls.count, last_poll_error: polls.last }
}

/// `POST /orders`, repeated up to `post_retries` times on a transport error or a 5xx. Retries
/// carry an `Idempotency-Key`, so a repeated `POST` whose first try did land places no second order.
async fn place(worker: &Worker, order: &PlannedOrder, deadline: Instant) -> Result<Placed, String> {
    let url = format!("{}/orders", worker.targets.orchestrator);
    let key = format!("load-{}-{}", worker.run_id, order.index);
    let mut backoff = POST_BACKOFF_FIRST;
    let mut attempt = 0;
    loop {
        let mut request = worker.http.post(&url).timeout(worker.request_timeout).json(&order.body);
        if worker.post_retries > 0 {
            request = request.header("idempotency-key", &key);
        }
        let (error, retry_after) = match request.send().await {
            Ok(response) => match answer(response).await {
                Ok(placed) => return Ok(placed),
                Err(refused) => (refused.error, refused.retry_after),
            },
            Err(err) => (format!("POST /orders: {}", describe(&err)), None),
        };
        attempt += 1;
        // An overloaded orchestrator says when to come back: waiting less would only be refused
        // again, and keep it overloaded.
        let pause = retry_after.map_or(backoff, |asked| asked.clamp(backoff, RETRY_AFTER_MAX));
        if attempt > worker.post_retries || Instant::now() + pause >= deadline {
            return Err(error);
        }
        tokio::time::sleep(pause).await;
        backoff = (backoff * 2).min(POST_BACKOFF_MAX);
    }
}

/// A `POST /orders` that a retry might fix, and how long the orchestrator asked to wait first.
struct Refused {
    error: String,
    retry_after: Option<Duration>,
}

/// `Retry-After` in seconds (the form the orchestrator and participants send; an HTTP date is
/// ignored and the usual backoff applies).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Reads a `POST /orders` answer: `Err` for what a retry might fix (a 5xx, a body cut short).
async fn answer(response: reqwest::Response) -> Result<Placed, Refused> {
    let status = response.status();
    let retry_after = retry_after(&response);
    let refused = |error: String| Refused { error, retry_after };
    let bytes = match response.bytes().await {
        Ok(bytes) => bytes,
        Err(err) => return Err(refused(format!("POST /orders: {status} with an unreadable body: {}", describe(&err)))),
    };
    if status == StatusCode::ACCEPTED {
        return match serde_json::from_slice::<OrderView>(&bytes) {
            Ok(view) => Ok(Placed::Accepted { order_id: view.order_id.to_string(), status: view.status }),
            Err(err) => Err(refused(format!("POST /orders: 202 with a body that is not an order: {err}"))),
        };
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let detail = body["detail"].as_str().map_or_else(|| body.to_string(), str::to_owned);
    if status.is_client_error() {
        return Ok(Placed::Rejected { status: status.as_u16(), detail });
    }
    Err(refused(format!("POST /orders: {status}: {detail}")))
}

/// Long-polls until the saga is terminal or `deadline` passes.
async fn wait_terminal(
    worker: &Worker,
    order_id: String,
    mut status: SagaStatus,
    deadline: Instant,
    polls: &mut PollErrors,
) -> Fate {
    let url = format!("{}/orders/{order_id}", worker.targets.orchestrator);
    let mut pause = POLL_RETRY_FIRST;
    loop {
        let now = Instant::now();
        if let Some(outcome) = Outcome::of_status(status) {
            return Fate::Accepted { order_id, outcome, last_status: status, ended_at: now };
        }
        if now >= deadline {
            return Fate::Accepted { order_id, outcome: Outcome::NotFinished, last_status: status, ended_at: now };
        }
        let wait = (deadline - now).min(LONG_POLL);
        let polled = worker
            .http
            .get(&url)
            .query(&[("wait_ms", wait.as_millis().to_string())])
            .timeout(wait + POLL_SLACK)
            .send()
            .await;
        let failure = match polled {
            Ok(response) if response.status() == StatusCode::OK => match response.json::<OrderView>().await {
                Ok(view) => {
                    status = view.status;
                    pause = POLL_RETRY_FIRST;
                    continue;
                }
                Err(err) => format!("GET /orders/{order_id}: {}", describe(&err)),
            },
            Ok(response) => format!("GET /orders/{order_id}: {}", response.status()),
            Err(err) => format!("GET /orders/{order_id}: {}", describe(&err)),
        };
        polls.count += 1;
        polls.last = Some(failure);
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        pause = (pause * 2).min(POLL_RETRY_MAX);
    }
}

/// A reqwest error with its causes ("error sending request: connection refused"), which its
/// `Display` alone leaves out.
pub(super) fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
