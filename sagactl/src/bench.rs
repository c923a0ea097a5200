//! The load tool: closed-loop clients placing orders, measured end to end.
//!
//! Each client places an order (`POST /orders`) and waits for its saga to finish with the
//! orchestrator's long-poll (`GET /orders/{id}?wait_ms=`), then places the next: latency is
//! POST → terminal as a client sees it. The `direct` mode is the baseline the orchestrator is
//! compared with: each client calls the four participants' `PUT`s itself, in order.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use uuid::Uuid;

/// Where the suite under load listens.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Orchestrator base URL.
    pub orchestrator: String,
    /// Participants' base URLs: inventory, payment, shipping, notification.
    pub participants: [String; 4],
}

/// What the load does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Orders through the orchestrator.
    Saga,
    /// The four `PUT`s called directly by the client (no orchestrator).
    Direct,
}

/// One run's figures.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Load mode.
    pub mode: Mode,
    /// Concurrent clients.
    pub clients: usize,
    /// Sagas (or direct chains) finished in the measured window.
    pub finished: u64,
    /// Of which not `completed` (or a direct chain that failed).
    pub not_completed: u64,
    /// Measured window.
    pub elapsed: Duration,
    /// Latency distribution in microseconds.
    pub latency_us: Histogram<u64>,
}

impl RunResult {
    /// Finished per second.
    pub fn throughput(&self) -> f64 {
        self.finished as f64 / self.elapsed.as_secs_f64()
    }

    /// A latency percentile in milliseconds.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }
}

/// The order every client places: one unit of the load product, paid by the load customer.
pub fn load_order() -> Value {
    json!({
        "customer_id": "loadtest",
        "items": [{ "sku": "LOAD-1", "quantity": 1 }],
        "shipping_address": { "name": "Load Test", "line1": "1 Bench Street", "city": "Benchville",
                              "postal_code": "00000", "country": "FR" }
    })
}

/// Runs `clients` closed-loop clients for `warmup + measure`; only the measured window counts.
pub async fn run(
    targets: &Targets,
    mode: Mode,
    clients: usize,
    warmup: Duration,
    measure: Duration,
) -> anyhow::Result<RunResult> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(35))
        .pool_max_idle_per_host(clients * 2)
        .tcp_nodelay(true)
        .build()?;
    let start = Instant::now();
    let measure_from = start + warmup;
    let stop_at = measure_from + measure;
    let shared = Arc::new(Mutex::new((Histogram::<u64>::new(3)?, 0u64, 0u64)));
    let mut workers = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (http, targets, shared) = (http.clone(), targets.clone(), Arc::clone(&shared));
        workers.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new(3)?;
            let (mut finished, mut failed) = (0u64, 0u64);
            while Instant::now() < stop_at {
                let began = Instant::now();
                let completed = match mode {
                    Mode::Saga => one_saga(&http, &targets).await?,
                    Mode::Direct => one_direct_chain(&http, &targets).await?,
                };
                if began >= measure_from && Instant::now() <= stop_at {
                    local.record(began.elapsed().as_micros() as u64)?;
                    finished += 1;
                    failed += u64::from(!completed);
                }
            }
            let mut totals = shared.lock().await;
            totals.0.add(&local)?;
            totals.1 += finished;
            totals.2 += failed;
            anyhow::Ok(())
        }));
    }
    for worker in workers {
        worker.await.context("load client panicked")??;
    }
    let (latency_us, finished, not_completed) =
        Arc::try_unwrap(shared).map_err(|_| anyhow::anyhow!("load clients still hold the results"))?.into_inner();
    Ok(RunResult { mode, clients, finished, not_completed, elapsed: measure, latency_us })
}

/// Places one order and waits for its saga; true if it completed.
async fn one_saga(http: &reqwest::Client, targets: &Targets) -> anyhow::Result<bool> {
    let placed: Value = http
        .post(format!("{}/orders", targets.orchestrator))
        .json(&load_order())
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = placed["order_id"].as_str().context("no order_id in the answer")?;
    loop {
        let order: Value = http
            .get(format!("{}/orders/{id}?wait_ms=25000", targets.orchestrator))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        match order["status"].as_str() {
            Some("completed") => return Ok(true),
            Some("compensated" | "failed") => return Ok(false),
            _ => {} // the long-poll timed out: ask again
        }
    }
}

/// Calls the four participants directly, in order; true if all four succeeded.
async fn one_direct_chain(http: &reqwest::Client, targets: &Targets) -> anyhow::Result<bool> {
    let order = load_order();
    let id = Uuid::now_v7();
    let [inventory, payment, shipping, notification] = &targets.participants;
    let reservation = put(http, &format!("{inventory}/reservations/{id}"), &json!({ "items": order["items"] })).await?;
    let Some(total) = reservation.and_then(|r| r["total_cents"].as_i64()) else { return Ok(false) };
    let calls = [
        (format!("{payment}/payments/{id}"), json!({ "customer_id": order["customer_id"], "amount_cents": total })),
        (
            format!("{shipping}/shipments/{id}"),
            json!({ "address": order["shipping_address"], "items": order["items"] }),
        ),
        (format!("{notification}/notifications/{id}"), json!({ "customer_id": order["customer_id"] })),
    ];
    for (url, body) in calls {
        if put(http, &url, &body).await?.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn put(http: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<Option<Value>> {
    let response = http.put(url).json(body).send().await?;
    Ok(if response.status().is_success() { Some(response.json().await?) } else { None })
}
