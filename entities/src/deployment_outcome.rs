//! `deployment_outcomes`: a finished production deployment: its outcome, change failure and recovery.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "deployment_outcomes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub deployment_id: i64,
    pub org_id: i64,
    pub repository_id: i64,
    pub repository: String,
    pub environment: String,
    pub sha: String,
    pub outcome: String,
    pub finished_at: DateTimeWithTimeZone,
    pub day: Date,
    pub change_failed: bool,
    pub failure_cause: Option<String>,
    pub recovered_at: Option<DateTimeWithTimeZone>,
    pub recovery_s: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
