//! Logging to stderr (PostgreSQL copies archive_command's and restore_command's stderr into its
//! own log). The level comes from `-v`/`-q`, else `WALVAULT_LOG` (error, warn, info, debug,
//! trace, off; default info); the line format from `--log-format`, else `WALVAULT_LOG_FORMAT`
//! (text, or json: one object per line for log collectors). [`configure`] checks the choice
//! once per process and exports it, so the background pusher and prefetcher a call starts log
//! the same way.

use std::sync::OnceLock;

use tracing_subscriber::filter::LevelFilter;

/// The logging flags every program takes (global under `walvault`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LogArgs {
    /// More detail in the log: -v debug, -vv trace (overrides WALVAULT_LOG).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Less: -q warnings and errors only, -qq errors only (overrides WALVAULT_LOG).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    quiet: u8,
    /// Log lines as text, or as JSON objects (one per line) for log collectors.
    #[arg(long, value_enum, value_name = "FORMAT", global = true)]
    log_format: Option<Format>,
}

/// How log lines look.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// `2026-12-01T10:00:00Z  INFO wal-push{file=…}: message`.
    #[default]
    Text,
    /// `{"timestamp":…,"level":"INFO","message":…,"span":{…}}`.
    Json,
}

/// The resolved choice, set once by [`configure`] (defaults until then).
static CHOSEN: OnceLock<(LevelFilter, Format)> = OnceLock::new();

/// The variable the level is read from (and exported to).
pub const LEVEL_VAR: &str = "WALVAULT_LOG";
const FORMAT_VAR: &str = "WALVAULT_LOG_FORMAT";

fn parse_level(s: &str) -> Option<LevelFilter> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "error" => LevelFilter::ERROR,
        "warn" | "warning" => LevelFilter::WARN,
        "info" | "" => LevelFilter::INFO,
        "debug" => LevelFilter::DEBUG,
        "trace" => LevelFilter::TRACE,
        "off" => LevelFilter::OFF,
        _ => return None,
    })
}

/// The level and format `args` and the environment ask for, or the one line saying which
/// setting is wrong.
pub fn resolve(
    args: &LogArgs,
    env_level: Option<&str>,
    env_format: Option<&str>,
) -> Result<(LevelFilter, Format), String> {
    let format = match (args.log_format, env_format.map(|f| f.trim().to_ascii_lowercase())) {
        (Some(f), _) => f,
        (None, None) => Format::Text,
        (None, Some(f)) if f == "text" || f.is_empty() => Format::Text,
        (None, Some(f)) if f == "json" => Format::Json,
        (None, Some(_)) => {
            return Err(format!(
                "{FORMAT_VAR}=`{}` is not a log format: use text or json",
                env_format.unwrap_or_default()
            ));
        }
    };
    let from_env = match env_level {
        Some(v) => parse_level(v).ok_or_else(|| {
            format!("{LEVEL_VAR}=`{v}` is not a log level: use error, warn, info, debug, trace or off")
        })?,
        None => LevelFilter::INFO,
    };
    let level = match (args.verbose, args.quiet) {
        (0, 0) => from_env,
        (1, _) => LevelFilter::DEBUG,
        (v, _) if v >= 2 => LevelFilter::TRACE,
        (_, 1) => LevelFilter::WARN,
        _ => LevelFilter::ERROR,
    };
    Ok((level, format))
}

/// Checks and records the logging choice, and exports it to the programs this one starts. Call
/// before any thread is started. On a bad `WALVAULT_LOG` the logger is still installed (with
/// the default level) and the error line is returned for the caller to report.
pub fn configure(args: &LogArgs) -> Result<(), String> {
    let env_level = std::env::var(LEVEL_VAR).ok();
    let env_format = std::env::var(FORMAT_VAR).ok();
    let resolved = resolve(args, env_level.as_deref(), env_format.as_deref());
    // On a bad setting, still the format asked for where it can be told: the error line should
    // reach a collector that parses JSON as JSON.
    let json = env_format.is_some_and(|f| f.trim().eq_ignore_ascii_case("json"));
    let fallback = args.log_format.unwrap_or(if json { Format::Json } else { Format::Text });
    let (level, format) = resolved.clone().unwrap_or((LevelFilter::INFO, fallback));
    let _ = CHOSEN.set((level, format));
    if resolved.is_ok() {
        let level_name = level.to_string().to_ascii_lowercase();
        let format_name = if format == Format::Json { "json" } else { "text" };
        // SAFETY: called from main before the runtime or any other thread exists, so nothing
        // reads the environment concurrently.
        unsafe {
            std::env::set_var(LEVEL_VAR, level_name);
            std::env::set_var(FORMAT_VAR, format_name);
        }
    }
    resolved.map(|_| ())
}

/// Installs the stderr logger once; later calls do nothing.
pub fn init() {
    let (level, format) = *CHOSEN.get_or_init(|| (LevelFilter::INFO, Format::Text));
    let builder =
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_max_level(level).with_target(false);
    let _ = match format {
        Format::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init(),
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_ansi(false)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve3(a: &LogArgs, level: Option<&str>) -> Result<(LevelFilter, Format), String> {
        resolve(a, level, None)
    }

    #[test]
    fn the_format_comes_from_the_flag_else_the_variable_which_is_checked() {
        let json = LogArgs { log_format: Some(Format::Json), ..args(0, 0) };
        assert_eq!(resolve(&json, None, Some("text")).unwrap().1, Format::Json);
        assert_eq!(resolve(&args(0, 0), None, Some("JSON")).unwrap().1, Format::Json);
        assert_eq!(resolve(&args(0, 0), None, None).unwrap().1, Format::Text);
        let e = resolve(&args(0, 0), None, Some("xml")).unwrap_err();
        assert!(e.contains("WALVAULT_LOG_FORMAT=`xml`"), "{e}");
    }

    fn args(verbose: u8, quiet: u8) -> LogArgs {
        LogArgs { verbose, quiet, log_format: None }
    }

    #[test]
    fn flags_override_the_variable_and_a_bad_variable_is_named() {
        assert_eq!(resolve3(&args(0, 0), None).unwrap().0, LevelFilter::INFO);
        assert_eq!(resolve3(&args(0, 0), Some("debug")).unwrap().0, LevelFilter::DEBUG);
        assert_eq!(resolve3(&args(0, 0), Some("WARN")).unwrap().0, LevelFilter::WARN);
        assert_eq!(resolve3(&args(1, 0), Some("error")).unwrap().0, LevelFilter::DEBUG);
        assert_eq!(resolve3(&args(2, 0), None).unwrap().0, LevelFilter::TRACE);
        assert_eq!(resolve3(&args(0, 1), Some("trace")).unwrap().0, LevelFilter::WARN);
        assert_eq!(resolve3(&args(0, 2), None).unwrap().0, LevelFilter::ERROR);
        let e = resolve3(&args(0, 0), Some("loud")).unwrap_err();
        assert!(e.contains("WALVAULT_LOG=`loud`") && e.contains("debug"), "{e}");
        // A flag does not excuse a bad variable: it would surprise the next run without one.
        assert!(resolve3(&args(1, 0), Some("loud")).is_err());
    }
}
