//! RFC 9457 `application/problem+json` errors: the one way any service answers a failure.
//!
//! Handlers return `Result<_, AppError>`. A client-facing problem carries its status, a stable
//! `type` slug and a human `detail`; an internal failure is logged with its cause and the client
//! only learns that something went wrong on our side (5xx, which callers treat as transient).

use crate::ProblemType;
use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Problem {
    /// A URI reference naming the problem kind, e.g. `/problems/out-of-stock`.
    #[serde(rename = "type")]
    pub type_: String,
    /// A short summary of the problem kind.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What happened in this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Problem {
    /// A problem of `kind` (its type `/problems/<slug>`, title and status come from the
    /// catalogue), with what happened in this occurrence.
    pub fn new(kind: ProblemType, detail: impl Into<Option<String>>) -> Self {
        Self {
            type_: format!("/problems/{}", kind.slug()),
            title: kind.title().to_owned(),
            status: kind.status().as_u16(),
            detail: detail.into(),
        }
    }

    /// The problem's status as a `StatusCode` (500 if the stored number is not a status).
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let mut response = (status, Json(self)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

/// Every error a handler can return.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A failure the client is told about as it is.
    #[error("{} ({})", .0.title, .0.status)]
    Client(Problem),
    /// A failure on our side: logged with its cause, answered with a generic 500.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
    /// A dependency (the database) is unreachable or saturated: a retry later may succeed.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// This process has more work queued than it takes: refused before anything was done, with
    /// `Retry-After`, so a caller backs off instead of adding to the queue.
    #[error("overloaded: {0}")]
    Overloaded(String),
}

impl AppError {
    /// Any client-facing problem.
    pub fn problem(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self::Client(Problem::new(kind, Some(detail.into())))
    }

    /// 422: the request is well-formed but its values break a rule.
    pub fn validation(detail: impl Into<String>) -> Self {
        Self::problem(ProblemType::Validation, detail)
    }

    /// 404: the named thing does not exist.
    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        Self::problem(ProblemType::NotFound, format!("no {what} {id}"))
    }

    /// 422: a replayed `PUT` for this order carries another body than the first one.
    pub fn idempotency_mismatch(order_id: impl std::fmt::Display) -> Self {
        Self::problem(
            ProblemType::IdempotencyMismatch,
            format!("order {order_id} was already submitted with another body; a replay must repeat it exactly"),
        )
    }

    /// 409: the step was compensated (or cancelled before it ran); it can never happen now.
    pub fn already_compensated(order_id: impl std::fmt::Display) -> Self {
        Self::problem(
            ProblemType::AlreadyCompensated,
            format!("order {order_id} was compensated; a late request cannot redo it"),
        )
    }

    /// The HTTP status this error is answered with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::Client(problem) => problem.status_code(),
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable(_) | Self::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            // Saturation and lost connections are transient: say so, so callers retry.
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable(err.to_string())
            }
            // Serialization failures and deadlocks resolve on retry as well.
            sqlx::Error::Database(ref db) if matches!(db.code().as_deref(), Some("40001") | Some("40P01")) => {
                Self::Unavailable(err.to_string())
            }
            other => Self::Internal(anyhow::Error::new(other).context("database error")),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            Self::Client(problem) => problem.into_response(),
            Self::Internal(err) => {
                tracing::error!(error = ?err, "internal error");
                Problem::new(ProblemType::Internal, Some("an unexpected error occurred; it has been logged".to_owned()))
                    .into_response()
            }
            Self::Unavailable(cause) => {
                tracing::warn!(%cause, "dependency unavailable");
                Problem::new(ProblemType::Unavailable, Some("a dependency is unavailable; retry later".to_owned()))
                    .into_response()
            }
            Self::Overloaded(detail) => {
                tracing::warn!(%detail, "overloaded; request refused");
                let mut response = Problem::new(ProblemType::Overloaded, Some(detail)).into_response();
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
                response
            }
        }
    }
}

/// `Retry-After` of an `overloaded` answer, in seconds: a queue that is full now has usually
/// drained a second later (a batch takes milliseconds).
const RETRY_AFTER_SECS: &str = "1";

/// Answer for a route that exists but not with this method (the `Allow` header is kept by axum).
pub async fn method_not_allowed_fallback() -> Problem {
    Problem::new(ProblemType::MethodNotAllowed, Some("this route does not accept that method".to_owned()))
}

/// Fallback for routes that do not exist, so even a 404 is problem+json.
pub async fn not_found_fallback() -> Problem {
    Problem::new(ProblemType::NotFound, Some("no such route".to_owned()))
}

/// The error answers every `PUT`/`DELETE` step endpoint may give, for OpenAPI documents.
#[derive(Debug, utoipa::IntoResponses)]
pub enum StepErrors {
    /// Malformed JSON or path parameter.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(#[to_schema] Problem),
    /// The request body is too large.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(#[to_schema] Problem),
    /// The body is not `application/json`.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(#[to_schema] Problem),
    /// Invalid values, or a replay with another body than the first.
    #[response(status = 422, content_type = "application/problem+json")]
    Unprocessable(#[to_schema] Problem),
    /// Database unavailable, request timed out, the step queue full (`overloaded`, with
    /// `Retry-After`), or an injected fault: retry later.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(#[to_schema] Problem),
}

/// The answers of an endpoint that needs a bearer token (the operator's or the admin's), for
/// OpenAPI documents.
#[derive(Debug, utoipa::IntoResponses)]
pub enum AuthErrors {
    /// No bearer token
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// Wrong bearer token
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
}

/// The error answers of read endpoints, for OpenAPI documents.
#[derive(Debug, utoipa::IntoResponses)]
pub enum ReadErrors {
    /// Malformed path parameter.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(#[to_schema] Problem),
    /// No such resource.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(#[to_schema] Problem),
    /// Database unavailable or request timed out: retry later.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(#[to_schema] Problem),
}
