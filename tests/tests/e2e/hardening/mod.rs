//! Server hardening, end to end: every service's connection limits (`connections`), the
//! participants' bounded and supervised step queue (`step_queue`), and the input refusals that
//! keep bad values from becoming 500s or misleading text (`input`).
//!
//! One test binary for the three, so the suite links once more, not three times.

mod connections;
mod input;
mod step_queue;

use std::time::Duration;

use saga_tests::{Service, Suite};

/// The value of one series (name and labels, as exported) of `service`'s `/metrics`.
async fn metric(suite: &Suite, service: Service, series: &str) -> f64 {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let page = client.get(suite.url(service, "/metrics")).send().await.unwrap().text().await.unwrap();
    let prefix = format!("{series} ");
    let value = page.lines().find_map(|line| line.strip_prefix(&prefix));
    value.unwrap_or_else(|| panic!("no {series} in:\n{page}")).parse().unwrap()
}

/// The same environment variables for every service of `services`.
fn env_for<'a>(services: &[Service], vars: &[(&'a str, &'a str)]) -> Vec<(Service, &'a str, &'a str)> {
    services.iter().flat_map(|&service| vars.iter().map(move |&(k, v)| (service, k, v))).collect()
}
