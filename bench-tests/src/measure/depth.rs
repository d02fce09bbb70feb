//! Queue depth over a run: how fast the backlog grew while the producer was sending, and
//! whether it grew linearly (the consumer saturated: tasks arrive faster than they leave).

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

/// Growth of the depth between `from_ms` and `to_ms` (the producer's window, on the
/// series' clock); None with fewer than MIN_POINTS readings there.
pub fn growth(series: &[DepthPoint], from_ms: f64, to_ms: f64, task_count: u64) -> Option<Growth> {
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
    // A flat series is explained by any line: call it no growth, R² 0.
    let r2 = if sdd == 0.0 {
        0.0
    } else {
        (std * std) / (stt * sdd)
    };
    let deepest = inside.iter().map(|p| p.1).fold(0.0, f64::max);
    let backlog = deepest >= (MIN_BACKLOG_SHARE * task_count as f64).max(10.0);
    Some(Growth {
        points: inside.len(),
        per_sec: slope,
        r2,
        linear: slope > 0.0 && r2 >= LINEAR_R2 && backlog,
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
}
