//! `dead_letters`: A job given up on (permanent error or out of attempts), until an operator re-drives or purges it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "dead_letters")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub queue: String,
    pub delivery_id: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub job: Json,
    pub reason: String,
    pub error: String,
    pub attempts: i32,
    pub dead_at: DateTimeWithTimeZone,
    pub retried_at: Option<DateTimeWithTimeZone>,
    pub organization_id: Option<i64>,
    pub notification_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
