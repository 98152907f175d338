//! `worker sync …`: record a sync job and drive it in the foreground with a progress bar on
//! standard error (whatever this process does not finish, `worker run` resumes from the
//! checkpoints); list and show the ledger.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jobs::sync::{self as ledger, JobRow, Request, SyncKind};
use sea_orm::{DatabaseConnection, DbErr};

use super::{SyncContext, run_one};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
    #[error("sync job {0} does not exist")]
    NoSuchJob(i64),
    #[error("sync job {id} is dead: {error}")]
    Dead { id: i64, error: String },
    #[error(
        "GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY are not set: syncing needs the GitHub App's credentials"
    )]
    NoApp,
}

/// Records a job (or joins the unfinished one) and runs its slices here until it is done.
pub async fn drive(
    ctx: &SyncContext,
    request: &Request,
    json: bool,
    out: &mut impl std::io::Write,
) -> Result<(), CommandError> {
    let enqueued = ledger::enqueue(&ctx.db, request).await?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} repositories {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    if !enqueued.created {
        bar.println(format!(
            "joined sync job {} (already recorded for this installation)",
            enqueued.id
        ));
    }
    let row = loop {
        let ran = run_one(ctx, Some(enqueued.id)).await?;
        let row = ledger::get(&ctx.db, enqueued.id)
            .await?
            .ok_or(CommandError::NoSuchJob(enqueued.id))?;
        show_progress(&bar, &row);
        if matches!(row.status.as_str(), "done" | "dead") {
            break row;
        }
        if ran.is_none() || row.run_after > Utc::now() {
            // Leased by another worker, paused by a rate limit or waiting for a retry.
            let wait = (row.run_after - Utc::now())
                .to_std()
                .unwrap_or_default()
                .clamp(Duration::from_millis(200), Duration::from_secs(2));
            tokio::time::sleep(wait).await;
        }
    };
    bar.finish_and_clear();
    if row.status == "dead" {
        return Err(CommandError::Dead {
            id: row.id,
            error: row.last_error.unwrap_or_default(),
        });
    }
    print_row(&row, json, out)
}

fn show_progress(bar: &indicatif::ProgressBar, row: &JobRow) {
    let count = |key: &str| row.progress.get(key).and_then(serde_json::Value::as_u64);
    bar.set_length(count("repositories").unwrap_or(0));
    bar.set_position(count("repositories_done").unwrap_or(0));
    let mut msg = format!(
        "{} pull requests, {} deployments, {} issues",
        count("pull_requests").unwrap_or(0),
        count("deployments").unwrap_or(0),
        count("issues").unwrap_or(0)
    );
    if row.run_after > Utc::now() {
        msg.push_str(&format!(
            " (waiting until {})",
            row.run_after.format("%H:%M:%S")
        ));
    }
    bar.set_message(msg);
}

fn print_row(row: &JobRow, json: bool, out: &mut impl std::io::Write) -> Result<(), CommandError> {
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(row).map_err(std::io::Error::other)?
        )?;
        return Ok(());
    }
    let installation = row
        .installation_id
        .map_or_else(|| "the App".to_owned(), |i| format!("installation {i}"));
    writeln!(
        out,
        "{} job {} of {installation}: {}{} — {}",
        row.kind,
        row.id,
        row.status,
        row.last_error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default(),
        row.progress
    )?;
    Ok(())
}

/// `worker sync list`.
pub async fn list(
    db: &DatabaseConnection,
    limit: u64,
    json: bool,
    out: &mut impl std::io::Write,
) -> Result<(), CommandError> {
    let rows = ledger::list(db, None, limit).await?;
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&rows).map_err(std::io::Error::other)?
        )?;
        return Ok(());
    }
    if rows.is_empty() {
        writeln!(out, "no sync jobs")?;
    }
    for row in &rows {
        print_row(row, false, out)?;
    }
    Ok(())
}

/// `worker sync show ID`.
pub async fn show(
    db: &DatabaseConnection,
    id: i64,
    json: bool,
    out: &mut impl std::io::Write,
) -> Result<(), CommandError> {
    let row = ledger::get(db, id)
        .await?
        .ok_or(CommandError::NoSuchJob(id))?;
    print_row(&row, json, out)
}

/// The request `worker sync backfill|reconcile|redeliver` makes.
pub fn request(
    kind: SyncKind,
    installation_id: Option<i64>,
    since: Option<DateTime<Utc>>,
) -> Request {
    Request {
        kind,
        installation_id,
        since,
        repository_ids: None,
        requested_by: "cli".to_owned(),
    }
}
