//! `idle_intervals`: Idle time measured on the device, clipped to its session and merged.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "idle_intervals")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: Uuid,
    pub organization_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub started_at: DateTimeWithTimeZone,
    pub ended_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
