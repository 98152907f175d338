//! Organization API keys (`dpk_…`): machine clients such as a deploy pipeline push deployments
//! made outside GitHub with one. Only their SHA-256 is stored; the text is shown once.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};
use serde::Serialize;

use super::{
    OrgId,
    secrets::{NewToken, TokenKind, token_hash},
};
use crate::domain::stmt;

/// An API key as listed (never its hash).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

fn key(row: &sea_orm::QueryResult) -> Result<ApiKey, DbErr> {
    Ok(ApiKey {
        id: row.try_get("", "id")?,
        name: row.try_get("", "name")?,
        created_at: row.try_get("", "created_at")?,
        last_used_at: row.try_get("", "last_used_at")?,
        revoked_at: row.try_get("", "revoked_at")?,
    })
}

const COLUMNS: &str = "id, name, created_at, last_used_at, revoked_at";

/// Makes a key; the returned token's text is the only copy.
pub async fn create<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    name: &str,
) -> Result<(ApiKey, NewToken), DbErr> {
    let token = NewToken::generate(TokenKind::ApiKey);
    let row = db
        .query_one_raw(stmt(
            &format!(
                "INSERT INTO api_keys (organization_id, name, token_hash) VALUES ($1, $2, $3) \
                 RETURNING {COLUMNS}"
            ),
            [
                org.0.into(),
                name.to_owned().into(),
                token.hash.clone().into(),
            ],
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("insert returned no row".to_owned()))?;
    Ok((key(&row)?, token))
}

pub async fn list<C: ConnectionTrait>(db: &C, org: OrgId) -> Result<Vec<ApiKey>, DbErr> {
    db.query_all_raw(stmt(
        &format!("SELECT {COLUMNS} FROM api_keys WHERE organization_id = $1 ORDER BY id"),
        [org.0.into()],
    ))
    .await?
    .iter()
    .map(key)
    .collect()
}

/// Revokes a key at once; `None` when the organization has no such key.
pub async fn revoke<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    id: i64,
) -> Result<Option<ApiKey>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            &format!(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) \
                 WHERE organization_id = $1 AND id = $2 RETURNING {COLUMNS}"
            ),
            [org.0.into(), id.into()],
        ))
        .await?;
    row.as_ref().map(key).transpose()
}

/// The key and organization a presented key belongs to, if it is live (a lookup by hash, across
/// organizations, like device tokens).
pub async fn authenticate<C: ConnectionTrait>(
    db: &C,
    presented: &str,
) -> Result<Option<(i64, OrgId)>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT k.id, k.organization_id, \
                (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute') AS stale \
             FROM api_keys k JOIN organizations o ON o.id = k.organization_id \
             WHERE k.token_hash = $1 AND k.revoked_at IS NULL AND o.status <> 'removed'",
            [token_hash(presented).into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    let id: i64 = row.try_get("", "id")?;
    if row.try_get::<bool>("", "stale")? {
        db.execute_raw(stmt(
            "UPDATE api_keys SET last_used_at = now() WHERE id = $1",
            [id.into()],
        ))
        .await?;
    }
    Ok(Some((id, OrgId(row.try_get("", "organization_id")?))))
}
