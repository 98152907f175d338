//! `reliability_scores`: the Delivery Reliability Score of an organization or team for one ISO week, with its components.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "reliability_scores")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub org_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope_key: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub week: Date,
    pub iso_week: String,
    pub score: Option<f64>,
    pub flow_predictability: Option<f64>,
    pub review_responsiveness: Option<f64>,
    pub change_stability: Option<f64>,
    pub wip_hygiene: Option<f64>,
    pub prs_merged: i32,
    pub prs_merged_on_target: i32,
    pub prs_first_reviewed: i32,
    pub prs_picked_up_in_sla: i32,
    pub deployments: i32,
    pub failed_deployments: i32,
    pub open_prs: i32,
    pub idle_open_prs: i32,
    pub weights: Json,
    pub computed_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
