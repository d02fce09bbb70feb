//! The raw result of one repetition: the schema of `results/<run-id>/runs/*.json`.
//!
//! Only DESIGN.md's raw-result keys are required when a run is read (benchmark_id, timestamp,
//! configuration{system, driver, workers, task_count, scenario, mode, variant, profile},
//! metrics{enqueue_time_seconds, processing_time_seconds, throughput_tasks_per_sec,
//! latency_mean_ms, latency_p50_ms, latency_p95_ms, latency_p99_ms, memory_rss_mb,
//! cpu_percent}, errors, environment{host, cpus, python, versions, git_rev}), so runs written
//! in the plan's format by other tools can be analysed. Every field the harness adds is
//! optional: a missing number reads as NaN (written back as `null`) and shows as "not
//! measured"; a missing count reads as 0, a missing label as empty.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub benchmark_id: String,
    pub timestamp: String,
    pub configuration: Configuration,
    pub metrics: Metrics,
    pub errors: Vec<String>,
    pub environment: Environment,
    /// Worker RSS/CPU samples over the run (t_ms from worker spawn).
    #[serde(default)]
    pub timeseries: Vec<TimePoint>,
    /// Tasks waiting in the run's queue, read from the broker every 250 ms while the run
    /// waits for its tasks (t_ms from worker spawn; not on SQS).
    #[serde(default)]
    pub queue_depth: Vec<DepthPoint>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct DepthPoint {
    pub t_ms: f64,
    pub depth: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Configuration {
    pub system: String,
    pub driver: String,
    /// Concurrency of the worker pool (threads, processes or asyncio slots).
    pub workers: u32,
    /// Worker processes started (each with `workers` concurrency).
    #[serde(default)]
    pub worker_processes: u32,
    pub task_count: u64,
    pub scenario: String,
    pub mode: String,
    /// Pool and concurrency, e.g. `prefork-c2`.
    pub variant: String,
    #[serde(default)]
    pub pool: String,
    pub profile: String,
    #[serde(default)]
    pub repetition: u32,
    #[serde(default)]
    pub warmup: bool,
    /// Seed that ordered the cases of this repetition.
    #[serde(default)]
    pub order_seed: u64,
    #[serde(default)]
    pub position_in_repetition: u32,
    #[serde(default)]
    pub producer_batch: u32,
    /// Celery only; null for AsyncTasQ.
    #[serde(default)]
    pub celery_prefetch_multiplier: Option<u32>,
    #[serde(default)]
    pub celery_acks: Option<String>,
    /// When the worker acknowledges a message: `at-least-once` (after the task) or
    /// `at-most-once` (on receipt). Systems are compared only at the same semantics.
    #[serde(default)]
    pub delivery: Option<String>,
    /// Settings the system module chose beyond its defaults for this variant, by the
    /// system's own names, e.g. `broker_transport_options.max_connections`.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// The log level both systems' workers run at.
    #[serde(default)]
    pub worker_log_level: Option<String>,
    /// I/O runs: the tasks' HTTP client and its installed version, e.g. `aiohttp 3.14.5`.
    #[serde(default)]
    pub http_client: Option<String>,
    #[serde(default)]
    pub broker_source: String,
    /// I/O runs: latency the mock HTTP server injected per request.
    #[serde(default)]
    pub http_latency_ms: Option<u64>,
    /// CPU runs: pbkdf2 iterations per task.
    #[serde(default)]
    pub pbkdf2_iterations: Option<u64>,
    /// Mixed runs: the shares and seed of the task kinds, and a fingerprint of the sequence
    /// (equal fingerprints: the same tasks in the same order).
    #[serde(default)]
    pub mix: Option<crate::workloads::mixed::MixSpec>,
    #[serde(default)]
    pub mix_fingerprint: Option<String>,
    /// What a reader must weigh: an emulator instead of the real service, an experimental transport.
    #[serde(default)]
    pub caveats: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Metrics {
    #[serde(default = "not_measured", deserialize_with = "null_as_nan")]
    pub enqueue_time_seconds: f64,
    #[serde(default = "not_measured", deserialize_with = "null_as_nan")]
    pub enqueue_rate_per_sec: f64,
    /// First task start to last task end.
    #[serde(default = "not_measured", deserialize_with = "null_as_nan")]
    pub processing_time_seconds: f64,
    /// Worker spawn to last task end (includes interpreter start and imports).
    #[serde(default = "not_measured", deserialize_with = "null_as_nan")]
    pub processing_time_from_spawn_seconds: f64,
    /// completed / processing_time_seconds; null for a one-task run (cold start), whose
    /// processing window is one task's service time, not a rate.
    pub throughput_tasks_per_sec: Option<f64>,
    #[serde(default = "not_measured", deserialize_with = "null_as_nan")]
    pub throughput_from_spawn_tasks_per_sec: f64,
    /// End-to-end: intended enqueue time to task end, over distinct completed tasks.
    #[serde(default = "not_measured", deserialize_with = "null_as_nan")]
    pub latency_mean_ms: f64,
    #[serde(default = "not_measured", deserialize_with = "null_as_nan")]
    pub latency_p50_ms: f64,
    #[serde(default = "not_measured", deserialize_with = "null_as_nan")]
    pub latency_p95_ms: f64,
    #[serde(default = "not_measured", deserialize_with = "null_as_nan")]
    pub latency_p99_ms: f64,
    #[serde(default = "not_measured", deserialize_with = "null_as_nan")]
    pub latency_max_ms: f64,
    /// What the latency numbers mean: in drain mode they are queueing artefacts.
    #[serde(default)]
    pub latency_kind: String,
    #[serde(default = "not_measured", deserialize_with = "null_as_nan")]
    pub queue_wait_p50_ms: f64,
    #[serde(default = "not_measured", deserialize_with = "null_as_nan")]
    pub queue_wait_p99_ms: f64,
    #[serde(default = "not_measured", deserialize_with = "null_as_nan")]
    pub service_mean_us: f64,
    #[serde(default = "not_measured", deserialize_with = "null_as_nan")]
    pub service_p99_us: f64,
    /// Peak RSS of the worker process tree.
    #[serde(default = "not_measured", deserialize_with = "null_as_nan")]
    pub memory_rss_mb: f64,
    #[serde(default = "not_measured", deserialize_with = "null_as_nan")]
    pub memory_rss_steady_mb: f64,
    #[serde(default)]
    pub worker_processes: u32,
    /// Worker tree CPU time over processing wall time; 100 = one core. Null ("not
    /// measured") when fewer than two samples fall inside the processing window.
    pub cpu_percent: Option<f64>,
    #[serde(default)]
    pub completed: u64,
    #[serde(default)]
    pub lost: u64,
    #[serde(default)]
    pub duplicated: u64,
    #[serde(default)]
    pub failed: u64,
    /// Records from another run or unparsable.
    #[serde(default)]
    pub foreign_records: u64,
    /// Distinct worker pids that ran tasks.
    #[serde(default)]
    pub task_pids: u32,
    #[serde(default)]
    pub worker_stopped_gracefully: bool,
    /// Bytes one task message occupies on the broker (drain runs: read before workers start).
    #[serde(default)]
    pub message_bytes: Option<u64>,
    /// Broker API calls that named the run's queue, by action (SQS on moto: its recorder),
    /// from producer start to worker stop.
    #[serde(default)]
    pub api_calls: Option<std::collections::BTreeMap<String, u64>>,
    #[serde(default)]
    pub api_calls_per_task: Option<f64>,
    /// I/O runs: requests the mock HTTP server answered (must equal task_count).
    #[serde(default)]
    pub http_requests: Option<u64>,
    /// Paced runs: the target dispatch rate, and the producer's lateness against its
    /// schedule (latency above is measured from the schedule, lateness included).
    #[serde(default)]
    pub paced_target_rate: Option<f64>,
    #[serde(default)]
    pub producer_lateness_p99_ms: Option<f64>,
    #[serde(default)]
    pub producer_lateness_max_ms: Option<f64>,
    /// (lost + duplicated + failed) / task_count.
    #[serde(default)]
    pub error_rate: f64,
    /// Worker RSS at the last sample of the processing window minus at its first (None:
    /// fewer than two samples in the window).
    #[serde(default)]
    pub memory_growth_mb: Option<f64>,
    /// Deepest queue read during the run (not on SQS).
    #[serde(default)]
    pub queue_depth_max: Option<u64>,
    /// How the queue depth grew while the producer was sending (live and paced runs).
    #[serde(default)]
    pub queue_depth_growth: Option<crate::measure::depth::Growth>,
    /// Mixed runs: counts and service times per kind of task.
    #[serde(default)]
    pub by_kind: Option<BTreeMap<String, crate::workloads::mixed::KindMetrics>>,
    /// Records the task-side recorders could not send (a full collector beyond their send
    /// budget): a measurement error, those tasks look lost.
    #[serde(default)]
    pub records_unsent: u64,
    /// Peak PSS of the worker process tree (shared pages split between the processes that
    /// map them, so prefork children do not count the parent's pages again). None: not
    /// measured (no readable smaps_rollup).
    #[serde(default)]
    pub memory_pss_mb: Option<f64>,
    /// Stress runs: each step of the ramp (offered and completion rates, depth slope,
    /// latency, memory, whether it saturated).
    #[serde(default)]
    pub stress_steps: Option<Vec<crate::workloads::stress::StressStep>>,
    /// Sockets the producer opened inside its timed window (None: not measured). Above 0,
    /// connection setup was timed as dispatch, and the run is invalid.
    #[serde(default)]
    pub producer_sockets_opened: Option<u64>,
    /// The workload's own figures, by name (its [`crate::workloads::Workload::measures`]
    /// say what each is, its unit and which direction is better): encode time, bytes per
    /// payload, events received, lifespan startup... The summary and criteria read them
    /// like the built-in metrics.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub measures: BTreeMap<String, f64>,
}

impl Metrics {
    /// Metrics of a run that measured none of the task-queue figures (a micro-benchmark in
    /// its own process): every rate, time and latency not measured (null in the JSON).
    pub fn not_measured() -> Metrics {
        let nan = f64::NAN;
        Metrics {
            enqueue_time_seconds: nan,
            enqueue_rate_per_sec: nan,
            processing_time_seconds: nan,
            processing_time_from_spawn_seconds: nan,
            throughput_from_spawn_tasks_per_sec: nan,
            latency_mean_ms: nan,
            latency_p50_ms: nan,
            latency_p95_ms: nan,
            latency_p99_ms: nan,
            latency_max_ms: nan,
            latency_kind: "not measured".into(),
            queue_wait_p50_ms: nan,
            queue_wait_p99_ms: nan,
            service_mean_us: nan,
            service_p99_us: nan,
            memory_rss_mb: nan,
            memory_rss_steady_mb: nan,
            worker_stopped_gracefully: true,
            ..Metrics::default()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Environment {
    pub host: String,
    pub cpus: u32,
    #[serde(default = "not_measured", deserialize_with = "null_as_nan")]
    pub memory_gb: f64,
    #[serde(default)]
    pub os: String,
    pub python: String,
    #[serde(default)]
    pub python_source: String,
    pub versions: BTreeMap<String, String>,
    pub git_rev: String,
    #[serde(default)]
    pub broker_version: String,
    #[serde(default)]
    pub harness_version: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct TimePoint {
    pub t_ms: f64,
    pub rss_mb: f64,
    pub cpu_seconds: f64,
    pub processes: u32,
    /// PSS of the worker tree (None: not measured).
    #[serde(default)]
    pub pss_mb: Option<f64>,
}

/// What a number the run did not record reads as: NaN, written back as `null`.
fn not_measured() -> f64 {
    f64::NAN
}

/// Reads `null` (how serde_json writes NaN) as NaN, so a run written with a metric it could
/// not measure reads back.
fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}
