//! `dora_metrics`: DORA metrics over the 7 or 28 days ending with a day, for an organization or one repository.

use sea_orm::entity::prelude::*;

/// The table's key is (org_id, repository, window_days, day) with `repository` NULL for the
/// organization, a unique index sea-orm cannot express: the key below is not unique across
/// repositories, so read through this entity with filters and never update through it.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "dora_metrics")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub org_id: i64,
    pub repository: Option<String>,
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: Date,
    #[sea_orm(primary_key, auto_increment = false)]
    pub window_days: i32,
    pub deployments: i32,
    pub deploy_days: i32,
    pub deploy_days_per_week: f64,
    pub band: String,
    pub lead_time_p50_s: Option<i64>,
    pub lead_time_count: i32,
    pub change_failure_rate: Option<f64>,
    pub failed_deployments: i32,
    pub recovery_time_p50_s: Option<i64>,
    pub recovery_count: i32,
    pub unrecovered_count: i32,
    pub computed_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
