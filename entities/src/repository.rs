//! `repositories`: A GitHub repository of an organization.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "repositories")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub github_id: i64,
    pub organization_id: i64,
    pub name: String,
    pub full_name: String,
    pub private: bool,
    pub archived: bool,
    pub default_branch: Option<String>,
    pub github_updated_at: Option<DateTimeWithTimeZone>,
    pub installed_at: Option<DateTimeWithTimeZone>,
    pub removed_at: Option<DateTimeWithTimeZone>,
    pub synced_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
