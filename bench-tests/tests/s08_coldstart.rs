//! Scenario 8 (cold start) at ci size: spawn a worker with one task waiting; the time to
//! that task's end, for each pool size and variant.

mod common;

use rstest::rstest;

#[rstest]
fn first_task_completes_after_spawn(#[values(0, 1, 2, 3, 4, 5)] index: usize) {
    let case = common::scenario_cases("coldstart").remove(index);
    let out = common::run_ci(&case);
    let m = &out.result.metrics;
    assert_eq!((m.completed, m.lost, m.duplicated), (1, 0, 0));
    // Interpreter start and imports alone take a few hundred ms; a minute means a hang.
    assert!(
        m.processing_time_from_spawn_seconds > 0.1 && m.processing_time_from_spawn_seconds < 60.0,
        "{m:?}"
    );
}
