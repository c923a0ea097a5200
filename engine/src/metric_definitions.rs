//! The orchestrator's metrics (DESIGN.md §4): names and descriptions in one place.

use metrics::Unit;

/// `saga_started_total`
pub const STARTED_TOTAL: &str = "saga_started_total";
/// `saga_finished_total{outcome="completed|compensated|failed"}`
pub const FINISHED_TOTAL: &str = "saga_finished_total";
/// `saga_duration_seconds{outcome}` (histogram, from acceptance to the terminal state)
pub const DURATION_SECONDS: &str = "saga_duration_seconds";
/// `saga_step_duration_seconds{step,kind="action|compensation",result}` (histogram, per call)
pub const STEP_DURATION_SECONDS: &str = "saga_step_duration_seconds";
/// `saga_step_attempts_total{step,kind,result="ok|permanent|transient|timeout"}`
pub const STEP_ATTEMPTS_TOTAL: &str = "saga_step_attempts_total";
/// `saga_in_flight{status="running|compensating",step}` (gauge, from the database)
pub const IN_FLIGHT: &str = "saga_in_flight";
/// `saga_stuck{status,step}` (gauge, from the database): no progress for `STUCK_AFTER_MS`
pub const STUCK: &str = "saga_stuck";
/// `saga_oldest_in_flight_age_seconds{status}` (gauge, from the database)
pub const OLDEST_IN_FLIGHT_AGE_SECONDS: &str = "saga_oldest_in_flight_age_seconds";
/// `saga_requires_intervention` (gauge, from the database: sagas in `failed`)
pub const REQUIRES_INTERVENTION: &str = "saga_requires_intervention";
/// `batch_operations_total{action="retry|cancel",result="done|refused|failed"}`: sagas acted on
/// by batch operations.
pub const BATCH_OPERATIONS_TOTAL: &str = "batch_operations_total";
/// `saga_gauges_stale`: 1 while the saga gauges above could not be refreshed from the database
/// (they keep their last values, which are then old), 0 once they are.
pub const GAUGES_STALE: &str = "saga_gauges_stale";
/// `saga_dead_lettered_total`
pub const DEAD_LETTERED_TOTAL: &str = "saga_dead_lettered_total";
/// `saga_reconciliations_total{step,result="happened|compensated|absent|unreachable"}`
pub const RECONCILIATIONS_TOTAL: &str = "saga_reconciliations_total";
/// `saga_orders_refused_total{reason="overloaded"}`: `POST /orders` refused before anything was
/// written
pub const REFUSED_TOTAL: &str = "saga_orders_refused_total";
/// `saga_fenced_total`: writes refused because another instance or an operator wrote first
pub const FENCED_TOTAL: &str = "saga_fenced_total";

/// `saga_waiting_on_participant{step}` (gauge, this process): calls held back because their
/// participant's circuit is open
pub const WAITING_ON_PARTICIPANT: &str = "saga_waiting_on_participant";
/// `participant_circuit_open{participant}` (gauge, this process): 1 while the circuit is open
pub const CIRCUIT_OPEN: &str = "participant_circuit_open";

/// Registers the descriptions with the recorder.
pub fn describe() {
    metrics::describe_counter!(STARTED_TOTAL, "Sagas accepted (POST /orders that created a saga).");
    metrics::describe_counter!(REFUSED_TOTAL, "Orders refused before anything was written, by reason (overloaded).");
    metrics::describe_counter!(FINISHED_TOTAL, "Sagas that reached a terminal state, by outcome.");
    metrics::describe_histogram!(DURATION_SECONDS, Unit::Seconds, "Time from acceptance to the terminal state.");
    metrics::describe_histogram!(STEP_DURATION_SECONDS, Unit::Seconds, "Duration of each participant call.");
    metrics::describe_counter!(STEP_ATTEMPTS_TOTAL, "Participant calls by step, kind and result.");
    metrics::describe_gauge!(IN_FLIGHT, "Sagas not yet terminal, by status and current step.");
    metrics::describe_gauge!(STUCK, "In-flight sagas without progress for longer than STUCK_AFTER_MS.");
    metrics::describe_gauge!(OLDEST_IN_FLIGHT_AGE_SECONDS, Unit::Seconds, "Age of the oldest in-flight saga.");
    metrics::describe_gauge!(REQUIRES_INTERVENTION, "Sagas in failed: an operator must act.");
    metrics::describe_counter!(BATCH_OPERATIONS_TOTAL, "Sagas acted on by batch operations, by action and result.");
    // Every series from the start, at zero: a rate over a series that does not exist yet is no
    // data rather than 0 (batches are rare).
    for action in saga_shared::api::BatchAction::ALL {
        for result in saga_shared::api::BatchResult::ALL {
            metrics::counter!(BATCH_OPERATIONS_TOTAL, "action" => action.as_str(), "result" => result.as_str())
                .increment(0);
        }
    }
    metrics::describe_gauge!(GAUGES_STALE, "1 while the saga gauges cannot be refreshed from the database.");
    metrics::describe_counter!(DEAD_LETTERED_TOTAL, "Sagas that became failed (compensation budget exhausted).");
    metrics::describe_counter!(RECONCILIATIONS_TOTAL, "Reconciliations of unknown outcomes, by what was found.");
    metrics::describe_counter!(FENCED_TOTAL, "Saga writes refused by the version fence.");
    metrics::describe_gauge!(WAITING_ON_PARTICIPANT, "Saga calls held back while their participant's circuit is open.");
    metrics::describe_gauge!(
        CIRCUIT_OPEN,
        "1 while a participant's circuit is open (it kept failing; probed until ready)."
    );
}
