//! PostgreSQL and MySQL/MariaDB: one implementation, two dialects. Found in the order
//! environment URL, testcontainers (after a Docker ping), the local default port; a fresh
//! database per run, dropped after. Queries go through sqlx's `Any` driver, so the
//! dialects differ only in their data: URLs, images and SQL text.

use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::{AnyConnection, Connection};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage, ImageExt};

use super::{
    block_on, redact_url, Broker, BrokerInfo, Driver, Endpoint, Namespace, QueueRef, SourceSearch,
};

const LIMIT: Duration = Duration::from_secs(5);

/// Everything that differs between the SQL brokers.
pub struct Dialect {
    pub driver: Driver,
    pub env_var: &'static str,
    pub default_url: &'static str,
    /// Image, tag, port, the log line that means ready, environment, and the admin URL
    /// pattern with `{port}`.
    pub image: (&'static str, &'static str),
    pub port: u16,
    pub ready_on_stderr: &'static str,
    pub container_env: &'static [(&'static str, &'static str)],
    pub container_url: &'static str,
    pub version_query: &'static str,
    pub drop_database: &'static str,
    pub dead_letter_ns: &'static str,
}

/// postgres:17 keeps its default fsync on (the testcontainers module turns it off).
pub const POSTGRES: Dialect = Dialect {
    driver: Driver::Postgres,
    env_var: "BENCH_POSTGRES_URL",
    default_url: "postgres://postgres@127.0.0.1:5432/postgres",
    image: ("postgres", "17"),
    port: 5432,
    ready_on_stderr: "database system is ready to accept connections",
    container_env: &[("POSTGRES_HOST_AUTH_METHOD", "trust")],
    container_url: "postgres://postgres@127.0.0.1:{port}/postgres",
    version_query: "SHOW server_version",
    drop_database: "DROP DATABASE IF EXISTS {db} WITH (FORCE)",
    dead_letter_ns: "SELECT (extract(epoch FROM failed_at) * 1e9)::bigint FROM dead_letter_queue WHERE queue_name = $1 ORDER BY id LIMIT 1",
};

pub const MYSQL: Dialect = Dialect {
    driver: Driver::Mysql,
    env_var: "BENCH_MYSQL_URL",
    default_url: "mysql://root@127.0.0.1:3306/test",
    image: ("mysql", "8.4"),
    port: 3306,
    // The real server, not the image's temporary one (see the constant).
    ready_on_stderr: super::docker::MYSQL_READY_ON_STDERR,
    container_env: &[("MYSQL_ALLOW_EMPTY_PASSWORD", "yes"), ("MYSQL_DATABASE", "test")],
    container_url: "mysql://root@127.0.0.1:{port}/test",
    version_query: "SELECT VERSION()",
    drop_database: "DROP DATABASE IF EXISTS {db}",
    dead_letter_ns: "SELECT CAST(UNIX_TIMESTAMP(failed_at) * 1000000000 AS SIGNED) FROM dead_letter_queue WHERE queue_name = ? ORDER BY id LIMIT 1",
};

pub struct SqlBroker {
    dialect: &'static Dialect,
    info: BrokerInfo,
    /// Server URL with the maintenance database, for CREATE/DROP DATABASE.
    admin_url: String,
    _container: Option<Container<GenericImage>>,
}

impl SqlBroker {
    /// Follows the source order, reading the URL from the dialect's variable.
    pub fn provide(dialect: &'static Dialect, progress: &mut dyn FnMut(&str)) -> Result<SqlBroker> {
        Self::provide_from(dialect, std::env::var(dialect.env_var).ok(), progress)
    }

    /// Follows the source order with `env_url` standing for the environment's URL.
    pub fn provide_from(
        dialect: &'static Dialect,
        env_url: Option<String>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<SqlBroker> {
        let found =
            |source: String, admin_url: String, server_version: String, container| SqlBroker {
                dialect,
                info: BrokerInfo {
                    driver: dialect.driver,
                    source,
                    url: redact_url(&admin_url),
                    server_version,
                },
                admin_url,
                _container: container,
            };
        let mut search = SourceSearch::new(dialect.driver, dialect.env_var, env_url);
        if let Some((url, version)) = search.from_env(|url| server_version(dialect, url))? {
            return Ok(found(dialect.env_var.into(), url, version, None));
        }
        let image = format!("{}:{}", dialect.image.0, dialect.image.1);
        if let Some((c, url, version)) = search.container(&image, progress, || {
            let image = GenericImage::new(dialect.image.0, dialect.image.1)
                .with_wait_for(WaitFor::message_on_stderr(dialect.ready_on_stderr))
                .with_exposed_port(dialect.port.tcp());
            let request = dialect.container_env.iter().fold(
                image.into(),
                |r: testcontainers::ContainerRequest<GenericImage>, (k, v)| r.with_env_var(*k, *v),
            );
            let c = request.start()?;
            let port = c.get_host_port_ipv4(dialect.port)?;
            let url = dialect.container_url.replace("{port}", &port.to_string());
            let version = server_version(dialect, &url)?;
            Ok((c, url, version))
        }) {
            return Ok(found(
                format!("testcontainers {image}"),
                url,
                version,
                Some(c),
            ));
        }
        let local = search.attempt(dialect.default_url, || {
            server_version(dialect, dialect.default_url)
        });
        let Some(version) = local else {
            return Err(search.give_up(&format!(
                "Set {}=scheme://user:pass@host:port/db, start Docker, or start {} locally.",
                dialect.env_var, dialect.driver
            )));
        };
        let address = dialect
            .default_url
            .rsplit('@')
            .next()
            .and_then(|a| a.split('/').next())
            .unwrap_or("");
        Ok(found(
            format!("local {address}"),
            dialect.default_url.into(),
            version,
            None,
        ))
    }
}

impl Broker for SqlBroker {
    fn info(&self) -> &BrokerInfo {
        &self.info
    }

    fn namespace(&self, key: &str) -> Result<Box<dyn Namespace>> {
        let database = format!("tasq_bench_{key}");
        execute(&self.admin_url, format!("CREATE DATABASE {database}"))
            .with_context(|| format!("creating database {database} on {}", self.info.url))?;
        Ok(Box::new(SqlNamespace {
            dialect: self.dialect,
            admin_url: self.admin_url.clone(),
            url: with_database(&self.admin_url, &database),
            database,
        }))
    }
}

pub struct SqlNamespace {
    dialect: &'static Dialect,
    admin_url: String,
    /// The run's own database.
    pub url: String,
    database: String,
}

impl SqlNamespace {
    /// One BIGINT (or none) from `query` with the queue name bound.
    fn scalar(&self, query: &'static str, queue: &str) -> Result<Option<i64>> {
        let (url, queue) = (self.url.clone(), queue.to_string());
        block_on(LIMIT, async move {
            let mut conn = AnyConnection::connect(&url).await?;
            Ok(sqlx::query_scalar(query)
                .bind(queue)
                .fetch_optional(&mut conn)
                .await?)
        })
    }
}

impl Namespace for SqlNamespace {
    fn driver(&self) -> Driver {
        self.dialect.driver
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::Sql {
            driver: self.dialect.driver,
            url: self.url.clone(),
        }
    }

    fn connection_url(&self) -> String {
        self.url.clone()
    }

    fn dead_letter_ns(&self, queue: &str) -> Result<Option<u64>> {
        Ok(self
            .scalar(self.dialect.dead_letter_ns, queue)?
            .map(|ns| ns as u64))
    }

    fn message_bytes(&self, queue: &QueueRef) -> Result<u64> {
        let (name, query) = self.sql_of(queue, |q| q.1)?;
        self.scalar(query, name)?
            .map(|b| b as u64)
            .context("the queue holds no message")
    }

    fn queue_depth(&self, queue: &QueueRef) -> Result<u64> {
        let (name, query) = self.sql_of(queue, |q| q.0)?;
        Ok(self.scalar(query, name)?.unwrap_or(0) as u64)
    }
}

impl SqlNamespace {
    /// The queue name and the query `pick` chooses from (depth, bytes).
    fn sql_of<'q>(
        &self,
        queue: &'q QueueRef,
        pick: impl Fn((&'static str, &'static str)) -> &'static str,
    ) -> Result<(&'q str, &'static str)> {
        match queue {
            QueueRef::Sql {
                queue,
                depth,
                bytes,
            } => Ok((queue, pick((depth, bytes)))),
            other => Err(other.mismatch(self.dialect.driver)),
        }
    }
}

impl Drop for SqlNamespace {
    fn drop(&mut self) {
        let _ = execute(
            &self.admin_url,
            self.dialect.drop_database.replace("{db}", &self.database),
        );
    }
}

fn execute(url: &str, statement: String) -> Result<()> {
    let url = url.to_string();
    block_on(LIMIT, async move {
        let mut conn = AnyConnection::connect(&url).await?;
        sqlx::raw_sql(&statement).execute(&mut conn).await?;
        Ok(())
    })
}

fn server_version(dialect: &Dialect, url: &str) -> Result<String> {
    sqlx::any::install_default_drivers();
    let (url, query) = (url.to_string(), dialect.version_query);
    block_on(LIMIT, async move {
        let mut conn = AnyConnection::connect(&url).await?;
        Ok(sqlx::query_scalar::<_, String>(query)
            .fetch_one(&mut conn)
            .await?)
    })
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
