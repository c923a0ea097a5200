//! Extractors whose rejections speak problem+json, like every other error.
//!
//! axum's own `Json`, `Path` and `Query` reject with plain text; these answer problem+json:
//! 415 without a JSON content type, 413 too large, 400 malformed, 422 wrong shape.

use crate::ProblemType;
use axum::body::Bytes;
use axum::{
    Json,
    extract::{FromRequest, FromRequestParts, Request, rejection::JsonRejection, rejection::PathRejection},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::error::Problem;

/// JSON body extractor (and responder) with problem+json rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(req.headers()) {
            return Err(Problem::new(
                ProblemType::UnsupportedMediaType,
                Some("send the body with content-type: application/json".to_owned()),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let kind = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ProblemType::BodyTooLarge
            } else {
                ProblemType::BadRequest
            };
            Problem::new(kind, Some(rejection.body_text()))
        })?;
        parse_object(&bytes).map(Self)
    }
}

/// Parses a request body that must be a JSON object into `T`: 400 for malformed JSON, 422 for
/// anything else that does not fit (serde would otherwise accept a struct written as an array).
pub fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let parsed = Json::<T>::from_bytes(bytes).map(|Json(value)| value).map_err(|rejection| json_problem(&rejection));
    let is_object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    match parsed {
        Err(problem) if problem.status == 400 || is_object => Err(problem),
        _ if !is_object => {
            Err(Problem::new(ProblemType::Validation, Some("the body must be a JSON object".to_owned())))
        }
        parsed => parsed,
    }
}

fn has_json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(mime) = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = mime.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T: Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

/// The problem for a body that `Json::from_bytes` refused (content type and size were checked
/// before the body was read).
fn json_problem(rejection: &JsonRejection) -> Problem {
    let kind = match rejection {
        JsonRejection::JsonDataError(_) => ProblemType::Validation,
        _ => ProblemType::MalformedJson,
    };
    Problem::new(kind, Some(rejection.body_text()))
}

/// Path parameter extractor with problem+json rejections (a malformed id is a 400).
#[derive(Debug, Clone, Copy)]
pub struct AppPath<T>(pub T);

impl<T, S> FromRequestParts<S> for AppPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_problem(&rejection)),
        }
    }
}

fn path_problem(rejection: &PathRejection) -> Problem {
    let kind = if rejection.status().is_server_error() { ProblemType::Internal } else { ProblemType::InvalidPath };
    Problem::new(kind, Some(rejection.body_text()))
}

/// Query-string extractor with problem+json rejections (a malformed query is a 400).
#[derive(Debug, Clone, Copy, Default)]
pub struct AppQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for AppQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(Problem::new(ProblemType::InvalidQuery, Some(rejection.body_text()))),
        }
    }
}
