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
        "{driver}: task ran again {:.0} ms after its first start, {:.0} ms after its worker was killed",
        redelivery.redelivery_ms, redelivery.recovery_ms
    );
    assert_eq!(
        redelivery.visibility_timeout_secs,
        SLOW_FIRST_VISIBILITY_SECS
    );
    // Not before its lock expires: the second start is at least the visibility timeout after
    // the first, less REDELIVERY_EARLY_TOLERANCE_MS (250 ms: the lock is set at the claim, a
    // moment before the first start is stamped); and not long after (the new worker polls
    // every 100 ms once up).
    redelivery
        .check_timing()
        .unwrap_or_else(|e| panic!("{e:#}\n{redelivery:?}"));
}
