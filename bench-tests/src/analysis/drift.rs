//! Soak statistics: the memory slope over a long run and the drift of a metric between the
//! first and the last window.
//!
//! Pure functions. Memory samples from a soak are strongly autocorrelated (RSS moves in steps
//! and stays there), so a plain least-squares CI would be far too narrow and call every wobble
//! a leak. The slope's CI is therefore widened with the effective sample size from the
//! residuals' lag-1 autocorrelation (the AR(1) approximation, as in climate-trend analysis:
//! n_eff = n (1 - r1) / (1 + r1)).

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};
use statrs::statistics::Statistics;

/// Fewest samples after the warm-up for a slope: below this r1 and the residual spread are
/// too noisy for the CI to mean anything.
pub const MIN_POINTS: usize = 10;

/// A drift ratio whose whole 95% CI lies within 1 ± this is called "stable".
pub const STABLE_TOLERANCE: f64 = 0.05;

/// The memory slope of a soak after its warm-up.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Slope {
    /// Ordinary least-squares slope of MB over time, in MB per hour.
    pub mb_per_hour: f64,
    /// 95% CI of the slope, Student t with n_eff - 2 df and the standard error inflated by
    /// sqrt(n / n_eff) for autocorrelation.
    pub ci95_low: f64,
    pub ci95_high: f64,
    /// Samples used (after the warm-up).
    pub n: usize,
    /// Effective sample size n (1 - r1) / (1 + r1), clamped to [3, n].
    pub n_eff: f64,
    /// Lag-1 autocorrelation of the residuals (0 when the residuals have no spread).
    pub r1: f64,
    /// Smallest slope (MB/h) this duration and noise detect at 95% two-sided with 80% power:
    /// (t_0.975 + t_0.80) × SE, same df and inflated SE as the CI. Larger than the CI
    /// half-width, which only detects a slope of that size half the time.
    pub min_detectable_mb_per_hour: f64,
}

/// Slope of memory (MB) over time (s), after dropping the samples taken in the first
/// `warmup_s` seconds counted from the first sample (start-up allocations, caches filling
/// are not a leak). Points are sorted by time first, since r1 needs time order.
/// None with fewer than [`MIN_POINTS`] points left or no time span among them.
pub fn slope(points: &[(f64, f64)], warmup_s: f64) -> Option<Slope> {
    let t0 = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let mut kept: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|p| p.0 - t0 >= warmup_s)
        .collect();
    let n = kept.len();
    if n < MIN_POINTS {
        return None;
    }
    kept.sort_by(|a, b| a.0.total_cmp(&b.0));
    let nf = n as f64;
    let mt = kept.iter().map(|p| p.0).sum::<f64>() / nf;
    let my = kept.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = kept.iter().map(|p| (p.0 - mt).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = kept.iter().map(|p| (p.0 - mt) * (p.1 - my)).sum();
    let b = sxy / sxx;
    let a = my - b * mt;
    let resid: Vec<f64> = kept.iter().map(|p| p.1 - (a + b * p.0)).collect();
    let ssr: f64 = resid.iter().map(|e| e * e).sum();
    // OLS residuals have mean zero, so r1 is the lag-1 sum over the total sum of squares.
    let r1 = if ssr > 0.0 {
        resid.windows(2).map(|w| w[0] * w[1]).sum::<f64>() / ssr
    } else {
        0.0
    };
    let n_eff = (nf * (1.0 - r1) / (1.0 + r1)).clamp(3.0, nf);
    // Naive OLS SE of the slope, then inflated: the variance of a mean-like statistic grows
    // by n / n_eff under AR(1) noise.
    let se_naive = (ssr / (nf - 2.0) / sxx).sqrt();
    let se = se_naive * (nf / n_eff).sqrt() * 3600.0;
    let t = StudentsT::new(0.0, 1.0, n_eff - 2.0).expect("n_eff >= 3 gives df >= 1");
    let half = t.inverse_cdf(0.975) * se;
    let mb_per_hour = b * 3600.0;
    Some(Slope {
        mb_per_hour,
        ci95_low: mb_per_hour - half,
        ci95_high: mb_per_hour + half,
        n,
        n_eff,
        r1,
        min_detectable_mb_per_hour: (t.inverse_cdf(0.975) + t.inverse_cdf(0.80)) * se,
    })
}

/// The leak verdict against a threshold in MB/h: "leak" when the whole CI is above it,
/// "no leak" when the whole CI is below it, else "inconclusive" (the run was too short or
/// too noisy to tell; see [`Slope::min_detectable_mb_per_hour`]).
pub fn verdict(slope: &Slope, threshold_mb_per_hour: f64) -> &'static str {
    if slope.ci95_low > threshold_mb_per_hour {
        "leak"
    } else if slope.ci95_high < threshold_mb_per_hour {
        "no leak"
    } else {
        "inconclusive"
    }
}

/// A metric's last window against its first (throughput or latency per sample).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Drift {
    /// mean(last) / mean(first).
    pub ratio: f64,
    /// 95% CI of the ratio; see [`drift`].
    pub ci95_low: f64,
    pub ci95_high: f64,
    pub n_first: usize,
    pub n_last: usize,
    /// "rising" or "falling" when the CI excludes 1; "stable" when it includes 1 and lies
    /// within 1 ± [`STABLE_TOLERANCE`]; else "no detectable drift" (too noisy to tell).
    pub verdict: String,
}

/// Ratio of means last/first with a Welch 95% CI taken on the log ratio (delta method:
/// relative variance v/(n m²) per side, Welch–Satterthwaite df), so that both windows'
/// uncertainty counts and the CI stays positive. stats.rs's bootstrap is of medians and
/// its Welch helper gives only a p-value, so neither fits. Samples within a window are
/// treated as independent. None with fewer than 2 samples on a side or a mean that is
/// not positive.
pub fn drift(first: &[f64], last: &[f64]) -> Option<Drift> {
    let (n1, n2) = (first.len(), last.len());
    if n1 < 2 || n2 < 2 {
        return None;
    }
    let (m1, m2) = (first.iter().mean(), last.iter().mean());
    if !(m1 > 0.0 && m2 > 0.0) {
        return None;
    }
    let ratio = m2 / m1;
    let r1 = first.iter().variance() / (n1 as f64 * m1 * m1);
    let r2 = last.iter().variance() / (n2 as f64 * m2 * m2);
    let se2 = r1 + r2;
    let (ci95_low, ci95_high) = if se2 == 0.0 {
        (ratio, ratio)
    } else {
        let df = se2 * se2 / (r1 * r1 / (n1 as f64 - 1.0) + r2 * r2 / (n2 as f64 - 1.0));
        let t = StudentsT::new(0.0, 1.0, df)
            .expect("finite positive degrees of freedom")
            .inverse_cdf(0.975);
        let f = (t * se2.sqrt()).exp();
        (ratio / f, ratio * f)
    };
    let verdict = if ci95_low > 1.0 {
        "rising"
    } else if ci95_high < 1.0 {
        "falling"
    } else if ci95_low >= 1.0 - STABLE_TOLERANCE && ci95_high <= 1.0 + STABLE_TOLERANCE {
        "stable"
    } else {
        "no detectable drift"
    };
    Some(Drift {
        ratio,
        ci95_low,
        ci95_high,
        n_first: n1,
        n_last: n2,
        verdict: verdict.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Standard normal by Box–Muller (rand 0.8 has no Normal without rand_distr).
    fn gauss(rng: &mut StdRng) -> f64 {
        let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]: ln is finite
        let u2: f64 = rng.gen();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// `secs` samples at 1 s: base + mb_per_hour × t + noise.
    fn series(secs: usize, mb_per_hour: f64, noise: &[f64]) -> Vec<(f64, f64)> {
        (0..secs)
            .map(|i| {
                let t = i as f64;
                (t, 200.0 + mb_per_hour * t / 3600.0 + noise[i])
            })
            .collect()
    }

    fn white(seed: u64, n: usize, sd: f64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n).map(|_| sd * gauss(&mut rng)).collect()
    }

    fn ar1(seed: u64, n: usize, phi: f64, sd: f64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut x = 0.0;
        (0..n)
            .map(|_| {
                x = phi * x + sd * gauss(&mut rng);
                x
            })
            .collect()
    }

    const TWO_HOURS: usize = 7200;

    #[test]
    fn flat_white_noise_is_no_leak() {
        let pts = series(TWO_HOURS, 0.0, &white(1, TWO_HOURS, 1.0));
        let s = slope(&pts, 0.0).unwrap();
        assert!(s.ci95_low < 0.0 && 0.0 < s.ci95_high, "{s:?}");
        assert!(s.r1.abs() < 0.05, "white noise r1 {}", s.r1);
        assert!(s.min_detectable_mb_per_hour > s.ci95_high - s.mb_per_hour);
        assert_eq!(verdict(&s, 2.0 * s.min_detectable_mb_per_hour), "no leak");
        assert_eq!(verdict(&s, 0.0), "inconclusive");
    }

    #[test]
    fn linear_leak_is_recovered() {
        let pts = series(TWO_HOURS, 5.0, &white(2, TWO_HOURS, 1.0));
        let s = slope(&pts, 0.0).unwrap();
        assert_eq!(s.n, TWO_HOURS);
        assert!(s.ci95_low <= 5.0 && 5.0 <= s.ci95_high, "{s:?}");
        assert!((s.mb_per_hour - 5.0).abs() < 0.5, "{s:?}");
        assert_eq!(verdict(&s, 1.0), "leak");
    }

    #[test]
    fn ar1_noise_widens_the_ci() {
        let noise = ar1(3, TWO_HOURS, 0.9, 1.0);
        let pts = series(TWO_HOURS, 0.0, &noise);
        let s = slope(&pts, 0.0).unwrap();
        assert!((s.r1 - 0.9).abs() < 0.05, "r1 {}", s.r1);
        // Naive OLS CI, computed independently: t with n - 2 df, no inflation.
        let n = pts.len() as f64;
        let mt = pts.iter().map(|p| p.0).sum::<f64>() / n;
        let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = pts.iter().map(|p| (p.0 - mt).powi(2)).sum();
        let b = pts.iter().map(|p| (p.0 - mt) * (p.1 - my)).sum::<f64>() / sxx;
        let ssr: f64 = pts
            .iter()
            .map(|p| (p.1 - my - b * (p.0 - mt)).powi(2))
            .sum();
        let se = (ssr / (n - 2.0) / sxx).sqrt() * 3600.0;
        let t = StudentsT::new(0.0, 1.0, n - 2.0)
            .unwrap()
            .inverse_cdf(0.975);
        let naive_width = 2.0 * t * se;
        let width = s.ci95_high - s.ci95_low;
        assert!((s.mb_per_hour - b * 3600.0).abs() < 1e-9);
        // sqrt((1 + 0.9) / (1 - 0.9)) ≈ 4.4 times wider.
        assert!(width > 3.5 * naive_width, "{width} vs naive {naive_width}");
        assert!(s.n_eff < n / 10.0, "n_eff {}", s.n_eff);
    }

    #[test]
    fn too_few_points_or_no_span_is_none() {
        let pts: Vec<(f64, f64)> = (0..9).map(|i| (i as f64, 100.0)).collect();
        assert!(slope(&pts, 0.0).is_none());
        // 20 points, but the warm-up leaves 9.
        let pts: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, i as f64)).collect();
        assert!(slope(&pts, 11.0).is_none());
        assert!(slope(&pts, 10.0).is_some());
        let same_t: Vec<(f64, f64)> = (0..20).map(|i| (5.0, i as f64)).collect();
        assert!(slope(&same_t, 0.0).is_none());
        assert!(slope(&[], 0.0).is_none());
    }

    #[test]
    fn warmup_is_excluded() {
        let warm = 600;
        let mut pts = series(TWO_HOURS, 0.0, &white(4, TWO_HOURS, 1.0));
        // A 200 MB ramp during the warm-up, from 0 up to the plateau at 200 MB.
        for (i, p) in pts.iter_mut().take(warm).enumerate() {
            p.1 = 200.0 * i as f64 / warm as f64;
        }
        let with = slope(&pts, warm as f64).unwrap();
        let plateau = slope(&pts[warm..], 0.0).unwrap();
        assert_eq!(with, plateau);
        assert_eq!(with.n, TWO_HOURS - warm);
        assert!(with.ci95_low < 0.0 && 0.0 < with.ci95_high, "{with:?}");
        let without = slope(&pts, 0.0).unwrap();
        assert!(without.mb_per_hour > 10.0, "{without:?}");
    }

    #[test]
    fn unsorted_points_give_the_same_slope() {
        let pts = series(100, 5.0, &white(5, 100, 1.0));
        let mut rev = pts.clone();
        rev.reverse();
        assert_eq!(slope(&pts, 10.0), slope(&rev, 10.0));
    }

    #[test]
    fn drift_verdicts() {
        let base: Vec<f64> = white(6, 300, 10.0).iter().map(|x| 1000.0 + x).collect();
        let same: Vec<f64> = white(7, 300, 10.0).iter().map(|x| 1000.0 + x).collect();
        let up: Vec<f64> = same.iter().map(|x| x * 1.2).collect();
        let down: Vec<f64> = same.iter().map(|x| x * 0.8).collect();

        let d = drift(&base, &same).unwrap();
        assert!(d.ci95_low < 1.0 && 1.0 < d.ci95_high, "{d:?}");
        assert_eq!(d.verdict, "stable");

        let d = drift(&base, &up).unwrap();
        assert!(d.ci95_low <= 1.2 && 1.2 <= d.ci95_high, "{d:?}");
        assert_eq!(d.verdict, "rising");
        assert_eq!(drift(&base, &down).unwrap().verdict, "falling");

        // Very noisy, few samples: the CI includes 1 but also ±5%.
        let noisy_a = [500.0, 1500.0, 900.0];
        let noisy_b = [1400.0, 600.0, 1000.0];
        assert_eq!(
            drift(&noisy_a, &noisy_b).unwrap().verdict,
            "no detectable drift"
        );

        assert!(drift(&[1.0], &[1.0, 2.0]).is_none());
        assert!(drift(&[0.0, 0.0], &[1.0, 2.0]).is_none());
        let c = drift(&[2.0, 2.0], &[2.0, 2.0]).unwrap();
        assert_eq!((c.ratio, c.ci95_low, c.ci95_high), (1.0, 1.0, 1.0));
        assert_eq!(c.verdict, "stable");
    }
}
