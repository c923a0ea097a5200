//! The one HTTP client the orchestrator uses for every participant.
//!
//! All participants share one contract (`PUT` does, `DELETE` undoes, `GET` tells, keyed by order
//! id), so one client serves them all; what differs (URL, resource, body) is data in the step
//! definition. Each call has the step's timeout, and its outcome says whether a retry is safe and
//! whether the call may have taken effect.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use saga_shared::api::RecordState;
use serde_json::Value;
use uuid::Uuid;

use crate::{
    definition::{Participant, StepDefinition},
    outcome::{CallFailure, CallOutcome, Inspection},
    participants::Participants,
};

/// Patience of a readiness probe: a ready service answers `/readyz` in milliseconds.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

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

    /// A request to the step's record of `order_id`, carrying the current trace context.
    fn request(&self, method: Method, step: &StepDefinition, order_id: Uuid) -> reqwest::RequestBuilder {
        let url = format!("{}/{}/{order_id}", step.participant.base_url, step.participant.resource);
        let mut headers = reqwest::header::HeaderMap::new();
        saga_shared::telemetry::inject(&mut headers);
        self.http.request(method, url).headers(headers).timeout(step.timeout)
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
            // commit answers 503): treat it as possibly done. A 503 or 429 also says the
            // participant cannot serve now, which its circuit counts.
            let failure = if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
                CallFailure::Unavailable
            } else {
                CallFailure::Unanswered
            };
            CallOutcome::Failed { failure, detail: problem_detail(status, &body) }
        }
    }

    fn transport_error(err: &reqwest::Error) -> CallOutcome {
        let (failure, detail) = if err.is_timeout() {
            (CallFailure::TimedOut, "timed out".to_owned())
        } else if err.is_connect() {
            // Nothing reached the participant: this attempt did not happen.
            (CallFailure::NotDelivered, format!("connection failed: {err}"))
        } else {
            (CallFailure::Unanswered, format!("connection lost: {err}"))
        };
        CallOutcome::Failed { failure, detail }
    }
}

impl Participants for ParticipantClient {
    /// `PUT`: do the step.
    async fn act(&self, step: &StepDefinition, order_id: Uuid, body: &Value) -> CallOutcome {
        let request = self.request(Method::PUT, step, order_id).json(body);
        Self::outcome(request.send().await).await
    }

    /// `DELETE`: undo the step (or tombstone it if it never happened).
    async fn compensate(&self, step: &StepDefinition, order_id: Uuid) -> CallOutcome {
        let request = self.request(Method::DELETE, step, order_id);
        Self::outcome(request.send().await).await
    }

    /// `GET /readyz`: is the participant (and its database) ready again?
    async fn probe(&self, participant: &Participant) -> bool {
        let url = format!("{}/readyz", participant.base_url);
        let answer = self.http.get(url).timeout(PROBE_TIMEOUT).send().await;
        answer.is_ok_and(|response| response.status().is_success())
    }

    /// `GET`: did the step happen?
    async fn inspect(&self, step: &StepDefinition, order_id: Uuid) -> Inspection {
        let request = self.request(Method::GET, step, order_id);
        match Self::outcome(request.send().await).await {
            CallOutcome::Done(record) => match (step.participant.record_state)(&record) {
                Ok(RecordState::Done) => Inspection::Happened(record),
                Ok(RecordState::Compensated) => Inspection::Compensated,
                Err(err) => Inspection::Unreachable(err),
            },
            CallOutcome::Refused { status: 404, .. } => Inspection::Absent,
            CallOutcome::Refused { status, detail } => Inspection::Unreachable(format!("{status}: {detail}")),
            CallOutcome::Failed { detail, .. } => Inspection::Unreachable(detail),
        }
    }
}

fn problem_detail(status: StatusCode, body: &Value) -> String {
    let text = body.get("detail").or_else(|| body.get("title")).and_then(Value::as_str).unwrap_or("no detail");
    format!("{} {}", status.as_u16(), text)
}
