//! Issue 16: operator actions and stalls that race a saga's driver, under load (DESIGN.md §6,
//! "operator actions and stalls"). Case 1: an operator cancels while the payment call is in
//! flight, held there by a lock on the customer's account. Case 2: the orchestrator is frozen
//! (SIGSTOP) for longer than its lease, then resumed (SIGCONT). Either way each saga must end
//! exactly once, with effects that agree with its outcome, and the audit must be clean.

use std::{collections::BTreeMap, time::Duration, time::Instant};

use saga_tests::{AuditReport, RowLock, Service, Suite, happy_order};
use serde_json::json;
use uuid::Uuid;

/// Case 1's repetitions, as many as in the report. The orchestrator it was filed against
/// ended 5 of 40 wrong there, and 8 to 13 of 24 here: at 1 in 8, 40 miss it with a chance of
/// about (7/8)^40 ≈ 0.5 %. A repetition takes about 0.2 s, so they all run within the
/// background load's [`CANCEL_LOAD`]; the test takes about 20 s.
const CANCELS: usize = 40;
/// How long a cancel may take to answer while the payment call waits on the lock.
const CANCEL_PATIENCE: Duration = Duration::from_secs(1);
/// How long the background load of case 1 places orders.
const CANCEL_LOAD: Duration = Duration::from_secs(15);

/// Case 2's lease: as short as the test's 1 s step timeout allows (the orchestrator requires
/// at least twice the step timeout plus a second).
const LEASE: Duration = Duration::from_secs(3);
/// How long the orchestrator stays frozen each time: well past its lease, so every saga it
/// was driving is due for recovery when it wakes up.
const FROZEN: Duration = Duration::from_millis(4500);
/// How many times it is frozen. On the orchestrator the issue was filed against, about one
/// saga in 20 of those resumed after a stall ended twice: 0 to 4 per run with 16 orders in
/// flight, 6 and 10 with 64 in flight and 4 stalls (150 to 180 sagas resumed).
const STALLS: usize = 4;
/// Orders in flight while it is frozen.
const STALL_LOAD_CONCURRENCY: usize = 64;
/// How long it runs between two stalls: its sagas claimed again and under way.
const BETWEEN_STALLS: Duration = Duration::from_secs(2);

/// The violations by check, with up to three examples each: what a failure message shows.
fn summary(report: &AuditReport) -> String {
    let mut by_check: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for v in &report.violations {
        by_check.entry(v.check).or_default().push(format!("{}: {}", v.subject, v.detail));
    }
    let lines: Vec<String> = by_check
        .iter()
        .map(|(check, examples)| {
            let shown: Vec<&str> = examples.iter().take(3).map(String::as_str).collect();
            format!("  {} × {check}, e.g.\n    {}", examples.len(), shown.join("\n    "))
        })
        .collect();
    format!("{} violations ({:?}):\n{}", report.violations.len(), report.statuses, lines.join("\n"))
}

/// The timeline of `order_id`, one event a line with its time and actor.
async fn timeline(suite: &Suite, order_id: Uuid) -> String {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    let lines: Vec<String> = suite
        .events(order_id)
        .await
        .iter()
        .map(|e| {
            let (at, kind, step, outcome) = (text(&e["at"]), text(&e["kind"]), text(&e["step"]), text(&e["outcome"]));
            format!("  {at} {kind} {step} {outcome} ({})", text(&e["actor"]))
        })
        .collect();
    lines.join("\n")
}

/// Waits (at most `timeout`) for every saga to be terminal, and panics if some are not.
async fn wait_all_terminal(suite: &Suite, timeout: Duration) {
    let pool = suite.db.superuser_pool().await.unwrap();
    let open = sagactl::audit::wait_terminal(&pool, timeout, |_, _| {}).await.unwrap();
    assert_eq!(
        open,
        0,
        "{open} sagas still in flight {timeout:?} after the load\n{}",
        suite.log(Service::Orchestrator)
    );
}

/// Case 1, as reported: `sagactl load --concurrency 16` in the background; alice's account
/// row is held by another transaction, so the payment call of her order (batched with the
/// load's) waits in flight after claiming its ledger row; the operator cancels it (202); the
/// row is released. Repeated [`CANCELS`] times. Every cancelled saga must end compensated,
/// once, with every effect undone, and the audit must be clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_that_lands_while_the_payment_call_waits_on_a_locked_account_ends_the_saga_once_compensated() {
    // A 5 s step timeout: the payment call waiting on the lock is still in flight (not timed
    // out) when the cancel lands, even on a loaded machine.
    let suite = Suite::start_for_slow_calls(&Service::SUITE).await;
    let initial = suite.snapshot().await;
    let superuser = suite.db.superuser_pool().await.unwrap();
    let started = Instant::now();
    let load = suite.background_load(16, CANCEL_LOAD);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut cancelled = Vec::with_capacity(CANCELS);
    let mut answered_in_flight = 0;
    for rep in 0..CANCELS {
        let lock = RowLock::account(&superuser, "alice").await;
        let order_id = suite.accepted_order(&happy_order()).await;
        lock.wait_until_someone_waits(&superuser, Duration::from_secs(10)).await;
        let why = json!({ "operator": "issue-16", "reason": format!("case 1, repetition {rep}") });
        let cancel = suite.operator_action(order_id, "cancel", Some(&why));
        tokio::pin!(cancel);
        // The cancel answers while the call is in flight (it hands the saga over, as the
        // report saw); should it wait for the call instead, the row is released after
        // `CANCEL_PATIENCE` and the cancel answers then.
        let answer = tokio::select! {
            answer = &mut cancel => Some(answer),
            () = tokio::time::sleep(CANCEL_PATIENCE) => None,
        };
        if answer.is_some() {
            answered_in_flight += 1;
            // Released at once or a little later (up to 45 ms), so the payment call's
            // answer meets the cancelled saga's compensation at different points.
            tokio::time::sleep(Duration::from_millis(15 * (rep as u64 % 4))).await;
        }
        lock.release().await;
        let answer = match answer {
            Some(answer) => answer,
            None => cancel.await,
        };
        assert_eq!(answer.status, 202, "repetition {rep}: the cancel of {order_id} was refused: {}", answer.body);
        cancelled.push(order_id);
        // Before the next lock on alice's account: this saga's refund needs the row too.
        suite.wait_terminal(order_id, Duration::from_secs(30)).await;
    }
    let cancels_took = started.elapsed();
    let load = load.await.unwrap();
    wait_all_terminal(&suite, Duration::from_secs(60)).await;

    let mut wrong = Vec::new();
    for &order_id in &cancelled {
        let status = suite.order(order_id).await["status"].as_str().unwrap_or_default().to_owned();
        let endings = suite.endings(order_id).await;
        let effects = suite.effects(order_id).await;
        if status != "compensated" || endings != ["compensated"] || effects.iter().any(|e| e == "done") {
            let line = format!("  {order_id}: {status}, endings {endings:?}, effects {effects:?}");
            wrong.push((order_id, endings.len() > 1, line));
        }
    }
    let report = suite.audit(&initial).await;
    // The timeline of one that ended twice, if any did.
    let example = match wrong.iter().find(|(_, twice, _)| *twice).or(wrong.first()) {
        Some(&(order_id, ..)) => format!("timeline of {order_id}:\n{}", timeline(&suite, order_id).await),
        None => String::new(),
    };
    assert!(
        wrong.is_empty() && report.ok(),
        "{} of {CANCELS} cancelled sagas ended wrong (status, endings, effects: reservation, payment, \
         shipment, confirmation):\n{}\n{example}\naudit: {}",
        wrong.len(),
        wrong.iter().map(|(.., line)| line.as_str()).collect::<Vec<_>>().join("\n"),
        summary(&report)
    );
    assert!(load.accepted >= 100, "too little load to race with: {load:#?}");
    assert!(load.ok, "the background load: {load:#?}");
    eprintln!(
        "{CANCELS} cancels ({answered_in_flight} answered while the payment call waited) in {cancels_took:?} \
         beside {} load orders",
        load.accepted
    );
}

/// Case 2, as reported: under load, the orchestrator is frozen with SIGSTOP for longer than
/// its lease and resumed with SIGCONT, [`STALLS`] times. Its leases have all expired when it
/// wakes up, so its own recovery may claim the sagas its drivers are still driving (the
/// test checks the leases did expire, not what the orchestrator does about it). Every saga
/// must end exactly once, and the audit must be clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestrator_frozen_past_its_lease_under_load_ends_every_saga_exactly_once() {
    let lease = LEASE.as_millis().to_string();
    let suite = Suite::start_with_env(
        &Service::SUITE,
        &[(Service::Orchestrator, "LEASE_MS", &lease), (Service::Orchestrator, "STEP_TIMEOUT_MS", "1000")],
    )
    .await;
    let initial = suite.snapshot().await;
    let placing = BETWEEN_STALLS + (FROZEN + BETWEEN_STALLS) * STALLS as u32;
    let load = suite.background_load(STALL_LOAD_CONCURRENCY, placing);
    let pool = suite.db.pool_as("orchestrator").await.unwrap();
    // Sagas in flight whose lease ran out while the orchestrator was frozen: the proof that
    // the stalls outlasted the lease, whatever the orchestrator then does about them.
    let mut expired = 0;
    for _ in 0..STALLS {
        tokio::time::sleep(BETWEEN_STALLS).await;
        suite.freeze(Service::Orchestrator);
        tokio::time::sleep(FROZEN).await;
        expired += sqlx::query_scalar::<_, i64>(
            r#"select count(*) from sagas
               where status in ('pending', 'running', 'compensating') and lease_expires_at < now()"#,
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        suite.thaw(Service::Orchestrator);
    }
    let load = load.await.unwrap();
    wait_all_terminal(&suite, Duration::from_secs(60)).await;

    let ended_twice: Vec<(Uuid, String)> = sqlx::query_as(
        r#"select order_id, string_agg(outcome || ' by ' || actor, ', ' order by id) from saga_events
           where kind = 'saga' and outcome in ('completed', 'compensated', 'failed')
           group by order_id having count(*) > 1 order by min(id)"#,
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let resumed: i64 = sqlx::query_scalar(
        "select count(distinct order_id) from saga_events where kind = 'saga' and outcome = 'claimed'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let report = suite.audit(&initial).await;
    let example = match ended_twice.first() {
        Some(&(order_id, _)) => format!("timeline of {order_id}:\n{}", timeline(&suite, order_id).await),
        None => String::new(),
    };
    assert!(
        ended_twice.is_empty() && report.ok(),
        "{} of {} orders ended more than once ({expired} leases expired in stalls, {resumed} sagas claimed; \
         the first 10: {:#?})\n{example}\naudit: {}",
        ended_twice.len(),
        load.accepted,
        &ended_twice[..ended_twice.len().min(10)],
        summary(&report)
    );
    assert!(expired > 0, "no saga in flight had an expired lease at the end of a stall: nothing raced");
    assert!(load.accepted >= 100, "too little load to race with: {load:#?}");
    assert!(load.ok, "the background load: {load:#?}");
    eprintln!(
        "{STALLS} stalls of {FROZEN:?}: {expired} leases expired, {resumed} sagas claimed, {} load orders",
        load.accepted
    );
}
