//! `webhook_deliveries.projection`: the fields the worker's parsers read, extracted by the API
//! at ingest, so a worker does not detoast and walk the 25 KB `jsonb` payload of every job.
//! A payload updated in place (an operator fixing a delivery before `dlq retry`) loses its
//! projection by trigger, and the worker projects the new payload itself.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
ALTER TABLE webhook_deliveries
    ADD COLUMN projection TEXT,
    ADD COLUMN projection_version BIGINT;

CREATE FUNCTION webhook_deliveries_payload_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.projection := NULL;
    NEW.projection_version := NULL;
    RETURN NEW;
END
$$;

-- Fires only for UPDATEs that name `payload`: status and attempt updates pay nothing.
CREATE TRIGGER webhook_deliveries_payload_updated
    BEFORE UPDATE OF payload ON webhook_deliveries
    FOR EACH ROW EXECUTE FUNCTION webhook_deliveries_payload_updated();
"#;

const DOWN: &str = r#"
DROP TRIGGER webhook_deliveries_payload_updated ON webhook_deliveries;
DROP FUNCTION webhook_deliveries_payload_updated();
ALTER TABLE webhook_deliveries DROP COLUMN projection, DROP COLUMN projection_version;
"#;

sql_migration!();
