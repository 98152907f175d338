//! Rotating refresh tokens (with reuse detection) and the desktop tracker's device tokens.
//! Only hashes are stored; lookups by hash are the one place these tables are read across
//! organizations.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, QueryResult, TransactionTrait};
use serde::Serialize;
use uuid::Uuid;

use super::{
    OrgId, PeopleError, Role, UserId,
    secrets::{NewToken, TokenKind, token_hash},
};
use crate::domain::stmt;

/// How long a refresh token may wait to be used.
pub const REFRESH_TTL: Duration = Duration::days(30);

/// Who a valid token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenOwner {
    pub user: UserId,
    pub org: OrgId,
    pub role: Role,
}

fn owner(row: &QueryResult) -> Result<TokenOwner, DbErr> {
    let role: String = row.try_get("", "role")?;
    Ok(TokenOwner {
        user: UserId(row.try_get("", "user_id")?),
        org: OrgId(row.try_get("", "organization_id")?),
        role: role.parse().map_err(DbErr::Custom)?,
    })
}

/// Starts a refresh-token family (at sign-in), or continues one (at rotation).
pub async fn issue_refresh<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    user: UserId,
    family: Option<Uuid>,
) -> Result<NewToken, DbErr> {
    let token = NewToken::generate(TokenKind::Refresh);
    db.execute_raw(stmt(
        "INSERT INTO refresh_tokens (id, family_id, organization_id, user_id, token_hash, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        [
            Uuid::new_v4().into(),
            family.unwrap_or_else(Uuid::new_v4).into(),
            org.0.into(),
            user.0.into(),
            token.hash.clone().into(),
            (Utc::now() + REFRESH_TTL).into(),
        ],
    ))
    .await?;
    Ok(token)
}

/// Why a refresh token was refused.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("this refresh token is unknown, expired or revoked; sign in again")]
    Invalid,
    /// A used token came back: someone holds a copy. The whole family is now revoked.
    #[error("this refresh token was already used; every session of its sign-in is now revoked")]
    Reused,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Rotates a refresh token: marks it used and issues the next of its family. A token used
/// before revokes its whole family (committed even though the caller gets an error).
pub async fn rotate(
    db: &DatabaseConnection,
    presented: &str,
) -> Result<(TokenOwner, NewToken), RefreshError> {
    let txn = db.begin().await?;
    let row = txn
        .query_one_raw(stmt(
            "SELECT t.id, t.family_id, t.organization_id, t.user_id, u.role, \
                t.used_at IS NOT NULL AS used, \
                (t.revoked_at IS NULL AND t.expires_at > now() AND u.active AND o.status <> 'removed') AS valid \
             FROM refresh_tokens t \
             JOIN users u ON u.id = t.user_id AND u.organization_id = t.organization_id \
             JOIN organizations o ON o.id = t.organization_id \
             WHERE t.token_hash = $1 FOR UPDATE OF t",
            [token_hash(presented).into()],
        ))
        .await?
        .ok_or(RefreshError::Invalid)?;
    let family: Uuid = row.try_get("", "family_id")?;
    if row.try_get::<bool>("", "used")? {
        txn.execute_raw(stmt(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
            [family.into()],
        ))
        .await?;
        txn.commit().await?;
        tracing::warn!(%family, "refresh token reused; family revoked");
        return Err(RefreshError::Reused);
    }
    if !row.try_get::<bool>("", "valid")? {
        return Err(RefreshError::Invalid);
    }
    let id: Uuid = row.try_get("", "id")?;
    let who = owner(&row)?;
    txn.execute_raw(stmt(
        "UPDATE refresh_tokens SET used_at = now() WHERE id = $1",
        [id.into()],
    ))
    .await?;
    let next = issue_refresh(&txn, who.org, who.user, Some(family)).await?;
    txn.commit().await?;
    Ok((who, next))
}

/// Signs out: revokes the family of `presented`. Unknown tokens are ignored (nothing to end).
pub async fn revoke_family<C: ConnectionTrait>(db: &C, presented: &str) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND family_id = \
            (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
        [token_hash(presented).into()],
    ))
    .await?;
    Ok(())
}

/// A device as its owner sees it (never the token).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Device {
    pub id: Uuid,
    pub user_id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const DEVICE_COLUMNS: &str = "id, user_id, name, created_at, last_used_at, revoked_at";

fn device(row: &QueryResult) -> Result<Device, DbErr> {
    Ok(Device {
        id: row.try_get("", "id")?,
        user_id: row.try_get("", "user_id")?,
        name: row.try_get("", "name")?,
        created_at: row.try_get("", "created_at")?,
        last_used_at: row.try_get("", "last_used_at")?,
        revoked_at: row.try_get("", "revoked_at")?,
    })
}

/// Registers a device for `user`; the token is returned once.
pub async fn create_device<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    user: UserId,
    name: &str,
) -> Result<(Device, NewToken), PeopleError> {
    let name = super::display_name(name).map_err(|m| PeopleError::invalid("invalid_name", m))?;
    let token = NewToken::generate(TokenKind::Device);
    let row = db
        .query_one_raw(stmt(
            &format!(
                "INSERT INTO devices (id, organization_id, user_id, name, token_hash) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING {DEVICE_COLUMNS}"
            ),
            [
                Uuid::new_v4().into(),
                org.0.into(),
                user.0.into(),
                name.into(),
                token.hash.clone().into(),
            ],
        ))
        .await?
        .ok_or(PeopleError::NotFound("device"))?;
    Ok((device(&row)?, token))
}

/// A user's devices, revoked ones included (so they can see what was ended and when).
pub async fn list_devices<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    user: UserId,
) -> Result<Vec<Device>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            &format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE organization_id = $1 AND user_id = $2 \
                 ORDER BY created_at, id"
            ),
            [org.0.into(), user.0.into()],
        ))
        .await?;
    rows.iter().map(device).collect()
}

/// Revokes a device. `owner` limits it to that user's devices (`None`: any of the organization,
/// for admins). Revoking a revoked device is a no-op that still succeeds.
pub async fn revoke_device<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    id: Uuid,
    owner: Option<UserId>,
) -> Result<(), PeopleError> {
    let found = db
        .execute_raw(stmt(
            "UPDATE devices SET revoked_at = COALESCE(revoked_at, now()) \
             WHERE organization_id = $1 AND id = $2 AND ($3::bigint IS NULL OR user_id = $3)",
            [org.0.into(), id.into(), owner.map(|u| u.0).into()],
        ))
        .await?
        .rows_affected();
    if found == 0 {
        return Err(PeopleError::NotFound("no such device"));
    }
    Ok(())
}

/// The device and owner of a presented device token, when it is valid (not revoked, owner
/// active, organization not removed). Records when it was last used, at most once a minute.
pub async fn authenticate_device<C: ConnectionTrait>(
    db: &C,
    presented: &str,
) -> Result<Option<(Uuid, TokenOwner)>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT d.id, d.organization_id, d.user_id, u.role, \
                (d.last_used_at IS NULL OR d.last_used_at < now() - interval '1 minute') AS stale \
             FROM devices d JOIN users u ON u.id = d.user_id AND u.organization_id = d.organization_id \
             JOIN organizations o ON o.id = d.organization_id \
             WHERE d.token_hash = $1 AND d.revoked_at IS NULL AND u.active AND o.status <> 'removed'",
            [token_hash(presented).into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    let id: Uuid = row.try_get("", "id")?;
    if row.try_get::<bool>("", "stale")? {
        db.execute_raw(stmt(
            "UPDATE devices SET last_used_at = now() WHERE id = $1",
            [id.into()],
        ))
        .await?;
    }
    Ok(Some((id, owner(&row)?)))
}
