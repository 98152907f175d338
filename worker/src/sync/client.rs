//! DevPulse's GitHub REST client: octocrab signs in as the App (JWT) and as each installation
//! (tokens cached per installation and renewed before they expire); on top of it, DevPulse's own
//! rules — rate limits shared by every replica through PostgreSQL, retries of 5xx with backoff and
//! jitter, conditional requests, `Link` pagination.
//!
//! octocrab's own retry layer is not compiled in (its `retry` feature is off): it retries 429s at
//! once, and a platform that shares one rate limit across replicas must never call again after a
//! limit answer.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use http_body_util::BodyExt;
use jobs::{runner::RetryPolicy, runtime::config::GithubApp, sync as ledger};
use octocrab::{
    Octocrab,
    models::{AppId, InstallationId},
};
use sea_orm::{DatabaseConnection, DbErr};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use url::Url;

use crate::metrics::SyncMetrics;

/// Whose credentials a request uses, and whose rate limit it spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The App itself (JWT): installations, webhook deliveries.
    App,
    /// An installation's token: its repositories' data.
    Installation(i64),
}

impl Scope {
    pub fn key(self) -> String {
        ledger::scope_of(match self {
            Self::App => None,
            Self::Installation(id) => Some(id),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    /// A rate limit: nothing more may be asked in this scope before `until`.
    #[error("rate limited until {until} ({reason})")]
    RateLimited {
        until: DateTime<Utc>,
        reason: String,
    },
    /// An answer that is not a success (5xx only after the retries).
    #[error("GitHub answered {status} to {path}: {message}")]
    Status {
        status: u16,
        path: String,
        message: String,
    },
    #[error("cannot reach GitHub: {0}")]
    Transport(String),
    #[error("GitHub's answer to {path} does not parse: {message}")]
    Decode { path: String, message: String },
    #[error("database: {0}")]
    Database(#[from] DbErr),
}

impl GithubError {
    /// Will not get better by asking again (a malformed answer, an App without access).
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Decode { .. } => true,
            Self::Status { status, .. } => (400..500).contains(status) && *status != 408,
            _ => false,
        }
    }

    /// The resource is not there (deleted repository, access removed).
    pub fn is_gone(&self) -> bool {
        matches!(
            self,
            Self::Status {
                status: 404 | 410,
                ..
            }
        )
    }
}

/// One answer: its status, body, next page and ETag.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub path: String,
    pub body: Vec<u8>,
    /// Path and query of the next page (`Link: <…>; rel="next"`).
    pub next: Option<String>,
    pub etag: Option<String>,
}

impl Answer {
    /// 304: unchanged since the ETag sent.
    pub fn not_modified(&self) -> bool {
        self.status == 304
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T, GithubError> {
        serde_json::from_slice(&self.body).map_err(|e| GithubError::Decode {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Pause {
    until: Option<DateTime<Utc>>,
    checked: std::time::Instant,
}

/// How long this process trusts its copy of a scope's pause before asking PostgreSQL again: a
/// pause another replica records is seen within this, without a query per request.
const PAUSE_RECHECK: Duration = Duration::from_secs(1);

/// Tunables, mostly for tests.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Tries of a request that meets 5xx or transport errors (`max_attempts`), and the waits
    /// between them (the workers' backoff: base × 2^(n−1), capped, equal jitter).
    pub retry: RetryPolicy,
    pub timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(8),
                max_attempts: 4,
                max_attempts_by_kind: Default::default(),
            },
            timeout: Duration::from_secs(30),
        }
    }
}

/// The GitHub App client. Cheap to share (`Arc`); one per worker process.
pub struct Github {
    app: Arc<Octocrab>,
    base: Url,
    /// One client per installation, shared: cloning an `Octocrab` copies its token cache, so a
    /// clone would fetch a token of its own.
    installations: Mutex<HashMap<i64, Arc<Octocrab>>>,
    /// This process's copy of the pauses recorded in `github_rate_limits`, and when each scope
    /// was last looked up there.
    pauses: Mutex<HashMap<Scope, Pause>>,
    db: DatabaseConnection,
    options: ClientOptions,
    metrics: Arc<SyncMetrics>,
}

impl std::fmt::Debug for Github {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Github")
            .field("base", &self.base.as_str())
            .finish()
    }
}

/// Why the App client could not be built (a bad key, a bad URL).
#[derive(Debug, thiserror::Error)]
#[error("GitHub App client: {0}")]
pub struct BuildError(String);

impl Github {
    pub fn new(
        api_url: &Url,
        app: &GithubApp,
        db: DatabaseConnection,
        options: ClientOptions,
        metrics: Arc<SyncMetrics>,
    ) -> Result<Self, BuildError> {
        let key =
            jsonwebtoken::EncodingKey::from_rsa_pem(app.private_key.expose_secret().as_bytes())
                .map_err(|e| {
                    BuildError(format!(
                        "GITHUB_APP_PRIVATE_KEY is not an RSA private key in PEM: {e}"
                    ))
                })?;
        let crab = Octocrab::builder()
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(options.timeout))
            .set_write_timeout(Some(options.timeout))
            .base_uri(api_url.as_str())
            .map_err(|e| BuildError(format!("GITHUB_API_URL: {e}")))?
            .app(AppId(app.app_id), key)
            .build()
            .map_err(|e| BuildError(e.to_string()))?;
        Ok(Self {
            app: Arc::new(crab),
            base: api_url.clone(),
            installations: Mutex::default(),
            pauses: Mutex::default(),
            db,
            options,
            metrics,
        })
    }

    pub fn metrics(&self) -> &SyncMetrics {
        &self.metrics
    }

    fn crab(&self, scope: Scope) -> Result<Arc<Octocrab>, GithubError> {
        match scope {
            Scope::App => Ok(self.app.clone()),
            Scope::Installation(id) => {
                let mut map = self
                    .installations
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(crab) = map.get(&id) {
                    return Ok(crab.clone());
                }
                let crab = Arc::new(
                    self.app
                        .installation(InstallationId(u64::try_from(id).unwrap_or_default()))
                        .map_err(|e| GithubError::Transport(e.to_string()))?,
                );
                map.insert(id, crab.clone());
                Ok(crab)
            }
        }
    }

    /// Makes sure the installation's token lasts at least `margin` more (renewing it now rather
    /// than in the middle of a page).
    pub async fn renew_token(
        &self,
        installation: i64,
        margin: Duration,
    ) -> Result<(), GithubError> {
        let scope = Scope::Installation(installation);
        self.check_pause(scope).await?;
        let crab = self.crab(scope)?;
        let margin = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::minutes(5));
        match crab.installation_token_with_buffer(margin).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.octocrab_error("access_tokens", e).await),
        }
    }

    /// Fails fast, without calling, while `scope` is paused (here or by another replica).
    pub async fn check_pause(&self, scope: Scope) -> Result<(), GithubError> {
        let now = Utc::now();
        let local = self
            .pauses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&scope)
            .copied();
        if let Some(until) = local.and_then(|p| p.until).filter(|u| *u > now) {
            return Err(GithubError::RateLimited {
                until,
                reason: "paused".to_owned(),
            });
        }
        if local.is_some_and(|p| p.checked.elapsed() < PAUSE_RECHECK) {
            return Ok(());
        }
        let recorded = ledger::paused(&self.db, &scope.key()).await?;
        self.pauses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                scope,
                Pause {
                    until: recorded.as_ref().map(|p| p.until),
                    checked: std::time::Instant::now(),
                },
            );
        match recorded {
            Some(pause) => Err(GithubError::RateLimited {
                until: pause.until,
                reason: pause.reason,
            }),
            None => Ok(()),
        }
    }

    fn remember(&self, scope: Scope, until: DateTime<Utc>) {
        let mut pauses = self
            .pauses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = pauses.entry(scope).or_insert(Pause {
            until: Some(until),
            checked: std::time::Instant::now(),
        });
        entry.until = Some(entry.until.map_or(until, |u| u.max(until)));
    }

    async fn pause(
        &self,
        scope: Scope,
        until: DateTime<Utc>,
        remaining: Option<i64>,
        reason: &str,
    ) -> Result<(), GithubError> {
        self.remember(scope, until);
        self.metrics.rate_limited(scope);
        ledger::pause(&self.db, &scope.key(), until, remaining, reason).await?;
        tracing::warn!(scope = %scope.key(), %until, reason, "GitHub rate limit: pausing");
        Ok(())
    }

    /// `GET path` (path and query, relative to the API URL); `etag` makes it conditional.
    pub async fn get(
        &self,
        scope: Scope,
        path: &str,
        etag: Option<&str>,
    ) -> Result<Answer, GithubError> {
        self.send(scope, http::Method::GET, path, etag, None).await
    }

    pub async fn post(
        &self,
        scope: Scope,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Answer, GithubError> {
        self.send(scope, http::Method::POST, path, None, Some(body))
            .await
    }

    async fn send(
        &self,
        scope: Scope,
        method: http::Method,
        path: &str,
        etag: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, GithubError> {
        let uri: Uri = path.parse().map_err(|_| GithubError::Status {
            status: 400,
            path: path.to_owned(),
            message: "not a valid request path".to_owned(),
        })?;
        let mut tries = 0;
        loop {
            tries += 1;
            self.check_pause(scope).await?;
            let crab = self.crab(scope)?;
            let sent = match method {
                http::Method::POST => crab._post(uri.clone(), body).await,
                _ => {
                    let mut headers = HeaderMap::new();
                    headers.insert(
                        header::ACCEPT,
                        HeaderValue::from_static("application/vnd.github+json"),
                    );
                    if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(t).ok()) {
                        headers.insert(header::IF_NONE_MATCH, tag);
                    }
                    crab._get_with_headers(uri.clone(), Some(headers)).await
                }
            };
            let error = match sent {
                Ok(response) => match self.answer(scope, path, response).await {
                    Ok(answer) => {
                        self.metrics.request(scope, answer.status);
                        return Ok(answer);
                    }
                    Err(e) => e,
                },
                Err(e) => self.octocrab_error(path, e).await,
            };
            let retryable = match &error {
                GithubError::Status { status, .. } => *status >= 500,
                GithubError::Transport(_) => true,
                _ => false,
            };
            if let GithubError::Status { status, .. } = &error {
                self.metrics.request(scope, *status);
            }
            if !retryable || tries >= self.options.retry.max_attempts {
                return Err(error);
            }
            let wait = self
                .options
                .retry
                .delay(i32::try_from(tries).unwrap_or(i32::MAX));
            tracing::info!(scope = %scope.key(), path, error = %error, ?wait, "GitHub request failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn answer(
        &self,
        scope: Scope,
        path: &str,
        response: http::Response<
            http_body_util::combinators::BoxBody<bytes::Bytes, octocrab::Error>,
        >,
    ) -> Result<Answer, GithubError> {
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| GithubError::Transport(e.to_string()))?
            .to_bytes()
            .to_vec();
        let status = parts.status;
        if let Some(limit) = rate_limit(status, &parts.headers, &body, Utc::now()) {
            self.pause(scope, limit.until, limit.remaining, &limit.reason)
                .await?;
            if limit.refused {
                return Err(GithubError::RateLimited {
                    until: limit.until,
                    reason: limit.reason,
                });
            }
        }
        if !(status.is_success() || status == StatusCode::NOT_MODIFIED) {
            return Err(GithubError::Status {
                status: status.as_u16(),
                path: path.to_owned(),
                message: message_of(&body),
            });
        }
        let next = next_link(&parts.headers)
            .map(|link| self.relative(&link))
            .transpose()?;
        Ok(Answer {
            status: status.as_u16(),
            path: path.to_owned(),
            body,
            next,
            etag: parts
                .headers
                .get(header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        })
    }

    /// A `Link` URL as a path and query on the API (refusing one that points elsewhere:
    /// credentials only ever go to the configured API).
    fn relative(&self, link: &str) -> Result<String, GithubError> {
        let url = Url::parse(link).map_err(|e| GithubError::Decode {
            path: link.to_owned(),
            message: format!("Link is not a URL: {e}"),
        })?;
        if url.host_str() != self.base.host_str()
            || url.port_or_known_default() != self.base.port_or_known_default()
        {
            return Err(GithubError::Decode {
                path: link.to_owned(),
                message: "Link points outside GITHUB_API_URL".to_owned(),
            });
        }
        Ok(match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        })
    }

    /// An error octocrab raised itself: a transport failure, or the installation-token request
    /// (made with the App's JWT) answered with an error.
    async fn octocrab_error(&self, path: &str, e: octocrab::Error) -> GithubError {
        if let octocrab::Error::GitHub { source, .. } = &e {
            let headers = source.headers.clone().unwrap_or_default();
            if let Some(limit) = rate_limit(
                source.status_code,
                &headers,
                source.message.as_bytes(),
                Utc::now(),
            ) {
                // The token request spends the App's limit, not the installation's.
                if let Err(db) = self
                    .pause(Scope::App, limit.until, limit.remaining, &limit.reason)
                    .await
                {
                    return db;
                }
                return GithubError::RateLimited {
                    until: limit.until,
                    reason: limit.reason,
                };
            }
            return GithubError::Status {
                status: source.status_code.as_u16(),
                path: path.to_owned(),
                message: format!("installation token: {}", source.message),
            };
        }
        match e {
            octocrab::Error::Serde { .. } | octocrab::Error::Json { .. } => GithubError::Decode {
                path: path.to_owned(),
                message: e.to_string(),
            },
            _ => GithubError::Transport(e.to_string()),
        }
    }
}

/// What an answer says about the rate limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub until: DateTime<Utc>,
    pub remaining: Option<i64>,
    pub reason: String,
    /// The request itself was refused (403/429); otherwise it succeeded with the last call.
    pub refused: bool,
}

fn header_i64(headers: &HeaderMap, name: &str) -> Option<i64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// GitHub's rate-limit rules: a 403/429 with `Retry-After` waits that long (secondary limit);
/// with `X-RateLimit-Remaining: 0` until `X-RateLimit-Reset`; a 429, or a 403 whose message
/// says "rate limit", without either waits a minute. A success that spent the last call pauses
/// until the reset too. Each pause gets a tenth of its length (at most 5 s) of jitter, so replicas
/// and installations do not all resume at the same instant.
pub fn rate_limit(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Option<Limit> {
    let remaining = header_i64(headers, "x-ratelimit-remaining");
    let reset = header_i64(headers, "x-ratelimit-reset")
        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0));
    let retry_after = header_i64(headers, "retry-after").filter(|s| *s >= 0);
    let refused = status == StatusCode::FORBIDDEN || status == StatusCode::TOO_MANY_REQUESTS;
    let (until, reason) = if refused {
        if let Some(seconds) = retry_after {
            (
                now + chrono::Duration::seconds(seconds),
                format!("{} with Retry-After: {seconds}", status.as_u16()),
            )
        } else if remaining == Some(0) {
            (
                reset.unwrap_or(now + chrono::Duration::minutes(1)),
                "primary rate limit exhausted".to_owned(),
            )
        } else if status == StatusCode::TOO_MANY_REQUESTS
            || String::from_utf8_lossy(body)
                .to_ascii_lowercase()
                .contains("rate limit")
        {
            (
                now + chrono::Duration::minutes(1),
                "secondary rate limit".to_owned(),
            )
        } else {
            return None;
        }
    } else if remaining == Some(0) && (status.is_success() || status == StatusCode::NOT_MODIFIED) {
        (
            reset.unwrap_or(now + chrono::Duration::minutes(1)),
            "primary rate limit spent".to_owned(),
        )
    } else {
        return None;
    };
    let until = until.max(now);
    let spread = ((until - now).num_milliseconds() / 10).clamp(1, 5_000);
    let jitter = chrono::Duration::milliseconds(
        i64::try_from(rand::random::<u64>() % u64::try_from(spread).unwrap_or(1))
            .unwrap_or_default(),
    );
    Some(Limit {
        until: until + jitter,
        remaining,
        reason,
        refused,
    })
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|part| {
            let (url, params) = part.split_once(';')?;
            params
                .split(';')
                .any(|p| {
                    let p = p.trim();
                    p == "rel=\"next\"" || p == "rel=next"
                })
                .then(|| {
                    url.trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_owned()
                })
        })
}

fn message_of(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Message {
        message: String,
    }
    serde_json::from_slice::<Message>(body)
        .map(|m| m.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).expect("header"));
        }
        map
    }

    #[test]
    fn limit_answers_pause_until_github_says() {
        let now = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("time");
        let jitter = chrono::Duration::seconds(5);
        let primary = rate_limit(
            StatusCode::FORBIDDEN,
            &headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1700000600"),
            ]),
            b"{}",
            now,
        )
        .expect("primary");
        assert!(primary.refused);
        let reset = DateTime::<Utc>::from_timestamp(1_700_000_600, 0).expect("reset");
        assert!(primary.until >= reset && primary.until <= reset + jitter);

        let secondary = rate_limit(
            StatusCode::FORBIDDEN,
            &headers(&[("retry-after", "30"), ("x-ratelimit-remaining", "12")]),
            b"{}",
            now,
        )
        .expect("secondary");
        assert!(secondary.until >= now + chrono::Duration::seconds(30));

        let worded = rate_limit(
            StatusCode::FORBIDDEN,
            &HeaderMap::new(),
            br#"{"message":"You have exceeded a secondary rate limit"}"#,
            now,
        )
        .expect("secondary by message");
        assert!(worded.until >= now + chrono::Duration::minutes(1));

        assert_eq!(
            rate_limit(
                StatusCode::FORBIDDEN,
                &headers(&[("x-ratelimit-remaining", "4000")]),
                br#"{"message":"Resource not accessible by integration"}"#,
                now
            ),
            None,
            "a plain 403 is a permission problem, not a limit"
        );
        let spent = rate_limit(
            StatusCode::OK,
            &headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1700000600"),
            ]),
            b"[]",
            now,
        )
        .expect("spent");
        assert!(!spent.refused, "the answer itself is good");
        assert_eq!(
            rate_limit(
                StatusCode::OK,
                &headers(&[("x-ratelimit-remaining", "1")]),
                b"[]",
                now
            ),
            None
        );
    }

    #[test]
    fn next_pages_come_from_link_headers() {
        let h = headers(&[(
            "link",
            "<https://api.github.com/repositories/1/pulls?page=3>; rel=\"next\", <https://api.github.com/repositories/1/pulls?page=9>; rel=\"last\"",
        )]);
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/repositories/1/pulls?page=3")
        );
        let last = headers(&[(
            "link",
            "<https://api.github.com/x?page=1>; rel=\"prev\", <https://api.github.com/x?page=1>; rel=\"first\"",
        )]);
        assert_eq!(next_link(&last), None);
    }
}
