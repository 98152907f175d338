//! `pull_requests`: A pull request: the newest GitHub snapshot, plus first-X times taken as minima.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "pull_requests")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub github_id: i64,
    pub organization_id: i64,
    pub repository_id: i64,
    pub number: i32,
    pub author_id: Option<i64>,
    pub title: String,
    pub state: String,
    pub draft: bool,
    pub created_at: DateTimeWithTimeZone,
    pub ready_for_review_at: Option<DateTimeWithTimeZone>,
    pub first_review_at: Option<DateTimeWithTimeZone>,
    pub first_approved_at: Option<DateTimeWithTimeZone>,
    pub merged_at: Option<DateTimeWithTimeZone>,
    pub closed_at: Option<DateTimeWithTimeZone>,
    pub merged_by_id: Option<i64>,
    pub merge_commit_sha: Option<String>,
    pub head_sha: String,
    pub head_ref: String,
    pub base_ref: String,
    pub additions: Option<i32>,
    pub deletions: Option<i32>,
    pub changed_files: Option<i32>,
    pub commits_count: Option<i32>,
    pub updated_at: DateTimeWithTimeZone,
    pub synced_at: DateTimeWithTimeZone,
    pub first_commit_at: Option<DateTimeWithTimeZone>,
    pub reverts_repository: Option<String>,
    pub reverts_number: Option<i32>,
    pub reverts_title: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
