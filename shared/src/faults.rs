//! Fault injection for demos and tests: latency, errors, hangs, and "commit then drop the response".
//!
//! Faults are off unless configured, by `FAULT_*` variables at start-up or at run time through
//! `PUT /admin/faults`, which exists only when `ADMIN_TOKEN` is set and checks it as a bearer token.
//! They apply to the step endpoints (the business routes), never to health, metrics or admin.

use crate::ProblemType;
use std::sync::{Arc, RwLock};

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderMap, Method},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    AppError,
    config::Env,
    error::{AuthErrors, Problem},
    json::AppJson,
};

/// Longest latency a fault may add (one minute), so a typo cannot wedge a service for hours.
pub const MAX_LATENCY_MS: u64 = 60_000;

/// Which requests the faults apply to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FaultScope {
    /// Only writes (`PUT`, `DELETE`, `POST`: a step, its compensation, an order); reads stay
    /// healthy so a caller can still reconcile.
    #[default]
    Writes,
    /// Every business route, reads included.
    All,
}

/// The faults a service injects. Everything off is the default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FaultConfig {
    /// Added latency before handling, in milliseconds (`FAULT_LATENCY_MS`).
    #[schema(minimum = 0, maximum = 60000)]
    pub latency_ms: u64,
    /// Share of requests answered 503 without doing anything, 0.0–1.0 (`FAULT_ERROR_RATE`).
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub error_rate: f64,
    /// Requests never answered (until the server's request timeout) (`FAULT_HANG`).
    pub hang: bool,
    /// Share of requests whose effect is committed but whose response is never sent, 0.0–1.0
    /// (`FAULT_DROP_RESPONSE_RATE`): the caller sees a timeout, the ambiguous case.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub drop_response_rate: f64,
    /// Which requests are affected (`FAULT_SCOPE`: writes | all).
    pub scope: FaultScope,
    /// Participants, for tests: the step's batch writer panics at its next round, once (the
    /// flag then switches itself off), so its supervision can be seen working: `/readyz` 503
    /// until the writer is restarted. Set only through `PUT /admin/faults`.
    pub panic_step_writer: bool,
}

impl FaultConfig {
    /// Reads `FAULT_LATENCY_MS`, `FAULT_ERROR_RATE`, `FAULT_HANG`, `FAULT_DROP_RESPONSE_RATE`, `FAULT_SCOPE`.
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        let scope = match env.get("FAULT_SCOPE").map(str::to_ascii_lowercase).as_deref() {
            None | Some("writes") => FaultScope::Writes,
            Some("all") => FaultScope::All,
            Some(other) => anyhow::bail!("FAULT_SCOPE={other:?} is not writes or all"),
        };
        let config = Self {
            latency_ms: env.parse_or("FAULT_LATENCY_MS", 0)?,
            error_rate: env.parse_or("FAULT_ERROR_RATE", 0.0)?,
            hang: env.flag("FAULT_HANG", false)?,
            drop_response_rate: env.parse_or("FAULT_DROP_RESPONSE_RATE", 0.0)?,
            scope,
            panic_step_writer: false,
        };
        config.validate().map_err(anyhow::Error::msg)?;
        Ok(config)
    }

    /// Checks the ranges; the message says which value is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.latency_ms > MAX_LATENCY_MS {
            return Err(format!("latency_ms must be at most {MAX_LATENCY_MS}"));
        }
        for (name, rate) in [("error_rate", self.error_rate), ("drop_response_rate", self.drop_response_rate)] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0.0 and 1.0"));
            }
        }
        Ok(())
    }

    /// Whether any fault is switched on.
    pub fn any_enabled(&self) -> bool {
        self.latency_ms > 0 || self.error_rate > 0.0 || self.hang || self.drop_response_rate > 0.0
    }

    fn applies_to(&self, method: &Method) -> bool {
        match self.scope {
            FaultScope::All => true,
            FaultScope::Writes => matches!(*method, Method::PUT | Method::DELETE | Method::POST),
        }
    }
}

/// The live fault settings, shared by the middleware and the admin endpoint.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<RwLock<FaultConfig>>);

impl Faults {
    /// Faults starting from `config`.
    pub fn new(config: FaultConfig) -> Self {
        Self(Arc::new(RwLock::new(config)))
    }

    /// A copy of the current settings.
    pub fn current(&self) -> FaultConfig {
        // A poisoned lock only means a writer panicked mid-assignment of a plain struct: the
        // value is still a whole FaultConfig, so keep serving it.
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn replace(&self, config: FaultConfig) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = config;
    }

    /// Whether the step writer should panic now; switches the fault off, so it fires once.
    pub fn take_step_writer_panic(&self) -> bool {
        // The read lock first: the writer asks at every round, and the answer is nearly always no.
        if !self.0.read().unwrap_or_else(|p| p.into_inner()).panic_step_writer {
            return false;
        }
        std::mem::take(&mut self.0.write().unwrap_or_else(|p| p.into_inner()).panic_step_writer)
    }
}

/// Middleware applying the current faults to a business route.
pub async fn inject(State(faults): State<Faults>, request: Request, next: Next) -> Response {
    let config = faults.current();
    if !config.any_enabled() || !config.applies_to(request.method()) {
        return next.run(request).await;
    }
    if config.hang {
        tracing::warn!("fault: hanging the request");
        std::future::pending::<()>().await;
    }
    if config.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(config.latency_ms)).await;
    }
    if config.error_rate > 0.0 && rand::random::<f64>() < config.error_rate {
        tracing::warn!("fault: answering 503 without handling");
        return Problem::new(
            ProblemType::InjectedFault,
            Some("fault injection answered this request with 503".to_owned()),
        )
        .into_response();
    }
    let drop_response = config.drop_response_rate > 0.0 && rand::random::<f64>() < config.drop_response_rate;
    let response = next.run(request).await;
    if drop_response {
        // The effect is committed; the caller never hears of it (until the server's request
        // timeout closes the exchange, long after any caller's own timeout).
        tracing::warn!(status = %response.status(), "fault: dropping the response after the effect");
        drop(response);
        return std::future::pending::<Response>().await;
    }
    response
}

/// State of the admin endpoint.
#[derive(Debug, Clone)]
pub(crate) struct AdminState {
    faults: Faults,
    token: Arc<str>,
}

/// `GET`/`PUT /admin/faults`, guarded by the bearer `token`.
pub fn admin_router(faults: Faults, token: &str) -> Router {
    Router::new()
        .route("/admin/faults", get(get_faults).put(put_faults))
        .with_state(AdminState { faults, token: Arc::from(token) })
}

/// Current fault settings.
#[utoipa::path(get, path = "/admin/faults", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Current fault settings", body = FaultConfig),
        AuthErrors,
    ))]
pub(crate) async fn get_faults(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<AppJson<FaultConfig>, AppError> {
    crate::auth::require_bearer(&headers, Some(&state.token))?;
    Ok(AppJson(state.faults.current()))
}

/// Replaces the fault settings (send all fields; omitted ones are off).
#[utoipa::path(put, path = "/admin/faults", tag = "admin",
    security(("admin_token" = [])),
    request_body = FaultConfig,
    responses(
        (status = 200, description = "The new fault settings", body = FaultConfig),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        AuthErrors,
        (status = 422, description = "Values out of range", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn put_faults(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Result<AppJson<FaultConfig>, Problem>,
) -> Result<AppJson<FaultConfig>, AppError> {
    // Authorize before looking at the body, so an anonymous caller learns nothing else.
    crate::auth::require_bearer(&headers, Some(&state.token))?;
    let AppJson(config) = body.map_err(AppError::Client)?;
    config.validate().map_err(AppError::validation)?;
    tracing::warn!(?config, "fault settings changed through the admin API");
    state.faults.replace(config.clone());
    Ok(AppJson(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_off_by_default() -> anyhow::Result<()> {
        assert!(!FaultConfig::from_env(&Env::default())?.any_enabled());
        Ok(())
    }

    #[test]
    fn env_variables_switch_faults_on() -> anyhow::Result<()> {
        let env =
            Env::from_pairs([("FAULT_LATENCY_MS", "250"), ("FAULT_DROP_RESPONSE_RATE", "0.5"), ("FAULT_SCOPE", "all")]);
        let config = FaultConfig::from_env(&env)?;
        assert_eq!(config.latency_ms, 250);
        assert_eq!(config.drop_response_rate, 0.5);
        assert_eq!(config.scope, FaultScope::All);
        Ok(())
    }

    #[test]
    fn the_step_writer_panic_fires_once() {
        let faults = Faults::new(FaultConfig { panic_step_writer: true, ..FaultConfig::default() });
        assert!(faults.take_step_writer_panic());
        assert!(!faults.take_step_writer_panic());
        assert!(!faults.current().panic_step_writer);
    }

    #[test]
    fn out_of_range_rates_are_refused() {
        let env = Env::from_pairs([("FAULT_ERROR_RATE", "1.5")]);
        assert!(FaultConfig::from_env(&env).is_err());
    }
}
