//! Structured logs: JSON lines by default (`LOG_FORMAT=pretty` for humans), filtered by `RUST_LOG`.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the process-wide subscriber. Call once, first thing in `main`.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let pretty = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("pretty"));
    let registry = tracing_subscriber::registry().with(filter);
    if pretty {
        registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .init();
    } else {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(true)
                    .with_writer(std::io::stderr),
            )
            .init();
    }
}

/// The process exit code for how `binary` ended; a failure is logged and printed to stderr as
/// one line (the error chain joined by `: `), whatever the log format.
pub fn exit_code<E: std::fmt::Display>(
    binary: &str,
    result: Result<(), E>,
) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let line = format!("{e:#}");
            tracing::error!(error = %line, "{binary} stopped");
            eprintln!("{binary}: {line}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The exit code of a command-line command: a failure is one line on stderr and nothing else
/// (no log record: the operator reads the line, scripts read the code).
pub fn command_exit_code<E: std::fmt::Display>(
    command: &str,
    result: Result<(), E>,
) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{command}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
