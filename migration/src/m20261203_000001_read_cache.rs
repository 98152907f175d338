//! Tells `api` replicas when a precomputed table changes (so their read caches drop that
//! organization's answers), and lets tenant transactions read the cron runs.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
-- One notification per organization and committing transaction on channel `devpulse_reads`
-- (PostgreSQL folds identical payloads of one transaction into one), sent only on commit, so a
-- replica never drops its cache before the new rows are visible.
CREATE FUNCTION devpulse_notify_reads() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    org TEXT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        org := to_jsonb(OLD) ->> TG_ARGV[0];
    ELSE
        org := to_jsonb(NEW) ->> TG_ARGV[0];
    END IF;
    IF org IS NOT NULL THEN
        PERFORM pg_notify('devpulse_reads', org);
    END IF;
    IF TG_OP = 'UPDATE' AND (to_jsonb(OLD) ->> TG_ARGV[0]) IS DISTINCT FROM org THEN
        PERFORM pg_notify('devpulse_reads', to_jsonb(OLD) ->> TG_ARGV[0]);
    END IF;
    RETURN NULL;
END $$;

DO $$
DECLARE
    t TEXT[];
BEGIN
    FOREACH t SLICE 1 IN ARRAY ARRAY[
        ARRAY['daily_metrics', 'org_id'], ARRAY['dora_metrics', 'org_id'],
        ARRAY['reliability_scores', 'org_id'], ARRAY['health_alerts', 'org_id'],
        ARRAY['teams', 'organization_id'], ARRAY['organizations', 'id']] LOOP
        EXECUTE format('CREATE TRIGGER devpulse_notify_reads AFTER INSERT OR UPDATE OR DELETE ON %I
            FOR EACH ROW EXECUTE FUNCTION devpulse_notify_reads(%L)', t[1], t[2]);
    END LOOP;
END $$;

-- Platform bookkeeping without tenant data: admins see when the schedules ran.
GRANT SELECT ON schedule_ticks TO devpulse_app;
"#;

const DOWN: &str = r#"
REVOKE SELECT ON schedule_ticks FROM devpulse_app;
DROP TRIGGER devpulse_notify_reads ON daily_metrics;
DROP TRIGGER devpulse_notify_reads ON dora_metrics;
DROP TRIGGER devpulse_notify_reads ON reliability_scores;
DROP TRIGGER devpulse_notify_reads ON health_alerts;
DROP TRIGGER devpulse_notify_reads ON teams;
DROP TRIGGER devpulse_notify_reads ON organizations;
DROP FUNCTION devpulse_notify_reads();
"#;

sql_migration!();
