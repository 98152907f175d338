//! `worker` binary: runs the job workers (default), more subcommands come with the worker pool.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use jobs::runtime::{config::Vars, signal, telemetry};
use tokio_util::sync::CancellationToken;
use worker::config::WorkerConfig;

#[derive(Parser)]
#[command(
    name = "worker",
    about = "DevPulse worker: processes queued GitHub deliveries"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the job workers until SIGTERM or Ctrl-C (the default).
    Run,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match WorkerConfig::from_vars(&Vars::from_env()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("worker: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init("info,sqlx=warn,sea_orm=warn,apalis=warn,apalis_core=warn");
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(config).await,
    };
    telemetry::exit_code("worker", result)
}

async fn run(config: WorkerConfig) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            signal::shutdown().await;
            tracing::info!("shutting down: finishing in-flight jobs");
            shutdown.cancel();
        }
    });
    worker::run::run(config, shutdown)
        .await
        .context("running worker")
}
