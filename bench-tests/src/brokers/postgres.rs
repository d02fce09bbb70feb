//! PostgreSQL: BENCH_POSTGRES_URL, testcontainers postgres:17 (fsync left on), the local
//! default port; a fresh database per run, dropped after.

use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::{Connection, PgConnection};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage, ImageExt};

use super::{block_on, redact_url, Broker, BrokerInfo, Driver, Namespace, SourceSearch};
use crate::systems::System;

pub const ENV_URL: &str = "BENCH_POSTGRES_URL";
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const IMAGE: (&str, &str) = ("postgres", "17");
const LIMIT: Duration = Duration::from_secs(5);

pub struct PostgresBroker {
    info: BrokerInfo,
    /// Server URL with the maintenance database, for CREATE/DROP DATABASE.
    admin_url: String,
    _container: Option<Container<GenericImage>>,
}

impl PostgresBroker {
    /// Follows the source order, reading the URL from the environment.
    pub fn provide(progress: &mut dyn FnMut(&str)) -> Result<PostgresBroker> {
        Self::provide_from(std::env::var(ENV_URL).ok(), progress)
    }

    /// Follows the source order with `env_url` standing for the environment's URL.
    pub fn provide_from(
        env_url: Option<String>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<PostgresBroker> {
        let mut search = SourceSearch::new(Driver::Postgres, ENV_URL, env_url);
        if let Some(url) = search.env_url() {
            let version = server_version(&url).map_err(|e| search.env_url_failed(&url, e))?;
            return Ok(Self::found(ENV_URL.into(), url, version, None));
        }
        if search.docker_answers() {
            progress("starting postgres:17 with testcontainers");
            // The image's own defaults keep fsync on (the testcontainers module turns it off).
            let started = GenericImage::new(IMAGE.0, IMAGE.1)
                .with_wait_for(WaitFor::message_on_stderr(
                    "database system is ready to accept connections",
                ))
                .with_exposed_port(5432.tcp())
                .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
                .start()
                .map_err(anyhow::Error::from)
                .and_then(|c| {
                    let port = c.get_host_port_ipv4(5432)?;
                    Ok((c, format!("postgres://postgres@127.0.0.1:{port}/postgres")))
                });
            match started.and_then(|(c, url)| server_version(&url).map(|v| (c, url, v))) {
                Ok((c, url, version)) => {
                    return Ok(Self::found(
                        "testcontainers postgres:17".into(),
                        url,
                        version,
                        Some(c),
                    ))
                }
                Err(e) => search.failed("testcontainers postgres:17", e),
            }
        }
        match server_version(DEFAULT_URL) {
            Ok(version) => {
                return Ok(Self::found(
                    "local 127.0.0.1:5432".into(),
                    DEFAULT_URL.into(),
                    version,
                    None,
                ))
            }
            Err(e) => search.failed(DEFAULT_URL, e),
        }
        Err(search.give_up(&format!("Set {ENV_URL}=postgres://user:pass@host:port/db, start Docker, or start PostgreSQL locally.")))
    }

    fn found(
        source: String,
        admin_url: String,
        server_version: String,
        container: Option<Container<GenericImage>>,
    ) -> Self {
        PostgresBroker {
            info: BrokerInfo {
                driver: Driver::Postgres,
                source,
                url: redact_url(&admin_url),
                server_version,
            },
            admin_url,
            _container: container,
        }
    }
}

impl Broker for PostgresBroker {
    fn info(&self) -> &BrokerInfo {
        &self.info
    }

    fn namespace(&self, key: &str) -> Result<Box<dyn Namespace>> {
        let database = format!("tasq_bench_{key}");
        let admin = self.admin_url.clone();
        let statement = format!("CREATE DATABASE {database}");
        block_on(LIMIT, async move {
            let mut conn = PgConnection::connect(&admin).await?;
            sqlx::query(&statement).execute(&mut conn).await?;
            Ok(())
        })
        .with_context(|| format!("creating database {database} on {}", self.info.url))?;
        Ok(Box::new(PostgresNamespace {
            admin_url: self.admin_url.clone(),
            url: with_database(&self.admin_url, &database),
            database,
        }))
    }
}

pub struct PostgresNamespace {
    admin_url: String,
    pub url: String,
    database: String,
}

impl Namespace for PostgresNamespace {
    fn driver(&self) -> Driver {
        Driver::Postgres
    }

    fn asynctasq_env(&self) -> Vec<(String, String)> {
        vec![
            ("ASYNCTASQ_DRIVER".into(), "postgres".into()),
            (
                "ASYNCTASQ_POSTGRES_DSN".into(),
                self.url.replacen("postgres://", "postgresql://", 1),
            ),
        ]
    }

    fn connection_url(&self) -> String {
        self.url.clone()
    }

    fn celery_url(&self) -> String {
        // kombu's SQLAlchemy transport (experimental in Celery) with the psycopg 3 driver.
        self.url
            .replacen("postgres://", "sqla+postgresql+psycopg://", 1)
    }

    fn dead_letter_ns(&self, queue: &str) -> Result<Option<u64>> {
        let (url, queue) = (self.url.clone(), queue.to_string());
        block_on(LIMIT, async move {
            let mut conn = PgConnection::connect(&url).await?;
            let at: Option<i64> = sqlx::query_scalar("SELECT (extract(epoch FROM failed_at) * 1e9)::bigint FROM dead_letter_queue WHERE queue_name = $1 ORDER BY id LIMIT 1").bind(queue).fetch_optional(&mut conn).await?;
            Ok(at.map(|ns| ns as u64))
        })
    }

    fn message_bytes(&self, system: System, queue: &str) -> Result<u64> {
        let query = match system {
            System::Asynctasq => "SELECT octet_length(payload)::bigint FROM task_queue WHERE queue_name = $1 LIMIT 1",
            System::Celery => {
                "SELECT octet_length(m.payload)::bigint FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id WHERE q.name = $1 LIMIT 1"
            }
        };
        let (url, queue) = (self.url.clone(), queue.to_string());
        block_on(LIMIT, async move {
            let mut conn = PgConnection::connect(&url).await?;
            let bytes: i64 = sqlx::query_scalar(query)
                .bind(queue)
                .fetch_one(&mut conn)
                .await?;
            Ok(bytes as u64)
        })
    }

    fn queue_depth(&self, system: System, queue: &str) -> Result<u64> {
        let query = depth_query(system);
        let (url, queue) = (self.url.clone(), queue.to_string());
        block_on(LIMIT, async move {
            let mut conn = PgConnection::connect(&url).await?;
            let depth: i64 = sqlx::query_scalar(query)
                .bind(queue)
                .fetch_one(&mut conn)
                .await?;
            Ok(depth as u64)
        })
    }

    fn caveat(&self) -> Option<String> {
        None
    }
}

/// Pending tasks of `queue`: AsyncTasQ's `task_queue` table, or kombu's `kombu_message`.
fn depth_query(system: System) -> &'static str {
    match system {
        System::Asynctasq => "SELECT count(*) FROM task_queue WHERE queue_name = $1 AND status = 'pending'",
        System::Celery => {
            "SELECT count(*) FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id WHERE q.name = $1 AND m.visible"
        }
    }
}

impl Drop for PostgresNamespace {
    fn drop(&mut self) {
        let (admin, statement) = (
            self.admin_url.clone(),
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database),
        );
        let _ = block_on(LIMIT, async move {
            let mut conn = PgConnection::connect(&admin).await?;
            sqlx::query(&statement).execute(&mut conn).await?;
            Ok(())
        });
    }
}

/// `postgres://u@h:p/postgres` → `postgres://u@h:p/<database>` (query string kept).
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let server = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{server}/{database}?{q}"),
        None => format!("{server}/{database}"),
    }
}

fn server_version(url: &str) -> Result<String> {
    let url = url.to_string();
    block_on(LIMIT, async move {
        let mut conn = PgConnection::connect(&url).await?;
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut conn)
            .await?;
        Ok(version)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_replaces_the_path() {
        assert_eq!(
            with_database("postgres://u@h:1/postgres", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
        assert_eq!(
            with_database("mysql://root@h:1/test?ssl=false", "x"),
            "mysql://root@h:1/x?ssl=false"
        );
    }
}
