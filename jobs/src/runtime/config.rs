//! Typed configuration read once from the environment (and an optional `.env`), validated
//! up front so a bad value stops start-up with one line naming the variable.

use std::{collections::HashMap, fmt, str::FromStr, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// A configuration problem, always about one variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {var} {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

impl ConfigError {
    pub fn new(var: &'static str, problem: impl Into<String>) -> Self {
        Self {
            var,
            problem: problem.into(),
        }
    }
}

/// The variables a process sees. Built from the real environment in `main`, from a map in tests.
#[derive(Clone, Default)]
pub struct Vars(HashMap<String, String>);

impl fmt::Debug for Vars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: show names only.
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Vars {
    /// The process environment, after loading `.env` from the working directory if present
    /// (real environment variables win over `.env`).
    pub fn from_env() -> Self {
        let _ = dotenvy::dotenv();
        Self(std::env::vars().collect())
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    /// The value, with an empty string treated as unset.
    pub fn get(&self, var: &str) -> Option<&str> {
        self.0
            .get(var)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, var: &'static str, example: &str) -> Result<&str, ConfigError> {
        self.get(var)
            .ok_or_else(|| ConfigError::new(var, format!("is not set (e.g. {var}={example})")))
    }

    /// A parsed value, or `default` when unset.
    pub fn parse_or<T>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.get(var) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e| ConfigError::new(var, format!("is malformed ({raw:?}): {e}"))),
        }
    }

    /// A duration such as `500ms`, `10s`, `5m`; a bare number means seconds.
    pub fn duration_or(
        &self,
        var: &'static str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(raw) => parse_duration(raw.trim()).ok_or_else(|| {
                ConfigError::new(
                    var,
                    format!("is malformed ({raw:?}): expected e.g. 500ms, 10s or 5m"),
                )
            }),
        }
    }

    /// A URL with one of the given schemes, kept secret because it may hold a password.
    pub fn url(
        &self,
        var: &'static str,
        schemes: &[&str],
        example: &str,
    ) -> Result<SecretUrl, ConfigError> {
        let raw = self.required(var, example)?;
        let url = Url::parse(raw.trim()).map_err(|e| {
            ConfigError::new(
                var,
                format!("is not a valid URL ({e}); expected e.g. {example}"),
            )
        })?;
        if !schemes.contains(&url.scheme()) {
            return Err(ConfigError::new(
                var,
                format!(
                    "has scheme {:?}; expected one of {} (e.g. {example})",
                    url.scheme(),
                    schemes.join(", ")
                ),
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ConfigError::new(
                var,
                format!("has no host; expected e.g. {example}"),
            ));
        }
        Ok(SecretUrl(SecretString::from(url.to_string())))
    }
}

/// `500ms`, `10s`, `5m`, `2h`, `30d`; a bare number means seconds.
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit.trim() {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        "d" => Some(Duration::from_secs(n.checked_mul(86_400)?)),
        _ => None,
    }
}

/// A connection URL that may embed a password: printing it shows only scheme and host.
#[derive(Clone)]
pub struct SecretUrl(SecretString);

impl SecretUrl {
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// `scheme://host:port/path` without credentials, for logs and error messages.
    pub fn redacted(&self) -> String {
        match Url::parse(self.expose()) {
            Ok(mut url) => {
                let _ = url.set_password(None);
                let _ = url.set_username("");
                url.to_string()
            }
            Err(_) => "<invalid url>".to_owned(),
        }
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({})", self.redacted())
    }
}

/// Settings every DevPulse process needs.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub database_url: SecretUrl,
    pub redis_url: SecretUrl,
    /// Prefix of every Redis key of the job queue; distinct per deployment (and per test).
    pub queue_namespace: String,
    /// Most jobs allowed in Redis at once; PostgreSQL holds the rest (`pending`).
    pub queue_max_backlog: u64,
    pub database_max_connections: u32,
    /// `GITHUB_APP_ID`, `GITHUB_APP_PRIVATE_KEY`, `GITHUB_API_URL`.
    pub github: GithubSettings,
}

/// Where GitHub's REST API is and how DevPulse signs in to it as a GitHub App.
#[derive(Debug, Clone)]
pub struct GithubSettings {
    /// `GITHUB_API_URL` (default `https://api.github.com`; GitHub Enterprise Server:
    /// `https://HOST/api/v3`).
    pub api_url: Url,
    /// `None`: no App credentials; the platform runs on webhooks alone (no sync).
    pub app: Option<GithubApp>,
}

/// The App's id and private key (a PEM that never prints).
#[derive(Clone)]
pub struct GithubApp {
    pub app_id: u64,
    pub private_key: SecretString,
}

impl fmt::Debug for GithubApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GithubApp {{ app_id: {}, private_key: <redacted> }}",
            self.app_id
        )
    }
}

impl GithubSettings {
    pub const DEFAULT_API_URL: &'static str = "https://api.github.com";

    /// Both App variables or neither; `GITHUB_APP_PRIVATE_KEY` is the PEM itself or a path to it.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let raw_url = vars
            .get("GITHUB_API_URL")
            .unwrap_or(Self::DEFAULT_API_URL)
            .trim();
        let api_url = Url::parse(raw_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| {
                ConfigError::new(
                    "GITHUB_API_URL",
                    format!("is not an http(s) URL ({raw_url:?}); e.g. https://api.github.com"),
                )
            })?;
        let app = match (
            vars.get("GITHUB_APP_ID"),
            vars.get("GITHUB_APP_PRIVATE_KEY"),
        ) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "GITHUB_APP_PRIVATE_KEY",
                    "is not set, but GITHUB_APP_ID is: set both (the App's PEM key, or a path to it) or neither",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "GITHUB_APP_ID",
                    "is not set, but GITHUB_APP_PRIVATE_KEY is: set both or neither",
                ));
            }
            (Some(id), Some(key)) => {
                let app_id = id
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        ConfigError::new(
                            "GITHUB_APP_ID",
                            format!("is not a GitHub App id ({id:?}): expected a positive number"),
                        )
                    })?;
                let pem = if key.trim_start().starts_with("-----BEGIN") {
                    // `.env` files and CI secrets often carry the PEM with literal `\n`s.
                    key.replace("\\n", "\n")
                } else {
                    std::fs::read_to_string(key.trim()).map_err(|e| {
                        ConfigError::new(
                            "GITHUB_APP_PRIVATE_KEY",
                            format!(
                                "is neither a PEM key nor a readable file ({}: {e})",
                                key.trim()
                            ),
                        )
                    })?
                };
                if !pem.contains("-----BEGIN") || !pem.contains("PRIVATE KEY-----") {
                    return Err(ConfigError::new(
                        "GITHUB_APP_PRIVATE_KEY",
                        "does not hold a PEM private key (-----BEGIN RSA PRIVATE KEY----- …)",
                    ));
                }
                Some(GithubApp {
                    app_id,
                    private_key: SecretString::from(pem),
                })
            }
        };
        Ok(Self { api_url, app })
    }
}

impl CommonConfig {
    /// apalis-redis 1.0 fails outright once about 8,000 jobs are due at once; stay far below.
    pub const BACKLOG_CEILING: u64 = 5_000;

    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let database_url = vars.url(
            "DATABASE_URL",
            &["postgres", "postgresql"],
            "postgres://postgres@127.0.0.1:5432/devpulse",
        )?;
        let redis_url = vars.url("REDIS_URL", &["redis", "rediss"], "redis://127.0.0.1:6379")?;
        let queue_namespace = vars.get("QUEUE_NAMESPACE").unwrap_or("devpulse").to_owned();
        if queue_namespace.len() > 64
            || !queue_namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'))
        {
            return Err(ConfigError::new(
                "QUEUE_NAMESPACE",
                "must be at most 64 characters of [A-Za-z0-9._:-]",
            ));
        }
        let queue_max_backlog = vars.parse_or("QUEUE_MAX_BACKLOG", 2_000u64)?;
        if queue_max_backlog == 0 || queue_max_backlog > Self::BACKLOG_CEILING {
            return Err(ConfigError::new(
                "QUEUE_MAX_BACKLOG",
                format!("must be between 1 and {}", Self::BACKLOG_CEILING),
            ));
        }
        let database_max_connections = vars.parse_or("DATABASE_MAX_CONNECTIONS", 16u32)?;
        if database_max_connections < 2 {
            return Err(ConfigError::new(
                "DATABASE_MAX_CONNECTIONS",
                "must be at least 2",
            ));
        }
        Ok(Self {
            database_url,
            redis_url,
            queue_namespace,
            queue_max_backlog,
            database_max_connections,
            github: GithubSettings::from_vars(vars)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vars {
        Vars::from_pairs([
            ("DATABASE_URL", "postgres://app:hunter2@db:5432/devpulse"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
        ])
    }

    #[test]
    fn defaults_apply_and_urls_do_not_print_passwords() {
        let config = CommonConfig::from_vars(&base()).expect("valid");
        assert_eq!(config.queue_namespace, "devpulse");
        assert_eq!(config.queue_max_backlog, 2_000);
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("db:5432"), "{printed}");
    }

    #[test]
    fn a_missing_variable_is_named_in_one_line() {
        let err = CommonConfig::from_vars(&Vars::from_pairs([("REDIS_URL", "redis://x")]))
            .expect_err("missing");
        assert_eq!(err.var, "DATABASE_URL");
        let line = err.to_string();
        assert!(line.contains("DATABASE_URL is not set"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn malformed_values_are_refused() {
        let mut vars = base();
        vars.set("REDIS_URL", "http://localhost");
        assert_eq!(
            CommonConfig::from_vars(&vars).expect_err("scheme").var,
            "REDIS_URL"
        );

        let mut vars = base();
        vars.set("DATABASE_URL", "not a url");
        assert_eq!(
            CommonConfig::from_vars(&vars).expect_err("url").var,
            "DATABASE_URL"
        );

        let mut vars = base();
        vars.set("QUEUE_MAX_BACKLOG", "9000");
        assert_eq!(
            CommonConfig::from_vars(&vars).expect_err("too big").var,
            "QUEUE_MAX_BACKLOG"
        );

        let mut vars = base();
        vars.set("QUEUE_MAX_BACKLOG", "lots");
        assert_eq!(
            CommonConfig::from_vars(&vars).expect_err("nan").var,
            "QUEUE_MAX_BACKLOG"
        );
    }

    #[test]
    fn durations_take_units() {
        let vars = Vars::from_pairs([("A", "250ms"), ("B", "3"), ("C", "2m"), ("D", "soon")]);
        let d = Duration::from_secs(1);
        assert_eq!(vars.duration_or("A", d), Ok(Duration::from_millis(250)));
        assert_eq!(vars.duration_or("B", d), Ok(Duration::from_secs(3)));
        assert_eq!(vars.duration_or("C", d), Ok(Duration::from_secs(120)));
        assert_eq!(vars.duration_or("E", d), Ok(d));
        assert!(vars.duration_or("D", d).is_err());
    }
}

#[cfg(test)]
mod github_tests {
    use super::*;

    const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n";

    #[test]
    fn app_credentials_come_in_pairs_and_never_print() {
        let none = GithubSettings::from_vars(&Vars::from_pairs([("X", "1")])).expect("none");
        assert!(none.app.is_none());
        assert_eq!(none.api_url.as_str(), "https://api.github.com/");

        let only_id = GithubSettings::from_vars(&Vars::from_pairs([("GITHUB_APP_ID", "12")]));
        assert_eq!(only_id.expect_err("pair").var, "GITHUB_APP_PRIVATE_KEY");
        let only_key =
            GithubSettings::from_vars(&Vars::from_pairs([("GITHUB_APP_PRIVATE_KEY", PEM)]));
        assert_eq!(only_key.expect_err("pair").var, "GITHUB_APP_ID");

        let escaped = PEM.replace('\n', "\\n");
        let both = GithubSettings::from_vars(&Vars::from_pairs([
            ("GITHUB_APP_ID", "12"),
            ("GITHUB_APP_PRIVATE_KEY", escaped.as_str()),
            ("GITHUB_API_URL", "http://127.0.0.1:9/api/v3"),
        ]))
        .expect("both");
        let app = both.app.expect("app");
        assert_eq!(app.app_id, 12);
        assert_eq!(
            app.private_key.expose_secret(),
            PEM,
            "\\n in a .env becomes a newline"
        );
        assert!(!format!("{app:?}").contains("MIIB"), "the key never prints");
    }

    #[test]
    fn bad_app_settings_name_their_variable() {
        for (pairs, var) in [
            (vec![("GITHUB_API_URL", "ftp://x")], "GITHUB_API_URL"),
            (
                vec![("GITHUB_APP_ID", "abc"), ("GITHUB_APP_PRIVATE_KEY", PEM)],
                "GITHUB_APP_ID",
            ),
            (
                vec![
                    ("GITHUB_APP_ID", "1"),
                    ("GITHUB_APP_PRIVATE_KEY", "/no/such/key.pem"),
                ],
                "GITHUB_APP_PRIVATE_KEY",
            ),
        ] {
            let err = GithubSettings::from_vars(&Vars::from_pairs(pairs)).expect_err(var);
            assert_eq!(err.var, var);
        }
    }
}
