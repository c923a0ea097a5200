//! `sagactl orders` and `sagactl faults`: the sagas and the faults of a running suite from the
//! terminal, through the same HTTP API the console and the tests use, so nobody has to
//! hand-write curl with bearer tokens.
//!
//! The suite is found through the state file (`sagactl up`), or at `--url` (compose, another
//! machine). Operator actions carry the operator token: `OPERATOR_TOKEN`, else the admin token
//! `up` gave every service (which the orchestrator takes as its operator token by default).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::Utc;
use saga_shared::api::{
    BatchAction, BatchFilter, BatchRequest, BatchResult, BatchStatus, BatchView, OperatorAction, OrderView, SagaEvent,
    SagaStatus, Text,
};
use saga_shared::faults::{FaultConfig, FaultScope};
use saga_suite::services::LauncherEnv;
use saga_suite::state::StateDir;
use serde::Serialize;
use uuid::Uuid;

/// Every request's bound.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Sagas asked for per page of `GET /orders` (its maximum).
const PAGE: usize = 500;
/// Pause between two actions on sagas named one by one: hundreds of retries should not arrive
/// as one burst on an orchestrator that is just recovering (a batch has its own pace).
const BULK_PAUSE: Duration = Duration::from_millis(20);
/// Most sagas one bulk form acts on (a batch operation's bound).
const MAX_BATCH: usize = 10_000;
/// How often a bulk form reads its batch's progress.
const FOLLOW_EVERY: Duration = Duration::from_millis(300);
/// How long a bulk form follows a batch that makes no progress (nobody drives it, or its
/// orchestrator is down) before it leaves it to the orchestrator.
const STALLED: Duration = Duration::from_secs(120);

/// Where the suite is and who acts.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The orchestrator's base URL (default: the running `sagactl up`'s).
    #[arg(long, value_name = "URL", global = true)]
    pub url: Option<String>,
}

/// `sagactl orders …`.
#[derive(Debug, clap::Subcommand)]
pub enum OrdersCommand {
    /// List sagas, newest first, with their status, current step, age and failure reason.
    List {
        #[command(flatten)]
        filter: Filter,
        /// At most this many (default 50).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print the order views as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One saga: its order view, its steps and its timeline.
    Show {
        order_id: Uuid,
        /// Print `{"order": …, "events": […]}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Resume failed sagas: the ones named, or every one matching the filter (asks first).
    Retry(Action),
    /// Compensate sagas going forward on purpose: the ones named, or every one matching the
    /// filter (asks first).
    Cancel(Action),
}

/// Which sagas a list or a bulk action is about (the same filter for both: `GET /orders`'s
/// query, or a batch operation's filter).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Filter {
    /// Only sagas in this status (pending, running, compensating, completed, compensated, failed).
    #[arg(long)]
    pub status: Option<SagaStatus>,
    /// Only order ids starting with these hex digits.
    #[arg(long, value_name = "HEX")]
    pub id_prefix: Option<String>,
    /// Only sagas accepted longer ago than this (e.g. 90s, 10m, 2h).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub older_than: Option<Duration>,
    /// Only this customer's orders.
    #[arg(long)]
    pub customer: Option<String>,
    /// Only sagas at this step, going forward or compensating.
    #[arg(long)]
    pub step: Option<String>,
    /// Only sagas whose failure reason contains this text.
    #[arg(long)]
    pub reason_contains: Option<String>,
    /// Only sagas in flight without progress for STUCK_AFTER_MS.
    #[arg(long)]
    pub stuck: bool,
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.id_prefix.is_none()
            && self.older_than.is_none()
            && self.customer.is_none()
            && self.step.is_none()
            && self.reason_contains.is_none()
            && !self.stuck
    }

    /// The query parameters of `GET /orders` (the age aside: it is `created_before`).
    fn query(&self) -> anyhow::Result<Vec<(&'static str, String)>> {
        let mut query = Vec::new();
        query.extend(self.status.map(|status| ("status", status.as_str().to_owned())));
        query.extend(self.id_prefix.clone().map(|prefix| ("order_id_prefix", prefix)));
        query.extend(self.customer.clone().map(|customer| ("customer_id", customer)));
        query.extend(self.step.clone().map(|step| ("step", step)));
        query.extend(self.reason_contains.clone().map(|reason| ("reason", reason)));
        if self.stuck {
            query.push(("stuck", "true".to_owned()));
        }
        if let Some(age) = self.older_than {
            let cutoff = Utc::now() - chrono::Duration::from_std(age).context("--older-than is too long")?;
            query.push(("created_before", cutoff.to_rfc3339()));
        }
        Ok(query)
    }
}

/// An operator action on sagas.
#[derive(Debug, Clone, clap::Args)]
pub struct Action {
    /// The sagas to act on; without any, every saga matching the filter.
    pub order_ids: Vec<Uuid>,
    #[command(flatten)]
    pub filter: Filter,
    /// Who acts (recorded in each saga's timeline).
    #[arg(long, default_value = "sagactl")]
    pub operator: String,
    /// Why (recorded in each saga's timeline).
    #[arg(long)]
    pub reason: Option<String>,
    /// Do not ask before acting on the sagas a filter matched.
    #[arg(long)]
    pub yes: bool,
}

/// What `orders list` and `orders show --json` print.
#[derive(Debug, Serialize)]
struct Shown {
    order: OrderView,
    events: Vec<SagaEvent>,
}

/// The orchestrator's API, as an operator uses it.
struct Orchestrator {
    http: reqwest::Client,
    base: String,
    /// For operator actions; `None` when neither the environment nor a state file has one.
    token: Option<String>,
}

impl Orchestrator {
    /// The suite of the state file, or the one at `url`.
    fn find(dir: &StateDir, launcher: &LauncherEnv, url: Option<&str>) -> anyhow::Result<Self> {
        let state = dir.load()?;
        let base = match (url, &state) {
            (Some(url), _) => url.trim_end_matches('/').to_owned(),
            (None, Some(state)) => {
                state.services.get("orchestrator").context("the running suite has no orchestrator")?.url.clone()
            }
            (None, None) => bail!(
                "no suite is running here (no {}): start one with `sagactl up`, or give --url",
                dir.state_path().display()
            ),
        };
        let token = launcher.operator_token(state.as_ref().map(|state| state.admin_token.as_str()));
        let http =
            reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build().context("cannot build the HTTP client")?;
        Ok(Self { http, base, token })
    }

    /// `GET path?query`, answered 200 with JSON.
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let response =
            self.http.get(&url).query(query).send().await.with_context(|| format!("GET {url}: no answer"))?;
        let status = response.status();
        if !status.is_success() {
            bail!("GET {url} answered {status}: {}", problem_detail(response).await);
        }
        response.json().await.with_context(|| format!("GET {url} did not answer the JSON expected"))
    }

    /// The sagas matching `filter`, newest first, at most `limit`: page by page.
    async fn list(&self, filter: &Filter, limit: usize) -> anyhow::Result<Vec<OrderView>> {
        let filters = filter.query()?;
        let mut found = Vec::new();
        let mut before: Option<Uuid> = None;
        loop {
            let mut query = filters.clone();
            query.push(("limit", PAGE.to_string()));
            query.extend(before.map(|id| ("before", id.to_string())));
            let page: Vec<OrderView> = self.get("/orders", &query).await?;
            let full = page.len() == PAGE;
            before = page.last().map(|order| order.order_id);
            found.extend(page);
            if found.len() >= limit || !full {
                found.truncate(limit);
                return Ok(found);
            }
        }
    }

    /// `POST path` with the operator token and `body`, answered 2xx with JSON.
    async fn post_operator<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        let token = self.token.as_deref().context(
            "no operator token: set OPERATOR_TOKEN (or run this where `sagactl up` runs, whose admin token it is)",
        )?;
        let url = format!("{}{path}", self.base);
        let request = self.http.post(&url).bearer_auth(token).json(body);
        let response = request.send().await.with_context(|| format!("POST {url}: no answer"))?;
        let status = response.status();
        match status.as_u16() {
            200..=299 => response.json().await.with_context(|| format!("POST {url}: not the JSON expected")),
            401 | 403 => {
                bail!("the orchestrator refused the operator token ({status}): set OPERATOR_TOKEN to its token")
            }
            _ => bail!("{status}: {}", problem_detail(response).await),
        }
    }

    /// `POST /orders/{id}/retry` or `/cancel` with who acts and why; the saga's status after it.
    async fn act(&self, order_id: Uuid, verb: BatchAction, who: &OperatorAction) -> anyhow::Result<String> {
        let view: OrderView = self.post_operator(&format!("/orders/{order_id}/{verb}"), who).await?;
        Ok(format!("now {}", view.status.as_str()))
    }
}

/// The `detail` (else `title`) of a problem+json answer, else its body.
async fn problem_detail(response: reqwest::Response) -> String {
    let text = response.text().await.unwrap_or_default();
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(problem) => problem["detail"].as_str().or(problem["title"].as_str()).unwrap_or(&text).to_owned(),
        Err(_) => text,
    }
}

/// Runs `sagactl orders …`.
pub async fn run(
    dir: &StateDir,
    launcher: &LauncherEnv,
    target: &Target,
    command: OrdersCommand,
) -> anyhow::Result<ExitCode> {
    let orchestrator = Orchestrator::find(dir, launcher, target.url.as_deref())?;
    match command {
        OrdersCommand::List { filter, limit, json } => {
            let orders = orchestrator.list(&filter, limit).await?;
            if json {
                crate::outln!("{}", serde_json::to_string_pretty(&orders)?);
            } else {
                print_list(&orders);
            }
            Ok(ExitCode::SUCCESS)
        }
        OrdersCommand::Show { order_id, json } => {
            let order: OrderView = orchestrator.get(&format!("/orders/{order_id}"), &[]).await?;
            let events: Vec<SagaEvent> = orchestrator.get(&format!("/orders/{order_id}/events"), &[]).await?;
            if json {
                crate::outln!("{}", serde_json::to_string_pretty(&Shown { order, events })?);
            } else {
                print_order(&order, &events);
            }
            Ok(ExitCode::SUCCESS)
        }
        OrdersCommand::Retry(action) => act(&orchestrator, BatchAction::Retry, action).await,
        OrdersCommand::Cancel(action) => act(&orchestrator, BatchAction::Cancel, action).await,
    }
}

/// A retry or cancel of the sagas named (one request each, as the console does), or of those
/// the filter matches, once the operator has confirmed their count: then a batch operation of
/// the orchestrator's, which goes on if this command stops, followed here until it is done.
/// The command fails if any saga was not acted on.
async fn act(orchestrator: &Orchestrator, verb: BatchAction, action: Action) -> anyhow::Result<ExitCode> {
    let who = OperatorAction {
        operator: Some(Text::try_from(action.operator.clone()).map_err(anyhow::Error::msg).context("--operator")?),
        reason: action
            .reason
            .clone()
            .map(Text::try_from)
            .transpose()
            .map_err(anyhow::Error::msg)
            .context("--reason")?,
    };
    if !action.order_ids.is_empty() {
        if !action.filter.is_empty() {
            bail!("give either order ids or a filter, not both");
        }
        return act_on_each(orchestrator, verb, &action.order_ids, &who).await;
    }
    let Some(status) = action.filter.status else {
        bail!("name the sagas to {verb}, or select them with --status (and any other filter)");
    };
    let matched = orchestrator.list(&action.filter, MAX_BATCH).await?.len();
    if matched == 0 {
        crate::outln!("no saga matches; nothing to {verb}");
        return Ok(ExitCode::SUCCESS);
    }
    if !action.yes {
        confirm(&format!("{verb} {matched} saga(s)?"))?;
    }
    let request = BatchRequest {
        action: verb,
        filter: BatchFilter {
            status,
            order_id_prefix: action.filter.id_prefix.clone(),
            older_than_s: action.filter.older_than.map(|age| age.as_secs()),
            customer_id: action.filter.customer.clone(),
            step: action.filter.step.clone(),
            reason: action.filter.reason_contains.clone(),
            created_after: None,
            created_before: None,
            stuck: action.filter.stuck,
        },
        // The oldest `matched` of those the filter matches now: the ones just counted.
        max: Some(u32::try_from(matched).context("too many sagas for one batch")?),
        operator: who.operator,
        reason: who.reason,
    };
    let created: BatchView = orchestrator.post_operator("/batch-operations", &request).await?;
    crate::outln!(
        "batch {}: {} saga(s) to {verb}; the orchestrator acts on them even if this command stops \
         (GET /batch-operations/{})",
        created.id,
        created.matched,
        created.id
    );
    let path = format!("/batch-operations/{}", created.id);
    let mut last_done = u64::MAX;
    let mut last_progress = std::time::Instant::now();
    let finished = loop {
        // The orchestrator may restart meanwhile (the batch survives it): an unanswered read
        // is waited out, up to STALLED without any progress.
        match orchestrator.get::<BatchView>(&path, &[]).await {
            Ok(progress) => {
                let acted = progress.done + progress.refused + progress.failed;
                if acted != last_done {
                    eprintln!("sagactl: batch {}: {acted} of {} acted on", created.id, progress.matched);
                    last_done = acted;
                    last_progress = std::time::Instant::now();
                }
                if progress.status == BatchStatus::Done {
                    break orchestrator.get::<BatchView>(&path, &[("results", "true".to_owned())]).await?;
                }
            }
            Err(err) => eprintln!("sagactl: warning: {err:#}; still following batch {}", created.id),
        }
        if last_progress.elapsed() > STALLED {
            bail!(
                "batch {} made no progress for {} s; it goes on in the orchestrator: follow it with \
                 GET /batch-operations/{}",
                created.id,
                STALLED.as_secs(),
                created.id
            );
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    };
    for item in finished.results.unwrap_or_default() {
        let result = item.result.map_or("pending", BatchResult::as_str);
        let detail = item.detail.map(|d| format!(": {d}")).unwrap_or_default();
        crate::outln!("{}  {verb}: {result}{detail}", item.order_id);
    }
    if finished.refused + finished.failed > 0 {
        eprintln!("sagactl: {} of {} saga(s) not acted on", finished.refused + finished.failed, finished.matched);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The sagas named, one request each, paced.
async fn act_on_each(
    orchestrator: &Orchestrator,
    verb: BatchAction,
    order_ids: &[Uuid],
    who: &OperatorAction,
) -> anyhow::Result<ExitCode> {
    let mut refused = 0;
    for (n, order_id) in order_ids.iter().enumerate() {
        if n > 0 {
            tokio::time::sleep(BULK_PAUSE).await;
        }
        match orchestrator.act(*order_id, verb, who).await {
            Ok(outcome) => crate::outln!("{order_id}  {verb}: {outcome}"),
            Err(err) => {
                refused += 1;
                crate::outln!("{order_id}  {verb} refused: {err:#}");
            }
        }
    }
    if refused > 0 {
        eprintln!("sagactl: {refused} of {} saga(s) not acted on", order_ids.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks `question` on the terminal; anything but yes refuses. Without a terminal to ask on,
/// refuses and says how to go ahead.
fn confirm(question: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!("{question} Not asking without a terminal: add --yes to go ahead");
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush().context("cannot write to the terminal")?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).context("cannot read the answer")?;
    if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        bail!("not confirmed; nothing done");
    }
    Ok(())
}

/// The step a saga is at: the first not succeeded going forward, the last compensating one
/// going backward; `-` once it ended.
fn current_step(order: &OrderView) -> &str {
    use saga_shared::api::StepStatus;
    let step = match order.status {
        SagaStatus::Pending | SagaStatus::Running => order.steps.iter().find(|s| s.status != StepStatus::Succeeded),
        SagaStatus::Compensating | SagaStatus::Failed => {
            order.steps.iter().rev().find(|s| !matches!(s.status, StepStatus::Pending | StepStatus::Compensated))
        }
        SagaStatus::Completed | SagaStatus::Compensated => None,
    };
    step.map_or("-", |s| s.name.as_str())
}

/// A step's output as `key=value …` (`tracking_number=TRK-…`), with a trailing space.
fn output_text(output: &serde_json::Value) -> String {
    let Some(fields) = output.as_object() else { return format!("{output} ") };
    fields
        .iter()
        .map(|(key, value)| match value.as_str() {
            Some(text) => format!("{key}={text} "),
            None => format!("{key}={value} "),
        })
        .collect()
}

/// A duration as `4s`, `12m`, `3h`, `2d`.
fn age(since: chrono::DateTime<Utc>) -> String {
    let seconds = (Utc::now() - since).num_seconds().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn print_list(orders: &[OrderView]) {
    crate::outln!("{:<36}  {:<12}  {:<18}  {:>5}  FAILURE", "ORDER", "STATUS", "STEP", "AGE");
    for order in orders {
        let reason: String = order.failure_reason.as_deref().unwrap_or("").chars().take(60).collect();
        crate::outln!(
            "{:<36}  {:<12}  {:<18}  {:>5}  {reason}",
            order.order_id,
            order.status.as_str(),
            current_step(order),
            age(order.created_at)
        );
    }
    crate::outln!("{} saga(s)", orders.len());
}

fn print_order(order: &OrderView, events: &[SagaEvent]) {
    crate::outln!("order    {}", order.order_id);
    crate::outln!("status   {}", order.status.as_str());
    crate::outln!("customer {}", order.customer_id.as_str());
    let items: Vec<String> =
        order.items.as_slice().iter().map(|item| format!("{} x {}", item.quantity.get(), item.sku.as_str())).collect();
    crate::outln!("items    {}", items.join(", "));
    if let Some(total) = order.total_cents {
        crate::outln!("total    {}.{:02}", total / 100, total % 100);
    }
    crate::outln!("ships to {}", order.country);
    crate::outln!("created  {} ({} ago)", order.created_at.to_rfc3339(), age(order.created_at));
    crate::outln!("updated  {}", order.updated_at.to_rfc3339());
    if let Some(owner) = &order.owner {
        crate::outln!("driver   {owner}");
    }
    if let Some(trace_id) = &order.trace_id {
        crate::outln!("trace    {trace_id}");
    }
    if let Some(next) = order.next_attempt_at {
        crate::outln!("next     {}", next.to_rfc3339());
    }
    if let Some(deadline) = order.deadline_at {
        crate::outln!("deadline {}", deadline.to_rfc3339());
    }
    if let Some(reason) = &order.failure_reason {
        crate::outln!("failure  {reason}");
    }
    crate::outln!(
        "\n{:<18}  {:<12}  {:>8}  {:>13}  OUTPUT / LAST ERROR",
        "STEP",
        "STATUS",
        "ATTEMPTS",
        "COMPENSATIONS"
    );
    for step in &order.steps {
        let output = step.output.as_ref().map(output_text).unwrap_or_default();
        crate::outln!(
            "{:<18}  {:<12}  {:>8}  {:>13}  {output}{}",
            step.name,
            step.status.as_str(),
            step.attempts,
            step.compensation_attempts,
            step.last_error.as_deref().unwrap_or("")
        );
    }
    crate::outln!("\nTIMELINE");
    for event in events {
        let about = match (event.step.as_deref(), event.attempt) {
            (Some(step), Some(attempt)) => format!("{step} #{attempt} "),
            (Some(step), None) => format!("{step} "),
            (None, _) => String::new(),
        };
        let detail = event.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
        crate::outln!(
            "{}  {:<12} {about}{} by {}{detail}",
            event.at.format("%H:%M:%S%.3f"),
            event.kind.as_str(),
            event.outcome.as_str(),
            event.actor
        );
    }
}

/// `sagactl faults SERVICE …`: what to set (all of it replaces the service's faults).
#[derive(Debug, Clone, clap::Args)]
pub struct FaultsArgs {
    /// inventory, payment, shipping, notification or orchestrator.
    pub service: String,
    /// Added latency per request, in milliseconds.
    #[arg(long)]
    pub latency_ms: Option<u64>,
    /// Share of requests answered 503 without doing anything (0 to 1).
    #[arg(long)]
    pub error_rate: Option<f64>,
    /// Share of requests done but never answered (0 to 1): the caller's ambiguous case.
    #[arg(long)]
    pub drop_response_rate: Option<f64>,
    /// Leave requests unanswered until the server's request timeout.
    #[arg(long)]
    pub hang: bool,
    /// Which requests: writes (default) or all.
    #[arg(long, value_parser = parse_scope)]
    pub scope: Option<FaultScope>,
    /// Switch every fault off.
    #[arg(long, conflicts_with_all = ["latency_ms", "error_rate", "drop_response_rate", "hang", "scope"])]
    pub clear: bool,
}

impl FaultsArgs {
    /// The faults asked for; `None` when nothing was (the command then shows the current ones).
    fn config(&self) -> Option<FaultConfig> {
        let asked = self.clear
            || self.hang
            || self.latency_ms.is_some()
            || self.error_rate.is_some()
            || self.drop_response_rate.is_some()
            || self.scope.is_some();
        asked.then(|| FaultConfig {
            latency_ms: self.latency_ms.unwrap_or(0),
            error_rate: self.error_rate.unwrap_or(0.0),
            hang: self.hang,
            drop_response_rate: self.drop_response_rate.unwrap_or(0.0),
            scope: self.scope.unwrap_or_default(),
            ..FaultConfig::default()
        })
    }
}

fn parse_scope(text: &str) -> Result<FaultScope, String> {
    match text {
        "writes" => Ok(FaultScope::Writes),
        "all" => Ok(FaultScope::All),
        other => Err(format!("{other:?} is not writes or all")),
    }
}

/// Shows or replaces a running service's faults through its admin API (`/admin/faults`), with
/// the admin token `up` gave it (or `ADMIN_TOKEN`).
pub async fn faults(dir: &StateDir, launcher: &LauncherEnv, args: FaultsArgs) -> anyhow::Result<ExitCode> {
    let state = dir.load_running()?;
    let service = state.services.get(&args.service).with_context(|| {
        let names: Vec<&str> = state.services.keys().map(String::as_str).collect();
        format!("unknown service {:?} (known: {})", args.service, names.join(", "))
    })?;
    let token = launcher.get("ADMIN_TOKEN").unwrap_or(&state.admin_token).to_owned();
    let url = format!("{}/admin/faults", service.url);
    let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build().context("cannot build the HTTP client")?;
    let request = match args.config() {
        Some(config) => http.put(&url).json(&config),
        None => http.get(&url),
    };
    let response = request.bearer_auth(token).send().await.with_context(|| format!("{url}: no answer"))?;
    let status = response.status();
    if !status.is_success() {
        bail!("{url} answered {status}: {}", problem_detail(response).await);
    }
    let now: FaultConfig = response.json().await.with_context(|| format!("{url} did not answer its faults"))?;
    crate::outln!("{}: {}", args.service, describe(&now));
    Ok(ExitCode::SUCCESS)
}

/// One line of what a service's faults do.
fn describe(faults: &FaultConfig) -> String {
    let mut parts = Vec::new();
    if faults.latency_ms > 0 {
        parts.push(format!("latency {} ms", faults.latency_ms));
    }
    if faults.error_rate > 0.0 {
        parts.push(format!("503 for {:.0} %", faults.error_rate * 100.0));
    }
    if faults.drop_response_rate > 0.0 {
        parts.push(format!("answers dropped for {:.0} %", faults.drop_response_rate * 100.0));
    }
    if faults.hang {
        parts.push("hanging".to_owned());
    }
    if parts.is_empty() {
        return "no faults".to_owned();
    }
    let scope = match faults.scope {
        FaultScope::Writes => "writes",
        FaultScope::All => "all requests",
    };
    format!("{} (on {scope})", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_fault_flag_shows_and_any_flag_replaces_all_of_them() {
        let args = |extra: &[&str]| {
            #[derive(clap::Parser)]
            struct Wrapper {
                #[command(flatten)]
                faults: FaultsArgs,
            }
            let mut argv = vec!["sagactl", "payment"];
            argv.extend_from_slice(extra);
            <Wrapper as clap::Parser>::try_parse_from(argv).map(|w| w.faults)
        };
        assert_eq!(args(&[]).ok().and_then(|a| a.config()), None);
        let slow = args(&["--latency-ms", "2500"]).ok().and_then(|a| a.config());
        assert_eq!(slow, Some(FaultConfig { latency_ms: 2500, ..FaultConfig::default() }));
        assert_eq!(args(&["--clear"]).ok().and_then(|a| a.config()), Some(FaultConfig::default()));
        assert!(args(&["--clear", "--hang"]).is_err(), "--clear with a fault");
        assert!(args(&["--scope", "reads"]).is_err());
    }

    #[test]
    fn a_filter_needs_something_and_ages_read_as_durations() {
        assert!(Filter::default().is_empty());
        assert_eq!(humantime::parse_duration("10m").ok(), Some(Duration::from_secs(600)));
        assert!(humantime::parse_duration("ten minutes").is_err());
    }

    #[test]
    fn faults_read_as_one_line() {
        assert_eq!(describe(&FaultConfig::default()), "no faults");
        let slow = FaultConfig { latency_ms: 200, error_rate: 0.5, ..FaultConfig::default() };
        assert_eq!(describe(&slow), "latency 200 ms, 503 for 50 % (on writes)");
    }
}
