//! The API's configuration: the shared settings plus what only the HTTP side needs.

use std::{net::SocketAddr, time::Duration};

use jobs::runtime::config::{CommonConfig, ConfigError, Vars};

use crate::{auth::JwtKeys, signature::WebhookSecrets};

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub common: CommonConfig,
    pub webhook_secrets: WebhookSecrets,
    /// `API_ADDR`, default `127.0.0.1:8080`.
    pub addr: SocketAddr,
    /// `SHUTDOWN_GRACE`: how long in-flight requests may take after SIGTERM.
    pub shutdown_grace: Duration,
    /// `WEBHOOK_BODY_TIMEOUT`: how long a client may take to send a body (default 30 s).
    pub body_timeout: Duration,
    /// `WEBHOOK_BODY_BUDGET`: bytes of webhook bodies held in memory at once, across requests
    /// (default 256 MiB); further requests wait.
    pub body_budget: usize,
    /// `JWT_SECRET`: signs and checks access tokens (HS256, at least 32 bytes).
    pub jwt: JwtKeys,
    /// `TRUST_X_FORWARDED_FOR`: take the client address for sign-in throttling from the last
    /// `X-Forwarded-For` entry (set only behind a proxy that writes it). Default false.
    pub trust_forwarded_for: bool,
    /// `PUBLIC_URL`: where people reach DevPulse, for invite links (default `http://API_ADDR`).
    pub public_url: String,
    /// `WEB_DIR`: the built web dashboard served at `/` (default `web/dist`, made by
    /// `npm --prefix web run build`; scripts/up builds it).
    pub web_dir: std::path::PathBuf,
    /// `READ_CACHE_TTL`: the longest an organization-wide dashboard answer is reused (default
    /// 60 s; a change to the precomputed tables drops it at once).
    pub read_cache_ttl: Duration,
}

impl ApiConfig {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_vars(vars)?;
        let raw = vars.required("GITHUB_WEBHOOK_SECRET", "a-long-random-string")?;
        let webhook_secrets = WebhookSecrets::from_list(raw).ok_or_else(|| {
            ConfigError::new(
                "GITHUB_WEBHOOK_SECRET",
                "holds no secret (expected one secret, or several separated by commas)",
            )
        })?;
        let addr = vars.parse_or("API_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?;
        let shutdown_grace = vars.duration_or("SHUTDOWN_GRACE", Duration::from_secs(10))?;
        let body_timeout = vars.duration_or("WEBHOOK_BODY_TIMEOUT", Duration::from_secs(30))?;
        if body_timeout.is_zero() {
            return Err(ConfigError::new(
                "WEBHOOK_BODY_TIMEOUT",
                "must be more than 0",
            ));
        }
        let body_budget = vars.parse_or("WEBHOOK_BODY_BUDGET", 256 * 1024 * 1024usize)?;
        if body_budget < 1024 * 1024 {
            return Err(ConfigError::new(
                "WEBHOOK_BODY_BUDGET",
                "must be at least 1048576 (1 MiB)",
            ));
        }
        let jwt_secret = vars.required("JWT_SECRET", "a-random-string-of-at-least-32-bytes")?;
        if jwt_secret.len() < 32 {
            return Err(ConfigError::new(
                "JWT_SECRET",
                "must be at least 32 bytes (e.g. `openssl rand -hex 32`)",
            ));
        }
        let jwt = JwtKeys::new(jwt_secret.as_bytes());
        let trust_forwarded_for = vars.parse_or("TRUST_X_FORWARDED_FOR", false)?;
        let public_url = match vars.get("PUBLIC_URL") {
            Some(raw) => {
                let url = url::Url::parse(raw)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        ConfigError::new(
                            "PUBLIC_URL",
                            "must be an http(s) URL, e.g. https://devpulse.example.com",
                        )
                    })?;
                url.as_str().trim_end_matches('/').to_owned()
            }
            None => format!("http://{addr}"),
        };
        Ok(Self {
            common,
            webhook_secrets,
            addr,
            shutdown_grace,
            body_timeout,
            body_budget,
            jwt,
            trust_forwarded_for,
            public_url,
            web_dir: vars
                .get("WEB_DIR")
                .map_or_else(|| "web/dist".into(), std::path::PathBuf::from),
            read_cache_ttl: vars.duration_or("READ_CACHE_TTL", Duration::from_secs(60))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars::from_pairs([
            (
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/devpulse",
            ),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("GITHUB_WEBHOOK_SECRET", "one,two"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ])
    }

    #[test]
    fn defaults() {
        let config = ApiConfig::from_vars(&vars()).expect("valid");
        assert_eq!(config.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.webhook_secrets.len(), 2);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let mut v = vars();
        v.set("API_ADDR", "localhost");
        assert_eq!(ApiConfig::from_vars(&v).expect_err("addr").var, "API_ADDR");
        let mut v = vars();
        v.set("GITHUB_WEBHOOK_SECRET", ",");
        assert_eq!(
            ApiConfig::from_vars(&v).expect_err("secret").var,
            "GITHUB_WEBHOOK_SECRET"
        );
        let mut v = vars();
        v.set("JWT_SECRET", "short");
        assert_eq!(ApiConfig::from_vars(&v).expect_err("jwt").var, "JWT_SECRET");
        let mut v = vars();
        v.set("PUBLIC_URL", "ftp://x");
        assert_eq!(ApiConfig::from_vars(&v).expect_err("url").var, "PUBLIC_URL");
        let v = Vars::from_pairs([
            ("DATABASE_URL", "postgres://x/y"),
            ("REDIS_URL", "redis://x"),
        ]);
        assert_eq!(
            ApiConfig::from_vars(&v).expect_err("missing").var,
            "GITHUB_WEBHOOK_SECRET"
        );
    }
}
