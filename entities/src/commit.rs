//! `commits`: A commit pushed to a repository, with its author, time and place in default-branch history.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "commits")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub repository_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub sha: String,
    pub organization_id: i64,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    pub author_login: Option<String>,
    pub committer_login: Option<String>,
    pub message_headline: String,
    pub authored_at: Option<DateTimeWithTimeZone>,
    pub refs: Vec<String>,
    pub on_default_branch: bool,
    pub default_branch_pushed_at: Option<DateTimeWithTimeZone>,
    pub push_position: Option<i32>,
    pub synced_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
