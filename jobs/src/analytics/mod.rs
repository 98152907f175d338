//! Precomputed analytics: the nightly and incremental runs that turn the domain tables into the
//! small tables dashboards read (`pr_metrics`, `deployment_outcomes`, `daily_metrics`,
//! `dora_metrics`, `reliability_scores`), health alerts and their notifications.
//!
//! Every definition is in `docs/METRICS.md`, written from the SQL here. Work is set-based SQL (the
//! rolling DORA medians excepted: `dora.rs` slides them over per-day aggregates in memory);
//! a run replaces an organization's rows for its days in one transaction, so readers see the
//! old rows or the new ones, never an empty or half-written range.

pub mod alerts;
pub mod compute;
pub mod dirty;
mod dora;
pub mod median;
pub mod notify;

use serde::{Deserialize, Serialize};

/// One organization's analytics settings (`organizations.analytics_settings`); every key is
/// optional and falls back to the documented default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// A deployment is a production deployment when GitHub says so or its environment matches
    /// this (PostgreSQL regular expression, case-insensitive).
    pub production_environment_pattern: String,
    /// An issue is an incident when one of its labels matches this (case-insensitive).
    pub incident_label_pattern: String,
    pub change_failure_window_hours: u32,
    pub cycle_time_target_hours: u32,
    pub pickup_sla_hours: u32,
    pub wip_idle_days: u32,
    pub score_weights: Weights,
    pub stale_pr_days: u32,
    pub unreviewed_pr_hours: u32,
    pub failing_deployments_in_a_row: u32,
    pub inactivity_working_days: u32,
    pub dead_letters_threshold: u32,
}

/// Weights of the Delivery Reliability Score's components.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    pub flow_predictability: f64,
    pub review_responsiveness: f64,
    pub change_stability: f64,
    pub wip_hygiene: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            flow_predictability: 1.0,
            review_responsiveness: 1.0,
            change_stability: 1.0,
            wip_hygiene: 1.0,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            production_environment_pattern: "^(prod|production)$".to_owned(),
            incident_label_pattern: "incident".to_owned(),
            change_failure_window_hours: 24,
            cycle_time_target_hours: 72,
            pickup_sla_hours: 24,
            wip_idle_days: 7,
            score_weights: Weights::default(),
            stale_pr_days: 7,
            unreviewed_pr_hours: 24,
            failing_deployments_in_a_row: 3,
            inactivity_working_days: 5,
            dead_letters_threshold: 10,
        }
    }
}

/// Why settings were refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SettingsError {
    #[error("analytics settings: {0}")]
    Invalid(String),
}

impl Settings {
    /// Parses and checks stored or submitted settings (unknown keys are refused, so a typo is
    /// not silently ignored).
    pub fn from_json(value: &serde_json::Value) -> Result<Self, SettingsError> {
        let settings: Self = serde_json::from_value(value.clone())
            .map_err(|e| SettingsError::Invalid(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        let w = self.score_weights;
        let weights = [
            w.flow_predictability,
            w.review_responsiveness,
            w.change_stability,
            w.wip_hygiene,
        ];
        if weights.iter().any(|x| !x.is_finite() || *x < 0.0) || weights.iter().sum::<f64>() <= 0.0
        {
            return Err(SettingsError::Invalid(
                "score_weights must be non-negative numbers, not all zero".to_owned(),
            ));
        }
        let positive = [
            (
                "change_failure_window_hours",
                self.change_failure_window_hours,
            ),
            ("cycle_time_target_hours", self.cycle_time_target_hours),
            ("pickup_sla_hours", self.pickup_sla_hours),
            ("wip_idle_days", self.wip_idle_days),
            ("stale_pr_days", self.stale_pr_days),
            ("unreviewed_pr_hours", self.unreviewed_pr_hours),
            (
                "failing_deployments_in_a_row",
                self.failing_deployments_in_a_row,
            ),
            ("inactivity_working_days", self.inactivity_working_days),
            ("dead_letters_threshold", self.dead_letters_threshold),
        ];
        for (name, value) in positive {
            if value == 0 || value > 10_000 {
                return Err(SettingsError::Invalid(format!(
                    "{name} must be between 1 and 10000"
                )));
            }
        }
        for (name, pattern) in [
            (
                "production_environment_pattern",
                &self.production_environment_pattern,
            ),
            ("incident_label_pattern", &self.incident_label_pattern),
        ] {
            // PostgreSQL evaluates these; Rust's regex syntax is close enough to refuse typos
            // early, and PostgreSQL refusing one later fails only that organization's run.
            if pattern.is_empty() || pattern.len() > 200 || regex_syntax_error(pattern) {
                return Err(SettingsError::Invalid(format!(
                    "{name} must be a valid regular expression of 1 to 200 characters"
                )));
            }
        }
        Ok(())
    }
}

fn regex_syntax_error(pattern: &str) -> bool {
    regex_syntax::Parser::new().parse(pattern).is_err()
}

/// An organization as the analytics runs see it.
#[derive(Debug, Clone)]
pub struct Org {
    pub id: i64,
    pub time_zone: String,
    /// Today in its time zone, when loaded.
    pub today: chrono::NaiveDate,
    pub settings: Settings,
}

/// Loads an organization's time zone and settings; stored settings that no longer parse fall
/// back to the defaults with a warning rather than stopping its metrics.
pub async fn load_org<C: sea_orm::ConnectionTrait>(
    db: &C,
    id: i64,
) -> Result<Option<Org>, sea_orm::DbErr> {
    let Some(row) = db
        .query_one_raw(crate::domain::stmt(
            "SELECT time_zone, analytics_settings, (now() AT TIME ZONE time_zone)::date AS today \
             FROM organizations WHERE id = $1",
            [id.into()],
        ))
        .await?
    else {
        return Ok(None);
    };
    let raw: serde_json::Value = row.try_get("", "analytics_settings")?;
    let settings = Settings::from_json(&raw).unwrap_or_else(|e| {
        tracing::warn!(organization_id = id, error = %e, "stored analytics settings ignored");
        Settings::default()
    });
    Ok(Some(Org {
        id,
        time_zone: row.try_get("", "time_zone")?,
        today: row.try_get("", "today")?,
        settings,
    }))
}

/// Recomputes the days of up to `max_marks` marks of one organization (the one waiting longest
/// that no other worker is on; marks repeat, days are deduplicated). Claiming, recomputing and
/// forgetting the marks is one transaction: a crash leaves them marked. Returns the organization
/// and what was done, `None` when nothing waits.
///
/// An organization is taken only once its oldest mark is `settle` old: under a steady stream of
/// events its days are then recomputed once per `settle` with everything that arrived meanwhile,
/// not once per batch of events (`scripts/bench-worker` saw the same day recomputed 43 times in
/// 17 s, a third of the database's time).
pub async fn drain_dirty(
    db: &sea_orm::DatabaseConnection,
    max_marks: i64,
    settle: std::time::Duration,
) -> Result<Option<(i64, compute::Report)>, sea_orm::DbErr> {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let txn = db.begin().await?;
    let rows = txn
        .query_all_raw(crate::domain::stmt(
            "DELETE FROM analytics_dirty WHERE id IN ( \
                SELECT id FROM analytics_dirty WHERE organization_id = ( \
                    SELECT organization_id FROM analytics_dirty \
                    WHERE requested_at <= now() - make_interval(secs => $2) ORDER BY id \
                    LIMIT 1 FOR UPDATE SKIP LOCKED) \
                ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) \
             RETURNING organization_id, day",
            [max_marks.into(), settle.as_secs_f64().into()],
        ))
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let id: i64 = first.try_get("", "organization_id")?;
    let days = rows
        .iter()
        .map(|r| r.try_get::<chrono::NaiveDate>("", "day"))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(org) = load_org(&txn, id).await? else {
        txn.commit().await?;
        return Ok(None);
    };
    let report = compute::recompute_in(&txn, &org, &days, org.today, &mut |_| {}).await?;
    txn.commit().await?;
    compute::vacuum_written(db, &report).await;
    Ok(Some((id, report)))
}
