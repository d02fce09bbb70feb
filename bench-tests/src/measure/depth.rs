//! Queue depth over a run: a line fitted to the readings of a window (its slope, R² and
//! the slope's t-statistic), and for live and paced runs how the backlog grew while the
//! producer was sending. The stress ramp uses `fit` per step (see `workloads::stress`).

use serde::{Deserialize, Serialize};

use crate::result::DepthPoint;

/// Fewest depth readings inside the producer's window for a growth figure.
pub const MIN_POINTS: usize = 4;
/// A straight line must explain this much of the depth's variance to call growth linear.
pub const LINEAR_R2: f64 = 0.9;
/// ... and the backlog must reach this share of the run's tasks (a few queued tasks are
/// normal prefetch jitter, not saturation).
pub const MIN_BACKLOG_SHARE: f64 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Growth {
    /// Readings inside the producer's window.
    pub points: usize,
    /// Least-squares slope of depth over time, tasks per second.
    pub per_sec: f64,
    /// Coefficient of determination of that line.
    pub r2: f64,
    /// Slope > 0, R² >= LINEAR_R2 and the backlog reached MIN_BACKLOG_SHARE of the tasks.
    pub linear: bool,
}

/// The deepest reading of the run.
pub fn max_depth(series: &[DepthPoint]) -> Option<u64> {
    series.iter().map(|p| p.depth).max()
}

/// A least-squares line through the depth readings of one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    pub points: usize,
    /// Slope, tasks per second.
    pub per_sec: f64,
    /// Coefficient of determination (0 for a flat series: no growth to explain).
    pub r2: f64,
    /// The slope over its standard error (infinite for a perfect non-flat line; 0 when
    /// flat), so "the depth grew" can be called significant rather than read off R².
    pub t: f64,
}

/// The line through the readings between `from_ms` and `to_ms` (inclusive, on the series'
/// clock); None with fewer than MIN_POINTS readings there.
pub fn fit(series: &[DepthPoint], from_ms: f64, to_ms: f64) -> Option<Fit> {
    let inside: Vec<(f64, f64)> = series
        .iter()
        .filter(|p| p.t_ms >= from_ms && p.t_ms <= to_ms)
        .map(|p| (p.t_ms / 1000.0, p.depth as f64))
        .collect();
    if inside.len() < MIN_POINTS {
        return None;
    }
    let n = inside.len() as f64;
    let mean_t = inside.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_d = inside.iter().map(|p| p.1).sum::<f64>() / n;
    let stt: f64 = inside.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
    let std: f64 = inside.iter().map(|p| (p.0 - mean_t) * (p.1 - mean_d)).sum();
    let sdd: f64 = inside.iter().map(|p| (p.1 - mean_d).powi(2)).sum();
    if stt == 0.0 {
        return None;
    }
    let slope = std / stt;
    if sdd == 0.0 {
        return Some(Fit {
            points: inside.len(),
            per_sec: slope,
            r2: 0.0,
            t: 0.0,
        });
    }
    let r2 = (std * std) / (stt * sdd);
    // Residual variance over n - 2 degrees of freedom, then the slope's standard error.
    let residual = (sdd - slope * std).max(0.0) / (n - 2.0);
    let se = (residual / stt).sqrt();
    let t = if se == 0.0 {
        f64::INFINITY.copysign(slope)
    } else {
        slope / se
    };
    Some(Fit {
        points: inside.len(),
        per_sec: slope,
        r2,
        t,
    })
}

/// Growth of the depth between `from_ms` and `to_ms` (the producer's window, on the
/// series' clock); None with fewer than MIN_POINTS readings there.
pub fn growth(series: &[DepthPoint], from_ms: f64, to_ms: f64, task_count: u64) -> Option<Growth> {
    let line = fit(series, from_ms, to_ms)?;
    let deepest = series
        .iter()
        .filter(|p| p.t_ms >= from_ms && p.t_ms <= to_ms)
        .map(|p| p.depth as f64)
        .fold(0.0, f64::max);
    let backlog = deepest >= (MIN_BACKLOG_SHARE * task_count as f64).max(10.0);
    Some(Growth {
        points: line.points,
        per_sec: line.per_sec,
        r2: line.r2,
        linear: line.per_sec > 0.0 && line.r2 >= LINEAR_R2 && backlog,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(depths: &[u64]) -> Vec<DepthPoint> {
        depths
            .iter()
            .enumerate()
            .map(|(i, &depth)| DepthPoint {
                t_ms: i as f64 * 250.0,
                depth,
            })
            .collect()
    }

    #[test]
    fn a_backlog_growing_steadily_is_linear() {
        // 500 tasks per 250 ms = 2,000 tasks/s.
        let s = series(&[0, 500, 1000, 1500, 2000, 2500]);
        let g = growth(&s, 0.0, 1250.0, 10_000).unwrap();
        assert!((g.per_sec - 2000.0).abs() < 1e-6, "{g:?}");
        assert!((g.r2 - 1.0).abs() < 1e-9);
        assert!(g.linear);
        assert_eq!(max_depth(&s), Some(2500));
    }

    #[test]
    fn a_consumer_that_keeps_up_is_not_saturated() {
        let flat = series(&[3, 5, 2, 4, 3, 5]);
        let g = growth(&flat, 0.0, 1250.0, 10_000).unwrap();
        assert!(!g.linear, "{g:?}");
        let zero = series(&[0, 0, 0, 0, 0]);
        assert!(!growth(&zero, 0.0, 1000.0, 10_000).unwrap().linear);
    }

    #[test]
    fn readings_outside_the_window_or_too_few_give_nothing() {
        let s = series(&[0, 500, 1000, 1500, 2000, 2500]);
        assert!(growth(&s, 0.0, 500.0, 10_000).is_none(), "3 readings");
        // Only the window counts: the drain after the producer stopped is left out.
        let with_drain = series(&[0, 500, 1000, 1500, 2000, 1000, 0]);
        assert!(growth(&with_drain, 0.0, 1000.0, 10_000).unwrap().linear);
    }

    #[test]
    fn a_fit_gives_the_slope_and_its_significance() {
        let steady = series(&[0, 500, 1000, 1500, 2000, 2500]);
        let f = fit(&steady, 0.0, 1250.0).unwrap();
        assert!((f.per_sec - 2000.0).abs() < 1e-6 && f.t.is_infinite() && f.r2 > 0.999);
        // Noise around a flat level: a small slope, far from significant.
        let noisy = series(&[30, 10, 40, 20, 35, 15, 30, 25]);
        let f = fit(&noisy, 0.0, 2000.0).unwrap();
        assert!(f.t.abs() < 3.0, "{f:?}");
        // Growth with noise on top is still significant.
        let rising = series(&[0, 130, 190, 330, 380, 520, 560, 720]);
        let f = fit(&rising, 0.0, 2000.0).unwrap();
        assert!(f.t > 10.0 && f.per_sec > 350.0, "{f:?}");
        assert_eq!(fit(&series(&[4, 4, 4, 4]), 0.0, 1000.0).unwrap().t, 0.0);
    }
}
