//! AsyncTasQ: its own worker CLI (through `tasq_fixtures.asynctasq_worker`, which sets the
//! log level Celery runs at), configured by ASYNCTASQ_* variables.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};

use super::{Delivery, QueueSystem, RunEnv, Variant};
use crate::provision::brokers::{Driver, Endpoint, QueueRef};

/// Creating AsyncTasQ's tables takes a second or two; a minute means something is wrong.
const MIGRATE_LIMIT: Duration = Duration::from_secs(60);

pub struct AsyncTasq;

impl QueueSystem for AsyncTasq {
    fn name(&self) -> &'static str {
        "asynctasq"
    }

    fn packages(&self) -> &'static [&'static str] {
        &["asynctasq", "uvloop", "aiohttp", "httpx"]
    }

    fn drivers(&self) -> &'static [Driver] {
        &Driver::ALL
    }

    fn pools(&self) -> &'static [&'static str] {
        // The worker's event loop; `sync` and `process` are task classes run from it.
        &["asyncio", "async", "sync", "process"]
    }

    fn configured(&self, env: &RunEnv, program: PathBuf) -> Command {
        let mut command = env.command(program);
        command
            .envs(driver_env(&env.broker.endpoint()))
            .env("ASYNCTASQ_TASK_DEFAULTS_QUEUE", env.queue);
        command
    }

    /// `python -m asynctasq worker ...`, run by a launcher that sets the root log level to
    /// WARNING after AsyncTasQ's own logging setup (which fixes INFO; per-task lines come only with events on).
    fn worker_command(&self, variant: &Variant, env: &RunEnv) -> Command {
        let mut command = self.configured(env, env.python.python.clone());
        command.env("BENCH_ASYNCTASQ_LOG_LEVEL", super::WORKER_LOG_LEVEL);
        if let Some(client) = variant.option("http") {
            command.env("BENCH_HTTP_CLIENT", client);
        }
        command.args([
            "-m",
            "tasq_fixtures.asynctasq_worker",
            "worker",
            "--driver",
            env.broker.driver().name(),
            "--queues",
            env.queue,
        ]);
        command.args(["--concurrency", &variant.concurrency.to_string()]);
        command
    }

    /// PostgreSQL and MySQL: `python -m asynctasq migrate --driver D` creates the queue and
    /// dead-letter tables. The command ignores ASYNCTASQ_DRIVER, hence the flag.
    fn prepare(&self, env: &RunEnv, dir: &Path) -> Result<()> {
        if !matches!(env.broker.driver(), Driver::Postgres | Driver::Mysql) {
            return Ok(());
        }
        let mut migrate = self.configured(env, env.python.python.clone());
        migrate.args([
            "-m",
            "asynctasq",
            "migrate",
            "--driver",
            env.broker.driver().name(),
        ]);
        let (status, _) =
            crate::measure::procs::run_bounded("migrate", &mut migrate, dir, MIGRATE_LIMIT)?;
        if !status.success() {
            bail!(
                "`asynctasq migrate --driver {}` failed ({status}): {}{}",
                env.broker.driver(),
                crate::measure::procs::tail_of_file(&dir.join("migrate.err"), 25),
                crate::measure::procs::tail_of_file(&dir.join("migrate.out"), 25)
            );
        }
        Ok(())
    }

    /// At WARNING AsyncTasQ logs none of its settings, so the launcher reads them from the
    /// Worker object as it starts (`BENCH_CONFIG key=value`); the banner names the driver
    /// class too.
    fn expected_log(&self, variant: &Variant, driver: Driver) -> Vec<String> {
        let class = match driver {
            Driver::Redis => "RedisDriver",
            Driver::Postgres => "PostgresDriver",
            Driver::Mysql => "MySQLDriver",
            Driver::Rabbitmq => "RabbitMQDriver",
            Driver::Sqs => "SQSDriver",
        };
        let mut lines: Vec<String> = [
            format!("driver_class={class}"),
            format!("concurrency={}", variant.concurrency),
            format!("log_level={}", super::WORKER_LOG_LEVEL),
        ]
        .iter()
        .map(|setting| format!("BENCH_CONFIG {setting}\n"))
        .collect();
        lines.push(class.to_string());
        // Events are set through the run's task environment by the workload that varies them.
        let events = variant.option("events") == Some("on");
        lines.push(format!(
            "BENCH_CONFIG events_redis={}\n",
            if events { "True" } else { "False" }
        ));
        lines
    }

    /// INFO lines AsyncTasQ writes at startup and per task.
    fn forbidden_log(&self, _variant: &Variant) -> Vec<(String, String)> {
        ["Using uvloop event loop policy", "Processing task"]
            .map(|line| (line.into(), super::LOG_LEVEL_NOT_APPLIED.into()))
            .into()
    }

    /// Every driver acknowledges after the task (Redis: LMOVE to a processing list; SQL:
    /// a locked row; RabbitMQ and SQS: ack / delete after the task).
    fn delivery(&self, _variant: &Variant) -> Delivery {
        Delivery::AtLeastOnce
    }

    /// Pending tasks: the Redis list `queue:<name>`, rows of `task_queue` in SQL, the
    /// broker's own queue elsewhere.
    fn queue_ref(&self, driver: Driver, queue: &str) -> QueueRef {
        let sql = |depth, bytes| QueueRef::sql(queue, depth, bytes);
        match driver {
            Driver::Redis => QueueRef::RedisList(format!("queue:{queue}")),
            Driver::Postgres => sql(
                "SELECT count(*) FROM task_queue WHERE queue_name = $1 AND status = 'pending'",
                "SELECT octet_length(payload)::bigint FROM task_queue WHERE queue_name = $1 LIMIT 1",
            ),
            Driver::Mysql => sql(
                "SELECT count(*) FROM task_queue WHERE queue_name = ? AND status = 'pending'",
                "SELECT CAST(LENGTH(payload) AS SIGNED) FROM task_queue WHERE queue_name = ? LIMIT 1",
            ),
            Driver::Rabbitmq | Driver::Sqs => QueueRef::Named(queue.into()),
        }
    }
}

/// ASYNCTASQ_* variables that point AsyncTasQ at a namespace (ASYNCTASQ_DRIVER included).
pub fn driver_env(endpoint: &Endpoint) -> Vec<(String, String)> {
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    match endpoint {
        Endpoint::Redis { server_url, db } => vec![
            pair("ASYNCTASQ_DRIVER", "redis"),
            pair("ASYNCTASQ_REDIS_URL", server_url),
            pair("ASYNCTASQ_REDIS_DB", &db.to_string()),
        ],
        Endpoint::Sql { driver, url } => {
            let rest = url.split_once("://").map_or("", |(_, rest)| rest);
            let (name, var, scheme) = match driver {
                Driver::Mysql => ("mysql", "ASYNCTASQ_MYSQL_DSN", "mysql://"),
                _ => ("postgres", "ASYNCTASQ_POSTGRES_DSN", "postgresql://"),
            };
            vec![
                pair("ASYNCTASQ_DRIVER", name),
                pair(var, &format!("{scheme}{rest}")),
            ]
        }
        Endpoint::Amqp { url } => vec![
            pair("ASYNCTASQ_DRIVER", "rabbitmq"),
            pair("ASYNCTASQ_RABBITMQ_URL", url),
        ],
        Endpoint::Sqs {
            url,
            region,
            access_key,
            secret_key,
            aws_env,
        } => {
            let mut env = vec![
                pair("ASYNCTASQ_DRIVER", "sqs"),
                pair("ASYNCTASQ_SQS_REGION", region),
                pair("ASYNCTASQ_SQS_AWS_ACCESS_KEY_ID", access_key),
                pair("ASYNCTASQ_SQS_AWS_SECRET_ACCESS_KEY", secret_key),
            ];
            if let Some(url) = url {
                env.push(pair("ASYNCTASQ_SQS_ENDPOINT_URL", url));
            }
            env.extend(aws_env.iter().cloned());
            env
        }
    }
}
