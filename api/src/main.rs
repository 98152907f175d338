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
    telemetry::exit_code("api", serve(config).await)
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
