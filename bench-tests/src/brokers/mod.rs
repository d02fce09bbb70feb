//! Brokers: where each one comes from (environment URL, testcontainers, local default
//! port, local binary) and a clean, isolated namespace per repetition.

pub mod docker;
pub mod redis;

use std::fmt;

use anyhow::{bail, Result};
use serde::Serialize;

/// The broker a run uses ("driver" in AsyncTasQ's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Redis,
}

impl Driver {
    pub const ALL: [Driver; 1] = [Driver::Redis];
    /// Brokers the design names that the harness cannot provision yet.
    pub const PLANNED: [&'static str; 4] = ["postgres", "mysql", "rabbitmq", "sqs"];

    pub fn name(self) -> &'static str {
        match self {
            Driver::Redis => "redis",
        }
    }

    pub fn parse(name: &str) -> Result<Driver> {
        if let Some(driver) = Driver::ALL.into_iter().find(|d| d.name() == name) {
            return Ok(driver);
        }
        let valid: Vec<&str> = Driver::ALL.iter().map(|d| d.name()).collect();
        if Driver::PLANNED.contains(&name) {
            bail!(
                "driver '{name}' is not supported yet (planned); valid drivers: {}",
                valid.join(", ")
            );
        }
        bail!(
            "unknown driver '{name}'; valid drivers: {}",
            valid.join(", ")
        )
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the harness found a broker, for results and error messages.
#[derive(Debug, Clone, Serialize)]
pub struct BrokerInfo {
    pub driver: Driver,
    /// e.g. "BENCH_REDIS_URL", "testcontainers redis:7.4.2", "local 127.0.0.1:6379", "redis-server on port 40123".
    pub source: String,
    /// URL without credentials.
    pub url: String,
    pub server_version: String,
}

/// Removes the password of a URL like `redis://user:pass@host/0` for display.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_lists_valid_drivers() {
        assert_eq!(Driver::parse("redis").unwrap(), Driver::Redis);
        let err = Driver::parse("kafka").unwrap_err().to_string();
        assert!(
            err.contains("unknown driver 'kafka'") && err.contains("redis"),
            "{err}"
        );
        let err = Driver::parse("sqs").unwrap_err().to_string();
        assert!(err.contains("not supported yet"), "{err}");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("redis://:secret@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(
            redact_url("amqp://guest:guest@h:5672/"),
            "amqp://guest:***@h:5672/"
        );
        assert_eq!(redact_url("redis://h:1/0"), "redis://h:1/0");
    }
}
