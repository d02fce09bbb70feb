//! Turns the collector's records, the producer's window and the sampler's samples into
//! the metrics of one run. Exact counts; latency percentiles from HdrHistograms.

use std::collections::HashSet;

use hdrhistogram::Histogram;

use crate::measure::collector::Tally;
use crate::measure::sampler::{self, Sample};
use crate::result::Metrics;
use crate::workloads::Mode;

/// The producer's measured enqueue window (its own clock, around the dispatch loop only).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct ProducerWindow {
    pub enqueue_start_ns: u64,
    pub enqueue_end_ns: u64,
    /// Paced runs: the target rate and how late the producer sent against its schedule.
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default)]
    pub lateness_p50_ms: Option<f64>,
    #[serde(default)]
    pub lateness_p99_ms: Option<f64>,
    #[serde(default)]
    pub lateness_max_ms: Option<f64>,
    /// Sockets the producer held at the window's end that it did not hold at its start.
    #[serde(default)]
    pub sockets_opened_in_window: Option<u64>,
}

/// Latency distributions of one run, in nanoseconds.
pub struct Histograms {
    /// Intended enqueue to task start.
    pub queue_wait: Histogram<u64>,
    /// Task start to task end.
    pub service: Histogram<u64>,
    /// Intended enqueue to task end.
    pub end_to_end: Histogram<u64>,
}

impl Histograms {
    pub fn from_tally(tally: &Tally) -> Histograms {
        let new = || Histogram::<u64>::new(3).expect("3 significant digits is valid");
        let mut h = Histograms {
            queue_wait: new(),
            service: new(),
            end_to_end: new(),
        };
        for r in &tally.records {
            // Auto-resizing histograms accept any u64; saturating_sub guards against a clock step.
            let _ = h
                .queue_wait
                .record(r.start_ns.saturating_sub(r.intended_ns));
            let _ = h.service.record(r.end_ns.saturating_sub(r.start_ns));
            let _ = h.end_to_end.record(r.end_ns.saturating_sub(r.intended_ns));
        }
        h
    }
}

pub struct MeasureInput<'a> {
    pub mode: Mode,
    pub task_count: u64,
    pub tally: &'a Tally,
    pub producer: ProducerWindow,
    pub worker_spawn_ns: u64,
    pub samples: &'a [Sample],
}

pub fn metrics(input: &MeasureInput) -> (Metrics, Histograms) {
    let tally = input.tally;
    let records = &tally.records;
    let secs = |ns: u64| ns as f64 / 1e9;
    let ms = |ns: f64| ns / 1e6;
    let first_start = records.iter().map(|r| r.start_ns).min().unwrap_or(0);
    let last_end = records.iter().map(|r| r.end_ns).max().unwrap_or(0);
    let completed = records.len() as u64;

    let enqueue_time = secs(
        input
            .producer
            .enqueue_end_ns
            .saturating_sub(input.producer.enqueue_start_ns),
    );
    let processing = secs(last_end.saturating_sub(first_start));
    let from_spawn = secs(last_end.saturating_sub(input.worker_spawn_ns));
    let rate = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };

    let h = Histograms::from_tally(tally);
    let exact_mean = |f: fn(&crate::measure::collector::TaskRecord) -> u64| {
        if records.is_empty() {
            0.0
        } else {
            records.iter().map(|r| f(r) as f64).sum::<f64>() / records.len() as f64
        }
    };
    let usage = sampler::usage(input.samples, first_start, last_end);
    let cpu_percent =
        cpu_measured(input.samples, first_start, last_end).then_some(usage.cpu_percent);
    let pids: HashSet<u32> = records.iter().map(|r| r.pid).collect();

    let metrics = Metrics {
        enqueue_time_seconds: enqueue_time,
        enqueue_rate_per_sec: rate(input.task_count, enqueue_time),
        processing_time_seconds: processing,
        processing_time_from_spawn_seconds: from_spawn,
        throughput_tasks_per_sec: is_rate(completed).then(|| rate(completed, processing)),
        throughput_from_spawn_tasks_per_sec: if is_rate(completed) {
            rate(completed, from_spawn)
        } else {
            f64::NAN
        },
        latency_mean_ms: ms(exact_mean(|r| r.end_ns.saturating_sub(r.intended_ns))),
        latency_p50_ms: ms(h.end_to_end.value_at_quantile(0.50) as f64),
        latency_p95_ms: ms(h.end_to_end.value_at_quantile(0.95) as f64),
        latency_p99_ms: ms(h.end_to_end.value_at_quantile(0.99) as f64),
        latency_max_ms: ms(h.end_to_end.max() as f64),
        latency_kind: match input.mode {
            Mode::Drain => "queueing-artefact-drain".into(),
            Mode::Live => "queueing-artefact-unpaced".into(),
            Mode::Paced => "open-loop-from-intended-time".into(),
        },
        queue_wait_p50_ms: ms(h.queue_wait.value_at_quantile(0.50) as f64),
        queue_wait_p99_ms: ms(h.queue_wait.value_at_quantile(0.99) as f64),
        service_mean_us: exact_mean(|r| r.end_ns.saturating_sub(r.start_ns)) / 1e3,
        service_p99_us: h.service.value_at_quantile(0.99) as f64 / 1e3,
        memory_rss_mb: usage.peak_rss_mb,
        memory_rss_steady_mb: usage.steady_rss_mb,
        worker_processes: usage.peak_processes,
        cpu_percent,
        completed,
        lost: input.task_count.saturating_sub(completed),
        duplicated: tally.duplicates,
        failed: tally.failed,
        foreign_records: tally.foreign,
        task_pids: pids.len() as u32,
        worker_stopped_gracefully: false,
        message_bytes: None,
        http_requests: None,
        paced_target_rate: input.producer.rate,
        producer_lateness_p99_ms: input.producer.lateness_p99_ms,
        producer_lateness_max_ms: input.producer.lateness_max_ms,
        api_calls: None,
        api_calls_per_task: None,
        error_rate: if input.task_count == 0 {
            0.0
        } else {
            (input.task_count.saturating_sub(completed) + tally.duplicates + tally.failed) as f64
                / input.task_count as f64
        },
        memory_growth_mb: usage.rss_growth_mb,
        queue_depth_max: None,
        queue_depth_growth: None,
        by_kind: None,
        records_unsent: tally.unsent,
        memory_pss_mb: usage.peak_pss_mb,
        stress_steps: None,
        producer_sockets_opened: input.producer.sockets_opened_in_window,
        measures: Default::default(),
    };
    (metrics, h)
}

/// A rate needs at least two completions: one task's "processing window" is its own
/// service time, and tasks/s over it says nothing about throughput (cold start).
fn is_rate(completed: u64) -> bool {
    completed >= 2
}

/// CPU% over the window needs two samples inside it; the sampler's fallback to samples
/// outside the window would report another period's CPU as this one's.
fn cpu_measured(samples: &[Sample], from_ns: u64, to_ns: u64) -> bool {
    samples
        .iter()
        .filter(|s| s.t_ns >= from_ns && s.t_ns <= to_ns)
        .count()
        >= 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::collector::TaskRecord;

    fn rec(seq: u64, intended_ms: u64, start_ms: u64, end_ms: u64) -> TaskRecord {
        let ns = 1_000_000;
        TaskRecord {
            seq,
            intended_ns: intended_ms * ns,
            start_ns: start_ms * ns,
            end_ns: end_ms * ns,
            pid: 7,
            ok: true,
        }
    }

    #[test]
    fn computes_rates_latencies_and_losses_from_records() {
        let tally = Tally {
            records: vec![
                rec(0, 0, 1000, 1001),
                rec(1, 10, 1500, 1502),
                rec(2, 20, 2000, 2003),
            ],
            duplicates: 1,
            repeats: vec![rec(2, 20, 2100, 2101)],
            foreign: 0,
            failed: 0,
            unsent: 0,
        };
        let input = MeasureInput {
            mode: Mode::Drain,
            task_count: 4,
            tally: &tally,
            producer: ProducerWindow {
                enqueue_start_ns: 0,
                enqueue_end_ns: 500_000_000,
                rate: None,
                lateness_p50_ms: None,
                lateness_p99_ms: None,
                lateness_max_ms: None,
                sockets_opened_in_window: Some(0),
            },
            worker_spawn_ns: 500_000_000,
            samples: &[],
        };
        let (m, h) = metrics(&input);
        assert_eq!(m.completed, 3);
        assert_eq!(m.lost, 1);
        assert_eq!(m.duplicated, 1);
        assert!(
            (m.enqueue_rate_per_sec - 8.0).abs() < 1e-9,
            "4 tasks in 0.5 s"
        );
        assert!((m.processing_time_seconds - 1.003).abs() < 1e-9);
        assert!((m.throughput_tasks_per_sec.unwrap() - 3.0 / 1.003).abs() < 1e-9);
        assert_eq!(
            m.cpu_percent, None,
            "no sample inside the window: not measured"
        );
        assert!((m.processing_time_from_spawn_seconds - 1.503).abs() < 1e-9);
        // end-to-end: 1001, 1492, 1983 ms
        assert!((m.latency_mean_ms - (1001.0 + 1492.0 + 1983.0) / 3.0).abs() < 1e-6);
        assert!(
            (m.latency_p50_ms - 1492.0).abs() / 1492.0 < 1e-3,
            "{}",
            m.latency_p50_ms
        );
        assert!((m.latency_max_ms - 1983.0).abs() / 1983.0 < 1e-3);
        assert!((m.service_mean_us - 2000.0).abs() < 1e-6);
        assert_eq!(h.end_to_end.len(), 3);
        assert_eq!(m.task_pids, 1);
        assert_eq!(m.latency_kind, "queueing-artefact-drain");
    }

    fn sample(t_ms: u64, cpu_seconds: f64) -> Sample {
        Sample {
            t_ns: t_ms * 1_000_000,
            processes: 1,
            rss_bytes: 50 << 20,
            pss_bytes: None,
            cpu_seconds,
        }
    }

    fn one_task_input<'a>(tally: &'a Tally, samples: &'a [Sample]) -> MeasureInput<'a> {
        MeasureInput {
            mode: Mode::Drain,
            task_count: tally.records.len() as u64,
            tally,
            producer: ProducerWindow {
                enqueue_start_ns: 0,
                enqueue_end_ns: 1_000_000,
                rate: None,
                lateness_p50_ms: None,
                lateness_p99_ms: None,
                lateness_max_ms: None,
                sockets_opened_in_window: Some(0),
            },
            worker_spawn_ns: 0,
            samples,
        }
    }

    #[test]
    fn a_one_task_run_reports_no_rate_and_a_short_window_no_cpu() {
        let tally = Tally {
            records: vec![rec(0, 0, 1000, 1001)],
            duplicates: 0,
            repeats: vec![],
            foreign: 0,
            failed: 0,
            unsent: 0,
        };
        // Samples before and after the 1 ms window only: the old fallback used them.
        let samples = [sample(500, 0.1), sample(2000, 0.9)];
        let (m, _) = metrics(&one_task_input(&tally, &samples));
        assert_eq!(m.throughput_tasks_per_sec, None, "one task is not a rate");
        assert!(m.throughput_from_spawn_tasks_per_sec.is_nan());
        assert_eq!(m.cpu_percent, None, "fewer than two samples in the window");
        let json = serde_json::to_value(&m).unwrap();
        assert!(json["throughput_tasks_per_sec"].is_null() && json["cpu_percent"].is_null());
    }

    #[test]
    fn cpu_is_measured_with_two_samples_in_the_window() {
        let tally = Tally {
            records: vec![rec(0, 0, 1000, 1500), rec(1, 0, 1000, 3000)],
            duplicates: 0,
            repeats: vec![],
            foreign: 0,
            failed: 0,
            unsent: 0,
        };
        let samples = [sample(1000, 1.0), sample(3000, 2.0)];
        let (m, _) = metrics(&one_task_input(&tally, &samples));
        assert!((m.cpu_percent.unwrap() - 50.0).abs() < 1e-9);
        assert!((m.throughput_tasks_per_sec.unwrap() - 1.0).abs() < 1e-9);
    }
}
