//! A per-process cache of rows the writers keep writing unchanged (an organization, its
//! repositories and its people appear in every event), so a job skips statements that would
//! change nothing.
//!
//! Correct because every cached value is monotonic in the database: an organization id never
//! changes, a repository's snapshot time only grows, and a user is rewritten only when its
//! login or type differs. What a transaction wrote is cached only after it commits
//! ([`Session::finish`], [`Cache::absorb`]); a job that fails clears the cache ([`Cache::clear`]), so a row
//! deleted behind our back costs one retry, never a wrong answer.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::{
    organizations::{self, AccountRef},
    repositories::{self, RepositorySnapshot},
    users::{self, GithubUser},
};

/// Bounds each map; on overflow it is simply emptied (entries are cheap to rebuild).
const MAX_ENTRIES: usize = 100_000;

/// An organization: (id, installation id known).
type OrgEntry = (i64, bool);
/// A repository: (organization id, newest snapshot time written, default branch known).
type RepoEntry = (i64, Option<DateTime<Utc>>, bool);
/// A user: (login, type, bot), keyed by (organization id, user id).
type UserKey = (i64, i64);
type UserEntry = (String, String, bool);

#[derive(Debug, Default)]
struct Maps {
    /// By GitHub account id.
    organizations: HashMap<i64, OrgEntry>,
    /// By repository id.
    repositories: HashMap<i64, RepoEntry>,
    users: HashMap<UserKey, UserEntry>,
}

/// Shared by the jobs of one process; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Cache(Arc<Mutex<Maps>>);

impl Cache {
    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn clear(&self) {
        *self.maps() = Maps::default();
    }

    /// Caches what a committed transaction wrote.
    pub fn absorb(&self, staged: Staged) {
        let mut maps = self.maps();
        if maps.organizations.len() + maps.repositories.len() + maps.users.len() > MAX_ENTRIES {
            *maps = Maps::default();
        }
        maps.organizations.extend(staged.organizations);
        for (id, (org, at, branch)) in staged.repositories {
            let entry = maps.repositories.entry(id).or_insert((org, at, branch));
            entry.0 = org;
            entry.1 = entry.1.max(at);
            entry.2 |= branch;
        }
        maps.users.extend(staged.users);
    }
}

/// Facts a transaction established, cached once it commits ([`Cache::absorb`]).
#[derive(Debug, Default)]
pub struct Staged {
    organizations: Vec<(i64, OrgEntry)>,
    repositories: Vec<(i64, RepoEntry)>,
    users: Vec<(UserKey, UserEntry)>,
}

/// The writers' view of one transaction: the connection plus the cache.
#[derive(Debug)]
pub struct Session<'a, C> {
    db: &'a C,
    cache: Cache,
    staged: Staged,
}

impl<'a, C: ConnectionTrait> Session<'a, C> {
    pub fn new(db: &'a C, cache: Cache) -> Self {
        Self {
            db,
            cache,
            staged: Staged::default(),
        }
    }

    pub fn db(&self) -> &'a C {
        self.db
    }

    /// What this session wrote; hand it to [`Cache::absorb`] once the transaction committed.
    pub fn finish(self) -> Staged {
        self.staged
    }

    /// [`organizations::ensure`], skipped when this process already knows the organization.
    pub async fn organization(&mut self, account: &AccountRef) -> Result<i64, DbErr> {
        let cached = self
            .cache
            .maps()
            .organizations
            .get(&account.account_id)
            .copied();
        if let Some((id, has_installation)) = cached
            && (has_installation || account.installation_id.is_none())
        {
            return Ok(id);
        }
        let id = organizations::ensure(self.db, account).await?;
        self.staged.organizations.push((
            account.account_id,
            (
                id,
                account.installation_id.is_some() || cached.is_some_and(|c| c.1),
            ),
        ));
        Ok(id)
    }

    /// [`repositories::upsert`], skipped when the snapshot is no newer than one already written.
    pub async fn repository(
        &mut self,
        organization_id: i64,
        repo: &RepositorySnapshot,
    ) -> Result<(), DbErr> {
        let cached = self.cache.maps().repositories.get(&repo.github_id).copied();
        if let Some((org, at, branch)) = cached {
            let not_newer = match (repo.updated_at, at) {
                (None, _) => true,
                (Some(new), Some(old)) => new <= old,
                (Some(_), None) => false,
            };
            if org == organization_id && not_newer && (branch || repo.default_branch.is_none()) {
                return Ok(());
            }
        }
        repositories::upsert(self.db, organization_id, repo).await?;
        self.staged.repositories.push((
            repo.github_id,
            (
                organization_id,
                repo.updated_at,
                repo.default_branch.is_some(),
            ),
        ));
        Ok(())
    }

    /// [`users::upsert`] of the users not already known exactly so.
    pub async fn users(
        &mut self,
        organization_id: i64,
        people: &[GithubUser],
    ) -> Result<(), DbErr> {
        let fresh: Vec<GithubUser> = {
            let maps = self.cache.maps();
            people
                .iter()
                .filter(|u| {
                    maps.users.get(&(organization_id, u.id))
                        != Some(&(u.login.clone(), u.user_type.clone(), u.is_bot))
                })
                .cloned()
                .collect()
        };
        if fresh.is_empty() {
            return Ok(());
        }
        users::upsert(self.db, organization_id, fresh.iter().cloned()).await?;
        self.staged.users.extend(
            fresh
                .into_iter()
                .map(|u| ((organization_id, u.id), (u.login, u.user_type, u.is_bot))),
        );
        Ok(())
    }
}
