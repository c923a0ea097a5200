//! The orchestrator's group commit (`saga_engine::group_commit`, `log::save_all`) against a real Postgres:
//! saves queued together are written in one statement, each still fenced on its own version with
//! its own events; a batch that fails is written again one save at a time, so a bad save fails
//! alone.

use std::{sync::Arc, time::Duration};

use futures::future::join_all;
use saga_engine::{
    config::OrchestratorConfig,
    definition::{ORDER_STEPS, SagaDefinition},
    group_commit::GroupCommit,
    log::{self, Lease},
    machine::{self, Clock, Input, Persist},
    state::Saga,
    store::PgStore,
};
use saga_shared::config::Env;
use saga_tests::{Service, Suite, happy_order};
use sqlx::PgPool;
use uuid::Uuid;

const OWNER: &str = "group-commit-test";
const LEASE: Duration = Duration::from_secs(600);

/// A saga written as `POST /orders` writes it, owned by this test, then resumed (a transition
/// that is written, with its `claimed` event): what the save will write.
async fn started_saga(pool: &PgPool, definition: &SagaDefinition) -> (Saga, bool, Vec<machine::NewEvent>) {
    let request = serde_json::from_value(happy_order()).unwrap();
    let (mut saga, started) = machine::start(definition, Uuid::now_v7(), request, Clock::system());
    log::insert(pool, &saga, &started, None, OWNER, LEASE).await.unwrap();
    let transition = machine::apply(definition, &mut saga, Input::Resumed { previous_owner: None }, Clock::system());
    let Persist::Saga { progressed } = transition.persist else { panic!("a resumed saga is written") };
    (saga, progressed, transition.events)
}

async fn version_and_events(pool: &PgPool, saga: &Saga) -> (i64, i64) {
    sqlx::query_as(
        "select (select version from sagas where order_id = $1), (select count(*) from saga_events where order_id = $1)",
    )
    .bind(saga.order_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn saves_queued_together_are_each_fenced_and_a_bad_one_fails_alone() {
    // The orchestrator only migrates the schema here; the test's sagas are owned by the test
    // (a long lease), so its recovery leaves them alone.
    let suite = Suite::start(&[Service::Orchestrator]).await;
    let pool = suite.db.pool_as("orchestrator").await.unwrap();
    let config = OrchestratorConfig::from_env(&Env::default(), &ORDER_STEPS).unwrap();
    let definition = SagaDefinition::order_saga(&config).unwrap();
    let writer = GroupCommit::start(Arc::new(PgStore { pool: pool.clone() }), OWNER.to_owned(), LEASE);

    let mut sagas = Vec::new();
    for _ in 0..4 {
        sagas.push(started_saga(&pool, &definition).await);
    }
    let events_before = version_and_events(&pool, &sagas[0].0).await.1;
    // One save Postgres refuses (text cannot hold a NUL byte), one fenced out (someone wrote
    // version 0 before), two good ones: queued together, they make one batch, which fails.
    sagas[0].0.failure_reason = Some("bad\0byte".to_owned());
    sagas[1].0.version = 7;
    let answers =
        join_all(sagas.iter_mut().map(|(saga, progressed, events)| writer.save(saga, *progressed, events))).await;

    assert!(answers[0].is_err(), "the bad save fails: {:?}", answers[0]);
    assert_eq!(answers[1].as_ref().ok(), Some(&false), "the stale save is fenced out");
    assert_eq!(answers[2].as_ref().ok(), Some(&true));
    assert_eq!(answers[3].as_ref().ok(), Some(&true));
    assert_eq!(version_and_events(&pool, &sagas[0].0).await, (0, events_before), "nothing of the bad save");
    assert_eq!(version_and_events(&pool, &sagas[1].0).await, (0, events_before), "nothing of the fenced save");
    for (saga, _, events) in &sagas[2..] {
        assert_eq!(saga.version, 1, "the saga learns the version it wrote");
        assert_eq!(version_and_events(&pool, saga).await, (1, events_before + events.len() as i64));
    }

    // Without a bad save the batch is one statement: the good ones written, the stale one fenced.
    let mut again = sagas.split_off(1);
    for (saga, _, _) in &mut again[1..] {
        saga.steps[0].attempts += 1;
    }
    let saves: Vec<_> = again.iter().map(|(saga, progressed, events)| (saga, *progressed, events.as_slice())).collect();
    let written = log::save_all(&pool, &saves, Lease { owner: OWNER, duration: LEASE }).await.unwrap();
    assert_eq!(written.len(), 3, "one answer per save");
    assert!(written[0].is_none(), "the stale one fenced out");
    for ((saga, _, _), answer) in again.iter_mut().zip(&written).skip(1) {
        let (version, _) = answer.expect("the two current rows written in one statement");
        saga.version = version;
    }
    for (saga, _, events) in &again[1..] {
        assert_eq!(saga.version, 2);
        assert_eq!(version_and_events(&pool, saga).await, (2, events_before + 2 * events.len() as i64));
        let steps: serde_json::Value = sqlx::query_scalar("select steps from sagas where order_id = $1")
            .bind(saga.order_id)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(steps[0]["attempts"], saga.steps[0].attempts, "the batch wrote this saga's own row");
    }
}

#[tokio::test]
async fn no_event_is_written_for_a_saga_that_does_not_exist() {
    // `saga_events` has no foreign key to `sagas` (migration 0006): each statement that appends
    // events must check its own saga. A save and an append for a saga that was never inserted
    // write nothing, beside a real saga's save that is written.
    let suite = Suite::start(&[Service::Orchestrator]).await;
    let pool = suite.db.pool_as("orchestrator").await.unwrap();
    let config = OrchestratorConfig::from_env(&Env::default(), &ORDER_STEPS).unwrap();
    let definition = SagaDefinition::order_saga(&config).unwrap();
    let (real, progressed, events) = started_saga(&pool, &definition).await;
    let request = serde_json::from_value(happy_order()).unwrap();
    let (mut ghost, _) = machine::start(&definition, Uuid::now_v7(), request, Clock::system());
    let resumed = machine::apply(&definition, &mut ghost, Input::Resumed { previous_owner: None }, Clock::system());
    assert!(!resumed.events.is_empty());
    let events_of = |id: Uuid| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("select count(*) from saga_events where order_id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let real_before = events_of(real.order_id).await;

    let saves = [(&real, progressed, events.as_slice()), (&ghost, true, resumed.events.as_slice())];
    let written = log::save_all(&pool, &saves, Lease { owner: OWNER, duration: LEASE }).await.unwrap();
    assert!(written[0].is_some() && written[1].is_none(), "{written:?}");
    assert_eq!(events_of(real.order_id).await, real_before + events.len() as i64);
    log::append(&pool, ghost.order_id, &resumed.events, OWNER).await.unwrap();
    assert_eq!(events_of(ghost.order_id).await, 0, "neither the save nor the append wrote the missing saga's events");
    log::append(&pool, real.order_id, &resumed.events, OWNER).await.unwrap();
    assert_eq!(events_of(real.order_id).await, real_before + (events.len() + resumed.events.len()) as i64);
}

#[tokio::test]
async fn two_saves_of_one_saga_in_one_statement_get_one_written_and_only_its_events_appended() {
    // Two drivers of one saga at one version (what issue 16's second driver did): the answer is
    // by position, so the save that lost is told so, and its events are not appended.
    let suite = Suite::start(&[Service::Orchestrator]).await;
    let pool = suite.db.pool_as("orchestrator").await.unwrap();
    let config = OrchestratorConfig::from_env(&Env::default(), &ORDER_STEPS).unwrap();
    let definition = SagaDefinition::order_saga(&config).unwrap();
    let (saga, progressed, events) = started_saga(&pool, &definition).await;
    let (before_version, before_events) = version_and_events(&pool, &saga).await;
    let mut other = saga.clone();
    other.failure_reason = Some("the other driver".to_owned());
    let other_events = vec![events[0].clone(), events[0].clone(), events[0].clone()];

    let saves = [(&saga, progressed, events.as_slice()), (&other, true, other_events.as_slice())];
    let written = log::save_all(&pool, &saves, Lease { owner: OWNER, duration: LEASE }).await.unwrap();

    let winners: Vec<usize> = written.iter().enumerate().filter(|(_, w)| w.is_some()).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "exactly one of the two saves is written: {written:?}");
    let appended = [events.len(), other_events.len()][winners[0]] as i64;
    assert_eq!(version_and_events(&pool, &saga).await, (before_version + 1, before_events + appended));
    let reason: Option<String> = sqlx::query_scalar("select failure_reason from sagas where order_id = $1")
        .bind(saga.order_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(reason.is_some(), winners[0] == 1, "the row holds the winner's state");
}
