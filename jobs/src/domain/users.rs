//! `github_users`: every account seen acting in an organization, bots flagged.

use sea_orm::{ConnectionTrait, DbErr};
use serde::Serialize;

use super::stmt;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GithubUser {
    pub id: i64,
    pub login: String,
    pub user_type: String,
    pub is_bot: bool,
}

/// Records the users (deduplicated, in id order so concurrent jobs lock in one order). A known
/// user is only written when GitHub shows a new login or type.
pub async fn upsert<C: ConnectionTrait>(
    db: &C,
    organization_id: i64,
    users: impl IntoIterator<Item = GithubUser>,
) -> Result<(), DbErr> {
    let mut users: Vec<GithubUser> = users.into_iter().collect();
    users.sort_by_key(|u| u.id);
    users.dedup_by_key(|u| u.id);
    if users.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_value(&users).map_err(|e| DbErr::Custom(e.to_string()))?;
    db.execute_raw(stmt(
        "INSERT INTO github_users (organization_id, github_id, login, user_type, is_bot) \
         SELECT $1, x.id, x.login, x.user_type, x.is_bot \
         FROM jsonb_to_recordset($2::jsonb) AS x(id int8, login text, user_type text, is_bot bool) \
         ORDER BY x.id \
         ON CONFLICT (organization_id, github_id) DO NOTHING",
        [organization_id.into(), json.clone().into()],
    ))
    .await?;
    db.execute_raw(stmt(
        "UPDATE github_users u SET login = x.login, user_type = x.user_type, is_bot = x.is_bot \
         FROM jsonb_to_recordset($2::jsonb) AS x(id int8, login text, user_type text, is_bot bool) \
         WHERE u.organization_id = $1 AND u.github_id = x.id \
           AND (u.login, u.user_type, u.is_bot) IS DISTINCT FROM (x.login, x.user_type, x.is_bot)",
        [organization_id.into(), json.into()],
    ))
    .await?;
    Ok(())
}
