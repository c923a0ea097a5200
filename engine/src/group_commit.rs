//! Group commit of the drivers' writes: one task takes every save that is queued, writes them
//! all in one statement ([`SagaStore::save_all`]: each row still fenced on its own version,
//! each save's events appended in order) and answers each driver, then takes what queued
//! meanwhile. No added waiting: a save that finds the writer idle is written at once, alone.
//!
//! **Each save gets its own answer.** The store answers by position in the batch, never by
//! saga, and two saves of one saga never share a batch: the later one waits for the next round
//! (as the participants' batches do). So a save that was fenced out is told so, its events are
//! never written, and its driver stops. (Before issue 16 the answer was looked up by order id,
//! so when two drivers of one saga saved together the fenced one was told it had written, its
//! events were appended too, and both drove on: two endings in one timeline.)
//!
//! A batch that fails as a whole (a deadlock with another writer of the same rows, a bad row, a
//! lost connection) is written again as separate saves, concurrently, so one save's error is
//! only its own. A batch whose commit landed but whose answer was lost then reads as fenced
//! out; the executor tells that case apart where it matters (a terminal save, see
//! `Executor::write`).

use std::{collections::HashSet, time::Duration};

use tokio::sync::{mpsc, oneshot};

use super::{
    log::{Lease, Save},
    machine::NewEvent,
    state::Saga,
    store::{SagaStore, Written},
};

/// The most saves one statement writes.
const MAX_BATCH: usize = 256;

/// What a driver gets back: the written version and time, `None` when fenced out.
type Answer = Result<Option<Written>, sqlx::Error>;

/// A save waiting for the writer.
#[derive(Debug)]
struct Pending {
    saga: Saga,
    progressed: bool,
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Answer>,
}

/// The handle the drivers save through.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    queue: mpsc::UnboundedSender<Pending>,
}

impl GroupCommit {
    /// Starts the writer task; it ends when the last handle is dropped.
    pub fn start<S: SagaStore>(store: std::sync::Arc<S>, owner: String, lease: Duration) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(store, owner, lease, pending));
        Self { queue }
    }

    /// Saves `saga` (fenced on its version) with `events` through the writer. `Ok(true)`: written,
    /// and `saga.version`/`saga.updated_at` are the written ones; `Ok(false)`: fenced out.
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

/// Splits what is queued into this round's batch (at most one save per saga) and the saves that
/// wait for the next round, keeping each saga's saves in the order they came.
fn one_per_saga(queued: &mut Vec<Pending>, batch: &mut Vec<Pending>) {
    let mut seen = HashSet::with_capacity(queued.len());
    let mut later = Vec::new();
    for save in queued.drain(..) {
        if seen.insert(save.saga.order_id) {
            batch.push(save);
        } else {
            later.push(save);
        }
    }
    *queued = later;
}

async fn write_batches<S: SagaStore>(
    store: std::sync::Arc<S>,
    owner: String,
    lease: Duration,
    mut pending: mpsc::UnboundedReceiver<Pending>,
) {
    let mut queued = Vec::with_capacity(MAX_BATCH);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if queued.is_empty() && pending.recv_many(&mut queued, MAX_BATCH).await == 0 {
            return; // every handle is gone
        }
        // Saves deferred from the last round go first; then whatever else is queued.
        while queued.len() < MAX_BATCH {
            match pending.try_recv() {
                Ok(save) => queued.push(save),
                Err(_) => break,
            }
        }
        one_per_saga(&mut queued, &mut batch);
        let lease = Lease { owner: &owner, duration: lease };
        let saves: Vec<Save<'_>> = batch.iter().map(|p| (&p.saga, p.progressed, p.events.as_slice())).collect();
        let written = store.save_all(&saves, lease).await;
        drop(saves);
        match written {
            Ok(written) if written.len() == batch.len() => {
                for (save, answer) in batch.drain(..).zip(written) {
                    let _ = save.reply.send(Ok(answer)); // a driver that gave up no longer listens
                }
            }
            Ok(_) | Err(_) => {
                if let Err(err) = &written {
                    tracing::warn!(%err, saves = batch.len(), "a group commit failed; writing its saves one by one");
                } else {
                    tracing::error!(saves = batch.len(), "a group commit answered for the wrong number of saves");
                }
                // Each save alone, all at once: as the drivers wrote before group commit, so a
                // database that is down costs one timeout, not one per save.
                let store = &*store;
                let alone = batch.drain(..).map(|save| async move {
                    let saves = [(&save.saga, save.progressed, save.events.as_slice())];
                    let answer = match store.save_all(&saves, lease).await {
                        Ok(written) => Ok(written.first().copied().flatten()),
                        Err(err) => Err(err),
                    };
                    let _ = save.reply.send(answer);
                });
                futures::future::join_all(alone).await;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::{Arc, Mutex};

    use saga_shared::config::Env;
    use tokio::time::Instant;
    use uuid::Uuid;

    use super::*;
    use crate::{
        config::OrchestratorConfig,
        definition::{ORDER_STEPS, SagaDefinition},
        log::{Claimed, Inserted},
    };

    /// A saga `id` at `version`.
    fn saga(id: u128, version: i64) -> Saga {
        let config = OrchestratorConfig::from_env(&Env::default(), &ORDER_STEPS).unwrap();
        let definition = SagaDefinition::order_saga(&config).unwrap();
        let request: saga_shared::api::OrderRequest = serde_json::from_value(serde_json::json!({
            "customer_id": "alice", "items": [{ "sku": "WIDGET-1", "quantity": 1 }],
            "shipping_address": { "name": "A", "line1": "B", "city": "C", "postal_code": "D", "country": "FR" }
        }))
        .unwrap();
        let mut saga = Saga::new(Uuid::from_u128(id), request, &definition, chrono::Utc::now());
        saga.version = version;
        saga
    }

    /// A log in memory whose every statement takes 10 ms (of the test's paused clock) and, when
    /// `fail_batches` is set, fails any statement of more than one save. It writes every save
    /// and records each statement's (saga, version) pairs.
    #[derive(Default)]
    struct SlowLog {
        statements: Mutex<Vec<Vec<(u128, i64)>>>,
        fail_batches: bool,
    }

    const STATEMENT: Duration = Duration::from_millis(10);

    impl SagaStore for SlowLog {
        async fn save_all(&self, batch: &[Save<'_>], _: Lease<'_>) -> Result<Vec<Option<Written>>, sqlx::Error> {
            let saves = batch.iter().map(|(saga, _, _)| (saga.order_id.as_u128(), saga.version)).collect();
            self.statements.lock().unwrap().push(saves);
            tokio::time::sleep(STATEMENT).await;
            if self.fail_batches && batch.len() > 1 {
                return Err(sqlx::Error::PoolTimedOut);
            }
            Ok(batch.iter().map(|(saga, _, _)| Some((saga.version + 1, chrono::Utc::now()))).collect())
        }

        async fn insert(
            &self,
            _: &Saga,
            _: &NewEvent,
            _: Option<&str>,
            _: &str,
            _: Duration,
        ) -> Result<Inserted, sqlx::Error> {
            unreachable!("the group commit only saves")
        }
        async fn append(&self, _: Uuid, _: &[NewEvent], _: &str) -> Result<(), sqlx::Error> {
            unreachable!("the group commit only saves")
        }
        async fn load(&self, _: Uuid) -> Result<Option<Saga>, sqlx::Error> {
            unreachable!("the group commit only saves")
        }
        async fn claim_due(&self, _: &str, _: Duration, _: i64, _: &[Uuid]) -> Result<Vec<Claimed>, sqlx::Error> {
            unreachable!("the group commit only saves")
        }
        async fn release(&self, _: &Saga) -> Result<bool, sqlx::Error> {
            unreachable!("the group commit only saves")
        }
        async fn renew(&self, _: Uuid, _: i64, _: Lease<'_>) -> Result<bool, sqlx::Error> {
            unreachable!("the group commit only saves")
        }
    }

    /// Saves `saga` through `writer` in a task of its own; the task answers whether it was
    /// written and when.
    fn save(writer: &GroupCommit, mut saga: Saga) -> tokio::task::JoinHandle<(bool, Duration)> {
        let writer = writer.clone();
        let started = Instant::now();
        tokio::spawn(async move {
            let written = writer.save(&mut saga, false, &[]).await.unwrap();
            (written, started.elapsed())
        })
    }

    /// Lets the spawned tasks run until the log has seen `count` statements.
    async fn until_statements(log: &SlowLog, count: usize) {
        while log.statements.lock().unwrap().len() < count {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_writer_saves_at_once_and_what_queues_meanwhile_goes_in_the_next_statement() {
        let log = Arc::new(SlowLog::default());
        let writer = GroupCommit::start(Arc::clone(&log), "here".to_owned(), Duration::from_secs(60));

        let first = save(&writer, saga(1, 0));
        until_statements(&log, 1).await;
        // While the first statement runs: three sagas, one of them twice.
        let queued: Vec<_> = [(2, 0), (3, 0), (2, 1), (4, 0)].map(|(id, v)| save(&writer, saga(id, v))).into();
        let mut answers = vec![first.await.unwrap()];
        for task in queued {
            answers.push(task.await.unwrap());
        }

        let statements = log.statements.lock().unwrap().clone();
        assert_eq!(statements, [vec![(1, 0)], vec![(2, 0), (3, 0), (4, 0)], vec![(2, 1)]]);
        // No added waiting: one statement's time for the first save, two for those that queued
        // behind it, three for the second save of saga 2 (never in one statement with its first).
        let ms = |n: u32| STATEMENT * n;
        assert_eq!(answers, [(true, ms(1)), (true, ms(2)), (true, ms(2)), (true, ms(3)), (true, ms(2))]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_statement_that_fails_is_written_again_save_by_save_all_at_once() {
        let log = Arc::new(SlowLog { fail_batches: true, ..SlowLog::default() });
        let writer = GroupCommit::start(Arc::clone(&log), "here".to_owned(), Duration::from_secs(60));

        let first = save(&writer, saga(1, 0));
        until_statements(&log, 1).await;
        let queued: Vec<_> = [2, 3, 4].map(|id| save(&writer, saga(id, 0))).into();
        let mut answers = vec![first.await.unwrap()];
        for task in queued {
            answers.push(task.await.unwrap());
        }

        let statements = log.statements.lock().unwrap().clone();
        assert_eq!(statements[..2], [vec![(1, 0)], vec![(2, 0), (3, 0), (4, 0)]]);
        let mut alone = statements[2..].to_vec();
        alone.sort();
        assert_eq!(alone, [vec![(2, 0)], vec![(3, 0)], vec![(4, 0)]]);
        // The failed statement cost one statement's time, and the saves alone one more between
        // them (concurrently), not one each.
        let ms = |n: u32| STATEMENT * n;
        assert_eq!(answers, [(true, ms(1)), (true, ms(3)), (true, ms(3)), (true, ms(3))]);
    }

    #[test]
    fn two_saves_of_one_saga_never_share_a_batch_and_keep_their_order() {
        let pending = |id: u128, version| Pending {
            saga: saga(id, version),
            progressed: false,
            events: Vec::new(),
            reply: oneshot::channel().0,
        };
        let mut queued = vec![pending(1, 0), pending(2, 0), pending(1, 1), pending(1, 2), pending(3, 0)];
        let mut batch = Vec::new();
        one_per_saga(&mut queued, &mut batch);
        let ids = |v: &[Pending]| v.iter().map(|p| (p.saga.order_id.as_u128(), p.saga.version)).collect::<Vec<_>>();
        assert_eq!(ids(&batch), [(1, 0), (2, 0), (3, 0)]);
        assert_eq!(ids(&queued), [(1, 1), (1, 2)]);
        batch.clear();
        one_per_saga(&mut queued, &mut batch);
        assert_eq!(ids(&batch), [(1, 1)]);
        assert_eq!(ids(&queued), [(1, 2)]);
    }
}
