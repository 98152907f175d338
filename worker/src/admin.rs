//! `worker admin …`: bootstrap organizations and users from the command line (before anyone can
//! sign in), and recompute attendance summaries on demand.

use std::io::Write;

use chrono::NaiveDate;
use jobs::{
    attendance::summaries,
    people::{
        Email, OrgId, PeopleError, Role,
        accounts::{self, NewUser},
        secrets::Password,
    },
};
use sea_orm::{DatabaseConnection, DbErr};
use secrecy::ExposeSecret;

/// An organization named on the command line: its id, or its exact name.
#[derive(Debug, Clone)]
pub enum OrgRef {
    Id(i64),
    Name(String),
}

impl OrgRef {
    pub fn parse(raw: &str) -> Self {
        raw.trim()
            .parse()
            .map_or_else(|_| OrgRef::Name(raw.trim().to_owned()), OrgRef::Id)
    }
}

#[derive(Debug)]
pub enum AdminCommand {
    CreateOrg {
        name: String,
        time_zone: String,
        json: bool,
    },
    CreateUser {
        org: OrgRef,
        email: Email,
        display_name: Option<String>,
        role: Role,
        /// From `--password-stdin`; without it the user gets an invite link.
        password: Option<Password>,
        /// Where invite links point (`PUBLIC_URL`).
        public_url: String,
        json: bool,
    },
    SetPassword {
        email: Email,
        password: Password,
        json: bool,
    },
    RecomputeAttendance {
        org: OrgRef,
        from: NaiveDate,
        to: NaiveDate,
        json: bool,
    },
    LinkGithub {
        org: OrgRef,
        account_id: i64,
        login: String,
        json: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    People(#[from] PeopleError),
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error("no organization {0}")]
    NoSuchOrg(String),
    #[error("several organizations are named {0}; pass the id instead")]
    AmbiguousOrg(String),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

pub async fn execute(
    db: &DatabaseConnection,
    command: AdminCommand,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    match command {
        AdminCommand::CreateOrg {
            name,
            time_zone,
            json,
        } => {
            let org = accounts::create_org(db, &name, &time_zone).await?;
            if json {
                writeln!(out, "{}", serde_json::json!({ "organization_id": org.id }))?;
            } else {
                writeln!(
                    out,
                    "created organization {} ({:?}, time zone {})",
                    org.id, org.name, org.time_zone
                )?;
            }
        }
        AdminCommand::CreateUser {
            org,
            email,
            display_name,
            role,
            password,
            public_url,
            json,
        } => {
            let org = resolve(db, &org).await?;
            let display_name = display_name.unwrap_or_else(|| {
                email
                    .as_str()
                    .split('@')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            });
            let hash = match password {
                Some(p) => Some(hash(p).await?),
                None => None,
            };
            let new = NewUser {
                email,
                display_name,
                role,
            };
            let created = accounts::create_user(db, org, &new, hash).await?;
            let invite = created.invite.as_ref().map(|i| {
                let token = i.token.text.expose_secret().to_owned();
                let url = format!("{}/invite#{token}", public_url.trim_end_matches('/'));
                (token, url, i.expires_at)
            });
            if json {
                let mut value = serde_json::json!({
                    "organization_id": org.0,
                    "user_id": created.user.id,
                });
                if let Some((token, url, expires_at)) = &invite {
                    value["invite_token"] = token.clone().into();
                    value["invite_url"] = url.clone().into();
                    value["invite_expires_at"] = expires_at.to_rfc3339().into();
                }
                writeln!(out, "{value}")?;
            } else {
                writeln!(
                    out,
                    "created user {} ({}, {}) in organization {}",
                    created.user.id, created.user.email, created.user.role, org
                )?;
                if let Some((token, url, expires_at)) = &invite {
                    writeln!(
                        out,
                        "invite link (shown once, valid until {expires_at}): {url}"
                    )?;
                    writeln!(
                        out,
                        "or: curl -X POST {}/api/v1/invites/accept -H 'content-type: application/json' \
                         -d '{{\"token\": \"{token}\", \"password\": \"<at least 12 characters>\"}}'",
                        public_url.trim_end_matches('/')
                    )?;
                }
            }
        }
        AdminCommand::SetPassword {
            email,
            password,
            json,
        } => {
            let user = accounts::set_password(db, &email, hash(password).await?).await?;
            if json {
                writeln!(out, "{}", serde_json::json!({ "user_id": user.id }))?;
            } else {
                writeln!(
                    out,
                    "password of {} set; their sign-ins and devices were ended",
                    user.email
                )?;
            }
        }
        AdminCommand::LinkGithub {
            org,
            account_id,
            login,
            json,
        } => {
            let org = resolve(db, &org).await?;
            let org = accounts::link_github(db, org, account_id, &login).await?;
            if json {
                writeln!(out, "{}", serde_json::json!({ "organization_id": org.id }))?;
            } else {
                writeln!(
                    out,
                    "organization {} now receives the events of GitHub account {login} ({account_id})",
                    org.id
                )?;
            }
        }
        AdminCommand::RecomputeAttendance {
            org,
            from,
            to,
            json,
        } => {
            let org = resolve(db, &org).await?;
            let written = summaries::recompute_range(db, org, from, to).await?;
            if json {
                writeln!(out, "{}", serde_json::json!({ "summaries": written }))?;
            } else {
                writeln!(out, "recomputed {from} to {to}: {written} summaries")?;
            }
        }
    }
    Ok(())
}

pub async fn resolve(db: &DatabaseConnection, org: &OrgRef) -> Result<OrgId, AdminError> {
    use entities::organization::{Column, Entity};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
    let (filter, shown) = match org {
        OrgRef::Id(id) => (Column::Id.eq(*id), id.to_string()),
        OrgRef::Name(name) => (Column::Name.eq(name.as_str()), format!("{name:?}")),
    };
    let ids: Vec<i64> = Entity::find()
        .filter(filter)
        .select_only()
        .column(Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    match ids.as_slice() {
        [id] => Ok(OrgId(*id)),
        [] => Err(AdminError::NoSuchOrg(shown)),
        _ => Err(AdminError::AmbiguousOrg(shown)),
    }
}

/// argon2 on a blocking thread: it takes a core for tens of milliseconds.
async fn hash(password: Password) -> Result<String, DbErr> {
    tokio::task::spawn_blocking(move || password.hash())
        .await
        .map_err(|e| DbErr::Custom(format!("hashing: {e}")))
}
