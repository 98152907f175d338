//! Prints what the API stores as a delivery's projection, for benchmarks that load deliveries
//! straight into PostgreSQL (`scripts/bench-worker`): the projection version on the first line,
//! the projection on the second.
//!
//! `projection EVENT FILE`

use std::process::ExitCode;

#[allow(clippy::print_stdout, clippy::print_stderr)] // this tool's output and its one error line
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [event, file] = args.as_slice() else {
        eprintln!("usage: projection EVENT FILE");
        return ExitCode::from(2);
    };
    let json = match std::fs::read_to_string(file) {
        Ok(json) => json,
        Err(e) => {
            eprintln!("projection: cannot read {file}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match jobs::github::projection::project(event, &json) {
        Some(projection) => {
            println!("{}", jobs::github::projection::version());
            println!("{projection}");
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("projection: no projection of {file} as a {event} delivery");
            ExitCode::FAILURE
        }
    }
}
