//! What `/readyz` reports besides the database: the parts of a process that can stop working
//! while it still answers HTTP (a step's batch writer, between a panic and its restart).
//!
//! A part registers once and then says whether it is ready; `/readyz` answers 503 naming every
//! part that is not, so a load balancer or launcher stops sending work until it is back.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

/// The readiness of a process's parts, shared by the parts and `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<Mutex<BTreeMap<String, Option<String>>>>);

impl Readiness {
    /// Registers the part `name`, ready.
    pub fn part(&self, name: impl Into<String>) -> Part {
        let name = name.into();
        self.parts().insert(name.clone(), None);
        Part { readiness: self.clone(), name }
    }

    /// Why each part that is not ready is not, in name order (empty when all are).
    pub fn not_ready(&self) -> Vec<String> {
        self.parts().iter().filter_map(|(name, why)| why.as_ref().map(|why| format!("{name}: {why}"))).collect()
    }

    fn parts(&self) -> MutexGuard<'_, BTreeMap<String, Option<String>>> {
        // A poisoned lock only means a panic while a plain map entry was being set: the map is
        // still whole, so keep using it (a panicking part is exactly what this must report).
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One part's handle on its readiness.
#[derive(Debug, Clone)]
pub struct Part {
    readiness: Readiness,
    name: String,
}

impl Part {
    /// The part works.
    pub fn ready(&self) {
        self.readiness.parts().insert(self.name.clone(), None);
    }

    /// The part does not work, for the reason given (shown by `/readyz`).
    pub fn not_ready(&self, why: impl Into<String>) {
        self.readiness.parts().insert(self.name.clone(), Some(why.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_that_is_not_ready_is_named_until_it_is_again() {
        let readiness = Readiness::default();
        let writer = readiness.part("payments writer");
        let _other = readiness.part("other");
        assert!(readiness.not_ready().is_empty());
        writer.not_ready("restarting after a panic");
        assert_eq!(readiness.not_ready(), vec!["payments writer: restarting after a panic".to_owned()]);
        writer.ready();
        assert!(readiness.not_ready().is_empty());
    }
}
