//! `organizations`: found or created by GitHub account; installation events set their status.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::stmt;

/// The GitHub account an event belongs to (the installation's account, or the repository owner).
#[derive(Debug, Clone)]
pub struct AccountRef {
    pub account_id: i64,
    pub login: String,
    pub account_type: Option<String>,
    pub installation_id: Option<i64>,
}

/// The organization of `account`, created on first sight. Takes no lock when it exists.
pub async fn ensure<C: ConnectionTrait>(db: &C, account: &AccountRef) -> Result<i64, DbErr> {
    const FIND: &str = "SELECT id, installation_id FROM organizations WHERE github_account_id = $1";
    let found = db
        .query_one_raw(stmt(FIND, [account.account_id.into()]))
        .await?;
    if let Some(row) = found {
        let id: i64 = row.try_get("", "id")?;
        let installation: Option<i64> = row.try_get("", "installation_id")?;
        if installation.is_none() && account.installation_id.is_some() {
            db.execute_raw(stmt(
                "UPDATE organizations SET installation_id = $2, synced_at = now() \
                 WHERE id = $1 AND installation_id IS NULL",
                [id.into(), account.installation_id.into()],
            ))
            .await?;
        }
        return Ok(id);
    }
    let inserted = db
        .query_one_raw(stmt(
            "INSERT INTO organizations (name, github_account_id, github_login, account_type, installation_id) \
             VALUES ($1, $2, $1, $3, $4) \
             ON CONFLICT (github_account_id) WHERE github_account_id IS NOT NULL DO NOTHING \
             RETURNING id",
            [
                account.login.clone().into(),
                account.account_id.into(),
                account.account_type.clone().into(),
                account.installation_id.into(),
            ],
        ))
        .await?;
    if let Some(row) = inserted {
        return row.try_get("", "id");
    }
    // Another transaction inserted it meanwhile; a new statement sees its commit.
    db.query_one_raw(stmt(FIND, [account.account_id.into()]))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("organization {}", account.account_id)))?
        .try_get("", "id")
}

/// What an installation event says about the organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallationState {
    Active,
    Suspended,
    Removed,
}

impl InstallationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Removed => "removed",
        }
    }
}

/// Sets the organization's installation and status unless a newer installation event already
/// did (ties: removed > suspended > active, so the outcome does not depend on arrival order).
pub async fn set_installation_state<C: ConnectionTrait>(
    db: &C,
    organization_id: i64,
    installation_id: i64,
    state: InstallationState,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "UPDATE organizations SET status = $2, status_changed_at = $3, installation_id = $4, synced_at = now() \
         WHERE id = $1 AND (status_changed_at IS NULL \
            OR ($3, array_position(ARRAY['active','suspended','removed'], $2::text)) \
             > (status_changed_at, array_position(ARRAY['active','suspended','removed'], status)))",
        [
            organization_id.into(),
            state.as_str().into(),
            at.into(),
            installation_id.into(),
        ],
    ))
    .await?;
    Ok(())
}
