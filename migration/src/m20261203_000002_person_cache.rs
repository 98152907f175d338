//! Read-cache notifications for what a person's page depends on: who may see whom (`users`,
//! `team_members`) and attendance (`attendance_summaries`), so `api` can cache per-viewer answers.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'team_members', 'attendance_summaries'] LOOP
        EXECUTE format('CREATE TRIGGER devpulse_notify_reads AFTER INSERT OR UPDATE OR DELETE ON %I
            FOR EACH ROW EXECUTE FUNCTION devpulse_notify_reads(%L)', t, 'organization_id');
    END LOOP;
END $$;
"#;

const DOWN: &str = r#"
DROP TRIGGER devpulse_notify_reads ON users;
DROP TRIGGER devpulse_notify_reads ON team_members;
DROP TRIGGER devpulse_notify_reads ON attendance_summaries;
"#;

sql_migration!();
