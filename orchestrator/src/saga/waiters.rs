//! Lets a request wait for a saga to finish (long-poll), woken by the executor of this process
//! with the saga's view as it was written, so the answer needs no second read of the log. A
//! saga finished by another replica is seen by the waiter's periodic re-read instead.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use saga_shared::api::OrderView;
use tokio::sync::oneshot;
use uuid::Uuid;

type Senders = HashMap<Uuid, Vec<oneshot::Sender<OrderView>>>;

/// Who waits for which saga.
#[derive(Debug, Clone, Default)]
pub struct Waiters(Arc<Mutex<Senders>>);

impl Waiters {
    /// A receiver that resolves when this process finishes `order_id`.
    pub fn wait(&self, order_id: Uuid) -> Waiting {
        let (sender, receiver) = oneshot::channel();
        self.lock().entry(order_id).or_default().push(sender);
        Waiting { waiters: self.clone(), order_id, receiver }
    }

    /// Wakes everyone waiting for `order_id` with its terminal view, which `view` builds only
    /// if someone waits. Call it after the terminal state was written.
    pub fn finished(&self, order_id: Uuid, view: impl FnOnce() -> OrderView) {
        let Some(senders) = self.lock().remove(&order_id) else { return };
        let view = view();
        for sender in senders {
            let _ = sender.send(view.clone());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Senders> {
        // The map stays consistent even if a holder panicked (each operation is one call).
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One registered wait; dropping it unregisters it.
#[derive(Debug)]
pub struct Waiting {
    waiters: Waiters,
    order_id: Uuid,
    /// Resolves with the saga's terminal view when it finished in this process.
    pub receiver: oneshot::Receiver<OrderView>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.receiver.close();
        let mut map = self.waiters.lock();
        if let Some(senders) = map.get_mut(&self.order_id) {
            senders.retain(|s| !s.is_closed());
            if senders.is_empty() {
                map.remove(&self.order_id);
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
        assert_eq!(waiters.lock().get(&id).map(Vec::len), Some(1));
        waiters.finished(id, || view(id));
        let woken = (&mut first.receiver).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(woken.order_id, id);
        drop(first);
        assert!(waiters.lock().is_empty());
    }

    #[test]
    fn nobody_waiting_builds_no_view() {
        Waiters::default().finished(Uuid::new_v4(), || panic!("built a view nobody waits for"));
    }
}
