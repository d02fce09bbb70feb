//! Redis: found in the order BENCH_REDIS_URL, testcontainers (after a Docker ping),
//! 127.0.0.1:6379, a `redis-server` binary on a free port; each run gets its own database.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, ImageExt};
use testcontainers_modules::redis::Redis as RedisImage;

use super::{redact_url, Broker, BrokerInfo, Driver, Endpoint, Namespace, QueueRef, SourceSearch};
use crate::measure::procs::ManagedChild;

pub const ENV_URL: &str = "BENCH_REDIS_URL";
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";
pub const IMAGE_TAG: &str = "7.4.2";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Set in every database the harness owns, so it never flushes someone else's data.
const OWNER_KEY: &str = "tasq-bench:owner";

/// A Redis server for the harness's runs, and whatever it started to get one.
pub struct RedisBroker {
    pub info: BrokerInfo,
    base_url: String,
    _container: Option<Container<RedisImage>>,
    _server: Option<(ManagedChild, tempfile::TempDir)>,
}

impl RedisBroker {
    /// Follows the source order, reading the URL from `BENCH_REDIS_URL`.
    pub fn provide(progress: &mut dyn FnMut(&str)) -> Result<RedisBroker> {
        Self::provide_from(std::env::var(ENV_URL).ok(), progress)
    }

    /// Follows the source order with `env_url` standing for `BENCH_REDIS_URL`. A URL the
    /// user gave is never silently replaced: if it does not answer, that is the error.
    pub fn provide_from(
        env_url: Option<String>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<RedisBroker> {
        let mut search = SourceSearch::new(Driver::Redis, ENV_URL, env_url);
        if let Some((url, version)) = search.from_env(|url| ping(&base_url(url)))? {
            return Ok(Self::found(ENV_URL.into(), base_url(&url), version));
        }
        let image = format!("redis:{IMAGE_TAG}");
        if let Some((container, base, version)) = search.container(&image, progress, || {
            start_container().and_then(|(c, base)| ping(&base).map(|v| (c, base, v)))
        }) {
            let mut broker = Self::found(format!("testcontainers {image}"), base, version);
            broker._container = Some(container);
            return Ok(broker);
        }
        if let Some(version) = search.attempt(DEFAULT_URL, || ping(DEFAULT_URL)) {
            return Ok(Self::found(
                "local 127.0.0.1:6379".into(),
                DEFAULT_URL.into(),
                version,
            ));
        }
        let started = search.attempt("redis-server binary", || {
            start_local_server(progress)
                .and_then(|(child, dir, base)| ping(&base).map(|v| (child, dir, base, v)))
        });
        let Some((child, dir, base, version)) = started else {
            return Err(search.give_up(&format!(
                "Set {ENV_URL}=redis://host:port, start Docker, or install redis-server."
            )));
        };
        let port = base.rsplit(':').next().unwrap_or("?").to_string();
        let mut broker = Self::found(format!("redis-server on port {port}"), base, version);
        broker._server = Some((child, dir));
        Ok(broker)
    }

    fn found(source: String, base_url: String, server_version: String) -> RedisBroker {
        RedisBroker {
            info: BrokerInfo {
                driver: Driver::Redis,
                source,
                url: redact_url(&base_url),
                server_version,
            },
            base_url,
            _container: None,
            _server: None,
        }
    }

    /// A flushed database of its own for one run, locked against concurrent runs.
    pub fn database(&self) -> Result<RedisNamespace> {
        let lock_dir = std::env::temp_dir().join("tasq-bench-locks");
        std::fs::create_dir_all(&lock_dir)?;
        let server_key: String = self
            .base_url
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let mut foreign = Vec::new();
        // Database 0 is left alone: it is where other users of a shared server keep data.
        for db in 1..=15u8 {
            let lock_path: PathBuf = lock_dir.join(format!("{server_key}-db{db}.lock"));
            let lock = File::create(&lock_path)
                .with_context(|| format!("creating {}", lock_path.display()))?;
            if lock.try_lock().is_err() {
                continue;
            }
            let namespace = RedisNamespace {
                base_url: self.base_url.clone(),
                db,
                _lock: lock,
            };
            let mut conn = namespace.connection()?;
            let size: u64 = redis::cmd("DBSIZE").query(&mut conn)?;
            let owned: bool = redis::cmd("EXISTS").arg(OWNER_KEY).query(&mut conn)?;
            if size > 0 && !owned {
                foreign.push(db);
                continue;
            }
            namespace.flush()?;
            return Ok(namespace);
        }
        bail!(
            "no free Redis database on {}: databases {foreign:?} hold data the harness did not write and the rest are in use by other runs. Point {ENV_URL} at a dedicated server.",
            redact_url(&self.base_url)
        )
    }
}

impl Broker for RedisBroker {
    fn info(&self) -> &BrokerInfo {
        &self.info
    }

    fn namespace(&self, _key: &str) -> Result<Box<dyn Namespace>> {
        Ok(Box::new(self.database()?))
    }
}

impl Namespace for RedisNamespace {
    fn driver(&self) -> Driver {
        Driver::Redis
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::Redis {
            server_url: self.base_url.clone(),
            db: self.db,
        }
    }

    fn connection_url(&self) -> String {
        self.url()
    }

    fn message_bytes(&self, queue: &QueueRef) -> Result<u64> {
        let value: Vec<u8> = redis::cmd("LINDEX")
            .arg(list_key(queue)?)
            .arg(0)
            .query(&mut self.connection()?)?;
        Ok(value.len() as u64)
    }

    fn queue_depth(&self, queue: &QueueRef) -> Result<u64> {
        self.list_len(list_key(queue)?)
    }
}

fn list_key(queue: &QueueRef) -> Result<&str> {
    match queue {
        QueueRef::RedisList(key) => Ok(key),
        other => Err(other.mismatch(Driver::Redis)),
    }
}

/// One run's database on the broker.
pub struct RedisNamespace {
    base_url: String,
    pub db: u8,
    _lock: File,
}

impl RedisNamespace {
    /// Server URL without database, as AsyncTasQ's ASYNCTASQ_REDIS_URL wants it.
    pub fn server_url(&self) -> &str {
        &self.base_url
    }

    /// Full URL with the database, as Celery's broker URL wants it.
    pub fn url(&self) -> String {
        format!("{}/{}", self.base_url, self.db)
    }

    pub fn connection(&self) -> Result<redis::Connection> {
        connect(&self.url())
    }

    pub fn flush(&self) -> Result<()> {
        let mut conn = self.connection()?;
        redis::pipe()
            .cmd("FLUSHDB")
            .cmd("SET")
            .arg(OWNER_KEY)
            .arg("tasq-bench")
            .query::<()>(&mut conn)?;
        Ok(())
    }

    /// Length of a list key (a queue's depth for both systems on Redis).
    pub fn list_len(&self, key: &str) -> Result<u64> {
        Ok(redis::cmd("LLEN").arg(key).query(&mut self.connection()?)?)
    }
}

impl Drop for RedisNamespace {
    fn drop(&mut self) {
        // Leave nothing behind but the owner marker.
        let _ = self.flush();
    }
}

/// `redis://host:port/3` -> `redis://host:port`.
fn base_url(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some((head, db)) if !head.ends_with('/') && db.chars().all(|c| c.is_ascii_digit()) => {
            head.to_string()
        }
        _ => trimmed.to_string(),
    }
}

fn connect(url: &str) -> Result<redis::Connection> {
    let client = redis::Client::open(url)
        .with_context(|| format!("invalid Redis URL {}", redact_url(url)))?;
    let conn = client
        .get_connection_with_timeout(CONNECT_TIMEOUT)
        .with_context(|| {
            format!(
                "connecting to {} (timeout {CONNECT_TIMEOUT:?})",
                redact_url(url)
            )
        })?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(conn)
}

/// PINGs the server and returns its version.
fn ping(url: &str) -> Result<String> {
    let mut conn = connect(url)?;
    let info: String = redis::cmd("INFO").arg("server").query(&mut conn)?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("unknown")
        .trim()
        .to_string())
}

fn start_container() -> Result<(Container<RedisImage>, String)> {
    let container = RedisImage::default().with_tag(IMAGE_TAG).start()?;
    let port = container.get_host_port_ipv4(6379)?;
    Ok((container, format!("redis://127.0.0.1:{port}")))
}

fn start_local_server(
    progress: &mut dyn FnMut(&str),
) -> Result<(ManagedChild, tempfile::TempDir, String)> {
    let dir = tempfile::tempdir()?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    progress(&format!("starting redis-server on 127.0.0.1:{port}"));
    let mut command = Command::new("redis-server");
    command
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir.path());
    let mut child = crate::measure::procs::spawn_server("redis-server", command, dir.path())?;
    let url = format!("redis://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if ping(&url).is_ok() {
            return Ok((child, dir, url));
        }
        if child.try_exit().is_some() || Instant::now() > deadline {
            let tail = child.stderr_tail(10)
                + &crate::measure::procs::tail_of_file(child.stdout_path(), 10);
            child.stop(Duration::from_secs(1));
            bail!("redis-server did not answer on port {port}: {tail}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_strips_the_database() {
        assert_eq!(base_url("redis://h:1/3"), "redis://h:1");
        assert_eq!(base_url("redis://h:1/"), "redis://h:1");
        assert_eq!(base_url("redis://h:1"), "redis://h:1");
        assert_eq!(base_url("redis://:p@h:1/15"), "redis://:p@h:1");
    }
}
