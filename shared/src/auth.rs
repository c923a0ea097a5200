//! Bearer-token checks for the privileged endpoints: the fault admin API of every service and
//! the orchestrator's operator actions. 401 when no token is presented, 403 when it is wrong.

use crate::ProblemType;
use axum::http::{HeaderMap, header};

use crate::AppError;

/// Passes only a request carrying `Authorization: Bearer <token>`. With no token configured
/// every presented token is wrong (403): the endpoint exists, but nobody may use it.
pub fn require_bearer(headers: &HeaderMap, token: Option<&str>) -> Result<(), AppError> {
    let presented =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match (presented, token) {
        (None, _) => Err(AppError::problem(ProblemType::Unauthorized, "send Authorization: Bearer <token>")),
        (Some(given), Some(token)) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
        (Some(_), Some(_)) => Err(AppError::problem(ProblemType::Forbidden, "wrong token")),
        (Some(_), None) => Err(AppError::problem(
            ProblemType::Forbidden,
            "no token is configured on this server, so nobody may do this",
        )),
    }
}

/// Compares without an early exit, so timing does not reveal how much of the token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderValue, StatusCode};

    use super::*;

    fn bearer(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(header::AUTHORIZATION, value);
        }
        headers
    }

    #[test]
    fn only_the_exact_token_passes() {
        assert!(require_bearer(&bearer("Bearer secret-token"), Some("secret-token")).is_ok());
        let status = |headers: &HeaderMap, token| require_bearer(headers, token).err().map(|e| e.status_code());
        assert_eq!(status(&HeaderMap::new(), Some("secret-token")), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(status(&bearer("Basic c2VjcmV0"), Some("secret-token")), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(status(&bearer("Bearer secret-tokeN"), Some("secret-token")), Some(StatusCode::FORBIDDEN));
        assert_eq!(status(&bearer("Bearer secret"), Some("secret-token")), Some(StatusCode::FORBIDDEN));
        assert_eq!(status(&bearer("Bearer anything"), None), Some(StatusCode::FORBIDDEN));
    }

    #[test]
    fn token_comparison_needs_the_exact_token() {
        assert!(constant_time_eq(b"secret-token", b"secret-token"));
        assert!(!constant_time_eq(b"secret-token", b"secret-tokeN"));
        assert!(!constant_time_eq(b"secret", b"secret-token"));
    }
}
