//! Scenario 12, api-overhead: the cost of building and sending a dispatch, pool
//! initialisation per driver, and what an idle worker costs the broker and the CPU.
//!
//! One run per system, of another shape than the engine's: a micro-benchmark process
//! (`tasq_fixtures.api_overhead`) times each dispatch API without I/O (R rounds of K calls,
//! median and p99 of the per-call ns over rounds) and as full round trips on the run's own
//! Redis database (into the run's unique queue; its keys deleted and checked gone), with the
//! broker's own time (PING, LPUSH of the same bytes by the same client) beside them; then the
//! system's worker is started with nothing to do, and over a fixed idle window the harness
//! counts the Redis commands it sends (a MONITOR connection of its own, filtered to the run's
//! database and the window by the server's timestamps) and its CPU seconds (procfs).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{Case, Measure, Workload};
use crate::analysis::stats::Better;
use crate::harness::Harness;
use crate::measure::procs::ManagedChild;
use crate::profile::Profile;
use crate::provision::brokers::{Driver, Endpoint, Namespace};
use crate::report;
use crate::result::{Configuration, Metrics};
use crate::run::space::RunSpace;
use crate::run::{RunOutput, RunRequest};
use crate::systems::{self, celery, System, Variant};

pub struct ApiOverhead;

/// The profile's `[api_overhead]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sizes {
    /// Builds: timed rounds per API, calls per round, discarded rounds before them.
    pub rounds: u32,
    pub calls: u32,
    pub warmup_rounds: u32,
    /// Round trips on Redis: timed rounds per API, sends per round, discarded sends first.
    pub send_rounds: u32,
    pub send_calls: u32,
    pub send_warmup: u32,
    /// Pool initialisations timed per driver (after one untimed), AsyncTasQ's drivers.
    pub pool_inits: u32,
    /// Drivers whose pool initialisation is timed (redis, postgres, mysql, rabbitmq, sqs).
    pub pool_drivers: Vec<String>,
    /// The idle worker: seconds after it is ready before the window, and the window.
    pub idle_settle_seconds: f64,
    pub idle_seconds: f64,
}

/// Concurrency of the idle workers (AsyncTasQ asyncio slots, Celery threads).
const CONCURRENCY: u32 = 10;
/// A worker's import and broker connection take seconds; a minute means it is stuck.
const READY_LIMIT: Duration = Duration::from_secs(60);
const WORKER_GRACE: Duration = Duration::from_secs(30);
/// Both systems' workers print this once their settings are in effect.
const READY_LINE: &str = "BENCH_CONFIG log_level=";

/// The build statements each system is timed on (see the script's docstring).
const BUILDS: [&str; 8] = [
    "loop",
    "direct",
    "delay",
    "delay_queue",
    "set",
    "driver_override",
    "prepare_direct",
    "prepare_driver_override",
];
const SENDS: [&str; 5] = ["direct", "delay", "delay_queue", "set", "driver_override"];

macro_rules! measure {
    ($name:literal, $better:ident, $about:literal) => {
        Measure {
            name: $name,
            better: Better::$better,
            about: $about,
        }
    };
}

static MEASURES: [Measure; 39] = [
    measure!("build_loop_ns", Neither, "the timing loop alone (a `pass` statement), ns per iteration: included in every build figure"),
    measure!("build_direct_ns", Lower, "building a dispatch without sending, ns per call (median over rounds): AsyncTasQ `noop(args)`, Celery `noop.s(*args)`"),
    measure!("build_delay_ns", Lower, "AsyncTasQ `noop(args).delay(60)`, Celery `noop.signature(args, countdown=60)`, ns per call"),
    measure!("build_delay_queue_ns", Lower, "AsyncTasQ `noop(args).delay(60).on_queue(\"high\")`, Celery `noop.signature(args, countdown=60, queue=\"high\")`, ns per call"),
    measure!("build_set_ns", Lower, "Celery `noop.signature(args).set(countdown=60, queue=\"high\")`, ns per call"),
    measure!("build_driver_override_ns", Lower, "AsyncTasQ: building a task with a per-task driver override (`@task(driver=\"redis\")`), ns per call"),
    measure!("prepare_direct_ns", Lower, "AsyncTasQ: build plus what dispatch() does to pick the driver (get_dispatcher, _get_driver), default driver, ns per call"),
    measure!("prepare_driver_override_ns", Lower, "AsyncTasQ: the same with the per-task driver override, ns per call"),
    measure!("build_loop_p99_ns", Neither, "p99 over rounds of the loop alone, ns"),
    measure!("build_direct_p99_ns", Lower, "p99 over rounds of build_direct, ns per call"),
    measure!("build_delay_p99_ns", Lower, "p99 over rounds of build_delay, ns per call"),
    measure!("build_delay_queue_p99_ns", Lower, "p99 over rounds of build_delay_queue, ns per call"),
    measure!("build_set_p99_ns", Lower, "p99 over rounds of build_set, ns per call"),
    measure!("build_driver_override_p99_ns", Lower, "p99 over rounds of build_driver_override, ns per call"),
    measure!("prepare_direct_p99_ns", Lower, "p99 over rounds of prepare_direct, ns per call"),
    measure!("prepare_driver_override_p99_ns", Lower, "p99 over rounds of prepare_driver_override, ns per call"),
    measure!("chaining_overhead_us", Lower, "chained minus direct build, µs: AsyncTasQ build_delay_queue - build_direct; Celery build_set - build_direct"),
    measure!("driver_override_overhead_us", Lower, "AsyncTasQ: prepare_driver_override - prepare_direct, µs (the build and the driver resolution a dispatch does, without the send)"),
    measure!("send_direct_us", Lower, "the direct dispatch as a full round trip on Redis, µs per call (median over rounds): AsyncTasQ `await noop(args).dispatch()`, Celery `noop.apply_async(args)`"),
    measure!("send_delay_us", Lower, "round trip of the delay(60) / countdown=60 dispatch, µs"),
    measure!("send_delay_queue_us", Lower, "round trip of the delay(60) + queue dispatch, µs (Celery: apply_async(countdown=60, queue=))"),
    measure!("send_set_us", Lower, "Celery: round trip of signature().set(countdown=60, queue=).apply_async(), µs"),
    measure!("send_driver_override_us", Lower, "AsyncTasQ: round trip of the task with the per-task driver override, µs"),
    measure!("send_direct_p99_us", Lower, "p99 over rounds of send_direct, µs"),
    measure!("send_delay_p99_us", Lower, "p99 over rounds of send_delay, µs"),
    measure!("send_delay_queue_p99_us", Lower, "p99 over rounds of send_delay_queue, µs"),
    measure!("send_set_p99_us", Lower, "p99 over rounds of send_set, µs"),
    measure!("send_driver_override_p99_us", Lower, "p99 over rounds of send_driver_override, µs"),
    measure!("broker_ping_us", Lower, "broker time: one PING by the client the system sends with, in the same process, µs"),
    measure!("broker_push_us", Lower, "broker time: one LPUSH of the exact bytes of a message the system wrote, same client, µs"),
    measure!("send_overhead_us", Lower, "send_direct - broker_push: the system's own time per dispatch beyond the broker's, µs"),
    measure!("message_bytes", Lower, "bytes of one direct-dispatch message as read back from the broker (LINDEX)"),
    measure!("pool_init_redis_ms", Lower, "AsyncTasQ RedisDriver: create, connect(), first PING answered, ms (median of the run's inits)"),
    measure!("pool_init_postgres_ms", Lower, "AsyncTasQ PostgresDriver (asyncpg pool): create, connect(), first SELECT 1 answered, ms"),
    measure!("pool_init_mysql_ms", Lower, "AsyncTasQ MySQLDriver (asyncmy pool): create, connect(), first SELECT 1 answered, ms"),
    measure!("pool_init_rabbitmq_ms", Lower, "AsyncTasQ RabbitMQDriver (aio-pika): create, connect() (connection, channel, QoS, exchange declared), ms"),
    measure!("pool_init_sqs_ms", Lower, "AsyncTasQ SQSDriver (aioboto3 client): create, connect(), first GetQueueUrl answered, ms"),
    measure!("idle_broker_commands_per_min", Lower, "Redis commands an idle worker sent in the run's database, per minute (the harness's MONITOR, server timestamps inside the window)"),
    measure!("idle_cpu_seconds_per_min", Lower, "CPU seconds of the idle worker's process group (every thread's on-CPU ns, schedstat), per minute of the window"),
];

impl Workload for ApiOverhead {
    fn name(&self) -> &'static str {
        "api-overhead"
    }

    fn primary_metric(&self) -> Option<&'static str> {
        Some("build_direct_ns")
    }

    fn measures(&self) -> &'static [Measure] {
        &MEASURES
    }

    fn common_table(&self) -> bool {
        false
    }

    /// One run per system: AsyncTasQ asyncio and Celery threads acking late (the same
    /// delivery, so the summary compares them), both at the same concurrency.
    fn cases(&self, profile: &Profile, driver: Driver, _cpus: u32) -> Vec<Case> {
        if driver != Driver::Redis {
            return Vec::new();
        }
        [
            Variant::new(System::ASYNCTASQ, "asyncio", CONCURRENCY),
            celery::acking_late("threads", CONCURRENCY),
        ]
        .into_iter()
        .map(|variant| Case::new(self.name(), driver, variant, "noop", 0, profile))
        .collect()
    }

    fn validate_profile(&self, profile: &Profile, file: &str) -> Result<()> {
        let s = &profile.api_overhead;
        for (key, value, low) in [
            ("rounds", s.rounds, 1),
            ("calls", s.calls, 1),
            ("send_rounds", s.send_rounds, 1),
            ("send_calls", s.send_calls, 1),
            ("warmup_rounds", s.warmup_rounds, 0),
            ("send_warmup", s.send_warmup, 1),
            ("pool_inits", s.pool_inits, 0),
        ] {
            if value < low || value > 1_000_000 {
                bail!("{file}: [api_overhead] {key} = {value}; valid: {low} to 1000000");
            }
        }
        for driver in &s.pool_drivers {
            Driver::parse(driver)
                .with_context(|| format!("{file}: [api_overhead] pool_drivers"))?;
        }
        for (key, value, low) in [
            ("idle_settle_seconds", s.idle_settle_seconds, 0.0),
            ("idle_seconds", s.idle_seconds, 1.0),
        ] {
            if !(low..=600.0).contains(&value) {
                bail!("{file}: [api_overhead] {key} = {value}; valid: {low} to 600 seconds");
            }
        }
        Ok(())
    }

    fn run(
        &self,
        h: &Harness,
        req: &RunRequest,
        _on_progress: &mut dyn FnMut(u64),
    ) -> Result<RunOutput> {
        let profile = Profile::load(&h.root, req.profile_name)?;
        run_one(h, req, &profile.api_overhead)
    }

    fn report_section(&self, place: &report::Place) -> String {
        section(place)
    }

    fn charts(&self, place: &report::ChartPlace) -> Result<Vec<(String, String)>> {
        let mut bars = Vec::new();
        for key in place.keys {
            for build in BUILDS.iter().filter(|b| **b != "loop") {
                let metric = format!("build_{build}_ns").replace("build_prepare_", "prepare_");
                if let Some(g) = report::mean_of(place.stats, key, &metric) {
                    bars.push(report::charts::Bar {
                        label: format!("{} {build}", key.system),
                        key: key.system.clone(),
                        value: g.mean,
                        ci_low: g.ci95_low,
                        ci_high: g.ci95_high,
                    });
                }
            }
        }
        if bars.is_empty() {
            return Ok(Vec::new());
        }
        let svg = report::charts::bars_with_ci(
            "Building a dispatch (no I/O): ns per call, mean of the runs' medians, 95% CI",
            "ns per call",
            &bars,
        )?;
        Ok(vec![(
            format!("api-overhead-builds-{}.svg", place.name),
            svg,
        )])
    }
}

/// What the micro-benchmark script prints.
#[derive(Debug, Deserialize)]
struct ScriptOut {
    python: String,
    gc: GcState,
    builds_ns: BTreeMap<String, Figure>,
    sends_us: BTreeMap<String, Figure>,
    broker_us: BTreeMap<String, Figure>,
    message_bytes: u64,
    #[serde(default)]
    pool_init_ms: BTreeMap<String, PoolFigure>,
    keys_written: Vec<String>,
    keys_left: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct GcState {
    enabled_while_timing: bool,
    thresholds: Vec<u64>,
    collections_while_timing: u64,
}

#[derive(Debug, Deserialize)]
struct Figure {
    median: f64,
    p99: f64,
}

#[derive(Debug, Deserialize)]
struct PoolFigure {
    median: f64,
}

/// The figures of one script run as measures, with the derived ones (each stated in its
/// `about`). Errors: figures that are missing or not finite and positive.
fn measures_of(system: System, out: &ScriptOut) -> (BTreeMap<String, f64>, Vec<String>) {
    let mut m = BTreeMap::new();
    let mut errors = Vec::new();
    let (builds, sends): (&[&str], &[&str]) = if system == System::ASYNCTASQ {
        (
            &[
                "loop",
                "direct",
                "delay",
                "delay_queue",
                "driver_override",
                "prepare_direct",
                "prepare_driver_override",
            ],
            &["direct", "delay", "delay_queue", "driver_override"],
        )
    } else {
        (
            &["loop", "direct", "delay", "delay_queue", "set"],
            &["direct", "delay", "delay_queue", "set"],
        )
    };
    let mut put = |name: String, value: Option<f64>| match value {
        Some(v) if v.is_finite() && v > 0.0 => {
            m.insert(name, v);
        }
        other => errors.push(format!("{name}: {other:?} is not a finite positive figure")),
    };
    for &b in builds {
        let name = if b.starts_with("prepare_") {
            b.to_string()
        } else {
            format!("build_{b}")
        };
        let f = out.builds_ns.get(b);
        put(format!("{name}_ns"), f.map(|f| f.median));
        put(format!("{name}_p99_ns"), f.map(|f| f.p99));
    }
    for &s in sends {
        let f = out.sends_us.get(s);
        put(format!("send_{s}_us"), f.map(|f| f.median));
        put(format!("send_{s}_p99_us"), f.map(|f| f.p99));
    }
    for b in ["ping", "push"] {
        put(
            format!("broker_{b}_us"),
            out.broker_us.get(b).map(|f| f.median),
        );
    }
    put("message_bytes".into(), Some(out.message_bytes as f64));
    for (driver, f) in &out.pool_init_ms {
        put(format!("pool_init_{driver}_ms"), Some(f.median));
    }
    // Differences may be negative (then the overhead is below the noise): kept as measured.
    let get = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(f64::NAN);
    let chained = if system == System::ASYNCTASQ {
        "build_delay_queue_ns"
    } else {
        "build_set_ns"
    };
    let chaining = (get(&m, chained) - get(&m, "build_direct_ns")) / 1000.0;
    let send_overhead = get(&m, "send_direct_us") - get(&m, "broker_push_us");
    m.insert("chaining_overhead_us".into(), chaining);
    m.insert("send_overhead_us".into(), send_overhead);
    if system == System::ASYNCTASQ {
        let d = (get(&m, "prepare_driver_override_ns") - get(&m, "prepare_direct_ns")) / 1000.0;
        m.insert("driver_override_overhead_us".into(), d);
    }
    m.retain(|_, v| v.is_finite());
    (m, errors)
}

fn run_one(h: &Harness, req: &RunRequest, sizes: &Sizes) -> Result<RunOutput> {
    let case = req.case;
    let system = case.variant.system;
    let deadline = Instant::now() + req.timeout;
    let space = RunSpace::open(h, Driver::Redis)?;
    let (server_url, db) = match space.namespace.endpoint() {
        Endpoint::Redis { server_url, db } => (server_url, db),
        other => bail!("api-overhead runs on Redis, got {other:?}"),
    };
    let socket = space.dir().join("collector.sock");
    let env = space.env(h, &socket, &req.run_id, case.celery_prefetch_multiplier);
    space.prepare(system, &env)?;
    let mut errors = Vec::new();
    let mut caveats = systems::caveats(&case.variant, space.namespace.as_ref());

    // The other drivers' namespaces for AsyncTasQ's pool initialisation (dropped, and so
    // cleaned up, when the run ends). A broker that cannot be provided is left out, said so.
    let mut pool_spaces: Vec<Box<dyn Namespace>> = Vec::new();
    let mut pool_env: Vec<(String, String)> = Vec::new();
    let mut pool_drivers = Vec::new();
    let sqs_queue = space.queue.clone();
    if system == System::ASYNCTASQ && sizes.pool_inits > 0 {
        for name in &sizes.pool_drivers {
            let driver = Driver::parse(name)?;
            if driver == Driver::Redis {
                pool_drivers.push(name.clone());
                continue;
            }
            let opened = h.broker(driver).and_then(|broker| {
                let ns = broker.namespace(&format!("{:08x}", rand::random::<u32>()))?;
                if driver == Driver::Sqs {
                    ns.prepare(&sqs_queue)?;
                }
                Ok(ns)
            });
            match opened {
                Ok(ns) => {
                    pool_env.extend(
                        systems::asynctasq::driver_env(&ns.endpoint())
                            .into_iter()
                            .filter(|(k, _)| k != "ASYNCTASQ_DRIVER"),
                    );
                    if let Some(c) = ns.caveat() {
                        caveats.push(format!("pool_init_{name}_ms: {c}"));
                    }
                    pool_spaces.push(ns);
                    pool_drivers.push(name.clone());
                }
                Err(e) => {
                    caveats.push(format!("pool initialisation on {name} not measured: {e:#}"))
                }
            }
        }
    }

    let mut script = system.configured(&env, h.python.python.clone());
    script.envs(pool_env.iter().map(|(k, v)| (k, v)));
    script.args([
        "-m",
        "tasq_fixtures.api_overhead",
        "--system",
        system.name(),
        "--queue",
        &space.queue,
    ]);
    for (flag, value) in [
        ("--rounds", sizes.rounds),
        ("--calls", sizes.calls),
        ("--warmup-rounds", sizes.warmup_rounds),
        ("--send-rounds", sizes.send_rounds),
        ("--send-calls", sizes.send_calls),
        ("--send-warmup", sizes.send_warmup),
        ("--pool-inits", sizes.pool_inits),
    ] {
        script.args([flag, &value.to_string()]);
    }
    script.args(["--pool-drivers", &pool_drivers.join(",")]);
    script.args(["--sqs-queue", &sqs_queue]);
    let mut child = ManagedChild::spawn("api_overhead", &mut script, space.dir())?;
    let status = child.wait_exit(deadline.saturating_duration_since(Instant::now()));
    let out: ScriptOut = match status {
        Some(s) if s.success() => {
            let stdout = child.stdout();
            let line = stdout
                .lines()
                .rev()
                .find(|l| l.starts_with('{'))
                .unwrap_or("");
            serde_json::from_str(line).with_context(|| {
                format!(
                    "run {}: unreadable api_overhead output: {stdout:?}",
                    req.run_id
                )
            })?
        }
        Some(s) => bail!(
            "run {}: the {system} api_overhead script failed ({s}). Its output ends with:\n{}",
            req.run_id,
            child.log_tail(25)
        ),
        None => {
            child.stop(Duration::from_secs(2));
            bail!(
                "run {}: the {system} api_overhead script did not finish within {:?}. Its output ends with:\n{}",
                req.run_id,
                req.timeout,
                child.log_tail(25)
            )
        }
    };
    let (mut measures, figure_errors) = measures_of(system, &out);
    errors.extend(figure_errors);
    if !out.keys_left.is_empty() {
        errors.push(format!(
            "the script left keys of the run's queue: {:?}",
            out.keys_left
        ));
    }
    // Checked again from here, by another client: nothing of the run's queue is left.
    let left = queue_keys(&space.namespace.connection_url(), &space.queue)?;
    if !left.is_empty() {
        errors.push(format!("keys of the run's queue left in Redis: {left:?}"));
    }
    if out.keys_written.is_empty() {
        errors
            .push("the script reports no key written: the round trips did not reach Redis".into());
    }

    // The idle worker.
    let idle = idle_worker(h, &env, &case.variant, &server_url, db, sizes, deadline)?;
    measures.insert(
        "idle_broker_commands_per_min".into(),
        idle.commands as f64 * 60.0 / idle.window_s,
    );
    measures.insert(
        "idle_cpu_seconds_per_min".into(),
        idle.cpu_seconds * 60.0 / idle.window_s,
    );
    // Per command name, for the report (not a declared measure: not summarised).
    for (command, n) in &idle.by_command {
        measures.insert(
            format!("idle_cmd_{command}_per_min"),
            *n as f64 * 60.0 / idle.window_s,
        );
    }
    errors.extend(idle.errors);

    let mut metrics = Metrics::not_measured();
    metrics.worker_stopped_gracefully = idle.graceful;
    metrics.memory_rss_mb = idle.rss_mb;
    metrics.measures = measures;
    let mut settings = BTreeMap::new();
    settings.insert("api_overhead.queue".into(), space.queue.clone());
    settings.insert("api_overhead.redis_db".into(), db.to_string());
    settings.insert(
        "api_overhead.builds".into(),
        format!(
            "{} rounds x {} calls after {} warm-up rounds, timeit statements; GC enabled={} thresholds={:?}, {} collections while timing; Python {}",
            sizes.rounds,
            sizes.calls,
            sizes.warmup_rounds,
            out.gc.enabled_while_timing,
            out.gc.thresholds,
            out.gc.collections_while_timing,
            out.python
        ),
    );
    settings.insert(
        "api_overhead.sends".into(),
        format!(
            "{} rounds x {} awaited sends after {} warm-up, one at a time (AsyncTasQ: asyncio.run loop)",
            sizes.send_rounds, sizes.send_calls, sizes.send_warmup
        ),
    );
    settings.insert(
        "api_overhead.pool_inits".into(),
        format!(
            "{} per driver after one untimed: {}",
            sizes.pool_inits,
            pool_drivers.join(",")
        ),
    );
    settings.insert("api_overhead.idle_worker".into(), idle.describe);
    settings.insert(
        "api_overhead.idle_window_s".into(),
        format!("{:.2}", idle.window_s),
    );
    let mut configuration = Configuration {
        settings,
        broker_source: space.broker.info().source.clone(),
        caveats,
        ..req.configuration()
    };
    system.record_settings(case, &mut configuration);
    let mut result = req.result(h, configuration, metrics, errors);
    result.environment.broker_version = space.broker.info().server_version.clone();
    drop(pool_spaces);
    Ok(RunOutput {
        result,
        histograms: crate::measure::metrics::Histograms::from_tally(&Default::default()),
    })
}

/// Keys of the Redis database at `url` whose name contains `queue`.
pub fn queue_keys(url: &str, queue: &str) -> Result<Vec<String>> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(3))?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*{queue}*"))
        .query(&mut conn)?;
    Ok(keys)
}

/// What an idle worker cost over the window.
struct Idle {
    commands: u64,
    by_command: BTreeMap<String, u64>,
    cpu_seconds: f64,
    window_s: f64,
    rss_mb: f64,
    graceful: bool,
    describe: String,
    errors: Vec<String>,
}

/// The system's worker with nothing to do. Celery runs with its own defaults for the
/// worker's broker chatter (gossip, mingle and heartbeat on, which the other scenarios turn
/// off), since that is what an idle Celery worker costs a user; AsyncTasQ has no such
/// options and runs as everywhere else.
fn idle_worker(
    h: &Harness,
    env: &systems::RunEnv,
    variant: &Variant,
    server_url: &str,
    db: u8,
    sizes: &Sizes,
    deadline: Instant,
) -> Result<Idle> {
    let system = variant.system;
    let (mut command, describe) = if system == System::CELERY {
        let mut c = system.configured(env, h.python.bin("celery"));
        c.env("BENCH_CELERY_POOL", &variant.pool).env(
            "BENCH_CELERY_ACKS",
            variant.option("acks").unwrap_or("early"),
        );
        c.args([
            "-A",
            "tasq_fixtures.celery_app",
            "worker",
            "-P",
            &variant.pool,
        ]);
        c.args(["-c", &variant.concurrency.to_string(), "-Q", env.queue]);
        c.args(["--loglevel", systems::WORKER_LOG_LEVEL]);
        (
            c,
            format!(
                "celery worker -P {} -c {} at Celery's defaults for gossip, mingle and heartbeat (on)",
                variant.pool, variant.concurrency
            ),
        )
    } else {
        (
            systems::worker_command(variant, env),
            format!(
                "asynctasq worker --driver redis --concurrency {} (the harness's worker)",
                variant.concurrency
            ),
        )
    };
    let mut worker = ManagedChild::spawn("worker", &mut command, env.workdir)?;
    let ready_by = (Instant::now() + READY_LIMIT).min(deadline);
    loop {
        if worker.stderr().contains(READY_LINE) || worker.stdout().contains(READY_LINE) {
            break;
        }
        if let Some(status) = worker.try_exit() {
            bail!(
                "the idle {system} worker exited ({status}) before it was ready. Its output ends with:\n{}",
                worker.log_tail(25)
            );
        }
        if Instant::now() > ready_by {
            worker.stop(Duration::from_secs(2));
            bail!(
                "the idle {system} worker was not ready within {READY_LIMIT:?}. Its output ends with:\n{}",
                worker.log_tail(25)
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_secs_f64(sizes.idle_settle_seconds));
    let monitor = Monitor::start(server_url)?;
    let pgid = [worker.pgid()];
    let before =
        group_cpu_ns(worker.pgid()).ok_or_else(|| anyhow!("the idle {system} worker is gone"))?;
    let t0 = crate::measure::clock::unix_ns();
    thread::sleep(Duration::from_secs_f64(sizes.idle_seconds));
    let cpu_after = group_cpu_ns(worker.pgid());
    let t1 = crate::measure::clock::unix_ns();
    let after = crate::measure::sampler::sample_groups(&pgid)
        .zip(cpu_after)
        .ok_or_else(|| anyhow!("the idle {system} worker died during its idle window"))?;
    let lines = monitor.stop()?;
    let mut errors = Vec::new();
    if let Some(status) = worker.try_exit() {
        errors.push(format!(
            "the idle worker exited ({status}) during the window"
        ));
    }
    let graceful = worker.stop(WORKER_GRACE);
    errors.extend(systems::verify_worker_config(
        variant,
        Driver::Redis,
        &worker.stdout(),
        &worker.stderr(),
    ));
    if !graceful {
        errors.push(format!(
            "idle worker did not exit within {WORKER_GRACE:?} of SIGTERM and was killed"
        ));
    }
    let by_command = count_commands(&lines, db, t0, t1);
    Ok(Idle {
        commands: by_command.values().sum(),
        by_command,
        cpu_seconds: after.1.saturating_sub(before) as f64 / 1e9,
        window_s: (t1 - t0) as f64 / 1e9,
        rss_mb: after.0.rss_bytes as f64 / (1024.0 * 1024.0),
        graceful,
        describe,
        errors,
    })
}

/// CPU time of every thread of every process in group `pgid`, in ns, from
/// /proc/PID/task/TID/schedstat: an idle worker uses less than the 10 ms tick resolution of
/// /proc/PID/stat in a short window. None: no process of the group is left.
fn group_cpu_ns(pgid: i32) -> Option<u64> {
    let mut total = 0u64;
    let mut found = false;
    for process in procfs::process::all_processes().ok()?.flatten() {
        let Ok(stat) = process.stat() else { continue };
        if stat.pgrp != pgid || stat.state == 'Z' {
            continue;
        }
        found = true;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", process.pid)) else {
            continue;
        };
        for task in tasks.flatten() {
            let on_cpu = std::fs::read_to_string(task.path().join("schedstat"))
                .ok()
                .and_then(|s| {
                    s.split_whitespace()
                        .next()
                        .and_then(|n| n.parse::<u64>().ok())
                });
            total += on_cpu.unwrap_or(0);
        }
    }
    found.then_some(total)
}

/// Commands per name among MONITOR lines of database `db` whose server timestamp falls in
/// [from_ns, to_ns]. A line: `+1714000000.123456 [15 127.0.0.1:51508] "BRPOP" "q" "1"`.
fn count_commands(lines: &[String], db: u8, from_ns: u64, to_ns: u64) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in lines {
        let Some(rest) = line.strip_prefix('+') else {
            continue;
        };
        let Some((stamp, rest)) = rest.split_once(" [") else {
            continue;
        };
        let Ok(seconds) = stamp.parse::<f64>() else {
            continue;
        };
        let t_ns = (seconds * 1e9) as u64;
        let Some((line_db, rest)) = rest.split_once(' ') else {
            continue;
        };
        if line_db != db.to_string() || t_ns < from_ns || t_ns > to_ns {
            continue;
        }
        let name = rest
            .split_once("] \"")
            .and_then(|(_, r)| r.split('"').next())
            .unwrap_or("?")
            .to_ascii_uppercase();
        *counts.entry(name).or_insert(0) += 1;
    }
    counts
}

/// A MONITOR connection of the harness's own, reading until stopped.
struct Monitor {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Vec<String>>>>,
}

/// A run that fails mid-window still ends the MONITOR connection (its reader stops).
impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Monitor {
    fn start(server_url: &str) -> Result<Monitor> {
        let rest = server_url
            .strip_prefix("redis://")
            .ok_or_else(|| anyhow!("MONITOR needs a redis:// URL, got {server_url}"))?;
        let (auth, hostport) = match rest.rsplit_once('@') {
            Some((auth, hostport)) => (Some(auth.to_string()), hostport),
            None => (None, rest),
        };
        let hostport = hostport.trim_end_matches('/');
        let mut stream = TcpStream::connect(hostport)
            .with_context(|| format!("MONITOR: connecting to {hostport}"))?;
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut reply = Vec::new();
        let mut expect_ok = |stream: &mut TcpStream, command: String| -> Result<()> {
            stream.write_all(command.as_bytes())?;
            reply.clear();
            let limit = Instant::now() + Duration::from_secs(5);
            while !reply.ends_with(b"\n") {
                match reader.read_until(b'\n', &mut reply) {
                    Ok(0) => bail!("MONITOR: the server closed the connection"),
                    Ok(_) => {}
                    Err(e) if Instant::now() < limit && is_timeout(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if !reply.starts_with(b"+OK") {
                bail!(
                    "MONITOR: the server answered {:?}",
                    String::from_utf8_lossy(&reply)
                );
            }
            Ok(())
        };
        if let Some(auth) = auth {
            let password = auth.split_once(':').map_or(auth.as_str(), |(_, p)| p);
            expect_ok(&mut stream, format!("AUTH {password}\r\n"))?;
        }
        expect_ok(&mut stream, "MONITOR\r\n".into())?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = thread::spawn(move || {
            let mut lines = Vec::new();
            let mut buf = Vec::new();
            loop {
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) => break,
                    Ok(_) if buf.ends_with(b"\n") => {
                        lines.push(String::from_utf8_lossy(&buf).trim_end().to_string());
                        buf.clear();
                    }
                    Ok(_) => {}
                    Err(e) if is_timeout(&e) => {
                        if stopping.load(Ordering::SeqCst) {
                            break;
                        }
                    }
                    Err(e) => return Err(anyhow!("MONITOR: reading: {e}")),
                }
                // Under a busy server the reads never time out: check here too.
                if stopping.load(Ordering::SeqCst) && buf.is_empty() {
                    break;
                }
            }
            drop(stream);
            Ok(lines)
        });
        Ok(Monitor {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops reading (lines already sent by the server up to now are read) and returns them.
    fn stop(mut self) -> Result<Vec<String>> {
        // Lines stamped inside the window may still be in flight: let them arrive.
        thread::sleep(Duration::from_millis(300));
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .ok_or_else(|| anyhow!("the MONITOR reader was already stopped"))?
            .join()
            .map_err(|_| anyhow!("the MONITOR reader panicked"))?
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// The report: per system, each API's build and round trip, the broker's time, the derived
/// overheads, pool initialisation per driver and the idle worker's cost.
fn section(place: &report::Place) -> String {
    let mut md = String::new();
    let ci = |key, metric: &str, digits| {
        report::fmt_ci_digits(report::mean_of(place.stats, key, metric), digits)
    };
    let _ = writeln!(
        md,
        "Building a dispatch without sending (ns per call: each run's median over rounds; mean of the runs [95% CI]; the timing loop's own cost is included and shown as `loop`), and the same dispatch as a full round trip on Redis (µs).\n"
    );
    let _ = writeln!(
        md,
        "| system | API | build ns | build p99 ns | round trip µs | round trip p99 µs |\n|---|---|---|---|---|---|"
    );
    for key in place.keys {
        for build in BUILDS {
            let metric = if build.starts_with("prepare_") {
                format!("{build}_ns")
            } else {
                format!("build_{build}_ns")
            };
            if report::mean_of(place.stats, key, &metric).is_none() {
                continue;
            }
            let p99 = metric.replace("_ns", "_p99_ns");
            let (send, send_p99) = if SENDS.contains(&build) {
                (
                    ci(key, &format!("send_{build}_us"), 1),
                    ci(key, &format!("send_{build}_p99_us"), 1),
                )
            } else {
                (
                    report::fmt_ci_digits(None, 0),
                    report::fmt_ci_digits(None, 0),
                )
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                key.system,
                api_text(&key.system, build),
                ci(key, &metric, 0),
                ci(key, &p99, 0),
                send,
                send_p99
            );
        }
    }
    let _ = writeln!(
        md,
        "\nDerived (µs): chaining = chained minus direct build (AsyncTasQ `.delay(60).on_queue()` minus `noop(args)`; Celery `.signature().set(countdown, queue)` minus `.s()`); driver override = build plus driver resolution with the override minus without (AsyncTasQ); send overhead = direct round trip minus the same client's LPUSH of the same bytes.\n"
    );
    let _ = writeln!(
        md,
        "| system | chaining µs | driver override µs | broker PING µs | broker LPUSH µs | send overhead µs | message bytes |\n|---|---|---|---|---|---|---|"
    );
    for key in place.keys {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            key.system,
            ci(key, "chaining_overhead_us", 3),
            ci(key, "driver_override_overhead_us", 3),
            ci(key, "broker_ping_us", 1),
            ci(key, "broker_push_us", 1),
            ci(key, "send_overhead_us", 1),
            ci(key, "message_bytes", 0),
        );
    }
    let _ = writeln!(
        md,
        "\nConnection pool initialisation, AsyncTasQ's drivers: DriverFactory.create → connect() → first command answered (ms).\n"
    );
    let _ = writeln!(md, "| system | redis | postgres (asyncpg) | mysql (asyncmy) | rabbitmq (aio-pika) | sqs (aioboto3) |\n|---|---|---|---|---|---|");
    for key in place.keys {
        let drivers = ["redis", "postgres", "mysql", "rabbitmq", "sqs"];
        let metric = |d: &str| format!("pool_init_{d}_ms");
        if drivers
            .iter()
            .all(|d| report::mean_of(place.stats, key, &metric(d)).is_none())
        {
            continue; // Celery: its pools are kombu's, not timed here
        }
        let cells: Vec<String> = drivers.iter().map(|d| ci(key, &metric(d), 2)).collect();
        let _ = writeln!(md, "| {} | {} |", key.system, cells.join(" | "));
    }
    let _ = writeln!(
        md,
        "\nAn idle worker (no task): Redis commands it sent in the run's database (the harness's MONITOR) and its CPU, per minute.\n"
    );
    let _ = writeln!(
        md,
        "| system | worker | commands/min | by command (last run) | CPU s/min |\n|---|---|---|---|---|"
    );
    for key in place.keys {
        let last = place.groups.get(*key).and_then(|runs| runs.last());
        let worker = last
            .and_then(|r| r.configuration.settings.get("api_overhead.idle_worker"))
            .cloned()
            .unwrap_or_default();
        let by_command = last
            .map(|r| {
                r.metrics
                    .measures
                    .iter()
                    .filter_map(|(k, v)| {
                        k.strip_prefix("idle_cmd_")
                            .and_then(|k| k.strip_suffix("_per_min"))
                            .map(|c| format!("{c} {v:.0}"))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            key.system,
            worker,
            ci(key, "idle_broker_commands_per_min", 1),
            by_command,
            ci(key, "idle_cpu_seconds_per_min", 3),
        );
    }
    md
}

fn api_text(system: &str, build: &str) -> &'static str {
    match (system, build) {
        (_, "loop") => "timing loop alone",
        ("celery", "direct") => "`noop.s(*args)`",
        ("celery", "delay") => "`noop.signature(args, countdown=60)`; send: `apply_async(args, countdown=60)`",
        ("celery", "delay_queue") => "`noop.signature(args, countdown=60, queue=\"high\")`; send: `apply_async(args, countdown=60, queue=)`",
        ("celery", "set") => "`noop.signature(args).set(countdown=60, queue=\"high\")`",
        (_, "direct") => "`noop(args)`; send: `.dispatch()`",
        (_, "delay") => "`noop(args).delay(60)`",
        (_, "delay_queue") => "`noop(args).delay(60).on_queue(\"high\")`",
        (_, "driver_override") => "`@task(driver=\"redis\")` task",
        (_, "prepare_direct") => "build + driver resolution",
        (_, "prepare_driver_override") => "override build + driver resolution",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_loads_and_a_bad_size_names_the_file_key_and_range() {
        for name in crate::profile::NAMES {
            let profile = Profile::load(&crate::project_root(), name).unwrap();
            assert!(
                !ApiOverhead.cases(&profile, Driver::Redis, 2).is_empty(),
                "{name}"
            );
        }
        let mut profile = Profile::load(&crate::project_root(), "ci").unwrap();
        profile.api_overhead.calls = 0;
        let err = ApiOverhead
            .validate_profile(&profile, "ci.toml")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ci.toml: [api_overhead] calls = 0; valid: 1 to 1000000"
        );
        profile.api_overhead.calls = 10;
        profile.api_overhead.pool_drivers = vec!["kafka".into()];
        let err = ApiOverhead
            .validate_profile(&profile, "ci.toml")
            .unwrap_err();
        assert!(format!("{err:#}").contains("pool_drivers"), "{err:#}");
        assert!(format!("{err:#}").contains("kafka"), "{err:#}");
    }

    #[test]
    fn monitor_lines_are_counted_by_database_window_and_name() {
        let lines = [
            "+1700000000.500000 [3 127.0.0.1:5000] \"BRPOP\" \"q\" \"1\"",
            "+1700000001.000000 [3 127.0.0.1:5000] \"publish\" \"x\"",
            "+1700000001.000000 [4 127.0.0.1:5001] \"BRPOP\" \"q\" \"1\"",
            "+1699999999.000000 [3 127.0.0.1:5000] \"BRPOP\" \"q\" \"1\"",
            "+OK",
        ]
        .map(String::from);
        let counts = count_commands(
            &lines,
            3,
            1_700_000_000_000_000_000,
            1_700_000_002_000_000_000,
        );
        assert_eq!(counts.get("BRPOP"), Some(&1));
        assert_eq!(counts.get("PUBLISH"), Some(&1));
        assert_eq!(counts.values().sum::<u64>(), 2);
    }

    #[test]
    fn derived_measures_follow_their_definitions_and_bad_figures_are_errors() {
        let fig = |median: f64| Figure {
            median,
            p99: median * 1.5,
        };
        let out = ScriptOut {
            python: "3.13".into(),
            gc: GcState {
                enabled_while_timing: true,
                thresholds: vec![2000, 10, 10],
                collections_while_timing: 0,
            },
            builds_ns: [
                ("loop", 8.0),
                ("direct", 2000.0),
                ("delay", 2100.0),
                ("delay_queue", 2300.0),
                ("driver_override", 2000.0),
                ("prepare_direct", 2500.0),
                ("prepare_driver_override", 2800.0),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), fig(v)))
            .collect(),
            sends_us: [("direct", 150.0), ("delay", 160.0), ("delay_queue", 0.0)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), fig(v)))
                .collect(),
            broker_us: [("ping", 90.0), ("push", 100.0)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), fig(v)))
                .collect(),
            message_bytes: 500,
            pool_init_ms: BTreeMap::new(),
            keys_written: vec!["queue:q".into()],
            keys_left: vec![],
        };
        let (m, errors) = measures_of(System::ASYNCTASQ, &out);
        assert!((m["chaining_overhead_us"] - 0.3).abs() < 1e-9);
        assert!((m["driver_override_overhead_us"] - 0.3).abs() < 1e-9);
        assert!((m["send_overhead_us"] - 50.0).abs() < 1e-9);
        // A zero round trip and a missing one are errors, not figures.
        assert!(
            errors.iter().any(|e| e.starts_with("send_delay_queue_us")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("send_driver_override_us")),
            "{errors:?}"
        );
        assert!(!m.contains_key("send_delay_queue_us"));
    }

    #[test]
    fn every_measure_the_run_writes_is_declared() {
        let declared: Vec<&str> = MEASURES.iter().map(|m| m.name).collect();
        for b in BUILDS {
            let name = if b.starts_with("prepare_") {
                b.to_string()
            } else {
                format!("build_{b}")
            };
            assert!(declared.contains(&format!("{name}_ns").as_str()), "{name}");
            assert!(
                declared.contains(&format!("{name}_p99_ns").as_str()),
                "{name}"
            );
        }
        for s in SENDS {
            assert!(declared.contains(&format!("send_{s}_us").as_str()), "{s}");
        }
    }
}
