//! Group commit of the drivers' writes: one task takes every save that is queued, writes them
//! all in one statement (each row still fenced on its own version, each saga's events appended
//! in order) and answers each driver, then takes what queued meanwhile. No added waiting: a save
//! that finds the writer idle is written at once, alone.
//!
//! A batch that fails as a whole (a deadlock with another writer of the same rows, a bad row, a
//! lost connection) is written again as separate saves with [`log::save`], concurrently, so one
//! save's error is only its own.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{
    log::{self, Lease},
    machine::NewEvent,
    state::Saga,
};

/// The most saves one statement writes.
const MAX_BATCH: usize = 256;

/// What a driver gets back: the written version and time, `None` when fenced out.
type Written = Result<Option<(i64, DateTime<Utc>)>, sqlx::Error>;

/// A save waiting for the writer.
#[derive(Debug)]
struct Pending {
    saga: Saga,
    progressed: bool,
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Written>,
}

/// The handle the drivers save through.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    queue: mpsc::UnboundedSender<Pending>,
}

impl GroupCommit {
    /// Starts the writer task; it ends when the last handle is dropped.
    pub fn start(pool: PgPool, owner: String, lease: Duration) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(pool, owner, lease, pending));
        Self { queue }
    }

    /// [`log::save`] through the writer: same fencing, same result.
    pub async fn save(&self, saga: &mut Saga, progressed: bool, events: &[NewEvent]) -> Result<bool, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending { saga: saga.clone(), progressed, events: events.to_vec(), reply };
        let gone = || sqlx::Error::WorkerCrashed;
        self.queue.send(pending).map_err(|_| gone())?;
        match answer.await.map_err(|_| gone())?? {
            Some((version, updated_at)) => {
                saga.version = version;
                saga.updated_at = updated_at;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

async fn write_batches(pool: PgPool, owner: String, lease: Duration, mut pending: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let lease = Lease { owner: &owner, duration: lease };
        let saves: Vec<Save<'_>> = batch.iter().map(|p| (&p.saga, p.progressed, p.events.as_slice())).collect();
        let written = write_together(&pool, &saves, lease).await;
        drop(saves);
        match written {
            Ok(written) => {
                for save in batch.drain(..) {
                    let answer =
                        written.iter().find(|(id, _, _)| *id == save.saga.order_id).map(|(_, v, at)| (*v, *at));
                    let _ = save.reply.send(Ok(answer)); // a driver that gave up no longer listens
                }
            }
            Err(err) => {
                // Each save alone, all at once: as the drivers wrote before group commit, so a
                // database that is down costs one timeout, not one per save.
                tracing::warn!(%err, saves = batch.len(), "a group commit failed; writing its saves one by one");
                let alone = batch.drain(..).map(|mut save| {
                    let pool = &pool;
                    async move {
                        let answer = log::save(pool, &mut save.saga, lease, save.progressed, &save.events)
                            .await
                            .map(|written| written.then_some((save.saga.version, save.saga.updated_at)));
                        let _ = save.reply.send(answer);
                    }
                });
                futures::future::join_all(alone).await;
            }
        }
    }
}

/// One save: the saga as it is to be written, whether it progressed, its new events.
pub type Save<'a> = (&'a Saga, bool, &'a [NewEvent]);

/// Writes `batch` in one statement: the rows still at their version are updated and only their
/// events appended, in each saga's order. Returns the written rows' ids, versions and times (a
/// save missing from it was fenced out). Public for its test; drivers go through
/// [`GroupCommit::save`].
pub async fn write_together(
    pool: &PgPool,
    batch: &[Save<'_>],
    lease: Lease<'_>,
) -> Result<Vec<(Uuid, i64, DateTime<Utc>)>, sqlx::Error> {
    if let [(saga, progressed, events)] = batch {
        // Alone: the single-row statement, as cheap as it gets.
        let mut saga = (*saga).clone();
        let written = log::save(pool, &mut saga, lease, *progressed, events).await?;
        return Ok(if written { vec![(saga.order_id, saga.version, saga.updated_at)] } else { Vec::new() });
    }
    let sagas = batch.iter().map(|(saga, _, _)| *saga);
    let to_json = |value: Result<Value, serde_json::Error>| value.map_err(|e| sqlx::Error::Encode(Box::new(e)));
    let steps = sagas.clone().map(|s| to_json(serde_json::to_value(&s.steps))).collect::<Result<Vec<_>, _>>()?;
    let outputs = sagas.clone().map(|s| to_json(serde_json::to_value(&s.outputs))).collect::<Result<Vec<_>, _>>()?;
    let events: Vec<(Uuid, &NewEvent)> =
        batch.iter().flat_map(|(saga, _, events)| events.iter().map(move |e| (saga.order_id, e))).collect();
    let columns = log::EventColumns::new(events.iter().map(|(_, e)| *e), lease.owner);
    sqlx::query_as(
        r#"with input as (
               select * from unnest($1::uuid[], $2::int8[], $3::text[], $4::int4[], $5::jsonb[], $6::jsonb[],
                                    $7::text[], $8::timestamptz[], $9::timestamptz[], $10::bool[], $11::text[])
                   as i(order_id, version, status, step_index, steps, outputs, failure_reason,
                        compensation_deadline_at, next_run_at, progressed, dead_letter)),
           upd as (
               update sagas s set
                   status = i.status, step_index = i.step_index, steps = i.steps, outputs = i.outputs,
                   failure_reason = i.failure_reason, compensation_deadline_at = i.compensation_deadline_at,
                   next_run_at = i.next_run_at, dead_letter = i.dead_letter,
                   owner = case when i.status in ('completed', 'compensated', 'failed') then null else $12 end,
                   lease_expires_at = case when i.status in ('completed', 'compensated', 'failed') then null
                                           else greatest(now(), i.next_run_at) + $13 * interval '1 millisecond' end,
                   version = s.version + 1,
                   updated_at = now(),
                   progressed_at = case when i.progressed then now() else s.progressed_at end,
                   finished_at = case when i.status in ('completed', 'compensated', 'failed') then now() end
               from input i
               where s.order_id = i.order_id and s.version = i.version
               returning s.order_id, s.version, s.updated_at),
           ev as (
               insert into saga_events (order_id, kind, step, attempt, outcome, detail, actor)
               select e.order_id, e.kind, e.step, e.attempt, e.outcome, e.detail, e.actor
               from unnest($14::uuid[], $15::text[], $16::text[], $17::int[], $18::text[], $19::text[], $20::text[])
                    with ordinality as e(order_id, kind, step, attempt, outcome, detail, actor, n)
               where e.order_id in (select order_id from upd)
               order by e.n)
           select order_id, version, updated_at from upd"#,
    )
    .bind(sagas.clone().map(|s| s.order_id).collect::<Vec<_>>())
    .bind(sagas.clone().map(|s| s.version).collect::<Vec<_>>())
    .bind(sagas.clone().map(|s| s.status.as_str()).collect::<Vec<_>>())
    .bind(sagas.clone().map(|s| i32::try_from(s.step_index).unwrap_or(i32::MAX)).collect::<Vec<_>>())
    .bind(steps)
    .bind(outputs)
    .bind(sagas.clone().map(|s| s.failure_reason.as_deref()).collect::<Vec<_>>())
    .bind(sagas.clone().map(|s| s.compensation_deadline_at).collect::<Vec<_>>())
    .bind(sagas.clone().map(|s| s.next_run_at).collect::<Vec<_>>())
    .bind(batch.iter().map(|(_, progressed, _)| *progressed).collect::<Vec<_>>())
    .bind(sagas.clone().map(|s| s.dead_letter.as_deref()).collect::<Vec<_>>())
    .bind(lease.owner)
    .bind(lease.duration.as_secs_f64() * 1000.0)
    .bind(events.iter().map(|(id, _)| *id).collect::<Vec<_>>())
    .bind(&columns.kinds)
    .bind(&columns.steps)
    .bind(&columns.attempts)
    .bind(&columns.outcomes)
    .bind(&columns.details)
    .bind(&columns.actors)
    .fetch_all(pool)
    .await
}
