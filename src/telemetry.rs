//! Structured logs: human-readable by default, JSON for log collectors (`log.format = "json"`).
//! `RUST_LOG` overrides `log.level`.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

pub fn init(s: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&s.level)).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match s.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Human => builder.with_target(false).try_init(),
    };
}
