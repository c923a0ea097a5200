//! The order saga's orchestrator.
//!
//! `POST /orders` writes a saga to the durable log and drives it at once in this process:
//! reserve inventory → capture payment → create shipment → send confirmation, with per-step
//! timeouts and retries, reconciliation of unknown outcomes, and compensation of every step that
//! succeeded (or may have) in reverse order. A recovery loop resumes sagas whose owner died, so
//! any number of replicas can share one database. `GET /console` is a page to watch and act on
//! the sagas.

mod batches;
mod console;
mod order_list;
mod routes;

use std::sync::Arc;

use saga_engine::{
    clients::ParticipantClient,
    config::OrchestratorConfig,
    definition::{ORDER_STEPS, SagaDefinition},
    executor::{Executor, ExecutorConfig},
    machine::Clock,
    metric_definitions, recovery,
    store::PgStore,
};
use saga_shared::{config::Env, server::Application};
use sqlx::migrate::Migrator;

static MIGRATOR: Migrator = sqlx::migrate!("../migrations/orchestrator");

/// The process entry point (see [`saga_shared::server::block_on_main`] for why it lives here).
pub fn main() -> std::process::ExitCode {
    saga_shared::server::block_on_main("orchestrator", run())
}

/// Runs the orchestrator until SIGTERM/Ctrl-C.
pub async fn run() -> anyhow::Result<()> {
    let env = Env::from_process();
    let metrics = saga_shared::metrics::install_recorder()?;
    metric_definitions::describe();
    let config = OrchestratorConfig::from_env(&env, &ORDER_STEPS)?;
    tracing::info!(instance = %config.instance_id, "starting orchestrator");

    let pool = saga_shared::db::pool(&config.service)?;
    saga_shared::db::migrate(&pool, &MIGRATOR, config.service.db_startup_timeout).await?;
    let definition = SagaDefinition::order_saga(&config)?;
    let executor = Arc::new(Executor::new(
        Arc::new(PgStore { pool: pool.clone() }),
        definition,
        ParticipantClient::new()?,
        ExecutorConfig {
            instance: config.instance_id.clone(),
            lease: config.lease,
            max_in_flight: config.max_in_flight,
            circuits: config.circuits,
        },
        Arc::new(Clock::system),
    ));
    let state = routes::AppState {
        pool: pool.clone(),
        executor: Arc::clone(&executor),
        operator_token: config.operator_token.clone(),
        stuck_after: config.stuck_after,
    };
    // Cancelled on SIGTERM, before the drain: the console's event streams end then.
    let stopping = tokio_util::sync::CancellationToken::new();
    let console = console::ConsoleState {
        pool: pool.clone(),
        step_names: executor.definition().step_names().into(),
        stuck_after: config.stuck_after,
        probes: Arc::new(console::Probes::new(&config.participants)?),
        instance: config.instance_id.clone(),
        circuits: executor.circuits(),
        history: Arc::default(),
        links: console::Links { trace_ui: config.trace_ui_url.clone(), grafana: config.grafana_url.clone() },
        stopping: stopping.clone(),
    };
    let mut spec = routes::spec(state.clone());
    spec.routes = spec.routes.merge(console::router(console)).merge(batches::routes::router(state));
    spec.openapi.merge(console::openapi());
    spec.openapi.merge(<batches::routes::BatchDoc as utoipa::OpenApi>::openapi());
    routes::name_steps(&mut spec.openapi);
    let application = Application::build(&config.service, spec, pool.clone(), metrics).await?.with_stopping(stopping);

    let recovery =
        tokio::spawn(recovery::run_recovery(Arc::clone(&executor), config.recovery_interval, config.recovery_batch));
    let gauges = tokio::spawn(recovery::run_gauges(
        Arc::clone(&executor),
        pool.clone(),
        config.gauge_refresh,
        config.stuck_after,
    ));
    let batch_config = batches::BatchConfig {
        instance: config.instance_id.clone(),
        lease: config.lease,
        interval: config.recovery_interval,
        pace: config.batch_pace,
    };
    let batches = tokio::spawn(batches::run_batches(Arc::clone(&executor), pool, batch_config));

    let served = application.run_until_stopped().await;
    executor.shutdown(config.service.shutdown_grace).await;
    let _ = tokio::join!(recovery, gauges, batches);
    served
}
