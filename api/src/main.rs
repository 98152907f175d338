//! `api` binary: configuration from the environment, then build and serve until SIGTERM/Ctrl-C.

use std::process::ExitCode;

use anyhow::Context;
use api::{config::ApiConfig, startup};
use jobs::runtime::{config::Vars, signal, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match ApiConfig::from_vars(&Vars::from_env()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("api: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init("info,sqlx=warn,sea_orm=warn");
    match serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "api stopped");
            // One line for whoever started us, whatever the log format.
            eprintln!("api: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: ApiConfig) -> anyhow::Result<()> {
    let addr = config.addr;
    let app = startup::build(config).await.context("starting")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding API_ADDR={addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "api listening");
    app.run(listener, signal::shutdown())
        .await
        .context("serving")
}
