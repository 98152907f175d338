//! The worker's configuration: the shared settings plus its own (concurrency, retries, metrics).

use std::{collections::BTreeMap, net::SocketAddr, str::FromStr, time::Duration};

use jobs::{
    JobKind,
    runner::RetryPolicy,
    runtime::config::{CommonConfig, ConfigError, Vars},
};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub common: CommonConfig,
    /// `WORKER_CONCURRENCY`: jobs run at once by this process (default 128; they are grouped
    /// into batches of up to 64, at most 4 batches at once).
    pub concurrency: usize,
    /// `WORKER_TYPE_CONCURRENCY` (`processPush=2,processDeployment=4`): at most this many jobs of
    /// a type at once in this process; types not listed share `concurrency`.
    pub concurrency_by_kind: BTreeMap<JobKind, usize>,
    /// `WORKER_MAX_ATTEMPTS` (8), `WORKER_TYPE_MAX_ATTEMPTS`, `WORKER_RETRY_BASE` (2s),
    /// `WORKER_RETRY_CAP` (10m).
    pub retry: RetryPolicy,
    /// `WORKER_METRICS_ADDR` (default `127.0.0.1:9091`; `off` disables the metrics port).
    pub metrics_addr: Option<SocketAddr>,
    /// `SHUTDOWN_GRACE` (default 20s): how long in-flight jobs may take to finish on SIGTERM.
    pub shutdown_grace: Duration,
    /// `ANALYTICS_SETTLE` (default 5s, at most 10m): how long an organization's first dirty-day
    /// mark waits before its days are recomputed, together with every mark that came meanwhile.
    pub analytics_settle: Duration,
    /// `SCHEDULE_NIGHTLY_ATTENDANCE`, `SCHEDULE_NIGHTLY_ANALYTICS`, `SCHEDULE_HOURLY_ALERTS`:
    /// cron expressions (seconds first); `off` disables one.
    pub schedules: crate::schedule::Schedules,
    /// `SYNC_CONCURRENCY` (2), `SYNC_SLICE` (20s), `SYNC_LEASE` (5m), `SYNC_FETCH_CONCURRENCY` (8).
    pub sync: crate::sync::SyncSettings,
}

/// `name=value,name=value` with job type names, e.g. `processPush=2`.
fn per_kind<T: FromStr>(
    vars: &Vars,
    var: &'static str,
    valid: impl Fn(&T) -> bool,
    expected: &str,
) -> Result<BTreeMap<JobKind, T>, ConfigError> {
    let mut map = BTreeMap::new();
    let Some(raw) = vars.get(var) else {
        return Ok(map);
    };
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, value) = item.split_once('=').ok_or_else(|| {
            ConfigError::new(
                var,
                format!("has {item:?}; expected jobType=value, e.g. processPush=2"),
            )
        })?;
        let kind = JobKind::parse(name.trim()).ok_or_else(|| {
            let known: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
            ConfigError::new(
                var,
                format!(
                    "names unknown job type {name:?}; known: {}",
                    known.join(", ")
                ),
            )
        })?;
        let value: T = value
            .trim()
            .parse()
            .ok()
            .filter(|v| valid(v))
            .ok_or_else(|| ConfigError::new(var, format!("has {item:?}; {expected}")))?;
        map.insert(kind, value);
    }
    Ok(map)
}

impl WorkerConfig {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_vars(vars)?;
        let concurrency = vars.parse_or("WORKER_CONCURRENCY", 128usize)?;
        if !(1..=1024).contains(&concurrency) {
            return Err(ConfigError::new(
                "WORKER_CONCURRENCY",
                "must be between 1 and 1024",
            ));
        }
        let concurrency_by_kind = per_kind(
            vars,
            "WORKER_TYPE_CONCURRENCY",
            |n: &usize| (1..=1024).contains(n),
            "each limit must be between 1 and 1024",
        )?;
        let max_attempts = vars.parse_or("WORKER_MAX_ATTEMPTS", 8u32)?;
        if !(1..=100).contains(&max_attempts) {
            return Err(ConfigError::new(
                "WORKER_MAX_ATTEMPTS",
                "must be between 1 and 100",
            ));
        }
        let max_attempts_by_kind = per_kind(
            vars,
            "WORKER_TYPE_MAX_ATTEMPTS",
            |n: &u32| (1..=100).contains(n),
            "each maximum must be between 1 and 100",
        )?;
        let base = vars.duration_or("WORKER_RETRY_BASE", Duration::from_secs(2))?;
        let cap = vars.duration_or("WORKER_RETRY_CAP", Duration::from_secs(600))?;
        if base.is_zero() || cap < base {
            return Err(ConfigError::new(
                "WORKER_RETRY_CAP",
                "must be at least WORKER_RETRY_BASE, which must be above zero",
            ));
        }
        let metrics_addr = match vars.get("WORKER_METRICS_ADDR").map(str::trim) {
            Some("off") => None,
            None => Some(SocketAddr::from(([127, 0, 0, 1], 9091))),
            Some(raw) => Some(raw.parse().map_err(|_| {
                ConfigError::new(
                    "WORKER_METRICS_ADDR",
                    format!(
                        "is malformed ({raw:?}): expected host:port such as 0.0.0.0:9091, or off"
                    ),
                )
            })?),
        };
        let shutdown_grace = vars.duration_or("SHUTDOWN_GRACE", Duration::from_secs(20))?;
        let analytics_settle = vars.duration_or("ANALYTICS_SETTLE", Duration::from_secs(5))?;
        if analytics_settle > Duration::from_secs(600) {
            return Err(ConfigError::new(
                "ANALYTICS_SETTLE",
                "must be at most 10m (dashboards promise numbers within seconds)",
            ));
        }
        let schedules = crate::schedule::from_vars(vars)?;
        let retry = RetryPolicy {
            base,
            cap,
            max_attempts,
            max_attempts_by_kind,
        };
        let mut sync = crate::sync::SyncSettings::new(retry.clone());
        sync.concurrency = vars.parse_or("SYNC_CONCURRENCY", sync.concurrency)?;
        if !(1..=64).contains(&sync.concurrency) {
            return Err(ConfigError::new(
                "SYNC_CONCURRENCY",
                "must be between 1 and 64",
            ));
        }
        sync.fetch_concurrency = vars.parse_or("SYNC_FETCH_CONCURRENCY", sync.fetch_concurrency)?;
        if !(1..=64).contains(&sync.fetch_concurrency) {
            return Err(ConfigError::new(
                "SYNC_FETCH_CONCURRENCY",
                "must be between 1 and 64",
            ));
        }
        sync.slice = vars.duration_or("SYNC_SLICE", sync.slice)?;
        sync.lease = vars.duration_or("SYNC_LEASE", sync.lease)?;
        if sync.slice.is_zero() || sync.lease < sync.slice + Duration::from_secs(60) {
            return Err(ConfigError::new(
                "SYNC_LEASE",
                "must be at least SYNC_SLICE plus one minute (a slice finishes its page after SYNC_SLICE)",
            ));
        }
        Ok(Self {
            common,
            concurrency,
            concurrency_by_kind,
            retry,
            metrics_addr,
            shutdown_grace,
            analytics_settle,
            schedules,
            sync,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(extra: &[(&str, &str)]) -> Vars {
        let mut vars = Vars::from_pairs([
            ("DATABASE_URL", "postgres://localhost/x"),
            ("REDIS_URL", "redis://localhost"),
        ]);
        for (k, v) in extra {
            vars.set(*k, *v);
        }
        vars
    }

    #[test]
    fn per_type_settings_parse_and_bad_ones_name_the_variable() {
        let config = WorkerConfig::from_vars(&vars(&[
            (
                "WORKER_TYPE_CONCURRENCY",
                "processPush=2, processDeployment=4",
            ),
            ("WORKER_TYPE_MAX_ATTEMPTS", "processInstallation=20"),
            ("WORKER_RETRY_BASE", "500ms"),
        ]))
        .expect("valid");
        assert_eq!(
            config.concurrency_by_kind.get(&JobKind::ProcessPush),
            Some(&2)
        );
        assert_eq!(config.retry.max_attempts(JobKind::ProcessInstallation), 20);
        assert_eq!(config.retry.max_attempts(JobKind::ProcessPush), 8);
        assert_eq!(config.retry.base, Duration::from_millis(500));

        let e = WorkerConfig::from_vars(&vars(&[("WORKER_TYPE_CONCURRENCY", "processPsh=2")]))
            .expect_err("unknown type");
        assert!(e.to_string().contains("WORKER_TYPE_CONCURRENCY"), "{e}");
        assert!(e.to_string().contains("processPush"), "{e}");
        let e = WorkerConfig::from_vars(&vars(&[("WORKER_MAX_ATTEMPTS", "0")])).expect_err("zero");
        assert!(e.to_string().contains("WORKER_MAX_ATTEMPTS"), "{e}");
        let e =
            WorkerConfig::from_vars(&vars(&[("WORKER_METRICS_ADDR", "nine")])).expect_err("addr");
        assert!(e.to_string().contains("WORKER_METRICS_ADDR"), "{e}");
    }

    #[test]
    fn analytics_settle_defaults_to_five_seconds_and_is_bounded() {
        let config = WorkerConfig::from_vars(&vars(&[])).expect("valid");
        assert_eq!(config.analytics_settle, Duration::from_secs(5));
        let config =
            WorkerConfig::from_vars(&vars(&[("ANALYTICS_SETTLE", "0s")])).expect("zero is valid");
        assert_eq!(config.analytics_settle, Duration::ZERO);
        let e = WorkerConfig::from_vars(&vars(&[("ANALYTICS_SETTLE", "11m")])).expect_err("long");
        assert!(e.to_string().contains("ANALYTICS_SETTLE"), "{e}");
    }
}
