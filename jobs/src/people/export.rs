//! Everything DevPulse stores about one person, for that person: the transparency promise
//! ("every developer can see everything stored about them") as one JSON document.

use sea_orm::{ConnectionTrait, DbErr};

use super::{OrgId, UserId};
use crate::domain::stmt;

/// Every stored row about `user` — their account, teams, devices, sign-ins, invites, failed
/// sign-ins, work sessions with idle intervals, attendance, and the GitHub activity linked to
/// their GitHub identity — with secrets' hashes left out. Rows are whole (`to_jsonb`), so a
/// column added later shows up without changing this code.
pub async fn everything<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    user: UserId,
) -> Result<serde_json::Value, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT jsonb_build_object( \
                'user', to_jsonb(u) - 'password_hash', \
                'teams', COALESCE((SELECT jsonb_agg(jsonb_build_object('team_id', t.id, 'name', t.name, \
                    'is_manager', m.is_manager) ORDER BY t.id) \
                    FROM team_members m JOIN teams t ON t.id = m.team_id \
                    WHERE m.organization_id = $1 AND m.user_id = u.id), '[]'), \
                'devices', COALESCE((SELECT jsonb_agg(to_jsonb(d) - 'token_hash' ORDER BY d.created_at) \
                    FROM devices d WHERE d.organization_id = $1 AND d.user_id = u.id), '[]'), \
                'sign_ins', COALESCE((SELECT jsonb_agg(to_jsonb(r) - 'token_hash' ORDER BY r.created_at) \
                    FROM refresh_tokens r WHERE r.organization_id = $1 AND r.user_id = u.id), '[]'), \
                'invites', COALESCE((SELECT jsonb_agg(to_jsonb(i) - 'token_hash' ORDER BY i.created_at) \
                    FROM invites i WHERE i.organization_id = $1 AND i.user_id = u.id), '[]'), \
                'failed_sign_ins', COALESCE((SELECT jsonb_agg(to_jsonb(f)) FROM login_failures f \
                    WHERE f.scope = 'account' AND f.key = u.email), '[]'), \
                'work_sessions', COALESCE((SELECT jsonb_agg(to_jsonb(s) || jsonb_build_object('idle', \
                    COALESCE((SELECT jsonb_agg(jsonb_build_object('start', i.started_at, 'end', i.ended_at) \
                        ORDER BY i.started_at) FROM idle_intervals i WHERE i.session_id = s.id), '[]')) \
                    ORDER BY s.started_at) \
                    FROM work_sessions s WHERE s.organization_id = $1 AND s.user_id = u.id), '[]'), \
                'attendance_summaries', COALESCE((SELECT jsonb_agg(to_jsonb(a) ORDER BY a.day) \
                    FROM attendance_summaries a WHERE a.organization_id = $1 AND a.user_id = u.id), '[]'), \
                'github_identity', (SELECT to_jsonb(g) FROM github_users g \
                    WHERE g.organization_id = $1 AND g.github_id = u.github_id), \
                'pull_requests', COALESCE((SELECT jsonb_agg(to_jsonb(p) ORDER BY p.created_at) \
                    FROM pull_requests p WHERE p.organization_id = $1 AND p.author_id = u.github_id), '[]'), \
                'reviews', COALESCE((SELECT jsonb_agg(to_jsonb(r) ORDER BY r.submitted_at) \
                    FROM reviews r WHERE r.organization_id = $1 AND r.reviewer_id = u.github_id), '[]'), \
                'commits', COALESCE((SELECT jsonb_agg(to_jsonb(c) ORDER BY c.authored_at) \
                    FROM commits c WHERE c.organization_id = $1 AND u.github_login IS NOT NULL \
                      AND lower(c.author_login) = lower(u.github_login)), '[]') \
             ) AS everything \
             FROM users u WHERE u.organization_id = $1 AND u.id = $2",
            [org.0.into(), user.0.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("user".to_owned()))?;
    row.try_get("", "everything")
}
