//! Structured logs: human-readable by default, JSON for log collectors (`log.format = "json"`).
//! `RUST_LOG` overrides `log.level`.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

pub fn init(s: &LogSettings) {
    let mut filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&s.level)).unwrap_or_else(|_| EnvFilter::new("info"));
    // PostgreSQL's notices ("relation … already exists, skipping" at every start) say nothing to
    // an operator; they stay visible when the level names sqlx.
    if !std::env::var("RUST_LOG").unwrap_or_else(|_| s.level.clone()).contains("sqlx") {
        filter = filter.add_directive("sqlx::postgres::notice=warn".parse().expect("a valid directive"));
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match s.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        // Colours only on a terminal: a log file or a container's log gets plain text.
        LogFormat::Human => builder.with_target(false).with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init(),
    };
}
