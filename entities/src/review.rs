//! `reviews`: A pull-request review (or the review a review comment belongs to).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "reviews")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub github_id: i64,
    pub organization_id: i64,
    pub repository_id: i64,
    pub pull_request_id: i64,
    pub reviewer_id: Option<i64>,
    pub state: String,
    pub approved: bool,
    pub submitted_at: Option<DateTimeWithTimeZone>,
    pub commit_id: Option<String>,
    pub synced_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
