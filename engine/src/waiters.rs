//! Lets a request wait for a saga to finish (long-poll), woken by the executor of this process
//! with the saga's view as it was written, so the answer needs no second read of the log. A
//! saga finished by another replica is seen by the waiter's periodic re-read instead.
//!
//! It also knows which sagas this process is driving: a long-poll of one of those waits without
//! reading the log at all, since its driver wakes it when the saga finishes (with the view) or
//! when the driver stops without finishing it (fenced, shutting down, the log unwritable: the
//! wait then ends empty, and the long-poll reads the log).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use saga_shared::api::OrderView;
use tokio::{sync::oneshot, time::Instant};
use uuid::Uuid;

use super::state::Saga;

#[derive(Debug, Default)]
struct Registry {
    senders: HashMap<Uuid, Vec<oneshot::Sender<OrderView>>>,
    /// Sagas with a driver in this process (one at most since the driver registry; still
    /// counted, so a stray second call cannot end a wait early).
    driving: HashMap<Uuid, usize>,
}

/// Who waits for which saga.
#[derive(Debug, Clone, Default)]
pub struct Waiters(Arc<Mutex<Registry>>);

impl Waiters {
    /// A receiver that resolves when this process finishes `order_id`.
    pub fn wait(&self, order_id: Uuid) -> Waiting {
        self.register(&mut self.lock(), order_id)
    }

    /// Like [`Waiters::wait`], but only while this process drives `order_id`, whose driver will
    /// then end the wait: with the view when the saga finishes, empty when the last driver here
    /// stops (checked and registered under one lock, so the driver cannot stop between the
    /// two). `None` when no driver here. A saga that finished just before, its driver not yet
    /// gone, is not missed: that driver's stop ends the wait empty.
    pub fn wait_if_driven(&self, order_id: Uuid) -> Option<Waiting> {
        let mut registry = self.lock();
        registry.driving.contains_key(&order_id).then(|| self.register(&mut registry, order_id))
    }

    fn register(&self, registry: &mut Registry, order_id: Uuid) -> Waiting {
        let (sender, receiver) = oneshot::channel();
        registry.senders.entry(order_id).or_default().push(sender);
        Waiting { waiters: self.clone(), order_id, receiver }
    }

    /// A driver of `order_id` starts in this process.
    pub fn driving(&self, order_id: Uuid) {
        *self.lock().driving.entry(order_id).or_default() += 1;
    }

    /// A driver of `order_id` ended in this process, finished or not. When it was the last, the
    /// waits still registered end empty (their senders are dropped): nobody here will finish the
    /// saga now, so they must read the log.
    pub fn stopped_driving(&self, order_id: Uuid) {
        let mut registry = self.lock();
        if let Some(drivers) = registry.driving.get_mut(&order_id) {
            *drivers -= 1;
            if *drivers == 0 {
                registry.driving.remove(&order_id);
                registry.senders.remove(&order_id);
            }
        }
    }

    /// Wakes everyone waiting for `order_id` with its terminal view, which `view` builds only
    /// if someone waits. Call it after the terminal state was written.
    pub fn finished(&self, order_id: Uuid, view: impl FnOnce() -> OrderView) {
        let Some(senders) = self.lock().senders.remove(&order_id) else { return };
        let view = view();
        for sender in senders {
            let _ = sender.send(view.clone());
        }
    }

    /// The long-poll of `GET /orders/{id}?wait_ms=`: the saga's view once it is finished, or
    /// as it is at `deadline`. `read` reads it from the log; a read's error ends the poll.
    ///
    /// A saga this process drives is not read while it is driven: its driver ends the wait with
    /// the view it wrote when the saga finishes, or empty when it stops without finishing it
    /// (then it is read). Under overload that saves a read of every waiting saga every
    /// `recheck`. (A saga finished by another replica while a driver here still holds it, asleep
    /// in a backoff, is seen when that driver is fenced at its next write, or at the wait's
    /// end.) Any other saga is read, then re-read every `recheck` (another replica, or
    /// recovery, may finish it, which wakes nobody here) and a last time at the deadline.
    /// Either wait is registered before the read, so a finish between the two is not missed.
    ///
    /// Generic over `read` so that the timing runs in tests without a database. `read` is a
    /// closure returning a future rather than an async closure: the future of an `AsyncFnMut`
    /// borrows the closure for any lifetime, and rustc cannot then prove the handler's future
    /// `Send` ("implementation of `Send` is not general enough").
    pub async fn long_poll<E, F: Future<Output = Result<Saga, E>>>(
        &self,
        order_id: Uuid,
        deadline: Instant,
        recheck: Duration,
        mut read: impl FnMut() -> F,
    ) -> Result<OrderView, E> {
        loop {
            let now = Instant::now();
            let driven = if now < deadline { self.wait_if_driven(order_id) } else { None };
            let (mut waiting, wait_for) = match driven {
                Some(waiting) => (waiting, deadline - now),
                None => {
                    let waiting = self.wait(order_id);
                    let saga = read().await?;
                    let now = Instant::now();
                    if saga.status.is_terminal() || now >= deadline {
                        return Ok(saga.view());
                    }
                    (waiting, (deadline - now).min(recheck))
                }
            };
            if let Ok(Ok(view)) = tokio::time::timeout(wait_for, &mut waiting.receiver).await {
                return Ok(view);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // The map stays consistent even if a holder panicked (each operation is one call).
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One registered wait; dropping it unregisters it.
#[derive(Debug)]
pub struct Waiting {
    waiters: Waiters,
    order_id: Uuid,
    /// Resolves with the saga's terminal view when it finished in this process, or with an
    /// error when its last driver here stopped without finishing it.
    pub receiver: oneshot::Receiver<OrderView>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.receiver.close();
        let mut registry = self.waiters.lock();
        if let Some(senders) = registry.senders.get_mut(&self.order_id) {
            senders.retain(|s| !s.is_closed());
            if senders.is_empty() {
                registry.senders.remove(&self.order_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use saga_shared::{api::SagaStatus, config::Env};

    use super::*;
    use crate::{
        config::OrchestratorConfig,
        definition::{ORDER_STEPS, SagaDefinition},
    };

    fn view(order_id: Uuid) -> OrderView {
        let json = serde_json::json!({
            "order_id": order_id, "status": "completed", "steps": [], "failure_reason": null,
            "created_at": "2026-12-03T10:00:00Z", "updated_at": "2026-12-03T10:00:01Z",
            "customer_id": "alice", "items": [{ "sku": "WIDGET-1", "quantity": 1 }], "total_cents": null,
            "country": "FR", "next_attempt_at": null, "deadline_at": null, "owner": null, "trace_id": null
        });
        serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn a_finished_saga_wakes_its_waiters_with_its_view_and_dropped_waits_leave_nothing_behind() {
        let waiters = Waiters::default();
        let id = Uuid::new_v4();
        let mut first = waiters.wait(id);
        let second = waiters.wait(id);
        drop(second);
        assert_eq!(waiters.lock().senders.get(&id).map(Vec::len), Some(1));
        waiters.finished(id, || view(id));
        let woken = (&mut first.receiver).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(woken.order_id, id);
        drop(first);
        assert!(waiters.lock().senders.is_empty());
    }

    #[tokio::test]
    async fn only_a_saga_driven_here_can_be_waited_for_without_a_read() {
        let waiters = Waiters::default();
        let id = Uuid::new_v4();
        assert!(waiters.wait_if_driven(id).is_none(), "nobody drives it here");
        waiters.driving(id);
        waiters.driving(id);
        let mut waiting = waiters.wait_if_driven(id).unwrap_or_else(|| panic!("driven here"));
        waiters.finished(id, || view(id));
        let woken = (&mut waiting.receiver).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(woken.order_id, id);
        waiters.stopped_driving(id);
        assert!(waiters.wait_if_driven(id).is_some(), "a second driver still runs");
        waiters.stopped_driving(id);
        assert!(waiters.wait_if_driven(id).is_none());
        assert!(waiters.lock().driving.is_empty());
    }

    #[tokio::test]
    async fn a_wait_ends_empty_when_the_last_driver_stops_without_finishing() {
        let waiters = Waiters::default();
        let id = Uuid::new_v4();
        waiters.driving(id);
        waiters.driving(id);
        let mut driven = waiters.wait_if_driven(id).unwrap_or_else(|| panic!("driven here"));
        let mut plain = waiters.wait(id);
        waiters.stopped_driving(id);
        assert!(
            driven.receiver.try_recv().is_err_and(|e| e == oneshot::error::TryRecvError::Empty),
            "a driver is left"
        );
        waiters.stopped_driving(id);
        assert!((&mut driven.receiver).await.is_err(), "no driver left: the wait ends empty");
        assert!((&mut plain.receiver).await.is_err());
        assert!(waiters.lock().senders.is_empty());
    }

    #[tokio::test]
    async fn a_saga_finished_just_before_its_wait_was_registered_is_not_missed() {
        // The finish falls between the long-poll's check and its registration: nobody was
        // waiting yet, so it wakes nobody; the driver's stop then ends the wait, and the caller
        // reads the finished saga.
        let waiters = Waiters::default();
        let id = Uuid::new_v4();
        waiters.driving(id);
        waiters.finished(id, || view(id));
        let mut late = waiters.wait_if_driven(id).unwrap_or_else(|| panic!("its driver has not returned yet"));
        waiters.stopped_driving(id);
        assert!((&mut late.receiver).await.is_err());
    }

    /// The long-poll's tests: `GET /orders/{id}`'s recheck period and a deadline that is not a
    /// multiple of it, so the last look at the deadline shows.
    const RECHECK: Duration = Duration::from_millis(250);

    /// A saga `order_id` at `status`.
    fn saga(order_id: Uuid, status: SagaStatus) -> Saga {
        let config = OrchestratorConfig::from_env(&Env::default(), &ORDER_STEPS).unwrap_or_else(|e| panic!("{e}"));
        let definition = SagaDefinition::order_saga(&config).unwrap_or_else(|e| panic!("{e}"));
        let request = serde_json::from_value(serde_json::json!({
            "customer_id": "alice", "items": [{ "sku": "WIDGET-1", "quantity": 1 }],
            "shipping_address": { "name": "A", "line1": "B", "city": "C", "postal_code": "D", "country": "FR" }
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let mut saga = Saga::new(order_id, request, &definition, chrono::Utc::now());
        saga.status = status;
        saga
    }

    /// A log in memory where the saga reads as `statuses` in turn (the last one from then on),
    /// or fails when there are none; it records when each read came (from the test's start, on
    /// its paused clock).
    struct Log {
        order_id: Uuid,
        start: Instant,
        statuses: Vec<SagaStatus>,
        reads: Vec<Duration>,
    }

    impl Log {
        fn new(order_id: Uuid, statuses: &[SagaStatus]) -> Self {
            Self { order_id, start: Instant::now(), statuses: statuses.to_vec(), reads: Vec::new() }
        }

        fn read(&mut self) -> Result<Saga, &'static str> {
            let status = self.statuses.get(self.reads.len()).or(self.statuses.last()).copied();
            self.reads.push(self.start.elapsed());
            Ok(saga(self.order_id, status.ok_or("the database is down")?))
        }

        /// Long-polls the saga for `wait`: the answer's status, and when it came.
        async fn poll(&mut self, waiters: &Waiters, wait: Duration) -> (Result<SagaStatus, &'static str>, Duration) {
            let (order_id, start) = (self.order_id, self.start);
            let answer = waiters.long_poll(order_id, start + wait, RECHECK, || std::future::ready(self.read())).await;
            (answer.map(|view| view.status), start.elapsed())
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_poll_of_a_saga_not_driven_here_rereads_it_every_period_and_answers_at_its_deadline() {
        let waiters = Waiters::default();
        let mut log = Log::new(Uuid::new_v4(), &[SagaStatus::Running]);
        let answer = log.poll(&waiters, ms(900)).await;
        assert_eq!(answer, (Ok(SagaStatus::Running), ms(900)), "not before its deadline, and as read then");
        assert_eq!(log.reads, [ms(0), ms(250), ms(500), ms(750), ms(900)]);
        assert!(waiters.lock().senders.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_poll_answers_at_the_first_reread_that_finds_the_saga_finished() {
        // Finished by another replica, which wakes nobody here.
        let waiters = Waiters::default();
        let mut log =
            Log::new(Uuid::new_v4(), &[SagaStatus::Running, SagaStatus::Compensating, SagaStatus::Compensated]);
        let answer = log.poll(&waiters, ms(25_000)).await;
        assert_eq!(answer, (Ok(SagaStatus::Compensated), ms(500)));
        assert_eq!(log.reads, [ms(0), ms(250), ms(500)]);
        assert!(waiters.lock().senders.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_poll_of_zero_reads_once_at_once_and_a_read_error_ends_it() {
        let waiters = Waiters::default();
        let mut log = Log::new(Uuid::new_v4(), &[SagaStatus::Running]);
        assert_eq!(log.poll(&waiters, Duration::ZERO).await, (Ok(SagaStatus::Running), ms(0)));
        assert_eq!(log.reads, [ms(0)]);
        let mut down = Log::new(Uuid::new_v4(), &[]);
        assert_eq!(down.poll(&waiters, ms(1_000)).await, (Err("the database is down"), ms(0)));
        assert!(waiters.lock().senders.is_empty(), "the wait registered before the read is gone");
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_poll_woken_by_finished_gets_the_view_at_once_without_a_read() {
        for driven_here in [true, false] {
            let waiters = Waiters::default();
            let id = Uuid::new_v4();
            if driven_here {
                waiters.driving(id);
            }
            let mut log = Log::new(id, &[SagaStatus::Running]);
            let finish = async {
                tokio::time::sleep(ms(300)).await;
                waiters.finished(id, || saga(id, SagaStatus::Completed).view());
            };
            let (answer, ()) = tokio::join!(log.poll(&waiters, ms(25_000)), finish);
            assert_eq!(answer, (Ok(SagaStatus::Completed), ms(300)), "driven here: {driven_here}");
            // Driven here: never read. Otherwise read at once, and the finish came before the
            // next reread was due.
            let reads: &[Duration] = if driven_here { &[] } else { &[ms(0), ms(250)] };
            assert_eq!(log.reads, reads, "driven here: {driven_here}");
            assert!(waiters.lock().senders.is_empty());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_poll_of_a_saga_driven_here_reads_it_when_its_last_driver_stops() {
        let waiters = Waiters::default();
        let id = Uuid::new_v4();
        waiters.driving(id);
        waiters.driving(id);
        // The saga was not finished here (its driver was fenced: another replica has it).
        let mut log = Log::new(id, &[SagaStatus::Running]);
        let stop = async {
            tokio::time::sleep(ms(300)).await;
            waiters.stopped_driving(id);
            tokio::time::sleep(ms(100)).await;
            waiters.stopped_driving(id);
        };
        let (answer, ()) = tokio::join!(log.poll(&waiters, ms(1_000)), stop);
        assert_eq!(answer, (Ok(SagaStatus::Running), ms(1_000)));
        // Nothing read while a driver was left; from the last one's stop, read at once, then
        // every period and at the deadline.
        assert_eq!(log.reads, [ms(400), ms(650), ms(900), ms(1_000)]);
        assert!(waiters.lock().senders.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_poll_of_a_saga_driven_here_to_its_deadline_reads_it_once_at_the_deadline() {
        let waiters = Waiters::default();
        let id = Uuid::new_v4();
        waiters.driving(id);
        let mut log = Log::new(id, &[SagaStatus::Running]);
        assert_eq!(log.poll(&waiters, ms(2_000)).await, (Ok(SagaStatus::Running), ms(2_000)));
        assert_eq!(log.reads, [ms(2_000)]);
        assert!(waiters.lock().senders.is_empty());
    }

    #[test]
    fn nobody_waiting_builds_no_view() {
        Waiters::default().finished(Uuid::new_v4(), || panic!("built a view nobody waits for"));
    }
}
