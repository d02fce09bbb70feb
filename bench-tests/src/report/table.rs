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

/// Medians over the valid runs of each group of measured (non-warm-up) results, grouped
/// as the summary does (NaN: not measured); lost and duplicated count every run.
pub fn summarize(results: &[RunResult]) -> Vec<SummaryRow> {
    crate::analysis::summary::grouped(results)
        .into_iter()
        .map(|(key, all)| {
            let group: Vec<&RunResult> = all
                .iter()
                .copied()
                .filter(|r| crate::analysis::summary::validity(r).is_ok())
                .collect();
            let m = |f: fn(&RunResult) -> f64| {
                median(
                    group
                        .iter()
                        .map(|r| f(r))
                        .filter(|v| v.is_finite())
                        .collect(),
                )
            };
            SummaryRow {
                repetitions: group.len(),
                enqueue_per_sec: m(|r| r.metrics.enqueue_rate_per_sec),
                tasks_per_sec: m(|r| r.metrics.throughput_tasks_per_sec.unwrap_or(f64::NAN)),
                first_task_from_spawn_s: m(|r| r.metrics.processing_time_from_spawn_seconds),
                latency_p50_ms: m(|r| r.metrics.latency_p50_ms),
                latency_p95_ms: m(|r| r.metrics.latency_p95_ms),
                latency_p99_ms: m(|r| r.metrics.latency_p99_ms),
                memory_rss_mb: m(|r| r.metrics.memory_rss_mb),
                cpu_percent: m(|r| r.metrics.cpu_percent.unwrap_or(f64::NAN)),
                lost: all.iter().map(|r| r.metrics.lost).sum(),
                duplicated: all.iter().map(|r| r.metrics.duplicated).sum(),
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
            "{:<10} {:<10} {:<9} {:<17} {:<6} {:>4} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6} {:>5} {:>4}",
            r.scenario, r.system, r.driver, r.variant, r.mode, r.repetitions, cell(r.enqueue_per_sec, 0), cell(r.tasks_per_sec, 1),
            cell(r.first_task_from_spawn_s, 2), cell(r.latency_p50_ms, 1), cell(r.latency_p95_ms, 1), cell(r.latency_p99_ms, 1),
            cell(r.memory_rss_mb, 1), cell(r.cpu_percent, 0), r.lost, r.duplicated
        );
    }
    out.push_str("reps = valid runs (exact, no failed task, no error); – = not measured.\n");
    out.push_str("spawn-end s = worker spawn to the end of its last task (for a one-task cold-start run: time to first task).\n");
    out.push_str("latency = intended enqueue -> task end: measured latency in paced runs; a queueing artefact in drain/live runs.\n");
    out
}

/// A number with `digits` decimals, or "–" when there is none.
fn cell(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "–".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_statistics_print_a_dash_not_nan() {
        assert_eq!(cell(f64::NAN, 1), "–");
        assert_eq!(cell(2.25, 1), "2.2");
        let row = SummaryRow {
            system: "asynctasq".into(),
            driver: "redis".into(),
            scenario: "coldstart".into(),
            variant: "asyncio-c1".into(),
            mode: "drain".into(),
            repetitions: 1,
            enqueue_per_sec: 10.0,
            tasks_per_sec: f64::NAN,
            first_task_from_spawn_s: 1.5,
            latency_p50_ms: 1.0,
            latency_p95_ms: 1.0,
            latency_p99_ms: 1.0,
            memory_rss_mb: 50.0,
            cpu_percent: f64::NAN,
            lost: 0,
            duplicated: 0,
        };
        let text = render(&[row]);
        assert!(!text.contains("NaN") && text.contains('–'), "{text}");
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }
}
