//! Logging, set up once: human-readable by default, JSON lines on request.
//! `RUST_LOG` overrides the default level filter.

use tracing_subscriber::EnvFilter;

/// The log levels when `RUST_LOG` is not set: longlat's own events at info,
/// per-request spans and the HTTP library's events only when they warn.
pub const DEFAULT_FILTER: &str = "longlat=info,longlat::request=warn,tower_http=warn";

/// Installs the global subscriber; `json` selects JSON lines.
pub fn init(json: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours_wanted());
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A second call (tests) keeps the first subscriber.
    let _ = result;
}

/// Colours only for a person at a terminal, and not for one who set
/// `NO_COLOR` (<https://no-color.org>): logs piped to a file or a collector
/// carry no escape codes.
fn colours_wanted() -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    std::io::stdout().is_terminal() && !no_color
}
