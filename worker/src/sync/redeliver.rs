//! `redeliverFailed`: GitHub never retries a failed webhook delivery by itself. Every 15 minutes
//! this lists the App's deliveries of the last 3 days (`GET /app/hook/deliveries`, newest first,
//! cursor pages) and asks GitHub to send again (`POST /app/hook/deliveries/{id}/attempts`) each
//! delivery none of whose attempts succeeded, whose GUID is not in `webhook_deliveries` and that
//! was not asked for before. Each GUID is claimed in `github_redeliveries` before the request,
//! so it is asked for once whatever the replicas do.

use std::collections::BTreeMap;

use chrono::Utc;
use jobs::{github::rest::HookDelivery, sync as ledger};

use super::{Step, SyncContext, SyncError, client::Scope};

/// How far back deliveries are looked at (GitHub keeps them for 3 days).
pub const WINDOW: chrono::Duration = chrono::Duration::days(3);

pub async fn run(ctx: &SyncContext) -> Result<Step, SyncError> {
    let oldest = Utc::now() - WINDOW;
    // Per GUID: whether any attempt succeeded, and the newest attempt.
    let mut by_guid: BTreeMap<String, (bool, HookDelivery)> = BTreeMap::new();
    let mut next = Some("/app/hook/deliveries?per_page=100".to_owned());
    while let Some(path) = next {
        let answer = ctx.github.get(Scope::App, &path, None).await?;
        let page: Vec<HookDelivery> = answer.json()?;
        next = answer.next;
        for delivery in page {
            if delivery.delivered_at < oldest {
                next = None;
                continue;
            }
            let ok = delivery.succeeded();
            by_guid
                .entry(delivery.guid.clone())
                .and_modify(|(any_ok, newest)| {
                    *any_ok |= ok;
                    if delivery.delivered_at > newest.delivered_at {
                        *newest = delivery.clone();
                    }
                })
                .or_insert((ok, delivery));
        }
    }
    let failed: Vec<String> = by_guid
        .iter()
        .filter(|(_, (ok, _))| !ok)
        .map(|(guid, _)| guid.clone())
        .collect();
    let missing = ledger::unseen_guids(&ctx.db, &failed).await?;
    let mut asked = 0u64;
    for guid in missing {
        let Some((_, attempt)) = by_guid.get(&guid) else {
            continue;
        };
        if !ledger::claim_redelivery(&ctx.db, &guid, attempt.id, &attempt.event).await? {
            continue;
        }
        let path = format!("/app/hook/deliveries/{}/attempts", attempt.id);
        match ctx
            .github
            .post(Scope::App, &path, &serde_json::json!({}))
            .await
        {
            Ok(_) => {
                ledger::finish_redelivery(&ctx.db, &guid, true).await?;
                asked += 1;
                tracing::info!(guid, event = %attempt.event, "asked GitHub to redeliver a failed webhook");
            }
            Err(e) => {
                ledger::finish_redelivery(&ctx.db, &guid, false).await?;
                return Err(e.into());
            }
        }
    }
    ctx.github.metrics().redelivered.inc_by(asked);
    Ok(Step::Done)
}
