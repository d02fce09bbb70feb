//! The mixed workload (Scenario 4): an exactly proportioned sequence of task kinds in a
//! seeded order, the same for every system, and the per-kind metrics of a run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cpu::Pbkdf2;
use super::io::HttpService;
use super::{Case, Finished, RunPart, Workload};
use crate::analysis::summary::GroupKey;
use crate::measure::collector::TaskRecord;
use crate::profile::Profile;
use crate::provision::brokers::Driver;
use crate::report;
use crate::result::{Configuration, Metrics, RunResult};
use crate::systems::{celery, System, Variant};

pub struct Mixed;

impl Workload for Mixed {
    fn name(&self) -> &'static str {
        "mixed"
    }

    /// AsyncTasQ (asyncio), Celery threads and Celery prefork at the same concurrency (Celery
    /// acking late: the same delivery semantics).
    /// Whether every system got the same sequence, and each kind's service time.
    fn report_section(&self, place: &report::Place) -> String {
        let mut md = String::new();
        report_of(&mut md, place.keys, place.groups);
        md
    }

    fn cases(&self, profile: &Profile, driver: Driver, _cpus: u32) -> Vec<Case> {
        let sizes = &profile.mixed;
        [
            Variant::new(System::ASYNCTASQ, "asyncio", sizes.concurrency),
            celery::acking_late("threads", sizes.concurrency),
            celery::acking_late("prefork", sizes.concurrency),
        ]
        .into_iter()
        .map(|variant| {
            let mut case = Case::new(
                self.name(),
                driver,
                variant,
                "mixed",
                sizes.task_count,
                profile,
            );
            case.http_latency_ms = Some(profile.io.latency_ms);
            case.pbkdf2_iterations = Some(profile.cpu.pbkdf2_iterations);
            case.mix = Some(sizes.spec());
            case
        })
        .collect()
    }

    /// Writes the seeded sequence for the producer and starts the mock HTTP server its I/O
    /// tasks call.
    fn start_run(&self, case: &Case, dir: &Path) -> Result<Box<dyn RunPart>> {
        let spec = case.mix.as_ref().context("a mixed case without its mix")?;
        let kinds = spec.sequence(case.task_count);
        let file = dir.join("mix.txt");
        write(&file, &kinds)?;
        let io = counts(&kinds).get(&Kind::Io).copied().unwrap_or(0);
        Ok(Box::new(MixedRun {
            http: HttpService::start(case, io)?,
            cpu: Pbkdf2 {
                iterations: case.pbkdf2_iterations,
            },
            file,
            kinds,
        }))
    }
}

struct MixedRun {
    http: HttpService,
    cpu: Pbkdf2,
    file: std::path::PathBuf,
    kinds: Vec<Kind>,
}

impl RunPart for MixedRun {
    fn task_env(&self) -> Vec<(String, String)> {
        let mut env = self.http.task_env();
        env.extend(self.cpu.task_env());
        env
    }

    fn producer_args(&self) -> Vec<String> {
        vec!["--mix".into(), self.file.display().to_string()]
    }

    fn record(&self, configuration: &mut Configuration) {
        configuration.mix_fingerprint = Some(fingerprint(&self.kinds));
    }

    fn finish(&self, run: &Finished, metrics: &mut Metrics) -> Vec<String> {
        metrics.by_kind = Some(by_kind(&self.kinds, &run.tally.records));
        self.http.check(metrics)
    }
}

/// What one task of the mix does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// One HTTP GET to the mock server with injected latency.
    Io,
    /// Parse and validate a 3.5 KB JSON document (microseconds).
    Light,
    /// pbkdf2-HMAC-SHA256 (tens of milliseconds).
    Heavy,
}

impl Kind {
    /// The letter in the sequence file the producer reads.
    pub fn letter(self) -> char {
        match self {
            Kind::Io => 'i',
            Kind::Light => 'l',
            Kind::Heavy => 'h',
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Io => "io",
            Kind::Light => "light_cpu",
            Kind::Heavy => "heavy_cpu",
        }
    }
}

/// Shares of each kind (percent, summing to 100) and the seed of their order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixSpec {
    pub io_percent: u32,
    pub light_percent: u32,
    pub heavy_percent: u32,
    pub seed: u64,
}

impl MixSpec {
    pub fn validate(&self) -> Result<()> {
        let sum = self.io_percent + self.light_percent + self.heavy_percent;
        if sum != 100 {
            bail!(
                "mixed: io_percent + light_percent + heavy_percent is {sum}; make them sum to 100"
            );
        }
        Ok(())
    }

    /// `n` kinds in exactly these proportions (rounded), shuffled with the seed: every
    /// system gets the same sequence for the same `n`.
    pub fn sequence(&self, n: u64) -> Vec<Kind> {
        let share = |percent: u32| (n * u64::from(percent) + 50) / 100;
        let io = share(self.io_percent).min(n);
        let light = share(self.light_percent).min(n - io);
        let mut kinds: Vec<Kind> = std::iter::repeat_n(Kind::Io, io as usize)
            .chain(std::iter::repeat_n(Kind::Light, light as usize))
            .chain(std::iter::repeat_n(Kind::Heavy, (n - io - light) as usize))
            .collect();
        kinds.shuffle(&mut rand::rngs::StdRng::seed_from_u64(self.seed));
        kinds
    }
}

/// How many of each kind a sequence holds.
pub fn counts(kinds: &[Kind]) -> BTreeMap<Kind, u64> {
    let mut counts = BTreeMap::new();
    for kind in kinds {
        *counts.entry(*kind).or_insert(0) += 1;
    }
    counts
}

/// First 16 hex digits of sha256 over the letters: two runs got the same sequence iff equal.
pub fn fingerprint(kinds: &[Kind]) -> String {
    let letters: String = kinds.iter().map(|k| k.letter()).collect();
    let digest = Sha256::digest(letters.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Writes the sequence for the producer: one letter per task, task `seq` at index `seq`.
pub fn write(path: &Path, kinds: &[Kind]) -> Result<()> {
    let letters: String = kinds.iter().map(|k| k.letter()).collect();
    std::fs::write(path, letters).with_context(|| format!("writing {}", path.display()))
}

/// One kind's share of a mixed run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KindMetrics {
    /// Tasks of this kind in the sequence.
    pub expected: u64,
    /// Distinct tasks of this kind that reported back.
    pub completed: u64,
    pub service_mean_ms: f64,
    pub service_p50_ms: f64,
    pub service_p99_ms: f64,
    /// Intended enqueue to end (a queueing artefact in drain runs).
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
}

/// Per-kind counts and service times of a run's records (task `seq` is `kinds[seq]`).
pub fn by_kind(kinds: &[Kind], records: &[TaskRecord]) -> BTreeMap<String, KindMetrics> {
    let mut out = BTreeMap::new();
    for (kind, expected) in counts(kinds) {
        let mine: Vec<&TaskRecord> = records
            .iter()
            .filter(|r| kinds.get(r.seq as usize) == Some(&kind))
            .collect();
        let mut service = Histogram::<u64>::new(3).expect("3 significant digits is valid");
        let mut latency = service.clone();
        for r in &mine {
            let _ = service.record(r.end_ns.saturating_sub(r.start_ns));
            let _ = latency.record(r.end_ns.saturating_sub(r.intended_ns));
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        let service_mean_ms = if mine.is_empty() {
            0.0
        } else {
            mine.iter()
                .map(|r| ms(r.end_ns.saturating_sub(r.start_ns)))
                .sum::<f64>()
                / mine.len() as f64
        };
        out.insert(
            kind.name().to_string(),
            KindMetrics {
                expected,
                completed: mine.len() as u64,
                service_mean_ms,
                service_p50_ms: ms(service.value_at_quantile(0.5)),
                service_p99_ms: ms(service.value_at_quantile(0.99)),
                latency_p50_ms: ms(latency.value_at_quantile(0.5)),
                latency_p99_ms: ms(latency.value_at_quantile(0.99)),
            },
        );
    }
    out
}

/// Mixed runs: whether every system got the same sequence, and each kind's service time.
fn report_of(md: &mut String, keys: &[&GroupKey], groups: &BTreeMap<GroupKey, Vec<&RunResult>>) {
    let runs: Vec<&RunResult> = keys
        .iter()
        .flat_map(|k| groups[*k].iter().copied())
        .collect();
    let mut fingerprints: Vec<(&str, u64)> = runs
        .iter()
        .filter_map(|r| {
            Some((
                r.configuration.mix_fingerprint.as_deref()?,
                r.configuration.task_count,
            ))
        })
        .collect();
    fingerprints.sort();
    fingerprints.dedup();
    let spec = runs.iter().find_map(|r| r.configuration.mix.as_ref());
    match (fingerprints.as_slice(), spec) {
        ([(print, count)], Some(spec)) => {
            let _ = writeln!(
                md,
                "\nEvery run got the same {count} tasks in the same order: {}% I/O, {}% light CPU, {}% heavy CPU, \
                 seed {} (sequence fingerprint `{print}`).",
                spec.io_percent, spec.light_percent, spec.heavy_percent, spec.seed
            );
        }
        _ => {
            let _ = writeln!(
                md,
                "\n**The runs did not all get the same sequence** ({} fingerprints): compare with care.",
                fingerprints.len()
            );
        }
    }
    let _ = writeln!(
        md,
        "\n| system | variant | kind | tasks per run | service p50 ms | service p99 ms |\n|---|---|---|---|---|---|"
    );
    for k in keys {
        let runs = &groups[*k];
        let kinds: Vec<String> = runs
            .iter()
            .filter_map(|r| r.metrics.by_kind.as_ref())
            .flat_map(|m| m.keys().cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for kind in kinds {
            let of = |f: fn(&crate::workloads::mixed::KindMetrics) -> f64| {
                let v: Vec<f64> = runs
                    .iter()
                    .filter_map(|r| r.metrics.by_kind.as_ref()?.get(&kind).map(f))
                    .collect();
                crate::analysis::stats::median(&v)
            };
            let _ = writeln!(
                md,
                "| {} | {} | {kind} | {} | {} | {} |",
                k.system,
                k.variant,
                report::num(of(|m| m.expected as f64), 0),
                report::num(of(|m| m.service_p50_ms), 2),
                report::num(of(|m| m.service_p99_ms), 2)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seed: u64) -> MixSpec {
        MixSpec {
            io_percent: 60,
            light_percent: 30,
            heavy_percent: 10,
            seed,
        }
    }

    #[test]
    fn proportions_are_exact_and_the_order_follows_the_seed() {
        let kinds = spec(7).sequence(20_000);
        let counts = counts(&kinds);
        assert_eq!(
            (
                counts[&Kind::Io],
                counts[&Kind::Light],
                counts[&Kind::Heavy]
            ),
            (12_000, 6_000, 2_000)
        );
        assert_eq!(kinds, spec(7).sequence(20_000), "same seed, same sequence");
        assert_ne!(
            fingerprint(&kinds),
            fingerprint(&spec(8).sequence(20_000)),
            "another seed, another order"
        );
        // Shuffled, not blocks: the first 1,000 hold every kind.
        assert_eq!(super::counts(&kinds[..1000]).len(), 3);
        let odd = spec(1).sequence(7);
        assert_eq!(odd.len(), 7);
    }

    #[test]
    fn shares_must_sum_to_100() {
        let mut bad = spec(1);
        bad.heavy_percent = 20;
        assert!(bad.validate().unwrap_err().to_string().contains("is 110"));
        assert!(spec(1).validate().is_ok());
    }

    #[test]
    fn per_kind_metrics_count_by_sequence_position() {
        let kinds = vec![Kind::Io, Kind::Heavy, Kind::Io];
        let rec = |seq, service_ms: u64| TaskRecord {
            seq,
            intended_ns: 0,
            start_ns: 1_000_000,
            end_ns: 1_000_000 + service_ms * 1_000_000,
            pid: 1,
            ok: true,
        };
        let m = by_kind(&kinds, &[rec(0, 100), rec(1, 40), rec(2, 102)]);
        assert_eq!((m["io"].expected, m["io"].completed), (2, 2));
        assert!((m["io"].service_mean_ms - 101.0).abs() < 1e-9);
        assert_eq!((m["heavy_cpu"].expected, m["heavy_cpu"].completed), (1, 1));
        assert!(!m.contains_key("light_cpu"));
    }
}
