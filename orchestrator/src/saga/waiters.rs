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
};

use saga_shared::api::OrderView;
use tokio::sync::oneshot;
use uuid::Uuid;

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
    use super::*;

    fn view(order_id: Uuid) -> OrderView {
        let json = serde_json::json!({
            "order_id": order_id, "status": "completed", "steps": [], "failure_reason": null,
            "created_at": "2026-12-03T10:00:00Z", "updated_at": "2026-12-03T10:00:01Z"
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

    #[test]
    fn nobody_waiting_builds_no_view() {
        Waiters::default().finished(Uuid::new_v4(), || panic!("built a view nobody waits for"));
    }
}
