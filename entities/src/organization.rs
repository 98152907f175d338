//! `organizations`: One organization: a GitHub App installation's account, or one created by an operator.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "organizations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    pub github_account_id: Option<i64>,
    pub github_login: Option<String>,
    pub account_type: Option<String>,
    pub installation_id: Option<i64>,
    pub status: String,
    pub status_changed_at: Option<DateTimeWithTimeZone>,
    pub time_zone: String,
    pub session_limit_seconds: i32,
    pub daily_target_seconds: i32,
    pub created_at: DateTimeWithTimeZone,
    pub synced_at: DateTimeWithTimeZone,
    pub analytics_settings: Json,
    pub notification_url: Option<String>,
    pub notification_secret: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
