//! Teams and their members; a team's managers read its members' data.

use sea_orm::{ConnectionTrait, DbErr, QueryResult};
use serde::{Deserialize, Serialize};

use super::{OrgId, PeopleError, UserId, accounts::Viewer, is_unique_violation};
use crate::domain::stmt;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    pub user_id: i64,
    pub display_name: String,
    pub is_manager: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Team {
    pub id: i64,
    pub name: String,
    pub members: Vec<Member>,
}

fn team(row: &QueryResult) -> Result<Team, DbErr> {
    let members: serde_json::Value = row.try_get("", "members")?;
    Ok(Team {
        id: row.try_get("", "id")?,
        name: row.try_get("", "name")?,
        members: serde_json::from_value(members)
            .map_err(|e| DbErr::Custom(format!("team members: {e}")))?,
    })
}

const TEAM_COLUMNS: &str = "t.id, t.name, COALESCE((SELECT jsonb_agg(jsonb_build_object( \
        'user_id', u.id, 'display_name', u.display_name, 'is_manager', m.is_manager) ORDER BY u.id) \
     FROM team_members m JOIN users u ON u.id = m.user_id AND u.organization_id = m.organization_id \
     WHERE m.team_id = t.id AND m.organization_id = t.organization_id), '[]'::jsonb) AS members";

/// The teams `viewer` may see: all for owners and admins, those they belong to otherwise.
pub async fn list<C: ConnectionTrait>(db: &C, viewer: &Viewer) -> Result<Vec<Team>, PeopleError> {
    let rows = db
        .query_all_raw(stmt(
            &format!(
                "SELECT {TEAM_COLUMNS} FROM teams t WHERE t.organization_id = $1 AND ($2 OR EXISTS ( \
                     SELECT 1 FROM team_members me WHERE me.team_id = t.id AND me.user_id = $3)) \
                 ORDER BY t.id"
            ),
            [
                viewer.org.0.into(),
                viewer.role.administers().into(),
                viewer.user.0.into(),
            ],
        ))
        .await?;
    Ok(rows.iter().map(team).collect::<Result<_, _>>()?)
}

/// One team, if `viewer` administers the organization or belongs to the team.
pub async fn get<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    id: i64,
) -> Result<Team, PeopleError> {
    let row = db
        .query_one_raw(stmt(
            &format!(
                "SELECT {TEAM_COLUMNS}, EXISTS (SELECT 1 FROM team_members me \
                     WHERE me.team_id = t.id AND me.user_id = $3) AS member \
                 FROM teams t WHERE t.organization_id = $1 AND t.id = $2"
            ),
            [viewer.org.0.into(), id.into(), viewer.user.0.into()],
        ))
        .await?
        .ok_or(PeopleError::NotFound("no such team"))?;
    let member: bool = row.try_get("", "member")?;
    if viewer.role.administers() || member {
        Ok(team(&row)?)
    } else {
        Err(PeopleError::Forbidden(
            "only its members and the organization's admins see a team".to_owned(),
        ))
    }
}

pub async fn create<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    name: &str,
) -> Result<Team, PeopleError> {
    let name = super::display_name(name).map_err(|m| PeopleError::invalid("invalid_name", m))?;
    let row = db
        .query_one_raw(stmt(
            "INSERT INTO teams (organization_id, name) VALUES ($1, $2) RETURNING id, name, '[]'::jsonb AS members",
            [org.0.into(), name.clone().into()],
        ))
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                PeopleError::conflict("team_exists", format!("a team named {name:?} already exists"))
            } else {
                PeopleError::Db(e)
            }
        })?
        .ok_or(PeopleError::NotFound("team"))?;
    Ok(team(&row)?)
}

pub async fn delete<C: ConnectionTrait>(db: &C, org: OrgId, id: i64) -> Result<(), PeopleError> {
    let deleted = db
        .execute_raw(stmt(
            "DELETE FROM teams WHERE organization_id = $1 AND id = $2",
            [org.0.into(), id.into()],
        ))
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(PeopleError::NotFound("no such team"));
    }
    Ok(())
}

/// Adds a user to a team, or changes whether they manage it (idempotent).
pub async fn set_member<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    team: i64,
    user: UserId,
    is_manager: bool,
) -> Result<(), PeopleError> {
    // Checked first: the upsert would otherwise meet another organization's row and fail on
    // row-level security instead of answering "not found".
    let both = db
        .query_one_raw(stmt(
            "SELECT EXISTS (SELECT 1 FROM teams WHERE organization_id = $1 AND id = $2) \
                AND EXISTS (SELECT 1 FROM users WHERE organization_id = $1 AND id = $3) AS found",
            [org.0.into(), team.into(), user.0.into()],
        ))
        .await?
        .map(|r| r.try_get::<bool>("", "found"))
        .transpose()?
        .unwrap_or(false);
    if !both {
        return Err(PeopleError::NotFound("no such team or user"));
    }
    db.execute_raw(stmt(
        "INSERT INTO team_members (organization_id, team_id, user_id, is_manager) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (team_id, user_id) DO UPDATE SET is_manager = excluded.is_manager",
        [org.0.into(), team.into(), user.0.into(), is_manager.into()],
    ))
    .await
    .map_err(|e| {
        if matches!(e.sql_err(), Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))) {
            PeopleError::NotFound("no such team or user")
        } else {
            PeopleError::Db(e)
        }
    })?;
    Ok(())
}

pub async fn remove_member<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    team: i64,
    user: UserId,
) -> Result<(), PeopleError> {
    let removed = db
        .execute_raw(stmt(
            "DELETE FROM team_members WHERE organization_id = $1 AND team_id = $2 AND user_id = $3",
            [org.0.into(), team.into(), user.0.into()],
        ))
        .await?
        .rows_affected();
    if removed == 0 {
        return Err(PeopleError::NotFound("no such team member"));
    }
    Ok(())
}
