//! `deployments`: A GitHub deployment, with its latest status kept in step.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "deployments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub github_id: i64,
    pub organization_id: i64,
    pub repository_id: i64,
    pub sha: String,
    #[sea_orm(column_name = "ref")]
    pub r#ref: String,
    pub task: String,
    pub environment: String,
    pub production_environment: Option<bool>,
    pub creator_id: Option<i64>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
    pub latest_state: Option<String>,
    pub latest_status_at: Option<DateTimeWithTimeZone>,
    pub synced_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
