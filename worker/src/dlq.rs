//! `worker dlq …`: the operator's view of the dead-letter queues (list, show, retry, purge).

use std::{io::Write, time::Duration};

use jobs::dead_letters::{self, DeadLetter, Scope, Selection};
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};

/// What the operator asked for.
#[derive(Debug, Clone)]
pub enum DlqCommand {
    List {
        queue: Option<String>,
        json: bool,
        limit: u64,
    },
    Show {
        id: i64,
        json: bool,
    },
    Retry {
        selection: Selection,
        json: bool,
    },
    Purge {
        older_than: Duration,
        json: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error("no dead letter with id {0}")]
    NotFound(i64),
    #[error("dead letter {0} is not open (already retried)")]
    NotOpen(i64),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

pub async fn execute(
    db: &DatabaseConnection,
    command: DlqCommand,
    out: &mut impl Write,
) -> Result<(), DlqError> {
    match command {
        DlqCommand::List { queue, json, limit } => {
            let letters = dead_letters::list(db, Scope::Platform, queue.as_deref(), limit).await?;
            if json {
                writeln!(out, "{}", to_json(&letters))?;
            } else {
                print_table(&letters, out)?;
            }
        }
        DlqCommand::Show { id, json } => {
            let detail = dead_letters::show(db, Scope::Platform, id)
                .await?
                .ok_or(DlqError::NotFound(id))?;
            if json {
                writeln!(out, "{}", to_json(&detail))?;
            } else {
                let l = &detail.letter;
                writeln!(out, "id:           {}", l.id)?;
                writeln!(out, "queue:        {}", l.queue)?;
                writeln!(
                    out,
                    "delivery:     {}",
                    l.delivery_id.as_deref().unwrap_or("-")
                )?;
                writeln!(
                    out,
                    "event:        {}{}",
                    detail.event.as_deref().unwrap_or("-"),
                    detail
                        .action
                        .as_deref()
                        .map(|a| format!(" ({a})"))
                        .unwrap_or_default()
                )?;
                writeln!(
                    out,
                    "installation: {}",
                    detail
                        .installation_id
                        .map(|i| i.to_string())
                        .unwrap_or_else(|| "-".into())
                )?;
                writeln!(
                    out,
                    "received:     {}",
                    detail
                        .received_at
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| "-".into())
                )?;
                writeln!(out, "dead since:   {}", l.dead_at.to_rfc3339())?;
                writeln!(out, "reason:       {}", l.reason)?;
                writeln!(out, "attempts:     {}", l.attempts)?;
                writeln!(
                    out,
                    "retried:      {}",
                    detail
                        .retried_at
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| "no".into())
                )?;
                writeln!(out, "error:        {}", l.error)?;
                writeln!(out, "job:          {}", detail.job)?;
            }
        }
        DlqCommand::Retry { selection, json } => {
            let ids = {
                let txn = db.begin().await?;
                let ids = dead_letters::retry(&txn, Scope::Platform, &selection).await?;
                txn.commit().await?;
                ids
            };
            if let Selection::One(id) = selection
                && ids.is_empty()
            {
                return Err(match dead_letters::show(db, Scope::Platform, id).await? {
                    Some(_) => DlqError::NotOpen(id),
                    None => DlqError::NotFound(id),
                });
            }
            if json {
                writeln!(out, "{}", serde_json::json!({ "retried": ids }))?;
            } else {
                writeln!(
                    out,
                    "re-driven {} dead letter(s); their deliveries are pending again with a fresh attempt budget",
                    ids.len()
                )?;
            }
        }
        DlqCommand::Purge { older_than, json } => {
            let n = dead_letters::purge(db, Scope::Platform, older_than).await?;
            if json {
                writeln!(out, "{}", serde_json::json!({ "purged": n }))?;
            } else {
                writeln!(out, "purged {n} dead letter(s)")?;
            }
        }
    }
    Ok(())
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn print_table(letters: &[DeadLetter], out: &mut impl Write) -> std::io::Result<()> {
    if letters.is_empty() {
        return writeln!(out, "no open dead letters");
    }
    writeln!(
        out,
        "{:>8}  {:<20}  {:<38}  {:<11}  {:>8}  {:<20}  error",
        "id", "queue", "delivery", "reason", "attempts", "dead since"
    )?;
    for l in letters {
        let mut error: String = l.error.chars().take(80).collect();
        if l.error.chars().count() > 80 {
            error.push('…');
        }
        writeln!(
            out,
            "{:>8}  {:<20}  {:<38}  {:<11}  {:>8}  {:<20}  {}",
            l.id,
            l.queue,
            l.delivery_id.as_deref().unwrap_or("-"),
            l.reason,
            l.attempts,
            l.dead_at.format("%Y-%m-%d %H:%M:%S"),
            error
        )?;
    }
    Ok(())
}
