//! `worker` binary: runs the job workers (default), the operator's dead-letter commands and the
//! admin bootstrap commands.

use std::{io::Write, process::ExitCode};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use jobs::people::{Email, Role, secrets::Password};
use jobs::{
    JobKind,
    dead_letters::Selection,
    runtime::{
        config::{Vars, parse_duration},
        connect, signal, telemetry,
    },
};
use tokio_util::sync::CancellationToken;
use worker::{
    admin::{AdminCommand, OrgRef},
    config::WorkerConfig,
    dlq::{self, DlqCommand},
};

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
    /// Inspect and re-drive the dead-letter queues (needs only DATABASE_URL).
    #[command(subcommand)]
    Dlq(Dlq),
    /// Create organizations and users; recompute attendance (needs only DATABASE_URL).
    #[command(subcommand)]
    Admin(Admin),
    /// The schedules: when each runs, and how its last run went (needs only DATABASE_URL).
    #[command(subcommand)]
    Cron(Cron),
    /// Sync from GitHub's REST API — backfill, reconcile, redeliver failed webhooks — and the
    /// sync ledger (needs DATABASE_URL, and GITHUB_APP_ID / GITHUB_APP_PRIVATE_KEY to run jobs).
    #[command(subcommand)]
    Sync(SyncCmd),
    /// Send a realistic demo history through the API: signed webhook deliveries and tracker
    /// sessions (the owner's password is read from standard input).
    Demo {
        /// The API's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        /// The organization owner who invites the developers.
        #[arg(long)]
        owner_email: String,
        /// The GitHub account the organization is connected to (worker admin link-github).
        #[arg(long, default_value_t = 424_242)]
        account_id: i64,
        #[arg(long, default_value = "demo-co")]
        account_login: String,
        #[arg(long, default_value_t = 180, value_parser = clap::value_parser!(i64).range(1..=400))]
        days: i64,
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u16).range(2..=500))]
        developers: u16,
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=8))]
        repositories: u16,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Recompute an organization's metrics, DORA and scores for a range of days, inclusive, in
    /// one transaction (needs only DATABASE_URL).
    Recompute {
        /// Organization id or exact name.
        #[arg(long, value_parser = parse_org)]
        org: OrgRef,
        #[arg(long)]
        from: chrono::NaiveDate,
        #[arg(long)]
        to: chrono::NaiveDate,
        #[command(flatten)]
        format: Format,
    },
}

#[derive(Subcommand)]
enum SyncCmd {
    /// Fetch an installation's history (repositories, pull requests with reviews and commits,
    /// deployments with statuses, issues) with a progress bar; continues an unfinished backfill
    /// from its checkpoints.
    Backfill {
        /// The GitHub App installation id.
        #[arg(long)]
        installation: i64,
        /// How far back (e.g. 90d, 12h).
        #[arg(long, default_value = "90d", value_parser = parse_age)]
        since: std::time::Duration,
        #[command(flatten)]
        format: Format,
    },
    /// Compare an installation's open and recently updated pull requests with GitHub now.
    Reconcile {
        #[arg(long)]
        installation: i64,
        #[command(flatten)]
        format: Format,
    },
    /// Ask GitHub to redeliver the failed webhook deliveries of the last 3 days now.
    Redeliver {
        #[command(flatten)]
        format: Format,
    },
    /// The newest sync jobs with their status and progress.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u64,
        #[command(flatten)]
        format: Format,
    },
    /// One sync job.
    Show {
        id: i64,
        #[command(flatten)]
        format: Format,
    },
}

#[derive(Subcommand)]
enum Cron {
    /// Each schedule with its cron expression, next run and last run.
    List {
        #[command(flatten)]
        format: Format,
    },
    /// Run one schedule now (e.g. `hourlyAlerts` after loading data), recorded like its ticks.
    Run {
        /// nightlyAttendance, nightlyAnalytics, hourlyAlerts, reconcile or redeliverFailed.
        schedule: String,
    },
}

#[derive(Subcommand)]
enum Admin {
    /// Create an organization that no GitHub installation made.
    CreateOrg {
        name: String,
        /// IANA time zone for its days (attendance, daily metrics).
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        /// Print the created id as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a user; prints an invite link, or takes the password from standard input.
    CreateUser {
        /// Organization id or exact name.
        #[arg(long, value_parser = parse_org)]
        org: OrgRef,
        #[arg(long, value_parser = parse_email)]
        email: Email,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Display name (default: the part of the email before @).
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input (one line) instead of printing an invite.
        #[arg(long)]
        password_stdin: bool,
        /// Print the created ids (and the invite) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a user's password (read from standard input); ends their sign-ins and devices.
    SetPassword {
        #[arg(long, value_parser = parse_email)]
        email: Email,
        #[arg(long)]
        json: bool,
    },
    /// Connect an organization to its GitHub account: the App's events for that account land in it.
    LinkGithub {
        #[arg(long, value_parser = parse_org)]
        org: OrgRef,
        /// The account's numeric GitHub id.
        #[arg(long)]
        account_id: i64,
        /// The account's login.
        #[arg(long)]
        login: String,
        #[arg(long)]
        json: bool,
    },
    /// Recompute attendance summaries of an organization for a range of days (inclusive).
    RecomputeAttendance {
        #[arg(long, value_parser = parse_org)]
        org: OrgRef,
        #[arg(long)]
        from: chrono::NaiveDate,
        #[arg(long)]
        to: chrono::NaiveDate,
        #[arg(long)]
        json: bool,
    },
}

fn parse_org(raw: &str) -> Result<OrgRef, String> {
    if raw.trim().is_empty() {
        return Err("an organization id or name is required".to_owned());
    }
    Ok(OrgRef::parse(raw))
}

fn parse_email(raw: &str) -> Result<Email, String> {
    Email::parse(raw)
}

fn parse_role(raw: &str) -> Result<Role, String> {
    raw.parse()
}

#[derive(Subcommand)]
enum Dlq {
    /// Open dead letters, newest first.
    List {
        /// Only this job type (processPullRequest, processReview, processPush, …, sendNotification).
        #[arg(long, value_parser = parse_queue)]
        queue: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u64,
        #[command(flatten)]
        format: Format,
    },
    /// One dead letter with its error and delivery metadata.
    Show {
        id: i64,
        #[command(flatten)]
        format: Format,
    },
    /// Run again with a fresh attempt budget: one letter by id, or --all (of --queue).
    Retry {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        #[arg(long)]
        all: bool,
        #[arg(long, requires = "all", value_parser = parse_queue)]
        queue: Option<String>,
        #[command(flatten)]
        format: Format,
    },
    /// Delete dead letters older than the given age (e.g. 30d, 12h); deliveries stay.
    Purge {
        #[arg(long, value_parser = parse_age)]
        older_than: std::time::Duration,
        #[command(flatten)]
        format: Format,
    },
}

#[derive(Args)]
struct Format {
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

fn parse_queue(raw: &str) -> Result<String, String> {
    if raw == jobs::analytics::notify::QUEUE || jobs::sync::SyncKind::parse(raw).is_some() {
        return Ok(raw.to_owned());
    }
    JobKind::parse(raw)
        .map(|k| k.as_str().to_owned())
        .ok_or_else(|| {
            let known: Vec<&str> = JobKind::ALL
                .iter()
                .map(|k| k.as_str())
                .chain([jobs::analytics::notify::QUEUE])
                .chain(jobs::sync::SyncKind::ALL.iter().map(|k| k.as_str()))
                .collect();
            format!("unknown queue {raw:?}; known: {}", known.join(", "))
        })
}

fn parse_age(raw: &str) -> Result<std::time::Duration, String> {
    parse_duration(raw.trim())
        .ok_or_else(|| format!("{raw:?} is not an age; expected e.g. 30d, 12h or 90m"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let config = match WorkerConfig::from_vars(&Vars::from_env()) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("worker: {e}");
                    return ExitCode::from(2);
                }
            };
            telemetry::init("info,sqlx=warn,sea_orm=warn,apalis=warn,apalis_core=warn");
            telemetry::exit_code("worker", run(config).await)
        }
        Command::Dlq(command) => {
            telemetry::init("warn,sqlx=error,sea_orm=error");
            telemetry::command_exit_code("worker dlq", dead_letters(command).await)
        }
        Command::Admin(command) => {
            telemetry::init("warn,sqlx=error,sea_orm=error");
            telemetry::command_exit_code("worker admin", admin(command).await)
        }
        Command::Demo {
            api,
            owner_email,
            account_id,
            account_login,
            days,
            developers,
            repositories,
            seed,
        } => {
            telemetry::init("warn,sqlx=error,sea_orm=error");
            let result = async {
                let vars = Vars::from_env();
                let secret = vars
                    .get("GITHUB_WEBHOOK_SECRET")
                    .and_then(|s| s.split(',').next())
                    .filter(|s| !s.trim().is_empty())
                    .context("GITHUB_WEBHOOK_SECRET must be set to sign the deliveries")?
                    .trim()
                    .to_owned();
                let config = worker::demo::DemoConfig {
                    api,
                    webhook_secret: secret,
                    owner_email,
                    owner_password: read_line("the owner's password")?,
                    days,
                    developers: usize::from(developers),
                    repositories: usize::from(repositories),
                    seed,
                    account_id,
                    account_login,
                };
                let report = worker::demo::run(&config).await?;
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "{}", serde_json::to_string(&report)?)?;
                anyhow::Ok(())
            };
            telemetry::command_exit_code("worker demo", result.await)
        }
        Command::Recompute {
            org,
            from,
            to,
            format,
        } => {
            telemetry::init("warn,sqlx=error,sea_orm=error");
            telemetry::command_exit_code(
                "worker recompute",
                recompute(org, from, to, format.json).await,
            )
        }
        Command::Cron(Cron::List { format }) => {
            telemetry::init("warn,sqlx=error,sea_orm=error");
            telemetry::command_exit_code("worker cron", cron_list(format.json).await)
        }
        Command::Cron(Cron::Run { schedule }) => {
            telemetry::init("warn,sqlx=error,sea_orm=error");
            telemetry::command_exit_code("worker cron run", cron_run(&schedule).await)
        }
        Command::Sync(command) => {
            telemetry::init("warn,sqlx=error,sea_orm=error");
            telemetry::command_exit_code("worker sync", sync(command).await)
        }
    }
}

async fn admin(command: Admin) -> anyhow::Result<()> {
    let vars = Vars::from_env();
    let command = match command {
        Admin::CreateOrg {
            name,
            time_zone,
            json,
        } => AdminCommand::CreateOrg {
            name,
            time_zone,
            json,
        },
        Admin::CreateUser {
            org,
            email,
            role,
            name,
            password_stdin,
            json,
        } => {
            let password = if password_stdin {
                Some(read_password()?)
            } else {
                None
            };
            AdminCommand::CreateUser {
                org,
                email,
                display_name: name,
                role,
                password,
                public_url: vars
                    .get("PUBLIC_URL")
                    .unwrap_or("http://127.0.0.1:8080")
                    .to_owned(),
                json,
            }
        }
        Admin::SetPassword { email, json } => AdminCommand::SetPassword {
            email,
            password: read_password()?,
            json,
        },
        Admin::LinkGithub {
            org,
            account_id,
            login,
            json,
        } => AdminCommand::LinkGithub {
            org,
            account_id,
            login,
            json,
        },
        Admin::RecomputeAttendance {
            org,
            from,
            to,
            json,
        } => AdminCommand::RecomputeAttendance {
            org,
            from,
            to,
            json,
        },
    };
    let db = connect_database(&vars).await?;
    let mut stdout = std::io::stdout().lock();
    worker::admin::execute(&db, command, &mut stdout).await?;
    Ok(())
}

/// One line of standard input, without its line ending.
fn read_line(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .with_context(|| format!("reading {what} from standard input"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// One line of standard input, without its line ending, as a password that meets the policy.
fn read_password() -> anyhow::Result<Password> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    Password::parse(line).map_err(|e| anyhow::anyhow!("{e}"))
}

async fn recompute(
    org: OrgRef,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    json: bool,
) -> anyhow::Result<()> {
    let vars = Vars::from_env();
    let db = connect_database(&vars).await?;
    let mut stdout = std::io::stdout().lock();
    worker::analytics::recompute_command(&db, &org, from, to, json, &mut stdout).await?;
    Ok(())
}

async fn cron_list(json: bool) -> anyhow::Result<()> {
    let vars = Vars::from_env();
    let schedules = worker::schedule::from_vars(&vars).map_err(|e| anyhow::anyhow!("{e}"))?;
    let db = connect_database(&vars).await?;
    let mut stdout = std::io::stdout().lock();
    worker::schedule::list(&db, &schedules, json, &mut stdout).await?;
    Ok(())
}

async fn cron_run(schedule: &str) -> anyhow::Result<()> {
    let vars = Vars::from_env();
    let db = connect_database(&vars).await?;
    let by = format!("cli-{}", std::process::id());
    let detail = worker::schedule::run_now(&db, schedule, &by)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    writeln!(std::io::stdout().lock(), "{schedule}: {detail}")?;
    Ok(())
}

async fn sync(command: SyncCmd) -> anyhow::Result<()> {
    use jobs::sync::SyncKind;
    use worker::sync::command::{self, CommandError};
    let vars = Vars::from_env();
    let db = connect_database(&vars).await?;
    let mut stdout = std::io::stdout().lock();
    let (request, json) = match command {
        SyncCmd::List { limit, format } => {
            return Ok(command::list(&db, limit, format.json, &mut stdout).await?);
        }
        SyncCmd::Show { id, format } => {
            return Ok(command::show(&db, id, format.json, &mut stdout).await?);
        }
        SyncCmd::Backfill {
            installation,
            since,
            format,
        } => {
            let since = chrono::Duration::from_std(since).context("--since is too long")?;
            (
                command::request(
                    SyncKind::SyncInstallation,
                    Some(installation),
                    Some(chrono::Utc::now() - since),
                ),
                format.json,
            )
        }
        SyncCmd::Reconcile {
            installation,
            format,
        } => (
            command::request(SyncKind::Reconcile, Some(installation), None),
            format.json,
        ),
        SyncCmd::Redeliver { format } => (
            command::request(SyncKind::RedeliverFailed, None, None),
            format.json,
        ),
    };
    let settings = jobs::runtime::config::GithubSettings::from_vars(&vars)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let app = settings.app.as_ref().ok_or(CommandError::NoApp)?;
    let metrics = std::sync::Arc::new(worker::metrics::SyncMetrics::default());
    let github = worker::sync::client::Github::new(
        &settings.api_url,
        app,
        db.clone(),
        worker::sync::client::ClientOptions::default(),
        metrics,
    )?;
    let ctx = worker::sync::SyncContext {
        db,
        github: std::sync::Arc::new(github),
        cache: jobs::domain::cache::Cache::default(),
        settings: worker::sync::SyncSettings::new(jobs::runner::RetryPolicy::default()),
        worker: format!(
            "cli-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
    };
    command::drive(&ctx, &request, json, &mut stdout).await?;
    Ok(())
}

async fn connect_database(vars: &Vars) -> anyhow::Result<sea_orm::DatabaseConnection> {
    let url = vars
        .url(
            "DATABASE_URL",
            &["postgres", "postgresql"],
            "postgres://postgres@127.0.0.1:5432/devpulse",
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(connect::database_at(&url, 2).await?)
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

async fn dead_letters(command: Dlq) -> anyhow::Result<()> {
    let db = connect_database(&Vars::from_env()).await?;
    let command = match command {
        Dlq::List {
            queue,
            limit,
            format,
        } => DlqCommand::List {
            queue,
            json: format.json,
            limit,
        },
        Dlq::Show { id, format } => DlqCommand::Show {
            id,
            json: format.json,
        },
        Dlq::Retry {
            id,
            all: _,
            queue,
            format,
        } => DlqCommand::Retry {
            selection: match id {
                Some(id) => Selection::One(id),
                None => Selection::All { queue },
            },
            json: format.json,
        },
        Dlq::Purge { older_than, format } => DlqCommand::Purge {
            older_than,
            json: format.json,
        },
    };
    let mut stdout = std::io::stdout().lock();
    dlq::execute(&db, command, &mut stdout).await?;
    Ok(())
}
