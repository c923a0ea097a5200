//! Group commit of the drivers' writes: one task takes every save that is queued, writes them
//! all in one statement ([`log::save_all`]: each row still fenced on its own version, each
//! saga's events appended in order) and answers each driver, then takes what queued meanwhile. No added waiting: a save
//! that finds the writer idle is written at once, alone.
//!
//! A batch that fails as a whole (a deadlock with another writer of the same rows, a bad row, a
//! lost connection) is written again as separate saves with [`log::save`], concurrently, so one
//! save's error is only its own.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{
    log::{self, Lease, Save},
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
        let written = log::save_all(&pool, &saves, lease).await;
        drop(saves);
        match written {
            Ok(written) => {
                let written: HashMap<Uuid, (i64, DateTime<Utc>)> =
                    written.into_iter().map(|(id, version, at)| (id, (version, at))).collect();
                for save in batch.drain(..) {
                    let answer = written.get(&save.saga.order_id).copied();
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
