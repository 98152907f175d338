//! Organizations created by operators, users, invites, and who may see whom.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, QueryResult, TransactionTrait};
use serde::Serialize;

use super::{
    Email, OrgId, PeopleError, Role, UserId, is_unique_violation,
    secrets::{NewToken, TokenKind, token_hash},
};
use crate::domain::stmt;

/// How long an invite link stays valid.
pub const INVITE_TTL: Duration = Duration::days(7);

/// An organization's settings, as the API shows them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Organization {
    pub id: i64,
    pub name: String,
    pub status: String,
    pub time_zone: String,
    pub session_limit_seconds: i32,
    pub daily_target_seconds: i32,
    pub github_login: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The analytics settings in effect (every key, defaults filled in).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub analytics: serde_json::Value,
    /// Where health-alert notifications are POSTed.
    pub notification_url: Option<String>,
    /// Whether notifications are signed (the secret itself is never shown).
    pub notification_secret_set: bool,
}

const ORG_COLUMNS: &str = "id, name, status, time_zone, session_limit_seconds, \
     daily_target_seconds, github_login, created_at, analytics_settings, notification_url, \
     notification_secret IS NOT NULL AS notification_secret_set";

fn organization(row: &QueryResult) -> Result<Organization, DbErr> {
    Ok(Organization {
        id: row.try_get("", "id")?,
        name: row.try_get("", "name")?,
        status: row.try_get("", "status")?,
        time_zone: row.try_get("", "time_zone")?,
        session_limit_seconds: row.try_get("", "session_limit_seconds")?,
        daily_target_seconds: row.try_get("", "daily_target_seconds")?,
        github_login: row.try_get("", "github_login")?,
        created_at: row.try_get("", "created_at")?,
        analytics: serde_json::to_value(
            crate::analytics::Settings::from_json(&row.try_get("", "analytics_settings")?)
                .unwrap_or_default(),
        )
        .map_err(|e| DbErr::Custom(e.to_string()))?,
        notification_url: row.try_get("", "notification_url")?,
        notification_secret_set: row.try_get("", "notification_secret_set")?,
    })
}

/// Checks an IANA time zone name against PostgreSQL's own database, which the attendance
/// computation uses.
pub async fn check_time_zone<C: ConnectionTrait>(db: &C, zone: &str) -> Result<(), PeopleError> {
    let known = db
        .query_one_raw(stmt(
            "SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1) AS known",
            [zone.into()],
        ))
        .await?
        .map(|r| r.try_get::<bool>("", "known"))
        .transpose()?
        .unwrap_or(false);
    if known {
        Ok(())
    } else {
        Err(PeopleError::invalid(
            "invalid_time_zone",
            format!("{zone:?} is not a time zone name (e.g. Europe/Berlin, UTC)"),
        ))
    }
}

/// Creates an organization that no GitHub installation made (`worker admin create-org`).
pub async fn create_org<C: ConnectionTrait>(
    db: &C,
    name: &str,
    time_zone: &str,
) -> Result<Organization, PeopleError> {
    let name = super::display_name(name).map_err(|m| PeopleError::invalid("invalid_name", m))?;
    check_time_zone(db, time_zone).await?;
    let row = db
        .query_one_raw(stmt(
            &format!(
                "INSERT INTO organizations (name, time_zone) VALUES ($1, $2) RETURNING {ORG_COLUMNS}"
            ),
            [name.into(), time_zone.into()],
        ))
        .await?
        .ok_or(PeopleError::NotFound("organization"))?;
    Ok(organization(&row)?)
}

/// An organization by id.
pub async fn organization_by_id<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
) -> Result<Organization, PeopleError> {
    let row = db
        .query_one_raw(stmt(
            &format!("SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"),
            [org.0.into()],
        ))
        .await?
        .ok_or(PeopleError::NotFound("no such organization"))?;
    Ok(organization(&row)?)
}

/// Changes to an organization's settings; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct OrgChanges {
    pub name: Option<String>,
    pub time_zone: Option<String>,
    pub session_limit_seconds: Option<i32>,
    pub daily_target_seconds: Option<i32>,
    /// Replaces the analytics settings (missing keys take their defaults).
    pub analytics: Option<serde_json::Value>,
    /// `Some(None)` turns notifications off.
    pub notification_url: Option<Option<String>>,
    /// `Some(None)` sends them unsigned.
    pub notification_secret: Option<Option<String>>,
}

/// Days recomputed when the analytics settings or the time zone change (older history: `worker
/// recompute`).
pub const RECOMPUTE_DAYS_ON_CHANGE: i32 = 90;

fn check_notification_url(url: &str) -> Result<(), PeopleError> {
    let parsed = url::Url::parse(url).ok();
    if url.len() > 2000
        || !parsed.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
    {
        return Err(PeopleError::invalid(
            "invalid_notification_url",
            "notification_url must be an http or https URL of at most 2000 characters",
        ));
    }
    Ok(())
}

pub async fn update_org<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    changes: OrgChanges,
) -> Result<Organization, PeopleError> {
    if let Some(zone) = &changes.time_zone {
        check_time_zone(db, zone).await?;
    }
    let name = changes
        .name
        .as_deref()
        .map(super::display_name)
        .transpose()
        .map_err(|m| PeopleError::invalid("invalid_name", m))?;
    if changes
        .session_limit_seconds
        .is_some_and(|s| !(3600..=172_800).contains(&s))
    {
        return Err(PeopleError::invalid(
            "invalid_session_limit",
            "session_limit_seconds must be between 3600 (1 h) and 172800 (48 h)",
        ));
    }
    if changes
        .daily_target_seconds
        .is_some_and(|s| !(0..=86_400).contains(&s))
    {
        return Err(PeopleError::invalid(
            "invalid_daily_target",
            "daily_target_seconds must be between 0 and 86400",
        ));
    }
    let analytics = changes
        .analytics
        .as_ref()
        .map(|raw| {
            crate::analytics::Settings::from_json(raw)
                .map_err(|e| PeopleError::invalid("invalid_analytics_settings", e.to_string()))
                .and_then(|s| {
                    serde_json::to_value(s).map_err(|e| {
                        PeopleError::invalid("invalid_analytics_settings", e.to_string())
                    })
                })
        })
        .transpose()?;
    if let Some(Some(url)) = &changes.notification_url {
        check_notification_url(url)?;
    }
    if let Some(Some(secret)) = &changes.notification_secret
        && !(16..=200).contains(&secret.len())
    {
        return Err(PeopleError::invalid(
            "invalid_notification_secret",
            "notification_secret must be 16 to 200 characters",
        ));
    }
    let recompute = analytics.is_some() || changes.time_zone.is_some();
    let row = db
        .query_one_raw(stmt(
            &format!(
                "UPDATE organizations SET name = COALESCE($2, name), \
                    time_zone = COALESCE($3, time_zone), \
                    session_limit_seconds = COALESCE($4, session_limit_seconds), \
                    daily_target_seconds = COALESCE($5, daily_target_seconds), \
                    analytics_settings = COALESCE($6, analytics_settings), \
                    notification_url = CASE WHEN $7 THEN $8 ELSE notification_url END, \
                    notification_secret = CASE WHEN $9 THEN $10 ELSE notification_secret END \
                 WHERE id = $1 RETURNING {ORG_COLUMNS}"
            ),
            [
                org.0.into(),
                name.into(),
                changes.time_zone.into(),
                changes.session_limit_seconds.into(),
                changes.daily_target_seconds.into(),
                analytics.into(),
                changes.notification_url.is_some().into(),
                changes.notification_url.flatten().into(),
                changes.notification_secret.is_some().into(),
                changes.notification_secret.flatten().into(),
            ],
        ))
        .await?
        .ok_or(PeopleError::NotFound("no such organization"))?;
    if recompute {
        // The new definitions apply to recent history at once; the drain recomputes it.
        db.execute_raw(stmt(
            "INSERT INTO analytics_dirty (organization_id, day) \
             SELECT id, d::date FROM organizations, generate_series( \
                (now() AT TIME ZONE time_zone)::date - $2, (now() AT TIME ZONE time_zone)::date, \
                interval '1 day') d \
             WHERE id = $1",
            [org.0.into(), (RECOMPUTE_DAYS_ON_CHANGE - 1).into()],
        ))
        .await?;
    }
    Ok(organization(&row)?)
}

/// A user as shown to whoever may see them: never the password hash.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub id: i64,
    pub organization_id: i64,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub github_id: Option<i64>,
    pub github_login: Option<String>,
    pub active: bool,
    /// False until the user's invite is accepted.
    pub has_password: bool,
    pub created_at: DateTime<Utc>,
}

const USER_COLUMNS: &str = "u.id, u.organization_id, u.email, u.display_name, u.role, \
     u.github_id, u.github_login, u.active, u.password_hash IS NOT NULL AS has_password, u.created_at";

fn user(row: &QueryResult) -> Result<User, DbErr> {
    let role: String = row.try_get("", "role")?;
    Ok(User {
        id: row.try_get("", "id")?,
        organization_id: row.try_get("", "organization_id")?,
        email: row.try_get("", "email")?,
        display_name: row.try_get("", "display_name")?,
        role: role.parse().map_err(DbErr::Custom)?,
        github_id: row.try_get("", "github_id")?,
        github_login: row.try_get("", "github_login")?,
        active: row.try_get("", "active")?,
        has_password: row.try_get("", "has_password")?,
        created_at: row.try_get("", "created_at")?,
    })
}

/// A new user's fields, validated.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: Email,
    pub display_name: String,
    pub role: Role,
}

/// A created user and, when no password was given, the invite that lets them set one.
#[derive(Debug)]
pub struct Created {
    pub user: User,
    pub invite: Option<Invite>,
}

/// An invite's token (shown once) and when it stops working.
#[derive(Debug)]
pub struct Invite {
    pub token: NewToken,
    pub expires_at: DateTime<Utc>,
}

/// Creates a user with a password hash (argon2id PHC string), or with an invite when `None`.
pub async fn create_user<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    new: &NewUser,
    password_hash: Option<String>,
) -> Result<Created, PeopleError> {
    let invited = password_hash.is_none();
    let row = db
        .query_one_raw(stmt(
            &format!(
                "INSERT INTO users AS u (organization_id, email, display_name, role, password_hash) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING {USER_COLUMNS}"
            ),
            [
                org.0.into(),
                new.email.as_str().into(),
                new.display_name.clone().into(),
                new.role.as_str().into(),
                password_hash.into(),
            ],
        ))
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                PeopleError::conflict(
                    "email_taken",
                    format!("a user with email {} already exists", new.email.as_str()),
                )
            } else if matches!(e.sql_err(), Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))) {
                PeopleError::NotFound("no such organization")
            } else {
                PeopleError::Db(e)
            }
        })?
        .ok_or(PeopleError::NotFound("user"))?;
    let user = user(&row)?;
    let invite = if invited {
        Some(create_invite(db, org, UserId(user.id)).await?)
    } else {
        None
    };
    Ok(Created { user, invite })
}

/// A fresh invite for a user (earlier unused invites of theirs stop working).
pub async fn create_invite<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    user: UserId,
) -> Result<Invite, PeopleError> {
    let token = NewToken::generate(TokenKind::Invite);
    let expires_at = Utc::now() + INVITE_TTL;
    db.execute_raw(stmt(
        "UPDATE invites SET used_at = now() WHERE organization_id = $1 AND user_id = $2 AND used_at IS NULL",
        [org.0.into(), user.0.into()],
    ))
    .await?;
    db.execute_raw(stmt(
        "INSERT INTO invites (organization_id, user_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)",
        [
            org.0.into(),
            user.0.into(),
            token.hash.clone().into(),
            expires_at.into(),
        ],
    ))
    .await?;
    Ok(Invite { token, expires_at })
}

/// Accepts an invite: sets the user's password (hash) and uses the invite up. Cross-tenant by
/// nature (the token is the only thing the invitee has).
pub async fn accept_invite(
    db: &DatabaseConnection,
    token: &str,
    password_hash: String,
) -> Result<User, PeopleError> {
    let txn = db.begin().await?;
    let used = txn
        .query_one_raw(stmt(
            "UPDATE invites SET used_at = now() \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() \
             RETURNING organization_id, user_id",
            [token_hash(token).into()],
        ))
        .await?
        .ok_or(PeopleError::NotFound(
            "this invite is unknown, used or expired; ask an admin for a new one",
        ))?;
    let org: i64 = used.try_get("", "organization_id")?;
    let user_id: i64 = used.try_get("", "user_id")?;
    let row = txn
        .query_one_raw(stmt(
            &format!(
                "UPDATE users AS u SET password_hash = $3, updated_at = now() \
                 WHERE organization_id = $1 AND id = $2 AND active RETURNING {USER_COLUMNS}"
            ),
            [org.into(), user_id.into(), password_hash.into()],
        ))
        .await?
        .ok_or(PeopleError::Forbidden(
            "this account is disabled".to_owned(),
        ))?;
    txn.commit().await?;
    Ok(user(&row)?)
}

/// Sets a user's password (hash) by email — the operator's reset (`worker admin set-password`).
/// Every sign-in and device of theirs ends, as after any password change.
pub async fn set_password(
    db: &DatabaseConnection,
    email: &Email,
    password_hash: String,
) -> Result<User, PeopleError> {
    let txn = db.begin().await?;
    let row = txn
        .query_one_raw(stmt(
            &format!(
                "UPDATE users AS u SET password_hash = $2, updated_at = now() \
                 WHERE email = $1 RETURNING {USER_COLUMNS}"
            ),
            [email.as_str().into(), password_hash.into()],
        ))
        .await?
        .ok_or(PeopleError::NotFound("no user with that email"))?;
    let user = user(&row)?;
    revoke_all_tokens(&txn, OrgId(user.organization_id), UserId(user.id)).await?;
    txn.commit().await?;
    Ok(user)
}

/// What sign-in needs about an account, found by email across organizations.
#[derive(Debug, Clone)]
pub struct LoginRecord {
    pub user_id: UserId,
    pub org: OrgId,
    pub role: Role,
    pub password_hash: Option<String>,
    pub active: bool,
    pub organization_status: String,
}

pub async fn find_for_login<C: ConnectionTrait>(
    db: &C,
    email: &Email,
) -> Result<Option<LoginRecord>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT u.id, u.organization_id, u.role, u.password_hash, u.active, o.status \
             FROM users u JOIN organizations o ON o.id = u.organization_id WHERE u.email = $1",
            [email.as_str().into()],
        ))
        .await?;
    row.map(|row| {
        let role: String = row.try_get("", "role")?;
        Ok(LoginRecord {
            user_id: UserId(row.try_get("", "id")?),
            org: OrgId(row.try_get("", "organization_id")?),
            role: role.parse().map_err(DbErr::Custom)?,
            password_hash: row.try_get("", "password_hash")?,
            active: row.try_get("", "active")?,
            organization_status: row.try_get("", "status")?,
        })
    })
    .transpose()
}

/// One user of `org`.
pub async fn get_user<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    id: UserId,
) -> Result<User, PeopleError> {
    select_user(db, org, id, "").await
}

async fn select_user<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    id: UserId,
    lock: &str,
) -> Result<User, PeopleError> {
    let row = db
        .query_one_raw(stmt(
            &format!(
                "SELECT {USER_COLUMNS} FROM users u WHERE u.organization_id = $1 AND u.id = $2 {lock}"
            ),
            [org.0.into(), id.0.into()],
        ))
        .await?
        .ok_or(PeopleError::NotFound("no such user"))?;
    Ok(user(&row)?)
}

/// "$3 is `u` or manages a team `u` is in" (the viewer is $3, $4 says they are a manager, $1 is the
/// organization).
macro_rules! person_or_manager {
    () => {
        "(u.id = $3 OR ($4 AND EXISTS ( \
         SELECT 1 FROM team_members m JOIN team_members me ON me.team_id = m.team_id \
         WHERE m.user_id = u.id AND me.user_id = $3 AND me.is_manager \
           AND m.organization_id = $1 AND me.organization_id = $1)))"
    };
}

/// Who may see user `u` — the one statement of the rule: owners and admins see everyone of their
/// organization ($2), everyone sees themselves ($3 is the viewer), managers ($4) see the members
/// of the teams they manage. $1 is the organization.
const VISIBLE: &str = concat!("($2 OR ", person_or_manager!(), ")");

/// [`VISIBLE`] over the parameters of [`visibility_params`], for other modules' queries on a
/// `users u` row; `admins: false` leaves out what owners and admins see by role alone (for what
/// only the person and their managers see).
pub fn visible_sql(admins: bool) -> &'static str {
    if admins {
        VISIBLE
    } else {
        person_or_manager!()
    }
}

/// The parameters $1–$4 of [`VISIBLE`] for `viewer`.
pub fn visibility_params(viewer: &Viewer) -> [sea_orm::Value; 4] {
    [
        viewer.org.0.into(),
        viewer.role.administers().into(),
        viewer.user.0.into(),
        (viewer.role == Role::Manager).into(),
    ]
}

/// The users `viewer` may see ([`VISIBLE`]).
pub async fn list_users<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
) -> Result<Vec<User>, PeopleError> {
    let rows = db
        .query_all_raw(stmt(
            &format!(
                "SELECT {USER_COLUMNS} FROM users u WHERE u.organization_id = $1 AND {VISIBLE} \
                 ORDER BY u.id"
            ),
            visibility_params(viewer),
        ))
        .await?;
    Ok(rows.iter().map(user).collect::<Result<_, _>>()?)
}

/// Who is looking: the signed-in user and their role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    pub org: OrgId,
    pub user: UserId,
    pub role: Role,
}

/// `target`, if `viewer` may read their data ([`VISIBLE`]): `NotFound` when `target` is not a
/// user of the viewer's organization (another organization's ids do not exist here),
/// `Forbidden` when it is but the role does not reach it.
pub async fn check_can_view<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    target: UserId,
) -> Result<User, PeopleError> {
    let mut values = visibility_params(viewer).to_vec();
    values.push(target.0.into());
    let row = db
        .query_one_raw(stmt(
            &format!(
                "SELECT {USER_COLUMNS}, {VISIBLE} AS visible FROM users u \
                 WHERE u.organization_id = $1 AND u.id = $5"
            ),
            values,
        ))
        .await?
        .ok_or(PeopleError::NotFound("no such user"))?;
    if row.try_get::<bool>("", "visible")? {
        Ok(user(&row)?)
    } else {
        Err(PeopleError::Forbidden(
            "your role does not allow reading this person's data".to_owned(),
        ))
    }
}

/// Changes to a user; `None` keeps the current value. `github` is `Some(None)` to unlink.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub active: Option<bool>,
    pub github: Option<Option<GithubLink>>,
}

/// A link to a GitHub identity, by login (resolved against the GitHub users seen) or by id.
#[derive(Debug, Clone)]
pub enum GithubLink {
    Login(String),
    Id(i64),
}

/// Changes a user. Only an owner may make or unmake an owner, or change an owner; nobody can
/// demote or disable the organization's last active owner.
pub async fn update_user<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    target: UserId,
    changes: UserChanges,
) -> Result<User, PeopleError> {
    let current = select_user(db, viewer.org, target, "FOR UPDATE").await?;
    let touches_owner = current.role == Role::Owner || changes.role == Some(Role::Owner);
    if touches_owner && viewer.role != Role::Owner {
        return Err(PeopleError::Forbidden(
            "only an owner can change an owner or make someone owner".to_owned(),
        ));
    }
    let demotes_or_disables_owner = current.role == Role::Owner
        && current.active
        && (changes.role.is_some_and(|r| r != Role::Owner) || changes.active == Some(false));
    if demotes_or_disables_owner {
        let owners = db
            .query_one_raw(stmt(
                "SELECT count(*) AS n FROM users WHERE organization_id = $1 AND role = 'owner' AND active",
                [viewer.org.0.into()],
            ))
            .await?
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0);
        if owners <= 1 {
            return Err(PeopleError::conflict(
                "last_owner",
                "the organization needs at least one active owner",
            ));
        }
    }
    let (github_id, github_login) = match &changes.github {
        None => (current.github_id, current.github_login.clone()),
        Some(None) => (None, None),
        Some(Some(link)) => resolve_github(db, viewer.org, link).await?,
    };
    let display_name = changes
        .display_name
        .as_deref()
        .map(super::display_name)
        .transpose()
        .map_err(|m| PeopleError::invalid("invalid_name", m))?;
    let row = db
        .query_one_raw(stmt(
            &format!(
                "UPDATE users AS u SET display_name = COALESCE($3, display_name), \
                    role = COALESCE($4, role), active = COALESCE($5, active), \
                    github_id = $6, github_login = $7, updated_at = now() \
                 WHERE organization_id = $1 AND id = $2 RETURNING {USER_COLUMNS}"
            ),
            [
                viewer.org.0.into(),
                target.0.into(),
                display_name.into(),
                changes.role.map(|r| r.as_str().to_owned()).into(),
                changes.active.into(),
                github_id.into(),
                github_login.into(),
            ],
        ))
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                PeopleError::conflict(
                    "github_identity_taken",
                    "another user of this organization is linked to that GitHub identity",
                )
            } else {
                PeopleError::Db(e)
            }
        })?
        .ok_or(PeopleError::NotFound("no such user"))?;
    if changes.active == Some(false) {
        revoke_all_tokens(db, viewer.org, target).await?;
    }
    Ok(user(&row)?)
}

/// A login is resolved to the GitHub user seen with it in this organization; an id is taken
/// as given (the person may not have acted yet), with its login when known.
async fn resolve_github<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    link: &GithubLink,
) -> Result<(Option<i64>, Option<String>), PeopleError> {
    let (sql, value): (&str, sea_orm::Value) = match link {
        GithubLink::Login(login) => (
            "SELECT github_id, login FROM github_users WHERE organization_id = $1 AND lower(login) = lower($2)",
            login.clone().into(),
        ),
        GithubLink::Id(id) => (
            "SELECT github_id, login FROM github_users WHERE organization_id = $1 AND github_id = $2",
            (*id).into(),
        ),
    };
    let row = db.query_one_raw(stmt(sql, [org.0.into(), value])).await?;
    match (row, link) {
        (Some(row), _) => Ok((
            Some(row.try_get("", "github_id")?),
            Some(row.try_get("", "login")?),
        )),
        (None, GithubLink::Id(id)) if *id > 0 => Ok((Some(*id), None)),
        (None, GithubLink::Id(_)) => Err(PeopleError::invalid(
            "invalid_github_id",
            "a GitHub id is a positive number",
        )),
        (None, GithubLink::Login(login)) => Err(PeopleError::invalid(
            "unknown_github_login",
            format!(
                "no GitHub user {login:?} has been seen in this organization yet; link by github_id instead"
            ),
        )),
    }
}

/// Ends every sign-in and device of a user (on disable).
pub async fn revoke_all_tokens<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    user: UserId,
) -> Result<(), DbErr> {
    for table in ["refresh_tokens", "devices"] {
        db.execute_raw(stmt(
            &format!(
                "UPDATE {table} SET revoked_at = now() \
                 WHERE organization_id = $1 AND user_id = $2 AND revoked_at IS NULL"
            ),
            [org.0.into(), user.0.into()],
        ))
        .await?;
    }
    Ok(())
}

/// Connects an organization made by hand (`worker admin create-org`) to its GitHub account, so
/// that the GitHub App's events for that account land in it rather than in a new organization.
pub async fn link_github<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    account_id: i64,
    login: &str,
) -> Result<Organization, PeopleError> {
    if account_id <= 0 || login.trim().is_empty() || login.len() > 100 {
        return Err(PeopleError::invalid(
            "invalid_github_account",
            "a GitHub account needs a positive id and a login of 1 to 100 characters",
        ));
    }
    let row = db
        .query_one_raw(stmt(
            &format!(
                "UPDATE organizations SET github_account_id = $2, github_login = $3 \
                 WHERE id = $1 AND (github_account_id IS NULL OR github_account_id = $2) \
                 RETURNING {ORG_COLUMNS}"
            ),
            [org.0.into(), account_id.into(), login.trim().into()],
        ))
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                PeopleError::invalid(
                    "github_account_taken",
                    "another organization already has this GitHub account",
                )
            } else {
                e.into()
            }
        })?
        .ok_or_else(|| {
            PeopleError::invalid(
                "github_account_taken",
                "the organization is already connected to another GitHub account",
            )
        })?;
    Ok(organization(&row)?)
}
