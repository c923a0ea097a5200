//! Structured logging: one subscriber for every binary, JSON or pretty, filtered by `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::LogFormat;

/// Installs the global subscriber. Call once, first thing in `main`.
/// Returns an error (instead of panicking) if a subscriber is already installed.
pub fn init(format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(fmt::layer().json().flatten_event(true).with_current_span(true).with_span_list(false))
            .try_init(),
        // Colours only on a terminal: log files stay plain text.
        LogFormat::Pretty => {
            registry.with(fmt::layer().compact().with_ansi(std::io::stdout().is_terminal())).try_init()
        }
    };
    result.map_err(|e| anyhow::anyhow!("could not install the log subscriber: {e}"))
}
