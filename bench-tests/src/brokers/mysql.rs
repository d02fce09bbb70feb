//! MySQL/MariaDB: BENCH_MYSQL_URL, testcontainers mysql:8.4, the local default port;
//! a fresh database per run, dropped after.

use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::{Connection, MySqlConnection};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage, ImageExt};

use super::postgres::with_database;
use super::{block_on, redact_url, Broker, BrokerInfo, Driver, Namespace, SourceSearch};
use crate::systems::System;

pub const ENV_URL: &str = "BENCH_MYSQL_URL";
pub const DEFAULT_URL: &str = "mysql://root@127.0.0.1:3306/test";
const LIMIT: Duration = Duration::from_secs(5);

pub struct MysqlBroker {
    info: BrokerInfo,
    admin_url: String,
    _container: Option<Container<GenericImage>>,
}

impl MysqlBroker {
    /// Follows the source order, reading the URL from the environment.
    pub fn provide(progress: &mut dyn FnMut(&str)) -> Result<MysqlBroker> {
        Self::provide_from(std::env::var(ENV_URL).ok(), progress)
    }

    /// Follows the source order with `env_url` standing for the environment's URL.
    pub fn provide_from(
        env_url: Option<String>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<MysqlBroker> {
        let mut search = SourceSearch::new(Driver::Mysql, ENV_URL, env_url);
        if let Some(url) = search.env_url() {
            let version = server_version(&url).map_err(|e| search.env_url_failed(&url, e))?;
            return Ok(Self::found(ENV_URL.into(), url, version, None));
        }
        if search.docker_answers() {
            progress("starting mysql:8.4 with testcontainers");
            let started = GenericImage::new("mysql", "8.4")
                .with_wait_for(WaitFor::message_on_stderr("ready for connections. Version"))
                .with_exposed_port(3306.tcp())
                .with_env_var("MYSQL_ALLOW_EMPTY_PASSWORD", "yes")
                .with_env_var("MYSQL_DATABASE", "test")
                .start()
                .map_err(anyhow::Error::from)
                .and_then(|c| {
                    let port = c.get_host_port_ipv4(3306)?;
                    Ok((c, format!("mysql://root@127.0.0.1:{port}/test")))
                });
            match started.and_then(|(c, url)| server_version(&url).map(|v| (c, url, v))) {
                Ok((c, url, version)) => {
                    return Ok(Self::found(
                        "testcontainers mysql:8.4".into(),
                        url,
                        version,
                        Some(c),
                    ))
                }
                Err(e) => search.failed("testcontainers mysql:8.4", e),
            }
        }
        match server_version(DEFAULT_URL) {
            Ok(version) => {
                return Ok(Self::found(
                    "local 127.0.0.1:3306".into(),
                    DEFAULT_URL.into(),
                    version,
                    None,
                ))
            }
            Err(e) => search.failed(DEFAULT_URL, e),
        }
        Err(search.give_up(&format!("Set {ENV_URL}=mysql://user:pass@host:port/db, start Docker, or start MySQL/MariaDB locally.")))
    }

    fn found(
        source: String,
        admin_url: String,
        server_version: String,
        container: Option<Container<GenericImage>>,
    ) -> Self {
        MysqlBroker {
            info: BrokerInfo {
                driver: Driver::Mysql,
                source,
                url: redact_url(&admin_url),
                server_version,
            },
            admin_url,
            _container: container,
        }
    }
}

impl Broker for MysqlBroker {
    fn info(&self) -> &BrokerInfo {
        &self.info
    }

    fn namespace(&self, key: &str) -> Result<Box<dyn Namespace>> {
        let database = format!("tasq_bench_{key}");
        let (admin, statement) = (
            self.admin_url.clone(),
            format!("CREATE DATABASE {database}"),
        );
        block_on(LIMIT, async move {
            let mut conn = MySqlConnection::connect(&admin).await?;
            sqlx::raw_sql(&statement).execute(&mut conn).await?;
            Ok(())
        })
        .with_context(|| format!("creating database {database} on {}", self.info.url))?;
        Ok(Box::new(MysqlNamespace {
            admin_url: self.admin_url.clone(),
            url: with_database(&self.admin_url, &database),
            database,
        }))
    }
}

pub struct MysqlNamespace {
    admin_url: String,
    pub url: String,
    database: String,
}

impl Namespace for MysqlNamespace {
    fn driver(&self) -> Driver {
        Driver::Mysql
    }

    fn asynctasq_env(&self) -> Vec<(String, String)> {
        vec![
            ("ASYNCTASQ_DRIVER".into(), "mysql".into()),
            ("ASYNCTASQ_MYSQL_DSN".into(), self.url.clone()),
        ]
    }

    fn connection_url(&self) -> String {
        self.url.clone()
    }

    fn celery_url(&self) -> String {
        // kombu's SQLAlchemy transport (experimental in Celery) with PyMySQL.
        self.url.replacen("mysql://", "sqla+mysql+pymysql://", 1)
    }

    fn dead_letter_ns(&self, queue: &str) -> Result<Option<u64>> {
        let (url, queue) = (self.url.clone(), queue.to_string());
        block_on(LIMIT, async move {
            let mut conn = MySqlConnection::connect(&url).await?;
            let at: Option<i64> = sqlx::query_scalar("SELECT CAST(UNIX_TIMESTAMP(failed_at) * 1000000000 AS SIGNED) FROM dead_letter_queue WHERE queue_name = ? ORDER BY id LIMIT 1").bind(queue).fetch_optional(&mut conn).await?;
            Ok(at.map(|ns| ns as u64))
        })
    }

    fn message_bytes(&self, system: System, queue: &str) -> Result<u64> {
        let query = match system {
            System::Asynctasq => "SELECT CAST(LENGTH(payload) AS SIGNED) FROM task_queue WHERE queue_name = ? LIMIT 1",
            System::Celery => {
                "SELECT CAST(LENGTH(m.payload) AS SIGNED) FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id WHERE q.name = ? LIMIT 1"
            }
        };
        let (url, queue) = (self.url.clone(), queue.to_string());
        block_on(LIMIT, async move {
            let mut conn = MySqlConnection::connect(&url).await?;
            let bytes: i64 = sqlx::query_scalar(query)
                .bind(queue)
                .fetch_one(&mut conn)
                .await?;
            Ok(bytes as u64)
        })
    }

    fn queue_depth(&self, system: System, queue: &str) -> Result<u64> {
        let query = match system {
            System::Asynctasq => "SELECT count(*) FROM task_queue WHERE queue_name = ? AND status = 'pending'",
            System::Celery => {
                "SELECT count(*) FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id WHERE q.name = ? AND m.visible = 1"
            }
        };
        let (url, queue) = (self.url.clone(), queue.to_string());
        block_on(LIMIT, async move {
            let mut conn = MySqlConnection::connect(&url).await?;
            let depth: i64 = sqlx::query_scalar(query)
                .bind(queue)
                .fetch_one(&mut conn)
                .await?;
            Ok(depth as u64)
        })
    }
}

impl Drop for MysqlNamespace {
    fn drop(&mut self) {
        let (admin, statement) = (
            self.admin_url.clone(),
            format!("DROP DATABASE IF EXISTS {}", self.database),
        );
        let _ = block_on(LIMIT, async move {
            let mut conn = MySqlConnection::connect(&admin).await?;
            sqlx::raw_sql(&statement).execute(&mut conn).await?;
            Ok(())
        });
    }
}

fn server_version(url: &str) -> Result<String> {
    let url = url.to_string();
    block_on(LIMIT, async move {
        let mut conn = MySqlConnection::connect(&url).await?;
        let version: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(&mut conn)
            .await?;
        Ok(version)
    })
}
