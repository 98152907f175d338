//! `attendance_summaries`: One person's attendance on one day of the organization's time zone.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "attendance_summaries")]
pub struct Model {
    pub organization_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: Date,
    pub first_in: DateTimeWithTimeZone,
    pub last_out: DateTimeWithTimeZone,
    pub worked_seconds: i64,
    pub idle_seconds: i64,
    pub active_seconds: i64,
    pub sessions: i32,
    pub overtime_seconds: i64,
    pub auto_closed: bool,
    pub computed_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
