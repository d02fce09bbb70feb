//! Celery: `celery -A tasq_fixtures.celery_app worker`, json, no result backend.

use std::path::PathBuf;
use std::process::Command;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use super::{QueueSystem, RunEnv, Variant};
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
        &["celery"]
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

    fn worker_command(&self, variant: &Variant, env: &RunEnv) -> Command {
        let mut command = self.configured(env, env.python.bin("celery"));
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
        vec![
            format!("concurrency: {} ({pool_word})", variant.concurrency),
            format!("transport:   {transport}"),
        ]
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

    fn caveats(&self, driver: Driver) -> Vec<String> {
        match driver {
            Driver::Postgres | Driver::Mysql => {
                vec!["experimental: Celery through kombu's SQLAlchemy transport".into()]
            }
            _ => Vec::new(),
        }
    }

    fn record_settings(&self, case: &Case, configuration: &mut Configuration) {
        configuration.celery_prefetch_multiplier = Some(case.celery_prefetch_multiplier);
        configuration.celery_acks = Some(match case.variant.option("acks") {
            Some("late") => "late (task_acks_late)".to_string(),
            _ => "early (Celery default)".to_string(),
        });
    }
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
