//! Logging set-up shared by every service.

use tracing_subscriber::EnvFilter;

/// Logs go to stderr, filtered by `FREEPORT_LOG` (same syntax as
/// `RUST_LOG`), `info` by default. Safe to call more than once.
pub fn init() {
    let filter = EnvFilter::try_from_env("FREEPORT_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,h2=warn,tower=warn,hyper=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .try_init();
}
