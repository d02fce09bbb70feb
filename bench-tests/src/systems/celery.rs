//! Celery: `celery -A tasq_fixtures.celery_app worker`, json, no result backend.

use std::path::PathBuf;
use std::process::Command;

use super::{RunEnv, Variant};
use crate::provision::brokers::Driver;

pub fn configured(env: &RunEnv, program: PathBuf) -> Command {
    let mut command = env.command(program);
    command
        .env("BENCH_BROKER_URL", env.broker.celery_url())
        .env(
            "BENCH_CELERY_PREFETCH",
            env.celery_prefetch_multiplier.to_string(),
        );
    if let Some(options) = env.broker.celery_transport_options() {
        command.env("BENCH_CELERY_TRANSPORT_OPTIONS", options);
    }
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
pub fn expected_log(variant: &Variant, driver: Driver) -> Vec<String> {
    let pool_word = match variant.pool.as_str() {
        "threads" => "thread",
        other => other,
    };
    let transport = match driver {
        Driver::Redis => "redis://",
        Driver::Postgres => "sqla+postgresql",
        Driver::Mysql => "sqla+mysql",
        Driver::Rabbitmq => "amqp://",
        Driver::Sqs => "sqs://",
    };
    vec![
        format!("concurrency: {} ({pool_word})", variant.concurrency),
        format!("transport:   {transport}"),
    ]
}
