//! Scenario 3 (CPU-bound) at ci size: pbkdf2 per task, AsyncTasQ as AsyncTask (blocking),
//! SyncTask and process task; Celery prefork and threads. The work is checked: a task whose
//! digest is wrong reports a failure.

mod common;

use rstest::rstest;

#[rstest]
fn the_work_runs_and_is_correct(#[values(0, 1, 2, 3, 4)] index: usize) {
    let case = common::scenario_cases("cpu").remove(index);
    let out = common::run_ci(&case);
    let m = &out.result.metrics;
    common::assert_exact(&case, &out);
    // 100,000 pbkdf2 iterations take milliseconds, not microseconds: the work really ran.
    assert!(
        out.histograms.service.min() > 5_000_000,
        "{}: fastest task {} ns",
        case.label(),
        out.histograms.service.min()
    );
    if case.variant.pool == "process" || case.variant.pool == "prefork" {
        assert!(
            m.task_pids >= 2,
            "{}: tasks ran in {} processes",
            case.label(),
            m.task_pids
        );
    }
}
