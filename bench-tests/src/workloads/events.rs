//! Scenario 10, events: AsyncTasQ's Redis Pub/Sub events against Celery's own (`-E`, with
//! task-sent events), counted, timed and their overhead measured.
//!
//! Each run subscribes (a Rust Redis client on a thread of the harness) to the run's own
//! channel before any process of the run starts: AsyncTasQ's `ASYNCTASQ_EVENTS_CHANNEL`, and
//! for Celery the run's event exchange (`event_exchange`, which kombu publishes on Redis as
//! channel `/<db>.<exchange>/<routing key>`). Every message is stamped when it arrives. At the
//! end of the run:
//! - events received per type against the number the run's tasks and workers must emit
//!   (lost = expected - received, per type);
//! - delivery latency, from the event's own timestamp (set where it is emitted) to receipt;
//! - the producer's emit call, timed in the producer itself (see
//!   `tasq_fixtures/events_emit_timing.py`): one awaited emit per dispatch;
//! - with events off, the channel must stay silent (so the counts are the events', not noise).
//!
//! The overhead is throughput with events on against off, drained as separate variants of
//! the same run; the summary compares them (same system, same sizes). Paced runs at
//! increasing rates find the highest event rate before any is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{Case, Finished, Measure, RunPart, Workload};
use crate::analysis::stats::Better;
use crate::harness::Harness;
use crate::profile::Profile;
use crate::provision::brokers::Driver;
use crate::report;
use crate::result::{Configuration, Metrics};
use crate::run::{RunOutput, RunRequest};
use crate::systems::{celery, System, Variant};

pub struct Events;

/// The profile's `[events]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sizes {
    /// Drain runs: tasks per run, each system with its events off and on.
    pub task_count: u64,
    /// Worker concurrency of every run.
    pub concurrency: u32,
    /// Paced runs with events on, tasks/s, in increasing order: where events start to be lost.
    pub rates: Vec<f64>,
    /// Length of each paced run, seconds (its task count is rate x this).
    pub paced_seconds: f64,
}

/// The delivery latency the plan claims for (nearly) every event.
const WITHIN_MS: f64 = 10.0;
/// After the workers stop, the subscriber waits for this long a silence before counting
/// (events still in flight), at most [`QUIESCE_MAX`].
const QUIESCE_SILENCE: Duration = Duration::from_millis(300);
const QUIESCE_MAX: Duration = Duration::from_secs(5);

static MEASURES: [Measure; 11] = [
    Measure {
        name: "events_expected",
        better: Better::Neither,
        about: "events the run's tasks and workers must emit (all types)",
    },
    Measure {
        name: "events_received",
        better: Better::Neither,
        about: "events the subscriber received on the run's channel (all types)",
    },
    Measure {
        name: "events_lost",
        better: Better::Lower,
        about: "expected minus received, summed over the types (none received counts as lost)",
    },
    Measure {
        name: "events_unexpected",
        better: Better::Lower,
        about: "events received beyond the expected number of their type, or of a type not expected",
    },
    Measure {
        name: "event_latency_p50_ms",
        better: Better::Lower,
        about: "median delivery latency, from the event's own timestamp to its receipt",
    },
    Measure {
        name: "event_latency_p99_ms",
        better: Better::Lower,
        about: "p99 delivery latency, from the event's own timestamp to its receipt",
    },
    Measure {
        name: "events_within_10ms_ratio",
        better: Better::Higher,
        about: "share of the received events delivered within 10 ms of their timestamp",
    },
    Measure {
        name: "event_rate_per_sec",
        better: Better::Higher,
        about: "events received per second, first to last receipt",
    },
    Measure {
        name: "event_emit_ms",
        better: Better::Lower,
        about: "mean wall time of the producer's emit call per event (AsyncTasQ: RedisEventEmitter.emit; Celery: EventDispatcher.publish of task-sent), timed in the producer",
    },
    Measure {
        name: "event_emit_p99_ms",
        better: Better::Lower,
        about: "p99 wall time of the producer's emit call per event",
    },
    Measure {
        name: "event_emit_cpu_us",
        better: Better::Lower,
        about: "mean CPU time (the calling thread's) of the producer's emit call per event",
    },
];

impl Workload for Events {
    /// Across systems, events on with on and off with off; within one system the on/off pair
    /// is the overhead of emitting them.
    fn comparable(
        &self,
        a: &BTreeMap<&str, &str>,
        b: &BTreeMap<&str, &str>,
        same_system: bool,
    ) -> bool {
        same_system || a.get("events") == b.get("events")
    }

    fn name(&self) -> &'static str {
        "events"
    }

    fn measures(&self) -> &'static [Measure] {
        &MEASURES
    }

    /// Redis only: AsyncTasQ's emitter publishes to Redis Pub/Sub, and Celery's events are
    /// read here from its Redis transport's Pub/Sub channels.
    fn cases(&self, profile: &Profile, driver: Driver, _cpus: u32) -> Vec<Case> {
        if driver != Driver::Redis {
            return Vec::new();
        }
        let sizes = &profile.events;
        let mut cases = Vec::new();
        for base in variants(sizes.concurrency) {
            for variant in [base.clone(), base.clone().with("events", "on")] {
                cases.push(Case::new(
                    self.name(),
                    driver,
                    variant,
                    "events:noop",
                    sizes.task_count,
                    profile,
                ));
            }
        }
        for &rate in &sizes.rates {
            for base in variants(sizes.concurrency) {
                let case = Case::new(
                    self.name(),
                    driver,
                    base.with("events", "on"),
                    "events:noop",
                    paced_count(rate, sizes.paced_seconds),
                    profile,
                );
                cases.push(case.paced_at(rate));
            }
        }
        cases
    }

    fn validate_profile(&self, profile: &Profile, file: &str) -> Result<()> {
        let s = &profile.events;
        if !(10..=10_000_000).contains(&s.task_count) {
            bail!(
                "{file}: [events] task_count = {}: give 10 to 10000000 tasks per drain run",
                s.task_count
            );
        }
        if !(1..=1000).contains(&s.concurrency) {
            bail!(
                "{file}: [events] concurrency = {}: give 1 to 1000",
                s.concurrency
            );
        }
        if s.rates.is_empty()
            || s.rates
                .iter()
                .any(|r| !(r.is_finite() && *r > 0.0 && *r <= 100_000.0))
            || s.rates.windows(2).any(|w| w[0] >= w[1])
        {
            bail!(
                "{file}: [events] rates = {:?}: give one or more tasks/s rates above 0 and at most 100000, increasing",
                s.rates
            );
        }
        if !(s.paced_seconds.is_finite() && (1.0..=600.0).contains(&s.paced_seconds)) {
            bail!(
                "{file}: [events] paced_seconds = {}: give 1 to 600 seconds",
                s.paced_seconds
            );
        }
        Ok(())
    }

    /// The run engine, with one Redis connection URL for the run's subscriber (any
    /// database of the server: Pub/Sub channels are server-wide).
    fn run(
        &self,
        h: &Harness,
        req: &RunRequest,
        on_progress: &mut dyn FnMut(u64),
    ) -> Result<RunOutput> {
        let broker = h.broker(Driver::Redis)?;
        // A database of its own only to hold a connection URL the harness may use.
        let namespace = broker.namespace("events")?;
        SUBSCRIBER_URL.with(|url| *url.borrow_mut() = Some(namespace.connection_url()));
        let out = crate::run::run_once(h, req, on_progress);
        SUBSCRIBER_URL.with(|url| url.borrow_mut().take());
        out
    }

    fn start_run(&self, case: &Case, dir: &Path) -> Result<Box<dyn RunPart>> {
        let url = SUBSCRIBER_URL
            .with(|url| url.borrow().clone())
            .ok_or_else(|| anyhow!("events: a run of this workload starts through Workload::run (which provides the subscriber's Redis URL)"))?;
        Ok(Box::new(EventsRun::start(case, dir, &url)?))
    }

    fn report_section(&self, place: &report::Place) -> String {
        section(place)
    }

    fn charts(&self, place: &report::ChartPlace) -> Result<Vec<(String, String)>> {
        charts(place)
    }
}

thread_local! {
    /// Handed from [`Events::run`] to [`Events::start_run`], which the run engine calls
    /// on the same thread.
    static SUBSCRIBER_URL: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// AsyncTasQ's asyncio worker and Celery's threads pool acking late (the same delivery).
fn variants(concurrency: u32) -> Vec<Variant> {
    vec![
        Variant::new(System::ASYNCTASQ, "asyncio", concurrency),
        celery::acking_late("threads", concurrency),
    ]
}

fn paced_count(rate: f64, seconds: f64) -> u64 {
    ((rate * seconds).round() as u64).max(1)
}

/// What one run adds: the subscriber, started before anything of the run, and what the
/// run's tasks and workers must emit.
struct EventsRun {
    subscriber: Subscriber,
    system: System,
    events_on: bool,
    channel: String,
    exchange: String,
    redis_server_url: String,
    worker_processes: u32,
    dir: PathBuf,
}

impl EventsRun {
    fn start(case: &Case, dir: &Path, url: &str) -> Result<EventsRun> {
        let token = format!("{:08x}", rand::random::<u32>());
        let channel = format!("tasq-bench:events:{token}");
        let exchange = format!("celeryev_{token}");
        let system = case.variant.system;
        let pattern = if system == System::CELERY {
            format!("/*.{exchange}/*")
        } else {
            channel.clone()
        };
        Ok(EventsRun {
            subscriber: Subscriber::start(url, &pattern)?,
            system,
            events_on: case.variant.option("events") == Some("on"),
            channel,
            exchange,
            redis_server_url: server_url(url),
            worker_processes: case.worker_processes.max(1),
            dir: dir.to_path_buf(),
        })
    }

    /// The emitter's timings the producer wrote (one per event it emitted).
    fn emit_timings(&self) -> Result<Option<(Vec<f64>, Vec<f64>)>> {
        let mut wall = Vec::new();
        let mut cpu = Vec::new();
        let mut found = false;
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !(name.starts_with("events-emit-") && name.ends_with(".json")) {
                continue;
            }
            found = true;
            let text = std::fs::read_to_string(&path)?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("unreadable {}", path.display()))?;
            let read = |key: &str| -> Vec<f64> {
                v[key]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
                    .unwrap_or_default()
            };
            wall.extend(read("wall_ns"));
            cpu.extend(read("cpu_ns"));
        }
        Ok(found.then_some((wall, cpu)))
    }
}

impl RunPart for EventsRun {
    fn task_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("BENCH_TASK_MODULES".to_string(), "events".to_string()),
            // Names only: with events off nothing may be published there.
            ("ASYNCTASQ_EVENTS_CHANNEL".into(), self.channel.clone()),
            (
                "ASYNCTASQ_EVENTS_REDIS_URL".into(),
                self.redis_server_url.clone(),
            ),
            ("BENCH_EVENTS_CELERY_EXCHANGE".into(), self.exchange.clone()),
        ];
        if self.events_on {
            env.extend([
                ("BENCH_EVENTS_TIME_EMIT".to_string(), "1".to_string()),
                // AsyncTasQ's EventRegistry stays disabled unless ENABLE_ALL is set, whatever
                // the Redis emitter's flag says (asynctasq 1.7.0, monitoring/registry.py).
                ("ASYNCTASQ_EVENTS_ENABLE_ALL".into(), "true".into()),
                (
                    "ASYNCTASQ_EVENTS_ENABLE_EVENT_EMITTER_REDIS".into(),
                    "true".into(),
                ),
                ("BENCH_CELERY_EVENTS".into(), "1".into()),
            ]);
        } else {
            env.extend([
                (
                    "ASYNCTASQ_EVENTS_ENABLE_ALL".to_string(),
                    "false".to_string(),
                ),
                (
                    "ASYNCTASQ_EVENTS_ENABLE_EVENT_EMITTER_REDIS".into(),
                    "false".into(),
                ),
            ]);
        }
        env
    }

    fn record(&self, configuration: &mut Configuration) {
        let s = &mut configuration.settings;
        s.insert(
            "events".into(),
            if self.events_on { "on" } else { "off" }.into(),
        );
        if self.system == System::CELERY {
            s.insert("event_exchange".into(), self.exchange.clone());
            if self.events_on {
                s.insert("worker_send_task_events".into(), "True".into());
                s.insert("task_send_sent_event".into(), "True".into());
                // Its worker events: the worker runs without --without-heartbeat here.
                s.insert(
                    "worker_heartbeat".into(),
                    "on (worker-online/heartbeat/offline events, Celery's default interval 2 s)"
                        .into(),
                );
            }
        } else {
            s.insert("ASYNCTASQ_EVENTS_CHANNEL".into(), self.channel.clone());
            if self.events_on {
                s.insert("ASYNCTASQ_EVENTS_ENABLE_ALL".into(), "true".into());
                s.insert(
                    "ASYNCTASQ_EVENTS_ENABLE_EVENT_EMITTER_REDIS".into(),
                    "true".into(),
                );
            }
        }
    }

    fn finish(&self, run: &Finished, metrics: &mut Metrics) -> Vec<String> {
        let mut errors = Vec::new();
        let messages = match self.subscriber.stop() {
            Ok(m) => m,
            Err(e) => return vec![format!("the event subscriber failed: {e:#}")],
        };
        let mut events = Vec::new();
        for m in &messages {
            match decode(self.system, &m.payload, m.received_ns) {
                Ok(mut decoded) => events.append(&mut decoded),
                Err(e) => {
                    errors.push(format!(
                        "an event on {} could not be read: {e:#}",
                        m.channel
                    ));
                    break;
                }
            }
        }
        let expected = expected(
            self.system,
            self.events_on,
            run.task_count,
            self.worker_processes,
            &events,
        );
        let tally = tally(&expected, &events);
        let measures = &mut metrics.measures;
        for (kind, (want, got)) in &tally.per_type {
            let key = kind.replace('-', "_");
            measures.insert(format!("events_expected_{key}"), *want as f64);
            measures.insert(format!("events_received_{key}"), *got as f64);
        }
        measures.insert("events_expected".into(), tally.expected as f64);
        measures.insert("events_received".into(), events.len() as f64);
        measures.insert("events_lost".into(), tally.lost as f64);
        measures.insert("events_unexpected".into(), tally.unexpected as f64);
        let latency = latencies_ms(&events);
        if !latency.is_empty() {
            measures.insert("event_latency_p50_ms".into(), quantile(&latency, 0.50));
            measures.insert("event_latency_p99_ms".into(), quantile(&latency, 0.99));
            let within = latency.iter().filter(|&&l| l <= WITHIN_MS).count();
            measures.insert(
                "events_within_10ms_ratio".into(),
                within as f64 / latency.len() as f64,
            );
        }
        if let (Some(first), Some(last)) = (
            events.iter().map(|e| e.received_ns).min(),
            events.iter().map(|e| e.received_ns).max(),
        ) {
            if last > first {
                measures.insert(
                    "event_rate_per_sec".into(),
                    events.len() as f64 / ((last - first) as f64 / 1e9),
                );
            }
        }
        if !self.events_on && !events.is_empty() {
            errors.push(format!(
                "events off, yet {} events arrived on the run's channel: the count is not the system's",
                events.len()
            ));
        }
        match self.emit_timings() {
            Err(e) => errors.push(format!("could not read the producer's emit timings: {e:#}")),
            Ok(None) if self.events_on => errors.push(
                "events on, but the producer wrote no emit timings (events-emit-*.json)".into(),
            ),
            Ok(Some(_)) if !self.events_on => {
                errors.push("events off, yet the producer timed emit calls".into())
            }
            Ok(None) => {}
            Ok(Some((wall, cpu))) => {
                // One emit per dispatch: otherwise the timing does not describe this run.
                if wall.len() as u64 != run.task_count {
                    errors.push(format!(
                        "the producer timed {} emit calls for {} dispatches",
                        wall.len(),
                        run.task_count
                    ));
                }
                let mut wall_ms: Vec<f64> = wall.iter().map(|ns| ns / 1e6).collect();
                wall_ms.sort_by(f64::total_cmp);
                if !wall_ms.is_empty() {
                    measures.insert("event_emit_ms".into(), mean(&wall_ms));
                    measures.insert("event_emit_p99_ms".into(), quantile(&wall_ms, 0.99));
                    measures.insert("event_emit_cpu_us".into(), mean(&cpu) / 1e3);
                }
            }
        }
        errors
    }
}

/// `redis://host:port/3` -> `redis://host:port` (AsyncTasQ's events URL takes its own db).
fn server_url(url: &str) -> String {
    match url.trim_end_matches('/').rsplit_once('/') {
        Some((head, db)) if !head.ends_with('/') && db.chars().all(|c| c.is_ascii_digit()) => {
            head.to_string()
        }
        _ => url.to_string(),
    }
}

// --- the subscriber --------------------------------------------------------------------

/// One message as it arrived.
struct Message {
    channel: String,
    payload: Vec<u8>,
    received_ns: i128,
}

/// A Redis Pub/Sub subscription on its own thread, stamping each message on arrival.
struct Subscriber {
    messages: Arc<Mutex<Vec<Message>>>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<Result<()>>>>,
}

impl Subscriber {
    /// Subscribed (PSUBSCRIBE `pattern`) when this returns.
    fn start(url: &str, pattern: &str) -> Result<Subscriber> {
        let messages = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
        let client = redis::Client::open(url).context("the event subscriber's Redis URL")?;
        let pattern = pattern.to_string();
        let (sink, stopping) = (messages.clone(), stop.clone());
        let thread = std::thread::spawn(move || -> Result<()> {
            let mut conn = match client.get_connection_with_timeout(Duration::from_secs(3)) {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow!("{e:#}")));
                    return Err(e.into());
                }
            };
            // One PubSub for the whole run: dropping one unsubscribes.
            let mut pubsub = conn.as_pubsub();
            if let Err(e) = pubsub.psubscribe(&pattern) {
                let _ = ready_tx.send(Err(anyhow!("{e:#}")));
                return Err(e.into());
            }
            let _ = ready_tx.send(Ok(()));
            // A bounded read, so the stop flag is seen.
            pubsub.set_read_timeout(Some(Duration::from_millis(50)))?;
            while !stopping.load(Ordering::Relaxed) {
                match pubsub.get_message() {
                    Ok(msg) => {
                        let received_ns = unix_ns();
                        let payload: Vec<u8> = msg.get_payload()?;
                        sink.lock().expect("events").push(Message {
                            channel: msg.get_channel_name().to_string(),
                            payload,
                            received_ns,
                        });
                    }
                    Err(e) if e.is_timeout() => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        });
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("could not subscribe to the run's event channel: {e}"),
            Err(_) => bail!("the event subscriber did not subscribe within 10 s"),
        }
        Ok(Subscriber {
            messages,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    fn len(&self) -> usize {
        self.messages.lock().expect("events").len()
    }

    /// Waits for events still in flight (a silence, bounded), stops, and hands back
    /// every message received.
    fn stop(&self) -> Result<Vec<Message>> {
        let deadline = Instant::now() + QUIESCE_MAX;
        let mut seen = self.len();
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline && quiet_since.elapsed() < QUIESCE_SILENCE {
            std::thread::sleep(Duration::from_millis(20));
            let now = self.len();
            if now != seen {
                seen = now;
                quiet_since = Instant::now();
            }
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.lock().expect("thread").take() {
            thread
                .join()
                .map_err(|_| anyhow!("the subscriber thread panicked"))??;
        }
        Ok(std::mem::take(&mut *self.messages.lock().expect("events")))
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.lock().expect("thread").take() {
            let _ = thread.join();
        }
    }
}

fn unix_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

// --- what the messages say ------------------------------------------------------------

/// One event, decoded.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    /// The system's own type name (`task_started`, `task-succeeded`, ...).
    kind: String,
    task: Option<String>,
    worker: Option<String>,
    /// The event's own timestamp, Unix ns.
    emitted_ns: Option<i128>,
    received_ns: i128,
    /// Heartbeat interval the worker states in its worker events (`freq`), seconds.
    freq: Option<f64>,
}

/// The events in one message: AsyncTasQ publishes one msgpack map per message; Celery one
/// JSON event, or a list of them (`task.multi`: its worker buffers task events), in a
/// kombu envelope with a base64 body.
fn decode(system: System, payload: &[u8], received_ns: i128) -> Result<Vec<Event>> {
    if system == System::CELERY {
        let envelope: serde_json::Value = serde_json::from_slice(payload)?;
        let body = envelope["body"]
            .as_str()
            .ok_or_else(|| anyhow!("no body in the kombu message"))?;
        let raw = base64_decode(body)?;
        let body: serde_json::Value = serde_json::from_slice(&raw)?;
        let list = match body {
            serde_json::Value::Array(items) => items,
            one => vec![one],
        };
        list.iter()
            .map(|e| {
                Ok(Event {
                    kind: e["type"]
                        .as_str()
                        .ok_or_else(|| anyhow!("a Celery event without a type"))?
                        .to_string(),
                    task: e["uuid"].as_str().map(str::to_string),
                    // Worker processes on one host share a nodename unless given `-n`.
                    worker: e["hostname"].as_str().map(|host| match e["pid"].as_i64() {
                        Some(pid) => format!("{host} pid {pid}"),
                        None => host.to_string(),
                    }),
                    emitted_ns: e["timestamp"].as_f64().map(|s| (s * 1e9) as i128),
                    received_ns,
                    freq: e["freq"].as_f64(),
                })
            })
            .collect()
    } else {
        let value = msgpack::decode(payload)?;
        let get = |key: &str| value.get(key);
        let text = |key: &str| {
            get(key)
                .and_then(msgpack::Value::as_str)
                .map(str::to_string)
        };
        Ok(vec![Event {
            kind: text("event_type")
                .ok_or_else(|| anyhow!("an AsyncTasQ event without event_type"))?,
            task: text("task_id"),
            worker: text("worker_id"),
            emitted_ns: text("timestamp").as_deref().map(iso8601_ns).transpose()?,
            received_ns,
            freq: get("freq").and_then(msgpack::Value::as_f64),
        }])
    }
}

/// The events a run must see, per type: each task's own (one each), the workers' (one
/// online and one offline per worker process, heartbeats by the interval each states).
fn expected(
    system: System,
    on: bool,
    tasks: u64,
    workers: u32,
    events: &[Event],
) -> BTreeMap<String, u64> {
    let (task_kinds, none): (&[&str], &[&str]) = if system == System::CELERY {
        (
            &[
                "task-sent",
                "task-received",
                "task-started",
                "task-succeeded",
            ],
            &[
                "task-failed",
                "task-retried",
                "task-rejected",
                "task-revoked",
            ],
        )
    } else {
        (
            &["task_enqueued", "task_started", "task_completed"],
            &["task_failed", "task_reenqueued", "task_cancelled"],
        )
    };
    let worker = WorkerKinds::of(system);
    let n = |count: u64| if on { count } else { 0 };
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for kind in task_kinds {
        out.insert(kind.to_string(), n(tasks));
    }
    for kind in none {
        out.insert(kind.to_string(), 0);
    }
    out.insert(worker.online.into(), n(u64::from(workers)));
    out.insert(worker.offline.into(), n(u64::from(workers)));
    out.insert(worker.heartbeat.into(), n(heartbeats_due(&worker, events)));
    out
}

/// A system's names for its worker events.
struct WorkerKinds {
    online: &'static str,
    heartbeat: &'static str,
    offline: &'static str,
}

impl WorkerKinds {
    fn of(system: System) -> WorkerKinds {
        if system == System::CELERY {
            WorkerKinds {
                online: "worker-online",
                heartbeat: "worker-heartbeat",
                offline: "worker-offline",
            }
        } else {
            WorkerKinds {
                online: "worker_online",
                heartbeat: "worker_heartbeat",
                offline: "worker_offline",
            }
        }
    }
}

/// A heartbeat whose interval ends this close to the worker's offline event is not owed
/// unless it came: the worker's timer fires a little late, and shutdown cancels it first.
const HEARTBEAT_SLACK_NS: i128 = 250_000_000;

/// Heartbeats each worker owes, by the interval it states (`freq` on its online event):
/// one each time a full interval has passed since its previous heartbeat (or its online
/// event) before its offline event. Both systems schedule so: AsyncTasQ's loop sleeps the
/// interval after each emit; Celery's timer (`call_repeatedly`) sends once an interval has
/// passed since the previous send. So a late heartbeat moves the next one, and the next
/// is due from the one received; a missing one is taken at its due time. A received
/// heartbeat earlier than due (less the slack) is an extra, not the one due.
fn heartbeats_due(kinds: &WorkerKinds, events: &[Event]) -> u64 {
    let mut due = 0;
    let at = |kind: &str, worker: &str| {
        events
            .iter()
            .find(|e| e.kind == kind && e.worker.as_deref() == Some(worker))
    };
    let workers: BTreeSet<&str> = events
        .iter()
        .filter(|e| e.kind == kinds.online)
        .filter_map(|e| e.worker.as_deref())
        .collect();
    for worker in workers {
        let (Some(online), Some(offline)) = (at(kinds.online, worker), at(kinds.offline, worker))
        else {
            continue;
        };
        let (Some(start), Some(end), Some(freq)) =
            (online.emitted_ns, offline.emitted_ns, online.freq)
        else {
            continue;
        };
        // Below a millisecond the walk would take too long: owed none, so any received
        // show as unexpected.
        if freq.is_nan() || freq < 1e-3 || end <= start {
            continue;
        }
        let step = (freq * 1e9) as i128;
        let mut beats: Vec<i128> = events
            .iter()
            .filter(|e| e.kind == kinds.heartbeat && e.worker.as_deref() == Some(worker))
            .filter_map(|e| e.emitted_ns)
            .filter(|&t| t > start && t <= end)
            .collect();
        beats.sort_unstable();
        let mut beats = beats.into_iter().peekable();
        let mut last = start;
        loop {
            let next = last + step;
            // Extras: too early to be the one due.
            while beats.next_if(|&t| t < next - HEARTBEAT_SLACK_NS).is_some() {}
            if let Some(t) = beats.next_if(|&t| t < next + step) {
                due += 1;
                last = t;
            } else if next + HEARTBEAT_SLACK_NS <= end {
                due += 1;
                last = next;
            } else {
                break;
            }
        }
    }
    due
}

struct Tally {
    /// Type -> (expected, received).
    per_type: BTreeMap<String, (u64, u64)>,
    expected: u64,
    lost: u64,
    unexpected: u64,
}

fn tally(expected: &BTreeMap<String, u64>, events: &[Event]) -> Tally {
    let mut per_type: BTreeMap<String, (u64, u64)> =
        expected.iter().map(|(k, &v)| (k.clone(), (v, 0))).collect();
    for e in events {
        per_type.entry(e.kind.clone()).or_insert((0, 0)).1 += 1;
    }
    let lost = per_type.values().map(|&(w, g)| w.saturating_sub(g)).sum();
    let unexpected = per_type.values().map(|&(w, g)| g.saturating_sub(w)).sum();
    Tally {
        expected: expected.values().sum(),
        per_type,
        lost,
        unexpected,
    }
}

/// Delivery latency of every event with a timestamp, ms, sorted.
fn latencies_ms(events: &[Event]) -> Vec<f64> {
    let mut out: Vec<f64> = events
        .iter()
        .filter_map(|e| e.emitted_ns.map(|t| (e.received_ns - t) as f64 / 1e6))
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

/// The `q` quantile of sorted values (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// `2026-12-01T10:00:00.123456+00:00` (Python's `datetime.isoformat()`) -> Unix ns.
fn iso8601_ns(text: &str) -> Result<i128> {
    let bad = || anyhow!("not an ISO 8601 timestamp: {text:?}");
    let (date, rest) = text.split_once('T').ok_or_else(bad)?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (Some(Ok(year)), Some(Ok(month)), Some(Ok(day))) = (d.next(), d.next(), d.next()) else {
        return Err(bad());
    };
    // The offset: `Z`, `+HH:MM` or `-HH:MM`.
    let (clock, offset_s) = if let Some(clock) = rest.strip_suffix('Z') {
        (clock, 0)
    } else {
        let at = rest.rfind(['+', '-']).ok_or_else(bad)?;
        let (clock, off) = rest.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':').ok_or_else(bad)?;
        (
            clock,
            sign * (h.parse::<i64>()? * 3600 + m.parse::<i64>()? * 60),
        )
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut t = hms.split(':').map(|p| p.parse::<i64>());
    let (Some(Ok(h)), Some(Ok(mi)), Some(Ok(s))) = (t.next(), t.next(), t.next()) else {
        return Err(bad());
    };
    let frac_ns: i128 = if frac.is_empty() {
        0
    } else {
        if frac.len() > 9 || !frac.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        format!("{frac:0<9}").parse()?
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + h * 3600 + mi * 60 + s - offset_s;
    Ok(i128::from(seconds) * 1_000_000_000 + frac_ns)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn base64_decode(text: &str) -> Result<Vec<u8>> {
    let value = |c: u8| -> Result<u32> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => bail!("not base64: byte {c:#x}"),
        } as u32)
    };
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let take = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => bail!("truncated base64"),
        };
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + take]);
    }
    Ok(out)
}

/// The part of MessagePack AsyncTasQ's events use (msgspec-encoded dicts).
mod msgpack {
    use anyhow::{anyhow, bail, Result};

    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Nil,
        Bool(bool),
        Int(i128),
        Float(f64),
        Str(String),
        Bin(Vec<u8>),
        Array(Vec<Value>),
        Map(Vec<(Value, Value)>),
    }

    impl Value {
        pub fn get(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Map(entries) => entries
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(key))
                    .map(|(_, v)| v),
                _ => None,
            }
        }
        pub fn as_str(&self) -> Option<&str> {
            match self {
                Value::Str(s) => Some(s),
                _ => None,
            }
        }
        pub fn as_f64(&self) -> Option<f64> {
            match self {
                Value::Float(f) => Some(*f),
                Value::Int(i) => Some(*i as f64),
                _ => None,
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Value> {
        let mut r = Reader { bytes, at: 0 };
        let v = r.value()?;
        if r.at != bytes.len() {
            bail!("{} bytes after the MessagePack value", bytes.len() - r.at);
        }
        Ok(v)
    }

    struct Reader<'a> {
        bytes: &'a [u8],
        at: usize,
    }

    impl Reader<'_> {
        fn take(&mut self, n: usize) -> Result<&[u8]> {
            let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
            let end = end.ok_or_else(|| anyhow!("truncated MessagePack"))?;
            let out = &self.bytes[self.at..end];
            self.at = end;
            Ok(out)
        }
        fn uint(&mut self, n: usize) -> Result<u64> {
            Ok(self
                .take(n)?
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
        }
        fn str(&mut self, n: usize) -> Result<Value> {
            Ok(Value::Str(String::from_utf8(self.take(n)?.to_vec())?))
        }
        fn array(&mut self, n: usize) -> Result<Value> {
            (0..n)
                .map(|_| self.value())
                .collect::<Result<_>>()
                .map(Value::Array)
        }
        fn map(&mut self, n: usize) -> Result<Value> {
            (0..n)
                .map(|_| Ok((self.value()?, self.value()?)))
                .collect::<Result<_>>()
                .map(Value::Map)
        }
        fn value(&mut self) -> Result<Value> {
            let b = self.take(1)?[0];
            Ok(match b {
                0x00..=0x7f => Value::Int(i128::from(b)),
                0x80..=0x8f => self.map(usize::from(b & 0x0f))?,
                0x90..=0x9f => self.array(usize::from(b & 0x0f))?,
                0xa0..=0xbf => self.str(usize::from(b & 0x1f))?,
                0xc0 => Value::Nil,
                0xc2 => Value::Bool(false),
                0xc3 => Value::Bool(true),
                0xc4..=0xc6 => {
                    let n = self.uint(1 << (b - 0xc4))? as usize;
                    Value::Bin(self.take(n)?.to_vec())
                }
                0xca => Value::Float(f64::from(f32::from_bits(self.uint(4)? as u32))),
                0xcb => Value::Float(f64::from_bits(self.uint(8)?)),
                0xcc..=0xcf => Value::Int(i128::from(self.uint(1 << (b - 0xcc))?)),
                0xd0 => Value::Int(i128::from(self.take(1)?[0] as i8)),
                0xd1 => Value::Int(i128::from(self.uint(2)? as u16 as i16)),
                0xd2 => Value::Int(i128::from(self.uint(4)? as u32 as i32)),
                0xd3 => Value::Int(i128::from(self.uint(8)? as i64)),
                0xd9..=0xdb => {
                    let n = self.uint(1 << (b - 0xd9))? as usize;
                    self.str(n)?
                }
                0xdc | 0xdd => {
                    let n = self.uint(2 << (b - 0xdc))? as usize;
                    self.array(n)?
                }
                0xde | 0xdf => {
                    let n = self.uint(2 << (b - 0xde))? as usize;
                    self.map(n)?
                }
                0xe0..=0xff => Value::Int(i128::from(b as i8)),
                other => bail!("MessagePack type {other:#x} is not used by AsyncTasQ's events"),
            })
        }
    }
}

// --- the report -----------------------------------------------------------------------

fn mean_value(
    place_stats: &crate::analysis::summary::Summary,
    k: &crate::analysis::summary::GroupKey,
    metric: &str,
) -> f64 {
    report::mean_of(place_stats, k, metric).map_or(f64::NAN, |g| g.mean)
}

fn events_on(variant: &str) -> bool {
    variant.split('-').any(|t| t == "events_on")
}

/// Emit costs per event the worker's throughput pays: events the worker emits per task.
fn worker_events_per_task(system: &str) -> f64 {
    if system == "celery" {
        3.0 // task-received, task-started, task-succeeded
    } else {
        2.0 // task_started, task_completed
    }
}

fn section(place: &report::Place) -> String {
    let stats = place.stats;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\nEvents are counted on each run's own channel by a subscriber started before the run; latency is from each event's own timestamp to its receipt. Emit time is the producer's emit call, timed in the producer per event (AsyncTasQ `RedisEventEmitter.emit`, awaited after each enqueue; Celery `EventDispatcher.publish` of task-sent). Worker events are expected per worker process: one online and one offline, and one heartbeat each time the interval the worker states (`freq`: AsyncTasQ's default 60 s, Celery's 2 s) has passed since its previous heartbeat before it went offline. Celery's worker runs with its heartbeat here (no `--without-heartbeat`), which is what sends its worker events.\n"
    );
    let _ = writeln!(
        md,
        "| system | variant | mode | n | events expected | received | lost | unexpected | latency p50 ms | p99 ms | within 10 ms | emit ms (95% CI) | emit CPU µs | events/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for k in place.keys {
        let Some(count) = report::mean_of(stats, k, "events_received") else {
            continue;
        };
        let within = mean_value(stats, k, "events_within_10ms_ratio");
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            k.system,
            k.variant,
            k.mode,
            count.n,
            report::num(mean_value(stats, k, "events_expected"), 0),
            report::num(count.mean, 0),
            report::num(mean_value(stats, k, "events_lost"), 0),
            report::num(mean_value(stats, k, "events_unexpected"), 0),
            report::num(mean_value(stats, k, "event_latency_p50_ms"), 2),
            report::num(mean_value(stats, k, "event_latency_p99_ms"), 2),
            if within.is_finite() {
                format!("{:.2}%", within * 100.0)
            } else {
                report::num(within, 0)
            },
            report::fmt_ci_digits(report::mean_of(stats, k, "event_emit_ms"), 3),
            report::num(mean_value(stats, k, "event_emit_cpu_us"), 1),
            report::num(mean_value(stats, k, "event_rate_per_sec"), 0),
        );
    }
    // Overhead: each system's drain with events on against off (the summary's comparisons
    // hold the ratio's CI); the throughput-derived cost per event the worker emits.
    let _ = writeln!(
        md,
        "\n**Emission overhead** (drain, events on vs off; ratio and CI from the summary's comparisons; the cost per event is derived from the two mean throughputs: (1/on − 1/off) / events the worker emits per task, so it has no CI of its own)\n\n| system | off tasks/s | on tasks/s | ratio on/off (95% CI) | derived cost per worker event, µs |\n|---|---|---|---|---|"
    );
    for off in place
        .keys
        .iter()
        .filter(|k| k.mode == "drain" && !events_on(&k.variant))
    {
        let Some(on) = place.keys.iter().find(|k| {
            k.mode == "drain"
                && k.system == off.system
                && k.variant == format!("{}-events_on", off.variant)
        }) else {
            continue;
        };
        let (t_off, t_on) = (
            mean_value(stats, off, "throughput_tasks_per_sec"),
            mean_value(stats, on, "throughput_tasks_per_sec"),
        );
        let ratio = stats
            .comparisons
            .iter()
            .find(|c| {
                c.metric == "throughput_tasks_per_sec"
                    && c.scenario == off.scenario
                    && c.driver == off.driver
                    && c.mode == "drain"
                    && c.a == off.system
                    && c.b == on.system
                    && ((c.variant_a == on.variant && c.variant_b == off.variant)
                        || (c.variant_a == off.variant && c.variant_b == on.variant))
            })
            .map_or(report::num(t_on / t_off, 3), |c| {
                // Stored once per pair: on/off either way round.
                let (r, lo, hi) = if c.variant_a == on.variant {
                    (c.ratio, c.ratio_ci95_low, c.ratio_ci95_high)
                } else {
                    (
                        1.0 / c.ratio,
                        1.0 / c.ratio_ci95_high,
                        1.0 / c.ratio_ci95_low,
                    )
                };
                format!(
                    "{} [{}, {}]",
                    report::num(r, 3),
                    report::num(lo, 3),
                    report::num(hi, 3)
                )
            });
        let cost_us = (1.0 / t_on - 1.0 / t_off) / worker_events_per_task(&off.system) * 1e6;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            off.system,
            report::num(t_off, 0),
            report::num(t_on, 0),
            ratio,
            report::num(cost_us, 1)
        );
    }
    // The highest paced rate at which no run lost an event (and none below it did).
    let _ = writeln!(
        md,
        "\n**Highest event rate before any is lost** (paced, events on: the highest step whose runs, and every lower step's, lost none)\n\n| system | highest lossless rate, tasks/s | events/s received there | first rate with losses | lost there (mean) |\n|---|---|---|---|---|"
    );
    let systems: BTreeSet<&str> = place.keys.iter().map(|k| k.system.as_str()).collect();
    for system in systems {
        let mut steps: Vec<(f64, f64, f64)> = place
            .keys
            .iter()
            .filter(|k| k.system == system && k.mode == "paced")
            .filter_map(|k| {
                let runs = place.groups.get(*k)?;
                let rate = runs.first()?.metrics.paced_target_rate?;
                let lost = runs
                    .iter()
                    .filter_map(|r| r.metrics.measures.get("events_lost"))
                    .fold(0.0f64, |a, &b| a.max(b));
                Some((rate, lost, mean_value(stats, k, "event_rate_per_sec")))
            })
            .collect();
        steps.sort_by(|a, b| a.0.total_cmp(&b.0));
        if steps.is_empty() {
            continue;
        }
        let lossless = steps.iter().take_while(|s| s.1 == 0.0).last();
        let first_loss = steps.iter().find(|s| s.1 > 0.0);
        let _ = writeln!(
            md,
            "| {system} | {} | {} | {} | {} |",
            lossless.map_or("none".to_string(), |s| report::num(s.0, 0)),
            lossless.map_or(report::num(f64::NAN, 0), |s| report::num(s.2, 0)),
            first_loss.map_or("none up to the highest step".to_string(), |s| report::num(
                s.0, 0
            )),
            first_loss.map_or(report::num(f64::NAN, 0), |s| report::num(s.1, 0)),
        );
    }
    md
}

fn charts(place: &report::ChartPlace) -> Result<Vec<(String, String)>> {
    let stats = place.stats;
    let mut out = Vec::new();
    // Delivery latency p99 per configuration with events on.
    let bars: Vec<report::charts::Bar> = place
        .keys
        .iter()
        .filter_map(|k| {
            let g = report::mean_of(stats, k, "event_latency_p99_ms")?;
            Some(report::charts::Bar {
                label: format!("{} {}", k.variant, k.mode),
                key: k.system.clone(),
                value: g.mean,
                ci_low: g.ci95_low,
                ci_high: g.ci95_high,
            })
        })
        .collect();
    if !bars.is_empty() {
        out.push((
            format!("events-latency-{}.svg", place.name),
            report::charts::bars_with_ci(
                "Event delivery latency p99 (emit to receipt)",
                "ms",
                &bars,
            )?,
        ));
    }
    // Events lost against the paced rate.
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for k in place.keys.iter().filter(|k| k.mode == "paced") {
        let Some(rate) = place
            .groups
            .get(*k)
            .and_then(|runs| runs.first())
            .and_then(|r| r.metrics.paced_target_rate)
        else {
            continue;
        };
        let lost = mean_value(stats, k, "events_lost");
        if lost.is_finite() {
            series
                .entry(k.system.clone())
                .or_default()
                .push((rate, lost));
        }
    }
    if !series.is_empty() {
        let series: Vec<report::charts::Series> = series
            .into_iter()
            .map(|(name, points)| report::charts::Series { name, points })
            .collect();
        out.push((
            format!("events-lost-{}.svg", place.name),
            report::charts::lines(
                "Events lost by paced rate",
                "tasks/s",
                "events lost (mean)",
                &series,
            )?,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::Mode;

    #[test]
    fn reads_pythons_isoformat() {
        // datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC).timestamp() == 1796119200.123456
        assert_eq!(
            iso8601_ns("2026-12-01T10:00:00.123456+00:00").unwrap(),
            1_796_119_200_123_456_000
        );
        assert_eq!(iso8601_ns("1970-01-01T00:00:00+00:00").unwrap(), 0);
        assert_eq!(iso8601_ns("1970-01-01T01:00:00+01:00").unwrap(), 0);
        assert!(iso8601_ns("yesterday").is_err());
    }

    #[test]
    fn decodes_base64_and_msgpack() {
        assert_eq!(base64_decode("eyJhIjogMX0=").unwrap(), br#"{"a": 1}"#);
        // {"event_type": "task_started", "freq": 60.0, "n": -1, "q": ["a"]}
        let mut bytes = vec![0x84];
        bytes.extend([0xaa]);
        bytes.extend(b"event_type");
        bytes.extend([0xac]);
        bytes.extend(b"task_started");
        bytes.extend([0xa4]);
        bytes.extend(b"freq");
        bytes.push(0xcb);
        bytes.extend(60.0f64.to_bits().to_be_bytes());
        bytes.extend([0xa1, b'n', 0xff, 0xa1, b'q', 0x91, 0xa1, b'a']);
        let v = msgpack::decode(&bytes).unwrap();
        assert_eq!(
            v.get("event_type").and_then(msgpack::Value::as_str),
            Some("task_started")
        );
        assert_eq!(v.get("freq").and_then(msgpack::Value::as_f64), Some(60.0));
        assert_eq!(v.get("n"), Some(&msgpack::Value::Int(-1)));
        assert!(msgpack::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn counts_losses_and_extras_per_type() {
        let event = |kind: &str| Event {
            kind: kind.into(),
            task: None,
            worker: None,
            emitted_ns: Some(0),
            received_ns: 1_000_000,
            freq: None,
        };
        let events = vec![
            event("task_started"),
            event("task_started"),
            event("task_bogus"),
        ];
        let want = expected(System::ASYNCTASQ, true, 3, 1, &events);
        assert_eq!(want["task_enqueued"], 3);
        assert_eq!(want["worker_online"], 1);
        let t = tally(&want, &events);
        // 3 enqueued + 1 started + 3 completed + 1 online + 1 offline missing; one bogus.
        assert_eq!((t.lost, t.unexpected), (9, 1));
        assert!(expected(System::CELERY, false, 3, 1, &events)
            .values()
            .all(|&v| v == 0));
    }

    #[test]
    fn heartbeats_are_due_per_full_interval() {
        let kinds = WorkerKinds::of(System::ASYNCTASQ);
        let at = |kind: &str, s: i128| Event {
            kind: kind.into(),
            task: None,
            worker: Some("w1".into()),
            emitted_ns: Some(s * 1_000_000_000),
            received_ns: 0,
            freq: Some(60.0),
        };
        assert_eq!(
            heartbeats_due(&kinds, &[at("worker_online", 0), at("worker_offline", 59)]),
            0
        );
        assert_eq!(
            heartbeats_due(&kinds, &[at("worker_online", 0), at("worker_offline", 130)]),
            2
        );
        // An extra heartbeat (long before its interval ended) is not one due.
        assert_eq!(
            heartbeats_due(
                &kinds,
                &[
                    at("worker_online", 0),
                    at("worker_heartbeat", 10),
                    at("worker_offline", 59)
                ]
            ),
            0
        );
    }

    #[test]
    fn celery_heartbeats_follow_its_timer() {
        let kinds = WorkerKinds::of(System::CELERY);
        let at = |kind: &str, ms: i128| Event {
            kind: kind.into(),
            task: None,
            worker: Some("celery@host pid 7".into()),
            emitted_ns: Some(ms * 1_000_000),
            received_ns: 0,
            freq: Some(2.0),
        };
        // Late heartbeats move the next one: 2.3 s and 4.6 s; at 6.5 s the third is not due.
        let late = [
            at("worker-online", 0),
            at("worker-heartbeat", 2_300),
            at("worker-heartbeat", 4_600),
            at("worker-offline", 6_500),
        ];
        assert_eq!(heartbeats_due(&kinds, &late), 2);
        // None received: due at 2, 4 and 6 s (offline 6.5 s); so 3 are lost.
        let none = [at("worker-online", 0), at("worker-offline", 6_500)];
        assert_eq!(heartbeats_due(&kinds, &none), 3);
        // One lost in the middle is still owed.
        let one_lost = [
            at("worker-online", 0),
            at("worker-heartbeat", 2_010),
            at("worker-heartbeat", 6_020),
            at("worker-offline", 7_000),
        ];
        assert_eq!(heartbeats_due(&kinds, &one_lost), 3);
        // An interval ending right at shutdown: owed only if it came.
        let edge = [at("worker-online", 0), at("worker-offline", 2_100)];
        assert_eq!(heartbeats_due(&kinds, &edge), 0);
        let sent = [
            at("worker-online", 0),
            at("worker-heartbeat", 2_050),
            at("worker-offline", 2_100),
        ];
        assert_eq!(heartbeats_due(&kinds, &sent), 1);
        // With events on, each Celery worker process owes one online and one offline.
        let want = expected(System::CELERY, true, 5, 1, &late);
        assert_eq!(
            (
                want["worker-online"],
                want["worker-heartbeat"],
                want["worker-offline"]
            ),
            (1, 2, 1)
        );
        assert_eq!(want["task-sent"], 5);
    }

    #[test]
    fn celery_events_name_their_worker_process() {
        // A kombu envelope around one worker-heartbeat, as Celery's Redis transport publishes.
        // {"hostname": "celery@box", "pid": 41, "freq": 2.0, "timestamp": 1796119200.5,
        //  "type": "worker-heartbeat"}
        let body = "eyJob3N0bmFtZSI6ICJjZWxlcnlAYm94IiwgInBpZCI6IDQxLCAiZnJlcSI6IDIuMCwgInRpbWVzdGFtcCI6IDE3OTYxMTkyMDAuNSwgInR5cGUiOiAid29ya2VyLWhlYXJ0YmVhdCJ9";
        let payload = format!(r#"{{"body": "{body}", "content-type": "application/json"}}"#);
        let events = decode(
            System::CELERY,
            payload.as_bytes(),
            1_796_119_200_501_000_000,
        )
        .unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.kind, "worker-heartbeat");
        assert_eq!(e.worker.as_deref(), Some("celery@box pid 41"));
        assert_eq!(e.freq, Some(2.0));
        // Seconds as a float: exact to well under a microsecond.
        let ns = e.emitted_ns.unwrap();
        assert!((ns - 1_796_119_200_500_000_000).abs() < 1_000, "{ns}");
    }

    #[test]
    fn ci_cases_pair_events_off_and_on_and_pace_with_events_on() {
        let profile = Profile::load(&crate::project_root(), "ci").unwrap();
        let cases = Events.cases(&profile, Driver::Redis, 2);
        let labels: Vec<String> = cases.iter().map(Case::label).collect();
        let c = profile.events.concurrency;
        for label in [
            format!("asynctasq-redis-events-asyncio-c{c}-drain"),
            format!("asynctasq-redis-events-asyncio-c{c}-events_on-drain"),
            format!("celery-redis-events-threads-c{c}-acks_late-drain"),
            format!("celery-redis-events-threads-c{c}-acks_late-events_on-drain"),
        ] {
            assert!(labels.contains(&label), "{label}: {labels:?}");
        }
        assert_eq!(cases.len(), 4 + 2 * profile.events.rates.len());
        assert!(cases
            .iter()
            .filter(|c| c.mode == Mode::Paced)
            .all(|c| c.variant.option("events") == Some("on") && c.rate.is_some()));
        assert!(Events.cases(&profile, Driver::Postgres, 2).is_empty());
    }
}
