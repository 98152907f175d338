//! DevPulse's schema migrations, applied in order by `api` at start-up and by the `migration` binary.

pub use sea_orm_migration::prelude::*;

/// Implements `MigrationTrait` for a module's `Migration` as its `UP` script, undone by its
/// `DOWN` script.
macro_rules! sql_migration {
    () => {
        #[async_trait::async_trait]
        impl MigrationTrait for Migration {
            async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                manager.get_connection().execute_unprepared(UP).await?;
                Ok(())
            }

            async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                manager.get_connection().execute_unprepared(DOWN).await?;
                Ok(())
            }
        }
    };
}

mod m20261121_000001_webhook_deliveries;
mod m20261122_000001_domain_model;
mod m20261123_000001_people;
mod m20261123_000002_schedule_ticks;
mod m20261124_000001_analytics;
mod m20261125_000001_open_span_index;
mod m20261202_000001_sync;
mod m20261203_000001_read_cache;
mod m20261203_000002_person_cache;
mod m20261204_000001_open_span_covering;
mod m20261205_000001_deployment_success_index;
mod m20261206_000001_stored_projection;
mod m20261207_000001_drop_delivery_installation_index;

/// Every migration of the schema, oldest first.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_webhook_deliveries::Migration),
            Box::new(m20261122_000001_domain_model::Migration),
            Box::new(m20261123_000001_people::Migration),
            Box::new(m20261123_000002_schedule_ticks::Migration),
            Box::new(m20261124_000001_analytics::Migration),
            Box::new(m20261125_000001_open_span_index::Migration),
            Box::new(m20261202_000001_sync::Migration),
            Box::new(m20261203_000001_read_cache::Migration),
            Box::new(m20261203_000002_person_cache::Migration),
            Box::new(m20261204_000001_open_span_covering::Migration),
            Box::new(m20261205_000001_deployment_success_index::Migration),
            Box::new(m20261206_000001_stored_projection::Migration),
            Box::new(m20261207_000001_drop_delivery_installation_index::Migration),
        ]
    }
}
