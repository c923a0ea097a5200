//! The suite's services, written once: each one's name (also its database schema and login
//! role, its binary, its log and metric label), its default port, and for a participant the
//! saga step it does and the resource its records live under
//! (`PUT`/`DELETE`/`GET /{resource}/{order_id}`).
//!
//! The services take their defaults from here, the orchestrator its participants' default URLs
//! and step names, `sagactl` what it provisions, starts, kills and loads, and the tests what they
//! start. `monitoring-checks/check_consistency.py` reads the constructor calls below to check
//! compose, Prometheus and Grafana against them, so keep each on one line.

/// One service of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// Name, schema, login role and binary.
    pub name: &'static str,
    /// Port unless `PORT` (or, for `sagactl`, `<NAME>_PORT`) says otherwise.
    pub default_port: u16,
    /// What it does in the saga.
    pub role: Role,
}

/// What a service does in the saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Drives sagas; calls every participant.
    Orchestrator,
    /// Does one step of the order saga and undoes it.
    Participant {
        /// The step's name (API, timeline, metric labels).
        step: &'static str,
        /// Where its records live: `/{resource}/{order_id}`.
        resource: &'static str,
    },
}

impl Service {
    const fn orchestrator(name: &'static str, default_port: u16) -> Self {
        Self { name, default_port, role: Role::Orchestrator }
    }

    const fn participant(name: &'static str, default_port: u16, step: &'static str, resource: &'static str) -> Self {
        Self { name, default_port, role: Role::Participant { step, resource } }
    }

    /// The step a participant does (`None` for the orchestrator).
    pub const fn step(&self) -> Option<&'static str> {
        match self.role {
            Role::Participant { step, .. } => Some(step),
            Role::Orchestrator => None,
        }
    }

    /// The resource a participant's records live under (`None` for the orchestrator).
    pub const fn resource(&self) -> Option<&'static str> {
        match self.role {
            Role::Participant { resource, .. } => Some(resource),
            Role::Orchestrator => None,
        }
    }

    /// Whether it is a participant.
    pub const fn is_participant(&self) -> bool {
        matches!(self.role, Role::Participant { .. })
    }

    /// The variable that gives the orchestrator this participant's base URL (`PAYMENT_URL`).
    pub fn url_variable(&self) -> String {
        format!("{}_URL", self.name.to_uppercase())
    }

    /// Its URL on this machine at `port` (what the orchestrator assumes without `<NAME>_URL`).
    pub fn local_url(&self, port: u16) -> String {
        format!("http://127.0.0.1:{port}")
    }

    /// Looks a service up by name.
    pub fn named(name: &str) -> Option<&'static Service> {
        ALL.iter().find(|service| service.name == name)
    }
}

pub const ORCHESTRATOR: Service = Service::orchestrator("orchestrator", 8080);
pub const INVENTORY: Service = Service::participant("inventory", 8081, "reserve_inventory", "reservations");
pub const PAYMENT: Service = Service::participant("payment", 8082, "process_payment", "payments");
pub const SHIPPING: Service = Service::participant("shipping", 8083, "create_shipment", "shipments");
pub const NOTIFICATION: Service = Service::participant("notification", 8084, "send_confirmation", "notifications");

/// The participants, in the order saga's step order.
pub const PARTICIPANTS: [Service; 4] = [INVENTORY, PAYMENT, SHIPPING, NOTIFICATION];

/// Every service, in start order: participants first, because the orchestrator may call them
/// as soon as it is up.
pub const ALL: [Service; 5] = [INVENTORY, PAYMENT, SHIPPING, NOTIFICATION, ORCHESTRATOR];

/// Every service's name, in [`ALL`]'s order (each is also a schema and a login role).
pub const NAMES: [&str; 5] = {
    let mut names = [""; 5];
    let mut i = 0;
    while i < ALL.len() {
        names[i] = ALL[i].name;
        i += 1;
    }
    names
};

/// A participant's step name, at compile time (for constant step lists).
pub const fn step_of(service: Service) -> &'static str {
    match service.role {
        Role::Participant { step, .. } => step,
        Role::Orchestrator => panic!("the orchestrator does no step"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_ports_steps_and_resources_are_unique() {
        let unique = |values: Vec<String>| values.iter().collect::<HashSet<_>>().len() == values.len();
        assert!(unique(ALL.iter().map(|s| s.name.to_owned()).collect()));
        assert!(unique(ALL.iter().map(|s| s.default_port.to_string()).collect()));
        assert!(unique(PARTICIPANTS.iter().filter_map(|s| s.step()).map(str::to_owned).collect()));
        assert!(unique(PARTICIPANTS.iter().filter_map(|s| s.resource()).map(str::to_owned).collect()));
    }

    #[test]
    fn every_participant_is_in_all_and_the_orchestrator_comes_last() {
        assert!(PARTICIPANTS.iter().all(|p| p.is_participant() && ALL.contains(p)));
        assert_eq!(ALL.last(), Some(&ORCHESTRATOR));
        assert_eq!(ALL.iter().filter(|s| !s.is_participant()).count(), 1);
        assert_eq!(Service::named("payment"), Some(&PAYMENT));
        assert_eq!(Service::named("billing"), None);
        assert_eq!(PAYMENT.url_variable(), "PAYMENT_URL");
        assert_eq!(step_of(SHIPPING), "create_shipment");
    }
}
