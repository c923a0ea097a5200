//! What `up` prints once the suite is ready: where everything is and how to poke at it.

use super::database::Database;
use super::up::Planned;
use crate::state::SuiteState;

pub(super) fn print_summary(state: &SuiteState, plan: &[Planned], db: &Database, token_generated: bool) {
    println!("\nThe saga suite is up.\n");
    println!("{:<14} {:<24} {:<8} LOG", "SERVICE", "URL", "PID");
    // Plan order (participants, then orchestrator) reads better than alphabetical.
    for (name, svc) in plan.iter().filter_map(|p| Some((p.spec.name, state.services.get(p.spec.name)?))) {
        let pid = svc.pid.map_or_else(|| "-".to_owned(), |pid| pid.to_string());
        println!("{name:<14} {:<24} {pid:<8} {}", svc.url, svc.log_path.display());
    }
    println!();
    match db {
        Database::Temporary(pg) => println!(
            "Postgres     {} (temporary: pid {}, files in {}, deleted on exit)",
            pg.admin_url(),
            pg.pid(),
            pg.root_dir().display()
        ),
        Database::External { admin_url, .. } => {
            println!("Postgres     {} (from DATABASE_URL)", mask_password(admin_url))
        }
    }
    println!("Database     {} (one role and schema per service)", state.database);
    let origin = if token_generated { "generated; set ADMIN_TOKEN to choose one" } else { "from ADMIN_TOKEN" };
    println!("Admin token  {} ({origin})", state.admin_token);

    let url_of = |name: &str| state.services.get(name).map(|svc| svc.url.clone());
    if let Some(inventory) = url_of("inventory") {
        println!("\nTry it:");
        println!(
            "  curl -s -X PUT {inventory}/reservations/$(uuidgen) -H 'content-type: application/json' \
             -d '{{\"items\":[{{\"sku\":\"WIDGET-1\",\"quantity\":2}}]}}'"
        );
        println!("  curl -s {inventory}/products/WIDGET-1");
    }
    println!("\nFrom another terminal (same directory, or SAGA_STATE_DIR={}):", state_dir_hint(state));
    println!("  sagactl status");
    println!("  sagactl kill payment          # SIGKILL, like a crash");
    println!("  sagactl restart payment       # same environment, same log");
    println!("  PAYMENT_FAULT_LATENCY_MS=200 sagactl restart payment");
    if let Some(svc) = state.services.get("payment") {
        println!("Or stop payment and start it by hand exactly as sagactl does:");
        println!("  {}", svc.launch("payment").command_line());
    }
    println!("\nCtrl-C stops everything.");
}

/// The state directory, recovered from a log path (logs live in `<state dir>/logs/`).
fn state_dir_hint(state: &SuiteState) -> String {
    state
        .services
        .values()
        .next()
        .and_then(|svc| svc.log_path.parent()?.parent().map(|dir| dir.display().to_string()))
        .unwrap_or_else(|| ".sagactl".to_owned())
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, for printing a URL the user
/// gave us.
fn mask_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let Some(at) = url[scheme_end..].find('@').map(|i| i + scheme_end) else {
        return url.to_owned();
    };
    match url[scheme_end..at].find(':') {
        Some(colon) => format!("{}:***{}", &url[..scheme_end + colon], &url[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_in_printed_urls() {
        assert_eq!(mask_password("postgres://admin:s3cret@db:5432/x"), "postgres://admin:***@db:5432/x");
        assert_eq!(mask_password("postgres://admin@db/x"), "postgres://admin@db/x");
        assert_eq!(mask_password("postgres:///x"), "postgres:///x");
    }
}
