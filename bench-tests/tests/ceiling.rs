//! The broker's own ceiling, measured by the Rust reference client on each broker at a
//! small size: every message enqueued and dequeued exactly once, rates above zero.

mod common;

use std::sync::Mutex;

use bench_tests::measure::ceiling::{self, PAYLOAD_BYTES};
use bench_tests::provision::brokers::Driver;

/// One measurement at a time: parallel ones would share the CPUs and lower each other.
static SERIAL: Mutex<()> = Mutex::new(());

fn check(driver: Driver, messages: u64, concurrency: u32) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let ceiling = ceiling::measure(common::harness(), driver, messages, concurrency)
        .unwrap_or_else(|e| panic!("{driver} ceiling: {e:#}"));
    eprintln!(
        "{driver} ceiling: {:.0} enqueued/s, {:.0} dequeued/s ({messages} messages, concurrency {concurrency}): {}",
        ceiling.enqueue_per_sec, ceiling.dequeue_per_sec, ceiling.method
    );
    assert_eq!(ceiling.driver, driver.name());
    assert_eq!(ceiling.messages, messages);
    assert_eq!(ceiling.concurrency, concurrency);
    assert_eq!(ceiling.payload_bytes, PAYLOAD_BYTES);
    assert!(
        ceiling.enqueue_per_sec.is_finite() && ceiling.enqueue_per_sec > 0.0,
        "{ceiling:?}"
    );
    assert!(
        ceiling.dequeue_per_sec.is_finite() && ceiling.dequeue_per_sec > 0.0,
        "{ceiling:?}"
    );
    assert_eq!(ceiling.method, ceiling::method(driver));
}

#[test]
fn redis_ceiling() {
    check(Driver::Redis, 2000, 10);
}

#[test]
fn postgres_ceiling() {
    check(Driver::Postgres, 2000, 10);
}

#[test]
fn mysql_ceiling() {
    check(Driver::Mysql, 2000, 10);
}

#[test]
fn rabbitmq_ceiling() {
    check(Driver::Rabbitmq, 2000, 10);
}

#[test]
fn sqs_ceiling() {
    check(Driver::Sqs, 300, 10);
}

#[test]
fn bad_sizes_fail_before_touching_a_broker() {
    let err = ceiling::measure(common::harness(), Driver::Redis, 0, 10)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1..="), "{err}");
}
