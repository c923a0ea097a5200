//! The local monitoring `sagactl up` starts when installed: Prometheus scraping the suite's
//! actual ports with the project's alert rules, and Grafana showing the project's dashboard.

pub mod grafana;
pub mod prometheus;

/// A configuration file for Prometheus or Grafana, from a serde value. Written as JSON, which
/// is YAML (1.2 is a superset of it, and both tools read it as such): quoting and escaping are
/// serde_json's, not hand-written, and no YAML crate is needed (serde_yaml is unmaintained and
/// its forks come and go).
pub fn yaml_document(value: &impl serde::Serialize) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(text)
}
