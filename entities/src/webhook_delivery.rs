//! `webhook_deliveries`: one row per GitHub delivery the API acknowledged.

use sea_orm::entity::prelude::*;

/// Where a delivery stands. Stored as text; the database checks the same set of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum DeliveryStatus {
    /// Committed, not yet handed to Redis (the relay will).
    #[sea_orm(string_value = "pending")]
    Pending,
    /// A job for it is in Redis.
    #[sea_orm(string_value = "queued")]
    Queued,
    /// A worker turned it into domain rows.
    #[sea_orm(string_value = "processed")]
    Processed,
    /// An event type the platform keeps but does not process.
    #[sea_orm(string_value = "ignored")]
    Ignored,
    /// The last attempt failed; another is scheduled.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// Out of attempts or permanently unprocessable: in the dead-letter queue.
    #[sea_orm(string_value = "dead")]
    Dead,
}

impl DeliveryStatus {
    /// The text stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Queued => "queued",
            Self::Processed => "processed",
            Self::Ignored => "ignored",
            Self::Failed => "failed",
            Self::Dead => "dead",
        }
    }
}

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub delivery_id: String,
    pub event: String,
    pub action: Option<String>,
    pub installation_id: Option<i64>,
    pub repository_id: Option<i64>,
    pub hook_id: Option<i64>,
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    pub received_at: DateTimeWithTimeZone,
    pub status: DeliveryStatus,
    pub queued_at: Option<DateTimeWithTimeZone>,
    pub attempts: i32,
    pub last_attempt_at: Option<DateTimeWithTimeZone>,
    pub next_attempt_at: Option<DateTimeWithTimeZone>,
    pub last_error: Option<String>,
    pub processed_at: Option<DateTimeWithTimeZone>,
    pub updated_at: DateTimeWithTimeZone,
    /// The fields the worker's parsers read, as JSON text, made by the API at ingest; cleared
    /// when `payload` is updated. Derived data: the payload stays the record.
    pub projection: Option<String>,
    /// Which projection trees made `projection`.
    pub projection_version: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
