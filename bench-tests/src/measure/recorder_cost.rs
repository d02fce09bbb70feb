//! Measures the task-side recorder's own cost per task (it runs inside every task, so it
//! must stay far below a broker round trip), with a Redis INCR measured alongside for scale.

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::harness::Harness;
use crate::measure::collector::{Collector, RecordSender, WaitEnd};
use crate::measure::procs::ManagedChild;

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
    /// Loaded measurements: the records/s other senders sent the same collector meanwhile.
    pub load_records_per_sec: Option<f64>,
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
    measure_with(h, count, batches, None)
}

/// The same while `threads` other senders load the collector with `rate` records/s
/// between them (another run's records: parsed and counted as foreign, as real work).
pub fn measure_loaded(
    h: &Harness,
    count: u64,
    batches: u64,
    threads: u32,
    rate: f64,
) -> Result<RecorderCost> {
    measure_with(h, count, batches, Some((threads, rate)))
}

fn measure_with(
    h: &Harness,
    count: u64,
    batches: u64,
    load: Option<(u32, f64)>,
) -> Result<RecorderCost> {
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
    let load = match load {
        Some((threads, rate)) => Some(Load::start(collector.socket_path(), threads, rate)?),
        None => None,
    };
    let ran = crate::measure::procs::run_bounded(
        "recorder-cost",
        &mut command,
        workdir.path(),
        Duration::from_secs(120),
    );
    let load_records_per_sec = load.map(Load::stop).transpose()?;
    let (status, stdout) = ran?;
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
        load_records_per_sec,
    })
}

/// A real load on the collector: concurrent senders of real datagrams.
#[derive(Debug, Clone, Copy)]
pub struct IntakeRequest {
    /// Rust threads, each sending `per_thread` records with a blocking send.
    pub rust_threads: u32,
    pub per_thread: u64,
    /// Python processes, each sending `per_process` records through the real `recorder.py`.
    pub python_processes: u32,
    pub per_process: u64,
}

impl IntakeRequest {
    pub fn total(&self) -> u64 {
        u64::from(self.rust_threads) * self.per_thread
            + u64::from(self.python_processes) * self.per_process
    }
}

/// What the collector took in under an [`IntakeRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Intake {
    pub expected: u64,
    /// Distinct records the collector received.
    pub received: u64,
    pub lost: u64,
    /// Records the Python recorders counted as not sent.
    pub unsent: u64,
    /// From the senders' common start to the last record received.
    pub seconds: f64,
    pub records_per_sec: f64,
    /// How often `wait_all` ran its check callback (the run loop's wakeups) ...
    pub wakeups: u64,
    /// ... in this long a wait (the stall that ends a lossy intake included).
    pub waited_seconds: f64,
}

/// Starts every sender at once and measures how fast the collector takes their records in.
pub fn intake(h: &Harness, req: &IntakeRequest) -> Result<Intake> {
    let workdir = tempfile::Builder::new()
        .prefix("tasq-bench-intake-")
        .tempdir()?;
    let run_id = format!("intake-{:08x}", rand::random::<u32>());
    let expected = req.total();
    let collector = Collector::bind(&workdir.path().join("collector.sock"), &run_id, expected)?;
    let go_file = workdir.path().join("go");
    let mut pythons = Vec::new();
    let python_base = u64::from(req.rust_threads) * req.per_thread;
    for index in 0..req.python_processes {
        let offset = python_base + u64::from(index) * req.per_process;
        let mut command = python_sender(h, &run_id, collector.socket_path(), workdir.path());
        command.args(["--blast", &req.per_process.to_string()]);
        command.args(["--offset", &offset.to_string()]);
        command.arg("--start-file").arg(&go_file);
        let name = format!("sender{index}");
        pythons.push(ManagedChild::spawn(&name, &mut command, workdir.path())?);
    }
    // Python senders need their interpreter up before the clock starts.
    wait_for_ready(&mut pythons, Duration::from_secs(30))?;
    let barrier = Arc::new(Barrier::new(req.rust_threads as usize + 1));
    let senders: Vec<_> = (0..u64::from(req.rust_threads))
        .map(|i| {
            let seqs = i * req.per_thread..(i + 1) * req.per_thread;
            let (path, run_id) = (collector.socket_path().to_path_buf(), run_id.clone());
            let barrier = barrier.clone();
            thread::spawn(move || {
                let sock = connect(&path)?;
                barrier.wait();
                send_records(&sock, &run_id, seqs)
            })
        })
        .collect();
    barrier.wait();
    std::fs::write(&go_file, b"go")?;
    let started = Instant::now();
    let mut wakeups = 0u64;
    // A short stall: records the recorders could not send never arrive.
    let end = collector.wait_all(
        started + Duration::from_secs(120),
        Duration::from_secs(3),
        |_| {
            wakeups += 1;
            Ok(())
        },
    )?;
    let waited_seconds = started.elapsed().as_secs_f64();
    // Lossy: the wait ended by stalling; the intake ended with the last record.
    let seconds = waited_seconds - collector.idle_for().as_secs_f64();
    for sender in senders {
        sender.join().expect("sender thread")?;
    }
    let mut unsent = 0;
    for python in &mut pythons {
        unsent += python_result(python)?;
    }
    let received = collector.distinct();
    if end == WaitEnd::TimedOut {
        bail!("intake: the collector received {received} of {expected} records in 120 s");
    }
    Ok(Intake {
        expected,
        received,
        lost: expected - received,
        unsent,
        seconds,
        records_per_sec: received as f64 / seconds,
        wakeups,
        waited_seconds,
    })
}

fn python_sender(h: &Harness, run_id: &str, socket: &Path, dir: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(&h.python.python);
    command
        .current_dir(dir)
        .env("PYTHONPATH", h.fixtures())
        .env("BENCH_RUN_ID", run_id)
        .env("BENCH_COLLECTOR_SOCKET", socket)
        .args(["-m", "tasq_fixtures.recorder_cost"]);
    command
}

/// Waits until every Python sender printed "ready" (its imports done).
fn wait_for_ready(pythons: &mut [ManagedChild], limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    for python in pythons.iter_mut() {
        while !python.stdout().contains("ready") {
            if let Some(status) = python.try_exit() {
                bail!(
                    "{} exited ({status}): {}",
                    python.name(),
                    python.log_tail(20)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not ready within {limit:?}: {}",
                    python.name(),
                    python.log_tail(20)
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

/// A Python sender's count of records it could not send.
fn python_result(python: &mut ManagedChild) -> Result<u64> {
    let status = python.wait_exit(Duration::from_secs(60));
    if !status.is_some_and(|s| s.success()) {
        python.stop(Duration::from_secs(2));
        bail!(
            "{} failed ({status:?}): {}",
            python.name(),
            python.log_tail(20)
        );
    }
    #[derive(Deserialize)]
    struct Raw {
        unsent: u64,
    }
    let stdout = python.stdout();
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    let raw: Raw = serde_json::from_str(line)
        .with_context(|| format!("{}: unreadable output {stdout:?}", python.name()))?;
    Ok(raw.unsent)
}

fn connect(path: &Path) -> Result<RecordSender> {
    RecordSender::connect(path)
}

/// Sends one real-format record per sequence number, blocking while the collector is full.
fn send_records(sock: &RecordSender, run_id: &str, seqs: std::ops::Range<u64>) -> Result<u64> {
    let pid = std::process::id();
    let mut buf = Vec::with_capacity(128);
    let mut sent = 0;
    for seq in seqs {
        buf.clear();
        let t = crate::measure::clock::unix_ns();
        write!(buf, "{run_id} {seq} {t} {t} {t} {pid} ok")?;
        sock.send(&buf)?;
        sent += 1;
    }
    Ok(sent)
}

/// Background senders of another run's records at a paced rate, to load the collector
/// while something else is measured.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<u64>>>,
    started: Instant,
}

impl Load {
    /// `threads` senders sharing `rate` records/s between them.
    pub fn start(socket: &Path, threads: u32, rate: f64) -> Result<Load> {
        let stop = Arc::new(AtomicBool::new(false));
        let per_thread = rate / f64::from(threads.max(1));
        let run_id = format!("load-{:08x}", rand::random::<u32>());
        let mut handles = Vec::new();
        for _ in 0..threads {
            let sock = connect(socket)?;
            let (stop, run_id) = (stop.clone(), run_id.clone());
            handles.push(thread::spawn(move || {
                paced(&sock, &run_id, per_thread, &stop)
            }));
        }
        Ok(Load {
            stop,
            threads: handles,
            started: Instant::now(),
        })
    }

    /// Stops the senders; returns the records/s they achieved.
    pub fn stop(self) -> Result<f64> {
        self.stop.store(true, Ordering::SeqCst);
        let mut sent = 0;
        for thread in self.threads {
            sent += thread.join().expect("load thread")?;
        }
        Ok(sent as f64 / self.started.elapsed().as_secs_f64())
    }
}

/// Sends bursts of 100 records on a schedule of `rate` records/s until `stop`.
fn paced(sock: &RecordSender, run_id: &str, rate: f64, stop: &AtomicBool) -> Result<u64> {
    const BURST: u64 = 100;
    let started = Instant::now();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        sent += send_records(sock, run_id, sent..sent + BURST)?;
        let due = started + Duration::from_secs_f64(sent as f64 / rate);
        thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    Ok(sent)
}
