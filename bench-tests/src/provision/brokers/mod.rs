//! Brokers: where each one comes from (environment URL, testcontainers, local default
//! port, local binary) and a clean, isolated namespace per repetition.

pub mod docker;
pub mod rabbitmq;
pub mod redis;
pub mod sql;
pub mod sqs;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::provision::python::PythonEnv;

/// The broker a run uses ("driver" in AsyncTasQ's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Redis,
    Postgres,
    Mysql,
    Rabbitmq,
    Sqs,
}

impl Driver {
    pub const ALL: [Driver; 5] = [
        Driver::Redis,
        Driver::Postgres,
        Driver::Mysql,
        Driver::Rabbitmq,
        Driver::Sqs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Driver::Redis => "redis",
            Driver::Postgres => "postgres",
            Driver::Mysql => "mysql",
            Driver::Rabbitmq => "rabbitmq",
            Driver::Sqs => "sqs",
        }
    }

    pub fn parse(name: &str) -> Result<Driver> {
        if let Some(driver) = Driver::ALL.into_iter().find(|d| d.name() == name) {
            return Ok(driver);
        }
        let valid: Vec<&str> = Driver::ALL.iter().map(|d| d.name()).collect();
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

/// A broker server the harness found or started, able to hand out isolated namespaces.
pub trait Broker: Send + Sync {
    fn info(&self) -> &BrokerInfo;
    /// A fresh namespace for one run; `key` is unique per run (lowercase letters and digits).
    fn namespace(&self, key: &str) -> Result<Box<dyn Namespace>>;
}

/// How a namespace is reached: what a system module turns into its own configuration.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// Server URL without database, and the run's database number.
    Redis { server_url: String, db: u8 },
    /// The run's own database: `postgres://…/db` or `mysql://…/db`.
    Sql { driver: Driver, url: String },
    /// `amqp://user:password@host:port/vhost`.
    Amqp { url: String },
    /// An endpoint URL (None: AWS itself), region, credentials, and the AWS_* variables
    /// boto3 needs.
    Sqs {
        url: Option<String>,
        region: String,
        access_key: String,
        secret_key: String,
        aws_env: Vec<(String, String)>,
    },
}

/// Where a system's pending messages of one queue wait, as the system describes them.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueRef {
    /// A Redis list.
    RedisList(String),
    /// SQL queries with the queue name bound as their one parameter: ready messages, and
    /// one message's payload bytes.
    Sql {
        queue: String,
        depth: &'static str,
        bytes: &'static str,
    },
    /// The broker's own queue of this name (RabbitMQ, SQS).
    Named(String),
}

impl QueueRef {
    /// Queries over a SQL table of pending messages, for a system's `queue_ref`.
    pub fn sql(queue: &str, depth: &'static str, bytes: &'static str) -> QueueRef {
        QueueRef::Sql {
            queue: queue.into(),
            depth,
            bytes,
        }
    }

    /// The name of a broker's own queue, as `driver` (RabbitMQ, SQS) reads it.
    pub fn name_on(&self, driver: Driver) -> Result<&str> {
        match self {
            QueueRef::Named(name) => Ok(name),
            other => Err(other.mismatch(driver)),
        }
    }

    /// Error for a broker handed a queue of another broker's kind (a system module bug).
    pub fn mismatch(&self, driver: Driver) -> anyhow::Error {
        anyhow::anyhow!("{self:?} is not a queue on {driver}: the system's queue_ref is wrong")
    }
}

/// One run's isolated part of a broker; dropping it removes what the run left behind.
pub trait Namespace: Send {
    fn driver(&self) -> Driver;
    /// How to reach this namespace, for the systems' own configuration.
    fn endpoint(&self) -> Endpoint;
    /// The namespace's own address for a Rust client: Redis URL with database, PostgreSQL
    /// or MySQL URL with the run's database, AMQP URL, SQS endpoint (empty for AWS itself).
    fn connection_url(&self) -> String;
    /// Makes what a system needs before it can use `queue` (e.g. an SQS queue).
    fn prepare(&self, _queue: &str) -> Result<()> {
        Ok(())
    }
    /// Bytes one pending message occupies as stored by the broker (its body or payload
    /// column), read from the broker without consuming it.
    fn message_bytes(&self, queue: &QueueRef) -> Result<u64>;
    /// Tasks waiting in the queue, read from the broker itself.
    fn queue_depth(&self, queue: &QueueRef) -> Result<u64>;
    /// API calls that named `queue` so far, by action, where the broker can tell (moto's
    /// request recorder); None elsewhere.
    fn api_calls(&self, _queue: &str) -> Result<Option<BTreeMap<String, u64>>> {
        Ok(None)
    }
    /// When the first task of `queue` reached AsyncTasQ's dead-letter table (Unix ns), if
    /// it has; only the SQL brokers keep one.
    fn dead_letter_ns(&self, _queue: &str) -> Result<Option<u64>> {
        bail!("{} has no dead-letter table", self.driver())
    }
    /// Labels for results, e.g. "emulator (moto): not AWS SQS".
    fn caveat(&self) -> Option<String> {
        None
    }
}

/// Brokers provisioned on first use and kept for the harness's lifetime.
pub struct BrokerSet {
    python: PythonEnv,
    found: Mutex<BTreeMap<Driver, Arc<dyn Broker>>>,
}

impl BrokerSet {
    pub fn new(python: PythonEnv) -> BrokerSet {
        BrokerSet {
            python,
            found: Mutex::new(BTreeMap::new()),
        }
    }

    /// The broker for `driver`, found or started in the source order of DESIGN.md.
    pub fn get(&self, driver: Driver, progress: &mut dyn FnMut(&str)) -> Result<Arc<dyn Broker>> {
        let mut found = self.found.lock().expect("broker set");
        if let Some(broker) = found.get(&driver) {
            return Ok(broker.clone());
        }
        let broker: Arc<dyn Broker> = match driver {
            Driver::Redis => Arc::new(redis::RedisBroker::provide(progress)?),
            Driver::Postgres => Arc::new(sql::SqlBroker::provide(&sql::POSTGRES, progress)?),
            Driver::Mysql => Arc::new(sql::SqlBroker::provide(&sql::MYSQL, progress)?),
            Driver::Rabbitmq => Arc::new(rabbitmq::RabbitBroker::provide(progress)?),
            Driver::Sqs => Arc::new(sqs::SqsBroker::provide(&self.python, progress)?),
        };
        found.insert(driver, broker.clone());
        Ok(broker)
    }
}

/// Runs a future to completion on a small runtime of its own, bounded by `limit`.
pub fn block_on<T>(
    limit: Duration,
    future: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match tokio::time::timeout(limit, future).await {
            Ok(result) => result,
            Err(_) => bail!("no answer within {limit:?}"),
        }
    })
}

/// Where a broker comes from, tried in order; the first that works wins.
pub struct SourceSearch {
    pub driver: Driver,
    pub env_var: &'static str,
    env_value: Option<String>,
    tried: Vec<String>,
}

impl SourceSearch {
    /// `env_value` stands for the variable's value (tests pass one without touching the
    /// process environment, which other threads read).
    pub fn new(driver: Driver, env_var: &'static str, env_value: Option<String>) -> SourceSearch {
        SourceSearch {
            driver,
            env_var,
            env_value,
            tried: Vec::new(),
        }
    }

    /// The URL the user set, if any (the caller must not fall back when it fails).
    pub fn env_url(&mut self) -> Option<String> {
        let url = self.env_value.take().filter(|u| !u.is_empty());
        if url.is_none() {
            self.tried.push(format!("{} (not set)", self.env_var));
        }
        url
    }

    /// The error for a URL the user gave that does not answer.
    pub fn env_url_failed(&self, url: &str, error: anyhow::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "{} at {} (from {}) is unreachable: {error:#}. Check the URL and credentials, or unset {} to let the harness find or start one.",
            self.driver,
            redact_url(url),
            self.env_var,
            self.env_var
        )
    }

    pub fn failed(&mut self, what: impl Into<String>, error: impl fmt::Display) {
        self.tried.push(format!("{} ({error:#})", what.into()));
    }

    /// The URL the user set, checked by `probe`; when it does not answer, that is the error
    /// (never a fallback). None when the variable is unset.
    pub fn from_env<T>(
        &mut self,
        probe: impl FnOnce(&str) -> Result<T>,
    ) -> Result<Option<(String, T)>> {
        let Some(url) = self.env_url() else {
            return Ok(None);
        };
        match probe(&url) {
            Ok(found) => Ok(Some((url, found))),
            Err(e) => Err(self.env_url_failed(&url, e)),
        }
    }

    /// A container from testcontainers, when a Docker daemon answers; a failure is noted.
    pub fn container<T>(
        &mut self,
        image: &str,
        progress: &mut dyn FnMut(&str),
        start: impl FnOnce() -> Result<T>,
    ) -> Option<T> {
        if !self.docker_answers() {
            return None;
        }
        progress(&format!("starting {image} with testcontainers"));
        self.attempt(format!("testcontainers {image}"), start)
    }

    /// Any other source (a local port, a binary): its value, or its failure noted.
    pub fn attempt<T>(
        &mut self,
        what: impl Into<String>,
        try_it: impl FnOnce() -> Result<T>,
    ) -> Option<T> {
        match try_it() {
            Ok(found) => Some(found),
            Err(e) => {
                self.failed(what, e);
                None
            }
        }
    }

    pub fn docker_answers(&mut self) -> bool {
        let answers = docker::daemon_answers(Duration::from_secs(2));
        if !answers {
            self.tried.push(format!(
                "testcontainers (no Docker daemon answered at {})",
                docker::daemon_address()
            ));
        }
        answers
    }

    pub fn give_up(self, hint: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "no {} broker available. Tried:\n  - {}\n{hint}",
            self.driver,
            self.tried.join("\n  - ")
        )
    }
}

/// Removes the password of a URL like `redis://user:pass@host/0` for display.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at))
            if at > scheme_end && url[scheme_end + 3..at].contains(':') =>
        {
            let user = url[scheme_end + 3..at].split(':').next().unwrap_or("");
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
        assert_eq!(Driver::parse("sqs").unwrap(), Driver::Sqs);
    }

    #[test]
    fn a_search_names_everything_it_tried() {
        let mut search = SourceSearch::new(Driver::Redis, "BENCH_X_URL", None);
        assert!(search.from_env(|_| Ok(())).unwrap().is_none());
        assert_eq!(search.attempt("first", || Ok(7)), Some(7));
        assert_eq!(
            search.attempt("local 1", || Err::<u8, _>(anyhow::anyhow!("refused"))),
            None
        );
        let err = search.give_up("Set BENCH_X_URL.").to_string();
        assert_eq!(
            err,
            "no redis broker available. Tried:\n  - BENCH_X_URL (not set)\n  - local 1 (refused)\nSet BENCH_X_URL."
        );
    }

    #[test]
    fn a_url_the_user_gave_is_never_replaced() {
        let mut search = SourceSearch::new(
            Driver::Postgres,
            "BENCH_Y_URL",
            Some("postgres://u:pw@h/db".into()),
        );
        let err = search
            .from_env(|_| Err::<(), _>(anyhow::anyhow!("timed out after 5s")))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("postgres at postgres://u:***@h/db (from BENCH_Y_URL) is unreachable: timed out after 5s"),
            "{err}"
        );
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("redis://:secret@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(
            redact_url("amqp://guest:guest@h:5672/"),
            "amqp://guest:***@h:5672/"
        );
        assert_eq!(redact_url("redis://h:1/0"), "redis://h:1/0");
        assert_eq!(
            redact_url("postgres://postgres@h:1/db"),
            "postgres://postgres@h:1/db"
        );
    }
}
