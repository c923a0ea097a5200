//! The registry of the sagas this process drives: at most one driver per saga, by construction.
//!
//! A saga driven here has a slot, and the slot has a mailbox. Whoever else has something for the
//! saga (an operator's retry or cancel, a recovery claim, a batch operation) hands it to the
//! mailbox; only when there is no slot does the caller's message start a driver, in a new slot.
//! A driver leaves its slot only through [`Drivers::leave`], which takes the next message, if
//! any, under the same lock that [`Drivers::hand`] sends under: so a message is never sent to a
//! driver that has just left, and no second driver can start while one is still in its slot.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use saga_shared::api::OrderView;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{
    machine::{Input, OperatorAction, Refusal},
    state::Saga,
};

/// Why an operator's action was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum OperateError {
    /// There is no such saga.
    #[error("no order {0}")]
    NotFound(Uuid),
    /// The saga's state does not allow it.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The log could not be read or written.
    #[error("the saga log is unavailable: {0}")]
    Database(#[from] sqlx::Error),
    /// Another instance kept writing the saga in between.
    #[error("saga {0} kept changing; try again")]
    Busy(Uuid),
    /// This process is shutting down.
    #[error("the orchestrator is shutting down; try again")]
    ShuttingDown,
}

/// What an operator gets back.
pub type OperateReply = oneshot::Sender<Result<OrderView, OperateError>>;

/// Something for a saga's driver.
#[derive(Debug)]
pub enum Message {
    /// Drive this copy of the saga from `input`: a new saga (`Run`), or one claimed from the log
    /// (`Resumed`), owned by this process at `saga.version`.
    Drive {
        /// The saga as written (or claimed); boxed, as it is far larger than an action.
        saga: Box<Saga>,
        /// What to decide first.
        input: Input,
    },
    /// An operator's action, decided by the driver on the saga as it holds it.
    Operate {
        /// What, who, why.
        action: OperatorAction,
        /// Where the answer goes.
        reply: OperateReply,
    },
}

/// Where a driver reads its messages.
pub type Mailbox = mpsc::UnboundedReceiver<Message>;

/// The sagas with a driver in this process.
#[derive(Debug, Default)]
pub struct Drivers {
    slots: Mutex<HashMap<Uuid, mpsc::UnboundedSender<Message>>>,
}

impl Drivers {
    /// Hands `message` to the saga's driver here. When there is none, the slot is taken for the
    /// caller, who must start a driver with the message and the returned mailbox.
    pub fn hand(&self, order_id: Uuid, message: Message) -> Option<(Message, Mailbox)> {
        let mut slots = self.lock();
        if let Some(mailbox) = slots.get(&order_id) {
            match mailbox.send(message) {
                Ok(()) => return None,
                // Unreachable while the slot exists (its driver holds the receiver until it
                // leaves, under this lock); a new slot replaces it.
                Err(mpsc::error::SendError(message)) => return Some(Self::take(&mut slots, order_id, message)),
            }
        }
        Some(Self::take(&mut slots, order_id, message))
    }

    fn take(
        slots: &mut HashMap<Uuid, mpsc::UnboundedSender<Message>>,
        order_id: Uuid,
        message: Message,
    ) -> (Message, Mailbox) {
        let (sender, mailbox) = mpsc::unbounded_channel();
        slots.insert(order_id, sender);
        (message, mailbox)
    }

    /// The driver of `order_id` is done with what it had: it gets the next message, or, when
    /// there is none, leaves its slot (`None`).
    pub fn leave(&self, order_id: Uuid, mailbox: &mut Mailbox) -> Option<Message> {
        let mut slots = self.lock();
        match mailbox.try_recv() {
            Ok(message) => Some(message),
            Err(_) => {
                slots.remove(&order_id);
                mailbox.close();
                None
            }
        }
    }

    /// The sagas driven here now (recovery leaves them alone).
    pub fn driven(&self) -> Vec<Uuid> {
        self.lock().keys().copied().collect()
    }

    /// How many sagas are driven here (the admission limit's measure).
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, mpsc::UnboundedSender<Message>>> {
        // Each operation leaves the map consistent, even if a holder panicked.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::OperatorCommand;

    fn cancel() -> (Message, oneshot::Receiver<Result<OrderView, OperateError>>) {
        let (reply, answer) = oneshot::channel();
        let action = OperatorAction { command: OperatorCommand::Cancel, operator: "ops".into(), reason: None };
        (Message::Operate { action, reply }, answer)
    }

    #[test]
    fn a_message_for_a_saga_driven_here_goes_to_its_driver_and_never_starts_a_second() {
        let drivers = Drivers::default();
        let id = Uuid::from_u128(7);
        let (first, _) = cancel();
        let Some((_, mut mailbox)) = drivers.hand(id, first) else { panic!("nobody drove it: the caller drives") };
        let (second, _) = cancel();
        assert!(drivers.hand(id, second).is_none(), "handed to the driver");
        assert_eq!(drivers.count(), 1);
        assert!(matches!(drivers.leave(id, &mut mailbox), Some(Message::Operate { .. })), "the driver gets it");
        assert!(drivers.leave(id, &mut mailbox).is_none(), "nothing more: it leaves");
        assert_eq!(drivers.count(), 0);
        let (third, _) = cancel();
        assert!(drivers.hand(id, third).is_some(), "after it left, the next caller drives");
    }
}
