//! Lets a request wait for a saga to finish (long-poll), woken by the executor of this process.
//! A saga finished by another replica is seen by the waiter's periodic re-read instead.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::oneshot;
use uuid::Uuid;

/// Who waits for which saga.
#[derive(Debug, Clone, Default)]
pub struct Waiters(Arc<Mutex<HashMap<Uuid, Vec<oneshot::Sender<()>>>>>);

impl Waiters {
    /// A receiver that resolves when this process finishes `order_id`.
    pub fn wait(&self, order_id: Uuid) -> Waiting {
        let (sender, receiver) = oneshot::channel();
        self.lock().entry(order_id).or_default().push(sender);
        Waiting { waiters: self.clone(), order_id, receiver }
    }

    /// Wakes everyone waiting for `order_id`.
    pub fn finished(&self, order_id: Uuid) {
        if let Some(senders) = self.lock().remove(&order_id) {
            for sender in senders {
                let _ = sender.send(());
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Vec<oneshot::Sender<()>>>> {
        // The map stays consistent even if a holder panicked (each operation is one call).
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One registered wait; dropping it unregisters it.
#[derive(Debug)]
pub struct Waiting {
    waiters: Waiters,
    order_id: Uuid,
    /// Resolves when the saga finished in this process.
    pub receiver: oneshot::Receiver<()>,
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

    #[tokio::test]
    async fn a_finished_saga_wakes_its_waiters_and_dropped_waits_leave_nothing_behind() {
        let waiters = Waiters::default();
        let id = Uuid::new_v4();
        let mut first = waiters.wait(id);
        let second = waiters.wait(id);
        drop(second);
        assert_eq!(waiters.lock().get(&id).map(Vec::len), Some(1));
        waiters.finished(id);
        assert!((&mut first.receiver).await.is_ok());
        drop(first);
        assert!(waiters.lock().is_empty());
    }
}
