//! `daily_metrics`: one organization's delivery metrics for one day and scope (docs/METRICS.md).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "daily_metrics")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub org_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: Date,
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope_key: String,
    pub prs_opened: i32,
    pub prs_merged: i32,
    pub prs_closed_unmerged: i32,
    pub reviews_given: i32,
    pub review_comments: i32,
    pub commits: i32,
    pub additions: i64,
    pub deletions: i64,
    pub cycle_time_p50_s: Option<i64>,
    pub cycle_time_p75_s: Option<i64>,
    pub cycle_time_p90_s: Option<i64>,
    pub coding_time_p50_s: Option<i64>,
    pub pickup_time_p50_s: Option<i64>,
    pub review_time_p50_s: Option<i64>,
    pub deploy_time_p50_s: Option<i64>,
    pub deployments: i32,
    pub failed_deployments: i32,
    pub computed_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
