//! `health_alerts`: an alert about a stale PR, failing deployments, inactivity…; open until its condition clears.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "health_alerts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub org_id: i64,
    pub kind: String,
    pub subject: String,
    pub user_id: Option<i64>,
    pub message: String,
    pub details: Json,
    pub opened_at: DateTimeWithTimeZone,
    pub last_seen_at: DateTimeWithTimeZone,
    pub resolved_at: Option<DateTimeWithTimeZone>,
    pub acknowledged_at: Option<DateTimeWithTimeZone>,
    pub acknowledged_by: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
