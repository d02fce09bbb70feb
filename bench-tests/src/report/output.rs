//! Writes a run directory's raw data as it lands: `runs/*.json` (one per repetition,
//! warm-ups under `runs/warmup/`) and `histograms/*.hgrm`. Summary, report and charts are
//! computed from these by `report`. Every file is written atomically (a temporary file
//! renamed into place), so a reader never sees half a result. The profile that ran is
//! written beside them (`profile.toml`), so a report regenerates its criteria from the
//! directory alone.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

use crate::result::RunResult;

pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// Creates `root/<id>/` with its subdirectories.
    pub fn create(root: &Path, id: &str) -> Result<RunDir> {
        let path = root.join(id);
        for sub in ["runs/warmup", "histograms"] {
            std::fs::create_dir_all(path.join(sub))
                .with_context(|| format!("creating {}", path.join(sub).display()))?;
        }
        Ok(RunDir { path })
    }

    /// The profile as it ran (CLI overrides included): `profile.toml`.
    pub fn write_profile(&self, profile: &crate::profile::Profile) -> Result<()> {
        let text = toml::to_string(profile).context("serializing the profile")?;
        write_atomic(&self.path.join(PROFILE_FILE), text.as_bytes())
    }

    pub fn write_run(&self, result: &RunResult) -> Result<PathBuf> {
        let dir = if result.configuration.warmup {
            "runs/warmup"
        } else {
            "runs"
        };
        let file = self
            .path
            .join(dir)
            .join(format!("{}.json", result.benchmark_id));
        write_atomic(
            &file,
            (serde_json::to_string_pretty(result)? + "\n").as_bytes(),
        )?;
        Ok(file)
    }

    /// One broker ceiling measurement (`ceilings/<driver>-r<rep>.json`).
    pub fn write_ceiling(
        &self,
        ceiling: &crate::measure::ceiling::Ceiling,
        repetition: u32,
    ) -> Result<()> {
        let dir = self.path.join("ceilings");
        std::fs::create_dir_all(&dir)?;
        let file = dir.join(format!("{}-r{repetition}.json", ceiling.driver));
        write_atomic(
            &file,
            (serde_json::to_string_pretty(ceiling)? + "\n").as_bytes(),
        )?;
        Ok(())
    }

    /// One automatic rate search (`sweeps/<system>-<driver>-<variant>.json`).
    pub fn write_sweep(&self, sweep: &crate::run::sweep::SweepOutcome) -> Result<()> {
        let dir = self.path.join("sweeps");
        std::fs::create_dir_all(&dir)?;
        let file = dir.join(format!(
            "{}-{}-{}.json",
            sweep.system, sweep.driver, sweep.variant
        ));
        write_atomic(
            &file,
            (serde_json::to_string_pretty(sweep)? + "\n").as_bytes(),
        )?;
        Ok(())
    }

    /// End-to-end latency distribution in HdrHistogram's percentile format (values in ms).
    pub fn write_histogram(&self, name: &str, histogram: &Histogram<u64>) -> Result<()> {
        let file = self.path.join("histograms").join(format!("{name}.hgrm"));
        write_atomic(&file, percentile_distribution(histogram, 1e6).as_bytes())?;
        Ok(())
    }
}

/// The name of the profile file in a run directory.
pub const PROFILE_FILE: &str = "profile.toml";

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))
}

/// The text `HdrHistogram.outputPercentileDistribution` writes, loadable by the standard
/// plotters; `scale` divides recorded values (1e6: ns to ms).
pub fn percentile_distribution(h: &Histogram<u64>, scale: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value = h.highest_equivalent(v.value_iterated_to()) as f64 / scale;
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value:12.3} {q:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10}",);
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / scale,
        h.stdev() / scale
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / scale,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        h.distinct_values()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_distribution_has_hdr_shape() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 1_000_000).unwrap();
        }
        let text = percentile_distribution(&h, 1e6);
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
        let last_data = text
            .lines()
            .rfind(|l| !l.starts_with('#') && !l.trim().is_empty())
            .unwrap();
        assert!(
            last_data.contains("1.000000000000") && last_data.contains("1000"),
            "{last_data}"
        );
        assert!(
            text.contains("#[Max     =     1000.000, Total count    =         1000]")
                || text.contains("Total count    =         1000")
        );
    }
}
