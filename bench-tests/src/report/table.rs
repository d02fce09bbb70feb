//! The console summary: one row per case, medians over measured repetitions.

use std::fmt::Write as _;

use serde::Serialize;

use crate::result::RunResult;

#[derive(Debug, Clone, Serialize)]
pub struct SummaryRow {
    pub system: String,
    pub driver: String,
    pub scenario: String,
    pub variant: String,
    pub mode: String,
    pub repetitions: usize,
    pub enqueue_per_sec: f64,
    pub tasks_per_sec: f64,
    /// Worker spawn to the last task's end (a one-task run: the cold start).
    pub first_task_from_spawn_s: f64,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub latency_p99_ms: f64,
    pub memory_rss_mb: f64,
    pub cpu_percent: f64,
    /// Totals over repetitions, not medians: one lost task anywhere shows.
    pub lost: u64,
    pub duplicated: u64,
}

fn median(values: Vec<f64>) -> f64 {
    crate::analysis::stats::median(&values)
}

/// Medians over each group of measured (non-warm-up) results, grouped as the summary does.
pub fn summarize(results: &[RunResult]) -> Vec<SummaryRow> {
    crate::analysis::summary::grouped(results)
        .into_iter()
        .map(|(key, group)| {
            let m = |f: fn(&RunResult) -> f64| median(group.iter().map(|r| f(r)).collect());
            SummaryRow {
                repetitions: group.len(),
                enqueue_per_sec: m(|r| r.metrics.enqueue_rate_per_sec),
                tasks_per_sec: m(|r| r.metrics.throughput_tasks_per_sec),
                first_task_from_spawn_s: m(|r| r.metrics.processing_time_from_spawn_seconds),
                latency_p50_ms: m(|r| r.metrics.latency_p50_ms),
                latency_p95_ms: m(|r| r.metrics.latency_p95_ms),
                latency_p99_ms: m(|r| r.metrics.latency_p99_ms),
                memory_rss_mb: m(|r| r.metrics.memory_rss_mb),
                cpu_percent: m(|r| r.metrics.cpu_percent),
                lost: group.iter().map(|r| r.metrics.lost).sum(),
                duplicated: group.iter().map(|r| r.metrics.duplicated).sum(),
                system: key.system,
                driver: key.driver,
                scenario: key.scenario,
                variant: key.variant,
                mode: key.mode,
            }
        })
        .collect()
}

/// A fixed-width table for the terminal.
pub fn render(rows: &[SummaryRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:<10} {:<9} {:<17} {:<6} {:>4} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6} {:>5} {:>4}",
        "scenario", "system", "driver", "variant", "mode", "reps", "enqueue/s", "tasks/s", "spawn-end s", "p50 ms", "p95 ms", "p99 ms",
        "RSS MB", "CPU %", "lost", "dup"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<10} {:<10} {:<9} {:<17} {:<6} {:>4} {:>9.0} {:>9.1} {:>8.2} {:>8.1} {:>8.1} {:>8.1} {:>7.1} {:>6.0} {:>5} {:>4}",
            r.scenario, r.system, r.driver, r.variant, r.mode, r.repetitions, r.enqueue_per_sec, r.tasks_per_sec, r.first_task_from_spawn_s,
            r.latency_p50_ms, r.latency_p95_ms, r.latency_p99_ms, r.memory_rss_mb, r.cpu_percent, r.lost, r.duplicated
        );
    }
    out.push_str("spawn-end s = worker spawn to the end of its last task (for a one-task cold-start run: time to first task).\n");
    out.push_str("latency = intended enqueue -> task end: measured latency in paced runs; a queueing artefact in drain/live runs.\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }
}
