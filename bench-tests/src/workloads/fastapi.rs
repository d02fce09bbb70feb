//! Scenario 11, fastapi: uvicorn apps that dispatch one task per HTTP request, under
//! open-loop HTTP load from the harness (`measure::loadgen`).
//!
//! Apps (`tasq_fixtures/fastapi_app.py`, one uvicorn process each): AsyncTasQ's FastAPI
//! integration (its lifespan connects the driver; the endpoint dispatches through its
//! dispatcher); Celery's `apply_async` in an `async def` endpoint (blocking the event loop)
//! and in a plain `def` endpoint (FastAPI's threadpool). A worker of the system consumes
//! the tasks (Celery acking late, at AsyncTasQ's at-least-once).
//!
//! One run, at one offered rate: the worker and the app start; the load generator opens
//! warm keep-alive connections, then sends `2 × task_count` requests on schedule,
//! alternating `POST /dispatch/{seq}` and its twin `POST /baseline/{seq}` (the same endpoint
//! without the dispatch); right after the first request of a tail half a second long, the
//! app gets SIGTERM, with requests still coming. Every request before SIGTERM must be
//! answered; the tasks that ran must be exactly those whose dispatch was answered (each
//! once), before and after SIGTERM. Measured: HTTP latency from intended send time (p50,
//! p99) of both endpoints and their difference, late and dropped requests, the app's event
//! loop lag (overshoot of a 10 ms sleep) during the load, its lifespan startup and
//! shutdown (its own clock), SIGTERM to exit, and the tasks' own timing (collector).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{Case, Measure, Mode, Workload};
use crate::analysis::stats::Better;
use crate::harness::Harness;
use crate::measure::clock::unix_ns;
use crate::measure::collector::Collector;
use crate::measure::loadgen::{self, Interrupt, Plan, Report, Request, Stats};
use crate::measure::metrics::{self, MeasureInput, ProducerWindow};
use crate::measure::procs::ManagedChild;
use crate::measure::sampler::Sampler;
use crate::profile::Profile;
use crate::provision::brokers::Driver;
use crate::report::charts::{self, Bar, Series};
use crate::result::{Configuration, RunResult};
use crate::run::space::RunSpace;
use crate::run::{RunOutput, RunRequest};
use crate::systems::{self, celery, System, Variant};

pub struct Fastapi;

/// The profile's `[fastapi]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sizes {
    /// HTTP requests per second offered to each app (dispatching and baseline requests
    /// alternate, so tasks are dispatched at half this rate).
    pub rates: Vec<f64>,
    /// Seconds of load at each rate before the app gets SIGTERM.
    pub seconds: f64,
}

/// The worker's pool size (both systems).
const CONCURRENCY: u32 = 10;
/// Keep-alive connections the load generator opens before its clock starts, and the most
/// it may hold (one request in flight on each).
const WARM_CONNECTIONS: usize = 8;
const MAX_CONNECTIONS: usize = 256;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A request sent this long after its due time is late.
const LATE_AFTER: Duration = Duration::from_millis(10);
/// After SIGTERM, requests keep coming for this long (uvicorn notices the signal on its
/// next 100 ms tick and then stops accepting): at least `MIN_TAIL_SLOTS` of them.
const TAIL_SECONDS: f64 = 0.5;
const MIN_TAIL_SLOTS: usize = 20;
/// Bounds of the start-up and shutdown waits.
const READY_LIMIT: Duration = Duration::from_secs(60);
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(30);
const WORKER_GRACE: Duration = Duration::from_secs(30);
/// Once every answered dispatch has run: no new task for this long and an empty queue.
const SETTLE: Duration = Duration::from_millis(500);
const LOG_TAIL_LINES: usize = 25;
const MIN_SECONDS: f64 = 1.0;
const MAX_SECONDS: f64 = 600.0;
/// uvicorn's settings, the same for every app.
const UVICORN_ARGS: [&str; 11] = [
    "--loop",
    "uvloop",
    "--http",
    "h11",
    "--lifespan",
    "on",
    "--log-level",
    "warning",
    "--no-access-log",
    "--timeout-keep-alive",
    "30",
];

/// The variant option naming the app, and the app's `BENCH_FASTAPI_APP`.
const APP_OPTION: &str = "app";

fn app_kind(variant: &Variant) -> Result<&'static str> {
    match (variant.system.name(), variant.option(APP_OPTION)) {
        ("asynctasq", Some("integration")) => Ok("asynctasq"),
        ("celery", Some("direct")) => Ok("celery_direct"),
        ("celery", Some("threadpool")) => Ok("celery_threadpool"),
        (system, app) => bail!(
            "fastapi: no app for {system} with app={app:?}; valid: asynctasq app=integration, celery app=direct|threadpool"
        ),
    }
}

/// The three apps, each with its system's worker.
pub fn variants() -> Vec<Variant> {
    vec![
        Variant::new(System::ASYNCTASQ, "asyncio", CONCURRENCY).with(APP_OPTION, "integration"),
        celery::acking_late("threads", CONCURRENCY).with(APP_OPTION, "direct"),
        celery::acking_late("threads", CONCURRENCY).with(APP_OPTION, "threadpool"),
    ]
}

/// Dispatching requests before SIGTERM at `rate` for `seconds` (half of all requests).
pub fn dispatch_count(rate: f64, seconds: f64) -> u64 {
    ((rate * seconds / 2.0).ceil() as u64).max(1)
}

/// Requests after SIGTERM: `TAIL_SECONDS` at the rate, an even number (pairs of
/// dispatching and baseline requests).
pub fn tail_slots(rate: f64) -> usize {
    let slots = ((rate * TAIL_SECONDS).ceil() as usize).max(MIN_TAIL_SLOTS);
    slots + slots % 2
}

/// The measures of this workload (names in `metrics.measures`).
pub const MEASURES: [Measure; 19] = [
    Measure {
        name: "lifespan_startup_ms",
        better: Better::Lower,
        about: "the app's lifespan startup, from its entry to its yield (broker connected), on the app's own clock",
    },
    Measure {
        name: "app_ready_from_spawn_ms",
        better: Better::Lower,
        about: "uvicorn spawned to its first answered GET /health (interpreter, imports, lifespan)",
    },
    Measure {
        name: "http_latency_p50_ms",
        better: Better::Lower,
        about: "POST /dispatch before SIGTERM: intended send time to the response's last byte (open loop), median",
    },
    Measure {
        name: "http_latency_p99_ms",
        better: Better::Lower,
        about: "POST /dispatch before SIGTERM, from intended send time, p99",
    },
    Measure {
        name: "http_baseline_p50_ms",
        better: Better::Lower,
        about: "POST /baseline (the dispatching endpoint without its dispatch), from intended send time, median",
    },
    Measure {
        name: "http_baseline_p99_ms",
        better: Better::Lower,
        about: "POST /baseline, from intended send time, p99",
    },
    Measure {
        name: "dispatch_overhead_p50_ms",
        better: Better::Lower,
        about: "what dispatching adds to a request: p50 of /dispatch minus p50 of /baseline, the two interleaved 1:1 in one schedule to one app",
    },
    Measure {
        name: "event_loop_lag_p99_ms",
        better: Better::Lower,
        about: "the app's event-loop lag during the load: overshoot of a 10 ms asyncio.sleep, p99",
    },
    Measure {
        name: "event_loop_lag_max_ms",
        better: Better::Lower,
        about: "the app's event-loop lag during the load, the largest",
    },
    Measure {
        name: "http_dropped",
        better: Better::Lower,
        about: "requests before SIGTERM with no 200 answer (refused, closed, timed out after 10 s, other status)",
    },
    Measure {
        name: "http_late",
        better: Better::Lower,
        about: "requests before SIGTERM sent 10 ms or more after their due time (waiting for a connection or the timer)",
    },
    Measure {
        name: "http_lateness_p99_ms",
        better: Better::Lower,
        about: "how late the load generator sent requests before SIGTERM, p99",
    },
    Measure {
        name: "http_sent_rate_per_sec",
        better: Better::Neither,
        about: "requests per second the load generator really sent before SIGTERM",
    },
    Measure {
        name: "shutdown_ms",
        better: Better::Lower,
        about: "SIGTERM to the app's exit, requests still coming (uvicorn finishes those in flight, then the lifespan shutdown)",
    },
    Measure {
        name: "lifespan_shutdown_ms",
        better: Better::Lower,
        about: "the app's lifespan shutdown (broker disconnect), on its own clock",
    },
    Measure {
        name: "http_answered_after_sigterm",
        better: Better::Neither,
        about: "requests due from SIGTERM on that the app still answered",
    },
    Measure {
        name: "http_refused_after_sigterm",
        better: Better::Neither,
        about: "requests due from SIGTERM on that got no answer (the app had stopped accepting)",
    },
    Measure {
        name: "tasks_lost_at_shutdown",
        better: Better::Lower,
        about: "dispatches answered after SIGTERM, or in flight at it, whose task never ran",
    },
    Measure {
        name: "app_rss_mb",
        better: Better::Lower,
        about: "peak RSS of the uvicorn process",
    },
];

impl Workload for Fastapi {
    fn name(&self) -> &'static str {
        "fastapi"
    }

    fn cases(&self, profile: &Profile, driver: Driver, _cpus: u32) -> Vec<Case> {
        let sizes = &profile.fastapi;
        let mut cases = Vec::new();
        for &rate in &sizes.rates {
            for variant in variants() {
                let case = Case::new(
                    self.name(),
                    driver,
                    variant,
                    "noop",
                    dispatch_count(rate, sizes.seconds),
                    profile,
                );
                cases.push(case.paced_at(rate));
            }
        }
        cases
    }

    fn primary_metric(&self) -> Option<&'static str> {
        Some("http_latency_p50_ms")
    }

    fn measures(&self) -> &'static [Measure] {
        &MEASURES
    }

    fn validate_profile(&self, profile: &Profile, file: &str) -> Result<()> {
        let sizes = &profile.fastapi;
        if sizes.rates.is_empty() || sizes.rates.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
            bail!(
                "{file}: fastapi.rates is {:?}; give HTTP requests per second above 0, e.g. [100.0, 400.0]",
                sizes.rates
            );
        }
        if !(MIN_SECONDS..=MAX_SECONDS).contains(&sizes.seconds) {
            bail!(
                "{file}: fastapi.seconds is {}; give the seconds of load per run in [{MIN_SECONDS}, {MAX_SECONDS}]",
                sizes.seconds
            );
        }
        if let Some(rate) = sizes
            .rates
            .iter()
            .find(|r| dispatch_count(**r, sizes.seconds) < 10)
        {
            bail!(
                "{file}: fastapi.rates {rate} × fastapi.seconds {} gives fewer than 10 dispatching requests; raise either",
                sizes.seconds
            );
        }
        // The load, the tail, starts and the drain must fit in one run's bound.
        let needed = sizes.seconds + TAIL_SECONDS + 2.0 * READY_LIMIT.as_secs_f64();
        if needed >= profile.run_timeout_secs as f64 {
            bail!(
                "{file}: fastapi.seconds = {} needs a run_timeout_secs above {needed:.0} (load, start-up and shutdown bounds); raise run_timeout_secs or shorten fastapi.seconds",
                sizes.seconds
            );
        }
        Ok(())
    }

    fn common_table(&self) -> bool {
        false
    }

    fn report_section(&self, place: &crate::report::Place) -> String {
        section(place)
    }

    fn charts(&self, place: &crate::report::ChartPlace) -> Result<Vec<(String, String)>> {
        charts_of(place)
    }

    fn run(
        &self,
        h: &Harness,
        req: &RunRequest,
        on_progress: &mut dyn FnMut(u64),
    ) -> Result<RunOutput> {
        run_app(h, req, on_progress)
    }
}

/// What the app wrote at its lifespan shutdown (see fastapi_app.py).
#[derive(Debug, Deserialize)]
struct AppFigures {
    app: String,
    lifespan_start_ns: u64,
    ready_ns: u64,
    shutdown_start_ns: u64,
    shutdown_end_ns: u64,
    lag: Vec<(u64, u64)>,
    dispatched: Vec<u64>,
    #[serde(default)]
    threadpool_tokens: Option<u64>,
}

fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// One blocking `GET path`; whether it answered 200.
fn get_ok(addr: SocketAddr, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// Waits until `child`'s stderr holds `needle` (bounded), failing if it exits first.
fn wait_for_log(
    child: &mut ManagedChild,
    needle: &str,
    limit: Duration,
    run_id: &str,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if child.stderr().contains(needle) {
            return Ok(());
        }
        if let Some(status) = child.try_exit() {
            bail!(
                "run {run_id}: the {} exited ({status}) while starting. Its output ends with:\n{}",
                child.name(),
                child.log_tail(LOG_TAIL_LINES)
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "run {run_id}: the {} did not start within {limit:?} (no '{needle}'). Its output ends with:\n{}",
                child.name(),
                child.log_tail(LOG_TAIL_LINES)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the app answers `GET /health` (uvicorn accepts only after the lifespan
/// startup); returns when, unix ns.
fn wait_until_serving(app: &mut ManagedChild, addr: SocketAddr, run_id: &str) -> Result<u64> {
    let deadline = Instant::now() + READY_LIMIT;
    loop {
        if get_ok(addr, "/health") {
            return Ok(unix_ns());
        }
        if let Some(status) = app.try_exit() {
            let tail = app.log_tail(LOG_TAIL_LINES);
            let hint = if tail.contains("address already in use") {
                " (another process took its port between the harness choosing it and uvicorn binding it: run again)"
            } else {
                ""
            };
            bail!("run {run_id}: the app exited ({status}) before serving{hint}. Its output ends with:\n{tail}");
        }
        if Instant::now() >= deadline {
            bail!(
                "run {run_id}: the app did not answer GET /health on {addr} within {READY_LIMIT:?}. Its output ends with:\n{}",
                app.log_tail(LOG_TAIL_LINES)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Watches a child process for its exit, without reaping it (the owner still does):
/// through a pidfd, which becomes readable when the process exits; or, where pidfds are
/// not available, by reading its state every millisecond.
fn watch_exit(pid: i32, limit: Duration) -> std::thread::JoinHandle<Option<u64>> {
    std::thread::spawn(move || {
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        if fd >= 0 {
            let mut poll = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; the fd is ours and closed right after.
            let ready = unsafe { libc::poll(&mut poll, 1, limit.as_millis() as i32) };
            let at = unix_ns();
            // SAFETY: closing the fd pidfd_open gave us.
            unsafe { libc::close(fd) };
            return (ready > 0).then_some(at);
        }
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            if matches!(state, None | Some("Z" | "X")) {
                return Some(unix_ns());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    })
}

/// The request of slot `slot`: even slots dispatch task `slot / 2`, odd ones call the
/// baseline twin with the same number.
fn slot_request(slot: usize, intended_ns: u64) -> Request {
    let endpoint = if slot.is_multiple_of(2) {
        "dispatch"
    } else {
        "baseline"
    };
    Request {
        method: hyper::Method::POST,
        path: format!("/{endpoint}/{}?intended_ns={intended_ns}", slot / 2),
    }
}

fn is_dispatch(slot: usize) -> bool {
    slot.is_multiple_of(2)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank quantile of sorted ns values, in ms (NaN for none).
fn quantile_ms(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e6
}

/// What a run's requests say, checked: the seqs whose dispatch was answered, and errors.
struct Answers {
    answered: BTreeSet<u64>,
    /// Of those, the ones answered after SIGTERM or in flight at it.
    answered_at_shutdown: BTreeSet<u64>,
    errors: Vec<String>,
}

fn check_answers(report: &Report, main_slots: usize) -> Answers {
    let mut answered = BTreeSet::new();
    let mut answered_at_shutdown = BTreeSet::new();
    let mut wrong = Vec::new();
    for o in &report.outcomes {
        let Some(answer) = o.ok() else { continue };
        let seq = (o.slot / 2) as u64;
        let said = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|v| v["seq"].as_u64());
        if said != Some(seq) {
            wrong.push(format!(
                "slot {} answered {:?}",
                o.slot,
                String::from_utf8_lossy(&answer.body)
            ));
            continue;
        }
        if is_dispatch(o.slot) {
            answered.insert(seq);
            let at_shutdown =
                o.slot >= main_slots || report.interrupted_at.is_some_and(|at| o.done > at);
            if at_shutdown {
                answered_at_shutdown.insert(seq);
            }
        }
    }
    let mut errors = Vec::new();
    if !wrong.is_empty() {
        errors.push(format!(
            "{} answers did not name their request's seq, e.g. {}",
            wrong.len(),
            wrong[0]
        ));
    }
    let main = report.stats(|o| o.slot < main_slots);
    if main.dropped() > 0 {
        errors.push(format!(
            "{} of {} requests before SIGTERM got no 200 answer ({} refused, {} closed, {} timed out after {REQUEST_TIMEOUT:?}, {} with another status, {} other); the latency figures leave them out",
            main.dropped(),
            main.requests,
            main.refused,
            main.closed,
            main.timeouts,
            main.bad_status,
            main.other_failures
        ));
    }
    Answers {
        answered,
        answered_at_shutdown,
        errors,
    }
}

/// Waits until every answered dispatch has run, then until the queue is empty and no new
/// task reported for `SETTLE` (a task dispatched without its answer would show then).
/// Bounded by the run's deadline and stall bound; a missing task is for the result to
/// report, not an error here.
#[allow(clippy::too_many_arguments)]
fn wait_for_tasks(
    collector: &Collector,
    worker: &mut ManagedChild,
    space: &RunSpace,
    system: System,
    answered: u64,
    deadline: Instant,
    stall: Duration,
    run_id: &str,
    on_progress: &mut dyn FnMut(u64),
) -> Result<Option<String>> {
    let queue = space.queue_ref(system);
    loop {
        let done = collector.distinct();
        on_progress(done);
        if let Some(status) = worker.try_exit() {
            bail!(
                "run {run_id}: the {system} worker exited ({status}) after {done}/{answered} tasks; queue depth {}. Its output ends with:\n{}",
                space.depth(system),
                worker.log_tail(LOG_TAIL_LINES)
            );
        }
        let idle = collector.idle_for();
        if done >= answered
            && idle >= SETTLE
            && space.namespace.queue_depth(&queue).is_ok_and(|d| d == 0)
        {
            return Ok(None);
        }
        if idle >= stall {
            return Ok(Some(format!(
                "no task completed for {stall:?} with {done} of {answered} answered dispatches run; queue depth {}",
                space.depth(system)
            )));
        }
        if Instant::now() >= deadline {
            return Ok(Some(format!(
                "the run's time ran out with {done} of {answered} answered dispatches run; queue depth {}",
                space.depth(system)
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run_app(h: &Harness, req: &RunRequest, on_progress: &mut dyn FnMut(u64)) -> Result<RunOutput> {
    let case = req.case;
    let run_id = req.run_id.as_str();
    let rate = case
        .rate
        .with_context(|| format!("fastapi case {} has no rate", case.label()))?;
    let kind = app_kind(&case.variant)?;
    let deadline = Instant::now() + req.timeout;
    let main_slots = 2 * case.task_count as usize;
    let tail = tail_slots(rate);
    let slots = main_slots + tail;
    let dispatch_slots = slots.div_ceil(2) as u64;

    let space = RunSpace::open(h, case.driver)?;
    let collector = Collector::bind(&space.dir().join("collector.sock"), run_id, dispatch_slots)?;
    let env = space.env(
        h,
        collector.socket_path(),
        run_id,
        case.celery_prefetch_multiplier,
    );
    let system = case.variant.system;
    space
        .prepare(system, &env)
        .with_context(|| format!("run {run_id}"))?;
    let figures_path = space.dir().join("app-figures.json");
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();

    let mut worker_command = systems::worker_command(&case.variant, &env);
    worker_command.envs(req.extra_worker_env.iter().map(|(k, v)| (k, v)));
    let mut worker = ManagedChild::spawn("worker", &mut worker_command, space.dir())?;
    let mut app_command = system.configured(&env, h.python.python.clone());
    app_command
        .env("BENCH_FASTAPI_APP", kind)
        .env("BENCH_FASTAPI_STATS", &figures_path)
        .args(["-m", "uvicorn", "tasq_fixtures.fastapi_app:app"])
        .args(["--host", "127.0.0.1", "--port", &addr.port().to_string()])
        .args(UVICORN_ARGS);
    let mut app = ManagedChild::spawn("app", &mut app_command, space.dir())?;
    let sampler = Sampler::start(vec![worker.pgid()], req.sample_interval);
    let app_sampler = Sampler::start(vec![app.pgid()], req.sample_interval);
    // Both wrote their settings once ready (Celery: at worker_ready).
    wait_for_log(&mut worker, "BENCH_CONFIG log_level=", READY_LIMIT, run_id)?;
    let serving_ns = wait_until_serving(&mut app, addr, run_id)?;
    collector.reset_stall_clock();

    // The load, with SIGTERM to the app right after the first request of the tail.
    let app_pid = app.pgid();
    let sigterm_ns = Arc::new(AtomicU64::new(0));
    let exit = watch_exit(app_pid, req.timeout);
    let signalled = sigterm_ns.clone();
    let report = loadgen::run(Plan {
        addr,
        rate,
        slots,
        request: Arc::new(slot_request),
        warm_connections: WARM_CONNECTIONS,
        warm_path: "/health".into(),
        max_connections: MAX_CONNECTIONS,
        timeout: REQUEST_TIMEOUT,
        late_after: LATE_AFTER,
        interrupt: Some(Interrupt {
            at_slot: main_slots,
            action: Box::new(move || {
                signalled.store(unix_ns(), Ordering::SeqCst);
                // SAFETY: kill(2) on the app's pid; no memory is touched.
                unsafe { libc::kill(app_pid, libc::SIGTERM) };
            }),
        }),
    })
    .with_context(|| format!("run {run_id}: the load generator"))?;
    let mut errors = Vec::new();
    let exit_ns = exit.join().ok().flatten();
    let sigterm_ns = sigterm_ns.load(Ordering::SeqCst);
    let app_status = app.wait_exit(SHUTDOWN_LIMIT);
    let app_graceful = app.stop(Duration::from_secs(2)) && app_status.is_some();
    let app_samples = app_sampler.stop();
    match (exit_ns, app_status) {
        (Some(at), _) if sigterm_ns > 0 && at < sigterm_ns => errors.push(format!(
            "the app exited before SIGTERM. Its output ends with:\n{}",
            app.log_tail(LOG_TAIL_LINES)
        )),
        (_, None) => errors.push(format!(
            "the app did not exit within {SHUTDOWN_LIMIT:?} of SIGTERM and was killed"
        )),
        // uvicorn re-raises the signal it caught once its graceful shutdown is done, so a
        // clean exit after SIGTERM is death by SIGTERM.
        (_, Some(status))
            if !status.success()
                && std::os::unix::process::ExitStatusExt::signal(&status)
                    != Some(libc::SIGTERM) =>
        {
            errors.push(format!(
                "the app exited with {status} after SIGTERM. Its output ends with:\n{}",
                app.log_tail(LOG_TAIL_LINES)
            ))
        }
        _ => {}
    }
    let app_log = format!("{}\n{}", app.stdout(), app.stderr());
    for needle in [
        format!("BENCH_CONFIG app={kind}\n"),
        format!("BENCH_CONFIG log_level={}\n", systems::WORKER_LOG_LEVEL),
    ] {
        if !app_log.contains(&needle) {
            errors.push(format!(
                "the app's log does not confirm '{}'",
                needle.trim()
            ));
        }
    }
    if app_log.contains("INFO:") {
        errors.push("the app's log has INFO lines: its log level did not take effect".into());
    }
    let figures: Option<AppFigures> = match std::fs::read_to_string(&figures_path) {
        Ok(text) => match serde_json::from_str(&text) {
            Ok(f) => Some(f),
            Err(e) => {
                errors.push(format!("the app's figures are unreadable: {e}"));
                None
            }
        },
        Err(_) => {
            errors.push(
                "the app wrote no figures: its lifespan shutdown did not run to its end".into(),
            );
            None
        }
    };
    if let Some(f) = &figures {
        if f.app != kind {
            errors.push(format!("the app ran as {} instead of {kind}", f.app));
        }
    }

    let checked = check_answers(&report, main_slots);
    errors.extend(checked.errors.iter().cloned());
    let waited = wait_for_tasks(
        &collector,
        &mut worker,
        &space,
        system,
        checked.answered.len() as u64,
        deadline,
        req.stall,
        run_id,
        on_progress,
    )?;
    errors.extend(waited);
    let worker_graceful = worker.stop(WORKER_GRACE);
    let samples = sampler.stop();
    let tally = collector.finish();
    errors.extend(systems::verify_worker_config(
        &case.variant,
        case.driver,
        &worker.stdout(),
        &worker.stderr(),
    ));
    if !worker_graceful {
        errors.push(format!(
            "worker did not exit within {WORKER_GRACE:?} of SIGTERM and was killed"
        ));
    }

    // Figures of the requests before SIGTERM.
    let before = |o: &loadgen::Outcome| o.slot < main_slots;
    let dispatch = report.stats(|o| before(o) && is_dispatch(o.slot));
    let baseline = report.stats(|o| before(o) && !is_dispatch(o.slot));
    let main = report.stats(before);
    let after = report.stats(|o| !before(o));
    let last_main_sent = report
        .outcomes
        .iter()
        .filter(|o| before(o))
        .map(|o| o.sent)
        .max()
        .unwrap_or_default();
    let window = ProducerWindow {
        enqueue_start_ns: report.start_unix_ns,
        enqueue_end_ns: report.start_unix_ns + last_main_sent.as_nanos() as u64,
        rate: Some(rate),
        lateness_p50_ms: None,
        lateness_p99_ms: Some(ms(main.lateness_p99)),
        lateness_max_ms: Some(ms(main.lateness_max)),
        sockets_opened_in_window: None,
    };
    let input = MeasureInput {
        mode: Mode::Paced,
        task_count: checked.answered.len() as u64,
        tally: &tally,
        producer: window,
        worker_spawn_ns: worker.started_unix_ns(),
        samples: &samples,
    };
    let (mut metrics, histograms) = metrics::metrics(&input);
    metrics.worker_stopped_gracefully = worker_graceful && app_graceful;

    // Exactly the answered dispatches ran, each once.
    let ran: BTreeSet<u64> = tally.records.iter().map(|r| r.seq).collect();
    let lost: Vec<u64> = checked.answered.difference(&ran).copied().collect();
    let unanswered: Vec<u64> = ran.difference(&checked.answered).copied().collect();
    let lost_at_shutdown = lost
        .iter()
        .filter(|s| checked.answered_at_shutdown.contains(s))
        .count();
    metrics.lost = lost.len() as u64;
    if !lost.is_empty() {
        errors.push(format!(
            "{} answered dispatches never ran as tasks ({lost_at_shutdown} of them at shutdown), e.g. seq {}",
            lost.len(),
            lost[0]
        ));
    }
    if !unanswered.is_empty() {
        errors.push(format!(
            "{} tasks ran whose request got no 200 answer (dispatched, answer lost), e.g. seq {}",
            unanswered.len(),
            unanswered[0]
        ));
    }
    if metrics.duplicated > 0 || metrics.failed > 0 {
        errors.push(format!(
            "{} tasks ran more than once, {} reported a failure",
            metrics.duplicated, metrics.failed
        ));
    }
    if let Some(f) = &figures {
        let dispatched: BTreeSet<u64> = f.dispatched.iter().copied().collect();
        if dispatched != ran {
            errors.push(format!(
                "the app dispatched {} tasks and {} ran ({} dispatched never ran)",
                dispatched.len(),
                ran.len(),
                dispatched.difference(&ran).count()
            ));
        }
    }
    errors.extend(crate::measure::collector::unsent_error(
        metrics.records_unsent,
    ));

    let mut measures = std::collections::BTreeMap::new();
    let mut put = |name: &str, value: f64| {
        measures.insert(name.to_string(), value);
    };
    let latency = |s: &Stats, p: fn(&loadgen::Latency) -> Duration| {
        s.latency.as_ref().map_or(f64::NAN, |l| ms(p(l)))
    };
    put("http_latency_p50_ms", latency(&dispatch, |l| l.p50));
    put("http_latency_p99_ms", latency(&dispatch, |l| l.p99));
    put("http_baseline_p50_ms", latency(&baseline, |l| l.p50));
    put("http_baseline_p99_ms", latency(&baseline, |l| l.p99));
    put(
        "dispatch_overhead_p50_ms",
        latency(&dispatch, |l| l.p50) - latency(&baseline, |l| l.p50),
    );
    put("http_dropped", main.dropped() as f64);
    put("http_late", main.late as f64);
    put("http_lateness_p99_ms", ms(main.lateness_p99));
    put("http_sent_rate_per_sec", main.sent_rate.unwrap_or(f64::NAN));
    put("http_answered_after_sigterm", after.ok as f64);
    put("http_refused_after_sigterm", after.dropped() as f64);
    put("tasks_lost_at_shutdown", lost_at_shutdown as f64);
    put(
        "shutdown_ms",
        match exit_ns {
            Some(at) if sigterm_ns > 0 && at >= sigterm_ns => (at - sigterm_ns) as f64 / 1e6,
            _ => f64::NAN,
        },
    );
    put(
        "app_ready_from_spawn_ms",
        serving_ns.saturating_sub(app.started_unix_ns()) as f64 / 1e6,
    );
    put(
        "app_rss_mb",
        app_samples
            .iter()
            .map(|s| s.rss_bytes as f64 / (1024.0 * 1024.0))
            .fold(f64::NAN, f64::max),
    );
    if let Some(f) = &figures {
        put(
            "lifespan_startup_ms",
            f.ready_ns.saturating_sub(f.lifespan_start_ns) as f64 / 1e6,
        );
        put(
            "lifespan_shutdown_ms",
            f.shutdown_end_ns.saturating_sub(f.shutdown_start_ns) as f64 / 1e6,
        );
        // The lag while the load ran: from its start to SIGTERM.
        let mut lag: Vec<u64> = f
            .lag
            .iter()
            .filter(|(t, _)| *t >= report.start_unix_ns && (sigterm_ns == 0 || *t <= sigterm_ns))
            .map(|(_, lag)| *lag)
            .collect();
        lag.sort_unstable();
        put("event_loop_lag_p99_ms", quantile_ms(&lag, 0.99));
        put("event_loop_lag_max_ms", quantile_ms(&lag, 1.0));
    }
    metrics.measures = measures;

    let spawn_ns = worker.started_unix_ns();
    let timeseries = crate::run::time_points(&samples, spawn_ns);

    let mut configuration = Configuration {
        broker_source: space.broker.info().source.clone(),
        caveats: systems::caveats(&case.variant, space.namespace.as_ref()),
        ..req.configuration()
    };
    system.record_settings(case, &mut configuration);
    record(&mut configuration, kind, rate, main_slots, tail, &figures);
    let mut result = req.result(h, configuration, metrics, errors);
    result.environment.broker_version = space.broker.info().server_version.clone();
    result.timeseries = timeseries;
    Ok(RunOutput { result, histograms })
}

/// What the result states about the app, the load and the shutdown.
fn record(
    configuration: &mut Configuration,
    kind: &str,
    rate: f64,
    main_slots: usize,
    tail: usize,
    figures: &Option<AppFigures>,
) {
    let settings = &mut configuration.settings;
    let mut set = |k: &str, v: String| {
        settings.insert(k.to_string(), v);
    };
    set("fastapi.app", kind.into());
    set(
        "fastapi.endpoint",
        match kind {
            "asynctasq" => "async def, await dispatcher.dispatch(task) (the integration's dispatcher by Depends)",
            "celery_direct" => "async def, task.apply_async() called on the event loop",
            _ => "def (FastAPI's threadpool), task.apply_async()",
        }
        .into(),
    );
    set(
        "fastapi.lifespan",
        match kind {
            "asynctasq" => "AsyncTasQIntegration().lifespan (connects the driver)",
            _ => "the producer connection apply_async uses, connected and its queue declared (Celery has no FastAPI integration)",
        }
        .into(),
    );
    set("uvicorn", format!("1 process, {}", UVICORN_ARGS.join(" ")));
    if let Some(tokens) = figures.as_ref().and_then(|f| f.threadpool_tokens) {
        set("fastapi.threadpool_tokens", tokens.to_string());
    }
    set(
        "loadgen",
        format!(
            "open loop at {rate} requests/s (Rust, hyper HTTP/1.1), {WARM_CONNECTIONS} keep-alive connections opened and checked before the clock, up to {MAX_CONNECTIONS}; timeout {REQUEST_TIMEOUT:?}; late at {LATE_AFTER:?}"
        ),
    );
    set(
        "loadgen.requests",
        format!(
            "{main_slots} before SIGTERM, POST /dispatch/{{seq}} and POST /baseline/{{seq}} alternating, then {tail} due over {TAIL_SECONDS} s from SIGTERM on"
        ),
    );
    set(
        "dispatch_overhead",
        "p50 latency of POST /dispatch minus p50 of POST /baseline (the same endpoint without the dispatch), interleaved 1:1 in the same schedule to the same app".into(),
    );
    if kind == "celery_direct" {
        configuration.caveats.push(
            "apply_async is a blocking call: in an async def endpoint it holds the event loop for each broker round trip (the pattern this variant measures)".into(),
        );
    }
}

/// The app of a group, from its runs' settings, as the report names it.
fn app_of(runs: &[&RunResult]) -> String {
    let kind = runs
        .first()
        .and_then(|r| r.configuration.settings.get("fastapi.app"))
        .map_or("", String::as_str);
    match kind {
        "asynctasq" => "integration (lifespan)",
        "celery_direct" => "apply_async in async def",
        "celery_threadpool" => "apply_async in threadpool",
        other => other,
    }
    .to_string()
}

fn rate_of(runs: &[&RunResult]) -> f64 {
    runs.first()
        .and_then(|r| r.metrics.paced_target_rate)
        .unwrap_or(f64::NAN)
}

fn section(place: &crate::report::Place) -> String {
    use crate::report::{fmt_ci_digits, mean_of, num};
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Open-loop HTTP load (Rust, keep-alive HTTP/1.1) on one uvicorn process per app; `POST /dispatch` \
         and its twin `POST /baseline` (no dispatch) alternate in one schedule. HTTP latency runs from each \
         request's intended send time to its response's last byte. *Overhead* = p50 of /dispatch − p50 of \
         /baseline. *Loop lag*: overshoot of a 10 ms `asyncio.sleep` in the app during the load. The app \
         gets SIGTERM with requests still coming; every answered dispatch must run exactly once. In the \
         Celery app that calls apply_async in an `async def`, the blocking call also holds back the \
         baseline requests behind it, so its overhead understates the cost: its loop lag shows it. \
         *Task end-to-end* runs from the HTTP request's intended time to the task's end (the worker's \
         pickup included). Means with 95% CI over the runs.\n"
    );
    let _ = writeln!(
        md,
        "| system | app | requests/s | dispatch p50 ms | dispatch p99 ms | baseline p50 ms | overhead ms | loop lag p99 ms | lifespan startup ms | SIGTERM to exit ms | late | dropped | after SIGTERM answered / refused | task end-to-end p50 ms |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut keys: Vec<_> = place.keys.to_vec();
    keys.sort_by(|a, b| {
        let (ra, rb) = (rate_of(&place.groups[*a]), rate_of(&place.groups[*b]));
        ra.total_cmp(&rb)
            .then(a.system.cmp(&b.system))
            .then(a.variant.cmp(&b.variant))
    });
    for k in keys {
        let runs = &place.groups[k];
        let g = |metric: &str, digits| fmt_ci_digits(mean_of(place.stats, k, metric), digits);
        let median = |metric: &str| mean_of(place.stats, k, metric).map_or(f64::NAN, |g| g.median);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} |",
            k.system,
            app_of(runs),
            num(rate_of(runs), 0),
            g("http_latency_p50_ms", 2),
            g("http_latency_p99_ms", 2),
            g("http_baseline_p50_ms", 2),
            g("dispatch_overhead_p50_ms", 2),
            g("event_loop_lag_p99_ms", 2),
            g("lifespan_startup_ms", 1),
            g("shutdown_ms", 0),
            num(median("http_late"), 0),
            num(median("http_dropped"), 0),
            num(median("http_answered_after_sigterm"), 0),
            num(median("http_refused_after_sigterm"), 0),
            g("latency_p50_ms", 2),
        );
    }
    md
}

fn charts_of(place: &crate::report::ChartPlace) -> Result<Vec<(String, String)>> {
    use crate::report::mean_of;
    let mut out = Vec::new();
    // HTTP latency against the offered rate, one line per app and percentile.
    let mut series: Vec<Series> = Vec::new();
    for k in place.keys {
        let runs = &place.groups[*k];
        let rate = rate_of(runs);
        let app = app_of(runs);
        for (metric, what) in [
            ("http_latency_p50_ms", "p50"),
            ("http_latency_p99_ms", "p99"),
        ] {
            let Some(g) = mean_of(place.stats, k, metric) else {
                continue;
            };
            let name = format!("{} {app} {what}", k.system);
            match series.iter_mut().find(|s| s.name == name) {
                Some(s) => s.points.push((rate, g.median)),
                None => series.push(Series {
                    name,
                    points: vec![(rate, g.median)],
                }),
            }
        }
    }
    if !series.is_empty() {
        out.push((
            format!("fastapi-http-latency-{}.svg", place.name),
            charts::lines(
                "HTTP dispatch latency from intended send time (median run)",
                "offered requests/s",
                "ms",
                &series,
            )?,
        ));
    }
    for (metric, file, title) in [
        (
            "lifespan_startup_ms",
            "fastapi-lifespan",
            "Lifespan startup, entry to ready (mean, 95% CI)",
        ),
        (
            "dispatch_overhead_p50_ms",
            "fastapi-dispatch-overhead",
            "Dispatch overhead per request: p50 /dispatch - p50 /baseline (mean, 95% CI)",
        ),
    ] {
        let bars: Vec<Bar> = place
            .keys
            .iter()
            .filter_map(|k| {
                let g = mean_of(place.stats, k, metric)?;
                let runs = &place.groups[*k];
                Some(Bar {
                    label: format!("{} {} at {}", k.system, app_of(runs), rate_of(runs)),
                    key: k.system.clone(),
                    value: g.mean,
                    ci_low: g.ci95_low,
                    ci_high: g.ci95_high,
                })
            })
            .collect();
        if !bars.is_empty() {
            out.push((
                format!("{file}-{}.svg", place.name),
                charts::bars_with_ci(title, "ms", &bars)?,
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_three_apps_per_rate_with_half_the_requests_dispatching() {
        let profile = Profile::load(&crate::project_root(), "ci").unwrap();
        let cases = Fastapi.cases(&profile, Driver::Redis, 2);
        assert_eq!(cases.len(), 3 * profile.fastapi.rates.len());
        let rate = profile.fastapi.rates[0];
        let labels: Vec<String> = cases.iter().map(Case::label).collect();
        for label in [
            format!("asynctasq-redis-fastapi-asyncio-c10-app_integration-at{rate}-paced"),
            format!("celery-redis-fastapi-threads-c10-acks_late-app_direct-at{rate}-paced"),
            format!("celery-redis-fastapi-threads-c10-acks_late-app_threadpool-at{rate}-paced"),
        ] {
            assert!(labels.contains(&label), "{label}: {labels:?}");
        }
        for case in &cases {
            assert_eq!(
                case.task_count,
                dispatch_count(case.rate.unwrap(), profile.fastapi.seconds)
            );
            assert!(app_kind(&case.variant).is_ok());
        }
        assert!(app_kind(&Variant::new(System::CELERY, "threads", 10)).is_err());
    }

    #[test]
    fn slots_alternate_dispatch_and_baseline_with_one_seq_each() {
        assert_eq!(slot_request(0, 5).path, "/dispatch/0?intended_ns=5");
        assert_eq!(slot_request(1, 6).path, "/baseline/0?intended_ns=6");
        assert_eq!(slot_request(6, 7).path, "/dispatch/3?intended_ns=7");
        assert_eq!(tail_slots(10.0), MIN_TAIL_SLOTS);
        assert_eq!(tail_slots(101.0) % 2, 0);
        assert_eq!(dispatch_count(100.0, 3.0), 150);
    }

    #[test]
    fn a_bad_section_names_the_key() {
        let mut profile = Profile::load(&crate::project_root(), "ci").unwrap();
        profile.fastapi.rates = vec![0.0];
        let err = Fastapi
            .validate_profile(&profile, "ci.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("fastapi.rates"), "{err}");
        profile.fastapi.rates = vec![100.0];
        profile.fastapi.seconds = 0.1;
        let err = Fastapi
            .validate_profile(&profile, "ci.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("fastapi.seconds"), "{err}");
        for name in crate::profile::NAMES {
            let profile = Profile::load(&crate::project_root(), name).unwrap();
            Fastapi.validate_profile(&profile, name).unwrap();
        }
    }

    #[test]
    fn lost_and_unanswered_tasks_are_told_apart_from_the_answers() {
        use crate::measure::loadgen::{Answer, Failure, FailureKind, Outcome};
        let ms = Duration::from_millis;
        let answer = |slot: usize| Answer {
            status: 200,
            body: format!("{{\"seq\":{}}}", slot / 2).into_bytes(),
            latency: ms(2),
        };
        let outcome = |slot: usize, result| Outcome {
            slot,
            intended_unix_ns: 0,
            due: ms(slot as u64),
            sent: ms(slot as u64),
            done: ms(slot as u64 + 2),
            result,
        };
        let mut outcomes: Vec<Outcome> = (0..4).map(|s| outcome(s, Ok(answer(s)))).collect();
        // The tail: slot 4 answered, slot 6 refused, 5 and 7 baselines.
        outcomes.push(outcome(4, Ok(answer(4))));
        outcomes.push(outcome(5, Ok(answer(5))));
        let refused = || Failure {
            kind: FailureKind::Refused,
            message: "refused".into(),
        };
        outcomes.push(outcome(6, Err(refused())));
        outcomes.push(outcome(7, Err(refused())));
        let report = Report {
            rate: 1000.0,
            start_unix_ns: 0,
            outcomes,
            connections_opened: 0,
            interrupted_at: Some(ms(4)),
            late_after: LATE_AFTER,
        };
        let checked = check_answers(&report, 4);
        assert!(checked.errors.is_empty(), "{:?}", checked.errors);
        assert_eq!(checked.answered, BTreeSet::from([0, 1, 2]));
        // Seq 2 (slot 4) was due after SIGTERM; slot 2 was done when it came (4 ms).
        assert_eq!(checked.answered_at_shutdown, BTreeSet::from([2]));

        // A drop before SIGTERM, and an answer naming another seq, are errors.
        let mut bad = report.clone();
        bad.outcomes[1].result = Err(Failure {
            kind: FailureKind::Timeout,
            message: "slow".into(),
        });
        bad.outcomes[2].result = Ok(Answer {
            body: b"{\"seq\":9}".to_vec(),
            ..answer(2)
        });
        let checked = check_answers(&bad, 4);
        assert_eq!(checked.errors.len(), 2, "{:?}", checked.errors);
        assert!(
            checked.errors[1].contains("1 timed out"),
            "{:?}",
            checked.errors
        );
        assert_eq!(checked.answered, BTreeSet::from([0, 2]));
    }

    #[test]
    fn quantiles_of_lag_are_nearest_rank_in_ms() {
        let lag: Vec<u64> = (1..=200).map(|i| i * 1_000_000).collect();
        assert_eq!(quantile_ms(&lag, 0.99), 198.0);
        assert_eq!(quantile_ms(&lag, 1.0), 200.0);
        assert!(quantile_ms(&[], 0.99).is_nan());
    }
}
