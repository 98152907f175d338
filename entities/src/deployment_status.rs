//! `deployment_statuses`: One status of a deployment (success, failure, error, in_progress…).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "deployment_statuses")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub github_id: i64,
    pub organization_id: i64,
    pub deployment_id: i64,
    pub state: String,
    pub environment: Option<String>,
    pub creator_id: Option<i64>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
    pub synced_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
