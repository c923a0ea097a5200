//! The one HTTP client the orchestrator uses for every participant.
//!
//! All participants share one contract (`PUT` does, `DELETE` undoes, `GET` tells, keyed by order
//! id), so one client serves them all; what differs (URL, resource, body) is data in the step
//! definition. Each call has the step's timeout, and its outcome says whether a retry is safe and
//! whether the call may have taken effect.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use crate::saga::definition::StepDefinition;

/// What came of a `PUT` or `DELETE`.
#[derive(Debug)]
pub enum CallOutcome {
    /// 2xx: done (or already done); the body is the participant's record.
    Done(Value),
    /// 4xx: refused for good; retrying the same request cannot help.
    Refused {
        /// The status.
        status: u16,
        /// The problem's detail (or title, or body).
        detail: String,
    },
    /// 5xx, timeout, lost or refused connection: a retry may succeed.
    Transient {
        /// Whether the call may have taken effect (everything but a refused connection).
        ambiguous: bool,
        /// Metric label: `timeout` or `transient`.
        label: &'static str,
        /// What happened.
        detail: String,
    },
}

impl CallOutcome {
    /// The `result` label of attempt metrics: `ok`, `permanent`, `transient` or `timeout`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Done(_) => "ok",
            Self::Refused { .. } => "permanent",
            Self::Transient { label, .. } => label,
        }
    }
}

/// What a participant says about an order's step when asked (reconciliation).
#[derive(Debug)]
pub enum Inspection {
    /// The step happened and stands; its record.
    Happened(Value),
    /// The step was compensated (or tombstoned).
    Compensated,
    /// The participant has no record: it did not happen (yet).
    Absent,
    /// The participant could not be asked.
    Unreachable(String),
}

/// The shared client.
#[derive(Debug, Clone)]
pub struct ParticipantClient {
    http: reqwest::Client,
}

impl ParticipantClient {
    /// A client with pooled keep-alive connections; every call sets its own timeout.
    pub fn new() -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self { http })
    }

    fn url(step: &StepDefinition, order_id: Uuid) -> String {
        format!("{}/{}/{order_id}", step.participant.base_url, step.participant.resource)
    }

    /// `PUT`: do the step.
    pub async fn act(&self, step: &StepDefinition, order_id: Uuid, body: &Value) -> CallOutcome {
        let request = self.http.request(Method::PUT, Self::url(step, order_id)).timeout(step.timeout).json(body);
        Self::outcome(request.send().await).await
    }

    /// `DELETE`: undo the step (or tombstone it if it never happened).
    pub async fn compensate(&self, step: &StepDefinition, order_id: Uuid) -> CallOutcome {
        let request = self.http.request(Method::DELETE, Self::url(step, order_id)).timeout(step.timeout);
        Self::outcome(request.send().await).await
    }

    /// `GET`: did the step happen?
    pub async fn inspect(&self, step: &StepDefinition, order_id: Uuid) -> Inspection {
        let request = self.http.get(Self::url(step, order_id)).timeout(step.timeout);
        match Self::outcome(request.send().await).await {
            CallOutcome::Done(record) => {
                let stands = record.get("status").and_then(Value::as_str) == Some(step.participant.done_status);
                if stands {
                    Inspection::Happened(record)
                } else {
                    Inspection::Compensated
                }
            }
            CallOutcome::Refused { status: 404, .. } => Inspection::Absent,
            CallOutcome::Refused { status, detail } => Inspection::Unreachable(format!("{status}: {detail}")),
            CallOutcome::Transient { detail, .. } => Inspection::Unreachable(detail),
        }
    }

    async fn outcome(sent: reqwest::Result<reqwest::Response>) -> CallOutcome {
        let response = match sent {
            Ok(response) => response,
            Err(err) => return Self::transport_error(&err),
        };
        let status = response.status();
        let body = match response.bytes().await {
            Ok(bytes) => serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            // The answer was cut off: the status says what happened only if it was an error.
            Err(err) if status.is_success() => return Self::transport_error(&err),
            Err(_) => Value::Null,
        };
        if status.is_success() {
            CallOutcome::Done(body)
        } else if status.is_client_error()
            && status != StatusCode::REQUEST_TIMEOUT
            && status != StatusCode::TOO_MANY_REQUESTS
        {
            CallOutcome::Refused { status: status.as_u16(), detail: problem_detail(status, &body) }
        } else {
            // A 5xx (or 408/429) may come after the participant committed (a timeout during
            // commit answers 503): treat it as possibly done.
            CallOutcome::Transient { ambiguous: true, label: "transient", detail: problem_detail(status, &body) }
        }
    }

    fn transport_error(err: &reqwest::Error) -> CallOutcome {
        if err.is_timeout() {
            CallOutcome::Transient { ambiguous: true, label: "timeout", detail: "timed out".to_owned() }
        } else if err.is_connect() {
            // Nothing reached the participant: the step certainly did not happen.
            CallOutcome::Transient { ambiguous: false, label: "transient", detail: format!("connection failed: {err}") }
        } else {
            CallOutcome::Transient { ambiguous: true, label: "transient", detail: format!("connection lost: {err}") }
        }
    }
}

fn problem_detail(status: StatusCode, body: &Value) -> String {
    let text = body.get("detail").or_else(|| body.get("title")).and_then(Value::as_str).unwrap_or("no detail");
    format!("{} {}", status.as_u16(), text)
}
