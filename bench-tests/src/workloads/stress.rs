//! Scenario 6, stress: saturation as a property of the system. One worker pool (fresh
//! at the start, the same through the whole ramp) is offered each step's rate open loop
//! (`profile.stress.rates`, `step_seconds` each, back to back); queue depth is read at a
//! fixed interval over the whole run, the final drain included.
//!
//! Per step, from the tasks' own records and the producer's report: the rate the producer
//! actually offered (its sends inside the step's window), the completion rate (tasks that
//! ended inside the window), the depth's slope over the window, latency from intended time
//! and worker memory. The saturation rule is [`is_saturated`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};

use super::{Case, Finished, Mode, RunPart, Workload};
use crate::measure::collector::TaskRecord;
use crate::measure::depth::{self, Fit};
use crate::profile::Profile;
use crate::provision::brokers::Driver;
use crate::result::{DepthPoint, Metrics, RunResult, TimePoint};
use crate::systems::{celery, System, Variant};

/// Noise bound of a step: a pool that keeps up completes within this share of what was
/// offered in the window. What it absorbs: the backlog a pool that keeps up holds at the
/// window's edges (latency × rate: at ci, p99 ~100 ms × 2,500/s over a 3 s window is 3%).
/// The producer is "short" of its target by the same bound.
pub const TOLERANCE: f64 = 0.05;
/// The depth's growth over the window must be significant: slope over its standard error
/// (3 is p < 0.01 one-sided from 6 readings on) ...
pub const DEPTH_T_MIN: f64 = 3.0;
/// ... and sustained: a line explains at least half of the depth's variance, which a
/// stall's bump (a rise then a fall) or noise around a level does not.
pub const DEPTH_R2_MIN: f64 = 0.5;
/// Before the first step the producer offers its rate for this long, unmeasured: the
/// worker starts meanwhile (1–2 s here), so no measured step holds its start-up backlog.
pub const LEAD_IN_SECONDS: f64 = 3.0;

/// A step is saturated when the pool completed less than it was offered beyond the noise
/// bound AND the backlog grew over the step, significantly and steadily: completion <
/// offered × (1 − TOLERANCE), and the depth's slope is > 0 with t >= DEPTH_T_MIN and R² >=
/// DEPTH_R2_MIN. Both must hold: the first counts tasks (from the records), the second
/// reads the broker, so neither an edge effect in the counts nor a transient bump in the
/// depth can call it alone. Without depth readings (fewer than four in the window, or a
/// broker whose depth is not read) the deficit decides.
/// "Offered" is what the producer achieved, never its target: a producer that cannot offer
/// a rate is flagged (`producer_limited`), not mistaken for a saturated pool.
pub fn is_saturated(offered_rate: f64, completion_rate: f64, depth: Option<&Fit>) -> bool {
    let short = completion_rate < offered_rate * (1.0 - TOLERANCE);
    let growing =
        depth.is_none_or(|f| f.per_sec > 0.0 && f.t >= DEPTH_T_MIN && f.r2 >= DEPTH_R2_MIN);
    short && growing
}

pub struct Stress;

impl Workload for Stress {
    fn name(&self) -> &'static str {
        "stress"
    }

    /// One ramp per system, AsyncTasQ asyncio and Celery threads at the same concurrency,
    /// each one continuous paced run of the lead-in and all the steps.
    /// Each ramp's steps, its saturation point and its highest sustained step.
    fn report_section(&self, place: &crate::report::Place) -> String {
        let mut md = String::new();
        ramps_report(&mut md, &place.file.stress, place.driver);
        md
    }

    fn cases(&self, profile: &Profile, driver: Driver, _cpus: u32) -> Vec<Case> {
        let sizes = &profile.stress;
        let first = sizes.rates[0];
        let lead_in = (first, ((first * LEAD_IN_SECONDS).round() as u64).max(1));
        let schedule: Vec<(f64, u64)> = std::iter::once(lead_in)
            .chain(sizes.rates.iter().copied().zip(sizes.counts()))
            .collect();
        let total = schedule.iter().map(|s| s.1).sum();
        [
            Variant::new(System::ASYNCTASQ, "asyncio", sizes.concurrency),
            celery::acking_late("threads", sizes.concurrency),
        ]
        .into_iter()
        .map(|variant| {
            let mut case = Case::new(self.name(), driver, variant, "noop", total, profile);
            case.mode = Mode::Paced;
            case.schedule = Some(schedule.clone());
            case
        })
        .collect()
    }

    fn start_run(&self, case: &Case, dir: &Path) -> Result<Box<dyn RunPart>> {
        let schedule = case
            .schedule
            .clone()
            .ok_or_else(|| anyhow!("stress case {} has no schedule", case.label()))?;
        Ok(Box::new(StressRun {
            schedule,
            report: dir.join("schedule.json"),
        }))
    }
}

/// One ramp: the producer paces the schedule and reports each step's window to `report`.
struct StressRun {
    schedule: Vec<(f64, u64)>,
    report: PathBuf,
}

impl RunPart for StressRun {
    fn producer_args(&self) -> Vec<String> {
        vec![
            "--schedule".into(),
            schedule_arg(&self.schedule),
            "--schedule-report".into(),
            self.report.display().to_string(),
        ]
    }

    fn finish(&self, run: &Finished, metrics: &mut Metrics) -> Vec<String> {
        let offered = match read_report(&self.report) {
            Ok(offered) => offered,
            Err(e) => return vec![format!("stress: {e:#}")],
        };
        let planned: Vec<(f64, u64)> = offered.iter().map(|o| (o.rate, o.count)).collect();
        if planned != self.schedule {
            return vec![format!(
                "stress: the producer paced {planned:?}, not the schedule {:?}",
                self.schedule
            )];
        }
        let mut errors = Vec::new();
        let first_start = run.tally.records.iter().map(|r| r.start_ns).min();
        if let (Some(start), Some(ramp)) = (first_start, offered.get(1)) {
            if start > ramp.start_ns {
                errors.push(format!(
                    "stress: the worker ran its first task {:.1} s after worker spawn, after the lead-in of {LEAD_IN_SECONDS} s; the first step holds its start-up backlog",
                    (start as f64 - run.worker_spawn_ns as f64) / 1e9
                ));
            }
        }
        let mut all = steps(
            &offered,
            &run.tally.records,
            run.queue_depth,
            run.timeseries,
            run.worker_spawn_ns,
        );
        all.remove(0);
        metrics.stress_steps = Some(all);
        errors
    }
}

/// `--schedule` of produce.py: `rate:count,rate:count`.
fn schedule_arg(schedule: &[(f64, u64)]) -> String {
    schedule
        .iter()
        .map(|(rate, count)| format!("{rate}:{count}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn read_report(path: &Path) -> Result<Vec<OfferedStep>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("the producer wrote no schedule report {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("unreadable {}", path.display()))
}

/// One step as the producer paced it (its `--schedule-report`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OfferedStep {
    pub rate: f64,
    pub count: u64,
    /// The step's window of intended times, unix ns.
    pub start_ns: u64,
    pub end_ns: u64,
    /// Sends (of any step's tasks) whose actual time fell inside the window.
    pub sent_in_window: u64,
    /// How late the step's own tasks were sent against their intended times.
    pub lateness_p99_ms: f64,
    pub lateness_max_ms: f64,
}

/// One step of one run's ramp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StressStep {
    /// Scheduled rate, tasks/s, and the step's tasks.
    pub target_rate: f64,
    pub tasks: u64,
    /// The window of the step's intended times: start, seconds from worker spawn, and length.
    pub from_s: f64,
    pub seconds: f64,
    /// What the producer achieved: its sends inside the window / seconds.
    pub offered_rate: f64,
    pub producer_lateness_p99_ms: f64,
    pub producer_lateness_max_ms: f64,
    /// The producer fell short of the target beyond TOLERANCE: a limit of the producer.
    pub producer_limited: bool,
    /// Tasks that ended inside the window / seconds.
    pub completion_rate: f64,
    /// Line through the depth readings inside the window (None: fewer than 4 readings).
    pub depth: Option<Fit>,
    /// Intended time to end, over the step's own tasks (None: none completed).
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// Worker RSS at the window's last sample, and last minus first sample in the window.
    pub rss_mb: Option<f64>,
    pub rss_growth_mb: Option<f64>,
    /// The same for PSS (shared pages split between processes; None: not measured).
    #[serde(default)]
    pub pss_mb: Option<f64>,
    #[serde(default)]
    pub pss_growth_mb: Option<f64>,
    pub saturated: bool,
}

/// Each step's figures from the producer's report, the records (unix ns), the depth
/// readings and memory samples (ms from `spawn_ns`).
pub fn steps(
    offered: &[OfferedStep],
    records: &[TaskRecord],
    depth: &[DepthPoint],
    timeseries: &[TimePoint],
    spawn_ns: u64,
) -> Vec<StressStep> {
    let mut ends: Vec<u64> = records.iter().map(|r| r.end_ns).collect();
    ends.sort_unstable();
    let ended_in = |from: u64, to: u64| {
        (ends.partition_point(|&e| e < to) - ends.partition_point(|&e| e < from)) as u64
    };
    let latencies = latencies_by_step(offered, records);
    let ms_since_spawn = |ns: u64| (ns as f64 - spawn_ns as f64) / 1e6;
    offered
        .iter()
        .zip(latencies)
        .map(|(o, mut latency)| {
            let seconds = (o.end_ns.saturating_sub(o.start_ns)) as f64 / 1e9;
            let (from_ms, to_ms) = (ms_since_spawn(o.start_ns), ms_since_spawn(o.end_ns));
            let offered_rate = o.sent_in_window as f64 / seconds;
            let completion_rate = ended_in(o.start_ns, o.end_ns) as f64 / seconds;
            let depth = depth::fit(depth, from_ms, to_ms);
            let (rss_mb, rss_growth_mb) = memory(timeseries, from_ms, to_ms, |p| Some(p.rss_mb));
            let (pss_mb, pss_growth_mb) = memory(timeseries, from_ms, to_ms, |p| p.pss_mb);
            latency.sort_by(f64::total_cmp);
            StressStep {
                target_rate: o.rate,
                tasks: o.count,
                from_s: from_ms / 1000.0,
                seconds,
                offered_rate,
                producer_lateness_p99_ms: o.lateness_p99_ms,
                producer_lateness_max_ms: o.lateness_max_ms,
                producer_limited: offered_rate < o.rate * (1.0 - TOLERANCE),
                completion_rate,
                depth,
                latency_p50_ms: quantile(&latency, 0.50),
                latency_p99_ms: quantile(&latency, 0.99),
                rss_mb,
                rss_growth_mb,
                pss_mb,
                pss_growth_mb,
                saturated: is_saturated(offered_rate, completion_rate, depth.as_ref()),
            }
        })
        .collect()
}

/// End-to-end latency (ms from intended time) of each step's own tasks (by seq).
fn latencies_by_step(offered: &[OfferedStep], records: &[TaskRecord]) -> Vec<Vec<f64>> {
    let mut firsts = Vec::with_capacity(offered.len());
    let mut next = 0;
    for o in offered {
        firsts.push(next);
        next += o.count;
    }
    let mut by_step = vec![Vec::new(); offered.len()];
    for r in records.iter().filter(|r| r.seq < next) {
        let step = firsts.partition_point(|&f| f <= r.seq) - 1;
        by_step[step].push(r.end_ns.saturating_sub(r.intended_ns) as f64 / 1e6);
    }
    by_step
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    Some(sorted[((q * sorted.len() as f64) as usize).min(last)])
}

/// Worker memory at the window's last sample, and its growth over the window.
fn memory(
    timeseries: &[TimePoint],
    from_ms: f64,
    to_ms: f64,
    mb: fn(&TimePoint) -> Option<f64>,
) -> (Option<f64>, Option<f64>) {
    let inside: Vec<f64> = timeseries
        .iter()
        .filter(|p| p.t_ms >= from_ms && p.t_ms <= to_ms)
        .filter_map(mb)
        .collect();
    let growth = (inside.len() >= 2).then(|| inside[inside.len() - 1] - inside[0]);
    (inside.last().copied(), growth)
}

/// One step of a ramp: medians over its repetitions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Step {
    pub target_rate: f64,
    pub n: usize,
    pub offered_rate: f64,
    pub completion_rate: f64,
    pub depth_per_sec: Option<f64>,
    pub depth_r2: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub producer_lateness_p99_ms: f64,
    pub rss_mb: Option<f64>,
    pub rss_growth_mb: Option<f64>,
    #[serde(default)]
    pub pss_mb: Option<f64>,
    #[serde(default)]
    pub pss_growth_mb: Option<f64>,
    /// Repetitions that called the step saturated, and whose producer fell short.
    pub saturated_runs: usize,
    pub producer_limited_runs: usize,
}

impl Step {
    fn saturated(&self) -> bool {
        self.saturated_runs * 2 > self.n
    }

    fn sustained(&self) -> bool {
        self.saturated_runs * 2 < self.n
    }

    /// The median offered rate fell short of the target beyond TOLERANCE.
    pub fn producer_short(&self) -> bool {
        self.offered_rate < self.target_rate * (1.0 - TOLERANCE)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ramp {
    pub driver: String,
    pub system: String,
    /// Pool and concurrency, e.g. `asyncio-c20` (the ramp's task total stripped).
    pub variant: String,
    pub runs: usize,
    pub steps: Vec<Step>,
    /// Target rate of the first step most repetitions call saturated.
    pub saturation_rate: Option<f64>,
    /// The highest step below it that most repetitions sustained (steps between the two
    /// split the repetitions).
    pub highest_sustained_rate: Option<f64>,
    /// Target rate of the first step whose median offered rate fell short of it: from
    /// there the ramp offers what the producer can, not the target.
    pub producer_short_from: Option<f64>,
    /// The highest offered and completion rates of any step (medians).
    pub max_offered_rate: f64,
    pub max_completion_rate: f64,
    /// The worst repetition's (lost + duplicated + failed) / tasks.
    pub error_rate: f64,
}

fn median(values: Vec<f64>) -> Option<f64> {
    Some(crate::analysis::stats::median(&values)).filter(|m| !m.is_nan())
}

/// The ramps of the stress runs among `results` (other scenarios, and stress runs without
/// per-step figures, are ignored).
pub fn ramps(results: &[RunResult]) -> Vec<Ramp> {
    type RampKey = (String, String, String);
    let mut by_ramp: BTreeMap<RampKey, Vec<&RunResult>> = BTreeMap::new();
    for r in results
        .iter()
        .filter(|r| r.configuration.scenario == "stress" && r.metrics.stress_steps.is_some())
    {
        let c = &r.configuration;
        let base = match c.variant.rsplit_once("-n") {
            Some((base, total)) if total.parse::<u64>().is_ok() => base,
            _ => &c.variant,
        };
        by_ramp
            .entry((c.driver.clone(), c.system.clone(), base.to_string()))
            .or_default()
            .push(r);
    }
    by_ramp
        .into_iter()
        .map(|((driver, system, variant), runs)| ramp(driver, system, variant, &runs))
        .collect()
}

fn ramp(driver: String, system: String, variant: String, runs: &[&RunResult]) -> Ramp {
    let per_run: Vec<&Vec<StressStep>> = runs
        .iter()
        .filter_map(|r| r.metrics.stress_steps.as_ref())
        .collect();
    let count = per_run.iter().map(|s| s.len()).max().unwrap_or(0);
    let steps: Vec<Step> = (0..count)
        .map(|k| summarise(per_run.iter().filter_map(|s| s.get(k)).collect()))
        .collect();
    let first_saturated = steps.iter().position(Step::saturated);
    // Sustained: most repetitions kept up (a split step is neither).
    let before = first_saturated.unwrap_or(steps.len());
    let sustained = steps[..before].iter().rposition(Step::sustained);
    let top = |f: fn(&Step) -> f64| steps.iter().map(f).fold(0.0, f64::max);
    Ramp {
        driver,
        system,
        variant,
        runs: runs.len(),
        saturation_rate: first_saturated.map(|k| steps[k].target_rate),
        highest_sustained_rate: sustained.map(|k| steps[k].target_rate),
        producer_short_from: steps
            .iter()
            .find(|s| s.producer_short())
            .map(|s| s.target_rate),
        max_offered_rate: top(|s| s.offered_rate),
        max_completion_rate: top(|s| s.completion_rate),
        steps,
        error_rate: runs
            .iter()
            .map(|r| r.metrics.error_rate)
            .fold(0.0, f64::max),
    }
}

impl Ramp {
    /// The step of `target_rate`.
    pub fn step(&self, target_rate: f64) -> Option<&Step> {
        self.steps.iter().find(|s| s.target_rate == target_rate)
    }
}

/// One step over the repetitions that reached it.
fn summarise(steps: Vec<&StressStep>) -> Step {
    let med = |f: fn(&StressStep) -> f64| median(steps.iter().map(|s| f(s)).collect());
    let opt =
        |f: fn(&StressStep) -> Option<f64>| median(steps.iter().filter_map(|s| f(s)).collect());
    Step {
        target_rate: steps[0].target_rate,
        n: steps.len(),
        offered_rate: med(|s| s.offered_rate).unwrap_or(0.0),
        completion_rate: med(|s| s.completion_rate).unwrap_or(0.0),
        depth_per_sec: opt(|s| s.depth.map(|d| d.per_sec)),
        depth_r2: opt(|s| s.depth.map(|d| d.r2)),
        latency_p50_ms: opt(|s| s.latency_p50_ms),
        latency_p99_ms: opt(|s| s.latency_p99_ms),
        producer_lateness_p99_ms: med(|s| s.producer_lateness_p99_ms).unwrap_or(0.0),
        rss_mb: opt(|s| s.rss_mb),
        rss_growth_mb: opt(|s| s.rss_growth_mb),
        pss_mb: opt(|s| s.pss_mb),
        pss_growth_mb: opt(|s| s.pss_growth_mb),
        saturated_runs: steps.iter().filter(|s| s.saturated).count(),
        producer_limited_runs: steps.iter().filter(|s| s.producer_limited).count(),
    }
}

/// Stress ramps: each step's figures, the saturation point and the highest sustained step.
fn ramps_report(md: &mut String, ramps: &[Ramp], driver: &str) {
    let opt = |v: Option<f64>, digits: usize| v.map_or("–".into(), |v| format!("{v:.digits$}"));
    for ramp in ramps.iter().filter(|r| r.driver == driver) {
        let _ = writeln!(
            md,
            "\n### Ramp: {} {} (one worker pool through every step, n = {})\n",
            ramp.system, ramp.variant, ramp.runs
        );
        let _ = writeln!(md, "| target tasks/s | offered tasks/s | completed tasks/s | depth slope tasks/s (R²) | latency p50 / p99 ms | producer lateness p99 ms | RSS MB at step end | RSS growth MB | PSS MB at step end | saturated in | producer short in |");
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
        for s in &ramp.steps {
            let slope = match (s.depth_per_sec, s.depth_r2) {
                (Some(g), Some(r2)) => format!("{g:+.0} ({r2:.2})"),
                _ => "–".into(),
            };
            let _ = writeln!(
                md,
                "| {:.0} | {:.0} | {:.0} | {slope} | {} / {} | {:.1} | {} | {} | {} | {}/{} | {}/{} |",
                s.target_rate,
                s.offered_rate,
                s.completion_rate,
                opt(s.latency_p50_ms, 1),
                opt(s.latency_p99_ms, 1),
                s.producer_lateness_p99_ms,
                opt(s.rss_mb, 1),
                opt(s.rss_growth_mb, 1),
                opt(s.pss_mb, 1),
                s.saturated_runs,
                s.n,
                s.producer_limited_runs,
                s.n,
            );
        }
        let at = |rate: Option<f64>| {
            rate.and_then(|r| ramp.step(r)).map(|s| {
                let short = if s.producer_short() {
                    ", the producer short of its target"
                } else {
                    ""
                };
                format!(
                    "the {:.0} tasks/s step (offered {:.0}/s, completed {:.0}/s{short})",
                    s.target_rate, s.offered_rate, s.completion_rate
                )
            })
        };
        let sustained = at(ramp.highest_sustained_rate)
            .unwrap_or_else(|| "none (the first step already saturated)".into());
        let _ = match (at(ramp.saturation_rate), ramp.producer_short_from) {
            (Some(saturated), _) => writeln!(
                md,
                "\n**Saturation point: {saturated}**. Highest sustained: {sustained}.{}",
                if split_between(ramp) {
                    " The repetitions split on the steps between."
                } else {
                    ""
                }
            ),
            (None, Some(short)) => writeln!(
                md,
                "\n**No saturation within what the producer could offer**: from the {short:.0} tasks/s step it fell short, \
                 offering at most {:.0}/s; the pool kept up, completing up to {:.0}/s. Highest sustained: {sustained}.",
                ramp.max_offered_rate, ramp.max_completion_rate
            ),
            (None, None) => writeln!(
                md,
                "\n**No step saturated**: the pool's capacity lies above the ramp. Highest sustained: {sustained}."
            ),
        };
        let _ = writeln!(
            md,
            "A step is saturated when {} {} completed less than the producer offered in the step's window by more than {:.0}% \
             and the queue depth grew over the step with a slope t-statistic of at least {DEPTH_T_MIN} and R² of at least {DEPTH_R2_MIN} \
             (saturated in most repetitions). \
             \"Offered\" is what the producer achieved; \"producer short\" marks a step it could not offer within {:.0}% of the target.",
            ramp.system,
            ramp.variant,
            TOLERANCE * 100.0,
            TOLERANCE * 100.0
        );
        if ramp.error_rate > 0.0 {
            let _ = writeln!(
                md,
                "The worst repetition lost, duplicated or failed {:.4} of its tasks.",
                ramp.error_rate
            );
        }
    }
}

/// Whether steps between the highest sustained and the saturated one split the repetitions.
fn split_between(ramp: &Ramp) -> bool {
    let index =
        |rate: Option<f64>| rate.and_then(|r| ramp.steps.iter().position(|s| s.target_rate == r));
    match (
        index(ramp.highest_sustained_rate),
        index(ramp.saturation_rate),
    ) {
        (Some(low), Some(high)) => high > low + 1,
        (None, Some(high)) => high > 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    /// Worker spawn on the simulated clock (unix ns); the producer starts 1 s later.
    const SPAWN: u64 = 1_000_000_000_000;
    const DEPTH_EVERY: u64 = 250 * MS;

    /// A simulated run: a producer that needs 1/producer_max s per send, and one worker
    /// that runs tasks in order at `capacity` per second.
    struct Sim {
        offered: Vec<OfferedStep>,
        records: Vec<TaskRecord>,
        depth: Vec<DepthPoint>,
        /// The producer's window (first and last send).
        sending: (u64, u64),
    }

    /// Each task's send time: due, or when the producer is done with the previous one.
    fn send_times(due: &[u64], producer_max: f64) -> Vec<u64> {
        let cost = (1e9 / producer_max) as u64;
        let mut done = 0;
        due.iter()
            .map(|&d| {
                done = d.max(done) + cost;
                done
            })
            .collect()
    }

    fn run_worker(due: &[u64], sends: &[u64], capacity: f64) -> Vec<TaskRecord> {
        let mut free = 0.0_f64;
        sends
            .iter()
            .zip(due)
            .enumerate()
            .map(|(seq, (&sent, &intended))| {
                let start = free.max(sent as f64);
                free = start + 1e9 / capacity;
                TaskRecord {
                    seq: seq as u64,
                    intended_ns: intended,
                    start_ns: start as u64,
                    end_ns: free as u64,
                    pid: 1,
                    ok: true,
                }
            })
            .collect()
    }

    /// Depth (sent, not yet started) every 250 ms from worker spawn until the last task.
    fn read_depth(sends: &[u64], records: &[TaskRecord]) -> Vec<DepthPoint> {
        let mut starts: Vec<u64> = records.iter().map(|r| r.start_ns).collect();
        starts.sort_unstable();
        let last = records.iter().map(|r| r.end_ns).max().unwrap_or(SPAWN);
        (0..)
            .map(|k| SPAWN + k * DEPTH_EVERY)
            .take_while(|&t| t <= last)
            .map(|t| DepthPoint {
                t_ms: (t - SPAWN) as f64 / 1e6,
                depth: (sends.partition_point(|&s| s <= t) - starts.partition_point(|&s| s <= t))
                    as u64,
            })
            .collect()
    }

    /// The new method's run: the schedule paced open loop, back to back.
    fn ramp_run(schedule: &[(f64, u64)], producer_max: f64, capacity: f64) -> Sim {
        let start = SPAWN + 1000 * MS;
        let (mut due, mut windows, mut offset) = (Vec::new(), Vec::new(), 0);
        for &(rate, count) in schedule {
            due.extend((0..count).map(|j| start + offset + (j as f64 * 1e9 / rate) as u64));
            let end = offset + (count as f64 * 1e9 / rate) as u64;
            windows.push((start + offset, start + end));
            offset = end;
        }
        let sends = send_times(&due, producer_max);
        let records = run_worker(&due, &sends, capacity);
        let mut first = 0;
        let offered = schedule
            .iter()
            .zip(&windows)
            .map(|(&(rate, count), &(a, b))| {
                let mut late: Vec<u64> = (first..first + count as usize)
                    .map(|i| sends[i] - due[i])
                    .collect();
                late.sort_unstable();
                first += count as usize;
                OfferedStep {
                    rate,
                    count,
                    start_ns: a,
                    end_ns: b,
                    sent_in_window: sends.iter().filter(|&&s| s >= a && s < b).count() as u64,
                    lateness_p99_ms: late[late.len() * 99 / 100] as f64 / 1e6,
                    lateness_max_ms: *late.last().unwrap() as f64 / 1e6,
                }
            })
            .collect();
        let depth = read_depth(&sends, &records);
        Sim {
            sending: (sends[0], *sends.last().unwrap()),
            offered,
            records,
            depth,
        }
    }

    fn new_method(sim: &Sim) -> Vec<StressStep> {
        steps(&sim.offered, &sim.records, &sim.depth, &[], SPAWN)
    }

    fn first_saturated(steps: &[StressStep]) -> Option<f64> {
        steps.iter().find(|s| s.saturated).map(|s| s.target_rate)
    }

    /// The old method: each step a separate run with a fresh worker, a burst of the step's
    /// tasks as fast as the producer can, and depth growth read only while it sends.
    fn old_method(schedule: &[(f64, u64)], producer_max: f64, capacity: f64) -> Option<f64> {
        schedule.iter().find_map(|&(rate, count)| {
            let due = vec![SPAWN + 1000 * MS; count as usize];
            let sends = send_times(&due, producer_max);
            let records = run_worker(&due, &sends, capacity);
            let series = read_depth(&sends, &records);
            let ms = |t: u64| (t - SPAWN) as f64 / 1e6;
            let window = (ms(sends[0]), ms(*sends.last().unwrap()));
            depth::growth(&series, window.0, window.1, count)
                .is_some_and(|g| g.linear)
                .then_some(rate)
        })
    }

    /// Capacity 1,000 tasks/s; steps of 2 s at a quarter of it up to 2.5 times it.
    const CAPACITY: f64 = 1000.0;
    const RAMP: [(f64, u64); 5] = [
        (250.0, 500),
        (500.0, 1000),
        (800.0, 1600),
        (1500.0, 3000),
        (2500.0, 5000),
    ];
    const FAST_PRODUCER: f64 = 4000.0;
    const SLOW_PRODUCER: f64 = 1600.0;

    #[test]
    fn fast_and_slow_producers_offering_the_same_rates_saturate_at_the_same_step() {
        let fast = new_method(&ramp_run(&RAMP, FAST_PRODUCER, CAPACITY));
        let slow = new_method(&ramp_run(&RAMP, SLOW_PRODUCER, CAPACITY));
        assert_eq!(first_saturated(&fast), Some(1500.0), "{fast:#?}");
        assert_eq!(first_saturated(&slow), first_saturated(&fast), "{slow:#?}");
        // The slow producer cannot offer the last step: flagged, and judged on what it sent.
        assert!(!fast[4].producer_limited && slow[4].producer_limited);
        assert!(
            (slow[4].offered_rate - SLOW_PRODUCER).abs() < 50.0,
            "{:?}",
            slow[4]
        );
        assert!(slow[4].saturated, "1,600/s offered to a pool of 1,000/s");
    }

    #[test]
    fn the_old_burst_method_made_the_saturation_step_depend_on_the_producer() {
        // The artefact the test above guards against: the old method, given the same steps,
        // capacity and producers, calls the slow producer's ramp saturated at 800 tasks/s
        // (below capacity) and the fast one's only at 2,500 tasks/s.
        let fast = old_method(&RAMP, FAST_PRODUCER, CAPACITY);
        let slow = old_method(&RAMP, SLOW_PRODUCER, CAPACITY);
        assert_eq!((fast, slow), (Some(2500.0), Some(800.0)));
        assert_ne!(fast, slow);
    }

    #[test]
    fn steps_below_capacity_are_not_saturated_and_their_figures_match_the_schedule() {
        let sim = ramp_run(&RAMP, FAST_PRODUCER, CAPACITY);
        let steps = new_method(&sim);
        for s in &steps[..3] {
            assert!(!s.saturated && !s.producer_limited, "{s:?}");
            assert!(
                (s.offered_rate - s.target_rate).abs() / s.target_rate < 0.01,
                "{s:?}"
            );
            assert!((s.completion_rate - s.target_rate).abs() / s.target_rate < 0.01);
            assert!(s.latency_p99_ms.unwrap() < 5.0, "{s:?}");
            assert!(s.depth.unwrap().per_sec.abs() < 5.0, "{s:?}");
        }
        let over = &steps[3];
        assert!((over.completion_rate - CAPACITY).abs() < 20.0, "{over:?}");
        let slope = over.depth.unwrap().per_sec;
        assert!((slope - 500.0).abs() < 50.0, "offered - capacity: {slope}");
        assert!((steps[0].from_s - 1.0).abs() < 1e-6 && (steps[0].seconds - 2.0).abs() < 1e-6);
        // The depth is read through the drain, after the producer's last send.
        let after = sim
            .depth
            .iter()
            .filter(|p| p.t_ms > (sim.sending.1 - SPAWN) as f64 / 1e6);
        assert!(after.count() > 4);
    }

    #[test]
    fn a_producer_that_cannot_offer_the_rate_is_flagged_not_saturated() {
        let steps = new_method(&ramp_run(
            &[(500.0, 1000), (4000.0, 8000)],
            1000.0,
            10_000.0,
        ));
        assert!(
            steps[1].producer_limited && !steps[1].saturated,
            "{:?}",
            steps[1]
        );
        assert!(steps[1].offered_rate < 1100.0);
        assert!(steps[1].producer_lateness_p99_ms > 1000.0);
    }

    #[test]
    fn the_rule_needs_a_deficit_beyond_the_tolerance_and_a_significant_growth() {
        let growing = Fit {
            points: 12,
            per_sec: 300.0,
            r2: 0.98,
            t: 25.0,
        };
        let flat = Fit {
            per_sec: 2.0,
            r2: 0.1,
            t: 1.1,
            ..growing
        };
        assert!(is_saturated(1000.0, 700.0, Some(&growing)));
        assert!(!is_saturated(1000.0, 950.0, Some(&growing)), "within 10%");
        assert!(
            !is_saturated(1000.0, 700.0, Some(&flat)),
            "no backlog growth"
        );
        assert!(
            is_saturated(1000.0, 700.0, None),
            "no depth: the deficit decides"
        );
        assert!(!is_saturated(0.0, 0.0, None));
    }

    fn run(system: &str, saturated_at: &[Option<usize>]) -> Vec<RunResult> {
        let text = include_str!("../../../fixtures/results/synthetic/runs/asynctasq-redis-throughput-asyncio-c10-drain-r0-synthetic.json");
        saturated_at
            .iter()
            .map(|first| {
                let mut sim = new_method(&ramp_run(&RAMP, FAST_PRODUCER, CAPACITY));
                for (k, s) in sim.iter_mut().enumerate() {
                    s.saturated = first.is_some_and(|f| k >= f);
                }
                let mut r: RunResult = serde_json::from_str(text).unwrap();
                r.configuration.scenario = "stress".into();
                r.configuration.system = system.into();
                r.configuration.variant = "threads-c20-n11100".into();
                r.metrics.stress_steps = Some(sim);
                r
            })
            .collect()
    }

    #[test]
    fn a_ramp_takes_the_first_step_most_repetitions_saturate() {
        let results = [
            run("celery", &[Some(2), Some(3), Some(3)]),
            run("split", &[Some(2), Some(3)]),
            run("asynctasq", &[None, None]),
        ]
        .concat();
        let ramps = ramps(&results);
        assert_eq!(ramps.len(), 3);
        let (asynctasq, celery, split) = (&ramps[0], &ramps[1], &ramps[2]);
        assert_eq!(split.saturation_rate, Some(1500.0));
        assert_eq!(
            split.highest_sustained_rate,
            Some(500.0),
            "800: 1 of 2 saturated"
        );
        assert_eq!(celery.variant, "threads-c20");
        assert_eq!((celery.runs, celery.steps.len()), (3, 5));
        assert_eq!(celery.steps[2].saturated_runs, 1, "1 of 3 is not most");
        assert_eq!(celery.saturation_rate, Some(1500.0));
        assert_eq!(celery.highest_sustained_rate, Some(800.0));
        assert_eq!(asynctasq.saturation_rate, None);
        assert_eq!(asynctasq.highest_sustained_rate, Some(2500.0));
        assert_eq!(asynctasq.producer_short_from, None);
        assert!((asynctasq.max_offered_rate - 2500.0).abs() < 25.0);
        assert!((asynctasq.max_completion_rate - CAPACITY).abs() < 20.0);
        assert!((celery.steps[0].offered_rate - 250.0).abs() < 5.0);
    }
}
