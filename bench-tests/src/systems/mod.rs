//! Systems under test. Each is one module implementing [`QueueSystem`]: how to start its
//! worker (its own CLI) and its producer (its own client API, in
//! `fixtures/python/tasq_fixtures/produce.py`), how its configuration is verified from its
//! own output, which brokers and pools it supports, where its messages wait on each broker,
//! and which packages' versions are recorded. [`REGISTRY`] lists them; names, `--system`
//! help and errors come from it.
//!
//! Adding a queue: its module here, one line in [`REGISTRY`], its fixture tasks and its pins.

pub mod asynctasq;
pub mod celery;

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Result};
use serde::{Serialize, Serializer};

use crate::provision::brokers::{Driver, Namespace, QueueRef};
use crate::provision::python::PythonEnv;
use crate::result::Configuration;
use crate::workloads::Case;

/// One task queue under test.
pub trait QueueSystem: Sync {
    /// Lowercase name used on the command line and in results, e.g. `celery`.
    fn name(&self) -> &'static str;
    /// Python distributions the venv must hold for it (itself, its pools' and the io
    /// workload's clients); a venv without one is rebuilt.
    fn packages(&self) -> &'static [&'static str];
    /// Brokers it can use.
    fn drivers(&self) -> &'static [Driver];
    /// Pools (execution models) it offers, as its variants name them.
    fn pools(&self) -> &'static [&'static str];
    /// Its worker, started with its own CLI for `variant`.
    fn worker_command(&self, variant: &Variant, env: &RunEnv) -> Command;
    /// A Python command with this system's configuration for the run's broker in its
    /// environment (the producer and any helper script run through it).
    fn configured(&self, env: &RunEnv, program: PathBuf) -> Command;
    /// What must exist before its first task is sent (e.g. AsyncTasQ's SQL tables).
    fn prepare(&self, _env: &RunEnv, _dir: &Path) -> Result<()> {
        Ok(())
    }
    /// Lines its worker's own output must contain when `variant` took effect on `driver`.
    fn expected_log(&self, variant: &Variant, driver: Driver) -> Vec<String>;
    /// Text its worker's output must not contain, each with what it means: a log line
    /// below the level both systems run at (WARNING) shows the level did not take effect;
    /// an error the system only logs (a failed ack) is a defect of the run.
    fn forbidden_log(&self, _variant: &Variant) -> Vec<(String, String)> {
        Vec::new()
    }
    /// When a message is acknowledged, which decides what a crash costs: comparisons across
    /// systems pair only variants with the same semantics.
    fn delivery(&self, variant: &Variant) -> Delivery;
    /// Where its pending messages of `queue` wait on `driver`, for depth and size reads.
    fn queue_ref(&self, driver: Driver, queue: &str) -> QueueRef;
    /// Results of `variant` on `driver` that readers must weigh differently.
    fn caveats(&self, _variant: &Variant, _driver: Driver) -> Vec<String> {
        Vec::new()
    }
    /// States its settings for `case` in the result (prefetch, acks, ...).
    fn record_settings(&self, _case: &Case, _configuration: &mut Configuration) {}
}

/// A message's delivery guarantee, from when the worker acknowledges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Acknowledged after the task ran: a worker crash redelivers it.
    AtLeastOnce,
    /// Acknowledged when received: a worker crash loses it.
    AtMostOnce,
}

impl Delivery {
    pub fn name(self) -> &'static str {
        match self {
            Delivery::AtLeastOnce => "at-least-once",
            Delivery::AtMostOnce => "at-most-once",
        }
    }
}

/// A handle on a registered system: compared, ordered and serialized by name.
#[derive(Clone, Copy)]
pub struct System(&'static dyn QueueSystem);

impl System {
    pub const ASYNCTASQ: System = System(&asynctasq::AsyncTasq);
    pub const CELERY: System = System(&celery::Celery);

    pub fn all() -> &'static [System] {
        &REGISTRY
    }

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    pub fn parse(name: &str) -> Result<System> {
        match REGISTRY.iter().find(|s| s.name() == name) {
            Some(system) => Ok(*system),
            None => bail!(
                "unknown system '{name}'; valid systems: {}",
                names().join(", ")
            ),
        }
    }

    /// Whether the system can run on `driver`.
    pub fn supports(self, driver: Driver) -> bool {
        self.0.drivers().contains(&driver)
    }
}

/// Every system the harness can measure, in the order runs and reports list them.
pub static REGISTRY: [System; 2] = [System::ASYNCTASQ, System::CELERY];

pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|s| s.name()).collect()
}

/// Packages whose versions the venv must hold and results record, over every system.
pub fn packages() -> Vec<&'static str> {
    REGISTRY
        .iter()
        .flat_map(|s| s.packages())
        .copied()
        .collect()
}

impl std::ops::Deref for System {
    type Target = dyn QueueSystem;
    fn deref(&self) -> &Self::Target {
        self.0
    }
}

impl PartialEq for System {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}
impl Eq for System {}
impl Hash for System {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state)
    }
}
impl PartialOrd for System {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for System {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name().cmp(other.name())
    }
}
impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
impl fmt::Debug for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
impl Serialize for System {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// How a system's worker executes tasks: the pool, its size, and options that change how
/// tasks run (an HTTP client, an ack mode), each shown in the label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variant {
    pub system: System,
    /// asyncio (AsyncTasQ), threads, prefork, solo, gevent, eventlet (Celery), ...
    pub pool: String,
    pub concurrency: u32,
    /// Named options the system module turns into its configuration, e.g. `http=httpx`,
    /// `acks=late`. Ordered by name.
    pub options: BTreeMap<String, String>,
}

impl Variant {
    pub fn new(system: System, pool: &str, concurrency: u32) -> Variant {
        Variant {
            system,
            pool: pool.to_string(),
            concurrency,
            options: BTreeMap::new(),
        }
    }

    pub fn with(mut self, option: &str, value: &str) -> Variant {
        self.options.insert(option.into(), value.into());
        self
    }

    pub fn option(&self, name: &str) -> Option<&str> {
        self.options.get(name).map(String::as_str)
    }

    /// e.g. `asyncio-c10`, `threads-c10-acks_late`, `gevent-c50-http_httpx`.
    pub fn label(&self) -> String {
        format!(
            "{}-c{}{}",
            self.pool,
            self.concurrency,
            self.options_label()
        )
    }

    /// The options as the label ends in them, e.g. `-acks_late-http_httpx` ("" for none).
    pub fn options_label(&self) -> String {
        self.options
            .iter()
            .map(|(name, value)| format!("-{name}_{value}"))
            .collect()
    }
}

/// What every process of one run needs to know.
pub struct RunEnv<'a> {
    pub python: &'a PythonEnv,
    pub fixtures: &'a Path,
    pub workdir: &'a Path,
    pub collector_socket: &'a Path,
    pub queue: &'a str,
    pub broker: &'a dyn Namespace,
    /// Marks every process of the run, so a test can find survivors in the process table.
    pub run_id: &'a str,
    pub celery_prefetch_multiplier: u32,
    /// What the tasks of this run need besides (mock HTTP server URL, pbkdf2 iterations).
    pub task_env: Vec<(String, String)>,
}

impl RunEnv<'_> {
    /// A command in the run's clean working directory (AsyncTasQ reads `.env` from the cwd)
    /// with only the harness's variables added.
    pub fn command(&self, program: PathBuf) -> Command {
        let mut command = Command::new(program);
        command
            .current_dir(self.workdir)
            .env("PYTHONPATH", self.fixtures)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            // Rich (AsyncTasQ's logging) wraps at 80 columns without a TTY; keep log lines whole.
            .env("COLUMNS", "200")
            .env("BENCH_RUN_ID", self.run_id)
            .env("BENCH_COLLECTOR_SOCKET", self.collector_socket)
            .env("BENCH_QUEUE", self.queue)
            .envs(self.task_env.iter().map(|(k, v)| (k, v)));
        command
    }
}

/// Both systems' workers log at this level (Celery's `--loglevel`; AsyncTasQ through its
/// launcher), so neither pays for log lines the other does not write.
pub const WORKER_LOG_LEVEL: &str = "WARNING";

/// What a log line below [`WORKER_LOG_LEVEL`] in a worker's output means.
pub const LOG_LEVEL_NOT_APPLIED: &str = "its log level did not take effect";

/// The worker command of a variant.
pub fn worker_command(variant: &Variant, env: &RunEnv) -> Command {
    variant.system.worker_command(variant, env)
}

/// The producer command: enqueues tasks `first..first+count` through the system's client.
pub fn producer_command(
    system: System,
    env: &RunEnv,
    task: &str,
    first: u64,
    count: u64,
    batch: u32,
) -> Command {
    let mut command = system.configured(env, env.python.python.clone());
    command.args([
        "-m",
        "tasq_fixtures.produce",
        "--system",
        system.name(),
        "--run-id",
        env.run_id,
        "--task",
        task,
    ]);
    command.args([
        "--first",
        &first.to_string(),
        "--count",
        &count.to_string(),
        "--batch",
        &batch.to_string(),
    ]);
    command
}

/// Checks, from the worker's own startup output, that the configuration took effect
/// (AsyncTasQ's CLI accepts flags it ignores). Returns what was not confirmed.
pub fn verify_worker_config(
    variant: &Variant,
    driver: Driver,
    stdout: &str,
    stderr: &str,
) -> Vec<String> {
    // Line-ended, so a needle ending in "\n" matches a last line too (tails are trimmed).
    let log = format!("{stdout}\n{stderr}\n");
    let system = variant.system;
    let missing = system
        .expected_log(variant, driver)
        .into_iter()
        .filter(|needle| !log.contains(needle.as_str()))
        .map(|needle| format!("{system} worker log does not confirm '{needle}'"));
    let present = system
        .forbidden_log(variant)
        .into_iter()
        .filter_map(|(needle, meaning)| {
            let times = log.matches(needle.as_str()).count();
            (times > 0)
                .then(|| format!("{system} worker log contains '{needle}' ({times}x): {meaning}"))
        });
    missing.chain(present).collect()
}

/// Results of a system on a broker that readers must weigh differently.
pub fn caveats(variant: &Variant, broker: &dyn Namespace) -> Vec<String> {
    let mut caveats: Vec<String> = broker.caveat().into_iter().collect();
    caveats.extend(variant.system.caveats(variant, broker.driver()));
    caveats
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::Configuration;

    #[test]
    fn parse_lists_valid_systems() {
        assert_eq!(System::parse("celery").unwrap(), System::CELERY);
        let err = System::parse("rq").unwrap_err().to_string();
        assert_eq!(err, "unknown system 'rq'; valid systems: asynctasq, celery");
    }

    #[test]
    fn every_registered_system_names_its_packages_brokers_and_pools() {
        for system in System::all() {
            assert!(!system.packages().is_empty(), "{system}");
            assert!(!system.drivers().is_empty(), "{system}");
            assert!(!system.pools().is_empty(), "{system}");
        }
        for package in [
            "asynctasq",
            "celery",
            "gevent",
            "eventlet",
            "aiohttp",
            "requests",
        ] {
            assert!(packages().contains(&package), "{package}");
        }
    }

    /// What a gevent worker writes when its patching took effect, from a real run.
    const GEVENT_LOG: &str = "- *** --- * --- .> concurrency: 10 (gevent)\n\
        .> transport:   redis://127.0.0.1:6379/3\n\
        BENCH_CONFIG acks_late=True\nBENCH_CONFIG prefetch_multiplier=4\n\
        BENCH_CONFIG log_level=WARNING\nBENCH_CONFIG redis_max_connections=20\n\
        BENCH_POOL_CHECK gevent monkey_patched socket=True\n";

    #[test]
    fn a_green_pool_is_verified_only_when_its_monkey_patching_took_effect() {
        let gevent = celery::acking_late("gevent", 10);
        assert_eq!(
            verify_worker_config(&gevent, Driver::Redis, "", GEVENT_LOG),
            Vec::<String>::new()
        );
        let unpatched = GEVENT_LOG.replace("socket=True", "socket=False");
        let errors = verify_worker_config(&gevent, Driver::Redis, "", &unpatched);
        assert_eq!(
            errors,
            ["celery worker log does not confirm 'BENCH_POOL_CHECK gevent monkey_patched socket=True\n'"]
        );
        // The early-ack default is not confirmed by a worker acking late.
        let early = Variant::new(System::CELERY, "gevent", 10);
        assert_eq!(
            verify_worker_config(&early, Driver::Redis, "", GEVENT_LOG).len(),
            1
        );
    }

    #[test]
    fn a_worker_logging_below_warning_is_not_verified() {
        let asyncio = Variant::new(System::ASYNCTASQ, "asyncio", 10);
        let log = "Driver  RedisDriver\nBENCH_CONFIG driver_class=RedisDriver\n\
            BENCH_CONFIG concurrency=10\nBENCH_CONFIG log_level=WARNING\n\
            BENCH_CONFIG events_redis=False\n";
        assert!(verify_worker_config(&asyncio, Driver::Redis, log, "").is_empty());
        // Events on must show in the worker's settings, and off must not be on.
        let with_events = asyncio.clone().with("events", "on");
        assert_eq!(
            verify_worker_config(&with_events, Driver::Redis, log, "").len(),
            1
        );
        // AsyncTasQ's CLI at its own INFO (with events on, two lines per task).
        let info = format!("{log}[12:00:00] INFO     Processing task 7f3a: noop\n");
        let errors = verify_worker_config(&asyncio, Driver::Redis, &info, "");
        assert_eq!(
            errors,
            ["asynctasq worker log contains 'Processing task' (1x): its log level did not take effect"]
        );
        // Concurrency 1 is not confirmed by a log of concurrency 10 (nor 10 by 100).
        let wrong = Variant::new(System::ASYNCTASQ, "asyncio", 1);
        assert_eq!(
            verify_worker_config(&wrong, Driver::Redis, log, "").len(),
            1
        );
    }

    #[test]
    fn a_failed_ack_invalidates_a_celery_run_and_green_pools_get_redis_connections() {
        let eventlet = celery::acking_late("eventlet", 50);
        let log = GEVENT_LOG
            .replace("gevent", "eventlet")
            .replace("connections=20", "connections=60")
            + "[2026-12-01 14:40:28,702: CRITICAL/MainProcess] Couldn't ack '1b9a', reason:network:MaxConnectionsError\n";
        let log = log.replace("concurrency: 10", "concurrency: 50");
        assert_eq!(
            verify_worker_config(&eventlet, Driver::Redis, "", &log),
            ["celery worker log contains 'Couldn't ack' (1x): Celery could not acknowledge tasks it ran; the broker will deliver them again"]
        );
        // Room for every green thread, on Redis only, stated in the result.
        let mut configuration = Configuration::default();
        let case = Case::new(
            "io",
            Driver::Redis,
            eventlet.clone(),
            "io_fetch",
            10,
            &crate::profile::Profile::load(&crate::project_root(), "ci").unwrap(),
        );
        System::CELERY.record_settings(&case, &mut configuration);
        assert_eq!(
            configuration.settings["broker_transport_options.max_connections"],
            "60"
        );
        let threads = celery::acking_late("threads", 50);
        let case = Case {
            variant: threads,
            ..case
        };
        let mut configuration = Configuration::default();
        System::CELERY.record_settings(&case, &mut configuration);
        assert!(configuration.settings.is_empty());
    }

    #[test]
    fn delivery_follows_the_ack_mode() {
        let asyncio = Variant::new(System::ASYNCTASQ, "asyncio", 10);
        assert_eq!(System::ASYNCTASQ.delivery(&asyncio), Delivery::AtLeastOnce);
        let threads = Variant::new(System::CELERY, "threads", 10);
        assert_eq!(System::CELERY.delivery(&threads), Delivery::AtMostOnce);
        let late = celery::acking_late("threads", 10);
        assert_eq!(System::CELERY.delivery(&late), Delivery::AtLeastOnce);
    }

    #[test]
    fn options_show_in_the_label_in_name_order() {
        let v = Variant::new(System::CELERY, "gevent", 50)
            .with("http", "httpx")
            .with("acks", "late");
        assert_eq!(v.label(), "gevent-c50-acks_late-http_httpx");
        assert_eq!(v.option("http"), Some("httpx"));
    }
}
