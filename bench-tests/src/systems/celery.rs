//! Celery: `celery -A tasq_fixtures.celery_app worker`, json, no result backend.

use std::path::PathBuf;
use std::process::Command;

use super::{RunEnv, Variant};

pub fn configured(env: &RunEnv, program: PathBuf) -> Command {
    let mut command = env.command(program);
    command.env("BENCH_BROKER_URL", env.broker.url()).env(
        "BENCH_CELERY_PREFETCH",
        env.celery_prefetch_multiplier.to_string(),
    );
    command
}

pub fn worker_command(variant: &Variant, env: &RunEnv) -> Command {
    let mut command = configured(env, env.python.bin("celery"));
    command.args([
        "-A",
        "tasq_fixtures.celery_app",
        "worker",
        "-P",
        &variant.pool,
    ]);
    command.args(["-c", &variant.concurrency.to_string(), "-Q", env.queue]);
    command.args([
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "WARNING",
    ]);
    command
}

/// Celery prints its banner with `concurrency: N (pool)` and the transport URL.
pub fn verify(variant: &Variant, stdout: &str, stderr: &str) -> Vec<String> {
    let log = format!("{stdout}\n{stderr}");
    let pool_word = match variant.pool.as_str() {
        "threads" => "thread",
        other => other,
    };
    let expected = [
        format!("concurrency: {} ({pool_word})", variant.concurrency),
        "transport:   redis://".to_string(),
    ];
    expected
        .into_iter()
        .filter(|needle| !log.contains(needle.as_str()))
        .map(|needle| format!("celery worker banner does not confirm '{needle}'"))
        .collect()
}
