//! AsyncTasQ: `python -m asynctasq worker`, configured by ASYNCTASQ_* variables.

use std::path::PathBuf;
use std::process::Command;

use super::{RunEnv, Variant};
use crate::provision::brokers::Driver;

/// A command with AsyncTasQ's configuration for this run's broker in its environment.
pub fn configured(env: &RunEnv, program: PathBuf) -> Command {
    let mut command = env.command(program);
    command
        .envs(env.broker.asynctasq_env())
        .env("ASYNCTASQ_TASK_DEFAULTS_QUEUE", env.queue);
    command
}

pub fn worker_command(variant: &Variant, env: &RunEnv) -> Command {
    let mut command = configured(env, env.python.python.clone());
    command.args([
        "-m",
        "asynctasq",
        "worker",
        "--driver",
        env.broker.driver().name(),
        "--queues",
        env.queue,
    ]);
    command.args(["--concurrency", &variant.concurrency.to_string()]);
    command
}

/// `python -m asynctasq migrate --driver D`: creates the queue and dead-letter tables
/// (PostgreSQL, MySQL). The command ignores ASYNCTASQ_DRIVER, hence the flag.
pub fn migrate_command(env: &RunEnv) -> Command {
    let mut command = configured(env, env.python.python.clone());
    command.args([
        "-m",
        "asynctasq",
        "migrate",
        "--driver",
        env.broker.driver().name(),
    ]);
    command
}

/// AsyncTasQ logs `Starting worker: driver=D, queues=[...], concurrency=N` and its
/// banner names the driver class.
pub fn expected_log(variant: &Variant, driver: Driver) -> Vec<String> {
    let class = match driver {
        Driver::Redis => "RedisDriver",
        Driver::Postgres => "PostgresDriver",
        Driver::Mysql => "MySQLDriver",
        Driver::Rabbitmq => "RabbitMQDriver",
        Driver::Sqs => "SQSDriver",
    };
    vec![
        format!("driver={}", driver.name()),
        format!("concurrency={}", variant.concurrency),
        class.to_string(),
    ]
}
