//! Logging to stderr (PostgreSQL copies archive_command's and restore_command's stderr into its
//! own log). Level from `WALVAULT_LOG` (error, warn, info, debug, trace; default info).

use tracing_subscriber::filter::LevelFilter;

/// Installs the stderr logger once; later calls do nothing.
pub fn init() {
    let level = match std::env::var("WALVAULT_LOG").unwrap_or_default().to_ascii_lowercase().as_str() {
        "error" => LevelFilter::ERROR,
        "warn" => LevelFilter::WARN,
        "debug" => LevelFilter::DEBUG,
        "trace" => LevelFilter::TRACE,
        "off" => LevelFilter::OFF,
        _ => LevelFilter::INFO,
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
