//! Driver-specific behaviour of AsyncTasQ on the SQL brokers, measured on the real broker:
//! how long a permanently failing task takes to reach the dead-letter table, and how long a
//! task held by a killed worker takes to run again (visibility timeout).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::harness::Harness;
use crate::measure::collector::{Collector, Tally};
use crate::measure::procs::{self, ManagedChild};
use crate::provision::brokers::Driver;
use crate::run::space::RunSpace;
use crate::systems::{self, RunEnv, System, Variant};

const LIMIT: Duration = Duration::from_secs(60);
/// `slow_first`'s visibility timeout (fixtures/python/tasq_fixtures/asynctasq_tasks.py).
pub const SLOW_FIRST_VISIBILITY_SECS: u64 = 2;

#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterTiming {
    pub driver: String,
    /// The failing attempt's end, from the task itself.
    pub attempt_end_ns: u64,
    /// `failed_at` of its dead-letter row, from the broker.
    pub dead_letter_ns: u64,
    pub delay_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Redelivery {
    pub driver: String,
    pub visibility_timeout_secs: u64,
    /// When the worker holding the task was SIGKILLed.
    pub killed_ns: u64,
    /// When the task started again, in the second worker.
    pub rerun_start_ns: u64,
    pub recovery_ms: f64,
}

/// Dispatches one `always_fails` task (max_attempts=1) and times the dead-letter row.
pub fn dead_letter_delay(h: &Harness, driver: Driver) -> Result<DeadLetterTiming> {
    let space = RunSpace::open(h, driver)?;
    let run_id = format!("dlq-{driver}-{:08x}", rand::random::<u32>());
    let collector = Collector::bind(&space.dir().join("collector.sock"), &run_id, 1)?;
    let env = space.env(h, collector.socket_path(), &run_id, 4);
    space.prepare(System::ASYNCTASQ, &env)?;
    produce(&env, &space, "always_fails")?;
    let mut worker = start_worker(&env, &space, "worker", "0")?;
    let tally = wait_until(
        &collector,
        &mut worker,
        "the failing attempt to report",
        |t| !t.records.is_empty(),
    )?;
    let attempt_end_ns = tally.records[0].end_ns;
    let deadline = Instant::now() + LIMIT;
    let dead_letter_ns = loop {
        if let Some(at) = space.namespace.dead_letter_ns(&space.queue)? {
            break at;
        }
        if Instant::now() > deadline {
            bail!(
                "no dead-letter row within {LIMIT:?}; worker output:\n{}",
                worker.log_tail(25)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    worker.stop(Duration::from_secs(10));
    Ok(DeadLetterTiming {
        driver: driver.name().into(),
        attempt_end_ns,
        dead_letter_ns,
        delay_ms: (dead_letter_ns as f64 - attempt_end_ns as f64) / 1e6,
    })
}

/// Starts `slow_first` on a worker, SIGKILLs that worker mid-task, starts a second worker
/// and times how long the task takes to start again.
pub fn visibility_recovery(h: &Harness, driver: Driver) -> Result<Redelivery> {
    let space = RunSpace::open(h, driver)?;
    let run_id = format!("redeliver-{driver}-{:08x}", rand::random::<u32>());
    let collector = Collector::bind(&space.dir().join("collector.sock"), &run_id, 1)?;
    let env = space.env(h, collector.socket_path(), &run_id, 4);
    space.prepare(System::ASYNCTASQ, &env)?;
    produce(&env, &space, "slow_first")?;
    let mut first = start_worker(&env, &space, "worker", "600")?;
    wait_until(&collector, &mut first, "the task to start", |t| {
        !t.records.is_empty()
    })?;
    first.kill();
    let killed_ns = crate::measure::clock::unix_ns();
    let mut second = start_worker(&env, &space, "worker2", "0")?;
    let tally = wait_until(&collector, &mut second, "the task to run again", |t| {
        !t.repeats.is_empty()
    })?;
    second.stop(Duration::from_secs(10));
    let rerun_start_ns = tally.repeats[0].start_ns;
    Ok(Redelivery {
        driver: driver.name().into(),
        visibility_timeout_secs: SLOW_FIRST_VISIBILITY_SECS,
        killed_ns,
        rerun_start_ns,
        recovery_ms: (rerun_start_ns as f64 - killed_ns as f64) / 1e6,
    })
}

fn produce(env: &RunEnv, space: &RunSpace, task: &str) -> Result<()> {
    let mut command = systems::producer_command(System::ASYNCTASQ, env, task, 0, 1, 1);
    let (status, _) = procs::run_bounded("producer", &mut command, space.dir(), LIMIT)?;
    if !status.success() {
        bail!(
            "the producer failed ({status}): {}",
            procs::tail_of_file(&space.dir().join("producer.err"), 25)
        );
    }
    Ok(())
}

/// An AsyncTasQ worker of concurrency 1 whose `slow_first` sleeps `slow_seconds`.
fn start_worker(
    env: &RunEnv,
    space: &RunSpace,
    name: &str,
    slow_seconds: &str,
) -> Result<ManagedChild> {
    let variant = Variant::new(System::ASYNCTASQ, "asyncio", 1);
    let mut command = systems::worker_command(&variant, env);
    command.env("BENCH_SLOW_SECONDS", slow_seconds);
    ManagedChild::spawn(name, &mut command, space.dir())
}

/// Waits (bounded) until what the collector has seen satisfies `done`.
fn wait_until(
    collector: &Collector,
    worker: &mut ManagedChild,
    what: &str,
    done: impl Fn(&Tally) -> bool,
) -> Result<Tally> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let tally = collector.snapshot();
        if done(&tally) {
            return Ok(tally);
        }
        if let Some(status) = worker.try_exit() {
            bail!(
                "{} exited ({status}) while waiting for {what}:\n{}",
                worker.name(),
                worker.log_tail(25)
            );
        }
        if Instant::now() > deadline {
            return Err(anyhow::anyhow!("{}", worker.log_tail(25)))
                .context(format!("no sign of {what} within {LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
