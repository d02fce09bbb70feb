//! Driver-specific behaviour that must be present, measured on the real brokers:
//! AsyncTasQ's dead-letter table and visibility-timeout recovery on PostgreSQL and MySQL.

mod common;

use bench_tests::provision::brokers::Driver;
use bench_tests::workloads::behaviour::{self, SLOW_FIRST_VISIBILITY_SECS};
use rstest::rstest;

#[rstest]
fn a_permanently_failing_task_lands_in_the_dead_letter_table(
    #[values(Driver::Postgres, Driver::Mysql)] driver: Driver,
) {
    let timing =
        behaviour::dead_letter_delay(common::harness(), driver).unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "{driver}: dead-letter row {:.1} ms after the failing attempt ended",
        timing.delay_ms
    );
    // The row is written after the attempt (clocks of one host; a little slack for rounding).
    assert!(
        timing.delay_ms > -1.0 && timing.delay_ms < 10_000.0,
        "{timing:?}"
    );
}

#[rstest]
fn a_task_held_by_a_killed_worker_runs_again_after_the_visibility_timeout(
    #[values(Driver::Postgres, Driver::Mysql)] driver: Driver,
) {
    let redelivery = behaviour::visibility_recovery(common::harness(), driver)
        .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "{driver}: task ran again {:.0} ms after its worker was killed",
        redelivery.recovery_ms
    );
    // Not before its lock expires (the task started before the kill, so a little less than
    // the full timeout may remain), and not much after (the new worker polls every 100 ms).
    let timeout_ms = SLOW_FIRST_VISIBILITY_SECS as f64 * 1000.0;
    assert!(
        redelivery.recovery_ms > 0.0 && redelivery.recovery_ms < timeout_ms + 15_000.0,
        "{redelivery:?}"
    );
}
