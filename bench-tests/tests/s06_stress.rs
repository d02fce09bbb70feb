//! Scenario 6 (stress) at ci size: a ramp of bursts against a fixed pool, producer and
//! worker running together, with the queue depth read through each step.

mod common;

use bench_tests::systems::System;
use bench_tests::workloads::stress;
use rstest::rstest;

#[rstest]
fn every_step_completes_exactly_and_its_depth_is_read(
    #[values(System::ASYNCTASQ, System::CELERY)] system: System,
) {
    let cases: Vec<_> = common::scenario_cases("stress")
        .into_iter()
        .filter(|c| c.variant.system == system)
        .collect();
    assert!(cases.len() >= 2, "a ramp has steps");
    let mut results = Vec::new();
    for case in &cases {
        let out = common::run_ci(case);
        let m = &out.result.metrics;
        assert_eq!(
            (m.completed, m.lost, m.duplicated, m.failed, m.error_rate),
            (case.task_count, 0, 0, 0, 0.0),
            "{}",
            case.label()
        );
        assert!(out.result.errors.is_empty(), "{:?}", out.result.errors);
        // Read from the broker during the step, never more than was sent.
        let deepest = m.queue_depth_max.expect("depth was read");
        assert!(deepest <= case.task_count, "{deepest}");
        results.push(out.result);
    }
    let ramps = stress::ramps(&results);
    assert_eq!(ramps.len(), 1);
    let ramp = &ramps[0];
    assert_eq!(ramp.steps.len(), cases.len());
    // The largest step sends for long enough to fit a line to its depth readings.
    let largest = ramp.steps.last().unwrap();
    assert!(
        largest.depth_growth_per_sec.is_some() && largest.memory_growth_mb.is_some(),
        "{largest:?}"
    );
    if let Some(step) = ramp.saturation_step {
        let saturated = ramp.steps.iter().find(|s| s.task_count == step).unwrap();
        assert!(saturated.depth_growth_per_sec.unwrap() > 0.0);
    }
}
