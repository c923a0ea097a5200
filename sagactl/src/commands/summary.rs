//! What `up` prints once the suite is ready: where everything is and how to poke at it.

use super::up::Planned;
use saga_suite::database::Database;
use saga_suite::invocation::sagactl_command;
use saga_suite::state::SuiteState;
use saga_suite::text::shell_quote;

pub(super) fn print_summary(state: &SuiteState, plan: &[Planned], db: &Database, token_generated: bool) {
    crate::outln!("\nThe saga suite is up.\n");
    crate::outln!("{:<14} {:<24} {:<8} LOG", "SERVICE", "URL", "PID");
    // Plan order (participants, then orchestrator) reads better than alphabetical.
    for (name, svc) in plan.iter().filter_map(|p| Some((p.spec.name, state.services.get(p.spec.name)?))) {
        let pid = svc.pid.map_or_else(|| "-".to_owned(), |pid| pid.to_string());
        crate::outln!("{name:<14} {:<24} {pid:<8} {}", svc.url, svc.log_path.display());
    }
    crate::outln!();
    match db {
        Database::Temporary(pg) => crate::outln!(
            "Postgres     {} (pid {}, files in {}, {})",
            pg.admin_url(),
            pg.pid(),
            pg.root_dir().display(),
            if pg.is_kept() { "kept after exit" } else { "temporary: deleted on exit" }
        ),
        Database::External { admin_url, .. } => {
            crate::outln!("Postgres     {} (from DATABASE_URL)", mask_password(admin_url))
        }
    }
    crate::outln!("Database     {} (one role and schema per service)", state.database);
    let origin = if token_generated { "generated; set ADMIN_TOKEN to choose one" } else { "from ADMIN_TOKEN" };
    crate::outln!("Admin token  {} ({origin})", state.admin_token);

    crate::outln!("{}", hints(state, &sagactl_command()).trim_end_matches('\n'));
}

/// An order the demo data can fulfil (the participants seed `WIDGET-1`).
const ORDER_BODY: &str = r#"{"customer_id":"alice","items":[{"sku":"WIDGET-1","quantity":2}],"shipping_address":{"name":"Ada Lovelace","line1":"12 St James Sq","city":"London","postal_code":"SW1Y 4JH","country":"GB"}}"#;

/// The "try it" examples and the commands for another terminal, one per line. `sagactl` is how
/// to run sagactl again (the path the user ran: it is usually not on `PATH`).
fn hints(state: &SuiteState, sagactl: &str) -> String {
    let url_of = |name: &str| state.services.get(name).map(|svc| svc.url.clone());
    let mut lines = Vec::new();
    let (orchestrator, inventory) = (url_of("orchestrator"), url_of("inventory"));
    // Right under the Postgres, Database and Admin token lines, in their column.
    if let Some(orchestrator) = &orchestrator {
        lines.push(format!("Console      {orchestrator}/console"));
    }
    if orchestrator.is_some() || inventory.is_some() {
        lines.push("\nTry it:".to_owned());
    }
    if let Some(orchestrator) = orchestrator {
        lines.push(format!(
            "  curl -si -X POST {orchestrator}/orders -H 'content-type: application/json' -d '{ORDER_BODY}'"
        ));
        lines.push(format!("  curl -s {orchestrator}/orders/<id>    # <id>: order_id in the answer above"));
    }
    if let Some(inventory) = inventory {
        // /proc rather than `uuidgen`, which Debian does not install by default.
        lines.push(format!(
            "  curl -s -X PUT {inventory}/reservations/$(cat /proc/sys/kernel/random/uuid) \
             -H 'content-type: application/json' -d '{{\"items\":[{{\"sku\":\"WIDGET-1\",\"quantity\":2}}]}}'"
        ));
        lines.push(format!("  curl -s {inventory}/products/WIDGET-1"));
    }
    lines.push(format!("\nFrom another terminal (same directory, or SAGA_STATE_DIR={}):", state_dir_hint(state)));
    let commands = [
        (format!("{sagactl} status"), ""),
        (format!("{sagactl} kill payment"), "# SIGKILL, like a crash"),
        (format!("{sagactl} restart payment"), "# same environment, same log"),
        (format!("PAYMENT_FAULT_LATENCY_MS=200 {sagactl} restart payment"), ""),
        (format!("{sagactl} kill postgres"), "# the services answer 503 until it is back"),
        (format!("{sagactl} start postgres"), "# same port, same data"),
    ];
    lines.extend(aligned_comments(&commands));
    if let Some(svc) = state.services.get("payment") {
        lines.push("Or stop payment and start it by hand exactly as sagactl does:".to_owned());
        lines.push(format!("  {}", svc.launch("payment").command_line()));
    }
    lines.push("\nCtrl-C stops everything.".to_owned());
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// Indented command lines with their comments in one column, whatever the length of the path
/// sagactl was run as.
fn aligned_comments(commands: &[(String, &str)]) -> Vec<String> {
    let width = commands.iter().filter(|(_, comment)| !comment.is_empty()).map(|(cmd, _)| cmd.len()).max();
    commands
        .iter()
        .map(|(cmd, comment)| match width {
            Some(width) if !comment.is_empty() => format!("  {cmd:<width$}  {comment}"),
            _ => format!("  {cmd}"),
        })
        .collect()
}

/// The state directory, recovered from a log path (logs live in `<state dir>/logs/`).
fn state_dir_hint(state: &SuiteState) -> String {
    state
        .services
        .values()
        .next()
        .and_then(|svc| svc.log_path.parent()?.parent().map(|dir| shell_quote(&dir.to_string_lossy())))
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
    use std::collections::BTreeMap;

    use super::*;
    use saga_suite::state::{PostgresState, ServiceState};

    fn suite(services: &[(&str, u16)]) -> SuiteState {
        let service = |name: &str, port: u16| ServiceState {
            pid: Some(4242),
            port,
            url: format!("http://127.0.0.1:{port}"),
            binary: format!("/work/target/release/{name}").into(),
            env: BTreeMap::from([("PORT".to_owned(), port.to_string())]),
            log_path: format!("/work/.sagactl/logs/{name}.log").into(),
        };
        SuiteState {
            launcher_pid: 1,
            database: "saga".into(),
            admin_token: "admin-token".into(),
            postgres: PostgresState { pid: None, port: 5432, admin_url: "postgres://x".into(), server: None },
            services: services.iter().map(|&(name, port)| (name.to_owned(), service(name, port))).collect(),
            tools: BTreeMap::new(),
        }
    }

    #[test]
    fn hints_show_how_to_place_and_watch_an_order() {
        let state = suite(&[("inventory", 8081), ("payment", 8082), ("orchestrator", 8080)]);
        let text = hints(&state, "sagactl");
        let post = r#"  curl -si -X POST http://127.0.0.1:8080/orders -H 'content-type: application/json' -d '{"customer_id":"alice","items":[{"sku":"WIDGET-1","quantity":2}],"shipping_address":{"name":"Ada Lovelace","line1":"12 St James Sq","city":"London","postal_code":"SW1Y 4JH","country":"GB"}}'"#;
        assert!(text.lines().any(|line| line == post), "{text}");
        assert!(text.contains("curl -s http://127.0.0.1:8080/orders/<id>"), "{text}");
        // Without an orchestrator there is nothing to place orders with.
        let text = hints(&suite(&[("inventory", 8081)]), "sagactl");
        assert!(!text.contains("/orders"), "{text}");
    }

    #[test]
    fn hints_link_the_console_on_the_orchestrators_port() {
        let text = hints(&suite(&[("inventory", 8081), ("orchestrator", 18080)]), "sagactl");
        assert_eq!(text.lines().next(), Some("Console      http://127.0.0.1:18080/console"), "{text}");
        // No orchestrator, no console.
        let text = hints(&suite(&[("inventory", 8081)]), "sagactl");
        assert!(!text.contains("Console"), "{text}");
    }

    #[test]
    fn hints_use_a_uuid_source_every_linux_has() {
        let text = hints(&suite(&[("inventory", 18081)]), "sagactl");
        assert!(text.contains("http://127.0.0.1:18081/reservations/$(cat /proc/sys/kernel/random/uuid) "), "{text}");
        assert!(!text.contains("uuidgen"), "{text}");
    }

    #[test]
    fn hints_run_sagactl_as_the_user_did_with_comments_aligned() {
        let text = hints(&suite(&[("payment", 8082)]), "target/release/sagactl");
        assert!(text.contains("\n  target/release/sagactl status\n"), "{text}");
        assert!(text.contains("\n  target/release/sagactl kill payment     # SIGKILL, like a crash\n"), "{text}");
        assert!(text.contains("\n  target/release/sagactl restart payment  # same environment, same log\n"), "{text}");
        assert!(text.contains("\n  PAYMENT_FAULT_LATENCY_MS=200 target/release/sagactl restart payment\n"), "{text}");
        assert!(text.contains("SAGA_STATE_DIR=/work/.sagactl"), "{text}");
    }

    #[test]
    fn passwords_are_masked_in_printed_urls() {
        assert_eq!(mask_password("postgres://admin:s3cret@db:5432/x"), "postgres://admin:***@db:5432/x");
        assert_eq!(mask_password("postgres://admin@db/x"), "postgres://admin@db/x");
        assert_eq!(mask_password("postgres:///x"), "postgres:///x");
    }
}
