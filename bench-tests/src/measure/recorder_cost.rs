//! Measures the task-side recorder's own cost per task (it runs inside every task, so it
//! must stay far below a broker round trip), with a Redis INCR measured alongside for scale.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::harness::Harness;
use crate::measure::collector::{Collector, WaitEnd};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecorderCost {
    /// Mean wall time of one `record()` call in each batch, in microseconds.
    pub record_us: Vec<f64>,
    /// Mean CPU time the calling process spent per `record()` call in each batch: the task's
    /// own cost, unaffected by other load on the machine.
    pub record_cpu_us: Vec<f64>,
    /// Mean cost of one Redis INCR round trip in each batch, in microseconds.
    pub redis_incr_us: Vec<f64>,
    /// Records the collector received (distinct): proof the measured calls delivered.
    pub delivered: u64,
}

impl RecorderCost {
    pub fn median_record_us(&self) -> f64 {
        median(&self.record_us)
    }

    pub fn median_record_cpu_us(&self) -> f64 {
        median(&self.record_cpu_us)
    }

    pub fn median_redis_incr_us(&self) -> f64 {
        median(&self.redis_incr_us)
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Sends `count * batches` records from a Python process to a real collector.
pub fn measure(h: &Harness, count: u64, batches: u64) -> Result<RecorderCost> {
    let workdir = tempfile::Builder::new()
        .prefix("tasq-bench-recorder-")
        .tempdir()?;
    let run_id = format!("recorder-cost-{:08x}", rand::random::<u32>());
    let total = count * batches;
    let collector = Collector::bind(&workdir.path().join("collector.sock"), &run_id, total)?;
    let namespace = h
        .broker(crate::provision::brokers::Driver::Redis)?
        .namespace("recorder")?;
    let mut command = std::process::Command::new(&h.python.python);
    command
        .current_dir(workdir.path())
        .env("PYTHONPATH", h.fixtures())
        .env("BENCH_RUN_ID", &run_id)
        .env("BENCH_COLLECTOR_SOCKET", collector.socket_path())
        .args([
            "-m",
            "tasq_fixtures.recorder_cost",
            "--count",
            &count.to_string(),
        ])
        .args([
            "--batches",
            &batches.to_string(),
            "--redis-url",
            &namespace.connection_url(),
        ]);
    let (status, stdout) = crate::measure::procs::run_bounded(
        "recorder-cost",
        &mut command,
        workdir.path(),
        Duration::from_secs(120),
    )?;
    if !status.success() {
        bail!(
            "recorder cost script failed ({status}): {}",
            crate::measure::procs::tail_of_file(&workdir.path().join("recorder-cost.err"), 20)
        );
    }
    let end = collector.wait_all(
        Instant::now() + Duration::from_secs(10),
        Duration::from_secs(10),
        |_| Ok(()),
    )?;
    let delivered = collector.distinct();
    if end != WaitEnd::Complete {
        bail!("the collector received {delivered} of {total} recorder datagrams");
    }
    #[derive(Deserialize)]
    struct Raw {
        record_ns: Vec<f64>,
        record_cpu_ns: Vec<f64>,
        redis_incr_ns: Vec<f64>,
    }
    let raw: Raw = serde_json::from_str(stdout.trim())
        .with_context(|| format!("unreadable output: {stdout}"))?;
    Ok(RecorderCost {
        record_us: raw.record_ns.iter().map(|ns| ns / 1e3).collect(),
        record_cpu_us: raw.record_cpu_ns.iter().map(|ns| ns / 1e3).collect(),
        redis_incr_us: raw.redis_incr_ns.iter().map(|ns| ns / 1e3).collect(),
        delivered,
    })
}
