//! One repetition of one case: flush namespace → (drain: produce) → start workers →
//! (live: produce) → wait for every task, bounded → stop workers → one `RunResult`.

pub mod bench;
pub mod space;
pub mod sweep;

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::harness::Harness;
use crate::measure::collector::{Collector, WaitEnd};
use crate::measure::metrics::{self, MeasureInput, ProducerWindow};
use crate::measure::procs::ManagedChild;
use crate::measure::sampler::Sampler;
use crate::provision::brokers::Driver;
use crate::result::{Configuration, DepthPoint, Environment, RunResult, TimePoint};
use crate::run::space::RunSpace;
use crate::systems;
use crate::workloads::{self, Case, Finished, Mode};

/// Workers get this long to finish in-flight tasks after SIGTERM before SIGKILL. Celery
/// prefork's warm shutdown was seen to take over 15 s on a 2-core machine under heavy load.
const WORKER_GRACE: Duration = Duration::from_secs(30);
const LOG_TAIL_LINES: usize = 25;
/// How often the broker's queue depth is read during a run, at most (the profile's sample
/// interval when shorter).
const DEPTH_INTERVAL: Duration = Duration::from_millis(250);

pub struct RunRequest<'a> {
    pub case: &'a Case,
    pub profile_name: &'a str,
    /// Unique id stamped on every task and every process of the run.
    pub run_id: String,
    pub repetition: u32,
    pub warmup: bool,
    pub order_seed: u64,
    pub position: u32,
    pub timeout: Duration,
    pub stall: Duration,
    pub sample_interval: Duration,
    /// Extra environment for the worker (e.g. to reproduce a misconfiguration).
    pub extra_worker_env: Vec<(String, String)>,
}

impl RunRequest<'_> {
    /// What every result of this request states about its case and its place in the
    /// bench (system, sizes, repetition, order), at the harness's fixed settings (log level,
    /// delivery). A run adds where its broker came from, its caveats and its settings.
    pub fn configuration(&self) -> Configuration {
        let case = self.case;
        let system = case.variant.system;
        Configuration {
            system: system.name().into(),
            driver: case.driver.name().into(),
            workers: case.variant.concurrency,
            worker_processes: 1,
            task_count: case.task_count,
            scenario: case.scenario.into(),
            mode: case.mode.name().into(),
            variant: case.variant_label(),
            pool: case.variant.pool.clone(),
            profile: self.profile_name.into(),
            repetition: self.repetition,
            warmup: self.warmup,
            order_seed: self.order_seed,
            position_in_repetition: self.position,
            producer_batch: 1,
            delivery: Some(system.delivery(&case.variant).name().into()),
            worker_log_level: Some(systems::WORKER_LOG_LEVEL.into()),
            ..Default::default()
        }
    }

    /// The result of this request's run, stamped now, in the harness's environment (the
    /// caller sets the broker's version, time series and depth when it has them).
    pub fn result(
        &self,
        h: &Harness,
        configuration: Configuration,
        metrics: crate::result::Metrics,
        errors: Vec<String>,
    ) -> RunResult {
        RunResult {
            benchmark_id: self.run_id.clone(),
            timestamp: crate::measure::clock::rfc3339_now(),
            configuration,
            metrics,
            errors,
            environment: Environment {
                ..h.environment.clone()
            },
            timeseries: Vec::new(),
            queue_depth: Vec::new(),
        }
    }

    pub fn new_run_id(case: &Case, repetition: u32) -> String {
        format!(
            "{}-r{repetition}-{:08x}",
            case.label(),
            rand::random::<u32>()
        )
    }
}

/// A finished run with its latency histograms (for `.hgrm` files).
pub struct RunOutput {
    pub result: RunResult,
    pub histograms: metrics::Histograms,
}

/// Runs one repetition the way its workload runs them ([`crate::workloads::Workload::run`]:
/// the engine below, unless the workload has its own).
pub fn run(h: &Harness, req: &RunRequest, on_progress: &mut dyn FnMut(u64)) -> Result<RunOutput> {
    workloads::get(req.case.scenario)?.run(h, req, on_progress)
}

/// The run engine: one repetition. Errors (worker crash, timeout, stall) carry the run id, the
/// progress, the queue depth and the worker's stderr tail; no process of the run survives.
pub fn run_once(
    h: &Harness,
    req: &RunRequest,
    on_progress: &mut dyn FnMut(u64),
) -> Result<RunOutput> {
    let case = req.case;
    let started = Instant::now();
    let deadline = started + req.timeout;
    let space = RunSpace::open(h, case.driver)?;
    let collector = Collector::bind(
        &space.dir().join("collector.sock"),
        &req.run_id,
        case.task_count,
    )?;
    // What the workload adds: its services (alive until the run ends), files, task env.
    let workload = workloads::get(case.scenario)?.start_run(case, space.dir())?;
    let mut env = space.env(
        h,
        collector.socket_path(),
        &req.run_id,
        case.celery_prefetch_multiplier,
    );
    env.task_env.extend(workload.task_env());
    let env = env;
    let system = case.variant.system;
    let namespace = space.namespace.as_ref();
    let queue = space.queue_ref(system);
    let depth = || space.depth(system);
    // Tasks the producer sends: the records the collector waits for, unless the workload's
    // tasks make several records each (see `RunPart::produced`).
    let produced = workload.produced().unwrap_or(case.task_count);
    let producer_command = || {
        let mut command =
            systems::producer_command(system, &env, case.task, 0, produced, case.producer_batch);
        if let Some(rate) = case.rate {
            command.args(["--rate", &rate.to_string()]);
        }
        command.args(workload.producer_args());
        command
    };
    let mut errors = Vec::new();
    space
        .prepare(system, &env)
        .with_context(|| format!("run {}", req.run_id))?;

    let mut producer = None;
    let mut message_bytes = None;
    let mut window = None;
    if case.mode == Mode::Drain {
        let mut drain_producer =
            ManagedChild::spawn("producer", &mut producer_command(), space.dir())?;
        let status = drain_producer.wait_exit(deadline.saturating_duration_since(Instant::now()));
        window = Some(producer_result(&mut drain_producer, status, &req.run_id)?);
        match namespace.queue_depth(&queue) {
            Ok(queued) if queued == produced => {}
            Ok(queued) => errors.push(format!(
                "after the producer finished the broker held {queued} of {produced} tasks"
            )),
            Err(e) => errors.push(format!("could not read the queue depth: {e:#}")),
        }
        match namespace.message_bytes(&queue) {
            Ok(bytes) => message_bytes = Some(bytes),
            Err(e) => errors.push(format!("could not read a message's size: {e:#}")),
        }
    }

    let mut workers = Vec::new();
    for index in 0..case.worker_processes.max(1) {
        let mut worker_command = systems::worker_command(&case.variant, &env);
        worker_command.envs(req.extra_worker_env.iter().map(|(k, v)| (k, v)));
        let name = if index == 0 {
            "worker".to_string()
        } else {
            format!("worker{index}")
        };
        workers.push(ManagedChild::spawn(
            &name,
            &mut worker_command,
            space.dir(),
        )?);
    }
    let sampler = Sampler::start(
        workers.iter().map(ManagedChild::pgid).collect(),
        req.sample_interval,
    );
    collector.reset_stall_clock();
    if matches!(case.mode, Mode::Live | Mode::Paced) {
        producer = Some(ManagedChild::spawn(
            "producer",
            &mut producer_command(),
            space.dir(),
        )?);
    }

    // Queue depth over the run, read from the broker. Not on SQS: each read there is a
    // process start (boto3), too heavy to repeat every quarter second.
    let mut depth_series: Vec<(u64, u64)> = Vec::new();
    let mut last_depth_read: Option<Instant> = None;
    let depth_interval = DEPTH_INTERVAL.min(req.sample_interval);
    let wait_end = collector.wait_all(deadline, req.stall, |done| {
        on_progress(done);
        if case.driver != Driver::Sqs && last_depth_read.is_none_or(|t| t.elapsed() >= depth_interval) {
            last_depth_read = Some(Instant::now());
            if let Ok(depth) = namespace.queue_depth(&queue) {
                depth_series.push((crate::measure::clock::unix_ns(), depth));
            }
        }
        for worker in workers.iter_mut() {
            if let Some(status) = worker.try_exit() {
                bail!(
                    "run {}: the {} {} exited ({status}) after {done}/{} tasks; queue depth {}. Its output ends with:\n{}",
                    req.run_id,
                    system,
                    worker.name(),
                    case.task_count,
                    depth(),
                    worker.log_tail(LOG_TAIL_LINES)
                );
            }
        }
        if let Some(p) = producer.as_mut() {
            if let Some(status) = p.try_exit().filter(|s| !s.success()) {
                bail!(
                    "run {}: the {system} producer failed ({status}) after {done}/{} tasks. Its output ends with:\n{}",
                    req.run_id,
                    case.task_count,
                    p.log_tail(LOG_TAIL_LINES)
                );
            }
        }
        Ok(())
    })?;
    if wait_end != WaitEnd::Complete {
        let done = collector.distinct();
        let why = match wait_end {
            WaitEnd::TimedOut => format!("timed out after {:?}", req.timeout),
            _ => format!("stalled: no task completed for {:?}", req.stall),
        };
        let message = format!(
            "run {}: {why} with {done}/{} tasks completed; queue depth {}. The worker's output ends with:\n{}",
            req.run_id,
            case.task_count,
            depth(),
            workers[0].log_tail(LOG_TAIL_LINES)
        );
        if let Some(p) = producer.as_mut() {
            p.stop(Duration::from_secs(2));
        }
        for worker in workers.iter_mut() {
            worker.stop(Duration::from_secs(2));
        }
        bail!(message);
    }
    on_progress(case.task_count);

    if let Some(mut live_producer) = producer.take() {
        let status = live_producer
            .wait_exit(deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(5));
        window = Some(producer_result(&mut live_producer, status, &req.run_id)?);
    }
    // Each worker finishes its in-flight tasks after SIGTERM (bounded by WORKER_GRACE).
    // Collected first: every worker must be stopped, not just those before a failure.
    let stopped: Vec<bool> = workers.iter_mut().map(|w| w.stop(WORKER_GRACE)).collect();
    let graceful = stopped.iter().all(|ok| *ok);
    let samples = sampler.stop();
    let tally = collector.finish();
    for worker in &workers {
        errors.extend(systems::verify_worker_config(
            &case.variant,
            case.driver,
            &worker.stdout(),
            &worker.stderr(),
        ));
    }
    if !graceful {
        errors.push(format!(
            "worker did not exit within {WORKER_GRACE:?} of SIGTERM and was killed"
        ));
    }

    let input = MeasureInput {
        mode: case.mode,
        task_count: case.task_count,
        tally: &tally,
        producer: window.ok_or_else(|| anyhow!("no producer window"))?,
        worker_spawn_ns: workers[0].started_unix_ns(),
        samples: &samples,
    };
    let (mut metrics, histograms) = metrics::metrics(&input);
    metrics.worker_stopped_gracefully = graceful;
    metrics.message_bytes = message_bytes;
    match namespace.api_calls(&space.queue) {
        Ok(Some(calls)) => {
            metrics.api_calls_per_task =
                Some(calls.values().sum::<u64>() as f64 / case.task_count as f64);
            metrics.api_calls = Some(calls);
        }
        Ok(None) => {}
        Err(e) => errors.push(format!("could not count the broker's API calls: {e:#}")),
    }
    if metrics.lost > 0 || metrics.duplicated > 0 {
        errors.push(format!(
            "{} tasks lost, {} duplicated",
            metrics.lost, metrics.duplicated
        ));
    }
    if metrics.failed > 0 {
        errors.push(format!("{} tasks reported a failure", metrics.failed));
    }
    errors.extend(crate::measure::collector::unsent_error(
        metrics.records_unsent,
    ));
    if let Some(opened @ 1..) = metrics.producer_sockets_opened {
        errors.push(format!(
            "the producer opened {opened} socket(s) inside its timed window: connection setup was timed as dispatch"
        ));
    }
    let spawn_ns = workers[0].started_unix_ns();
    let timeseries = time_points(&samples, spawn_ns);
    let since_spawn_ms = |t_ns: u64| (t_ns as f64 - spawn_ns as f64) / 1e6;
    let queue_depth: Vec<DepthPoint> = depth_series
        .iter()
        .map(|&(t_ns, depth)| DepthPoint {
            t_ms: since_spawn_ms(t_ns),
            depth,
        })
        .collect();
    metrics.queue_depth_max = crate::measure::depth::max_depth(&queue_depth);
    if case.mode != Mode::Drain {
        let window = input.producer;
        metrics.queue_depth_growth = crate::measure::depth::growth(
            &queue_depth,
            since_spawn_ms(window.enqueue_start_ns),
            since_spawn_ms(window.enqueue_end_ns),
            case.task_count,
        );
    }

    errors.extend(workload.finish(
        &Finished {
            tally: &tally,
            queue_depth: &queue_depth,
            task_count: case.task_count,
            timeseries: &timeseries,
            worker_spawn_ns: spawn_ns,
        },
        &mut metrics,
    ));
    let mut configuration = Configuration {
        worker_processes: case.worker_processes,
        producer_batch: case.producer_batch,
        http_client: case.variant.option("http").map(|client| {
            let version = h.environment.versions.get(client);
            format!(
                "{client} {}",
                version.map_or("(version unknown)", String::as_str)
            )
        }),
        broker_source: space.broker.info().source.clone(),
        caveats: systems::caveats(&case.variant, namespace),
        http_latency_ms: case.http_latency_ms,
        pbkdf2_iterations: case.pbkdf2_iterations,
        mix: case.mix.clone(),
        ..req.configuration()
    };
    system.record_settings(case, &mut configuration);
    workload.record(&mut configuration);
    let mut result = req.result(h, configuration, metrics, errors);
    result.environment.broker_version = space.broker.info().server_version.clone();
    result.timeseries = timeseries;
    result.queue_depth = queue_depth;
    Ok(RunOutput { result, histograms })
}

/// Sampler readings as the result's time points, in ms from the worker's spawn.
pub fn time_points(samples: &[crate::measure::sampler::Sample], spawn_ns: u64) -> Vec<TimePoint> {
    samples
        .iter()
        .map(|s| TimePoint {
            t_ms: (s.t_ns as f64 - spawn_ns as f64) / 1e6,
            rss_mb: s.rss_bytes as f64 / (1024.0 * 1024.0),
            cpu_seconds: s.cpu_seconds,
            processes: s.processes,
            pss_mb: s.pss_bytes.map(|b| b as f64 / (1024.0 * 1024.0)),
        })
        .collect()
}

fn producer_result(
    producer: &mut ManagedChild,
    status: Option<std::process::ExitStatus>,
    run_id: &str,
) -> Result<ProducerWindow> {
    match status {
        Some(s) if s.success() => {
            let stdout = producer.stdout();
            let line = stdout
                .lines()
                .rev()
                .find(|l| l.starts_with('{'))
                .unwrap_or("");
            serde_json::from_str(line)
                .with_context(|| format!("run {run_id}: unreadable producer output: {stdout:?}"))
        }
        Some(s) => bail!(
            "run {run_id}: the producer failed ({s}). Its output ends with:\n{}",
            producer.log_tail(LOG_TAIL_LINES)
        ),
        None => {
            producer.stop(Duration::from_secs(2));
            bail!(
                "run {run_id}: the producer did not finish in time. Its output ends with:\n{}",
                producer.log_tail(LOG_TAIL_LINES)
            )
        }
    }
}
