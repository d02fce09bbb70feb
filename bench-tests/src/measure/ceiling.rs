//! The broker's own ceiling: a small Rust client doing the raw equivalent of a task
//! queue's enqueue and dequeue+ack at a given concurrency, on a fresh namespace, so each
//! system can be reported as a fraction of what the broker allows on this machine.
//!
//! Every message carries its index; the dequeue side records each one exactly once, so a
//! message lost or seen twice fails the measurement instead of inflating a rate.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::harness::Harness;
use crate::provision::brokers::Driver;

/// Size of every message body: about a serialized task message.
pub const PAYLOAD_BYTES: usize = 200;
/// Connecting, declaring, creating tables: each bounded by this.
const SETUP_LIMIT: Duration = Duration::from_secs(30);
/// One request to the broker (socket read/write timeouts of the sync clients).
const OP_LIMIT: Duration = Duration::from_secs(15);
/// Removing what a measurement left behind.
const CLEANUP_LIMIT: Duration = Duration::from_secs(10);
/// Largest concurrency accepted (RabbitMQ's prefetch is a u16; more is not a ceiling).
pub const MAX_CONCURRENCY: u32 = 1024;
/// Largest message count the payload's fixed-width index can carry.
pub const MAX_MESSAGES: u64 = 999_999_999_999;

const REDIS_QUEUE: &str = "queue:ceiling";
const REDIS_PROCESSING: &str = "queue:ceiling:processing";
const SQL_TABLE: &str = "ceiling_queue";

/// What the broker allows on this machine, by one driver at one concurrency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ceiling {
    pub driver: String,
    pub messages: u64,
    pub concurrency: u32,
    pub payload_bytes: usize,
    /// Messages per second from the first send to the last acknowledged send.
    pub enqueue_per_sec: f64,
    /// Messages per second from the first receive to the last acknowledgement.
    pub dequeue_per_sec: f64,
    /// One line: what was done.
    pub method: String,
    /// Messages delivered a second time (SQS is at-least-once; elsewhere this is an error).
    #[serde(default)]
    pub redeliveries: u64,
}

impl Ceiling {
    /// `tasks_per_sec` of a system as a fraction of this ceiling's enqueue rate.
    pub fn enqueue_fraction(&self, tasks_per_sec: f64) -> Option<f64> {
        fraction(tasks_per_sec, self.enqueue_per_sec)
    }

    /// `tasks_per_sec` of a system as a fraction of this ceiling's dequeue rate.
    pub fn dequeue_fraction(&self, tasks_per_sec: f64) -> Option<f64> {
        fraction(tasks_per_sec, self.dequeue_per_sec)
    }
}

fn fraction(rate: f64, ceiling: f64) -> Option<f64> {
    (ceiling.is_finite() && ceiling > 0.0 && rate.is_finite() && rate >= 0.0)
        .then(|| rate / ceiling)
}

/// What the reference client does on `driver`, in one line.
pub fn method(driver: Driver) -> &'static str {
    match driver {
        Driver::Redis => "LPUSH queue:ceiling; LMOVE queue→processing RIGHT LEFT + LREM processing (AsyncTasQ's reliable-queue pattern); one connection per client",
        Driver::Postgres => "INSERT into a table (bigserial id, bytea payload, status); dequeue: BEGIN (READ COMMITTED), SELECT id, payload WHERE status='pending' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED, DELETE by id, COMMIT; pool of `concurrency` connections",
        Driver::Mysql => "INSERT into an InnoDB table (auto_increment id, blob payload, status); dequeue: BEGIN (READ COMMITTED; InnoDB's default REPEATABLE READ serializes SKIP LOCKED with gap locks), SELECT id, payload WHERE status='pending' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED, DELETE by id, COMMIT; pool of `concurrency` connections",
        Driver::Rabbitmq => "durable queue; persistent publish (delivery_mode 2) with publisher confirms, one confirm awaited per publish per channel (AsyncTasQ/aio-pika's default; Celery/py-amqp publishes without confirms); one consumer, prefetch = concurrency, one basic.ack per message",
        Driver::Sqs => "SendMessage, one message per call (as both systems); ReceiveMessage (max 10, wait 1 s, as Celery/kombu; AsyncTasQ asks for 1) + one DeleteMessage per message",
    }
}

/// Measures on a fresh namespace of `driver`'s broker: enqueue `messages` payloads with `concurrency` parallel clients,
/// then dequeue+ack them all with `concurrency` parallel consumers; counts every message (a message lost or seen twice is an error).
pub fn measure(h: &Harness, driver: Driver, messages: u64, concurrency: u32) -> Result<Ceiling> {
    validate(messages, concurrency)?;
    let broker = h.broker(driver)?;
    let key = format!("ceil{:08x}", rand::random::<u32>());
    let namespace = broker
        .namespace(&key)
        .with_context(|| format!("a namespace on {driver} for the ceiling"))?;
    let url = namespace.connection_url();
    let job = Job {
        messages,
        concurrency,
        limit: phase_limit(messages),
        tally: Arc::new(Tally::with_delivery(messages, driver == Driver::Sqs)),
    };
    // Each phase is bounded by `job.limit`, each request by a socket or SDK timeout; this
    // bounds the setup and checks around them too.
    let overall = 2 * job.limit + 4 * SETUP_LIMIT;
    let phases = match driver {
        Driver::Redis => redis_ceiling(&url, &job),
        Driver::Postgres => {
            runtime(concurrency)?.block_on(bounded(overall, postgres_ceiling(&url, &job)))
        }
        Driver::Mysql => {
            runtime(concurrency)?.block_on(bounded(overall, mysql_ceiling(&url, &job)))
        }
        Driver::Rabbitmq => {
            let queue = format!("ceiling-{key}");
            let rt = runtime(concurrency)?;
            let result = rt.block_on(bounded(overall, rabbit_ceiling(&url, &queue, &job)));
            rt.block_on(rabbit_cleanup(&url, &queue));
            result
        }
        Driver::Sqs => {
            let queue = format!("ceiling-{key}");
            let rt = runtime(concurrency)?;
            let client = sqs_client(&url)?;
            let result = rt.block_on(bounded(overall, sqs_ceiling(&client, &url, &queue, &job)));
            rt.block_on(sqs_cleanup(&client, &queue));
            result
        }
    }
    .with_context(|| {
        format!("measuring the {driver} ceiling ({messages} messages, concurrency {concurrency})")
    })?;
    job.tally
        .check()
        .with_context(|| format!("{driver} ceiling: dequeue"))?;
    drop(namespace);
    Ok(Ceiling {
        driver: driver.name().to_string(),
        messages,
        concurrency,
        payload_bytes: PAYLOAD_BYTES,
        enqueue_per_sec: rate(messages, phases.enqueue),
        dequeue_per_sec: rate(messages, phases.dequeue),
        method: method(driver).to_string(),
        redeliveries: job.tally.redeliveries(),
    })
}

/// Rejects sizes the measurement cannot do.
pub fn validate(messages: u64, concurrency: u32) -> Result<()> {
    if messages == 0 || messages > MAX_MESSAGES {
        bail!("the ceiling needs 1..={MAX_MESSAGES} messages, not {messages}");
    }
    if concurrency == 0 || concurrency > MAX_CONCURRENCY {
        bail!("the ceiling needs a concurrency of 1..={MAX_CONCURRENCY}, not {concurrency}");
    }
    Ok(())
}

/// The bound on one phase (enqueue or dequeue): 30 s plus 5 ms a message, i.e. a broker
/// slower than 200 messages/s at scale fails instead of hanging.
pub fn phase_limit(messages: u64) -> Duration {
    Duration::from_secs(30) + Duration::from_millis(messages.saturating_mul(5))
}

/// Messages per second over `elapsed` (a zero duration counts as one nanosecond).
pub fn rate(messages: u64, elapsed: Duration) -> f64 {
    messages as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// The body of message `index`: a task-like JSON object of exactly `PAYLOAD_BYTES` bytes
/// whose first field is the zero-padded index.
pub fn payload(index: u64) -> Vec<u8> {
    let head = format!(
        r#"{{"id":"{index:012}","task":"tasq_bench.ceiling.noop","args":[],"kwargs":{{}},"retries":0,"pad":""#
    );
    let mut body = head.into_bytes();
    let tail = br#""}"#;
    body.resize(PAYLOAD_BYTES - tail.len(), b'x');
    body.extend_from_slice(tail);
    body
}

/// The index a `payload` carries.
pub fn payload_index(body: &[u8]) -> Option<u64> {
    let digits = body.strip_prefix(br#"{"id":""#)?.get(..12)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Which messages were dequeued: each exactly once.
pub struct Tally {
    seen: Vec<AtomicBool>,
    count: AtomicU64,
    /// SQS standard queues deliver at least once: a second delivery is counted, not an error.
    at_least_once: bool,
    redeliveries: AtomicU64,
}

impl Tally {
    pub fn new(messages: u64) -> Tally {
        Tally::with_delivery(messages, false)
    }

    pub fn with_delivery(messages: u64, at_least_once: bool) -> Tally {
        Tally {
            seen: (0..messages).map(|_| AtomicBool::new(false)).collect(),
            count: AtomicU64::new(0),
            at_least_once,
            redeliveries: AtomicU64::new(0),
        }
    }

    pub fn redeliveries(&self) -> u64 {
        self.redeliveries.load(Ordering::Acquire)
    }

    /// Records one dequeued body; an unknown body or one seen before is an error.
    /// Returns how many distinct messages have been recorded.
    pub fn record(&self, body: &[u8]) -> Result<u64> {
        let index = payload_index(body).ok_or_else(|| {
            anyhow!(
                "dequeued a message the ceiling did not send: {:?}",
                String::from_utf8_lossy(&body[..body.len().min(40)])
            )
        })?;
        let slot = self
            .seen
            .get(usize::try_from(index).unwrap_or(usize::MAX))
            .ok_or_else(|| {
                anyhow!(
                    "dequeued message {index}, beyond the {} sent",
                    self.seen.len()
                )
            })?;
        if slot.swap(true, Ordering::AcqRel) {
            if self.at_least_once {
                self.redeliveries.fetch_add(1, Ordering::AcqRel);
                return Ok(self.count.load(Ordering::Acquire));
            }
            bail!("message {index} was dequeued twice");
        }
        Ok(self.count.fetch_add(1, Ordering::AcqRel) + 1)
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    pub fn expected(&self) -> u64 {
        self.seen.len() as u64
    }

    pub fn done(&self) -> bool {
        self.count() >= self.expected()
    }

    /// Every message dequeued, else which were not.
    pub fn check(&self) -> Result<()> {
        let missing: Vec<usize> = self
            .seen
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.load(Ordering::Acquire))
            .map(|(i, _)| i)
            .collect();
        if !missing.is_empty() {
            let first: Vec<String> = missing.iter().take(10).map(|i| i.to_string()).collect();
            bail!(
                "{} of {} messages were never dequeued (lost), e.g. {}",
                missing.len(),
                self.seen.len(),
                first.join(", ")
            );
        }
        Ok(())
    }
}

/// One measurement's sizes and shared state.
struct Job {
    messages: u64,
    concurrency: u32,
    limit: Duration,
    tally: Arc<Tally>,
}

/// Wall time of the two phases.
struct Phases {
    enqueue: Duration,
    dequeue: Duration,
}

/// Hands out message indexes to parallel producers and remembers the last event's time.
struct Clock {
    start: Instant,
    next: AtomicU64,
    last: Mutex<Instant>,
}

impl Clock {
    fn start() -> Clock {
        let now = Instant::now();
        Clock {
            start: now,
            next: AtomicU64::new(0),
            last: Mutex::new(now),
        }
    }

    fn take(&self, messages: u64) -> Option<u64> {
        let index = self.next.fetch_add(1, Ordering::AcqRel);
        (index < messages).then_some(index)
    }

    fn mark(&self) {
        let now = Instant::now();
        let mut last = self.last.lock().expect("clock");
        if now > *last {
            *last = now;
        }
    }

    fn elapsed(&self) -> Duration {
        self.last.lock().expect("clock").duration_since(self.start)
    }
}

fn sent(clock: &Clock, job: &Job) -> String {
    let taken = clock.next.load(Ordering::Acquire).min(job.messages);
    format!("under {taken} of {} sent", job.messages)
}

fn dequeued(job: &Job) -> String {
    format!("{} of {} dequeued", job.tally.count(), job.messages)
}

async fn bounded<T>(limit: Duration, future: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(limit, future)
        .await
        .map_err(|_| anyhow!("the measurement did not finish within {limit:?}"))?
}

fn runtime(concurrency: u32) -> Result<tokio::runtime::Runtime> {
    let threads = crate::harness::cpu_count().min(concurrency).max(1) as usize;
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?)
}

/// Runs `concurrency` workers to completion within `limit`; the first error stops the rest.
async fn run_workers<F, Fut>(
    phase: &str,
    job: &Job,
    progress: impl Fn() -> String,
    make: F,
) -> Result<()>
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for worker in 0..job.concurrency {
        let work = make(worker);
        set.spawn(async move { work.await.with_context(|| format!("client {worker}")) });
    }
    let all = async {
        while let Some(joined) = set.join_next().await {
            joined.map_err(|e| anyhow!("a client task failed: {e}"))??;
        }
        Ok::<(), anyhow::Error>(())
    };
    let outcome = tokio::time::timeout(job.limit, all).await;
    set.abort_all();
    match outcome {
        Ok(result) => result.with_context(|| format!("{phase} phase")),
        Err(_) => bail!(
            "{phase} phase did not finish within {:?}: {}",
            job.limit,
            progress()
        ),
    }
}

// ---------------------------------------------------------------- Redis

fn redis_ceiling(url: &str, job: &Job) -> Result<Phases> {
    let client = redis::Client::open(url)?;
    let connect = || -> Result<redis::Connection> {
        let conn = client.get_connection_with_timeout(SETUP_LIMIT)?;
        conn.set_read_timeout(Some(OP_LIMIT))?;
        conn.set_write_timeout(Some(OP_LIMIT))?;
        Ok(conn)
    };
    let mut conns = (0..job.concurrency)
        .map(|_| connect())
        .collect::<Result<Vec<_>>>()
        .with_context(|| {
            format!(
                "connecting {} clients to {}",
                job.concurrency,
                crate::provision::brokers::redact_url(url)
            )
        })?;
    redis::cmd("DEL")
        .arg(REDIS_QUEUE)
        .arg(REDIS_PROCESSING)
        .query::<()>(&mut conns[0])?;
    let payloads: Vec<Vec<u8>> = (0..job.messages).map(payload).collect();

    let clock = Clock::start();
    let deadline = clock.start + job.limit;
    run_threads("enqueue", &mut conns, |conn, stop| {
        while let Some(index) = clock.take(job.messages) {
            check_bounds(stop, deadline, "enqueue", job.limit)?;
            redis::cmd("LPUSH")
                .arg(REDIS_QUEUE)
                .arg(&payloads[index as usize])
                .query::<i64>(conn)?;
            clock.mark();
        }
        Ok(())
    })?;
    let enqueue = clock.elapsed();
    let depth: u64 = redis::cmd("LLEN").arg(REDIS_QUEUE).query(&mut conns[0])?;
    if depth != job.messages {
        bail!(
            "enqueued {} messages but {REDIS_QUEUE} holds {depth}",
            job.messages
        );
    }
    drop(payloads);

    let clock = Clock::start();
    let deadline = clock.start + job.limit;
    run_threads("dequeue", &mut conns, |conn, stop| loop {
        check_bounds(stop, deadline, "dequeue", job.limit)?;
        let body: Option<Vec<u8>> = redis::cmd("LMOVE")
            .arg(REDIS_QUEUE)
            .arg(REDIS_PROCESSING)
            .arg("RIGHT")
            .arg("LEFT")
            .query(conn)?;
        let Some(body) = body else { return Ok(()) };
        let removed: i64 = redis::cmd("LREM")
            .arg(REDIS_PROCESSING)
            .arg(1)
            .arg(&body)
            .query(conn)?;
        if removed != 1 {
            bail!("LREM removed {removed} copies of a message from {REDIS_PROCESSING}, not 1");
        }
        clock.mark();
        job.tally.record(&body)?;
    })?;
    let dequeue = clock.elapsed();
    let left: u64 = redis::cmd("LLEN")
        .arg(REDIS_PROCESSING)
        .query(&mut conns[0])?;
    if left != 0 {
        bail!("{left} messages left in {REDIS_PROCESSING} after every ack");
    }
    Ok(Phases { enqueue, dequeue })
}

fn check_bounds(stop: &AtomicBool, deadline: Instant, phase: &str, limit: Duration) -> Result<()> {
    if stop.load(Ordering::Acquire) {
        bail!("stopped: another client failed");
    }
    if Instant::now() > deadline {
        bail!("{phase} phase did not finish within {limit:?}");
    }
    Ok(())
}

/// One thread per connection; the first error stops the others (reported first).
fn run_threads<C: Send>(
    phase: &str,
    conns: &mut [C],
    work: impl Fn(&mut C, &AtomicBool) -> Result<()> + Sync,
) -> Result<()> {
    let stop = AtomicBool::new(false);
    let mut errors: Vec<anyhow::Error> = std::thread::scope(|scope| {
        let handles: Vec<_> = conns
            .iter_mut()
            .enumerate()
            .map(|(i, conn)| {
                let (work, stop) = (&work, &stop);
                scope.spawn(move || {
                    let result = work(conn, stop).with_context(|| format!("client {i}"));
                    if result.is_err() {
                        stop.store(true, Ordering::Release);
                    }
                    result
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(result) => result.err(),
                Err(_) => Some(anyhow!("a client thread panicked")),
            })
            .collect()
    });
    // Errors that say "stopped" are consequences; show the cause.
    errors.sort_by_key(|e| format!("{e:#}").contains("stopped: another client failed"));
    match errors.into_iter().next() {
        Some(e) => Err(e.context(format!("{phase} phase"))),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------- PostgreSQL and MySQL

/// Both SQL brokers, differing only in pool type, DDL and placeholders.
macro_rules! sql_ceiling {
    ($name:ident, $options:ty, $session:expr, $create:expr, $insert:expr, $delete:expr, $analyze:expr) => {
        async fn $name(url: &str, job: &Job) -> Result<Phases> {
            let pool = <$options>::new()
                .max_connections(job.concurrency)
                .acquire_timeout(SETUP_LIMIT)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::Executor::execute(&mut *conn, $session).await?;
                        Ok(())
                    })
                })
                .connect(url)
                .await
                .with_context(|| format!("connecting to {}", crate::provision::brokers::redact_url(url)))?;
            sqlx::raw_sql($create).execute(&pool).await?;
            // Open every connection before the clock starts.
            let mut warm = Vec::new();
            for _ in 0..job.concurrency {
                warm.push(pool.acquire().await?);
            }
            drop(warm);
            let pool = Arc::new(pool);

            let clock = Arc::new(Clock::start());
            run_workers("enqueue", job, || sent(&clock, job), |_| {
                let (pool, clock, messages) = (pool.clone(), clock.clone(), job.messages);
                async move {
                    while let Some(index) = clock.take(messages) {
                        sqlx::query($insert)
                            .bind(payload(index))
                            .execute(&*pool)
                            .await?;
                        clock.mark();
                    }
                    Ok(())
                }
            })
            .await?;
            let enqueue = clock.elapsed();
            // Fresh statistics, so the planner walks the primary key instead of sorting.
            sqlx::raw_sql($analyze).execute(&*pool).await?;

            let clock = Arc::new(Clock::start());
            run_workers("dequeue", job, || dequeued(job), |_| {
                let (pool, clock, tally) = (pool.clone(), clock.clone(), job.tally.clone());
                async move {
                    loop {
                        let mut tx = pool.begin().await?;
                        let row: Option<(i64, Vec<u8>)> = sqlx::query_as(concat!(
                            "SELECT id, payload FROM ceiling_queue WHERE status = 'pending' ",
                            "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
                        ))
                        .fetch_optional(&mut *tx)
                        .await?;
                        // Nothing unlocked is left: the others hold the rest.
                        let Some((id, body)) = row else { return Ok(()) };
                        let deleted = sqlx::query($delete).bind(id).execute(&mut *tx).await?;
                        if deleted.rows_affected() != 1 {
                            bail!("DELETE of row {id} affected {} rows", deleted.rows_affected());
                        }
                        tx.commit().await?;
                        clock.mark();
                        tally.record(&body)?;
                    }
                }
            })
            .await?;
            let dequeue = clock.elapsed();
            let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ceiling_queue")
                .fetch_one(&*pool)
                .await?;
            if left != 0 {
                bail!("{left} rows left in {SQL_TABLE} after every dequeue");
            }
            pool.close().await;
            Ok(Phases { enqueue, dequeue })
        }
    };
}

sql_ceiling!(
    postgres_ceiling,
    sqlx::postgres::PgPoolOptions,
    "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "CREATE TABLE ceiling_queue (id BIGSERIAL PRIMARY KEY, payload BYTEA NOT NULL, \
     status TEXT NOT NULL DEFAULT 'pending')",
    "INSERT INTO ceiling_queue (payload) VALUES ($1)",
    "DELETE FROM ceiling_queue WHERE id = $1",
    "ANALYZE ceiling_queue"
);

sql_ceiling!(
    mysql_ceiling,
    sqlx::mysql::MySqlPoolOptions,
    // InnoDB's default REPEATABLE READ takes gap locks that serialize the SKIP LOCKED
    // dequeue (about 3x slower at concurrency 10 on MariaDB 10.11 here); the ceiling is
    // what the broker allows, and READ COMMITTED is PostgreSQL's default too.
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "CREATE TABLE ceiling_queue (id BIGINT AUTO_INCREMENT PRIMARY KEY, payload BLOB NOT NULL, \
     status VARCHAR(16) NOT NULL DEFAULT 'pending') ENGINE=InnoDB",
    "INSERT INTO ceiling_queue (payload) VALUES (?)",
    "DELETE FROM ceiling_queue WHERE id = ?",
    "ANALYZE TABLE ceiling_queue"
);

// ---------------------------------------------------------------- RabbitMQ

async fn rabbit_ceiling(url: &str, queue: &str, job: &Job) -> Result<Phases> {
    use futures_util::StreamExt;
    use lapin::options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions,
    };
    use lapin::types::FieldTable;
    use lapin::{BasicProperties, Connection, ConnectionProperties};

    let setup = async {
        let conn = Connection::connect(url, ConnectionProperties::default()).await?;
        let declare = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let admin = conn.create_channel().await?;
        admin
            .queue_declare(queue, declare, FieldTable::default())
            .await?;
        let mut channels = Vec::new();
        for _ in 0..job.concurrency {
            let channel = conn.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            channels.push(channel);
        }
        Ok::<_, anyhow::Error>((conn, admin, channels))
    };
    let (conn, admin, channels) = tokio::time::timeout(SETUP_LIMIT, setup)
        .await
        .map_err(|_| anyhow!("connecting and declaring {queue} took over {SETUP_LIMIT:?}"))?
        .with_context(|| {
            format!(
                "connecting to {}",
                crate::provision::brokers::redact_url(url)
            )
        })?;

    let clock = Arc::new(Clock::start());
    let queue_name = Arc::new(queue.to_string());
    run_workers(
        "enqueue",
        job,
        || sent(&clock, job),
        |worker| {
            let channel = channels[worker as usize].clone();
            let (clock, queue, messages) = (clock.clone(), queue_name.clone(), job.messages);
            async move {
                while let Some(index) = clock.take(messages) {
                    let confirmation = channel
                        .basic_publish(
                            "",
                            &queue,
                            BasicPublishOptions::default(),
                            &payload(index),
                            BasicProperties::default().with_delivery_mode(2),
                        )
                        .await?
                        .await?;
                    if !confirmation.is_ack() {
                        bail!("the broker did not confirm message {index}: {confirmation:?}");
                    }
                    clock.mark();
                }
                Ok(())
            }
        },
    )
    .await?;
    let enqueue = clock.elapsed();
    for channel in channels {
        let _ = channel.close(200, "enqueued").await;
    }
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let depth = admin
        .queue_declare(queue, passive, FieldTable::default())
        .await?
        .message_count();
    if u64::from(depth) != job.messages {
        bail!(
            "{} messages confirmed but {queue} holds {depth}",
            job.messages
        );
    }

    let consumer_channel = conn.create_channel().await?;
    let prefetch = u16::try_from(job.concurrency).unwrap_or(u16::MAX);
    consumer_channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = consumer_channel
        .basic_consume(
            queue,
            "ceiling",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let clock = Clock::start();
    let consume = async {
        while !job.tally.done() {
            let delivery = consumer
                .next()
                .await
                .ok_or_else(|| anyhow!("the consumer was cancelled"))??;
            delivery.ack(BasicAckOptions::default()).await?;
            clock.mark();
            job.tally.record(&delivery.data)?;
        }
        Ok::<(), anyhow::Error>(())
    };
    match tokio::time::timeout(job.limit, consume).await {
        Ok(result) => result.context("dequeue phase")?,
        Err(_) => bail!(
            "dequeue phase did not finish within {:?}: {}",
            job.limit,
            dequeued(job)
        ),
    }
    let dequeue = clock.elapsed();
    let _ = consumer_channel.close(200, "dequeued").await;
    let _ = conn.close(200, "done").await;
    Ok(Phases { enqueue, dequeue })
}

/// Deletes the measurement's queue, whatever happened.
async fn rabbit_cleanup(url: &str, queue: &str) {
    use lapin::options::QueueDeleteOptions;
    use lapin::{Connection, ConnectionProperties};
    let delete = async {
        let conn = Connection::connect(url, ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        channel
            .queue_delete(queue, QueueDeleteOptions::default())
            .await?;
        let _ = conn.close(200, "done").await;
        Ok::<(), anyhow::Error>(())
    };
    if let Ok(Err(e)) | Err(e) = tokio::time::timeout(CLEANUP_LIMIT, delete)
        .await
        .map_err(|_| anyhow!("timed out"))
    {
        eprintln!("  ceiling: could not delete RabbitMQ queue {queue}: {e:#}");
    }
}

// ---------------------------------------------------------------- SQS

/// The SQS client for `endpoint` (empty: AWS itself, with the environment's credentials).
fn sqs_client(endpoint: &str) -> Result<aws_sdk_sqs::Client> {
    use aws_sdk_sqs::config::timeout::TimeoutConfig;
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_http_client::tls;

    let region = std::env::var("AWS_DEFAULT_REGION")
        .or_else(|_| std::env::var("AWS_REGION"))
        .unwrap_or_else(|_| "us-east-1".into());
    let credentials = if endpoint.is_empty() {
        Credentials::new(
            std::env::var("AWS_ACCESS_KEY_ID").context("SQS on AWS needs AWS_ACCESS_KEY_ID")?,
            std::env::var("AWS_SECRET_ACCESS_KEY")
                .context("SQS on AWS needs AWS_SECRET_ACCESS_KEY")?,
            std::env::var("AWS_SESSION_TOKEN").ok(),
            None,
            "environment",
        )
    } else {
        Credentials::new("testing", "testing", None, None, "emulator")
    };
    let http = if endpoint.starts_with("http://") {
        aws_smithy_http_client::Builder::new().build_http()
    } else {
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https()
    };
    let mut config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(credentials)
        .http_client(http)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(OP_LIMIT)
                .build(),
        );
    if !endpoint.is_empty() {
        config = config.endpoint_url(endpoint);
    }
    Ok(aws_sdk_sqs::Client::from_conf(config.build()))
}

/// Creates the measurement's queue and measures on it.
async fn sqs_ceiling(
    client: &aws_sdk_sqs::Client,
    endpoint: &str,
    queue: &str,
    job: &Job,
) -> Result<Phases> {
    use aws_sdk_sqs::types::QueueAttributeName;

    let created = tokio::time::timeout(
        SETUP_LIMIT,
        client
            .create_queue()
            .queue_name(queue)
            // Long enough that no message reappears while a measurement runs.
            .attributes(QueueAttributeName::VisibilityTimeout, "900")
            .send(),
    )
    .await
    .map_err(|_| anyhow!("creating SQS queue {queue} took over {SETUP_LIMIT:?}"))?
    .map_err(|e| {
        anyhow!(
            "creating SQS queue {queue} at {endpoint:?}: {}",
            sdk_error(&e)
        )
    })?;
    let queue_url = created
        .queue_url()
        .context("CreateQueue answered without a queue URL")?;
    sqs_phases(client, queue_url, job).await
}

/// Deletes the measurement's queue, if it was created, whatever happened.
async fn sqs_cleanup(client: &aws_sdk_sqs::Client, queue: &str) {
    let delete = async {
        let found = client.get_queue_url().queue_name(queue).send().await;
        let Some(url) = found.ok().and_then(|f| f.queue_url) else {
            return Ok(()); // never created
        };
        client
            .delete_queue()
            .queue_url(url)
            .send()
            .await
            .map_err(|e| anyhow!("DeleteQueue: {}", sdk_error(&e)))?;
        Ok::<(), anyhow::Error>(())
    };
    if let Ok(Err(e)) | Err(e) = tokio::time::timeout(CLEANUP_LIMIT, delete)
        .await
        .map_err(|_| anyhow!("timed out"))
    {
        eprintln!("  ceiling: could not delete SQS queue {queue}: {e:#}");
    }
}

async fn sqs_phases(client: &aws_sdk_sqs::Client, queue_url: &str, job: &Job) -> Result<Phases> {
    // Warm one HTTP connection per client before the clock starts.
    let mut warm = tokio::task::JoinSet::new();
    for _ in 0..job.concurrency {
        let (client, url) = (client.clone(), queue_url.to_string());
        warm.spawn(async move { client.get_queue_attributes().queue_url(url).send().await });
    }
    while let Some(joined) = warm.join_next().await {
        joined?.map_err(|e| anyhow!("GetQueueAttributes: {}", sdk_error(&e)))?;
    }

    let url = Arc::new(queue_url.to_string());
    let clock = Arc::new(Clock::start());
    run_workers(
        "enqueue",
        job,
        || sent(&clock, job),
        |_| {
            let (client, url, clock, messages) =
                (client.clone(), url.clone(), clock.clone(), job.messages);
            async move {
                while let Some(index) = clock.take(messages) {
                    let body = String::from_utf8(payload(index)).expect("ASCII payload");
                    client
                        .send_message()
                        .queue_url(url.as_str())
                        .message_body(body)
                        .send()
                        .await
                        .map_err(|e| anyhow!("SendMessage: {}", sdk_error(&e)))?;
                    clock.mark();
                }
                Ok(())
            }
        },
    )
    .await?;
    let enqueue = clock.elapsed();

    let clock = Arc::new(Clock::start());
    run_workers(
        "dequeue",
        job,
        || dequeued(job),
        |_| {
            let (client, url, clock, tally) = (
                client.clone(),
                url.clone(),
                clock.clone(),
                job.tally.clone(),
            );
            async move {
                while !tally.done() {
                    let received = client
                        .receive_message()
                        .queue_url(url.as_str())
                        .max_number_of_messages(10)
                        .wait_time_seconds(1)
                        .send()
                        .await
                        .map_err(|e| anyhow!("ReceiveMessage: {}", sdk_error(&e)))?;
                    for message in received.messages() {
                        let handle = message
                            .receipt_handle()
                            .context("a message without a receipt handle")?;
                        client
                            .delete_message()
                            .queue_url(url.as_str())
                            .receipt_handle(handle)
                            .send()
                            .await
                            .map_err(|e| anyhow!("DeleteMessage: {}", sdk_error(&e)))?;
                        clock.mark();
                        tally.record(message.body().unwrap_or_default().as_bytes())?;
                    }
                }
                Ok(())
            }
        },
    )
    .await?;
    let dequeue = clock.elapsed();
    Ok(Phases { enqueue, dequeue })
}

/// An SDK error with its service code and message, or its cause (the SDK's Display says
/// only "service error" / "dispatch failure").
fn sdk_error<E, R>(error: &aws_sdk_sqs::error::SdkError<E, R>) -> String
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_sqs::error::SdkError;
    match error {
        SdkError::ServiceError(service) => {
            let e = service.err();
            format!(
                "{}: {}",
                e.code().unwrap_or("unknown error"),
                e.message().unwrap_or("")
            )
        }
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_task_sized_and_carry_their_index() {
        for index in [0, 1, 42, 123_456, MAX_MESSAGES] {
            let body = payload(index);
            assert_eq!(
                body.len(),
                PAYLOAD_BYTES,
                "{}",
                String::from_utf8_lossy(&body)
            );
            assert_eq!(payload_index(&body), Some(index));
            let json: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
            assert_eq!(json["task"], "tasq_bench.ceiling.noop");
        }
        assert_eq!(payload_index(b"hello"), None);
        assert_eq!(payload_index(br#"{"id":"00000000001x"}"#), None);
        assert_eq!(payload_index(br#"{"id":"0000"#), None);
    }

    #[test]
    fn tally_counts_each_message_once() {
        let tally = Tally::new(3);
        assert_eq!(tally.record(&payload(1)).unwrap(), 1);
        assert_eq!(tally.record(&payload(0)).unwrap(), 2);
        let missing = tally.check().unwrap_err().to_string();
        assert!(
            missing.contains("1 of 3 messages were never dequeued") && missing.contains('2'),
            "{missing}"
        );
        let twice = tally.record(&payload(1)).unwrap_err().to_string();
        assert!(twice.contains("message 1 was dequeued twice"), "{twice}");
        // At-least-once (SQS): the second delivery is counted, not fatal.
        let sqs = Tally::with_delivery(2, true);
        assert_eq!(sqs.record(&payload(0)).unwrap(), 1);
        assert_eq!(sqs.record(&payload(0)).unwrap(), 1);
        assert_eq!(sqs.redeliveries(), 1);
        let beyond = tally.record(&payload(3)).unwrap_err().to_string();
        assert!(beyond.contains("beyond the 3 sent"), "{beyond}");
        let foreign = tally.record(b"{}").unwrap_err().to_string();
        assert!(foreign.contains("did not send"), "{foreign}");
        assert!(!tally.done());
        assert_eq!(tally.record(&payload(2)).unwrap(), 3);
        assert!(tally.done());
        tally.check().unwrap();
    }

    #[test]
    fn clock_hands_out_each_index_once() {
        let clock = Clock::start();
        let taken: Vec<u64> = std::iter::from_fn(|| clock.take(3)).collect();
        assert_eq!(taken, [0, 1, 2]);
        assert_eq!(clock.take(3), None);
        assert_eq!(clock.elapsed(), Duration::ZERO);
        std::thread::sleep(Duration::from_millis(2));
        clock.mark();
        assert!(clock.elapsed() >= Duration::from_millis(2));
    }

    #[test]
    fn sizes_are_validated() {
        validate(1, 1).unwrap();
        validate(2000, 10).unwrap();
        assert!(validate(0, 1).unwrap_err().to_string().contains("messages"));
        assert!(validate(10, 0)
            .unwrap_err()
            .to_string()
            .contains("concurrency"));
        assert!(validate(10, MAX_CONCURRENCY + 1).is_err());
        assert!(validate(MAX_MESSAGES + 1, 1).is_err());
    }

    #[test]
    fn limits_and_rates() {
        assert_eq!(phase_limit(0), Duration::from_secs(30));
        assert_eq!(phase_limit(2000), Duration::from_secs(40));
        assert!(phase_limit(u64::MAX) > Duration::from_secs(30));
        assert_eq!(rate(1000, Duration::from_millis(500)), 2000.0);
        assert!(rate(10, Duration::ZERO).is_finite());
    }

    #[test]
    fn fractions_of_the_ceiling() {
        let ceiling = Ceiling {
            driver: "redis".into(),
            messages: 10,
            concurrency: 1,
            payload_bytes: PAYLOAD_BYTES,
            enqueue_per_sec: 1000.0,
            dequeue_per_sec: 500.0,
            method: method(Driver::Redis).into(),
            redeliveries: 0,
        };
        assert_eq!(ceiling.enqueue_fraction(250.0), Some(0.25));
        assert_eq!(ceiling.dequeue_fraction(250.0), Some(0.5));
        assert_eq!(ceiling.dequeue_fraction(f64::NAN), None);
        let zero = Ceiling {
            dequeue_per_sec: 0.0,
            ..ceiling.clone()
        };
        assert_eq!(zero.dequeue_fraction(1.0), None);
        let json = serde_json::to_string(&ceiling).unwrap();
        let back: Ceiling = serde_json::from_str(&json).unwrap();
        assert_eq!(back.method, ceiling.method);
        assert_eq!(back.enqueue_per_sec, 1000.0);
    }

    #[test]
    fn methods_are_one_line_each() {
        for driver in Driver::ALL {
            let text = method(driver);
            assert!(!text.is_empty() && !text.contains('\n'), "{driver}: {text}");
        }
    }
}
