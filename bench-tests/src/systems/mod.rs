//! Systems under test: how to start each one's worker (its own CLI) and producer (its
//! own client API, in `fixtures/python/tasq_fixtures/produce.py`) for a given variant.

pub mod asynctasq;
pub mod celery;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::provision::brokers::{Driver, Namespace};
use crate::provision::python::PythonEnv;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    Asynctasq,
    Celery,
}

impl System {
    pub const ALL: [System; 2] = [System::Asynctasq, System::Celery];

    pub fn name(self) -> &'static str {
        match self {
            System::Asynctasq => "asynctasq",
            System::Celery => "celery",
        }
    }

    pub fn parse(name: &str) -> Result<System> {
        match System::ALL.into_iter().find(|s| s.name() == name) {
            Some(system) => Ok(system),
            None => bail!(
                "unknown system '{name}'; valid systems: {}",
                System::ALL.map(System::name).join(", ")
            ),
        }
    }

    /// The Python distribution whose version is recorded for this system.
    pub fn package(self) -> &'static str {
        self.name()
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a system's worker executes tasks: the pool and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variant {
    pub system: System,
    /// asyncio (AsyncTasQ), threads, prefork or solo (Celery).
    pub pool: String,
    pub concurrency: u32,
}

impl Variant {
    pub fn new(system: System, pool: &str, concurrency: u32) -> Variant {
        Variant {
            system,
            pool: pool.to_string(),
            concurrency,
        }
    }

    /// e.g. `asyncio-c10`.
    pub fn label(&self) -> String {
        format!("{}-c{}", self.pool, self.concurrency)
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

/// The worker command of a variant.
pub fn worker_command(variant: &Variant, env: &RunEnv) -> Command {
    match variant.system {
        System::Asynctasq => asynctasq::worker_command(variant, env),
        System::Celery => celery::worker_command(variant, env),
    }
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
    let mut command = match system {
        System::Asynctasq => asynctasq::configured(env, env.python.python.clone()),
        System::Celery => celery::configured(env, env.python.python.clone()),
    };
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
    let log = format!("{stdout}\n{stderr}");
    let expected = match variant.system {
        System::Asynctasq => asynctasq::expected_log(variant, driver),
        System::Celery => celery::expected_log(variant, driver),
    };
    expected
        .into_iter()
        .filter(|needle| !log.contains(needle.as_str()))
        .map(|needle| format!("{} worker log does not confirm '{needle}'", variant.system))
        .collect()
}

/// Results of a system on a broker that readers must weigh differently.
pub fn caveats(system: System, broker: &dyn Namespace) -> Vec<String> {
    let mut caveats: Vec<String> = broker.caveat().into_iter().collect();
    if system == System::Celery && matches!(broker.driver(), Driver::Postgres | Driver::Mysql) {
        caveats.push("experimental: Celery through kombu's SQLAlchemy transport".into());
    }
    caveats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_lists_valid_systems() {
        assert_eq!(System::parse("celery").unwrap(), System::Celery);
        let err = System::parse("rq").unwrap_err().to_string();
        assert_eq!(err, "unknown system 'rq'; valid systems: asynctasq, celery");
    }
}
