//! Statistics over repetitions: per-group description and A/B comparison.
//!
//! Pure functions on `&[f64]`. Distributions come from `statrs` (Student t, normal);
//! the bootstrap uses a seeded `StdRng` so results are reproducible. Inputs are assumed
//! finite (no NaN); order does not matter except for the outlier indices, which point
//! into the input as given.
//!
//! Conventions (checked against numpy/scipy in the tests):
//! - percentiles use linear interpolation between order statistics (Hyndman–Fan type 7,
//!   numpy's default), also for the quartiles of the Tukey fences and the bootstrap CI;
//! - standard deviation is the sample one (n - 1);
//! - the 95% CI of the mean is Student t with n - 1 degrees of freedom (`scipy.stats.t.interval`);
//! - Welch's t-test is two-sided (`scipy.stats.ttest_ind(a, b, equal_var=False)`);
//! - Mann-Whitney U is two-sided, normal approximation with tie and continuity corrections
//!   (`scipy.stats.mannwhitneyu(a, b, alternative='two-sided', method='asymptotic')`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
use statrs::statistics::Statistics;

/// Statistics of one group's values over repetitions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Describe {
    pub n: usize,
    pub mean: f64,
    pub median: f64,
    /// Sample standard deviation (n - 1); NaN when n < 2.
    pub stddev: f64,
    pub min: f64,
    pub max: f64,
    /// Percentiles across runs, linear interpolation (type 7, numpy's default).
    pub p95: f64,
    pub p99: f64,
    /// 95% CI of the mean, Student t with n - 1 df; equal to the mean when n < 2
    /// (and when every value is the same).
    pub ci95_low: f64,
    pub ci95_high: f64,
    /// Tukey fences: Q1 - 1.5 IQR and Q3 + 1.5 IQR.
    pub fence_low: f64,
    pub fence_high: f64,
    /// Indices (into the input) of values strictly outside the fences. They are reported,
    /// never removed: every statistic above includes them.
    pub outliers: Vec<usize>,
}

/// Describes one group. With no values every number is NaN and there are no outliers.
pub fn describe(values: &[f64]) -> Describe {
    let n = values.len();
    if n == 0 {
        return Describe {
            n: 0,
            mean: f64::NAN,
            median: f64::NAN,
            stddev: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
            p95: f64::NAN,
            p99: f64::NAN,
            ci95_low: f64::NAN,
            ci95_high: f64::NAN,
            fence_low: f64::NAN,
            fence_high: f64::NAN,
            outliers: Vec::new(),
        };
    }
    let sorted = sorted_copy(values);
    let mean = values.iter().mean();
    let stddev = if n < 2 {
        f64::NAN
    } else {
        values.iter().std_dev()
    };
    let (ci95_low, ci95_high) = mean_ci95(mean, stddev, n);
    let q1 = percentile_sorted(&sorted, 25.0);
    let q3 = percentile_sorted(&sorted, 75.0);
    let iqr = q3 - q1;
    let fence_low = q1 - 1.5 * iqr;
    let fence_high = q3 + 1.5 * iqr;
    let outliers = values
        .iter()
        .enumerate()
        .filter(|(_, &v)| v < fence_low || v > fence_high)
        .map(|(i, _)| i)
        .collect();
    Describe {
        n,
        mean,
        median: percentile_sorted(&sorted, 50.0),
        stddev,
        min: sorted[0],
        max: sorted[n - 1],
        p95: percentile_sorted(&sorted, 95.0),
        p99: percentile_sorted(&sorted, 99.0),
        ci95_low,
        ci95_high,
        fence_low,
        fence_high,
        outliers,
    }
}

/// Comparison of system A against system B on one metric.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Compare {
    /// median(a) / median(b).
    pub ratio: f64,
    /// Percentile bootstrap 95% CI of the ratio: each side resampled independently with
    /// replacement, `resamples` times, from a `StdRng` seeded with the given seed.
    pub ratio_ci95_low: f64,
    pub ratio_ci95_high: f64,
    /// Two-sided Welch t-test. Both sides with zero variance: 0.0 when the means differ
    /// (the samples differ surely), 1.0 when they are the same constant.
    pub welch_p: f64,
    /// Two-sided Mann-Whitney U, normal approximation, tie and continuity corrections.
    /// 1.0 when every value of both sides is the same.
    pub mann_whitney_p: f64,
    /// (mean(a) - mean(b)) / pooled sample sd. Pooled sd of zero: 0.0 for equal means,
    /// ±infinity otherwise.
    pub cohens_d: f64,
    /// Both p-values below 0.05.
    pub significant: bool,
    /// One line for the report; see [`compare`].
    pub verdict: String,
}

/// Which direction of a metric is better. CPU% has none that holds across workloads (less
/// CPU per task is cheaper, more CPU on a CPU-bound workload is the pool using the cores),
/// so its comparisons give the difference without calling either side better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Better {
    Higher,
    Lower,
    Neither,
}

/// The significance level of every test and of Holm's correction.
pub const ALPHA: f64 = 0.05;

/// Compares A against B.
///
/// `better` says which direction wins (higher for throughput, lower for latency or RSS); it
/// selects the wording "faster than" (higher) or "better than" (lower); with `Neither` a
/// significant difference reads `"a 1.30x the value of b"`. The decision p-value is the larger
/// of Welch's and Mann-Whitney's (both must be below [`ALPHA`]); see [`verdict`] for the
/// wording. With fewer than two repetitions on either side the p-values and Cohen's d are NaN;
/// the ratio and its CI are still computed when both sides are non-empty. With
/// `resamples == 0` the ratio CI is NaN.
pub fn compare(
    a: &[f64],
    b: &[f64],
    better: Better,
    label_a: &str,
    label_b: &str,
    seed: u64,
    resamples: usize,
) -> Compare {
    let (na, nb) = (a.len(), b.len());
    let (ratio, ratio_ci95_low, ratio_ci95_high) = if na == 0 || nb == 0 {
        (f64::NAN, f64::NAN, f64::NAN)
    } else {
        let ratio = median(a) / median(b);
        let (low, high) = bootstrap_ratio_ci95(a, b, seed, resamples);
        (ratio, low, high)
    };
    let (welch_p, mann_whitney_p, cohens_d) = if na < 2 || nb < 2 {
        (f64::NAN, f64::NAN, f64::NAN)
    } else {
        (welch_p(a, b), mann_whitney_p(a, b), cohens_d(a, b))
    };
    let p = welch_p.max(mann_whitney_p);
    let significant = p < ALPHA;
    let outcome = Outcome {
        ratio,
        p,
        significant,
        a_ahead: a_ahead(a, b),
        na,
        nb,
    };
    Compare {
        ratio,
        ratio_ci95_low,
        ratio_ci95_high,
        welch_p,
        mann_whitney_p,
        cohens_d,
        significant,
        verdict: verdict(&outcome, better, label_a, label_b),
    }
}

/// What a verdict is written from: the ratio, the decision p-value (raw or adjusted), whether
/// it is significant, which side is ahead and the sample sizes.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub ratio: f64,
    pub p: f64,
    pub significant: bool,
    /// A's median above B's (means when the medians tie); None when they are equal.
    pub a_ahead: Option<bool>,
    pub na: usize,
    pub nb: usize,
}

/// Direction by medians (the reported ratio), falling back to means when medians tie.
pub fn a_ahead(a: &[f64], b: &[f64]) -> Option<bool> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (ma, mb) = (median(a), median(b));
    let diff = if ma != mb {
        ma - mb
    } else {
        a.iter().mean() - b.iter().mean()
    };
    (diff != 0.0).then_some(diff > 0.0)
}

/// One line for the report. Significant: the winner and `median(winner) / median(loser)`
/// with the p-value, `"asynctasq faster than celery (2.31x, p=0.004)"` (no winner named for
/// [`Better::Neither`]). Not significant, when the sizes could not have reached significance
/// (fewer than two runs on a side, or [`min_attainable_p`] >= [`ALPHA`]):
/// `"cannot tell (n = 3 vs 3)"`. Otherwise `"no significant difference (p=…)"`.
pub fn verdict(o: &Outcome, better: Better, label_a: &str, label_b: &str) -> String {
    let (ratio, p) = (o.ratio, o.p);
    if !o.significant {
        return if !can_reach_significance(o.na, o.nb) {
            format!("cannot tell (n = {} vs {})", o.na, o.nb)
        } else {
            format!("no significant difference (p={p:.3})")
        };
    }
    let Some(a_ahead) = o.a_ahead else {
        return format!("no significant difference (p={p:.3})");
    };
    let (a_better, word) = match better {
        Better::Higher => (a_ahead, "faster"),
        Better::Lower => (!a_ahead, "better"),
        Better::Neither => {
            return format!(
                "{label_a} {ratio:.2}x {label_b} (p={p:.3}; neither direction is better)"
            )
        }
    };
    if a_better {
        format!("{label_a} {word} than {label_b} ({ratio:.2}x, p={p:.3})")
    } else {
        let inv = 1.0 / ratio;
        format!("{label_b} {word} than {label_a} ({inv:.2}x, p={p:.3})")
    }
}

/// Whether n_a vs n_b runs can give p < [`ALPHA`] at all.
pub fn can_reach_significance(na: usize, nb: usize) -> bool {
    na >= 2 && nb >= 2 && min_attainable_p(na, nb) < ALPHA
}

/// The smallest two-sided Mann-Whitney p-value (normal approximation, continuity
/// correction, as [`compare`] computes it) that n_a vs n_b distinct values can give: complete
/// separation, U = n_a n_b. 3 vs 3 gives 0.081, so no difference could be called; 4 vs 4
/// gives 0.030. (Ties inside a side can go lower; measured floats do not tie.)
/// Fewest runs per side with which a comparison can reach p < 0.05 at all (3 vs 3 cannot:
/// see [`min_attainable_p`]); adaptive profiles keep at least this many.
pub const MIN_RUNS_FOR_SIGNIFICANCE: usize = 4;

pub fn min_attainable_p(na: usize, nb: usize) -> f64 {
    if na == 0 || nb == 0 {
        return 1.0;
    }
    let (f1, f2) = (na as f64, nb as f64);
    let sigma = (f1 * f2 * (f1 + f2 + 1.0) / 12.0).sqrt();
    let z = (f1 * f2 / 2.0 - 0.5) / sigma;
    let normal = Normal::new(0.0, 1.0).expect("standard normal");
    (2.0 * normal.sf(z)).clamp(0.0, 1.0)
}

/// Holm's step-down adjustment of a family of p-values (in input order). NaN entries are not
/// tests: they stay NaN and do not count in the family size.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let m = order.len();
    let mut adjusted = vec![f64::NAN; p.len()];
    let mut running = 0.0_f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

fn sorted_copy(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// Percentile `q` (0..=100) of sorted, non-empty data, linear interpolation (type 7).
fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let h = (n - 1) as f64 * q / 100.0;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let frac = h - lo as f64;
    sorted[lo] + frac * (sorted[hi] - sorted[lo])
}

/// The median (midpoint of the two middle values for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    percentile_sorted(&sorted_copy(values), 50.0)
}

fn mean_ci95(mean: f64, stddev: f64, n: usize) -> (f64, f64) {
    if n < 2 || stddev == 0.0 {
        return (mean, mean);
    }
    let df = (n - 1) as f64;
    let t = StudentsT::new(0.0, 1.0, df)
        .expect("n >= 2 gives positive degrees of freedom")
        .inverse_cdf(0.975);
    let half = t * stddev / (n as f64).sqrt();
    (mean - half, mean + half)
}

fn bootstrap_ratio_ci95(a: &[f64], b: &[f64], seed: u64, resamples: usize) -> (f64, f64) {
    if resamples == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ra = vec![0.0; a.len()];
    let mut rb = vec![0.0; b.len()];
    let mut ratios = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for x in ra.iter_mut() {
            *x = a[rng.gen_range(0..a.len())];
        }
        for x in rb.iter_mut() {
            *x = b[rng.gen_range(0..b.len())];
        }
        ratios.push(median(&ra) / median(&rb));
    }
    let ratios = sorted_copy(&ratios);
    (
        percentile_sorted(&ratios, 2.5),
        percentile_sorted(&ratios, 97.5),
    )
}

/// Two-sided Welch t-test p-value; both sides need n >= 2.
fn welch_p(a: &[f64], b: &[f64]) -> f64 {
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (ma, mb) = (a.iter().mean(), b.iter().mean());
    let (va, vb) = (a.iter().variance() / na, b.iter().variance() / nb);
    let se2 = va + vb;
    if se2 == 0.0 {
        // Both constant: no spread to test against, so the answer is certain.
        return if ma == mb { 1.0 } else { 0.0 };
    }
    let t = (ma - mb) / se2.sqrt();
    let df = se2 * se2 / (va * va / (na - 1.0) + vb * vb / (nb - 1.0));
    let dist = StudentsT::new(0.0, 1.0, df).expect("finite positive degrees of freedom");
    (2.0 * dist.sf(t.abs())).min(1.0)
}

/// Two-sided Mann-Whitney U p-value, normal approximation with tie and continuity
/// corrections, as scipy computes it: z = (max(U1, U2) - n1 n2 / 2 - 0.5) / sigma.
fn mann_whitney_p(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len(), b.len());
    let n = n1 + n2;
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&x| (x, true))
        .chain(b.iter().map(|&x| (x, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    // Average ranks over ties; accumulate the rank sum of A and the tie term sum(t^3 - t).
    let mut rank_sum_a = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && all[j].0 == all[i].0 {
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0; // ranks i+1..=j
        let in_a = all[i..j].iter().filter(|e| e.1).count();
        rank_sum_a += avg_rank * in_a as f64;
        let t = (j - i) as f64;
        tie_term += t * t * t - t;
        i = j;
    }
    let (f1, f2, fnn) = (n1 as f64, n2 as f64, n as f64);
    let u1 = rank_sum_a - f1 * (f1 + 1.0) / 2.0;
    let u2 = f1 * f2 - u1;
    let u = u1.max(u2);
    let mu = f1 * f2 / 2.0;
    let sigma = (f1 * f2 / 12.0 * ((fnn + 1.0) - tie_term / (fnn * (fnn - 1.0)))).sqrt();
    if sigma == 0.0 || sigma.is_nan() {
        return 1.0; // every value tied: no evidence of a difference
    }
    let z = (u - mu - 0.5) / sigma;
    let normal = Normal::new(0.0, 1.0).expect("standard normal");
    (2.0 * normal.sf(z)).clamp(0.0, 1.0)
}

fn cohens_d(a: &[f64], b: &[f64]) -> f64 {
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let diff = a.iter().mean() - b.iter().mean();
    let pooled = (((na - 1.0) * a.iter().variance() + (nb - 1.0) * b.iter().variance())
        / (na + nb - 2.0))
        .sqrt();
    if pooled == 0.0 {
        if diff == 0.0 {
            0.0
        } else {
            diff.signum() * f64::INFINITY
        }
    } else {
        diff / pooled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// |actual - expected| <= tol * max(1, |expected|).
    #[track_caller]
    fn close(actual: f64, expected: f64, tol: f64) {
        let bound = tol * expected.abs().max(1.0);
        assert!(
            (actual - expected).abs() <= bound,
            "actual {actual:e}, expected {expected:e} (tolerance {bound:e})"
        );
    }

    /// Relative comparison, for small p-values.
    #[track_caller]
    fn close_rel(actual: f64, expected: f64, tol: f64) {
        assert!(
            (actual - expected).abs() <= tol * expected.abs(),
            "actual {actual:e}, expected {expected:e} (relative tolerance {tol:e})"
        );
    }

    const X1: [f64; 12] = [
        1276.0, 1301.5, 1254.2, 1289.9, 1310.3, 1267.8, 1295.1, 1281.6, 1272.4, 1302.7, 1260.9,
        1288.0,
    ];
    const OUT: [f64; 10] = [42.3, 41.8, 43.1, 42.7, 41.5, 42.9, 42.0, 88.4, 42.4, 41.9];
    // Throughput (tasks/s), A slightly higher than B.
    const A: [f64; 8] = [
        1276.0, 1301.5, 1254.2, 1289.9, 1310.3, 1267.8, 1295.1, 1281.6,
    ];
    const B: [f64; 9] = [
        1240.3, 1262.8, 1299.0, 1231.7, 1270.5, 1248.2, 1281.9, 1255.4, 1244.6,
    ];
    // Latency (ms), A clearly lower.
    const LA: [f64; 6] = [38.1, 39.4, 37.6, 38.8, 40.2, 38.5];
    const LB: [f64; 6] = [55.2, 61.7, 58.9, 57.3, 60.1, 56.4];

    #[test]
    fn describe_matches_numpy_scipy() {
        let d = describe(&X1);
        assert_eq!(d.n, 12);
        // numpy.mean(x), numpy.median(x), numpy.std(x, ddof=1)
        close(d.mean, 1283.3666666666666, 1e-12);
        close(d.median, 1284.8, 1e-12);
        close(d.stddev, 17.594541164460015, 1e-10);
        assert_eq!((d.min, d.max), (1254.2, 1310.3));
        // numpy.percentile(x, 95), numpy.percentile(x, 99)
        close(d.p95, 1306.12, 1e-12);
        close(d.p99, 1309.464, 1e-12);
        // scipy.stats.t.interval(0.95, n-1, loc=mean, scale=std(ddof=1)/sqrt(n))
        close(d.ci95_low, 1272.1876285482776, 1e-9);
        close(d.ci95_high, 1294.5457047850555, 1e-9);
        // q1, q3 = numpy.percentile(x, [25, 75]); q1 - 1.5*(q3-q1), q3 + 1.5*(q3-q1)
        close(d.fence_low, 1233.0750000000003, 1e-12);
        close(d.fence_high, 1334.8749999999995, 1e-12);
        assert!(d.outliers.is_empty());
    }

    #[test]
    fn describe_small_sample_interpolates() {
        let d = describe(&[3.0, 1.0, 2.0]);
        // numpy.percentile([3, 1, 2], 95) -> 2.9, 99 -> 2.98; fences from q1=1.5, q3=2.5
        close(d.p95, 2.9, 1e-12);
        close(d.p99, 2.98, 1e-12);
        close(d.stddev, 1.0, 1e-12);
        // scipy.stats.t.interval(0.95, 2, loc=2, scale=1/sqrt(3))
        close(d.ci95_low, -0.48413771175033027, 1e-9);
        close(d.ci95_high, 4.48413771175033, 1e-9);
        close(d.fence_low, 0.0, 1e-12);
        close(d.fence_high, 4.0, 1e-12);
    }

    #[test]
    fn describe_flags_outlier_and_keeps_it() {
        let d = describe(&OUT);
        // numpy.mean / numpy.median / numpy.std(ddof=1) include the 88.4 outlier
        close(d.mean, 46.9, 1e-12);
        close(d.median, 42.349999999999994, 1e-12);
        close(d.stddev, 14.590407807871584, 1e-10);
        assert_eq!(d.max, 88.4);
        // numpy.percentile(x, 95), numpy.percentile(x, 99)
        close(d.p95, 68.01499999999996, 1e-12);
        close(d.p99, 84.32300000000001, 1e-12);
        // scipy.stats.t.interval(0.95, 9, loc=mean, scale=sem)
        close(d.ci95_low, 36.462651013710754, 1e-9);
        close(d.ci95_high, 57.33734898628924, 1e-9);
        // Tukey fences from numpy.percentile(x, [25, 75])
        close(d.fence_low, 40.537499999999994, 1e-12);
        close(d.fence_high, 44.23750000000001, 1e-12);
        assert_eq!(d.outliers, vec![7]);
    }

    #[test]
    fn describe_empty_is_nan() {
        let d = describe(&[]);
        assert_eq!(d.n, 0);
        for v in [
            d.mean,
            d.median,
            d.stddev,
            d.min,
            d.max,
            d.p95,
            d.p99,
            d.ci95_low,
            d.ci95_high,
            d.fence_low,
            d.fence_high,
        ] {
            assert!(v.is_nan());
        }
        assert!(d.outliers.is_empty());
    }

    #[test]
    fn describe_single_value() {
        let d = describe(&[5.0]);
        assert_eq!(d.n, 1);
        assert_eq!((d.mean, d.median, d.min, d.max), (5.0, 5.0, 5.0, 5.0));
        assert_eq!((d.p95, d.p99), (5.0, 5.0));
        assert!(d.stddev.is_nan()); // numpy.std([5], ddof=1) -> nan
        assert_eq!((d.ci95_low, d.ci95_high), (5.0, 5.0));
        assert_eq!((d.fence_low, d.fence_high), (5.0, 5.0));
        assert!(d.outliers.is_empty());
    }

    #[test]
    fn compare_throughput_matches_scipy() {
        let c = compare(&A, &B, Better::Higher, "asynctasq", "celery", 7, 2000);
        // scipy.stats.ttest_ind(a, b, equal_var=False).pvalue
        close(c.welch_p, 0.02014765808311102, 1e-9);
        // scipy.stats.mannwhitneyu(a, b, alternative='two-sided', method='asymptotic',
        //                          use_continuity=True).pvalue
        close(c.mann_whitney_p, 0.0385612475974246, 1e-9);
        // (mean(a) - mean(b)) / sqrt(((na-1) var(a, ddof=1) + (nb-1) var(b, ddof=1)) / (na+nb-2))
        close(c.cohens_d, 1.2507626478152307, 1e-9);
        // numpy.median(a) / numpy.median(b)
        close(c.ratio, 1.0241755615740002, 1e-12);
        assert!(c.significant);
        assert_eq!(c.verdict, "asynctasq faster than celery (1.02x, p=0.039)");
    }

    #[test]
    fn compare_is_symmetric_when_b_wins() {
        let c = compare(&B, &A, Better::Higher, "celery", "asynctasq", 7, 500);
        close(c.welch_p, 0.02014765808311102, 1e-9);
        close(c.mann_whitney_p, 0.0385612475974246, 1e-9);
        close(c.cohens_d, -1.2507626478152307, 1e-9);
        close(c.ratio, 1.0 / 1.0241755615740002, 1e-12);
        assert_eq!(c.verdict, "asynctasq faster than celery (1.02x, p=0.039)");
    }

    #[test]
    fn compare_latency_lower_is_better() {
        let c = compare(&LA, &LB, Better::Lower, "asynctasq", "celery", 1, 1000);
        // scipy.stats.ttest_ind(a, b, equal_var=False).pvalue -> 8.2e-07: compare relatively
        close_rel(c.welch_p, 8.213902675429803e-07, 1e-9);
        // scipy.stats.mannwhitneyu(..., method='asymptotic', use_continuity=True).pvalue
        close(c.mann_whitney_p, 0.005074868097940253, 1e-9);
        close(c.cohens_d, -10.62127633930826, 1e-9);
        close(c.ratio, 0.6652323580034424, 1e-12);
        assert!(c.significant);
        assert_eq!(c.verdict, "asynctasq better than celery (0.67x, p=0.005)");
        // Same data, roles swapped: B is the winner.
        let c = compare(&LB, &LA, Better::Lower, "celery", "asynctasq", 1, 1000);
        assert_eq!(c.verdict, "asynctasq better than celery (0.67x, p=0.005)");
    }

    #[test]
    fn mann_whitney_with_ties() {
        let a = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0];
        let b = [3.0, 4.0, 4.0, 5.0, 5.0, 6.0, 6.0, 7.0];
        let c = compare(&a, &b, Better::Higher, "a", "b", 3, 200);
        // scipy.stats.mannwhitneyu(a, b, alternative='two-sided', method='asymptotic',
        //                          use_continuity=True).pvalue (U = 7.5, tie-corrected)
        close(c.mann_whitney_p, 0.010515245935858907, 1e-9);
        // scipy.stats.ttest_ind(a, b, equal_var=False).pvalue
        close(c.welch_p, 0.0050228814650763905, 1e-9);
        close(c.cohens_d, -1.66242629977566, 1e-9);
        close(c.ratio, 0.6, 1e-12);
        assert_eq!(c.verdict, "b faster than a (1.67x, p=0.011)");
    }

    #[test]
    fn overlapping_samples_not_significant() {
        let a = [10.1, 9.8, 10.4, 10.0, 9.9];
        let b = [10.2, 9.7, 10.3, 10.15, 9.6, 10.05];
        let c = compare(&a, &b, Better::Higher, "a", "b", 3, 200);
        // scipy.stats.ttest_ind(a, b, equal_var=False).pvalue
        close(c.welch_p, 0.80246248728157, 1e-9);
        // scipy.stats.mannwhitneyu(..., method='asymptotic', use_continuity=True).pvalue
        close(c.mann_whitney_p, 1.0, 1e-12);
        close(c.cohens_d, 0.1527702059253553, 1e-9);
        assert!(!c.significant);
        assert_eq!(c.verdict, "no significant difference (p=1.000)");
    }

    #[test]
    fn significant_needs_both_tests() {
        let a = [5.0, 5.1, 5.2, 5.3, 5.4, 5.5, 30.0];
        let b = [4.0, 4.1, 4.2, 4.3, 4.4, 4.5, 4.6];
        let c = compare(&a, &b, Better::Higher, "a", "b", 3, 200);
        // scipy.stats.ttest_ind(a, b, equal_var=False).pvalue: not significant (outlier)
        close(c.welch_p, 0.25168472014668214, 1e-9);
        // scipy.stats.mannwhitneyu(..., method='asymptotic', use_continuity=True).pvalue
        close(c.mann_whitney_p, 0.0021650293330383757, 1e-9);
        close(c.cohens_d, 0.6778480156780168, 1e-9);
        assert!(!c.significant);
        assert_eq!(c.verdict, "no significant difference (p=0.252)");
    }

    #[test]
    fn too_few_repetitions() {
        let c = compare(&[1.0], &[2.0, 3.0], Better::Higher, "a", "b", 0, 100);
        assert!(c.welch_p.is_nan() && c.mann_whitney_p.is_nan() && c.cohens_d.is_nan());
        assert!(!c.significant);
        assert_eq!(c.verdict, "cannot tell (n = 1 vs 2)");
        close(c.ratio, 1.0 / 2.5, 1e-12);
        let c = compare(&[], &[], Better::Lower, "a", "b", 0, 100);
        assert_eq!(c.verdict, "cannot tell (n = 0 vs 0)");
        assert!(c.ratio.is_nan() && c.ratio_ci95_low.is_nan());
    }

    #[test]
    fn zero_variance_edge_cases() {
        // Both constant, different values: they differ surely.
        let c = compare(
            &[2.0, 2.0, 2.0],
            &[1.0, 1.0, 1.0],
            Better::Higher,
            "a",
            "b",
            0,
            100,
        );
        assert_eq!(c.welch_p, 0.0);
        assert_eq!(c.cohens_d, f64::INFINITY);
        // scipy.stats.ttest_ind([2,2,2], [1,1,1], equal_var=False).pvalue -> 0.0 as well.
        // scipy.stats.mannwhitneyu([2,2,2], [1,1,1], alternative='two-sided',
        //                          method='asymptotic', use_continuity=True).pvalue
        close(c.mann_whitney_p, 0.04685417760387376, 1e-9);
        assert!(c.significant);
        assert_eq!(c.verdict, "a faster than b (2.00x, p=0.047)");
        // Identical constant samples. (scipy returns NaN for both p-values here; we report
        // 1.0: no evidence of a difference.)
        let c = compare(
            &[3.0, 3.0, 3.0],
            &[3.0, 3.0],
            Better::Higher,
            "a",
            "b",
            0,
            100,
        );
        assert_eq!(c.welch_p, 1.0);
        assert_eq!(c.mann_whitney_p, 1.0);
        assert_eq!(c.cohens_d, 0.0);
        assert_eq!(c.ratio, 1.0);
        assert_eq!((c.ratio_ci95_low, c.ratio_ci95_high), (1.0, 1.0));
        assert_eq!(c.verdict, "cannot tell (n = 3 vs 2)");
    }

    #[test]
    fn bootstrap_ci_contains_ratio_and_is_reproducible() {
        let c1 = compare(&A, &B, Better::Higher, "a", "b", 42, 2000);
        assert!(c1.ratio_ci95_low <= c1.ratio && c1.ratio <= c1.ratio_ci95_high);
        assert!(c1.ratio_ci95_low < c1.ratio_ci95_high);
        let c2 = compare(&A, &B, Better::Higher, "a", "b", 42, 2000);
        assert_eq!(c1, c2);
        let c3 = compare(&A, &B, Better::Higher, "a", "b", 43, 2000);
        assert_ne!(
            (c1.ratio_ci95_low, c1.ratio_ci95_high),
            (c3.ratio_ci95_low, c3.ratio_ci95_high)
        );
        let none = compare(&A, &B, Better::Higher, "a", "b", 42, 0);
        assert!(none.ratio_ci95_low.is_nan() && none.ratio_ci95_high.is_nan());
    }

    #[test]
    fn bootstrap_ci_is_narrow_for_tight_data() {
        let a: Vec<f64> = (0..20).map(|i| 200.0 + (i % 5) as f64 * 0.01).collect();
        let b: Vec<f64> = (0..20).map(|i| 100.0 + (i % 4) as f64 * 0.01).collect();
        let c = compare(&a, &b, Better::Higher, "a", "b", 9, 1000);
        assert!(c.ratio_ci95_low <= c.ratio && c.ratio <= c.ratio_ci95_high);
        assert!(c.ratio_ci95_high - c.ratio_ci95_low < 1e-3, "{c:?}");
        close(c.ratio, 2.0, 1e-3);
        let wide = compare(&OUT, &LA, Better::Higher, "a", "b", 9, 1000);
        assert!(
            wide.ratio_ci95_high - wide.ratio_ci95_low > 1e-2,
            "{wide:?}"
        );
    }

    #[test]
    fn serde_roundtrip() {
        let d = describe(&OUT);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Describe>(&json).unwrap(), d);
        let c = compare(&A, &B, Better::Higher, "a", "b", 1, 100);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Compare>(&json).unwrap(), c);
    }

    #[test]
    fn min_attainable_p_says_when_sizes_cannot_reach_significance() {
        // scipy.stats.mannwhitneyu([1,2,3], [4,5,6], method='asymptotic').pvalue -> 0.0808...
        close(min_attainable_p(3, 3), 0.08085559837291212, 1e-9);
        close(
            min_attainable_p(3, 3),
            mann_whitney_p(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]),
            1e-12,
        );
        assert!(min_attainable_p(4, 4) < ALPHA);
        assert!(!can_reach_significance(3, 3) && !can_reach_significance(1, 10));
        assert!(can_reach_significance(4, 4) && can_reach_significance(2, 10));
        // Completely separated 3 vs 3: the old wording called it "too few runs to call";
        // a compare of two run directories said "no change".
        let c = compare(
            &[1.0, 2.0, 3.0],
            &[4.0, 5.0, 6.0],
            Better::Higher,
            "a",
            "b",
            0,
            10,
        );
        assert!(!c.significant);
        assert_eq!(c.verdict, "cannot tell (n = 3 vs 3)");
    }

    #[test]
    fn holm_adjusts_step_down_and_skips_nan() {
        // statsmodels.stats.multitest.multipletests([0.01, 0.04, 0.03, 0.5], method='holm')
        // -> [0.04, 0.09, 0.09, 0.5]
        let adjusted = holm(&[0.01, 0.04, f64::NAN, 0.03, 0.5]);
        for (got, want) in adjusted.iter().zip([0.04, 0.09, f64::NAN, 0.09, 0.5]) {
            if want.is_nan() {
                assert!(got.is_nan());
            } else {
                close(*got, want, 1e-12);
            }
        }
        assert!(holm(&[]).is_empty());
    }

    #[test]
    fn cpu_differences_name_no_winner() {
        let c = compare(&LA, &LB, Better::Neither, "a", "b", 1, 100);
        assert!(c.significant, "{c:?}");
        assert!(
            c.verdict.contains("neither direction is better")
                && !c.verdict.contains("faster")
                && !c.verdict.contains("better than"),
            "{}",
            c.verdict
        );
    }

    #[test]
    fn min_runs_for_significance_is_the_first_size_that_can_reach_it() {
        let n = MIN_RUNS_FOR_SIGNIFICANCE;
        assert!(min_attainable_p(n, n) < 0.05);
        assert!(min_attainable_p(n - 1, n - 1) >= 0.05);
    }
}
