//! The local monitoring `sagactl up` starts when installed: Prometheus scraping the suite's
//! actual ports with the project's alert rules, and Grafana showing the project's dashboard.

pub mod grafana;
pub mod prometheus;
