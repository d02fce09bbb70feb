//! Celery: `celery -A tasq_fixtures.celery_app worker`, json, no result backend.

use std::path::PathBuf;
use std::process::Command;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use super::{Delivery, QueueSystem, RunEnv, Variant};
use crate::provision::brokers::{Driver, Endpoint, QueueRef};
use crate::result::Configuration;
use crate::workloads::Case;

/// Celery's own default `worker_prefetch_multiplier`.
pub const DEFAULT_PREFETCH: u32 = 4;

pub struct Celery;

impl QueueSystem for Celery {
    fn name(&self) -> &'static str {
        "celery"
    }

    fn packages(&self) -> &'static [&'static str] {
        &["celery", "gevent", "eventlet", "requests", "httpx"]
    }

    fn drivers(&self) -> &'static [Driver] {
        &Driver::ALL
    }

    fn pools(&self) -> &'static [&'static str] {
        &["prefork", "threads", "solo", "gevent", "eventlet"]
    }

    fn configured(&self, env: &RunEnv, program: PathBuf) -> Command {
        let endpoint = env.broker.endpoint();
        let mut command = env.command(program);
        command.env("BENCH_BROKER_URL", broker_url(&endpoint)).env(
            "BENCH_CELERY_PREFETCH",
            env.celery_prefetch_multiplier.to_string(),
        );
        if let Some(options) = transport_options(&endpoint) {
            command.env("BENCH_CELERY_TRANSPORT_OPTIONS", options);
        }
        command
    }

    /// Options: `acks=late` (task_acks_late), `http=requests|httpx` (the io task's client).
    fn worker_command(&self, variant: &Variant, env: &RunEnv) -> Command {
        let mut command = self.configured(env, env.python.bin("celery"));
        command.env("BENCH_CELERY_POOL", &variant.pool).env(
            "BENCH_CELERY_ACKS",
            variant.option("acks").unwrap_or("early"),
        );
        if let Some(client) = variant.option("http") {
            command.env("BENCH_HTTP_CLIENT", client);
        }
        if let Some(options) =
            worker_transport_options(variant, env.broker.driver(), &env.broker.endpoint())
        {
            command.env("BENCH_CELERY_TRANSPORT_OPTIONS", options);
        }
        command.args([
            "-A",
            "tasq_fixtures.celery_app",
            "worker",
            "-P",
            &variant.pool,
        ]);
        command.args(["-c", &variant.concurrency.to_string(), "-Q", env.queue]);
        command.args(worker_switches(variant));
        command.args(["--loglevel", super::WORKER_LOG_LEVEL]);
        command
    }

    /// Celery prints its banner with `concurrency: N (pool)` and the transport URL; the app
    /// writes the settings that took effect when the worker is ready (`BENCH_CONFIG`), and
    /// for gevent and eventlet whether their monkey-patching replaced the socket module.
    fn expected_log(&self, variant: &Variant, driver: Driver) -> Vec<String> {
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
        let acks_late = if late_acks(variant) { "True" } else { "False" };
        let mut lines = vec![
            format!("concurrency: {} ({pool_word})", variant.concurrency),
            format!("transport:   {transport}"),
            format!("BENCH_CONFIG acks_late={acks_late}\n"),
            format!("BENCH_CONFIG log_level={}\n", super::WORKER_LOG_LEVEL),
        ];
        if matches!(variant.pool.as_str(), "gevent" | "eventlet") {
            lines.push(format!(
                "BENCH_POOL_CHECK {} monkey_patched socket=True\n",
                variant.pool
            ));
        }
        if let Some(n) = redis_max_connections(variant, driver) {
            lines.push(format!("BENCH_CONFIG redis_max_connections={n}\n"));
        }
        // Set through the run's task environment by the workloads that vary them.
        if let Some(serializer) = variant.option("serializer") {
            lines.push(format!("BENCH_CONFIG task_serializer={serializer}\n"));
        }
        if variant.option("events") == Some("on") {
            lines.push("BENCH_CONFIG send_task_events=True\n".into());
        }
        lines
    }

    /// Celery's INFO records (`[time: INFO/MainProcess] ...`), and a failed ack: Celery
    /// logs it (CRITICAL) and goes on, and the broker delivers the task again later.
    fn forbidden_log(&self, _variant: &Variant) -> Vec<(String, String)> {
        vec![
            (": INFO/".into(), super::LOG_LEVEL_NOT_APPLIED.into()),
            (
                "Couldn't ack".into(),
                "Celery could not acknowledge tasks it ran; the broker will deliver them again"
                    .into(),
            ),
        ]
    }

    /// Early ack (Celery's default) acknowledges a message when the worker receives it.
    fn delivery(&self, variant: &Variant) -> Delivery {
        if late_acks(variant) {
            Delivery::AtLeastOnce
        } else {
            Delivery::AtMostOnce
        }
    }

    /// Pending tasks: the Redis list named after the queue, kombu's SQLAlchemy tables, the
    /// broker's own queue elsewhere.
    fn queue_ref(&self, driver: Driver, queue: &str) -> QueueRef {
        let sql = |depth, bytes| QueueRef::sql(queue, depth, bytes);
        match driver {
            Driver::Redis => QueueRef::RedisList(queue.into()),
            Driver::Postgres => sql(
                "SELECT count(*) FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id WHERE q.name = $1 AND m.visible",
                "SELECT octet_length(m.payload)::bigint FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id WHERE q.name = $1 LIMIT 1",
            ),
            Driver::Mysql => sql(
                "SELECT count(*) FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id WHERE q.name = ? AND m.visible = 1",
                "SELECT CAST(LENGTH(m.payload) AS SIGNED) FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id WHERE q.name = ? LIMIT 1",
            ),
            Driver::Rabbitmq | Driver::Sqs => QueueRef::Named(queue.into()),
        }
    }

    fn caveats(&self, variant: &Variant, driver: Driver) -> Vec<String> {
        let mut caveats = Vec::new();
        if matches!(driver, Driver::Postgres | Driver::Mysql) {
            caveats.push("experimental: Celery through kombu's SQLAlchemy transport".into());
        }
        if variant.pool == "eventlet" {
            caveats.push(
                "eventlet is deprecated upstream (bug-fix mode); Celery still ships its pool"
                    .into(),
            );
        }
        caveats
    }

    fn record_settings(&self, case: &Case, configuration: &mut Configuration) {
        configuration.celery_prefetch_multiplier = Some(case.celery_prefetch_multiplier);
        configuration.celery_acks = Some(if late_acks(&case.variant) {
            "late (task_acks_late)".to_string()
        } else {
            "early (Celery default)".to_string()
        });
        if let Some(n) = redis_max_connections(&case.variant, case.driver) {
            configuration.settings.insert(
                "broker_transport_options.max_connections".into(),
                n.to_string(),
            );
        }
    }
}

/// A Celery variant with `task_acks_late`: at-least-once, as AsyncTasQ acknowledges, so the
/// two are compared at the same delivery semantics. Workloads that set a Celery variant
/// against an AsyncTasQ one use this; `throughput` also measures the early-ack default.
pub fn acking_late(pool: &str, concurrency: u32) -> Variant {
    Variant::new(super::System::CELERY, pool, concurrency).with("acks", "late")
}

/// No gossip, no mingle, no heartbeat: a lone worker needs none of them. Celery's
/// heartbeat is its worker-online/heartbeat/offline event sender (not a broker heartbeat),
/// so with `events=on` it runs and those events are counted like AsyncTasQ's. With events
/// off it stays off: the heartbeat alone would switch the event dispatcher on
/// (celery/worker/consumer/events.py, `send_events`).
fn worker_switches(variant: &Variant) -> Vec<&'static str> {
    let mut switches = vec!["--without-gossip", "--without-mingle"];
    if variant.option("events") != Some("on") {
        switches.push("--without-heartbeat");
    }
    switches
}

fn late_acks(variant: &Variant) -> bool {
    variant.option("acks") == Some("late")
}

/// Celery's broker URL for a namespace. Credentials in the SQS URL are percent-encoded:
/// kombu reads them from the URL, and an AWS secret may hold `/` or `+`.
pub fn broker_url(endpoint: &Endpoint) -> String {
    match endpoint {
        Endpoint::Redis { server_url, db } => format!("{server_url}/{db}"),
        Endpoint::Sql { driver, url } => {
            let scheme = match driver {
                Driver::Mysql => "sqla+mysql+pymysql://",
                _ => "sqla+postgresql+psycopg://",
            };
            format!(
                "{scheme}{}",
                url.split_once("://").map_or("", |(_, rest)| rest)
            )
        }
        Endpoint::Amqp { url } => url.replacen("amqp://", "pyamqp://", 1),
        Endpoint::Sqs {
            url,
            access_key,
            secret_key,
            ..
        } => {
            let host = url.as_deref().map_or("", |u| {
                u.trim_start_matches("http://")
                    .trim_start_matches("https://")
            });
            format!(
                "sqs://{}:{}@{host}",
                utf8_percent_encode(access_key, NON_ALPHANUMERIC),
                utf8_percent_encode(secret_key, NON_ALPHANUMERIC)
            )
        }
    }
}

/// Connections kombu's Redis transport may open beside the green threads' own: the
/// consumer's and the producer pool's.
const REDIS_SPARE_CONNECTIONS: u32 = 10;

/// kombu's Redis transport pools at most 10 connections (its `max_connections`). A green
/// pool acking late acks from each green thread, so above 10 of them acks fail with
/// `MaxConnectionsError` (Celery logs "Couldn't ack" and goes on: celery/celery#1350). Green
/// pools on Redis get room for every green thread, the setting that users apply.
fn redis_max_connections(variant: &Variant, driver: Driver) -> Option<u32> {
    let green = matches!(variant.pool.as_str(), "gevent" | "eventlet");
    (green && driver == Driver::Redis).then_some(variant.concurrency + REDIS_SPARE_CONNECTIONS)
}

/// The worker's `broker_transport_options`: the broker's own, plus the pool's.
fn worker_transport_options(
    variant: &Variant,
    driver: Driver,
    endpoint: &Endpoint,
) -> Option<String> {
    redis_max_connections(variant, driver)
        .map(|n| serde_json::json!({ "max_connections": n }).to_string())
        .or_else(|| transport_options(endpoint))
}

/// JSON for Celery's `broker_transport_options`, where the transport needs any (SQS).
fn transport_options(endpoint: &Endpoint) -> Option<String> {
    match endpoint {
        Endpoint::Sqs { url, region, .. } => {
            let secure = url.as_deref().is_none_or(|u| u.starts_with("https://"));
            Some(serde_json::json!({"region": region, "is_secure": secure}).to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heartbeat_runs_only_with_events_on() {
        let threads = acking_late("threads", 4);
        assert!(worker_switches(&threads).contains(&"--without-heartbeat"));
        let on = threads.with("events", "on");
        assert_eq!(
            worker_switches(&on),
            ["--without-gossip", "--without-mingle"]
        );
    }

    #[test]
    fn sqs_credentials_are_percent_encoded_in_the_url() {
        let endpoint = Endpoint::Sqs {
            url: Some("http://127.0.0.1:4566".into()),
            region: "us-east-1".into(),
            access_key: "AKIA/X".into(),
            secret_key: "a+b/c=d".into(),
            aws_env: Vec::new(),
        };
        assert_eq!(
            broker_url(&endpoint),
            "sqs://AKIA%2FX:a%2Bb%2Fc%3Dd@127.0.0.1:4566"
        );
    }
}
