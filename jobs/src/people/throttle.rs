//! Failed sign-ins counted per account and per client address in PostgreSQL, so every api
//! replica enforces the same limit (an in-process limiter would multiply it by the replicas).

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbErr};

use crate::domain::stmt;

/// Limits on failed sign-ins within a fixed window.
#[derive(Debug, Clone, Copy)]
pub struct LoginThrottle {
    pub window: Duration,
    /// Failures allowed per account (email) in a window.
    pub per_account: u32,
    /// Failures allowed per client address in a window (several people may share one).
    pub per_address: u32,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(15 * 60),
            per_account: 5,
            per_address: 20,
        }
    }
}

/// Which limit was hit, and when it lifts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    pub scope: Scope,
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Account,
    Address,
}

impl LoginThrottle {
    /// `Err` when either limit is already used up: the password is then not even checked.
    pub async fn check<C: ConnectionTrait>(
        &self,
        db: &C,
        account: &str,
        address: &str,
    ) -> Result<Result<(), Blocked>, DbErr> {
        let rows = db
            .query_all_raw(stmt(
                "SELECT scope, failures, \
                    EXTRACT(EPOCH FROM window_started_at + make_interval(secs => $3) - now())::float8 AS left \
                 FROM login_failures \
                 WHERE ((scope = 'account' AND key = $1) OR (scope = 'address' AND key = $2)) \
                   AND window_started_at > now() - make_interval(secs => $3)",
                [
                    account.into(),
                    address.into(),
                    self.window.as_secs_f64().into(),
                ],
            ))
            .await?;
        for row in rows {
            let scope: String = row.try_get("", "scope")?;
            let failures: i32 = row.try_get("", "failures")?;
            let (scope, limit) = if scope == "account" {
                (Scope::Account, self.per_account)
            } else {
                (Scope::Address, self.per_address)
            };
            if u32::try_from(failures).unwrap_or(0) >= limit {
                let left: f64 = row.try_get("", "left")?;
                return Ok(Err(Blocked {
                    scope,
                    retry_after: Duration::from_secs_f64(left.max(1.0).ceil()),
                }));
            }
        }
        Ok(Ok(()))
    }

    /// Counts one failure against both the account and the address.
    pub async fn record_failure<C: ConnectionTrait>(
        &self,
        db: &C,
        account: &str,
        address: &str,
    ) -> Result<(), DbErr> {
        db.execute_raw(stmt(
            "INSERT INTO login_failures AS f (scope, key, window_started_at, failures) \
             VALUES ('account', $1, now(), 1), ('address', $2, now(), 1) \
             ON CONFLICT (scope, key) DO UPDATE SET \
                failures = CASE WHEN f.window_started_at <= now() - make_interval(secs => $3) \
                    THEN 1 ELSE f.failures + 1 END, \
                window_started_at = CASE WHEN f.window_started_at <= now() - make_interval(secs => $3) \
                    THEN now() ELSE f.window_started_at END",
            [
                account.into(),
                address.into(),
                self.window.as_secs_f64().into(),
            ],
        ))
        .await?;
        Ok(())
    }

    /// A successful sign-in clears the account's failures (not the address's).
    pub async fn clear_account<C: ConnectionTrait>(
        &self,
        db: &C,
        account: &str,
    ) -> Result<(), DbErr> {
        db.execute_raw(stmt(
            "DELETE FROM login_failures WHERE scope = 'account' AND key = $1",
            [account.into()],
        ))
        .await?;
        Ok(())
    }

    /// Forgets windows that ended (run by the worker's housekeeping).
    pub async fn forget_expired<C: ConnectionTrait>(&self, db: &C) -> Result<u64, DbErr> {
        Ok(db
            .execute_raw(stmt(
                "DELETE FROM login_failures WHERE window_started_at <= now() - make_interval(secs => $1)",
                [self.window.as_secs_f64().into()],
            ))
            .await?
            .rows_affected())
    }
}
