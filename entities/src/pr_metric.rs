//! `pr_metrics`: one pull request's times and durations, and the deployment that shipped it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "pr_metrics")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub pull_request_id: i64,
    pub org_id: i64,
    pub repository_id: i64,
    pub repository: String,
    pub author_login: Option<String>,
    pub author_is_bot: bool,
    pub state: String,
    pub created_at: DateTimeWithTimeZone,
    pub ready_at: Option<DateTimeWithTimeZone>,
    pub first_commit_at: Option<DateTimeWithTimeZone>,
    pub first_review_at: Option<DateTimeWithTimeZone>,
    pub merged_at: Option<DateTimeWithTimeZone>,
    pub closed_at: Option<DateTimeWithTimeZone>,
    pub deployment_id: Option<i64>,
    pub deployed_at: Option<DateTimeWithTimeZone>,
    pub additions: Option<i32>,
    pub deletions: Option<i32>,
    pub coding_s: Option<i64>,
    pub pickup_s: Option<i64>,
    pub review_s: Option<i64>,
    pub cycle_s: Option<i64>,
    pub deploy_s: Option<i64>,
    pub lead_s: Option<i64>,
    pub created_day: Date,
    pub merged_day: Option<Date>,
    pub closed_day: Option<Date>,
    pub first_review_day: Option<Date>,
    pub deployed_day: Option<Date>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
