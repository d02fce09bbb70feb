//! Automatic open-loop rate sweep: find the highest rate a system sustains, then measure
//! latency at fractions of it (10% … 100%), so every system gets its own curve.
//!
//! The search: one unpaced live run gives a first estimate (what the worker finished while
//! the producer sent as fast as it could). Paced probes start there and step up or down
//! until one rate is sustained and another, above it, is not; then they bisect that gap.

use std::time::Duration;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::harness::Harness;
use crate::profile::Profile;
use crate::result::RunResult;
use crate::run::{self, RunRequest};
use crate::workloads::{Case, Mode};

/// While bracketing, an unsustainable probe is followed by one at this fraction of its
/// rate, a sustained one (with no failure yet) by one at `STEP_UP` times it.
pub const STEP_DOWN: f64 = 0.8;
pub const STEP_UP: f64 = 1.25;
/// A sustained rate finishes at least this share of the offered rate.
pub const MIN_ACHIEVED_SHARE: f64 = 0.95;
/// ... with the producer this close to its schedule (p99), or the rate was not offered.
pub const MAX_PRODUCER_LATENESS_MS: f64 = 100.0;
/// Probes after the first sustainable one, halving the gap to the last failed rate.
pub const REFINE_PROBES: u32 = 2;
/// Bracketing steps before giving up (1.25^8: about 6x the estimate, 0.8^8: a sixth).
pub const MAX_STEPS: u32 = 8;

/// Whether one paced probe kept up, and why not.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Probe {
    pub rate: f64,
    pub achieved_tasks_per_sec: f64,
    pub latency_p99_ms: f64,
    pub producer_lateness_p99_ms: Option<f64>,
    pub sustainable: bool,
    /// Empty when sustainable; else what failed.
    pub why: String,
}

/// The search for one system and variant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SweepOutcome {
    pub driver: String,
    pub system: String,
    /// Pool and concurrency, e.g. `asyncio-c10`.
    pub variant: String,
    /// Throughput of the unpaced live run the search started from.
    pub live_estimate: f64,
    pub probes: Vec<Probe>,
    /// The highest sustainable probe rate.
    pub max_sustainable_rate: f64,
    /// The rates measured afterwards (fractions of the maximum).
    pub rates: Vec<f64>,
}

/// Judges one paced run against its offered rate.
pub fn judge(result: &RunResult, rate: f64) -> Probe {
    let m = &result.metrics;
    let mut why = Vec::new();
    if m.lost > 0 || m.duplicated > 0 || m.failed > 0 {
        why.push(format!(
            "{} lost, {} duplicated, {} failed",
            m.lost, m.duplicated, m.failed
        ));
    }
    if let Some(late) = m
        .producer_lateness_p99_ms
        .filter(|l| *l > MAX_PRODUCER_LATENESS_MS)
    {
        why.push(format!(
            "the producer fell {late:.0} ms behind its schedule (p99)"
        ));
    }
    let achieved = m.throughput_tasks_per_sec.unwrap_or(0.0);
    if achieved < MIN_ACHIEVED_SHARE * rate {
        why.push(format!(
            "finished {achieved:.0} tasks/s of {rate:.0} offered"
        ));
    }
    if let Some(g) = m.queue_depth_growth.filter(|g| g.linear) {
        why.push(format!(
            "the queue grew linearly ({:.0} tasks/s, R² {:.2})",
            g.per_sec, g.r2
        ));
    }
    Probe {
        rate,
        achieved_tasks_per_sec: achieved,
        latency_p99_ms: m.latency_p99_ms,
        producer_lateness_p99_ms: m.producer_lateness_p99_ms,
        sustainable: why.is_empty(),
        why: why.join("; "),
    }
}

/// Rates at `fractions` of `max`, whole tasks per second, ascending, without repeats.
pub fn rates_at(max: f64, fractions: &[f64]) -> Vec<f64> {
    let mut rates: Vec<f64> = fractions
        .iter()
        .map(|f| (max * f).round().max(1.0))
        .collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    rates
}

/// A paced copy of `template` at `rate` for the profile's paced duration.
pub fn paced_case(template: &Case, rate: f64, profile: &Profile) -> Case {
    let mut case = template.clone().paced_at(rate);
    case.task_count = (rate * profile.throughput.paced_seconds).round().max(1.0) as u64;
    case
}

/// Searches the highest sustainable rate of `template`'s system and variant. Each run is
/// reported to `on_run` (for writing it and showing progress).
pub fn find_max(
    h: &Harness,
    template: &Case,
    profile: &Profile,
    on_run: &mut dyn FnMut(&str, &RunResult),
) -> Result<SweepOutcome> {
    let run = |case: &Case| -> Result<RunResult> {
        let request = RunRequest {
            case,
            profile_name: &profile.name,
            run_id: RunRequest::new_run_id(case, 0) + "-search",
            repetition: 0,
            warmup: true,
            order_seed: 0,
            position: 0,
            timeout: Duration::from_secs(profile.run_timeout_secs),
            stall: Duration::from_secs(profile.stall_timeout_secs),
            sample_interval: Duration::from_millis(profile.sample_interval_ms),
            extra_worker_env: Vec::new(),
        };
        Ok(run::run_once(h, &request, &mut |_| {})?.result)
    };
    let mut live = template.clone();
    live.mode = Mode::Live;
    live.rate = None;
    live.task_count = profile.throughput.task_count;
    let estimate = run(&live)?;
    on_run("live estimate", &estimate);
    let live_estimate = estimate
        .metrics
        .throughput_tasks_per_sec
        .unwrap_or(0.0)
        .round();

    let mut probes: Vec<Probe> = Vec::new();
    let mut probe = |rate: f64, probes: &mut Vec<Probe>| -> Result<bool> {
        let result = run(&paced_case(template, rate, profile))?;
        on_run(&format!("probe {rate:.0}/s"), &result);
        let judged = judge(&result, rate);
        let ok = judged.sustainable;
        probes.push(judged);
        Ok(ok)
    };
    // Bracket: from the estimate, step up while probes keep up, or down until one does.
    let mut rate = live_estimate.max(1.0);
    let mut best: Option<f64> = None;
    let mut failed_above: Option<f64> = None;
    for _ in 0..=MAX_STEPS {
        if probe(rate, &mut probes)? {
            best = Some(rate);
            if failed_above.is_some() {
                break;
            }
            rate = (rate * STEP_UP).round();
        } else {
            failed_above = Some(rate);
            if best.is_some() {
                break;
            }
            rate = (rate * STEP_DOWN).round().max(1.0);
        }
    }
    let Some(mut best) = best else {
        bail!(
            "{}: no sustainable rate between {live_estimate:.0} and {rate:.0} tasks/s; probes: {}",
            template.label(),
            probes
                .iter()
                .map(|p| format!("{:.0}/s ({})", p.rate, p.why))
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    for _ in 0..REFINE_PROBES {
        let Some(high) = failed_above else { break };
        let middle = ((best + high) / 2.0).round();
        if middle <= best || middle >= high {
            break;
        }
        if probe(middle, &mut probes)? {
            best = middle;
        } else {
            failed_above = Some(middle);
        }
    }
    Ok(SweepOutcome {
        driver: template.driver.name().into(),
        system: template.variant.system.name().into(),
        variant: template.variant.label(),
        live_estimate,
        probes,
        max_sustainable_rate: best,
        rates: rates_at(best, &profile.throughput.paced_fractions),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(throughput: f64, lateness: f64) -> RunResult {
        let text = include_str!("../../../fixtures/results/synthetic/runs/asynctasq-redis-throughput-asyncio-c10-drain-r0-synthetic.json");
        let mut r: RunResult = serde_json::from_str(text).unwrap();
        r.metrics.throughput_tasks_per_sec = Some(throughput);
        r.metrics.producer_lateness_p99_ms = Some(lateness);
        r
    }

    #[test]
    fn a_probe_is_sustained_only_when_it_finishes_what_was_offered_on_schedule() {
        assert!(judge(&synthetic(990.0, 2.0), 1000.0).sustainable);
        let slow = judge(&synthetic(700.0, 2.0), 1000.0);
        assert!(!slow.sustainable);
        assert_eq!(slow.why, "finished 700 tasks/s of 1000 offered");
        let late = judge(&synthetic(990.0, 450.0), 1000.0);
        assert!(late.why.contains("450 ms behind"), "{}", late.why);
    }

    #[test]
    fn rates_are_whole_ascending_and_distinct() {
        assert_eq!(
            rates_at(1234.0, &[1.0, 0.1, 0.5, 0.5]),
            vec![123.0, 617.0, 1234.0]
        );
        assert_eq!(rates_at(3.0, &[0.1, 0.2]), vec![1.0]);
    }
}
