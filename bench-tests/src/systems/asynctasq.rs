//! AsyncTasQ: `python -m asynctasq worker`, configured by ASYNCTASQ_* variables.

use std::path::PathBuf;
use std::process::Command;

use super::{RunEnv, Variant};

/// A command with AsyncTasQ's configuration for this run's broker in its environment.
pub fn configured(env: &RunEnv, program: PathBuf) -> Command {
    let mut command = env.command(program);
    command
        .env("ASYNCTASQ_DRIVER", "redis")
        .env("ASYNCTASQ_REDIS_URL", env.broker.server_url())
        .env("ASYNCTASQ_REDIS_DB", env.broker.db.to_string())
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
        "redis",
        "--queues",
        env.queue,
    ]);
    command.args(["--concurrency", &variant.concurrency.to_string()]);
    command
}

/// AsyncTasQ logs `Starting worker: driver=redis, queues=['q'], concurrency=N` at start.
pub fn verify(variant: &Variant, stdout: &str, stderr: &str) -> Vec<String> {
    let log = format!("{stdout}\n{stderr}");
    let expected = [
        "driver=redis".to_string(),
        format!("concurrency={}", variant.concurrency),
        "RedisDriver".to_string(),
    ];
    expected
        .into_iter()
        .filter(|needle| !log.contains(needle.as_str()))
        .map(|needle| format!("asynctasq worker log does not confirm '{needle}'"))
        .collect()
}
