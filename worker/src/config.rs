//! The worker's configuration: the shared settings plus its own.

use jobs::runtime::config::{CommonConfig, ConfigError, Vars};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub common: CommonConfig,
    /// `WORKER_CONCURRENCY`: jobs run at once by this process (default 8).
    pub concurrency: usize,
}

impl WorkerConfig {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_vars(vars)?;
        let concurrency = vars.parse_or("WORKER_CONCURRENCY", 8usize)?;
        if !(1..=256).contains(&concurrency) {
            return Err(ConfigError::new(
                "WORKER_CONCURRENCY",
                "must be between 1 and 256",
            ));
        }
        Ok(Self {
            common,
            concurrency,
        })
    }
}
